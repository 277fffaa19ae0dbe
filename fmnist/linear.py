"""The notebook's second part: Linear(784, 10), CrossEntropyLoss and SGD with momentum, in minibatches.

The notebook iterates a DataLoader over a torchvision dataset, one PIL
image at a time. Here the whole training set is one float32 tensor and
each minibatch an index into it: the same model, optimizer and shuffled
batches, without the per-image overhead.
"""

import copy
import math

import torch
from torch import nn

from fmnist.data import N_CLASSES, N_FEATURES

DIVERGENCE_FACTOR = 10.0  # a loss this many times the untrained model's: diverged


def make_model():
    return nn.Linear(N_FEATURES, N_CLASSES)


def loss_and_accuracy(model, images, labels):
    """Mean cross-entropy and fraction correct of `model` on (N, 784) `images` and (N,) `labels`."""
    with torch.inference_mode():
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels).item()
        # A count divided in Python: 0.8344, not float32's 0.8343999981880188.
        return loss, (logits.argmax(dim=1) == labels).sum().item() / labels.shape[0]


def train_epoch(model, optimizer, images, labels, batch_size, shuffle):
    """One pass over (N, 784) `images` in shuffled minibatches of `batch_size`, one SGD step each."""
    model.train()
    criterion = nn.CrossEntropyLoss()
    order = torch.randperm(images.shape[0], generator=shuffle).to(images.device)
    for batch in order.split(batch_size):
        # index_select, not images[batch]: the same rows, a step's largest cost when indexed.
        inputs, targets = images.index_select(0, batch), labels.index_select(0, batch)
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    model.eval()


def train(train_set, test_set, lr, momentum, batch_size, epochs, seed, device="cpu", on_epoch=None):
    """Train as the notebook does; returns (model, history, diverged_at_epoch or None).

    history[e] = {epoch, train_loss, train_accuracy, test_accuracy} of the
    model as epoch e left it. Training stops when the training loss stops
    being finite or climbs past DIVERGENCE_FACTOR times the untrained
    model's; the model returned is then the last one before that epoch.
    `on_epoch(record)` is called after each epoch (progress).
    """
    torch.manual_seed(seed)
    images, labels = (t.to(device) for t in train_set)
    test_images, test_labels = (t.to(device) for t in test_set)
    model = make_model().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    # Shuffles come from their own generator on the CPU: the same batches on every device.
    shuffle = torch.Generator().manual_seed(seed)
    start_loss, _ = loss_and_accuracy(model, images, labels)
    history = []
    for epoch in range(1, epochs + 1):
        last_good = copy.deepcopy(model.state_dict())
        train_epoch(model, optimizer, images, labels, batch_size, shuffle)
        train_loss, train_accuracy = loss_and_accuracy(model, images, labels)
        _, test_accuracy = loss_and_accuracy(model, test_images, test_labels)
        record = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
                  "test_accuracy": test_accuracy}
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if not math.isfinite(train_loss) or train_loss > DIVERGENCE_FACTOR * start_loss:
            model.load_state_dict(last_good)
            return model, history, epoch
    return model, history, None
