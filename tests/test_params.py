"""fmnist/params.py: params.yaml read as DVC reads it, every wrong value rejected in one line."""

import math

import pytest
import yaml
from conftest import PROJECT_ROOT

from fmnist.errors import UserError
from fmnist.params import SCHEMA, Yaml12Loader, load_params

# Every entry as raw YAML text, so that a case can write exactly what a user would.
GOOD = {
    "seed": "20190187",
    "download": {"mirrors": "[]"},
    "train_scratch": {"lr": "0.1", "max_iter": "400", "tol": "1.0e-5", "device": "auto"},
    "train_nn": {"lr": "0.1", "momentum": "0.5", "batch_size": "50", "epochs": "15", "device": "auto"},
}
MISSING = object()


def params_text(changes=None):
    """GOOD as YAML text, with {"section.key": raw YAML text or MISSING} applied."""
    params = {name: dict(value) if isinstance(value, dict) else value for name, value in GOOD.items()}
    for dotted, raw in (changes or {}).items():
        section, _, key = dotted.partition(".")
        if not key:
            if raw is MISSING:
                del params[section]
            else:
                params[section] = raw
        elif raw is MISSING:
            del params[section][key]
        else:
            params[section][key] = raw
    lines = []
    for name, value in params.items():
        if isinstance(value, dict):
            lines.append(f"{name}:")
            lines += [f"  {key}: {raw}" for key, raw in value.items()]
        else:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"


def load(tmp_path, text, *names):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_params(*names, path=path)


def test_the_projects_params_yaml_is_valid():
    params = load_params(*SCHEMA, path=PROJECT_ROOT / "params.yaml")
    assert set(params) == set(SCHEMA)
    for section, schema in SCHEMA.items():
        if isinstance(schema, dict):
            assert set(params[section]) == set(schema), section


def test_good_params_come_back_as_python_values(tmp_path):
    params = load(tmp_path, params_text(), "seed", "download", "train_scratch", "train_nn")
    assert params["seed"] == 20190187
    assert params["download"] == {"mirrors": []}
    assert params["train_scratch"] == {"lr": 0.1, "max_iter": 400, "tol": 1e-5, "device": "auto"}
    assert params["train_nn"]["momentum"] == 0.5 and params["train_nn"]["epochs"] == 15


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1e-3", 0.001), ("1E-3", 0.001), ("+1e-3", 0.001), (".5", 0.5), ("2", 2), ("1_0", 10)],
)
def test_numbers_are_read_as_yaml_1_2_reads_them(tmp_path, raw, expected):
    # PyYAML (YAML 1.1) would read 1e-3 as the string '1e-3'; DVC reads a number.
    params = load(tmp_path, params_text({"train_nn.lr": raw}), "train_nn")
    assert params["train_nn"]["lr"] == expected
    assert not isinstance(params["train_nn"]["lr"], str)


SCALARS = [
    "1e-3", "1E-3", "+1e-3", "-1e-3", "3e+2", "1e3", "1.0e-5", ".5", "+.5", "1.", "0.1", "1_000.5",
    "2", "+2", "-0", "010", "0o10", "-0o7", "0x1F", "0b101", "1_0", "2019_0187",
    "true", "True", "FALSE", "on", "off", "yes", "No", "y", "n",
    "null", "~", ".inf", "-.inf", ".nan", "NaN", "inf", "1:20", "1e", "e3", "1.2.3", "0x", ".",
]


@pytest.mark.parametrize("raw", SCALARS)
def test_each_scalar_reads_as_dvcs_own_yaml_reader_reads_it(raw):
    # DVC reads params.yaml with ruamel.yaml as YAML 1.2: the second, independent reading.
    from ruamel.yaml import YAML

    ours = yaml.load(f"value: {raw}", Loader=Yaml12Loader)["value"]
    dvcs = YAML(typ="safe").load(f"value: {raw}")["value"]
    assert (type(ours), repr(ours)) == (type(dvcs), repr(dvcs))


def test_pyyamls_own_safe_loader_is_left_as_it_was():
    assert yaml.safe_load("value: 1e-3")["value"] == "1e-3"
    assert yaml.safe_load("value: on")["value"] is True


