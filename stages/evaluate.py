"""Stage `evaluate`: both models on the 10,000 test images.

Writes accuracy and macro-F1 of each model, scikit-learn's
classification_report (JSON and text), the confusion matrix, one
(actual, predicted) row per test image for DVC's confusion plot, and PNG
figures (stages/figures.py): each model's confusion matrix and first
misclassified test images, and both training curves.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from stages import figures
from stages.common import (
    CLASS_NAMES,
    StageError,
    atomic_dir,
    load_tensors,
    stage_main,
    write_csv,
    write_json,
    write_text,
)
from stages.flatten import N_FEATURES, load_split_arrays

N_CLASSES = len(CLASS_NAMES)


# Predictions in numpy: the same products as softmax.predict and nn.Linear,
# without loading torch (a second of every rerun after a training change).


def predict_scratch(Theta, images):
    """(10, 785) Theta with the intercept in column 0, (N, 784) images -> (N,) classes."""
    return np.argmax(images @ Theta[:, 1:].T + Theta[:, 0], axis=1)


def predict_nn(weights, images):
    """nn.Linear(784, 10)'s weight and bias, (N, 784) images -> (N,) classes: argmax of x W^T + b."""
    return np.argmax(images @ weights["weight"].T + weights["bias"], axis=1)


def load_model(path, expected_shapes, stage):
    """{name: array} from a safetensors file, each with the shape `expected_shapes` names."""
    arrays = load_tensors(path, as_numpy=True)
    shapes = {name: tuple(arrays[name].shape) for name in expected_shapes if name in arrays}
    if shapes != expected_shapes:
        wanted = ", ".join(f"{name} {shape}" for name, shape in expected_shapes.items())
        raise StageError(f"{path} does not hold {wanted}; rerun `dvc repro {stage}`")
    return arrays


def confusion_matrix(true_labels, predicted):
    """(n,) true and predicted class ids -> (10, 10) counts, rows = actual class, columns = predicted."""
    pairs = np.asarray(true_labels, dtype=np.int64) * N_CLASSES + np.asarray(predicted, dtype=np.int64)
    return np.bincount(pairs, minlength=N_CLASSES * N_CLASSES).reshape(N_CLASSES, N_CLASSES)


