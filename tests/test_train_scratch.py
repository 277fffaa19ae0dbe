"""stages/train_scratch.py with fmnist/softmax.py: the notebook's gradient descent, no work wasted.

The reference is the closed-form gradient (P - Y)^T X / n in float64, written
out here; the stage gets its gradient from autograd in float32.
"""

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from fmnist import softmax
from fmnist.data import save_split
from fmnist.params import resolve_device
from stages import train_scratch

N_FEATURES, N_CLASSES = 784, 10


def synthetic(n=500, seed=0):
    """(n, 784) uint8 pixels around one random image per class, and (n,) labels, a fifth of them wrong."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    centers = torch.rand(N_CLASSES, N_FEATURES, generator=generator)
    images = (0.5 * centers[labels] + 0.5 * torch.rand(n, N_FEATURES, generator=generator)).clamp(0, 1)
    # Wrong labels keep the training accuracy below 1, where a miscount would show.
    flipped = torch.rand(n, generator=generator) < 0.2
    labels = torch.where(flipped, torch.randint(0, N_CLASSES, (n,), generator=generator), labels)
    return torch.round(images * 255).to(torch.uint8), labels


def closed_form_descent(images, labels, lr, iterations):
    """float64 gradient descent from Theta = 0 with the gradient written out.

    Returns the loss before each of `iterations` updates and the Theta the
    last of them was taken at (iterations - 1 updates), as Descent records.
    """
    X = torch.cat([torch.ones(images.shape[0], 1, dtype=torch.float64), images.double() / 255], dim=1)
    Y = torch.nn.functional.one_hot(labels, N_CLASSES).double()
    Theta = torch.zeros(N_CLASSES, X.shape[1], dtype=torch.float64)
    losses = []
    for _ in range(iterations):
        P = torch.softmax(X @ Theta.T, dim=1)
        losses.append(-(Y * torch.log(P)).sum(dim=1).mean().item())
        if len(losses) < iterations:
            Theta = Theta - lr * (P - Y).T @ X / X.shape[0]
    return Theta, losses


def test_train_follows_the_closed_form_gradient():
    images, labels = synthetic()
    result, train_accuracy = train_scratch.train(images / 255, labels, lr=0.1, max_iter=25, tol=0.0)
    Theta, losses = closed_form_descent(images, labels, lr=0.1, iterations=25)

    assert result.iterations == 25 and not result.converged and not result.diverged
    assert result.loss_history == pytest.approx(losses, rel=1e-5)
    torch.testing.assert_close(result.Theta.double(), Theta, rtol=1e-4, atol=1e-6)
    X = softmax.add_intercept(images / 255)
    expected_accuracy = ((X @ result.Theta.T).argmax(dim=1) == labels).double().mean().item()
    assert train_accuracy == pytest.approx(expected_accuracy, abs=1e-7)
    assert 0.2 < train_accuracy < 1  # learned something, and a count that can be wrong


def products_reading(X, run):
    """Row counts of the (r, f) operands of the matrix products `run()` takes (profiler events), f being X's width."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as profile:
        run()
    width = X.shape[1]
    return [shape[0] for event in profile.events() if event.name in ("aten::mm", "aten::addmm", "aten::bmm")
            for shape in event.input_shapes if len(shape) == 2 and shape[1] == width]


def test_each_iteration_reads_x_in_exactly_two_matrix_products():
    """The forward pass X @ Theta.T (the loss comes from it) and the gradient's product by autograd, nothing more."""
    images, labels = synthetic(300)
    X = softmax.add_intercept(images / 255)
    Y = softmax.one_hot(labels, N_CLASSES)
    iterations = 4
    blocks = products_reading(X, lambda: softmax.gradient_descent(X, Y, lr=0.1, max_iter=iterations, tol=0.0))
    assert blocks == [300] * 2 * iterations


