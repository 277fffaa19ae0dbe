"""End to end: queued experiment sweeps, their table and plots, and results shared through a remote.

Each test drives the real `dvc` command line in a temporary git repository
with the tiny settings of conftest.FAST_PARAMS.
"""

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_project, dvc, origin_with_remote, run, set_params, stages_run, start_queue
from ruamel.yaml import YAML

QUEUE_TIMEOUT_S = 600
SWEPT_LRS = (0.05, 0.2)
SCRATCH_LR = 0.2


def wait_for_queue(project, timeout=QUEUE_TIMEOUT_S):
    """Poll `dvc queue status` until no task is queued or running; returns its last output."""
    deadline = time.monotonic() + timeout
    while True:
        status = dvc(project, "queue", "status").stdout
        if not any(state in status for state in ("Queued", "Running")):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not finish within {timeout} s:\n{status}")
        time.sleep(2)


def experiments_by_name(exp_show):
    """{experiment name: its `data` (params, metrics, ...)} from `dvc exp show --json`."""
    found = {}
    for baseline in exp_show:
        for group in baseline.get("experiments") or []:
            for rev in group["revs"]:
                found[rev["name"]] = rev["data"]
    return found


@pytest.fixture(scope="module")
def swept(reproduced_template, module_tmp_path):
    """A reproduced copy after a queued two-experiment sweep run by two workers."""
    project = copy_project(reproduced_template, module_tmp_path / "swept")
    lrs = ",".join(str(lr) for lr in SWEPT_LRS)
    queued = dvc(project, "exp", "run", "--queue", "-S", f"train_nn.lr={lrs}", "-S", f"train_scratch.lr={SCRATCH_LR}")
    assert queued.stdout.count("Queued experiment") == 2, queued.stdout
    start_queue(project, 2)
    status = wait_for_queue(project)
    assert status.count("Success") == 2, status
    return project


@pytest.fixture(scope="module")
def swept_experiments(swept):
    return experiments_by_name(json.loads(dvc(swept, "exp", "show", "--json").stdout))


def test_queued_sweep_records_params_and_metrics_of_both_experiments(swept_experiments):
    assert len(swept_experiments) == 2
    assert sorted(data["params"]["params.yaml"]["data"]["train_nn"]["lr"] for data in swept_experiments.values()) \
        == sorted(SWEPT_LRS)
    metrics = []
    for data in swept_experiments.values():
        params = data["params"]["params.yaml"]["data"]
        assert params["train_scratch"]["lr"] == SCRATCH_LR
        metrics.append({path: entry["data"] for path, entry in data["metrics"].items()})
    assert all(set(found) == {"metrics/evaluate.json", "metrics/train_nn.json", "metrics/train_scratch.json"}
               for found in metrics)
    # Both experiments trained the scratch model with the same settings: the same figures.
    first, second = metrics
    assert first["metrics/train_scratch.json"] == second["metrics/train_scratch.json"]
    assert first["metrics/evaluate.json"]["scratch"] == second["metrics/evaluate.json"]["scratch"]
    assert first["metrics/train_nn.json"]["nn"] != second["metrics/train_nn.json"]["nn"]
    nn_test = [data["metrics"]["metrics/evaluate.json"]["data"]["nn"]["accuracy"]
               for data in swept_experiments.values()]
    assert nn_test[0] != nn_test[1], "two learning rates gave the same model: the override did not reach the stage"


