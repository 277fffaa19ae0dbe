"""Stage `flatten`: the IDX files -> (N, 784) uint8 images and (N,) labels as .npy, both splits."""

import argparse

from fmnist.data import N_FEATURES, SPLITS, read_split, save_split
from fmnist.errors import one_line_errors
from fmnist.files import atomic_dir


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, help="folder of the four IDX .gz files")
    parser.add_argument("--out", required=True, help="folder for {train,test}_{images,labels}.npy")
    args = parser.parse_args(argv)

    with atomic_dir(args.out) as out:
        for split in SPLITS:
            images, labels = read_split(args.raw, split)
            save_split(out, split, images, labels)
            print(f"{split}: {images.shape[0]} images of {N_FEATURES} pixels")


if __name__ == "__main__":
    main()
