"""Stage `evaluate`: both models on the 10,000 test images.

Writes accuracy and macro-F1 of each model, scikit-learn's
classification_report (JSON and text), the confusion matrix, and one
(actual, predicted) row per test image for DVC's confusion plot.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from stages import softmax
from stages.common import CLASS_NAMES, configure_torch, load_tensors, stage_main, write_csv, write_json, write_text
from stages.flatten import load_split
from stages.train_nn import make_model

LABELS = list(range(len(CLASS_NAMES)))


def predict_scratch(Theta, images):
    return softmax.predict(softmax.add_intercept(images), Theta)


def predict_nn(state, images):
    model = make_model()
    model.load_state_dict(state)
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


@stage_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder written by the flatten stage")
    parser.add_argument("--scratch-model", required=True)
    parser.add_argument("--nn-model", required=True)
    parser.add_argument("--out", required=True, help="folder for metrics, reports and confusion data")
    args = parser.parse_args(argv)

    configure_torch()
    images, labels = load_split(args.data, "test")
    predictions = {
        "scratch": predict_scratch(load_tensors(args.scratch_model)["Theta"], images),
        "nn": predict_nn(load_tensors(args.nn_model), images),
    }

    out = Path(args.out)
    summaries = {}
    for name, predicted in predictions.items():
        summary, report, report_text, matrix = evaluate(labels.numpy(), predicted.numpy())
        summaries[name] = summary
        write_json(out / f"report_{name}.json", report)
        write_text(out / f"report_{name}.txt", report_text)
        write_csv(out / f"confusion_{name}.csv", ["actual", *CLASS_NAMES],
                  [[CLASS_NAMES[i], *row.tolist()] for i, row in enumerate(matrix)])
        write_csv(out / f"predictions_{name}.csv", ["actual", "predicted"],
                  [[CLASS_NAMES[a], CLASS_NAMES[p]] for a, p in zip(labels.tolist(), predicted.tolist())])
        print(f"{name}: test accuracy {summary['accuracy']:.4f}, macro-F1 {summary['macro_f1']:.4f}")
    write_json(out / "evaluate.json", summaries)


if __name__ == "__main__":
    main()
