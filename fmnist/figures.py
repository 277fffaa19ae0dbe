"""The evaluate stage's figures as PNG: pure functions from data to matplotlib Figures.

Figures are built with matplotlib's object API (a Figure drawn by the Agg
canvas, no pyplot), so nothing depends on a global backend or on figures
left open. `png_bytes` leaves out the "Software" tag and writes no date, so
the same data gives the same bytes on every rerun: git and `dvc status`
see no change when nothing changed. Each figure takes `words`, a dict that
translates the English it draws (PORTUGUESE: the notebook's figures); the
title is an argument of its own. matplotlib is imported by the first
figure drawn, not with this module: the evaluate stage writes its metrics
first.
"""

import functools
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fmnist.errors import UserError
from fmnist.files import atomic_path

DPI = 100
IMAGE_SIDE = 28
# Every word a figure draws besides its title, in Portuguese: what the course's
# notebook passes as `words`. A figure drawn without `words` is in English.
PORTUGUESE = {
    "predicted": "classe prevista", "actual": "classe verdadeira",
    "epoch": "época", "iteration": "iteração", "cross-entropy": "entropia cruzada",
    "training loss": "perda de treino", "train loss": "perda de treino", "accuracy": "acurácia",
    "train accuracy": "acurácia de treino", "test accuracy": "acurácia de teste",
    "true": "real", "pred": "prevista", "no misclassified images": "nenhuma imagem errada",
    "T-shirt/top": "camiseta/top", "Trouser": "calça", "Pullover": "pulôver", "Dress": "vestido",
    "Coat": "casaco", "Sandal": "sandália", "Shirt": "camisa", "Sneaker": "tênis", "Bag": "bolsa",
    "Ankle boot": "bota",
}


def read_csv_columns(path):
    """A CSV with a header row of names and rows of numbers (nan and inf too) -> DataFrame of float columns."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # A row longer than the header: pandas warns and drops the extra values.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # Only "nan" is a missing number (a diverged run's loss): an empty field is an error.
            table = pd.read_csv(path, index_col=False, keep_default_na=False, na_values=["nan"])
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; run the stage that writes it") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, pd.errors.ParserWarning) as error:
        raise UserError(f"{path}: not a table with a header row ({' '.join(str(error).split())})") from None
    if table.empty:
        raise UserError(f"{path}: expected a header row and at least one row of numbers")
    numbers = table.apply(pd.to_numeric, errors="coerce")
    for column in table.columns:
        bad = numbers[column].isna() & table[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise UserError(f"{path}: not a table of numbers (row {row + 1}, column '{column}': "
                             f"{table[column].iloc[row]!r})")
    return numbers.astype(float)


def translate(words, text):
    """`text` in the language of `words` (a dict from English, such as PORTUGUESE); English when None."""
    return (words or {}).get(text, text)


def new_figure(**options):
    """matplotlib's Figure(**options); matplotlib loads with the first figure drawn."""
    from matplotlib.figure import Figure

    return Figure(**options)


def confusion_figure(matrix, class_names, title, words=None):
    """(c, c) counts, rows = actual class, columns = predicted class -> annotated heat map."""
    matrix = np.asarray(matrix)
    class_names = [translate(words, name) for name in class_names]
    figure = new_figure(figsize=(7.5, 6.5), dpi=DPI)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel(translate(words, "predicted"))
    axes.set_ylabel(translate(words, "actual"))
    axes.set_title(title)
    # Dark cells get white digits, so every count stays readable.
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)
    figure.subplots_adjust(left=0.15, right=0.9, bottom=0.2, top=0.94)
    return figure


def nn_history_figure(history, title="train_nn: per epoch", words=None):
    """Columns epoch, train_loss, train_accuracy, test_accuracy of (e,) values -> loss and accuracy panels."""
    say = functools.partial(translate, words)
    figure = new_figure(figsize=(10, 4), dpi=DPI)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = history["epoch"]
    loss_axes.plot(epochs, history["train_loss"], marker="o", label=say("train loss"))
    loss_axes.set_xlabel(say("epoch"))
    loss_axes.set_ylabel(say("cross-entropy"))
    loss_axes.set_title(say("training loss"))
    accuracy_axes.plot(epochs, history["train_accuracy"], marker="o", label=say("train accuracy"))
    accuracy_axes.plot(epochs, history["test_accuracy"], marker="s", label=say("test accuracy"))
    accuracy_axes.set_xlabel(say("epoch"))
    accuracy_axes.set_ylabel(say("accuracy"))
    accuracy_axes.set_title(say("accuracy"))
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.84, wspace=0.25)
    return figure


