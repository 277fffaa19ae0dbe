"""fmnist/scores.py gives what scikit-learn's confusion_matrix and classification_report give."""

import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix

from fmnist import scores
from fmnist.data import CLASS_NAMES, N_CLASSES

OPTIONS = {"labels": list(range(N_CLASSES)), "target_names": CLASS_NAMES, "zero_division": 0}


def predictions(seed, never_predicted=None):
    """(1000,) labels and predictions right 60% of the time; `never_predicted`: a class no prediction names."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, 1000)
    predicted = np.where(rng.random(1000) < 0.6, labels, rng.integers(0, N_CLASSES, 1000))
    if never_predicted is not None:
        predicted[predicted == never_predicted] = (never_predicted + 1) % N_CLASSES
    return labels, predicted


@pytest.mark.parametrize(("seed", "never_predicted"), [(0, None), (1, 3)])
def test_report_and_its_text_are_scikit_learns(seed, never_predicted):
    labels, predicted = predictions(seed, never_predicted)
    matrix = scores.confusion_matrix(labels, predicted, N_CLASSES)
    np.testing.assert_array_equal(matrix, confusion_matrix(labels, predicted, labels=OPTIONS["labels"]))

    report = scores.classification_report(matrix, CLASS_NAMES)

    assert report == classification_report(labels, predicted, output_dict=True, **OPTIONS)
    assert scores.report_text(report, CLASS_NAMES) == classification_report(labels, predicted, digits=4, **OPTIONS)
