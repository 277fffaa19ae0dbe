"""End to end: a wrong entry in params.yaml stops `dvc repro` with one line, never a traceback.

One reproduced project serves the whole table: each case writes its bad
params.yaml, runs the real `dvc repro`, and puts the good file back.
A stage checks its params before any work, so a failed case changes
nothing the next case could see but its own deleted outputs, which DVC
regenerates whenever a later case needs them.
"""

import pytest
from conftest import copy_project, dvc, set_params
from ruamel.yaml import YAML


@pytest.fixture(scope="module")
def shared_project(reproduced_template, module_tmp_path):
    return copy_project(reproduced_template, module_tmp_path / "project")


@pytest.fixture
def restored(shared_project):
    """The shared project; params.yaml is put back after the test."""
    params = shared_project / "params.yaml"
    good = params.read_text()
    yield shared_project
    params.write_text(good)


# Every rule is checked in tests/test_params.py; here, one of each kind through the real `dvc repro`.
CASES = [
    # (stage to reproduce, {dotted key: bad value}, [texts the one error line must hold])
    ("train_scratch", {"train_scratch.lr": -0.1}, ["'train_scratch.lr'", "got -0.1", "a finite number > 0"]),
    # A mistyped key is an error, not a silently ignored setting.
    ("train_nn", {"train_nn.epoch": 3},
     ["unknown key 'train_nn.epoch'", "(value 3)", "allowed keys in 'train_nn': lr, momentum, batch_size, epochs"]),
    ("download", {"download.mirrors": "http://127.0.0.1:1/"},
     ["'download.mirrors'", "got 'http://127.0.0.1:1/'", "a list of URLs or folder paths"]),
    # Plain `dvc repro`: the stages before train_nn are up to date, train_nn stops the run.
    (None, {"train_nn": 5}, ["'train_nn'", "got 5", "a section with keys lr, momentum, batch_size, epochs, device"]),
]


@pytest.mark.parametrize(("stage", "changes", "expected"), CASES, ids=lambda case: None)
def test_bad_param_stops_dvc_repro_with_one_line(restored, stage, changes, expected):
    lock_before = (restored / "dvc.lock").read_text()
    set_params(restored, changes)

    result = dvc(restored, "repro", *([stage] if stage else []), check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    for text in expected:
        assert text in errors[0], errors[0]
    # Nothing of the failed run is recorded as a result.
    assert (restored / "dvc.lock").read_text() == lock_before


def test_a_missing_section_is_caught_by_dvc_in_one_line(restored):
    path = restored / "params.yaml"
    params = YAML().load(path.read_text())
    del params["train_nn"]
    with open(path, "w") as f:
        YAML().dump(params, f)

    result = dvc(restored, "repro", "train_nn", check=False)

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "Parameters 'train_nn' are missing from 'params.yaml'" in result.stderr


def test_a_learning_rate_written_1e_3_is_a_number(reproduced):
    # YAML 1.2, as DVC reads it: 1e-3 is the float 0.001, not the string '1e-3'.
    path = reproduced / "params.yaml"
    text, replaced = path.read_text(), 0
    lines = text.splitlines()
    section = None
    for i, line in enumerate(lines):
        if line and not line.startswith(" "):
            section = line.split(":")[0]
        if section == "train_scratch" and line.strip().startswith("lr:"):
            lines[i], replaced = "  lr: 1e-3", replaced + 1
    assert replaced == 1
    path.write_text("\n".join(lines) + "\n")

    result = dvc(reproduced, "repro", "train_scratch")

    assert "Running stage 'train_scratch'" in result.stdout  # run for real, not restored from a cache
    assert "error:" not in result.stderr
    lock = YAML(typ="safe").load((reproduced / "dvc.lock").read_text())
    assert lock["stages"]["train_scratch"]["params"]["params.yaml"]["train_scratch"]["lr"] == 0.001
    assert (reproduced / "data/models/scratch.safetensors").stat().st_size > 0
