"""fmnist/linear.py and stages/train_nn.py: the in-memory loop trains the notebook's model, its figures are right.

The reference is the notebook's own loop (benchmarks/notebook_loop.py):
torchvision's FashionMNIST with ToTensor, a DataLoader of 50 with shuffle.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from torch import nn

from benchmarks import notebook_loop
from fmnist import linear
from fmnist.data import N_CLASSES, N_FEATURES, SPLITS, load_split, read_split, save_split
from fmnist.params import resolve_device
from stages import train_nn

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "fashion-mnist"
LR, MOMENTUM, BATCH_SIZE = 0.1, 0.5, 50  # the notebook's settings


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as stages/train_nn.main sets; the previous count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fashion_mnist(module_tmp_path):
    """(train, test) from the bundled files, through flatten's own functions, as the stage reads them."""
    flat = module_tmp_path / "flat"
    flat.mkdir()
    for split in SPLITS:
        save_split(flat, split, *read_split(BUNDLED, split))
    return load_split(flat, "train"), load_split(flat, "test")


@pytest.fixture(scope="module")
def torchvision_root(module_tmp_path):
    return notebook_loop.prepare_root(BUNDLED, module_tmp_path / "torchvision")


def synthetic(n=230, seed=0):
    """n separable-ish samples of 784 features in [0, 1] and their labels; 230 leaves a last batch of 30."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    centers = torch.rand(N_CLASSES, N_FEATURES, generator=generator)
    images = (centers[labels] + 0.3 * torch.rand(n, N_FEATURES, generator=generator)).clamp(0, 1)
    return images, labels


class EpochPermutations(torch.utils.data.Sampler):
    """A fresh torch.randperm each epoch from one generator seeded once: the shuffle train() promises.

    (RandomSampler draws a second, unused permutation at the end of each
    epoch, so from the second epoch on its order is another one.)
    """

    def __init__(self, n, seed):
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


@pytest.mark.slow
def test_same_batches_give_the_notebooks_model_epoch_after_epoch(fashion_mnist, torchvision_root):
    """Fed the batches train() draws, the notebook's loop ends each of two epochs with the same weights.

    Same first weights (torch.manual_seed(seed) before the layer is built),
    same pixels (uint8 / 255 as ToTensor), same SGD with its momentum
    buffer carried from one epoch into the next, a new shuffle each epoch:
    what is left is rounding, and on the machines seen so far not even that
    (the weights were bit-identical). A wrong batch order, a missing
    reshuffle, a momentum buffer reset between epochs or a wrong pixel
    scale moves weights by 1e-2 and more.
    """
    seed, epochs = 3, 2
    train_set, test_set = fashion_mnist
    model, history, _ = linear.train(train_set, test_set, LR, MOMENTUM, BATCH_SIZE, epochs, seed)

    trainset, testset = notebook_loop.datasets(torchvision_root)
    notebook_model, criterion, optimizer = notebook_loop.make_training(seed)
    sampler = EpochPermutations(len(trainset), seed)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=BATCH_SIZE, sampler=sampler)
    testloader = torch.utils.data.DataLoader(testset, batch_size=BATCH_SIZE)
    notebook_accuracies = []
    for _ in range(epochs):
        notebook_loop.train_epoch(notebook_model, criterion, optimizer, trainloader)
        notebook_accuracies.append(notebook_loop.test_accuracy(notebook_model, testloader))

    layer = notebook_model[0]
    torch.testing.assert_close(model.weight, layer.weight, rtol=0, atol=1e-4)
    torch.testing.assert_close(model.bias, layer.bias, rtol=0, atol=1e-4)
    for record, notebook_accuracy in zip(history, notebook_accuracies, strict=True):
        assert record["test_accuracy"] == pytest.approx(notebook_accuracy, abs=5e-4)  # 5 images of 10,000


def reference_epoch(images, labels, seed, lr, momentum, batch_size):
    """One epoch written out the plain way, with images[batch]: the model it leaves."""
    torch.manual_seed(seed)
    model = linear.make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    for start in range(0, images.shape[0], batch_size):
        batch = order[start : start + batch_size]
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
        optimizer.step()
    return model


def test_each_epochs_figures_are_those_of_the_model_it_leaves():
    """history's train_loss and train_accuracy are the model's after the epoch, on the whole training set."""
    images, labels = synthetic()
    labels[::5] = (labels[::5] + 1) % N_CLASSES  # a fifth mislabelled: an accuracy below 1, where a miscount shows
    test_images, test_labels = synthetic(100, seed=1)
    model, history, diverged_at = linear.train((images, labels), (test_images, test_labels), 0.05, 0.5, 50, 1, 5)
    reference = reference_epoch(images, labels, 5, 0.05, 0.5, 50)

    assert diverged_at is None and len(history) == 1
    torch.testing.assert_close(model.weight, reference.weight, rtol=0, atol=1e-6)
    with torch.no_grad():
        logits, test_logits = reference(images), reference(test_images)
    assert history[0]["train_loss"] == pytest.approx(nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    accuracy = (logits.argmax(dim=1) == labels).double().mean().item()
    assert history[0]["train_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert 0 < accuracy < 1  # a figure that can tell a wrong count from a right one
    test_accuracy = (test_logits.argmax(dim=1) == test_labels).double().mean().item()
    assert history[0]["test_accuracy"] == pytest.approx(test_accuracy, abs=1e-9)


def test_a_huge_learning_rate_is_reported_as_divergence_at_its_epoch():
    images, labels = synthetic()
    model, history, diverged_at = linear.train((images, labels), synthetic(50, seed=1), 1e6, 0.5, 50, 5, 0)
    assert diverged_at == 1 and len(history) == 1
    torch.manual_seed(0)
    untrained = linear.make_model()  # the last model before the diverging epoch: the one it started from
    assert torch.equal(model.weight, untrained.weight) and torch.equal(model.bias, untrained.bias)


def test_auto_device_gives_the_cpu_result_on_a_machine_without_gpu():
    train_set, test_set = synthetic(), synthetic(100, seed=1)
    cpu_model, cpu_history, _ = linear.train(train_set, test_set, LR, MOMENTUM, BATCH_SIZE, 2, 7, device="cpu")
    auto = resolve_device("auto")
    auto_model, auto_history, _ = linear.train(train_set, test_set, LR, MOMENTUM, BATCH_SIZE, 2, 7, device=auto)
    if auto.type == "cpu":
        assert torch.equal(cpu_model.weight, auto_model.weight) and torch.equal(cpu_model.bias, auto_model.bias)
        assert cpu_history == auto_history
    else:  # a GPU: the same model up to rounding
        torch.testing.assert_close(auto_model.weight.cpu(), cpu_model.weight, rtol=0, atol=1e-4)


def write_flat_split(flat_dir, split, pixels, labels):
    """Save (N, 784) pixels in [0, 1] and (N,) labels as the flatten stage would: uint8 .npy files."""
    flat_dir.mkdir(exist_ok=True)
    save_split(flat_dir, split, np.rint(pixels.numpy() * 255).astype(np.uint8), labels.numpy().astype(np.uint8))


def test_the_stage_measures_train_accuracy_on_the_training_split(tmp_path, monkeypatch):
    """metrics/train_nn.json's train_accuracy and train_loss are the final model's, on the training images.

    The test split holds the same images with every label moved by one, so
    a figure taken on the wrong split is far off. The reference is numpy on
    the saved weights.
    """
    images, labels = synthetic(400, seed=4)
    write_flat_split(tmp_path / "flat", "train", images, labels)
    test_labels = (labels + 1) % N_CLASSES
    write_flat_split(tmp_path / "flat", "test", images, test_labels)
    (tmp_path / "params.yaml").write_text(
        "seed: 5\ntrain_nn: {lr: 0.1, momentum: 0.5, batch_size: 50, epochs: 3, device: cpu}\n")
    monkeypatch.chdir(tmp_path)

    train_nn.main(["--data", "flat", "--model", "nn.safetensors", "--metrics", "train_nn.json",
                   "--history", "history.csv"])

    metrics = json.loads((tmp_path / "train_nn.json").read_text())["nn"]
    weights = load_file(str(tmp_path / "nn.safetensors"))
    pixels = np.load(tmp_path / "flat" / "train_images.npy").astype(np.float64) / 255
    logits = pixels @ weights["weight"].T.astype(np.float64) + weights["bias"]
    predicted = logits.argmax(axis=1)
    train_accuracy = (predicted == labels.numpy()).mean()
    test_accuracy = (predicted == test_labels.numpy()).mean()
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    train_loss = -log_probabilities[np.arange(len(labels)), labels.numpy()].mean()

    assert train_accuracy - test_accuracy > 0.5
    assert metrics["train_accuracy"] == pytest.approx(train_accuracy, abs=1e-9)
    assert metrics["train_loss"] == pytest.approx(train_loss, rel=1e-5)
    assert metrics["epochs_run"] == 3
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,train_accuracy,test_accuracy" and len(history) == 4
    assert float(history[-1].split(",")[3]) == pytest.approx(test_accuracy, abs=1e-9)
