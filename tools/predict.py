"""Classify your own images with the trained models: top three classes per model, as text, JSON or a figure.

Each image is prepared as Fashion-MNIST's images were made: grayscale, the
object cropped and centred on a square canvas that keeps its aspect ratio,
resized to 28 x 28 with antialiasing, light object on black, and scaled as
`flatten.load_split_arrays` scales pixels (uint8 / 255 in float32). A
28 x 28 image is taken as it is (inverted when its background is light), so
an image of the data set itself gets exactly the class `evaluate` gave it.

The models are the artifacts that dvc.yaml declares, read from the
workspace, or with --rev from any commit, branch, tag or experiment through
`dvc.api` (the workspace is left untouched; files come from the local DVC
cache, or from the DVC remote when the cache lacks them).
"""

import argparse
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from fmnist.data import CLASS_NAMES
from fmnist.errors import UserError, one_line_errors
from fmnist.data import IMAGE_SIDE, N_FEATURES

N_CLASSES = len(CLASS_NAMES)
MODEL_NAMES = ("nn", "scratch")
# The arrays each model file must hold, as stages/evaluate.py checks them.
MODEL_SHAPES = {
    "nn": {"weight": (N_CLASSES, N_FEATURES), "bias": (N_CLASSES,)},
    "scratch": {"Theta": (N_CLASSES, N_FEATURES + 1)},
}
TOP_K = 3
# Fashion-MNIST trimmed each photo's edges that were within 5% of the
# background colour; the same tolerance decides what is object here.
OBJECT_THRESHOLD = round(0.05 * 255)


class ImageError(Exception):
    """One input image cannot be used; the message names the file and the problem."""


# ---------------------------------------------------------------- models


def artifact_paths(dvc_yaml):
    """{model name: path} of the models that dvc.yaml's `artifacts:` section declares."""
    import yaml

    dvc_yaml = Path(dvc_yaml)
    try:
        declared = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{dvc_yaml} not found: run this from the project's root folder") from None
    artifacts = declared.get("artifacts") or {}
    missing = [name for name in MODEL_NAMES if "path" not in (artifacts.get(name) or {})]
    if missing:
        raise UserError(f"{dvc_yaml} declares no artifact {', '.join(missing)} with a `path` under `artifacts:`")
    return {name: artifacts[name]["path"] for name in MODEL_NAMES}


def read_model_bytes(path, rev=None):
    """The bytes of the model file `path`: from the workspace, or as revision `rev` holds it (via dvc.api)."""
    if rev is None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            raise UserError(f"model file {path} does not exist; run `dvc repro` (or `dvc pull`), "
                             "or pass --rev to read it from a commit or experiment") from None
        except OSError as error:
            raise UserError(f"model file {path} cannot be read ({error.strerror or error})") from None
    # dvc.api costs a quarter of a second to import: only when a revision is asked for.
    import dvc.api
    from dvc.exceptions import DvcException, PathMissingError
    from dvc.scm import RevError

    try:
        return dvc.api.read(path, rev=rev, mode="rb")
    except RevError as error:
        if "ambiguous" in str(error):
            raise UserError(f"--rev {rev!r} names more than one experiment; give its commit instead "
                             "(`dvc exp show` lists them)") from None
        raise UserError(f"--rev {rev!r}: no such commit, branch, tag or experiment in this repository") from None
    except (PathMissingError, FileNotFoundError):
        raise UserError(f"--rev {rev!r} has no trained model {path}: neither its dvc.lock nor git records it, "
                         "or neither the DVC cache nor the remote holds it") from None
    except DvcException as error:
        problem = " ".join(str(error).split())
        raise UserError(f"--rev {rev!r}: cannot read {path} ({problem})") from None


def parse_model(data, expected_shapes, source):
    """{name: float32 array} from safetensors bytes, each with the shape `expected_shapes` names."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        arrays = load(data)
    except SafetensorError as error:
        problem = " ".join(str(error).split())
        raise UserError(f"{source} is not a safetensors model file ({problem})") from None
    shapes = {name: tuple(arrays[name].shape) for name in expected_shapes if name in arrays}
    if shapes != expected_shapes:
        wanted = ", ".join(f"{name} {shape}" for name, shape in expected_shapes.items())
        raise UserError(f"{source} does not hold {wanted}")
    return {name: arrays[name].astype(np.float32, copy=False) for name in expected_shapes}


def load_models(names, paths, rev=None):
    """{model name: its arrays} for each of `names`, from the workspace or from revision `rev`."""
    models = {}
    for name in names:
        source = paths[name] if rev is None else f"{paths[name]} at --rev {rev!r}"
        models[name] = parse_model(read_model_bytes(paths[name], rev), MODEL_SHAPES[name], source)
    return models


def logits(name, model, pixels):
    """(N, 784) float32 pixels -> (N, 10) float32 logits, the same products as stages/evaluate.py."""
    if name == "nn":
        return pixels @ model["weight"].T + model["bias"]
    Theta = model["Theta"]
    return pixels @ Theta[:, 1:].T + Theta[:, 0]


def softmax(scores):
    """(N, 10) logits -> (N, 10) probabilities in float64, each row summing to 1 (shifted by its max)."""
    scores = np.asarray(scores, dtype=np.float64)
    exponentials = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def top_classes(probabilities, k=TOP_K):
    """(10,) probabilities -> the k most probable as [(class name, probability)], most probable first."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")[:k]
    return [(CLASS_NAMES[i], float(probabilities[i])) for i in order]


