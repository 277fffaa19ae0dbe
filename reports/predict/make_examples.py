"""Make the example inputs of README's "Try it on your own images" from Fashion-MNIST test images.

Each chosen test image becomes a 'photo': dark on light paper, upscaled 8
times with bicubic interpolation, off-centre on a larger sheet, with a
little sensor noise, saved as JPEG; the first is also saved as it is in
the data set (28 x 28 PNG). Run from the project's root:

    python reports/predict/make_examples.py
"""

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path("reports/predict")
TEST_IMAGES = Path("data/fashion-mnist/t10k-images-idx3-ubyte.gz")
# Test-set index -> file name: a sneaker, a bag and a dress.
EXAMPLES = {9: "sneaker", 18: "bag", 13: "dress"}
SCALE = 8
PAPER = 232  # light gray paper, not pure white
NOISE = 3.0  # standard deviation of the sensor noise, in gray levels


def as_photo(image, rng, margins):
    """(28, 28) uint8, light on black -> Pillow image: dark on light paper, 8x larger, off-centre, noisy."""
    side = 28 * SCALE
    dark_on_light = (PAPER * (1 - image / 255.0)).astype(np.uint8)  # black paper -> PAPER, white object -> 0
    upscaled = Image.fromarray(dark_on_light).resize((side, side), Image.Resampling.BICUBIC)
    left, top, right, bottom = margins
    sheet = np.full((side + top + bottom, side + left + right), PAPER, dtype=np.float64)
    sheet[top:top + side, left:left + side] = np.asarray(upscaled, dtype=np.float64)
    sheet += rng.normal(0, NOISE, sheet.shape)
    return Image.fromarray(np.clip(np.rint(sheet), 0, 255).astype(np.uint8)).convert("RGB")


def read_test_images(path=TEST_IMAGES):
    """(10000, 28, 28) uint8 from the IDX file (a 16-byte header, then the pixels row by row)."""
    return np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8, offset=16).reshape(-1, 28, 28)


def main():
    images = read_test_images()
    rng = np.random.default_rng(0)
    for index, name in EXAMPLES.items():
        as_photo(images[index], rng, margins=(90, 40, 30, 120)).save(OUT / f"{name}.jpg", quality=90)
        print(f"{OUT / (name + '.jpg')}: test image {index}")
    first = next(iter(EXAMPLES))
    Image.fromarray(images[first]).save(OUT / f"test-{first}.png")
    print(f"{OUT / f'test-{first}.png'}: test image {first}, as in the data set")


if __name__ == "__main__":
    main()
