"""Classify your own images with the trained models: top three classes per model, as text, JSON or a figure.

Images are prepared as Fashion-MNIST's were (light object on black, cropped, centred, 28 x 28); one already
28 x 28 is at most inverted, so an image of the data set gets exactly the class `evaluate` gave it. The models
are dvc.yaml's artifacts, from the workspace or, with --rev, any commit, branch, tag or experiment (dvc.api).
"""

import argparse
import json
import sys
import warnings

import numpy as np
import yaml
from PIL import Image, ImageFilter, ImageOps

from fmnist import figures, models
from fmnist.data import CLASS_NAMES, IMAGE_SIDE, N_FEATURES
from fmnist.errors import UserError, one_line_errors


def load_models(names, rev=None):
    """{model name: its arrays}, from the paths under dvc.yaml's `artifacts:`, in the workspace or at `rev`."""
    try:
        with open("dvc.yaml", encoding="utf-8") as file:
            paths = {name: artifact["path"] for name, artifact in yaml.safe_load(file)["artifacts"].items()}
    except FileNotFoundError:
        raise UserError("no dvc.yaml here: run this from the project's root folder") from None
    if rev is None:
        return {name: models.load_model(name, paths[name]) for name in names}
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        return {name: models.load_model(name, dvc.api.read(paths[name], rev=rev, mode="rb")) for name in names}
    except (DvcException, FileNotFoundError) as error:
        raise UserError(f"--rev {rev!r}: {' '.join(str(error).split())} (give a commit, branch, tag or experiment, "
                        "as `dvc exp show` lists them, whose dvc.lock records the models)") from None


def read_gray(path):
    """An image file -> (H, W) uint8 gray levels (0 black), upright; transparent parts count as white paper."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refused before its pixels are decoded
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened)  # a phone photo, the right way up
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        problem = getattr(error, "strerror", None) or " ".join(str(error).split())
        raise UserError(f"{path}: not a readable image ({problem})") from None
    if image.mode.startswith("I") and np.asarray(image).max() > 255:  # 16 bits: scaled, not clipped by convert("L")
        image = Image.fromarray(np.rint(np.asarray(image) / 257).clip(0, 255).astype(np.uint8))
    if image.has_transparency_data:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return np.asarray(image.convert("L"))


def border(gray):
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])  # the outermost rows and columns


def prepare(gray):
    """(H, W) uint8 gray levels -> (28, 28) uint8 as Fashion-MNIST's: light object on black, centred."""
    if border(gray).mean() > 127.5:  # a light background: no image of the data set has one
        gray = 255 - gray
    if gray.shape == (IMAGE_SIDE, IMAGE_SIDE):
        return gray
    background = min(float(np.median(border(gray))), 254.0)  # the paper's level becomes 0, white stays 255
    gray = np.rint((gray - background).clip(0) * (255 / (255 - background))).astype(np.uint8)
    # The object: above 5% of white (as Fashion-MNIST trimmed edges within 5% of the background), looked for in a
    # median-filtered copy, so a camera's noise on the paper does not widen the crop.
    found = np.asarray(Image.fromarray(gray).filter(ImageFilter.MedianFilter(3))) > round(0.05 * 255)
    if found.any():
        rows, columns = np.flatnonzero(found.any(axis=1)), np.flatnonzero(found.any(axis=0))
        gray = gray[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    # Centred on a black square, so resizing keeps its aspect ratio.
    height, width = gray.shape
    square = np.zeros((max(height, width),) * 2, dtype=np.uint8)
    top, left = (len(square) - height) // 2, (len(square) - width) // 2
    square[top:top + height, left:left + width] = gray
    return np.asarray(Image.fromarray(square).resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS))


def probabilities(name, model, image):
    """(28, 28) uint8 image -> (10,) float64 softmax of the model's logits, its pixels scaled as evaluate's."""
    pixels = np.divide(image.reshape(1, N_FEATURES), np.float32(255), dtype=np.float32)
    scores = models.logits(name, model, pixels)[0].astype(np.float64)
    exponentials = np.exp(scores - scores.max())
    return exponentials / exponentials.sum()


def figure_of(rows):
    """[(path, (28, 28) image, {model: (10,) probabilities})] -> per image the input the models see, then bars."""
    n_models = len(rows[0][2])
    figure = figures.new_figure(figsize=(2.4 + 4.2 * n_models, 2.6 * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), 1 + n_models, squeeze=False,
                           gridspec_kw={"width_ratios": [0.55] + [1.0] * n_models})
    for axes, (path, image, shares) in zip(grid, rows, strict=True):
        axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
        axes[0].set(xticks=[], yticks=[], xlabel="28 x 28 input", title=path.rsplit("/", 1)[-1])
        for bars, (name, p) in zip(axes[1:], shares.items(), strict=True):
            best = int(np.argmax(p))
            bars.barh(CLASS_NAMES, p, color=["tab:orange" if i == best else "tab:blue" for i in range(len(p))])
            bars.set(xlim=(0, 1), title=f"{name}: {CLASS_NAMES[best]} {100 * p[best]:.1f}%")
            bars.invert_yaxis()
    return figure


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, or any Pillow reads)")
    parser.add_argument("--rev", help="commit, branch, tag or experiment whose models to use (default: workspace)")
    parser.add_argument("--model", choices=("nn", "scratch", "both"), default="both", help="default: both")
    parser.add_argument("--json", action="store_true", help="one JSON object per image and line")
    parser.add_argument("--figure", metavar="OUT.png", help="draw inputs and probabilities into this PNG")
    args = parser.parse_args(argv)
    if args.figure and not args.figure.endswith(".png"):
        raise UserError(f"--figure {args.figure!r}: give a file name that ends in .png")
    loaded = load_models(("nn", "scratch") if args.model == "both" else (args.model,), args.rev)

    drawn = []  # (path, image, {model: probabilities}) of each readable image
    for path in args.images:  # a bad image is one line in its place; the others are still predicted
        try:
            image = prepare(read_gray(path))
        except UserError as error:
            print(json.dumps({"image": path, "error": str(error)}) if args.json else f"error: {error}",
                  file=sys.stdout if args.json else sys.stderr, flush=True)
            continue
        shares = {name: probabilities(name, model, image) for name, model in loaded.items()}
        top = {name: [(CLASS_NAMES[i], float(p[i])) for i in np.argsort(-p, kind="stable")[:3]]
               for name, p in shares.items()}
        if args.json:
            print(json.dumps({"image": path} | {name: [{"class": c, "probability": p} for c, p in best]
                                                for name, best in top.items()}), flush=True)
        else:
            print(path, *(f"  {name:<7}  " + ", ".join(f"{c} {100 * p:.1f}%" for c, p in best)
                          for name, best in top.items()), sep="\n", flush=True)
        drawn.append((path, image, shares))
    if args.figure and drawn:
        try:
            figures.save_png(figure_of(drawn), args.figure)
        except OSError as error:
            raise UserError(f"--figure {args.figure}: cannot be written ({error.strerror or error})") from None
    if len(drawn) < len(args.images):
        sys.exit(2)


if __name__ == "__main__":
    main()