def scratch_loss_figure(iterations, losses, title="train_scratch: loss per iteration", words=None):
    """(n,) iteration numbers and (n,) losses -> the gradient-descent loss curve."""
    figure = new_figure(figsize=(6, 4), dpi=DPI)
    axes = figure.add_subplot()
    axes.plot(iterations, losses)
    axes.set_xlabel(translate(words, "iteration"))
    axes.set_ylabel(translate(words, "cross-entropy"))
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.subplots_adjust(left=0.14, right=0.96, bottom=0.13, top=0.9)
    return figure


def misclassified_indices(true_labels, predicted, count):
    """Indices of the first `count` rows where `predicted` differs from `true_labels`."""
    wrong = np.flatnonzero(np.asarray(true_labels) != np.asarray(predicted))
    return wrong[:count]


def misclassified_figure(images, true_labels, predicted, class_names, title, count=18, columns=6, words=None):
    """(N, 784) pixels in [0, 1], (N,) true and predicted ids -> grid of the first `count` mistakes.

    Each image is captioned with its true and its predicted class; a model
    without mistakes gets a figure that says so.
    """
    images = np.asarray(images)
    chosen = misclassified_indices(true_labels, predicted, count)
    rows = max(1, -(-len(chosen) // columns))
    figure = new_figure(figsize=(1.7 * columns, 2.1 * rows + 0.9), dpi=DPI)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, index in zip(grid.flat, chosen, strict=False):  # the grid may have spare cells
        axes.imshow(images[index].reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray_r", vmin=0, vmax=1)
        truth, guess = (translate(words, class_names[int(i)]) for i in (true_labels[index], predicted[index]))
        axes.set_title(f"#{index}\n{translate(words, 'true')}: {truth}\n{translate(words, 'pred')}: {guess}",
                       fontsize=7)
    if len(chosen) == 0:
        grid[0, 0].text(0, 0.5, translate(words, "no misclassified images"), fontsize=10)
    figure.suptitle(title)
    # Fixed margins: tight_layout measured every caption and cost 0.4 s a figure.
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.95 / figure.get_figheight(),
                           hspace=0.6, wspace=0.1)
    return figure


def weights_figure(weights, class_names, title="what each model learned: one weight image per class", words=None):
    """{model name: (c, 784) weights, the intercept left out} -> one row of c 28 x 28 images per model.

    Pixel (i, j) of class k's image is the weight that pixel gets in class
    k's logit: red where a bright pixel raises the class's score, blue where
    it lowers it, white at zero. Each model has its own colour scale,
    symmetric about zero, that ends at the 99th percentile of its weights'
    sizes (WEIGHT_PERCENTILE): a few large weights at the border would
    otherwise wash out the rest.
    """
    rows, columns = len(weights), len(class_names)
    figure = new_figure(figsize=(1.3 * columns + 0.9, 1.55 * rows + 0.7), dpi=DPI)
    grid = figure.subplots(rows, columns, squeeze=False)
    figure.suptitle(title)
    figure.subplots_adjust(left=0.03, right=0.92, bottom=0.02, top=1 - 0.6 / figure.get_figheight(),
                           hspace=0.35, wspace=0.08)
    for row, (model, matrix) in zip(grid, weights.items(), strict=True):
        matrix = np.asarray(matrix, dtype=float)
        if matrix.shape != (columns, IMAGE_SIDE * IMAGE_SIDE):
            raise ValueError(f"{model}: weights of shape {matrix.shape}, expected ({columns}, {IMAGE_SIDE ** 2})")
        limit = weight_limit(matrix)
        for axes, name, weight_row in zip(row, class_names, matrix, strict=True):
            image = axes.imshow(weight_row.reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="RdBu_r", vmin=-limit, vmax=limit)
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(translate(words, name), fontsize=8)
        row[0].set_ylabel(model, fontsize=10)
        last = row[-1].get_position()
        figure.colorbar(image, cax=figure.add_axes((last.x1 + 0.01, last.y0, 0.008, last.height)))
    return figure


WEIGHT_PERCENTILE = 99


def weight_limit(matrix):
    """Where a weight image's colour scale ends: the WEIGHT_PERCENTILE-th percentile of |weights| (1 if all are 0)."""
    return float(np.percentile(np.abs(matrix), WEIGHT_PERCENTILE)) or 1.0


def png_bytes(figure):
    """Render `figure` as PNG bytes that depend only on what it shows (no software tag, no date)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def save_png(figure, path):
    """Write `figure` to `path` whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(png_bytes(figure))
