"""Stage `evaluate`: both models on the 10,000 test images.

Writes each model's accuracy and macro-F1, scikit-learn's
classification_report (JSON and text), the confusion matrix, one
(actual, predicted) row per test image for DVC's confusion plot, and the
PNG figures of fmnist/figures.py.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from fmnist import figures, models
from fmnist.data import CLASS_NAMES, N_CLASSES, load_split_arrays
from fmnist.errors import one_line_errors
from fmnist.files import atomic_dir, write_csv, write_json, write_text

LABELS = list(range(N_CLASSES))


def evaluate(true_labels, predicted):
    """(n,) true and predicted class ids -> summary, report dict, report text, confusion matrix."""
    summary = {
        "accuracy": float(accuracy_score(true_labels, predicted)),
        "macro_f1": float(f1_score(true_labels, predicted, labels=LABELS, average="macro", zero_division=0)),
    }
    options = {"labels": LABELS, "target_names": CLASS_NAMES, "digits": 4, "zero_division": 0}
    report = classification_report(true_labels, predicted, output_dict=True, **options)
    report_text = classification_report(true_labels, predicted, **options)
    return summary, report, report_text, confusion_matrix(true_labels, predicted, labels=LABELS)


def confusion_table(matrix):
    """(10, 10) counts, rows = actual class, columns = predicted -> DataFrame: `actual`, then one column per class."""
    table = pd.DataFrame(matrix, columns=CLASS_NAMES)
    table.insert(0, "actual", CLASS_NAMES)
    return table


def predictions_table(true_labels, predicted):
    """One row per test image, class names in columns `actual` and `predicted`: what DVC's confusion plot counts."""
    names = np.array(CLASS_NAMES)
    return pd.DataFrame({"actual": names[true_labels], "predicted": names[predicted]})


def draw_figures(out_dir, images, labels, predictions, matrices, nn_history, scratch_loss, weights):
    """Write every figure into the folder `out_dir` as PNG; `weights`: {model name: (10, 784) weights}."""
    out_dir = Path(out_dir)
    for name, predicted in predictions.items():
        figures.save_png(figures.confusion_figure(matrices[name], CLASS_NAMES, f"{name}: confusion matrix (test set)"),
                         out_dir / f"confusion_{name}.png")
        figures.save_png(figures.misclassified_figure(images, labels, predicted, CLASS_NAMES,
                                                      f"{name}: first misclassified test images"),
                         out_dir / f"misclassified_{name}.png")
    figures.save_png(figures.nn_history_figure(nn_history), out_dir / "train_nn_history.png")
    figures.save_png(figures.scratch_loss_figure(scratch_loss["iteration"], scratch_loss["loss"]),
                     out_dir / "train_scratch_loss.png")
    figures.save_png(figures.weights_figure(weights, CLASS_NAMES), out_dir / "weights.png")


@one_line_errors
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
    trained = {"scratch": models.load_model("scratch", args.scratch_model),
               "nn": models.load_model("nn", args.nn_model)}
    predictions = {name: models.predict(name, model, images) for name, model in trained.items()}

    out = Path(args.out)
    summaries, matrices = {}, {}
    for name, predicted in predictions.items():
        summary, report, report_text, matrices[name] = evaluate(labels, predicted)
        summaries[name] = summary
        write_json(out / f"report_{name}.json", report)
        write_text(out / f"report_{name}.txt", report_text)
        write_csv(out / f"confusion_{name}.csv", confusion_table(matrices[name]))
        write_csv(out / f"predictions_{name}.csv", predictions_table(labels, predicted))
        print(f"{name}: test accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f}")
    write_json(out / "evaluate.json", summaries)

    weights = {name: models.weights_and_bias(name, model)[0] for name, model in trained.items()}
    # The figures folder appears whole, with every PNG in it, or not at all.
    with atomic_dir(args.figures) as figures_dir:
        draw_figures(figures_dir, images, labels, predictions, matrices, nn_history, scratch_loss, weights)


if __name__ == "__main__":
    main()
