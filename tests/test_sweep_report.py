"""stages/sweep_report.py, fed the `dvc exp show --json` of experiments run here with the real dvc.

Every expected number comes from the experiments' own commits (read through
`dvc.api.read` at each experiment's revision), not from the output under test.
"""

import csv
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import copy_project, dvc, dvc_env
from dvc.api import read as dvc_read
from ruamel.yaml import YAML

from stages import sweep_report

SWEPT_LRS = (0.05, 0.2)
QUEUED_LR = 0.7


@pytest.fixture(scope="module")
def captured(reproduced_template, module_tmp_path):
    """(project, parsed exp show): two finished experiments and one still queued."""
    project = copy_project(reproduced_template, module_tmp_path / "report")
    for lr in SWEPT_LRS:
        dvc(project, "exp", "run", "--name", f"lr-{lr}", "-S", f"train_nn.lr={lr}")
    dvc(project, "exp", "run", "--queue", "--name", "waiting", "-S", f"train_nn.lr={QUEUED_LR}")
    text = dvc(project, "exp", "show", "--json").stdout
    (project / "exp_show.json").write_text(text)
    return project, json.loads(text)


def committed(project, rev, path):
    """A file's content as the experiment's commit holds it (JSON or YAML), read through DVC's API."""
    text = dvc_read(path, repo=str(project), rev=rev)
    return json.loads(text) if path.endswith(".json") else YAML(typ="safe").load(text)


@pytest.fixture(scope="module")
def rows(captured):
    project, exp_show = captured
    experiments, _ = sweep_report.finished_experiments(exp_show)
    return sweep_report.build_rows(experiments, sweep_report.metrics_files(project / "dvc.yaml"))


def test_metrics_files_are_those_dvc_yaml_declares(captured):
    project, _ = captured
    files = sweep_report.metrics_files(project / "dvc.yaml")
    assert set(files) == {"train_scratch", "train_nn", "evaluate"}
    assert all((project / path).is_file() for path in files.values())


def test_finished_experiments_keep_the_runs_and_skip_the_queued_one(captured):
    _, exp_show = captured
    experiments, skipped = sweep_report.finished_experiments(exp_show)
    assert sorted(e["name"] for e in experiments) == sorted(f"lr-{lr}" for lr in SWEPT_LRS)
    assert ("waiting", "state queued") in skipped


def test_rows_hold_each_experiments_committed_params_and_metrics(captured, rows):
    project, _ = captured
    assert [row["train_nn.lr"] for row in rows] == sorted(SWEPT_LRS)
    for row in rows:
        params = committed(project, row["rev"], "params.yaml")
        evaluate = committed(project, row["rev"], "metrics/evaluate.json")
        train_nn = committed(project, row["rev"], "metrics/train_nn.json")["nn"]
        train_scratch = committed(project, row["rev"], "metrics/train_scratch.json")["scratch"]
        assert row["experiment"] == f"lr-{params['train_nn']['lr']}"
        assert row["train_nn.epochs"] == params["train_nn"]["epochs"]
        assert row["train_scratch.max_iter"] == params["train_scratch"]["max_iter"]
        assert row["nn_test_accuracy"] == evaluate["nn"]["accuracy"]
        assert row["scratch_test_accuracy"] == evaluate["scratch"]["accuracy"]
        assert row["nn_train_accuracy"] == train_nn["train_accuracy"]
        assert row["scratch_train_accuracy"] == train_scratch["train_accuracy"]
        assert row["scratch_iterations"] == train_scratch["iterations"]


def test_rows_keep_the_settings_that_decide_each_model(rows):
    for row in rows:
        assert row["nn_settings"]["train_nn.lr"] == row["train_nn.lr"]
        assert "seed" in row["nn_settings"] and "train_nn.momentum" in row["nn_settings"]
        assert set(row["scratch_settings"]) == {f"train_scratch.{key}" for key in ("lr", "max_iter", "tol", "device")}