def test_queued_runs_work_in_a_temporary_copy_with_one_thread(swept, swept_experiments):
    for name in swept_experiments:
        log = dvc(swept, "queue", "logs", name).stdout
        # train_scratch takes torch's default thread count unless it runs
        # under .dvc/tmp/exps (stages/common.configure_torch).
        assert "Running stage 'train_scratch'" in log, log
        assert "(1 threads)" in log.split("Running stage 'train_scratch'")[1].split("Running stage")[0], log
    # The workspace itself was not touched by the workers.
    assert run(swept, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""


def test_exp_show_only_changed_keeps_the_swept_params_and_the_accuracies(swept):
    table = dvc(swept, "exp", "show", "--only-changed", "--csv").stdout
    header = table.splitlines()[0].split(",")
    assert {"train_nn.lr", "train_scratch.lr", "nn.accuracy", "scratch.accuracy"} <= set(header)
    assert "train_nn.momentum" not in header and "train_nn.epochs" not in header


def test_plots_diff_of_two_experiments_overlays_their_curves(swept, swept_experiments):
    first, second = sorted(swept_experiments)
    html_out = dvc(swept, "plots", "diff", first, second, "-o", "diff_plots").stdout
    assert "diff_plots" in html_out
    page = (swept / "diff_plots" / "index.html").read_text()
    accuracy_div = page.split('id = "train_nn__train_and_test_accuracy_per_epoch"')[1].split("</div>")[0]
    for name in (first, second):
        assert f'"rev": "{name}"' in accuracy_div
    # Image plots get one picture per experiment.
    assert page.count(f"<p>{first}</p>") == page.count(f"<p>{second}</p>") >= 6


def test_going_back_to_params_that_already_ran_restores_every_stage_from_the_run_cache(reproduced):
    before = {path: (reproduced / path).read_bytes()
              for path in ("metrics/evaluate.json", "metrics/report_nn.txt", "data/models/nn.safetensors")}
    original = YAML(typ="safe").load((reproduced / "params.yaml").read_text())["train_nn"]["lr"]
    set_params(reproduced, {"train_nn.lr": original * 0.7})
    assert stages_run(dvc(reproduced, "repro").stdout) == ["train_nn", "evaluate"]
    set_params(reproduced, {"train_nn.lr": original})
    restored = dvc(reproduced, "repro").stdout
    assert stages_run(restored) == [], restored
    for stage in ("train_nn", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in restored, restored
    for path, content in before.items():
        assert (reproduced / path).read_bytes() == content, path


def uncached_outputs(dvc_yaml):
    """Outputs that dvc.yaml keeps out of the DVC cache (`cache: false`), stage by stage."""
    stages = YAML(typ="safe").load(Path(dvc_yaml).read_text())["stages"]
    return [
        path
        for stage in stages.values()
        for kind in ("outs", "metrics", "plots")
        for entry in stage.get(kind, [])
        if isinstance(entry, dict)
        for path, options in entry.items()
        if (options or {}).get("cache") is False
    ]


@pytest.fixture(scope="module")
def shared(reproduced_template, module_tmp_path):
    """A git origin with a DVC remote, and a first clone that ran one experiment and pushed it.

    Returns (origin, first clone, experiment name, params of the experiment).
    """
    root = module_tmp_path / "shared"
    origin = origin_with_remote(reproduced_template, root, "shared")

    first = root / "first"
    run(root, "git", "clone", "-q", str(origin), str(first))
    dvc(first, "pull")
    changed = {"train_nn.lr": 0.07}
    trained = dvc(first, "exp", "run", "--name", "lr-007", "-S", "train_nn.lr=0.07").stdout
    assert stages_run(trained) == ["train_nn", "evaluate"], trained
    run(first, sys.executable, "-m", "stages.sweep", "push-runs")
    dvc(first, "exp", "push", "--run-cache", "origin", "lr-007")
    return origin, first, "lr-007", changed


def test_experiment_pushed_from_one_clone_is_reused_by_another(shared, tmp_path):
    origin, first, name, _ = shared
    second = tmp_path / "second"
    run(tmp_path, "git", "clone", "-q", str(origin), str(second))
    dvc(second, "exp", "pull", "origin", name)
    listed = experiments_by_name(json.loads(dvc(second, "exp", "show", "--json").stdout))
    assert listed[name]["params"]["params.yaml"]["data"]["train_nn"]["lr"] == 0.07
    dvc(second, "exp", "apply", name)
    reused = dvc(second, "repro").stdout
    assert stages_run(reused) == [], reused
    for path in ("metrics/evaluate.json", "metrics/report_nn.txt", "data/models/nn.safetensors",
                 "metrics/figures/confusion_nn.png"):
        assert (second / path).read_bytes() == (first / path).read_bytes(), path


def test_run_cache_pushed_from_one_clone_spares_the_other_clone_any_training(shared, tmp_path):
    origin, first, _, changed = shared
    # The metrics and plots that git holds (`cache: false`) travel too: DVC
    # saves a run's uncached outputs into the cache for its run-cache entry.
    assert "metrics/evaluate.json" in uncached_outputs(origin / "dvc.yaml")
    second = tmp_path / "second"
    run(tmp_path, "git", "clone", "-q", str(origin), str(second))
    dvc(second, "pull", "--run-cache")
    set_params(second, changed)
    # --pull: fetch the outputs that a run-cache entry names (plain `dvc pull`
    # fetches only those of the checked-out dvc.lock).
    reused = dvc(second, "repro", "--pull").stdout
    assert stages_run(reused) == [], reused
    for stage in ("train_nn", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in reused, reused
    for path in ("metrics/train_nn.json", "metrics/evaluate.json", "data/models/nn.safetensors"):
        assert (second / path).read_bytes() == (first / path).read_bytes(), path
