"""The pages' numbers are those of the files scripts write; README's everyday loop prints what README shows.

README's results table is metrics/*.json; docs/answers.md embeds
reports/sweep.md, which tools/sweep_report.py makes of the saved experiments.
"""

import json
import re
import subprocess

import pandas as pd
import pytest
import yaml
from conftest import PROJECT_ROOT, commit, dvc, dvc_env, make_project, run, set_params, stages_run
from pages import README, README_PT_BR, console_sessions, read, same_to_the_digits_shown

REPORTS = PROJECT_ROOT / "reports"
MODELS = {"train_scratch": "scratch", "train_nn": "nn"}  # a training stage and its model's name in the metrics


def metrics(project=PROJECT_ROOT):
    """{stage: its metrics file's content} of the project's metrics/*.json."""
    return {path.stem: json.loads(path.read_text()) for path in (project / "metrics").glob("*.json")}


def assert_results_table(page, found, units):
    """The page's rows that start with a training stage and hold numbers: its model's train and test accuracy and
    macro-F1 in `found` (the metrics files), within `units` of the last digit shown."""
    rows = [cells for cells in ([cell.strip() for cell in line.strip("|").split("|")]
                                for line in read(page).splitlines() if line.startswith("| `train_"))
            if all(re.fullmatch(r"\d+\.\d+", cell) for cell in cells[1:])]
    assert sorted(cells[0].split("`")[1] for cells in rows) == sorted(MODELS), rows
    for stage, *shown in rows:
        model = MODELS[stage.split("`")[1]]
        values = [found[f"train_{model}"][model]["train_accuracy"], found[f"evaluate_{model}"][model]["accuracy"],
                  found[f"evaluate_{model}"][model]["macro_f1"]]
        given = [f"{value:.{len(number.split('.')[1])}f}" for value, number in zip(values, shown, strict=True)]
        assert all(same_to_the_digits_shown(a, b, units) for a, b in zip(given, shown, strict=True)), \
            f"{page} shows {shown} for {stage}; the metrics give {given}"


@pytest.mark.parametrize("page", [README, README_PT_BR])
def test_the_results_table_is_the_committed_metrics(page):
    assert_results_table(page, metrics(), units=0)


def test_the_answers_page_embeds_the_sweep_report():
    # tests/test_sweep_report.py checks that reports/ is what the tool makes of the saved experiments.
    assert (REPORTS / "sweep.md").read_text() in read("docs/answers.md"), "docs/answers.md's copy of reports/sweep.md"


def test_the_sweeps_runs_of_the_default_settings_are_the_committed_metrics():
    """The sweep ran this code: its rows with params.yaml's settings give the committed metrics."""
    params, committed, table = yaml.safe_load(read("params.yaml")), metrics(), pd.read_csv(REPORTS / "sweep.csv")
    for stage, model in MODELS.items():
        steps = "max_iter" if stage == "train_scratch" else "epochs"
        settings = params[stage]
        rows = table[(table[f"{stage}.lr"] == settings["lr"]) & (table[f"{stage}.{steps}"] == settings[steps])]
        expected = [committed[stage][model]["train_accuracy"], committed[f"evaluate_{model}"][model]["accuracy"]]
        assert len(rows) >= 1, stage
        for found in rows[[f"{model}.train_accuracy", f"{model}.accuracy"]].itertuples(index=False):
            pairs = zip(found, expected, strict=True)
            assert all(same_to_the_digits_shown(f"{a:.4f}", f"{b:.4f}", units=1) for a, b in pairs), \
                f"{stage}: the sweep gave {tuple(found)}, the committed metrics {expected}"


def printed_as_shown(printed, shown):
    """True when `printed` (blank lines left out) is `shown` line for line, each "..." standing for any lines."""
    pattern = "".join(r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + "\n" for line in shown)
    return re.fullmatch(pattern, "".join(f"{line}\n" for line in printed.splitlines() if line.strip())) is not None


def assert_table_as_shown(printed, shown, command):
    """A table DVC printed against README's: the same rows in any order, HEAD's column the very digits, the run's
    to the digits shown; a row README lacks only if it changed past them (its change reads 0.0)."""
    def rows(lines):
        header, *body = [re.split(r"\s{2,}", line.strip()) for line in lines if line.strip()]
        return header, {tuple(row[:2]): row[2:] for row in body}

    (printed_header, printed_rows), (shown_header, shown_rows) = rows(printed.splitlines()), rows(shown)
    assert printed_header == shown_header and set(shown_rows) <= set(printed_rows), f"$ {command}\n{printed}"
    assert all(printed_rows[key][-1] in ("0.0", "-0.0") for key in set(printed_rows) - set(shown_rows)), printed
    for key, cells in shown_rows.items():
        got = printed_rows[key]
        assert len(got) == len(cells) and got[0] == cells[0], f"$ {command}: {key} printed {got}, README {cells}"
        assert all(same_to_the_digits_shown(a, b) for a, b in zip(got[1:], cells[1:], strict=True)), \
            f"$ {command}: {key} printed {got}, README shows {cells}"


def as_made_on_another_cpu(project):
    """Commit `project` as if its outputs came from a CPU whose bytes this one never gives: dvc.lock's hashes of the
    models and metrics match no file here, and the scratch model's loss moved in its last bits."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"].startswith(("data/models/", "metrics/")):
                out["md5"] = "f" * 32
    (project / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    path = project / "metrics" / "train_scratch.json"
    scratch = json.loads(path.read_text())
    scratch["scratch"]["train_loss"] *= 1 + 2**-40
    path.write_text(json.dumps(scratch, indent=2) + "\n")
    commit(project, "made on another CPU")


@pytest.mark.slow
def test_readmes_loop_in_a_fresh_clone_from_another_cpu(tmp_path):
    """The quick start's `dvc repro` gives README's results; each command of README's loop prints what it shows.

    HEAD's metrics come from git, not from a DVC cache that this machine
    would have to fill with the same bytes; going back is restored from
    the run-cache, not trained again.
    """
    origin = make_project(tmp_path / "origin", extra=["dvc.lock", "metrics", "data/models/.gitignore"])
    as_made_on_another_cpu(origin)
    project = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(origin), str(project))

    first = dvc(project, "repro").stdout
    assert stages_run(first) == ["download", "flatten", "train_scratch", "train_nn", "evaluate@scratch",
                                 "evaluate@nn"], first
    assert_results_table(README, metrics(project), units=2)
    changed = run(project, "git", "status", "--porcelain").stdout.splitlines()
    assert " M dvc.lock" in changed and all(line.startswith(" M ") for line in changed), changed  # index untouched

    set_params(project, {"train_nn.lr": 0.03})  # README's edit, made by hand; `dvc params diff` shows it
    sessions = console_sessions(read(README))
    assert len(sessions) >= 4, sessions
    for command, shown in sessions:
        result = subprocess.run(["bash", "-c", command], cwd=project, env=dvc_env(), timeout=600,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert result.returncode == 0, f"$ {command}\n{result.stdout}"
        if "..." in shown:
            assert printed_as_shown(result.stdout, shown), f"$ {command}\n{result.stdout}"
        else:  # a table: DVC lists the files in no fixed order
            assert_table_as_shown(result.stdout, shown, command)
