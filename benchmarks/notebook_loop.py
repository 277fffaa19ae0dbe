"""The notebook's torch.nn training loop, written as the notebook writes it: the reference to compare with.

torchvision's FashionMNIST dataset with ToTensor(), a DataLoader of batch
50 with shuffle, nn.Sequential(nn.Linear(784, 10)), CrossEntropyLoss and
SGD(lr=0.1, momentum=0.5). The benchmark times it against stages/train_nn.py;
tests/test_train_nn.py checks that both loops reach the same test accuracy.
Nothing in the pipeline imports this module.
"""

import gzip
import shutil
from pathlib import Path

import torch
import torch.nn as nn

BATCH_SIZE = 50
RAW_FILES = [
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
]


def prepare_root(gz_dir, root):
    """Unzip the four .gz files of `gz_dir` into root/FashionMNIST/raw, where torchvision looks for them.

    Returns `root`, ready for FashionMNIST(root, download=False).
    """
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        with gzip.open(Path(gz_dir) / f"{name}.gz", "rb") as source, open(raw / name, "wb") as target:
            shutil.copyfileobj(source, target)
    return Path(root)


def datasets(root):
    """(trainset, testset) as the notebook builds them, without downloading."""
    import torchvision
    import torchvision.transforms as transforms

    trainset = torchvision.datasets.FashionMNIST(root=str(root), train=True, download=False,
                                                 transform=transforms.ToTensor())
    testset = torchvision.datasets.FashionMNIST(root=str(root), train=False, download=False,
                                                transform=transforms.ToTensor())
    return trainset, testset


def make_training(seed, lr=0.1, momentum=0.5):
    """The notebook's model, loss and optimizer, with the initial weights drawn from `seed`."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(28 * 28, 10, bias=True))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return model, criterion, optimizer


def train_epoch(model, criterion, optimizer, trainloader):
    """One pass over `trainloader`, line for line the notebook's loop body; returns the last batch's loss."""
    for _i, data in enumerate(trainloader, 0):
        model.train()
        inputs, labels = data
        inputs = inputs.view(len(labels), 1, 28 * 28)
        optimizer.zero_grad()
        y_pred = model(inputs)
        y_pred = y_pred.view(len(labels), -1)
        loss = criterion(y_pred.float(), labels)
        loss.backward()
        optimizer.step()
    return loss.item()


def test_accuracy(model, testloader):
    """The notebook's evaluation: fraction of test images whose arg-max class is the label."""
    correct = total = 0
    with torch.no_grad():
        for inputs, labels in testloader:
            inputs = inputs.view(len(labels), 1, 28 * 28)
            predicted = model(inputs).argmax(2).view(-1)
            correct += (predicted == labels).sum().item()
            total += len(labels)
    return correct / total


def run(root, epochs, seed):
    """Train for `epochs` from `seed` the notebook's way; returns the test accuracy."""
    trainset, testset = datasets(root)
    model, criterion, optimizer = make_training(seed)
    # The DataLoader shuffles with torch's global generator, seeded by make_training.
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=BATCH_SIZE, shuffle=True)
    testloader = torch.utils.data.DataLoader(testset, batch_size=BATCH_SIZE, shuffle=False)
    for _ in range(epochs):
        train_epoch(model, criterion, optimizer, trainloader)
    return test_accuracy(model, testloader)
