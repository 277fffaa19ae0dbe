"""fmnist/models.py and stages/evaluate.py: numpy predictions equal torch's, and every table says which axis is actual.

The predictions are checked against a second computation in torch
(softmax.predict, nn.Linear); the tables are checked on a crafted test set
whose right answers are known before the stage runs.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import dvc_stages
from safetensors.numpy import save_file
from torch import nn

from fmnist import models, softmax
from fmnist.data import CLASS_NAMES, N_CLASSES, N_FEATURES, read_split, save_split
from stages import evaluate

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = PROJECT_ROOT / "data" / "fashion-mnist"


@pytest.fixture(scope="module")
def test_images():
    """The 10,000 bundled test images as float64 pixels in [0, 1]: (10000, 784)."""
    images, _ = read_split(BUNDLED, "test")
    return images.astype(np.float64) / 255


def random_weights(seed):
    """(10, 784) weights and (10,) bias, scaled so that both move the arg-max."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.05, (N_CLASSES, N_FEATURES)), rng.normal(0, 1.0, N_CLASSES)


def test_predict_scratch_is_softmax_predict_with_the_intercept_in_column_0(test_images):
    weights, bias = random_weights(0)
    Theta = np.column_stack([bias, weights])  # (10, 785), the intercept first as softmax.add_intercept puts it

    ours = models.predict("scratch", {"Theta": Theta}, test_images)

    X = softmax.add_intercept(torch.from_numpy(test_images))
    reference = softmax.predict(X, torch.from_numpy(Theta)).numpy()
    np.testing.assert_array_equal(ours, reference)
    # The intercept decides a good share of the classes, so dropping or misplacing it shows.
    assert (np.argmax(test_images @ weights.T, axis=1) != reference).mean() > 0.2
    assert len(np.unique(reference)) >= 5  # not a constant answer


def test_predict_nn_is_nn_linears_arg_max(test_images):
    weights, bias = random_weights(1)
    layer = nn.Linear(N_FEATURES, N_CLASSES).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weights))
        layer.bias.copy_(torch.from_numpy(bias))
        reference = layer(torch.from_numpy(test_images)).argmax(dim=1).numpy()

    ours = models.predict("nn", {"weight": weights, "bias": bias}, test_images)

    np.testing.assert_array_equal(ours, reference)
    assert (np.argmax(test_images @ weights.T, axis=1) != reference).mean() > 0.2
    assert len(np.unique(reference)) >= 5  # not a constant answer


# A test set whose answers are known: image i lights pixel labels[i] only.
# Class k appears k + 1 times, so row sums (actual) and column sums
# (predicted) of a confusion matrix differ and a transposed table shows.
LABELS = np.repeat(np.arange(N_CLASSES), np.arange(1, N_CLASSES + 1))


def crafted_test_split(flat_dir):
    images = np.zeros((len(LABELS), N_FEATURES), dtype=np.uint8)
    images[np.arange(len(LABELS)), LABELS] = 255
    flat_dir.mkdir()
    save_split(flat_dir, "test", images, LABELS.astype(np.uint8))


def shifted_weights(shift):
    """(10, 784) weights whose class k looks at pixel k - shift: an image of class y is called y + shift."""
    weights = np.zeros((N_CLASSES, N_FEATURES), dtype=np.float32)
    for k in range(N_CLASSES):
        weights[k, (k - shift) % N_CLASSES] = 1
    return weights


@pytest.fixture(scope="module")
def evaluated(module_tmp_path):
    """evaluate.main on the crafted test set: scratch is always right, nn calls class y class y + 1."""
    root = module_tmp_path
    crafted_test_split(root / "flat")
    scratch_theta = np.column_stack([np.zeros(N_CLASSES, np.float32), shifted_weights(0)])
    save_file({"Theta": scratch_theta}, str(root / "scratch.safetensors"))
    save_file({"weight": shifted_weights(1), "bias": np.zeros(N_CLASSES, np.float32)}, str(root / "nn.safetensors"))
    (root / "train_nn_history.csv").write_text("epoch,train_loss,train_accuracy,test_accuracy\n1,0.5,0.8,0.7\n")
    (root / "train_scratch_loss.csv").write_text("iteration,loss\n1,2.3\n2,1.9\n")
    for name, curve in (("scratch", "train_scratch_loss"), ("nn", "train_nn_history")):
        evaluate.main([
            name, "--data", str(root / "flat"), "--model", str(root / f"{name}.safetensors"),
            "--curve", str(root / f"{curve}.csv"), "--out", str(root / "metrics"),
            "--figures", str(root / "metrics" / "figures"),
        ])
    return root / "metrics"


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def counts_of(rows):
    """The (10, 10) counts of a confusion CSV's rows, header and row names left out."""
    return np.array([[int(value) for value in row[1:]] for row in rows[1:]])


def test_summary_and_reports_score_the_known_answers(evaluated):
    assert json.loads((evaluated / "evaluate_scratch.json").read_text()) == {
        "scratch": {"accuracy": 1.0, "macro_f1": 1.0}}
    assert json.loads((evaluated / "evaluate_nn.json").read_text()) == {"nn": {"accuracy": 0.0, "macro_f1": 0.0}}
    report = json.loads((evaluated / "report_nn.json").read_text())
    # support counts the actual class: class k has k + 1 images
    assert [report[name]["support"] for name in CLASS_NAMES] == list(range(1, N_CLASSES + 1))


def test_confusion_csv_has_a_row_per_actual_class_and_a_column_per_predicted_class(evaluated):
    rows = read_rows(evaluated / "confusion_nn.csv")
    assert rows[0] == ["actual", *CLASS_NAMES]
    assert [row[0] for row in rows[1:]] == CLASS_NAMES
    counts = counts_of(rows)
    expected = np.zeros((N_CLASSES, N_CLASSES), dtype=int)
    expected[np.arange(N_CLASSES), (np.arange(N_CLASSES) + 1) % N_CLASSES] = np.arange(1, N_CLASSES + 1)
    np.testing.assert_array_equal(counts, expected)  # e.g. the one T-shirt/top was called Trouser

    scratch = counts_of(read_rows(evaluated / "confusion_scratch.csv"))
    np.testing.assert_array_equal(scratch, np.diag(np.arange(1, N_CLASSES + 1)))


def test_predictions_csv_lists_each_test_image_in_order_actual_then_predicted(evaluated):
    rows = read_rows(evaluated / "predictions_nn.csv")
    names = np.array(CLASS_NAMES)
    assert rows[0] == ["actual", "predicted"]
    assert rows[1:] == [[names[y], names[(y + 1) % N_CLASSES]] for y in LABELS]
    scratch = read_rows(evaluated / "predictions_scratch.csv")
    assert scratch[1:] == [[names[y], names[y]] for y in LABELS]


def test_dvc_confusion_plots_put_actual_on_x_and_predicted_on_y():
    """DVC's confusion template reads the columns dvc.yaml names: they must be the CSV's own."""
    for model in ("scratch", "nn"):
        stage = dvc_stages(PROJECT_ROOT)[f"evaluate@{model}"]
        plots = {name: props for entry in stage["plots"] if isinstance(entry, dict) for name, props in entry.items()}
        props = plots[f"metrics/predictions_{model}.csv"]
        assert (props["template"], props["x"], props["y"]) == ("confusion", "actual", "predicted")
