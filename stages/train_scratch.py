"""Stage `train_scratch`: the notebook's softmax regression from scratch, on Fashion-MNIST.

Full-batch gradient descent on the 60,000 flattened training images with an
intercept column, X = [1, pixels / 255] in float32, gradients by autograd
(stages/softmax.py), as the notebook has it.
"""

import argparse
import time

import pandas as pd
import torch

from stages import softmax
from stages.common import (
    configure_torch,
    progress,
    resolve_device,
    save_tensors,
    stage_main,
    write_csv,
    write_json,
)
from stages.flatten import load_split
from stages.params import load_params

N_CLASSES = 10


def train(pixels, labels, lr, max_iter, tol, device="cpu", on_iteration=None):
    """(N, 784) float32 pixels in [0, 1], (N,) labels -> (Descent result, training accuracy).

    `on_iteration(loss)` is called after each iteration's loss (progress).
    """
    device = torch.device(device)
    X = softmax.add_intercept(pixels.to(device))
    y = labels.to(device)
    Y = softmax.one_hot(y, N_CLASSES)
    result = softmax.gradient_descent(X, Y, lr, max_iter, tol, on_iteration=on_iteration)
    # A count divided in Python: 0.8154333333333333, not float32's 0.8154333233833313.
    train_accuracy = (softmax.predict(X, result.Theta) == y).sum().item() / y.shape[0]
    return result, train_accuracy


def summarize(result, train_accuracy):
    """The metrics file's content: final loss, accuracy, iterations, how it stopped."""
    final_loss = result.loss_history[-2] if result.diverged and result.iterations > 1 else result.loss_history[-1]
    return {
        "final_loss": final_loss,
        "train_accuracy": train_accuracy,
        "iterations": result.iterations,
        "converged": result.converged,
        "diverged": result.diverged,
        "diverged_at_iteration": result.iterations if result.diverged else None,
    }


@stage_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder written by the flatten stage")
    parser.add_argument("--model", required=True, help="safetensors file for Theta")
    parser.add_argument("--metrics", required=True, help="JSON metrics file")
    parser.add_argument("--loss-curve", required=True, help="CSV of the loss at each iteration")
    args = parser.parse_args(argv)

    params = load_params("train_scratch")["train_scratch"]
    threads = configure_torch()
    device = resolve_device(params["device"])
    pixels, labels = load_split(args.data, "train")

    started = time.perf_counter()
    # Iteration, loss and rate on stderr while it runs: on a terminal a bar, in a log a line every few seconds.
    with progress(params["max_iter"], "train_scratch", "iteration") as shown:
        result, train_accuracy = train(pixels, labels, params["lr"], params["max_iter"], params["tol"], device,
                                       on_iteration=lambda loss: shown.step(loss=loss))
    elapsed = time.perf_counter() - started

    metrics = summarize(result, train_accuracy)
    save_tensors(args.model, {"Theta": result.Theta})
    loss_curve = pd.DataFrame({"iteration": range(1, result.iterations + 1), "loss": result.loss_history})
    write_csv(args.loss_curve, loss_curve)
    # Under the model's name, as in evaluate.json: `dvc exp show` then names
    # every column by a short unique key (scratch.train_accuracy, scratch.accuracy).
    write_json(args.metrics, {"scratch": metrics})
    print(
        f"train_scratch: {metrics['iterations']} iterations in {elapsed:.1f} s on {device} ({threads} threads), "
        f"loss {metrics['final_loss']:.4f}, train accuracy {train_accuracy:.4f}"
        + (f", DIVERGED at iteration {result.iterations}" if result.diverged else "")
    )


if __name__ == "__main__":
    main()