def test_divergence_keeps_the_last_finite_model_and_loss():
    images, labels = synthetic()
    result, _ = train_scratch.train(images / 255, labels, lr=1e4, max_iter=50, tol=0.0)
    metrics = train_scratch.summarize(result, 0.5)
    assert result.diverged and metrics["diverged"] and metrics["iterations"] == result.iterations
    assert metrics["train_loss"] == result.loss_history[-2]
    assert torch.isfinite(result.Theta).all()


def test_convergence_stops_early_and_is_reported():
    images, labels = synthetic()
    result, accuracy = train_scratch.train(images / 255, labels, lr=0.1, max_iter=1000, tol=1e-2)
    metrics = train_scratch.summarize(result, accuracy)
    assert result.converged and metrics["converged"] and not metrics["diverged"]
    assert metrics["iterations"] == result.iterations < 1000
    assert metrics["train_loss"] == result.loss_history[-1]


def test_auto_device_gives_the_cpu_result_on_a_machine_without_gpu():
    images, labels = synthetic()
    cpu, cpu_accuracy = train_scratch.train(images / 255, labels, 0.1, 10, 0.0, device="cpu")
    auto_device = resolve_device("auto")
    auto, auto_accuracy = train_scratch.train(images / 255, labels, 0.1, 10, 0.0, device=auto_device)
    if auto_device.type == "cpu":
        assert torch.equal(cpu.Theta, auto.Theta)
        assert cpu.loss_history == auto.loss_history and cpu_accuracy == auto_accuracy
    else:  # a GPU: the same model up to rounding
        torch.testing.assert_close(auto.Theta.cpu(), cpu.Theta, rtol=1e-4, atol=1e-6)


def test_the_stage_measures_train_accuracy_on_the_training_split(tmp_path, monkeypatch):
    """metrics/train_scratch.json's train_accuracy is the saved Theta's, on the training images.

    The test split holds the same images with every label moved by one, so
    an accuracy taken on the wrong split is far off. The reference is numpy
    on the saved Theta; the loss curve is the closed-form descent's.
    """
    images, labels = synthetic(300, seed=6)
    flat = tmp_path / "flat"
    flat.mkdir()
    pixels = images.numpy()
    for split, split_labels in (("train", labels), ("test", (labels + 1) % N_CLASSES)):
        save_split(flat, split, pixels, split_labels.numpy().astype(np.uint8))
    (tmp_path / "params.yaml").write_text("train_scratch: {lr: 0.05, max_iter: 12, tol: 0.0, device: cpu}\n")
    monkeypatch.chdir(tmp_path)

    train_scratch.main(["--data", "flat", "--model", "scratch.safetensors", "--metrics", "train_scratch.json",
                        "--loss-curve", "loss.csv"])

    metrics = json.loads((tmp_path / "train_scratch.json").read_text())["scratch"]
    Theta = load_file(str(tmp_path / "scratch.safetensors"))["Theta"].astype(np.float64)
    scaled = pixels.astype(np.float64) / 255
    predicted = (scaled @ Theta[:, 1:].T + Theta[:, 0]).argmax(axis=1)
    train_accuracy = (predicted == labels.numpy()).mean()
    test_accuracy = (predicted == (labels.numpy() + 1) % N_CLASSES).mean()
    assert train_accuracy - test_accuracy > 0.5
    assert metrics["train_accuracy"] == train_accuracy  # a count over 300, not a float32 mean
    assert metrics["iterations"] == 12 and metrics["converged"] is False

    _, reference_losses = closed_form_descent(images, labels, 0.05, 12)
    curve = (tmp_path / "loss.csv").read_text().splitlines()
    assert curve[0] == "iteration,loss"
    assert [int(line.split(",")[0]) for line in curve[1:]] == list(range(1, 13))
    np.testing.assert_allclose([float(line.split(",")[1]) for line in curve[1:]], reference_losses, rtol=1e-4)
    assert metrics["train_loss"] == pytest.approx(reference_losses[-1], rel=1e-4)
