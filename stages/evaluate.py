"""Stage `evaluate`: one model on the 10,000 test images (dvc.yaml runs it once per model).

Writes the model's accuracy and macro-F1, scikit-learn's classification
report (JSON and text), the confusion matrix, one (actual, predicted) row
per test image for DVC's confusion plot, and the model's PNG figures (fmnist/figures.py): its confusion
matrix, its first mistakes, its weights and its training curve.
"""

import argparse
from pathlib import Path

from sklearn.metrics import classification_report, confusion_matrix

from fmnist import figures, models
from fmnist.data import CLASS_NAMES, N_CLASSES, load_split_arrays
from fmnist.errors import one_line_errors
from fmnist.files import write_csv, write_json, write_text

MODELS = ("scratch", "nn")
LABELS = list(range(N_CLASSES))


def evaluate(true_labels, predicted):
    """(n,) true and predicted class ids -> summary, report dict, report text, confusion matrix."""
    options = {"labels": LABELS, "target_names": CLASS_NAMES, "digits": 4, "zero_division": 0}
    report = classification_report(true_labels, predicted, output_dict=True, **options)
    summary = {"accuracy": float(report["accuracy"]), "macro_f1": float(report["macro avg"]["f1-score"])}
    report_text = classification_report(true_labels, predicted, **options)
    return summary, report, report_text, confusion_matrix(true_labels, predicted, labels=LABELS)


def confusion_rows(matrix):
    """(10, 10) counts, rows = actual class, columns = predicted -> CSV rows: `actual`, then one column per class."""
    return [{"actual": actual, **dict(zip(CLASS_NAMES, map(int, counts), strict=True))}
            for actual, counts in zip(CLASS_NAMES, matrix, strict=True)]


def prediction_rows(true_labels, predicted):
    """One row per test image, class names in columns `actual` and `predicted`: what DVC's confusion plot counts."""
    return [{"actual": CLASS_NAMES[actual], "predicted": CLASS_NAMES[guess]}
            for actual, guess in zip(true_labels.tolist(), predicted.tolist(), strict=True)]


def curve_figure(name, curve):
    """The model's training curve: train_nn's accuracy and loss per epoch, or train_scratch's loss per iteration."""
    if name == "nn":
        return figures.nn_history_figure(curve)
    return figures.scratch_loss_figure(curve["iteration"], curve["loss"])


def draw_figures(out_dir, name, images, labels, predicted, matrix, curve, curve_png, weights):
    """Write the model's four figures into the folder `out_dir` as PNG; `weights`: its (10, 784) weights."""
    out_dir = Path(out_dir)
    figures.save_png(figures.confusion_figure(matrix, CLASS_NAMES, f"{name}: confusion matrix (test set)"),
                     out_dir / f"confusion_{name}.png")
    figures.save_png(figures.misclassified_figure(images, labels, predicted, CLASS_NAMES,
                                                  f"{name}: first misclassified test images"),
                     out_dir / f"misclassified_{name}.png")
    figures.save_png(figures.weights_figure({name: weights}, CLASS_NAMES,
                                            f"what {name} learned: one weight image per class"),
                     out_dir / f"weights_{name}.png")
    figures.save_png(curve_figure(name, curve), out_dir / curve_png)


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=MODELS, help="which model")
    parser.add_argument("--data", required=True, help="folder written by the flatten stage")
    parser.add_argument("--model", required=True, help="the model's safetensors file")
    parser.add_argument("--curve", required=True,
                        help="the trainer's CSV: train_nn's per-epoch history or train_scratch's loss per iteration")
    parser.add_argument("--out", required=True, help="folder for metrics, reports and confusion data")
    parser.add_argument("--figures", required=True, help="folder for the PNG figures")
    args = parser.parse_args(argv)
    name = args.name

    images, labels = load_split_arrays(args.data, "test")
    curve = figures.read_csv_columns(args.curve)
    model = models.load_model(name, args.model)
    predicted = models.predict(name, model, images)

    out = Path(args.out)
    summary, report, report_text, matrix = evaluate(labels, predicted)
    write_json(out / f"report_{name}.json", report)
    write_text(out / f"report_{name}.txt", report_text)
    write_csv(out / f"confusion_{name}.csv", confusion_rows(matrix))
    write_csv(out / f"predictions_{name}.csv", prediction_rows(labels, predicted))
    # Keyed by the model's name, as train_{name}.json: `dvc exp show` names each column by a short unique key.
    write_json(out / f"evaluate_{name}.json", {name: summary})
    print(f"{name}: test accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f}")

    draw_figures(args.figures, name, images, labels, predicted, matrix, curve, f"{Path(args.curve).stem}.png",
                 models.weights_and_bias(name, model)[0])


if __name__ == "__main__":
    main()
