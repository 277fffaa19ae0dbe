"""Stage `train_nn`: the notebook's torch.nn model, Linear(784, 10) + CrossEntropyLoss + SGD (fmnist/linear.py)."""

import argparse
import time

import torch

from fmnist import linear
from fmnist.data import load_split
from fmnist.errors import one_line_errors
from fmnist.files import write_csv, write_json
from fmnist.models import save_model
from fmnist.params import load_params, resolve_device


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder written by the flatten stage")
    parser.add_argument("--model", required=True, help="safetensors file for the Linear layer")
    parser.add_argument("--metrics", required=True, help="JSON metrics file")
    parser.add_argument("--history", required=True, help="CSV with one row per epoch")
    args = parser.parse_args(argv)

    params = load_params("train_nn", "seed")
    config = params["train_nn"]
    device = resolve_device(config["device"])
    torch.set_flush_denormal(True)
    # A step on 50 images is too small for a second thread to help; one thread
    # also lets two sweep workers share two cores.
    torch.set_num_threads(1)
    train_set, test_set = load_split(args.data, "train"), load_split(args.data, "test")

    started = time.perf_counter()

    def show_progress(record):
        print(f"train_nn: epoch {record['epoch']}/{config['epochs']}, train loss {record['train_loss']:.4f}, "
              f"train accuracy {record['train_accuracy']:.4f}, test accuracy {record['test_accuracy']:.4f}, "
              f"{time.perf_counter() - started:.1f} s", flush=True)

    model, history, diverged_at = linear.train(
        train_set, test_set, config["lr"], config["momentum"], config["batch_size"], config["epochs"],
        params["seed"], device, on_epoch=show_progress)
    # The model kept (the last one before a diverging epoch) on the whole training set.
    train_loss, train_accuracy = linear.loss_and_accuracy(model, *(t.to(device) for t in train_set))
    metrics = {"train_loss": train_loss, "train_accuracy": train_accuracy, "epochs_run": len(history),
               "diverged": diverged_at is not None}
    save_model(args.model, model.state_dict())
    write_csv(args.history, history)
    # Under the model's name, as in evaluate_*.json: `dvc exp show` names each column by a short unique key.
    write_json(args.metrics, {"nn": metrics})
    print(f"train_nn: {len(history)} epochs in {time.perf_counter() - started:.1f} s on {device}"
          + (f", DIVERGED at epoch {diverged_at}" if diverged_at else ""))


if __name__ == "__main__":
    main()