# ---------------------------------------------------------------- images


def read_image(path):
    """Decode the image file `path` fully; raises ImageError with a one-line reason when it cannot."""
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes), not an image")
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; such an
        # image is refused here too, before its pixels are decoded.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                image.load()
                return image.copy()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            counted = re.search(r"(\d+) pixels", str(error))
            size = f"{int(counted.group(1)):,} pixels" if counted else "its size"
            raise ImageError(f"{path}: too large to decode safely ({size}; Pillow's limit, "
                             f"Image.MAX_IMAGE_PIXELS, is {Image.MAX_IMAGE_PIXELS:,})") from None
        except PermissionError:
            raise ImageError(f"{path}: cannot be read (permission denied)") from None
        except Image.UnidentifiedImageError:
            raise ImageError(f"{path}: not an image file that Pillow can read (PNG, JPEG, GIF, BMP, TIFF, WebP, "
                             "...)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            problem = " ".join(str(error).split()) or type(error).__name__
            raise ImageError(f"{path}: damaged or truncated image ({problem})") from None


def grayscale(image):
    """A Pillow image of any mode -> (H, W) uint8 gray levels, 0 black, 255 white.

    Transparent parts count as white paper (a cut-out product photo); 16-bit
    images are scaled down, not clipped at 255 as Pillow's convert("L") does.
    """
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)  # a phone photo, the right way up
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        levels = np.asarray(image, dtype=np.float64)
        if levels.max() > 255:
            levels = levels / 257
        return np.clip(np.rint(levels), 0, 255).astype(np.uint8)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def border_pixels(gray):
    """(H, W) gray levels -> (2H + 2W - 4,) the pixels of the outermost rows and columns."""
    if min(gray.shape) < 3:
        return gray.ravel()
    return np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


def has_light_background(gray):
    """Whether the border's mean gray level is above mid-gray.

    Across all 70,000 Fashion-MNIST images the border's mean is at most 108,
    so no image of the data set is ever taken for a light one, and every
    inverted one is (at least 147).
    """
    return float(border_pixels(gray).mean()) > 127.5


def prepare_pixels(gray):
    """(H, W) uint8 gray levels -> (28, 28) uint8: light object on black, centred, as in Fashion-MNIST.

    A 28 x 28 image is only inverted when its background is light: it is
    already at the data set's size and framing, and is not cropped again.
    Anything else is inverted when light, its background level shifted to 0,
    cropped to the object, centred on a black square, and resized to 28 x 28.
    """
    gray = np.asarray(gray, dtype=np.uint8)
    if has_light_background(gray):
        gray = 255 - gray
    if gray.shape == (IMAGE_SIDE, IMAGE_SIDE):
        return gray
    return resize_to_side(centre_on_square(crop_to_object(remove_background(gray))))


def remove_background(gray):
    """(H, W) uint8, dark background -> the same with the border's median level at 0, white kept at 255."""
    background = float(np.median(border_pixels(gray)))
    if background <= 0 or background >= 255:
        return gray
    stretched = (gray.astype(np.float64) - background) * (255 / (255 - background))
    return np.clip(np.rint(stretched), 0, 255).astype(np.uint8)


