"""Read params.yaml as DVC reads it, and reject a wrong value before any work.

YAML 1.2 (ruamel, as DVC uses): `1e-3` is a number here, as it is for
`dvc exp run -S`, where PyYAML (YAML 1.1) would read a string. Every
message names the key, the value given and what is allowed, the way
scikit-learn checks its estimators' parameters.
"""

import math
from pathlib import Path

from stages.common import StageError

PARAMS_FILE = "params.yaml"
DEVICES = ("auto", "cpu", "cuda")


def _number(low, low_inclusive=False, high=None):
    bound = f">= {low}" if low_inclusive else f"> {low}"
    allowed = f"a finite number {bound}" + (f" and < {high}" if high is not None else "")

    def check(value):
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value >= low if low_inclusive else value > low)
            and (high is None or value < high)
        )
        return ok, allowed

    return check


def _integer(low, high=None):
    allowed = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")

    def check(value):
        ok = (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= low
            and (high is None or value <= high)
        )
        return ok, allowed

    return check


def _one_of(*choices):
    def check(value):
        return value in choices, "one of " + ", ".join(repr(c) for c in choices)

    return check


def _list_of_strings(value):
    ok = isinstance(value, list) and all(isinstance(item, str) and item for item in value)
    return ok, "a list of URLs or folder paths (may be empty: [])"


# Each stage's section, key by key: what is allowed.
SCHEMA = {
    # torch.manual_seed takes at most 64 bits.
    "seed": _integer(0, high=2**64 - 1),
    "download": {"mirrors": _list_of_strings},
    "train_scratch": {
        "lr": _number(0),
        "max_iter": _integer(1),
        "tol": _number(0, low_inclusive=True),
        "device": _one_of(*DEVICES),
    },
    "train_nn": {
        "lr": _number(0),
        "momentum": _number(0, low_inclusive=True, high=1),
        "batch_size": _integer(1),
        "epochs": _integer(1),
        "device": _one_of(*DEVICES),
    },
}


def load_params(*names, path=PARAMS_FILE):
    """Return {name: validated value} for the top-level entries `names` of params.yaml."""
    params = _read_yaml(Path(path))
    return {name: _validate(name, params, path) for name in names}


def _read_yaml(path):
    from ruamel.yaml import YAML, YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StageError(f"{path} not found; run the stage from the project's root folder") from None
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as error:
        problem = " ".join(str(error).split())
        raise StageError(f"{path} is not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise StageError(f"{path} must be a mapping of sections, got {type(data).__name__}")
    return data


def _validate(name, params, path):
    schema = SCHEMA[name]
    if name not in params:
        allowed = schema(None)[1] if callable(schema) else f"a section with keys {', '.join(schema)}"
        raise StageError(f"{path}: '{name}' is missing; it must be {allowed}")
    value = params[name]
    if callable(schema):
        _check(f"{name}", value, schema, path)
        return value
    if not isinstance(value, dict):
        raise StageError(f"{path}: '{name}' must be a section with keys {', '.join(schema)}; got {value!r}")
    unknown = sorted(set(value) - set(schema))
    if unknown:
        raise StageError(
            f"{path}: unknown key '{name}.{unknown[0]}' (value {value[unknown[0]]!r}); "
            f"allowed keys in '{name}': {', '.join(schema)}"
        )
    for key, check in schema.items():
        if key not in value:
            raise StageError(f"{path}: '{name}.{key}' is missing; it must be {check(None)[1]}")
        _check(f"{name}.{key}", value[key], check, path)
    return dict(value)


def _check(key, value, check, path):
    ok, allowed = check(value)
    if not ok:
        raise StageError(f"{path}: '{key}' must be {allowed}; got {value!r}")