@pytest.mark.parametrize(
    ("dotted", "raw", "key", "given", "allowed"),
    [
        ("train_scratch.lr", "0", "'train_scratch.lr'", "got 0", "a finite number > 0"),
        ("train_scratch.lr", "-0.1", "'train_scratch.lr'", "got -0.1", "a finite number > 0"),
        ("train_scratch.lr", ".nan", "'train_scratch.lr'", "got nan", "a finite number > 0"),
        ("train_scratch.lr", ".inf", "'train_scratch.lr'", "got inf", "a finite number > 0"),
        ("train_scratch.lr", "1e400", "'train_scratch.lr'", "got inf", "a finite number > 0"),
        ("train_scratch.lr", "'0.1'", "'train_scratch.lr'", "got '0.1'", "a finite number > 0"),
        ("train_scratch.lr", "true", "'train_scratch.lr'", "got True", "a finite number > 0"),
        ("train_scratch.lr", "[0.1]", "'train_scratch.lr'", "got [0.1]", "a finite number > 0"),
        ("train_scratch.max_iter", "0", "'train_scratch.max_iter'", "got 0", "an integer >= 1"),
        ("train_scratch.max_iter", "-3", "'train_scratch.max_iter'", "got -3", "an integer >= 1"),
        ("train_scratch.max_iter", "10.0", "'train_scratch.max_iter'", "got 10.0", "an integer >= 1"),
        ("train_scratch.max_iter", "1e3", "'train_scratch.max_iter'", "got 1000.0", "an integer >= 1"),
        ("train_scratch.max_iter", "'10'", "'train_scratch.max_iter'", "got '10'", "an integer >= 1"),
        ("train_scratch.max_iter", "true", "'train_scratch.max_iter'", "got True", "an integer >= 1"),
        ("train_scratch.tol", "-1e-5", "'train_scratch.tol'", "got -1e-05", "a finite number >= 0"),
        ("train_scratch.tol", ".nan", "'train_scratch.tol'", "got nan", "a finite number >= 0"),
        ("train_scratch.tol", "", "'train_scratch.tol'", "got None", "a finite number >= 0"),
        ("train_scratch.tol", MISSING, "'train_scratch.tol' is missing", "missing", "a finite number >= 0"),
        ("train_scratch.device", "gpu", "'train_scratch.device'", "got 'gpu'", "one of 'auto', 'cpu', 'cuda'"),
        ("train_scratch.maxiter", "5", "'train_scratch.maxiter'", "(value 5)",
         "allowed keys in 'train_scratch': lr, max_iter, tol, device"),
        ("train_nn.lr", "-.inf", "'train_nn.lr'", "got -inf", "a finite number > 0"),
        ("train_nn.momentum", "1", "'train_nn.momentum'", "got 1", "a finite number >= 0 and < 1"),
        ("train_nn.momentum", "1.5", "'train_nn.momentum'", "got 1.5", "a finite number >= 0 and < 1"),
        ("train_nn.momentum", "-0.1", "'train_nn.momentum'", "got -0.1", "a finite number >= 0 and < 1"),
        ("train_nn.batch_size", "0", "'train_nn.batch_size'", "got 0", "an integer >= 1"),
        ("train_nn.batch_size", "50.5", "'train_nn.batch_size'", "got 50.5", "an integer >= 1"),
        ("train_nn.epochs", "-1", "'train_nn.epochs'", "got -1", "an integer >= 1"),
        ("train_nn.epochs", "null", "'train_nn.epochs'", "got None", "an integer >= 1"),
        ("train_nn.epoch", "15", "'train_nn.epoch'", "(value 15)", "allowed keys in 'train_nn': lr, momentum"),
        ("train_nn.lr", MISSING, "'train_nn.lr' is missing", "missing", "a finite number > 0"),
        ("train_nn", "5", "'train_nn'", "got 5", "a section with keys lr, momentum, batch_size, epochs, device"),
        ("seed", "-1", "'seed'", "got -1", "an integer >= 0"),
        ("seed", "1.5", "'seed'", "got 1.5", "an integer >= 0"),
        ("seed", "18446744073709551616", "'seed'", "got 18446744073709551616", "<= 18446744073709551615"),
        ("seed", MISSING, "'seed' is missing", "missing", "an integer >= 0"),
        ("train_nn", MISSING, "'train_nn' is missing", "missing", "a section with keys lr, momentum"),
        ("download.mirrors", "http://example.org/", "'download.mirrors'", "got 'http://example.org/'",
         "a list of URLs or folder paths"),
        ("download.mirrors", "['']", "'download.mirrors'", "got ['']", "a list of URLs or folder paths"),
        ("download.mirrors", "[1]", "'download.mirrors'", "got [1]", "a list of URLs or folder paths"),
        ("download.mirror", "[]", "'download.mirror'", "(value [])", "allowed keys in 'download': mirrors"),
    ],
)
def test_a_wrong_value_is_one_line_naming_key_value_and_what_is_allowed(tmp_path, dotted, raw, key, given, allowed):
    section = dotted.partition(".")[0]
    with pytest.raises(UserError) as caught:
        load(tmp_path, params_text({dotted: raw}), section)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'params.yaml'}: ")
    assert key in message and given in message and allowed in message, message


def test_only_the_sections_asked_for_are_checked(tmp_path):
    # train_scratch must run even while the user is mid-way through editing train_nn.
    params = load(tmp_path, params_text({"train_nn.lr": "-1"}), "train_scratch")
    assert params["train_scratch"]["lr"] == 0.1


def test_boundary_values_are_accepted(tmp_path):
    text = params_text({
        "seed": "0", "train_scratch.tol": "0", "train_scratch.max_iter": "1", "train_nn.momentum": "0",
        "train_nn.batch_size": "1", "train_nn.epochs": "1", "train_nn.lr": "1e-12",
        "download.mirrors": "['http://127.0.0.1:1/', 'relative/folder']",
    })
    params = load(tmp_path, text, "seed", "download", "train_scratch", "train_nn")
    assert params["seed"] == 0 and params["train_scratch"]["tol"] == 0
    assert params["train_nn"]["momentum"] == 0 and math.isclose(params["train_nn"]["lr"], 1e-12)
    assert params["download"]["mirrors"] == ["http://127.0.0.1:1/", "relative/folder"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train_nn: [unclosed\n", "is not valid YAML"),
        ("- a list\n- not a mapping\n", "must be a mapping of sections, got list"),
        ("", "must be a mapping of sections, got NoneType"),
    ],
)
def test_a_broken_file_is_one_line(tmp_path, text, expected):
    with pytest.raises(UserError) as caught:
        load(tmp_path, text, "train_nn")
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_says_where_to_run_from(tmp_path):
    with pytest.raises(UserError, match="not found; run the stage from the project's root folder"):
        load_params("train_nn", path=tmp_path / "params.yaml")


def test_yaml_tags_that_would_build_python_objects_are_refused(tmp_path):
    text = params_text({"train_nn.lr": "!!python/object/apply:os.system ['echo hacked']"})
    with pytest.raises(UserError, match="is not valid YAML"):
        load(tmp_path, text, "train_nn")