def test_experiments_that_trained_a_model_alike_share_its_table_row(rows):
    # train_scratch did not rerun: both experiments trained it the same way.
    (scratch,) = sweep_report.model_rows(rows, "scratch")
    assert scratch["experiments"] == [row["experiment"] for row in rows]
    nn = sweep_report.model_rows(rows, "nn")
    assert [row["experiments"] for row in nn] == [[row["experiment"]] for row in rows]
    assert all(row["other_settings"] == {} for row in nn)


def test_a_setting_without_a_column_shows_in_the_notes(rows):
    # Made from the captured rows: the same lr and epochs, another momentum.
    other = {**rows[0], "experiment": "other-momentum", "nn_test_accuracy": 0.5,
             "nn_settings": {**rows[0]["nn_settings"], "train_nn.momentum": 0.9}}
    table = sweep_report.markdown_table([rows[0], other], "nn")
    lines = table.splitlines()[2:]
    assert len(lines) == 2
    assert any("train_nn.momentum=0.9" in line and "other-momentum" in line for line in lines)
    assert any(f"train_nn.momentum={rows[0]['nn_settings']['train_nn.momentum']:g}" in line for line in lines)


def test_markdown_table_has_a_line_per_setting_with_its_numbers(rows):
    lines = sweep_report.markdown_table(rows, "nn").splitlines()
    assert len(lines) == 2 + len(rows)
    nn_columns = [c for c in sweep_report.COLUMNS if c.model == "nn"]
    assert {line.count("|") for line in lines} == {len(nn_columns) + 3}
    for line, row in zip(lines[2:], rows, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == row["experiment"]
        assert cells[1:5] == [f"{row['train_nn.lr']:g}", str(row["train_nn.epochs"]),
                              f"{row['nn_train_accuracy']:.4f}", f"{row['nn_test_accuracy']:.4f}"]
    scratch_lines = sweep_report.markdown_table(rows, "scratch").splitlines()
    # Neither experiment changed train_scratch's params: its row is the baseline's own settings.
    assert len(scratch_lines) == 3 and f"| the defaults ({len(rows)} experiments) " in scratch_lines[2]


def test_the_row_of_the_baselines_own_params_is_called_the_defaults():
    """Labels say what a row is: the baseline commit's settings are "the defaults", not an experiment's name."""
    params = {"seed": 1, "train_nn": {"lr": 0.1, "epochs": 15}, "train_scratch": {"lr": 0.1, "max_iter": 300}}

    def experiment(name, nn_lr, scratch_lr):
        changed = {**params, "train_nn": {**params["train_nn"], "lr": nn_lr},
                   "train_scratch": {**params["train_scratch"], "lr": scratch_lr}}
        metrics = {"metrics/train_nn.json": {"nn": {"train_accuracy": nn_lr}},
                   "metrics/evaluate.json": {"nn": {"accuracy": nn_lr}, "scratch": {"accuracy": scratch_lr}},
                   "metrics/train_scratch.json": {"scratch": {"train_accuracy": scratch_lr}}}
        return {"rev": name * 7, "name": name,
                "data": {"params": {"params.yaml": {"data": changed}},
                         "metrics": {path: {"data": data} for path, data in metrics.items()}}}

    exp_show = [{"rev": "0" * 40, "data": {"params": {"params.yaml": {"data": params}}},
                 "experiments": [{"revs": [experiment("a", 0.3, 0.1)]}, {"revs": [experiment("b", 0.1, 0.3)]},
                                 {"revs": [experiment("c", 0.2, 0.1)]}]}]
    experiments, _ = sweep_report.finished_experiments(exp_show)
    files = {"train_nn": "metrics/train_nn.json", "evaluate": "metrics/evaluate.json",
             "train_scratch": "metrics/train_scratch.json"}
    rows = sweep_report.build_rows(experiments, files)
    nn = sweep_report.model_table(rows, "nn").set_index("experiments")["lr"].to_dict()
    scratch = sweep_report.model_table(rows, "scratch").set_index("experiments")["lr"].to_dict()
    assert nn == {"the defaults": "0.1", "c": "0.2", "a": "0.3"}
    assert scratch == {"the defaults (2 experiments)": "0.1", "b": "0.3"}


def test_csv_keeps_every_experiment_at_full_precision(rows):
    parsed = list(csv.DictReader(io.StringIO(sweep_report.csv_text(rows))))
    assert [r["experiment"] for r in parsed] == [row["experiment"] for row in rows]
    for line, row in zip(parsed, rows, strict=True):
        assert float(line["nn_test_accuracy"]) == row["nn_test_accuracy"]
        assert float(line["scratch_train_accuracy"]) == row["scratch_train_accuracy"]
        assert int(line["train_nn.epochs"]) == row["train_nn.epochs"]


def test_report_names_the_best_setting_of_each_model(rows):
    top = max(rows, key=lambda row: row["nn_test_accuracy"])
    report = sweep_report.markdown_report(rows)
    (nn_line,) = [line for line in report.splitlines() if line.startswith("- best nn")]
    assert f"{top['nn_test_accuracy']:.4f}" in nn_line and top["experiment"] in nn_line
    assert f"lr={top['train_nn.lr']:g}" in nn_line
    assert len(re.findall(r"^\| experiments +\|", report, re.M)) == 2


def test_accuracy_figure_plots_test_accuracy_against_lr(rows):
    nn_axes, _ = sweep_report.accuracy_figure(rows).axes
    epochs = rows[0]["train_nn.epochs"]
    lines = {line.get_label(): line for line in nn_axes.get_lines()}
    test_line = lines[f"test, epochs={epochs}"]
    np.testing.assert_array_equal(test_line.get_xdata(), [row["train_nn.lr"] for row in rows])
    np.testing.assert_array_equal(test_line.get_ydata(), [row["nn_test_accuracy"] for row in rows])
    assert nn_axes.get_xscale() == "log"


def test_command_writes_table_csv_and_plot_from_dvc_or_from_a_saved_json(captured, tmp_path):
    project, _ = captured
    command = [sys.executable, "-m", "stages.sweep_report"]
    live = subprocess.run([*command, "--out", str(tmp_path / "live")], cwd=project, env=dvc_env(),
                          capture_output=True, text=True, timeout=300)
    assert live.returncode == 0, live.stderr
    assert "skipped waiting: state queued" in live.stderr
    saved = subprocess.run([*command, "--exp-json", "exp_show.json", "--out", str(tmp_path / "saved")],
                           cwd=project, env=dvc_env(), capture_output=True, text=True, timeout=300)
    assert saved.returncode == 0, saved.stderr
    # -A adds experiments based on older commits: the template's first commit has none.
    every = subprocess.run([*command, "-A", "--out", str(tmp_path / "every")], cwd=project, env=dvc_env(),
                           capture_output=True, text=True, timeout=300)
    assert every.returncode == 0, every.stderr
    for name in ("sweep.md", "sweep.csv", "sweep.png"):
        assert (tmp_path / "live" / name).read_bytes() == (tmp_path / "saved" / name).read_bytes(), name
        assert (tmp_path / "every" / name).read_bytes() == (tmp_path / "saved" / name).read_bytes(), name
    assert (tmp_path / "live" / "sweep.md").read_text() in live.stdout


def test_no_finished_experiment_is_an_error_that_says_what_to_run(captured, tmp_path, capsys):
    _, exp_show = captured
    without = [{**baseline, "experiments": None} for baseline in exp_show]
    (tmp_path / "empty.json").write_text(json.dumps(without))
    with pytest.raises(SystemExit) as exit_info:
        sweep_report.main(["--exp-json", str(tmp_path / "empty.json"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no finished experiments" in err and "dvc exp run" in err
    assert not (tmp_path / "out").exists()
