"""A classifier's scores on the test set: the confusion matrix and scikit-learn's classification report, in numpy.

`classification_report` returns what scikit-learn's
classification_report(labels, target_names, output_dict=True,
zero_division=0) returns, and `report_text` its text with 4 digits:
tests/test_scores.py checks both against scikit-learn itself. Why not
scikit-learn here: importing it takes longer than all of evaluate's
arithmetic, and each evaluation runs in a process of its own.
"""

import numpy as np

HEADERS = ["precision", "recall", "f1-score", "support"]


def confusion_matrix(true_labels, predicted, n_classes):
    """(n,) true and predicted class ids -> (c, c) counts, rows = actual class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true_labels), np.asarray(predicted)), 1)
    return matrix


def divide(numerator, denominator):
    """Element-wise numerator / denominator as floats; 0 where the denominator is 0 (zero_division=0)."""
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def classification_report(matrix, class_names):
    """(c, c) confusion matrix -> {class name: {precision, recall, f1-score, support}}, accuracy and two averages."""
    matrix = np.asarray(matrix)
    hits, predicted, support = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    precision, recall = divide(hits, predicted), divide(hits, support)
    f1 = divide(2 * hits, support + predicted)  # 2PR / (P + R), written as scikit-learn computes it
    report = {name: dict(zip(HEADERS, map(float, scores), strict=True))
              for name, *scores in zip(class_names, precision, recall, f1, support, strict=True)}
    report["accuracy"] = float(divide(hits.sum(), support.sum()))
    for average, weights in (("macro avg", None), ("weighted avg", support)):
        report[average] = {"precision": float(np.average(precision, weights=weights)),
                           "recall": float(np.average(recall, weights=weights)),
                           "f1-score": float(np.average(f1, weights=weights)),
                           "support": float(support.sum())}
    return report


def report_text(report, class_names, digits=4):
    """A report of classification_report as scikit-learn prints it: one row per class, then the averages."""
    width = max(*(len(name) for name in class_names), len("weighted avg"), digits)

    def row(heading):
        scores = "".join(f" {report[heading][key]:>9.{digits}f}" for key in HEADERS[:3])
        return f"{heading:>{width}} {scores} {int(report[heading]['support']):>9}\n"

    total = int(report["macro avg"]["support"])
    return (" " * width + " " + "".join(f" {header:>9}" for header in HEADERS) + "\n\n"
            + "".join(row(name) for name in class_names) + "\n"
            # The accuracy row leaves precision and recall blank: two columns of 1 + 9 spaces.
            + f"{'accuracy':>{width}} " + " " * 20 + f" {report['accuracy']:>9.{digits}f} {total:>9}\n"
            + row("macro avg") + row("weighted avg"))