def _ratio(numerator, denominator):
    """numerator / denominator per class, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    return numerator / np.where(denominator == 0, 1, denominator)


def class_scores(matrix):
    """(10, 10) confusion counts -> per-class precision, recall, F1 (float64) and support (int).

    precision = tp / predicted, recall = tp / actual, F1 = 2 tp / (actual +
    predicted); a class never predicted (or never present) scores 0, as
    scikit-learn's zero_division=0 gives.
    """
    tp = np.diag(matrix)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    return _ratio(tp, predicted), _ratio(tp, actual), _ratio(2 * tp, actual + predicted), actual


def classification_report(matrix, digits=4):
    """scikit-learn's classification_report of the (10, 10) counts: (dict, text), the same numbers and layout.

    Computed here from the confusion matrix: importing scikit-learn took a
    second of every run of this stage. tests/test_evaluate.py checks both
    forms against scikit-learn's, byte for byte (the dict's supports are
    floats, as scikit-learn gives them).
    """
    precision, recall, f1, support = class_scores(matrix)
    total = int(support.sum())
    accuracy = float(_ratio(np.trace(matrix), total))
    averages = {
        "macro avg": [float(np.mean(values)) for values in (precision, recall, f1)],
        "weighted avg": [float(np.average(values, weights=support)) if total else 0.0
                         for values in (precision, recall, f1)],
    }
    headers = ["precision", "recall", "f1-score", "support"]
    report = {name: dict(zip(headers, [float(p), float(r), float(f), float(s)], strict=True))
              for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support, strict=True)}
    report["accuracy"] = accuracy
    for name, scores in averages.items():
        report[name] = dict(zip(headers, [*scores, float(total)], strict=True))

    width = max(*(len(name) for name in CLASS_NAMES), len("weighted avg"), digits)
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = ("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width) + "\n\n"
    for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support, strict=True):
        text += row.format(name, p, r, f, s, width=width, digits=digits)
    text += "\n"
    text += ("{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
        "accuracy", "", "", accuracy, total, width=width, digits=digits)
    for name, scores in averages.items():
        text += row.format(name, *scores, total, width=width, digits=digits)
    return report, text


def evaluate(true_labels, predicted):
    """(n,) true and predicted class ids -> summary, report dict, report text, confusion matrix."""
    matrix = confusion_matrix(true_labels, predicted)
    report, report_text = classification_report(matrix)
    summary = {"accuracy": report["accuracy"], "macro_f1": report["macro avg"]["f1-score"]}
    return summary, report, report_text, matrix


def confusion_table(matrix):
    """(10, 10) counts, rows = actual class, columns = predicted -> DataFrame: `actual`, then one column per class."""
    table = pd.DataFrame(matrix, columns=CLASS_NAMES)
    table.insert(0, "actual", CLASS_NAMES)
    return table


def predictions_table(true_labels, predicted):
    """(n,) true and predicted class ids -> DataFrame of class names, columns `actual` and `predicted`.

    One row per test image, in the test set's order: what DVC's confusion template counts.
    """
    names = np.array(CLASS_NAMES)
    return pd.DataFrame({"actual": names[np.asarray(true_labels)], "predicted": names[np.asarray(predicted)]})


def draw_figures(out_dir, images, labels, predictions, matrices, nn_history, scratch_loss):
    """Write every figure into the folder `out_dir` as PNG (see stages/figures.py for each)."""
    out_dir = Path(out_dir)
    for name, predicted in predictions.items():
        figures.save_png(
            figures.confusion_figure(matrices[name], CLASS_NAMES, f"{name}: confusion matrix (test set)"),
            out_dir / f"confusion_{name}.png",
        )
        figures.save_png(
            figures.misclassified_figure(images, labels, predicted, CLASS_NAMES,
                                         f"{name}: first misclassified test images"),
            out_dir / f"misclassified_{name}.png",
        )
    figures.save_png(figures.nn_history_figure(nn_history), out_dir / "train_nn_history.png")
    figures.save_png(figures.scratch_loss_figure(scratch_loss["iteration"], scratch_loss["loss"]),
                     out_dir / "train_scratch_loss.png")


@stage_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder written by the flatten stage")
    parser.add_argument("--scratch-model", required=True)
    parser.add_argument("--nn-model", required=True)
    parser.add_argument("--nn-history", required=True, help="train_nn's per-epoch CSV")
    parser.add_argument("--scratch-loss", required=True, help="train_scratch's loss-per-iteration CSV")
    parser.add_argument("--out", required=True, help="folder for metrics, reports and confusion data")
    parser.add_argument("--figures", required=True, help="folder for the PNG figures")
    args = parser.parse_args(argv)

    images, labels = load_split_arrays(args.data, "test")
    nn_history = figures.read_csv_columns(args.nn_history)
    scratch_loss = figures.read_csv_columns(args.scratch_loss)
    scratch_model = load_model(args.scratch_model, {"Theta": (N_CLASSES, N_FEATURES + 1)}, "train_scratch")
    nn_model = load_model(args.nn_model, {"weight": (N_CLASSES, N_FEATURES), "bias": (N_CLASSES,)}, "train_nn")
    predictions = {
        "scratch": predict_scratch(scratch_model["Theta"], images),
        "nn": predict_nn(nn_model, images),
    }

    out = Path(args.out)
    summaries, matrices = {}, {}
    for name, predicted in predictions.items():
        summary, report, report_text, matrix = evaluate(labels, predicted)
        summaries[name], matrices[name] = summary, matrix
        write_json(out / f"report_{name}.json", report)
        write_text(out / f"report_{name}.txt", report_text)
        write_csv(out / f"confusion_{name}.csv", confusion_table(matrix))
        write_csv(out / f"predictions_{name}.csv", predictions_table(labels, predicted))
        print(f"{name}: test accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f}")
    write_json(out / "evaluate.json", summaries)

    # The figures folder appears whole, with every PNG in it, or not at all.
    with atomic_dir(args.figures) as figures_dir:
        draw_figures(figures_dir, images, labels, predictions, matrices, nn_history, scratch_loss)
    print(f"figures: {', '.join(sorted(p.name for p in Path(args.figures).iterdir()))}")


if __name__ == "__main__":
    main()
