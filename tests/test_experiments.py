"""End to end: experiments run in two clones, shared with `dvc exp push`, seen and applied in a third.

The git remote is a bare repository, the DVC remote moto's S3 server on
127.0.0.1; the settings are conftest.FAST_PARAMS.
"""

import csv
import io
import json
import sys

import pytest
from conftest import commit, copy_project, dvc, run, stages_run
from s3_server import S3Server

pytestmark = pytest.mark.slow

LRS = {"first": 0.05, "second": 0.2}


@pytest.fixture(scope="module")
def clones(reproduced_template, module_tmp_path):
    """{clone name: its folder}: two that each ran and pushed an experiment, and a third that pulled them."""
    root = module_tmp_path
    author = copy_project(reproduced_template, root / "author")
    with S3Server() as s3, pytest.MonkeyPatch.context() as env:
        for name, value in s3.env.items():
            env.setenv(name, value)
        dvc(author, "remote", "add", "-d", "s3", f"s3://{s3.bucket}/fmnist")
        dvc(author, "remote", "modify", "s3", "endpointurl", s3.url)
        commit(author, "an S3 remote")
        dvc(author, "push")
        run(root, "git", "clone", "-q", "--bare", str(author), str(root / "origin.git"))
        folders = {}
        for name in ("first", "second", "third"):
            folders[name] = root / name
            run(root, "git", "clone", "-q", str(root / "origin.git"), str(folders[name]))
        for name, lr in LRS.items():
            dvc(folders[name], "pull")
            ran = dvc(folders[name], "exp", "run", "-n", f"lr-{lr}", "-S", f"train_nn.lr={lr}").stdout
            assert stages_run(ran) == ["train_nn", "evaluate@nn"], ran
            dvc(folders[name], "exp", "push", "origin")
        dvc(folders["third"], "exp", "pull", "origin")
        yield folders


def exp_show_rows(project):
    """`dvc exp show --csv`'s rows of experiments (not the workspace or the baseline), by name."""
    rows = csv.DictReader(io.StringIO(dvc(project, "exp", "show", "--csv").stdout))
    return {row["Experiment"]: row for row in rows if row["Experiment"]}


def test_the_third_clone_shows_each_experiment_with_the_metrics_its_clone_computed(clones):
    shown = exp_show_rows(clones["third"])
    assert set(shown) == {f"lr-{lr}" for lr in LRS.values()}
    for name, lr in LRS.items():
        row = shown[f"lr-{lr}"]
        assert float(row["train_nn.lr"]) == lr
        evaluate = json.loads((clones[name] / "metrics" / "evaluate_nn.json").read_text())
        assert float(row["nn.accuracy"]) == evaluate["nn"]["accuracy"]


def test_the_sweep_report_table_is_what_dvc_exp_show_says(clones):
    third = clones["third"]
    run(third, sys.executable, "-m", "tools.sweep_report")
    report = {row["experiment"]: row for row in csv.DictReader((third / "reports" / "sweep.csv").open())}
    shown = exp_show_rows(third)
    assert set(report) == set(shown)
    for name, row in shown.items():
        for column in ("train_nn.lr", "train_nn.epochs", "nn.accuracy", "nn.train_accuracy", "scratch.accuracy"):
            assert float(report[name][column]) == float(row[column]), (name, column)
        line = next(line for line in (third / "reports" / "sweep.md").read_text().splitlines() if name in line)
        assert f"{float(row['nn.accuracy']):.4f}" in line and f"{float(row['nn.train_accuracy']):.4f}" in line


def test_an_experiment_applied_in_the_third_clone_restores_its_model_and_trains_nothing(clones):
    third, first = clones["third"], clones["first"]
    dvc(third, "exp", "apply", f"lr-{LRS['first']}")
    dvc(third, "pull")
    ran = dvc(third, "repro").stdout
    assert stages_run(ran) == [], ran
    for path in ("data/models/nn.safetensors", "metrics/evaluate_nn.json", "metrics/figures/weights_nn.png"):
        assert (third / path).read_bytes() == (first / path).read_bytes(), path