def crop_to_object(gray):
    """(H, W) uint8 on black -> the smallest rectangle holding the object's pixels (above OBJECT_THRESHOLD).

    The object is looked for in a 3 x 3 median-filtered copy: a camera's
    noise on the paper leaves isolated pixels above the threshold that would
    otherwise stretch the rectangle to the whole picture.
    """
    from PIL import Image, ImageFilter

    smoothed = np.asarray(Image.fromarray(gray, mode="L").filter(ImageFilter.MedianFilter(3)))
    found = smoothed > OBJECT_THRESHOLD
    rows = np.flatnonzero(found.any(axis=1))
    columns = np.flatnonzero(found.any(axis=0))
    if rows.size == 0:  # nothing stands out: keep the whole picture
        return gray
    return gray[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def centre_on_square(gray):
    """(H, W) uint8 -> (S, S) black square, S = max(H, W), with the image in its centre."""
    height, width = gray.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = gray
    return square


def resize_to_side(square, side=IMAGE_SIDE):
    """(S, S) uint8 -> (side, side) uint8 with Lanczos resampling (antialiased when shrinking)."""
    from PIL import Image

    resized = Image.fromarray(square, mode="L").resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def scale_pixels(prepared):
    """(..., 28, 28) uint8 -> (..., 784) float32 in [0, 1]: uint8 / 255, as flatten.load_split_arrays does."""
    prepared = np.asarray(prepared, dtype=np.uint8)
    pixels = prepared.reshape(*prepared.shape[:-2], N_FEATURES).astype(np.float32)
    pixels /= np.float32(255)
    return pixels


# ---------------------------------------------------------------- output


def predictions(models, pixels):
    """{model name: (N, 10) float64 probabilities} for (N, 784) float32 pixels."""
    return {name: softmax(logits(name, model, pixels)) for name, model in models.items()}


def result_record(image, probabilities_by_model, index):
    """One line of --json output for image number `index`: {"image", then per model its top three}."""
    record = {"image": str(image)}
    for name, probabilities in probabilities_by_model.items():
        record[name] = [{"class": cls, "probability": p} for cls, p in top_classes(probabilities[index])]
    return record


def format_text(record):
    """A result record -> the image's path, then one line per model: its three classes in percent."""
    lines = [record["image"]]
    width = max(len(name) for name in MODEL_NAMES)
    for name in MODEL_NAMES:
        if name in record:
            best = ", ".join(f"{entry['class']} {100 * entry['probability']:.1f}%" for entry in record[name])
            lines.append(f"  {name:<{width}}  {best}")
    return "\n".join(lines)


def prediction_figure(images, prepared, probabilities_by_model):
    """Per image a row: the (28, 28) uint8 input the models see, then a bar chart of each model's 10 probabilities."""
    from matplotlib.figure import Figure

    names = list(probabilities_by_model)
    rows, columns = len(images), 1 + len(names)
    figure = Figure(figsize=(2.4 + 4.2 * len(names), 2.6 * rows + 0.2), dpi=100)
    grid = figure.subplots(rows, columns, squeeze=False,
                           gridspec_kw={"width_ratios": [0.55] + [1.0] * len(names)})
    ticks = np.arange(N_CLASSES)
    for row, (image, pixels) in enumerate(zip(images, prepared, strict=True)):
        picture = grid[row, 0]
        picture.imshow(pixels, cmap="gray", vmin=0, vmax=255)
        picture.set_xticks([])
        picture.set_yticks([])
        picture.set_title(Path(image).name, fontsize=9)
        picture.set_xlabel("28 x 28 input", fontsize=8)
        for column, name in enumerate(names, start=1):
            probabilities = probabilities_by_model[name][row]
            best = int(np.argmax(probabilities))
            colors = ["tab:orange" if i == best else "tab:blue" for i in range(N_CLASSES)]
            bars = grid[row, column]
            bars.barh(ticks, probabilities, color=colors)
            bars.set_yticks(ticks, CLASS_NAMES, fontsize=8)
            bars.invert_yaxis()
            bars.set_xlim(0, 1)
            bars.tick_params(axis="x", labelsize=8)
            bars.grid(axis="x", alpha=0.3)
            bars.set_title(f"{name}: {CLASS_NAMES[best]} {100 * probabilities[best]:.1f}%", fontsize=9)
    figure.subplots_adjust(left=0.04, right=0.98, bottom=0.6 / figure.get_figheight(),
                           top=1 - 0.35 / figure.get_figheight(), wspace=0.55, hspace=0.45)
    return figure


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, or any Pillow reads)")
    parser.add_argument("--rev", help="commit, branch, tag or experiment whose models to use (default: workspace)")
    parser.add_argument("--model", choices=("nn", "scratch", "both"), default="both", help="default: both")
    parser.add_argument("--json", action="store_true", help="one JSON object per image and line")
    parser.add_argument("--figure", metavar="OUT.png", help="draw inputs and probabilities into this PNG")
    parser.add_argument("--dvc-yaml", default="dvc.yaml", help="where the models are declared (its `artifacts:`)")
    args = parser.parse_args(argv)

    names = MODEL_NAMES if args.model == "both" else (args.model,)
    models = load_models(names, artifact_paths(args.dvc_yaml), args.rev)

    good_images, prepared, failures = [], [], {}
    for image in args.images:
        try:
            prepared.append(prepare_pixels(grayscale(read_image(image))))
            good_images.append(image)
        except ImageError as error:
            failures[image] = str(error)
        except (OSError, ValueError) as error:  # decoded, yet its pixels or EXIF cannot be converted
            failures[image] = f"{image}: cannot be converted to grayscale ({' '.join(str(error).split())})"
    probabilities = predictions(models, scale_pixels(np.stack(prepared))) if prepared else {}

    # Results in the order the images were given, a failed one in its place.
    position = {image: index for index, image in enumerate(good_images)}
    for image in args.images:
        if image in failures:
            if args.json:
                print(json.dumps({"image": image, "error": failures[image]}), flush=True)
            else:
                print(f"error: {failures[image]}", file=sys.stderr, flush=True)
            continue
        record = result_record(image, probabilities, position[image])
        print(json.dumps(record) if args.json else format_text(record), flush=True)

    if args.figure and not prepared:
        print(f"no figure written to {args.figure}: none of the images could be read", file=sys.stderr)
    elif args.figure:
        from fmnist import figures

        try:
            figures.save_png(prediction_figure(good_images, prepared, probabilities), args.figure)
        except OSError as error:
            raise UserError(f"--figure {args.figure}: cannot be written ({error.strerror or error})") from None
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
