"""A learning rate that blows up is a result to record, not a crash.

Both trainers stop at the first sign (a loss that is not a finite number,
or one ten times where it started), keep the last model before it, say so
in their metrics, and the pipeline still evaluates the model kept.
"""

import json
import math

import pytest
import torch
from conftest import dvc, set_params, stages_run
from ruamel.yaml import YAML
from safetensors.torch import load_file

from fmnist import linear, softmax
from fmnist.data import load_split


def synthetic(n=600, n_features=784, seed=0):
    """(n, 784) pixels in [0, 1] and (n,) labels in 0..9, the label written into a few pixels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.rand(n, n_features, generator=generator)
    images[torch.arange(n), labels * 7] += 1.0
    return images.clamp_(0, 1), labels


def nn_test_accuracy(project):
    """The saved nn model's test accuracy, computed here with torch on the flat test split."""
    weights = load_file(str(project / "data/models/nn.safetensors"))
    images, labels = load_split(project / "data/flat", "test")
    predicted = (images @ weights["weight"].T + weights["bias"]).argmax(dim=1)
    return (predicted == labels).sum().item() / len(labels)


# Pixels left in 0..255 (not scaled to [0, 1]) with a huge rate overflow the logits: a NaN loss.
@pytest.mark.parametrize(("lr", "pixel_scale", "non_finite"), [(1e3, 1, False), (1e38, 255, True)])
def test_gradient_descent_stops_at_the_first_diverged_iteration(lr, pixel_scale, non_finite):
    images, labels = synthetic()
    X, Y = softmax.add_intercept(images * pixel_scale), softmax.one_hot(labels, 10)

    result = softmax.gradient_descent(X, Y, lr=lr, max_iter=50, tol=0.0)

    assert result.diverged and not result.converged
    assert result.iterations < 50
    last = result.loss_history[-1]
    assert (not math.isfinite(last)) == non_finite
    assert not math.isfinite(last) or last > 10 * result.loss_history[0]
    assert all(math.isfinite(loss) for loss in result.loss_history[:-1])
    assert torch.isfinite(result.Theta).all()  # the last Theta whose loss was finite
    assert math.isclose(softmax.cross_entropy(X, result.Theta, Y).item(), result.loss_history[-2], rel_tol=1e-5)


def test_gradient_descent_with_a_sane_rate_does_not_diverge():
    images, labels = synthetic()
    X, Y = softmax.add_intercept(images), softmax.one_hot(labels, 10)
    result = softmax.gradient_descent(X, Y, lr=0.1, max_iter=30, tol=0.0)
    assert not result.diverged and result.iterations == 30
    assert result.loss_history[-1] < result.loss_history[0]


@pytest.mark.parametrize(("lr", "non_finite"), [(1e4, False), (1e38, True)])
def test_train_nn_stops_after_the_first_diverged_epoch(lr, non_finite):
    train_set, test_set = synthetic(seed=1), synthetic(n=100, seed=2)

    model, history, diverged_at = linear.train(train_set, test_set, lr, 0.5, 50, 5, seed=3)

    assert diverged_at == 1 and len(history) == 1
    assert (not math.isfinite(history[0]["train_loss"])) == non_finite
    # The model kept is the last one before the diverging epoch: here the untrained one.
    torch.manual_seed(3)
    untrained = linear.make_model()
    assert torch.equal(model.weight, untrained.weight) and torch.equal(model.bias, untrained.bias)


def test_train_nn_with_a_sane_rate_does_not_diverge():
    train_set, test_set = synthetic(seed=1), synthetic(n=100, seed=2)
    _, history, diverged_at = linear.train(train_set, test_set, 0.1, 0.5, 50, 3, seed=3)
    assert diverged_at is None and len(history) == 3


def test_diverging_trainers_are_recorded_and_evaluated_by_dvc_repro(reproduced):
    # On the real data: full-batch lr 1000 jumps to a loss ~1000 at iteration 2;
    # SGD at lr 1e38 overflows the weights to inf within the first batches: a NaN loss.
    set_params(reproduced, {"train_scratch.lr": 1000, "train_nn.lr": 1e38})

    result = dvc(reproduced, "repro", check=False)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert stages_run(result.stdout) == ["train_scratch", "train_nn", "evaluate@scratch", "evaluate@nn"]
    assert "DIVERGED at iteration 2" in result.stdout and "DIVERGED at epoch 1" in result.stdout

    scratch = json.loads((reproduced / "metrics/train_scratch.json").read_text())["scratch"]
    assert scratch["diverged"] is True and scratch["converged"] is False and scratch["iterations"] == 2
    # The metrics describe the model that was kept: Theta = 0, whose loss is log(10).
    assert math.isclose(scratch["train_loss"], math.log(10), rel_tol=1e-5)

    nn_metrics = json.loads((reproduced / "metrics/train_nn.json").read_text())["nn"]
    assert nn_metrics["diverged"] is True and nn_metrics["epochs_run"] == 1
    # The untrained model, kept: a loss near log(10), as finite as scratch's.
    assert math.isclose(nn_metrics["train_loss"], math.log(10), rel_tol=0.1)
    history = (reproduced / "metrics/train_nn_history.csv").read_text().splitlines()
    assert len(history) == 2 and ",nan," in history[1]  # the diverged epoch is recorded as it was

    def evaluation(model):
        return json.loads((reproduced / f"metrics/evaluate_{model}.json").read_text())[model]

    assert evaluation("nn")["accuracy"] == nn_test_accuracy(reproduced)  # the kept model, scored
    assert math.isclose(evaluation("scratch")["accuracy"], 0.1)  # Theta = 0: every image is class 0

    # The diverged run is a recorded result: dvc.lock holds its params, `dvc status` is clean.
    lock = YAML(typ="safe").load((reproduced / "dvc.lock").read_text())
    assert lock["stages"]["train_scratch"]["params"]["params.yaml"]["train_scratch"]["lr"] == 1000
    assert lock["stages"]["train_nn"]["params"]["params.yaml"]["train_nn"]["lr"] == 1e38
    assert "up to date" in dvc(reproduced, "status").stdout
