"""Stage `flatten`: IDX files -> (N, 784) uint8 images and (N,) labels as .npy.

The arrays stay uint8 on disk (a quarter of float32, so every version the
DVC cache keeps is small) and load with one read. `load_split` is the one
place that scales pixels, as the notebook's ToTensor does: uint8 / 255 ->
float32 in [0, 1].
"""

import argparse
import gzip
import zlib
from pathlib import Path

import numpy as np

from stages.common import StageError, atomic_dir, stage_main

IMAGE_SIDE = 28
N_FEATURES = IMAGE_SIDE * IMAGE_SIDE
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 and 1 dimensions
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}


def expected_layout(filename):
    """(magic number, item count) that a Fashion-MNIST file's name promises."""
    for images, labels, count in SPLITS.values():
        if filename == images:
            return IMAGES_MAGIC, count
        if filename == labels:
            return LABELS_MAGIC, count
    raise ValueError(f"not a Fashion-MNIST file name: {filename}")


def read_idx(path):
    """Decompress and check one IDX file; (count, 784) images or (count,) labels as uint8."""
    path = Path(path)
    magic, count = expected_layout(path.name)
    try:
        compressed = path.read_bytes()
    except FileNotFoundError:
        raise StageError(f"{path}: file not found") from None
    except OSError as error:
        raise StageError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        data = gzip.decompress(compressed)
    except EOFError:
        raise StageError(f"{path}: truncated gzip data (the file ends inside the compressed stream)") from None
    except zlib.error as error:
        raise StageError(f"{path}: damaged gzip data ({error})") from None
    except gzip.BadGzipFile as error:
        raise StageError(f"{path}: not valid gzip data ({error})") from None
    header_ints = 4 if magic == IMAGES_MAGIC else 2
    if len(data) < 4 * header_ints:
        raise StageError(f"{path}: IDX header is cut short ({len(data)} bytes)")
    header = np.frombuffer(data, dtype=">u4", count=header_ints)
    if header[0] != magic:
        raise StageError(f"{path}: IDX magic number is {header[0]}, expected {magic}")
    if header[1] != count:
        raise StageError(f"{path}: IDX header says {header[1]} items, expected {count}")
    if magic == IMAGES_MAGIC and tuple(header[2:]) != (IMAGE_SIDE, IMAGE_SIDE):
        raise StageError(f"{path}: IDX images are {header[2]}x{header[3]}, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    item_size = N_FEATURES if magic == IMAGES_MAGIC else 1
    body = np.frombuffer(data, dtype=np.uint8, offset=4 * header_ints)
    if body.size != count * item_size:
        raise StageError(f"{path}: IDX body holds {body.size} bytes, the header promises {count * item_size}")
    return body.reshape(count, N_FEATURES) if item_size > 1 else body


def flatten_split(raw_dir, split):
    """Read one split's two IDX files: ((N, 784) uint8 images, (N,) uint8 labels)."""
    images_file, labels_file, _ = SPLITS[split]
    images = read_idx(Path(raw_dir) / images_file)
    labels = read_idx(Path(raw_dir) / labels_file)
    if labels.max() >= 10:
        raise StageError(f"{Path(raw_dir) / labels_file}: label {labels.max()} is outside 0..9")
    return images, labels


def load_split_raw(flat_dir, split):
    """(N, 784) uint8 pixels and (N,) uint8 labels, as numpy arrays, their shapes checked."""
    flat_dir = Path(flat_dir)
    images = load_array(flat_dir / f"{split}_images.npy")
    labels = load_array(flat_dir / f"{split}_labels.npy")
    if images.shape != (labels.shape[0], N_FEATURES):
        raise StageError(f"{flat_dir}: {split} images {images.shape} do not match {labels.shape[0]} labels")
    if images.dtype != np.uint8:
        raise StageError(f"{flat_dir}: {split} images are {images.dtype}, not the uint8 pixels flatten writes; "
                         "rerun `dvc repro flatten`")
    return images, labels


def load_split_arrays(flat_dir, split):
    """(N, 784) float32 pixels in [0, 1] and (N,) int64 labels, as numpy arrays.

    The one place pixels are scaled: uint8 / 255 in float32, exactly what the
    notebook's ToTensor computes.
    """
    images, labels = load_split_raw(flat_dir, split)
    # One pass: each byte is made float32 and divided as it is read (3x faster than a copy, then /=).
    pixels = np.divide(images, np.float32(255), dtype=np.float32)
    return pixels, labels.astype(np.int64)


def load_split(flat_dir, split):
    """load_split_arrays as torch tensors: (N, 784) float32 and (N,) int64."""
    import torch

    images, labels = load_split_arrays(flat_dir, split)
    return torch.from_numpy(images), torch.from_numpy(labels)


def load_array(path):
    """One .npy file written by this stage; anything else is a StageError naming the file."""
    try:
        # Never pickles: a file that is not a plain array is refused, not executed.
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        problem = "file not found"
    except (OSError, ValueError, EOFError) as error:
        if "pickle" in str(error):
            problem = "not a .npy array file"
        else:
            problem = " ".join(str(error).split()) or type(error).__name__
    raise StageError(f"{path}: cannot be read ({problem}); rerun `dvc repro flatten`")


def save_npy(path, array):
    with open(path, "wb") as f:
        np.save(f, array)


@stage_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, help="folder of the four IDX .gz files")
    parser.add_argument("--out", required=True, help="folder for {train,test}_{images,labels}.npy")
    args = parser.parse_args(argv)

    with atomic_dir(args.out) as out:
        for split in SPLITS:
            images, labels = flatten_split(args.raw, split)
            save_npy(out / f"{split}_images.npy", images)
            save_npy(out / f"{split}_labels.npy", labels)
            print(f"{split}: {images.shape[0]} images of {N_FEATURES} pixels")


if __name__ == "__main__":
    main()
