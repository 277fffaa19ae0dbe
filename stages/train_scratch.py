"""Stage `train_scratch`: the notebook's softmax regression from scratch, on Fashion-MNIST.

Full-batch gradient descent on the 60,000 training images with an intercept
column, X = [1, pixels / 255] in float32, gradients by autograd
(fmnist/softmax.py), as the notebook has it.
"""

import argparse
import time

import torch

from fmnist import softmax
from fmnist.data import N_CLASSES, load_split
from fmnist.errors import one_line_errors
from fmnist.files import write_csv, write_json
from fmnist.models import save_model
from fmnist.params import load_params, resolve_device

PRINT_EVERY = 25  # iterations between two progress lines


def train(pixels, labels, lr, max_iter, tol, device="cpu", on_iteration=None):
    """(N, 784) float32 pixels in [0, 1], (N,) labels -> (Descent result, training accuracy of its Theta)."""
    X = softmax.add_intercept(pixels.to(device))
    y = labels.to(device)
    result = softmax.gradient_descent(X, softmax.one_hot(y, N_CLASSES), lr, max_iter, tol, on_iteration=on_iteration)
    # A count divided in Python: 0.8154333333333333, not float32's 0.8154333233833313.
    train_accuracy = (softmax.predict(X, result.Theta) == y).sum().item() / y.shape[0]
    return result, train_accuracy


def summarize(result, train_accuracy):
    """The metrics of the Theta kept: its loss and accuracy, the iterations run, how the descent stopped."""
    # A diverged descent keeps the Theta before the last update: the loss before the last one is its loss.
    final_loss = result.loss_history[-2] if result.diverged and result.iterations > 1 else result.loss_history[-1]
    return {
        "train_loss": final_loss,
        "train_accuracy": train_accuracy,
        "iterations": result.iterations,
        "converged": result.converged,
        "diverged": result.diverged,
    }


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder written by the flatten stage")
    parser.add_argument("--model", required=True, help="safetensors file for Theta")
    parser.add_argument("--metrics", required=True, help="JSON metrics file")
    parser.add_argument("--loss-curve", required=True, help="CSV of the loss at each iteration")
    args = parser.parse_args(argv)

    params = load_params("train_scratch")["train_scratch"]
    device = resolve_device(params["device"])
    # A confident model's softmax underflows into denormal floats, which CPUs handle many times slower.
    torch.set_flush_denormal(True)
    pixels, labels = load_split(args.data, "train")

    started = time.perf_counter()
    losses = []

    def show_progress(loss):
        losses.append(loss)
        if len(losses) % PRINT_EVERY == 0:
            print(f"train_scratch: iteration {len(losses)}/{params['max_iter']}, loss {loss:.4f}, "
                  f"{time.perf_counter() - started:.1f} s", flush=True)

    result, train_accuracy = train(pixels, labels, params["lr"], params["max_iter"], params["tol"], device,
                                   on_iteration=show_progress)
    metrics = summarize(result, train_accuracy)
    save_model(args.model, {"Theta": result.Theta})
    write_csv(args.loss_curve, [{"iteration": iteration, "loss": loss}
                                for iteration, loss in enumerate(result.loss_history, start=1)])
    # Under the model's name, as in evaluate_*.json: `dvc exp show` names each column by a short unique key.
    write_json(args.metrics, {"scratch": metrics})
    print(f"train_scratch: {result.iterations} iterations in {time.perf_counter() - started:.1f} s on {device}, "
          f"loss {metrics['train_loss']:.4f}, train accuracy {train_accuracy:.4f}"
          + (f", DIVERGED at iteration {result.iterations}" if result.diverged else ""))


if __name__ == "__main__":
    main()
