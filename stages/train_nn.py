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

import pandas as pd
import torch
from torch import nn

from stages.common import (
    configure_torch,
    progress,
    resolve_device,
    save_tensors,
    stage_main,
    write_csv,
    write_json,
)
from stages.flatten import N_FEATURES, load_split
from stages.params import load_params

N_CLASSES = 10
DIVERGENCE_FACTOR = 10.0  # an epoch's mean loss this many times the first batch's: diverged


def make_model():
    return nn.Linear(N_FEATURES, N_CLASSES)


def loss_and_accuracy(model, images, labels):
    """Mean cross-entropy and fraction correct of `model` on (N, 784) `images`, from one forward pass."""
    with torch.inference_mode():
        logits = model(images)
        return nn.functional.cross_entropy(logits, labels).item(), fraction_correct(logits, labels)


def accuracy(model, images, labels):
    """Fraction of rows of (N, 784) `images` whose most probable class is `labels`."""
    with torch.inference_mode():
        return fraction_correct(model(images), labels)


def fraction_correct(logits, labels):
    # A count divided in Python: 0.8344, not float32's 0.8343999981880188.
    return (logits.argmax(dim=1) == labels).sum().item() / labels.shape[0]


def epoch_figures(batch_losses, batch_logits, labels):
    """Mean loss and fraction correct over an epoch's own batches, as Python floats.

    batch_losses: each batch's mean loss, () each; batch_logits: (b, 10)
    each; labels: (N,), in the order the batches took them.
    """
    with torch.inference_mode():
        sizes = torch.tensor([logits.shape[0] for logits in batch_logits], dtype=torch.float64)
        loss_sum = (torch.stack(batch_losses).double().cpu() * sizes).sum().item()
        return loss_sum / labels.shape[0], fraction_correct(torch.cat(batch_logits), labels)


def train(train_set, test_set, lr, momentum, batch_size, epochs, seed, device="cpu", on_epoch=None):
    """Train as the notebook does; returns (model, history, diverged_at_epoch or None).

    history[e] = {epoch, train_loss, train_accuracy, test_accuracy}. The
    training figures come from the epoch's own forward passes (the model
    moves while they are taken), so they cost no extra pass over the data:
    each batch's loss and logits are kept, and summed up once the epoch ends.
    """
    torch.manual_seed(seed)
    device = torch.device(device)
    images, labels = (t.to(device) for t in train_set)
    test_images, test_labels = (t.to(device) for t in test_set)
    model = make_model().to(device)
    criterion = nn.CrossEntropyLoss()
    # fused: the same update (buf = momentum * buf + grad; w -= lr * buf) in
    # one kernel instead of a few per parameter, which halves the optimizer's
    # share of a step this small.
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, fused=True)
    # Shuffles come from their own generator on the CPU: the same batches on every device.
    shuffle = torch.Generator().manual_seed(seed)
    history, first_loss = [], None

    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(images.shape[0], generator=shuffle).to(device)
        batch_losses, batch_logits = [], []
        for batch in order.split(batch_size):
            # index_select, not images[batch]: the same rows, where advanced
            # indexing took three times as long and was a step's largest cost.
            inputs, targets = images.index_select(0, batch), labels.index_select(0, batch)
            optimizer.zero_grad()
            logits = model(inputs)
            loss = criterion(logits, targets)
            loss.backward()
            optimizer.step()
            # Kept, not read: .item() here would wait for a GPU at every step.
            batch_losses.append(loss.detach())
            batch_logits.append(logits.detach())
        model.eval()
        train_loss, train_accuracy = epoch_figures(batch_losses, batch_logits, labels.index_select(0, order))
        if first_loss is None:
            first_loss = batch_losses[0].item()
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "test_accuracy": accuracy(model, test_images, test_labels),
        }
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if not math.isfinite(train_loss) or train_loss > DIVERGENCE_FACTOR * first_loss:
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

    started = time.perf_counter()
    # Each epoch's figures on stderr: on a terminal a bar, in a log one line per epoch.
    with progress(config["epochs"], "train_nn", "epoch", interval_s=0) as shown:
        model, history, diverged_at = train(
            train_set, test_set, config["lr"], config["momentum"], config["batch_size"], config["epochs"],
            params["seed"], device,
            on_epoch=lambda record: shown.step(**{key.replace("_", " "): value for key, value in record.items()
                                                  if key != "epoch"}),
        )
    elapsed = time.perf_counter() - started

    train_loss, train_accuracy = loss_and_accuracy(model, *(t.to(device) for t in train_set))
    metrics = {
        "train_accuracy": train_accuracy,
        "train_loss": train_loss,
        "epochs_run": len(history),
        "diverged": diverged_at is not None,
        "diverged_at_epoch": diverged_at,
    }
    save_tensors(args.model, model.state_dict())
    write_csv(args.history, pd.DataFrame(history))
    # Under the model's name, as in evaluate.json: `dvc exp show` then names
    # every column by a short unique key (nn.train_accuracy, nn.accuracy).
    write_json(args.metrics, {"nn": metrics})
    print(
        f"train_nn: {len(history)} epochs in {elapsed:.1f} s on {device} ({threads} threads, "
        f"{elapsed / len(history):.2f} s/epoch), train accuracy {metrics['train_accuracy']:.4f}"
        + (f", DIVERGED at epoch {diverged_at}" if diverged_at else "")
    )


if __name__ == "__main__":
    main()
