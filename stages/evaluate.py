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
import torch
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from stages import figures, softmax
from stages.common import (
    CLASS_NAMES,
    StageError,
    atomic_dir,
    configure_torch,
    load_tensors,
    stage_main,
    write_csv,
    write_json,
    write_text,
)
from stages.flatten import N_FEATURES, load_split
from stages.train_nn import make_model

LABELS = list(range(len(CLASS_NAMES)))


def predict_scratch(Theta, images):
    return softmax.predict(softmax.add_intercept(images), Theta)


def load_scratch_model(path):
    tensors = load_tensors(path)
    if "Theta" not in tensors or tuple(tensors["Theta"].shape) != (len(CLASS_NAMES), N_FEATURES + 1):
        raise StageError(f"{path} holds no (10, 785) Theta; rerun `dvc repro train_scratch`")
    return tensors["Theta"]


def load_nn_model(path):
    model = make_model()
    try:
        model.load_state_dict(load_tensors(path))
    except RuntimeError:
        raise StageError(f"{path} does not hold a Linear(784, 10) model; rerun `dvc repro train_nn`") from None
    return model


def predict_nn(model, images):
    with torch.inference_mode():
        return model(images).argmax(dim=1)


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

    configure_torch()
    images, labels = load_split(args.data, "test")
    nn_history = figures.read_csv_columns(args.nn_history)
    scratch_loss = figures.read_csv_columns(args.scratch_loss)
    predictions = {
        "scratch": predict_scratch(load_scratch_model(args.scratch_model), images),
        "nn": predict_nn(load_nn_model(args.nn_model), images),
    }

    out = Path(args.out)
    summaries, matrices = {}, {}
    for name, predicted in predictions.items():
        summary, report, report_text, matrix = evaluate(labels.numpy(), predicted.numpy())
        summaries[name], matrices[name] = summary, matrix
        write_json(out / f"report_{name}.json", report)
        write_text(out / f"report_{name}.txt", report_text)
        write_csv(out / f"confusion_{name}.csv", ["actual", *CLASS_NAMES],
                  [[CLASS_NAMES[i], *row.tolist()] for i, row in enumerate(matrix)])
        write_csv(out / f"predictions_{name}.csv", ["actual", "predicted"],
                  [[CLASS_NAMES[a], CLASS_NAMES[p]] for a, p in zip(labels.tolist(), predicted.tolist(), strict=True)])
        print(f"{name}: test accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f}")
    write_json(out / "evaluate.json", summaries)

    # The figures folder appears whole, with every PNG in it, or not at all.
    with atomic_dir(args.figures) as figures_dir:
        draw_figures(figures_dir, images.numpy(), labels.numpy(),
                     {name: predicted.numpy() for name, predicted in predictions.items()},
                     matrices, nn_history, scratch_loss)
    print(f"figures: {', '.join(sorted(p.name for p in Path(args.figures).iterdir()))}")


if __name__ == "__main__":
    main()
