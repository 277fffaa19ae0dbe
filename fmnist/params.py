"""Read params.yaml as DVC reads it, and reject a wrong value before any work.

PyYAML reads the file, with YAML 1.2's booleans and numbers (DVC reads
params.yaml as YAML 1.2): `1e-3` is a number here, as it is for
`dvc exp run -S`, where PyYAML's own YAML 1.1 resolver would read the
string '1e-3', and `on` or `yes` stay strings. Every message names the
key, the value given and what is allowed, the way scikit-learn checks its
estimators' parameters.
"""

import math
import re
from pathlib import Path

import yaml

from fmnist.errors import UserError

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


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading booleans and numbers as YAML 1.2 (and so DVC) does.

    YAML 1.1 wants a dot in a float (`1e-3` is a string there), reads `010`
    as octal and `on`/`yes` as true. The 1.2 rules below give what DVC's
    YAML 1.2 reader gives, digit-group underscores included.
    """


_YAML_1_1_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_1_1_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DIGITS = "[0-9][0-9_]*"
_EXPONENT = "[eE][-+]?[0-9]+"
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(rf"^[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|{_DIGITS})$"), list("-+0123456789"))
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(rf"^[-+]?(?:{_DIGITS}\.[0-9_]*(?:{_EXPONENT})?|\.[0-9][0-9_]*(?:{_EXPONENT})?"
               rf"|{_DIGITS}{_EXPONENT}|\.(?:inf|Inf|INF))$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


def _yaml_1_2_int(loader, node):
    # YAML 1.1's constructor reads a leading 0 as octal and knows no 0o.
    text = loader.construct_scalar(node).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    bases = {"0b": 2, "0o": 8, "0x": 16}
    return sign * int(digits[2:], bases[digits[:2]]) if digits[:2] in bases else sign * int(digits)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _yaml_1_2_int)


def load_params(*names, path=PARAMS_FILE):
    """Return {name: validated value} for the top-level entries `names` of params.yaml."""
    params = _read_yaml(Path(path))
    return {name: _validate(name, params, path) for name in names}


def parse_yaml(text, path):
    """The YAML `text` of the file `path`, read with YAML 1.2's numbers; bad YAML is one UserError line."""
    try:
        return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader: no Python objects
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        raise UserError(f"{path} is not valid YAML: {problem}") from None


def _read_yaml(path):
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} not found; run the stage from the project's root folder") from None
    data = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a mapping of sections, got {type(data).__name__}")
    return data


def _validate(name, params, path):
    schema = SCHEMA[name]
    if name not in params:
        allowed = schema(None)[1] if callable(schema) else f"a section with keys {', '.join(schema)}"
        raise UserError(f"{path}: '{name}' is missing; it must be {allowed}")
    value = params[name]
    if callable(schema):
        _check(f"{name}", value, schema, path)
        return value
    if not isinstance(value, dict):
        raise UserError(f"{path}: '{name}' must be a section with keys {', '.join(schema)}; got {value!r}")
    unknown = sorted(set(value) - set(schema))
    if unknown:
        raise UserError(
            f"{path}: unknown key '{name}.{unknown[0]}' (value {value[unknown[0]]!r}); "
            f"allowed keys in '{name}': {', '.join(schema)}"
        )
    for key, check in schema.items():
        if key not in value:
            raise UserError(f"{path}: '{name}.{key}' is missing; it must be {check(None)[1]}")
        _check(f"{name}.{key}", value[key], check, path)
    return dict(value)


def _check(key, value, check, path):
    ok, allowed = check(value)
    if not ok:
        raise UserError(f"{path}: '{key}' must be {allowed}; got {value!r}")


def resolve_device(name):
    """A `device` param -> torch.device: 'auto' is CUDA when a GPU is usable, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for, but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(name)
