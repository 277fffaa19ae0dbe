"""tools/sweep_report.py on the committed `dvc exp show --json` of the real sweeps, and on bad input.

The report against experiments run here with the real dvc is in
tests/test_experiments.py (a clone that pulled them) and
tests/test_workflows_in_act.py (the sweep workflow's report job).
"""

import json

import pytest
from conftest import PROJECT_ROOT

from tools import sweep_report

SAVED = PROJECT_ROOT / "reports" / "exp_show.json"


def saved_experiments():
    """{name: (params.yaml's content, {metrics file: content})}, read from the saved JSON by hand."""
    found = {}
    for baseline in json.loads(SAVED.read_text()):
        for group in baseline.get("experiments") or []:
            for rev in group["revs"]:
                data = rev["data"]
                found[rev["name"]] = (data["params"]["params.yaml"]["data"],
                                      {path: entry["data"] for path, entry in data["metrics"].items()})
    return found


def test_the_committed_reports_are_what_the_tool_makes_of_the_committed_exp_show(tmp_path):
    sweep_report.main(["--from", str(SAVED), "--out", str(tmp_path)])
    for name in ("sweep.md", "sweep.csv"):
        assert (tmp_path / name).read_text() == (PROJECT_ROOT / "reports" / name).read_text(), name
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert not (tmp_path / "exp_show.json").exists()  # a saved copy is read, not written again


def test_each_experiment_keeps_its_params_and_metrics_and_old_names_are_renamed():
    frame = sweep_report.experiments_frame(json.loads(SAVED.read_text())).set_index("experiment")
    expected = saved_experiments()
    assert sorted(frame.index) == sorted(expected)
    for name, (params, metrics) in expected.items():
        row = frame.loc[name]
        assert row["train_nn.lr"] == params["train_nn"]["lr"]
        assert row["train_scratch.max_iter"] == params["train_scratch"]["max_iter"]
        assert row["nn.accuracy"] == metrics["metrics/evaluate.json"]["nn"]["accuracy"]
        assert row["nn.train_accuracy"] == metrics["metrics/train_nn.json"]["nn"]["train_accuracy"]
        # These experiments wrote the train loss as final_loss; the report names it as train_scratch does now.
        assert row["scratch.train_loss"] == metrics["metrics/train_scratch.json"]["scratch"]["final_loss"]


def test_best_line_names_the_highest_test_accuracy_of_each_model():
    frame = sweep_report.experiments_frame(json.loads(SAVED.read_text()))
    report = sweep_report.markdown_report(frame)
    expected = saved_experiments()
    best = max(expected, key=lambda name: expected[name][1]["metrics/evaluate.json"]["nn"]["accuracy"])
    accuracy = expected[best][1]["metrics/evaluate.json"]["nn"]["accuracy"]
    assert f"best nn test accuracy: {accuracy:.4f}" in report and f"{best})" in report


@pytest.mark.parametrize("content, message", [
    ("not json", "holds no JSON"),
    ("[]", "no finished experiments"),
])
def test_bad_input_is_one_line(tmp_path, capsys, content, message):
    saved = tmp_path / "exp_show.json"
    saved.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        sweep_report.main(["--from", str(saved), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
