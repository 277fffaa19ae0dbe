"""Stage `evaluate`: both models on the 10,000 test images.

Writes accuracy and macro-F1 of each model, scikit-learn's
classification_report (JSON and text), the confusion matrix, one
(actual, predicted) row per test image for DVC's confusion plot, and PNG
figures (stages/figures.py): each model's confusion matrix and first
misclassified test images, both training curves, and each class's weights
as an image.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

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
LABELS = list(range(N_CLASSES))


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


def evaluate(true_labels, predicted):
    """(n,) true and predicted class ids -> summary, report dict, report text, confusion matrix."""
    true_labels, predicted = np.asarray(true_labels), np.asarray(predicted)
    summary = {
        "accuracy": float(accuracy_score(true_labels, predicted)),
        "macro_f1": float(f1_score(true_labels, predicted, labels=LABELS, average="macro", zero_division=0)),
    }
    options = {"labels": LABELS, "target_names": CLASS_NAMES, "digits": 4, "zero_division": 0}
    report = classification_report(true_labels, predicted, output_dict=True, **options)
    report_text = classification_report(true_labels, predicted, **options)
    matrix = confusion_matrix(true_labels, predicted, labels=LABELS)
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


def class_weights(scratch_model, nn_model):
    """{model name: (10, 784) weights}: the weight rows without the intercept (the scratch model's column 0)."""
    return {"scratch": scratch_model["Theta"][:, 1:], "nn": nn_model["weight"]}


def draw_figures(out_dir, images, labels, predictions, matrices, nn_history, scratch_loss, weights):
    """Write every figure into the folder `out_dir` as PNG (see stages/figures.py for each).

    `weights`: {model name: (10, 784) weights without the intercept}, as class_weights gives them.
    """
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
    figures.save_png(figures.weights_figure(weights, CLASS_NAMES), out_dir / "weights.png")


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
        draw_figures(figures_dir, images, labels, predictions, matrices, nn_history, scratch_loss,
                     class_weights(scratch_model, nn_model))
    print(f"figures: {', '.join(sorted(p.name for p in Path(args.figures).iterdir()))}")


if __name__ == "__main__":
    main()
