"""End to end: the real `dvc` command line on a copy of the project in a temporary git repository."""

import json

import pytest
from conftest import REPRO_LOG, commit, dvc, set_params, stages_run

from fmnist.data import CLASS_NAMES

ALL_STAGES = ["download", "flatten", "train_scratch", "train_nn", "evaluate@scratch", "evaluate@nn"]
METRICS = ["metrics/train_scratch.json", "metrics/train_nn.json", "metrics/evaluate_scratch.json",
           "metrics/evaluate_nn.json"]
REPORTS = [f"metrics/report_{model}.{ext}" for model in ("scratch", "nn") for ext in ("json", "txt")]
CONFUSIONS = ["metrics/confusion_scratch.csv", "metrics/confusion_nn.csv"]


def test_repro_runs_every_stage_and_writes_every_file(reproduced_template, reproduced):
    """The first `dvc repro` of a fresh project: the one that made the template, whose output it kept."""
    printed = (reproduced_template.parent / REPRO_LOG).read_text()
    assert stages_run(printed) == ALL_STAGES
    project = reproduced
    for relative in [*METRICS, *REPORTS, *CONFUSIONS, "data/models/scratch.safetensors", "data/models/nn.safetensors"]:
        assert (project / relative).stat().st_size > 0, relative
    assert sorted(p.name for p in (project / "data/raw").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    ]

    for model in ("scratch", "nn"):
        evaluation = json.loads((project / f"metrics/evaluate_{model}.json").read_text())
        assert set(evaluation) == {model}
        assert set(evaluation[model]) == {"accuracy", "macro_f1"}
        assert 0.1 < evaluation[model]["accuracy"] <= 1.0  # better than chance, even after a short run
        report = json.loads((project / f"metrics/report_{model}.json").read_text())
        assert [name for name in CLASS_NAMES if name in report] == CLASS_NAMES
        assert report["accuracy"] == pytest.approx(evaluation[model]["accuracy"])
        assert report["macro avg"]["f1-score"] == pytest.approx(evaluation[model]["macro_f1"])
        assert sum(report[name]["support"] for name in CLASS_NAMES) == 10000
        assert "Ankle boot" in (project / f"metrics/report_{model}.txt").read_text()

    scratch = json.loads((project / "metrics/train_scratch.json").read_text())["scratch"]
    assert scratch["iterations"] == 5 and scratch["converged"] is False and scratch["diverged"] is False
    nn = json.loads((project / "metrics/train_nn.json").read_text())["nn"]
    assert nn["epochs_run"] == 1 and 0.5 < nn["train_accuracy"] <= 1.0
    history = (project / "metrics/train_nn_history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,train_accuracy,test_accuracy" and len(history) == 2

    assert stages_run(dvc(project, "repro").stdout) == []


# Applied one after another to one project: each must rerun exactly these stages, then nothing.
# (tests/test_dvc_yaml.py checks every stage's code deps against its imports; here, one of each kind.)
PARAM_CHANGES = [
    ({"train_nn.lr": 0.05}, ["train_nn", "evaluate@nn"]),
    ({"train_scratch.max_iter": 6}, ["train_scratch", "evaluate@scratch"]),
    # download reruns, finds the same verified files, so nothing downstream does
    ({"download.mirrors": ["/nonexistent-mirror"]}, ["download"]),
]
# A stage whose code changed runs again; its outputs come out the same, so the stages after it
# are skipped: each code file reruns only the stages that run it, and a command none of them.
CODE_CHANGES = [
    ("fmnist/softmax.py", ["train_scratch"]),
    ("fmnist/figures.py", ["evaluate@scratch", "evaluate@nn"]),
    ("tools/predict.py", []),
]


def test_each_change_reruns_exactly_the_stages_it_affects(reproduced):
    for change, expected in PARAM_CHANGES:
        set_params(reproduced, change)
        assert stages_run(dvc(reproduced, "repro").stdout) == expected, change
    for edited, expected in CODE_CHANGES:
        with open(reproduced / edited, "a", encoding="utf-8") as f:
            f.write("\n# edited\n")
        assert stages_run(dvc(reproduced, "repro").stdout) == expected, edited
    assert stages_run(dvc(reproduced, "repro").stdout) == []


def test_metrics_diff_shows_the_effect_of_an_lr_change(reproduced):
    shown = json.loads(dvc(reproduced, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    assert set(METRICS) <= set(files)

    set_params(reproduced, {"train_nn.lr": 0.01})
    dvc(reproduced, "repro")
    diff = json.loads(dvc(reproduced, "metrics", "diff", "--json").stdout)
    changed = diff["metrics/evaluate_nn.json"]
    assert "nn.accuracy" in changed
    assert changed["nn.accuracy"]["old"] != changed["nn.accuracy"]["new"]
    assert "metrics/evaluate_scratch.json" not in diff  # the scratch model did not move
    params = json.loads(dvc(reproduced, "params", "diff", "--json").stdout)
    lr_change = params["params.yaml"]["train_nn.lr"]
    assert (lr_change["old"], lr_change["new"]) == (0.1, 0.01)
    commit(reproduced, "lr 0.01")
    assert json.loads(dvc(reproduced, "metrics", "diff", "HEAD~1", "--json").stdout)["metrics/evaluate_nn.json"]
