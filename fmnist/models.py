"""The trained models as safetensors files (plain arrays, nothing pickled), and their predictions in numpy.

- scratch: Theta (10, 785), the intercept in column 0 (train_scratch);
- nn: nn.Linear(784, 10)'s weight (10, 784) and bias (10,) (train_nn).

Both are linear: logits = pixels @ W^T + b. numpy computes them without
loading torch, for evaluate and predict.
"""

from pathlib import Path

import numpy as np

from fmnist.data import N_CLASSES, N_FEATURES
from fmnist.errors import UserError

SHAPES = {
    "scratch": {"Theta": (N_CLASSES, N_FEATURES + 1)},
    "nn": {"weight": (N_CLASSES, N_FEATURES), "bias": (N_CLASSES,)},
}
TRAINED_BY = {"scratch": "train_scratch", "nn": "train_nn"}


def save_model(path, tensors):
    """Write a {name: torch tensor} dict as a safetensors file, whole or not at all."""
    from safetensors.torch import save_file

    from fmnist.files import atomic_path

    with atomic_path(path) as tmp:
        save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, str(tmp))


def load_model(name, source):
    """Model `name`'s {array name: float32 array} from a file path, or from the file's bytes; shapes checked."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    if isinstance(source, bytes):
        data, where = source, f"the {name} model"
    else:
        where = str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise UserError(f"model file {source} does not exist; run `dvc repro {TRAINED_BY[name]}`") from None
    try:
        arrays = load(data)
    except SafetensorError as error:
        raise UserError(f"{where} is not a safetensors model file ({' '.join(str(error).split())}); "
                        f"rerun `dvc repro {TRAINED_BY[name]}`") from None
    expected = SHAPES[name]
    if {key: tuple(arrays[key].shape) for key in expected if key in arrays} != expected:
        wanted = ", ".join(f"{key} {shape}" for key, shape in expected.items())
        raise UserError(f"{where} does not hold {wanted}; rerun `dvc repro {TRAINED_BY[name]}`")
    return {key: arrays[key].astype(np.float32, copy=False) for key in expected}


def weights_and_bias(name, model):
    """((10, 784) weights, (10,) bias) of either model: the scratch model's intercept is Theta's column 0."""
    if name == "scratch":
        return model["Theta"][:, 1:], model["Theta"][:, 0]
    return model["weight"], model["bias"]


def logits(name, model, pixels):
    """(N, 784) float32 pixels in [0, 1] -> (N, 10) logits: the products softmax.predict and nn.Linear take."""
    weights, bias = weights_and_bias(name, model)
    return pixels @ weights.T + bias


def predict(name, model, pixels):
    """(N, 784) pixels -> (N,) most probable class of each row."""
    return np.argmax(logits(name, model, pixels), axis=1)
