"""docs/predict.md's examples: `python -m reports.predict.make_examples`, after `dvc repro` or `dvc pull`.

Each chosen test image becomes a 'photo': dark on light gray paper, 8 times
larger, off-centre, with a camera's noise, saved as JPEG; the sneaker is
also saved as the data set holds it (28 x 28 PNG). Then predict classifies
the four with the workspace's models: example.txt and example.png.
"""

import contextlib

import numpy as np
from PIL import Image

from fmnist.data import read_idx
from tools import predict

EXAMPLES = {9: "sneaker", 18: "bag", 13: "dress"}  # test-set index -> file name
PAPER, NOISE = 232, 3.0  # the paper's gray level; the noise's standard deviation, in gray levels


def as_photo(image, rng, left=90, top=40, right=30, bottom=120):
    """(28, 28) uint8, light on black -> a Pillow image: dark on light paper, 8 times larger, off-centre, noisy."""
    dark_on_light = (PAPER * (1 - image / 255.0)).astype(np.uint8)
    upscaled = np.asarray(Image.fromarray(dark_on_light).resize((224, 224), Image.Resampling.BICUBIC))
    sheet = np.full((224 + top + bottom, 224 + left + right), float(PAPER))
    sheet[top:top + 224, left:left + 224] = upscaled
    sheet += rng.normal(0, NOISE, sheet.shape)
    return Image.fromarray(np.clip(np.rint(sheet), 0, 255).astype(np.uint8)).convert("RGB")


if __name__ == "__main__":
    images = read_idx("data/fashion-mnist/t10k-images-idx3-ubyte.gz").reshape(-1, 28, 28)
    rng = np.random.default_rng(0)
    for index, name in EXAMPLES.items():
        as_photo(images[index], rng).save(f"reports/predict/{name}.jpg", quality=90)
    Image.fromarray(images[9]).save("reports/predict/test-9.png")
    inputs = [f"reports/predict/{name}" for name in ("sneaker.jpg", "bag.jpg", "dress.jpg", "test-9.png")]
    with open("reports/predict/example.txt", "w", encoding="utf-8") as out, contextlib.redirect_stdout(out):
        predict.main([*inputs, "--figure", "reports/predict/example.png"])
