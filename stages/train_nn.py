"""Stage `train_nn`: the notebook's torch.nn model, Linear(784, 10) + CrossEntropyLoss + SGD.

The notebook iterates a DataLoader over a torchvision dataset, one PIL
image at a time. Here the whole training set is one float32 tensor in
memory and each minibatch is an index into it: the same model, the same
optimizer and the same shuffled batches of `batch_size`, without the
per-sample overhead.
"""

import argparse
import math
import time

import torch
from torch import nn

from stages.common import configure_torch, resolve_device, save_tensors, stage_main, write_csv, write_json
from stages.flatten import N_FEATURES, load_split
from stages.params import load_params

N_CLASSES = 10
DIVERGENCE_FACTOR = 10.0  # an epoch's mean loss this many times the first batch's: diverged


def make_model():
    return nn.Linear(N_FEATURES, N_CLASSES)


def accuracy(model, images, labels):
    """Fraction of rows of (N, 784) `images` whose most probable class is `labels`."""
    with torch.inference_mode():
        return (model(images).argmax(dim=1) == labels).float().mean().item()


def mean_loss(model, images, labels):
    with torch.inference_mode():
        return nn.functional.cross_entropy(model(images), labels).item()


def train(train_set, test_set, lr, momentum, batch_size, epochs, seed, device="cpu", on_epoch=None):
    """Train as the notebook does; returns (model, history, diverged_at_epoch or None).

    history[e] = {epoch, train_loss, train_accuracy, test_accuracy}. The
    training figures are the means over the epoch's own forward passes (the
    model moves while they are taken), so they cost nothing extra.
    """
    torch.manual_seed(seed)
    device = torch.device(device)
    images, labels = (t.to(device) for t in train_set)
    test_images, test_labels = (t.to(device) for t in test_set)
    model = make_model().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    # Shuffles come from their own generator on the CPU: the same batches on every device.
    shuffle = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    history, first_loss = [], None

    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            inputs, targets = images[batch], labels[batch]
            optimizer.zero_grad()
            logits = model(inputs)
            loss = criterion(logits, targets)
            loss.backward()
            optimizer.step()
            loss = loss.detach()
            if first_loss is None:
                first_loss = loss.item()
            loss_sum += loss * targets.shape[0]
            correct += (logits.detach().argmax(dim=1) == targets).sum()
        model.eval()
        record = {
            "epoch": epoch,
            "train_loss": loss_sum.item() / n,
            "train_accuracy": correct.item() / n,
            "test_accuracy": accuracy(model, test_images, test_labels),
        }
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if not math.isfinite(record["train_loss"]) or record["train_loss"] > DIVERGENCE_FACTOR * first_loss:
            return model, history, epoch
    return model, history, None


@stage_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder written by the flatten stage")
    parser.add_argument("--model", required=True, help="safetensors file for the Linear layer")
    parser.add_argument("--metrics", required=True, help="JSON metrics file")
    parser.add_argument("--history", required=True, help="CSV with one row per epoch")
    args = parser.parse_args(argv)

    params = load_params("train_nn", "seed")
    config = params["train_nn"]
    # Batch-50 steps are too small for a second thread to help; one thread
    # also lets parallel sweep workers share the cores.
    threads = configure_torch(threads=1)
    device = resolve_device(config["device"])
    train_set, test_set = load_split(args.data, "train"), load_split(args.data, "test")

    def report(record):
        print(
            f"epoch {record['epoch']:3d}  train loss {record['train_loss']:.4f}  "
            f"train accuracy {record['train_accuracy']:.4f}  test accuracy {record['test_accuracy']:.4f}"
        )

    started = time.perf_counter()
    model, history, diverged_at = train(
        train_set, test_set, config["lr"], config["momentum"], config["batch_size"], config["epochs"],
        params["seed"], device, on_epoch=report,
    )
    elapsed = time.perf_counter() - started

    train_images, train_labels = (t.to(device) for t in train_set)
    metrics = {
        "train_accuracy": accuracy(model, train_images, train_labels),
        "train_loss": mean_loss(model, train_images, train_labels),
        "epochs_run": len(history),
        "diverged": diverged_at is not None,
        "diverged_at_epoch": diverged_at,
    }
    save_tensors(args.model, model.state_dict())
    write_csv(args.history, list(history[0]), [list(record.values()) for record in history])
    write_json(args.metrics, metrics)
    print(
        f"train_nn: {len(history)} epochs in {elapsed:.1f} s on {device} ({threads} threads, "
        f"{elapsed / len(history):.2f} s/epoch), train accuracy {metrics['train_accuracy']:.4f}"
        + (f", DIVERGED at epoch {diverged_at}" if diverged_at else "")
    )


if __name__ == "__main__":
    main()
