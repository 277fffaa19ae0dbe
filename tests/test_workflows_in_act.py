"""Each workflow run once in a real Actions engine: act, host mode, offline (tests/act_engine.py).

One bare git origin (GitHub's repository) and one S3 remote (moto on
127.0.0.1, as the repository secrets name it) serve the module's runs: a push
to main (results.yml's `main` job), a pull request that changes train_nn.lr
(its `results` job), the sweep by hand (sweep.yml: matrix jobs push their
experiments, the report job pulls them), and ci.yml up to the test suite.
Each job checks out the origin itself through the checkout stand-in.
"""

import csv
import io
import json
import shutil

import pytest
from act_engine import run_act
from conftest import PROJECT_ROOT, commit, copy_project, dvc, run, set_params, stages_run
from dvc.api import params_show
from dvc.api import read as dvc_read
from s3_server import S3Server

pytestmark = pytest.mark.slow

CI_FILES = [".ci", ".github/workflows", "requirements.txt"]
SWEPT = {"lr": [0.05, 0.2], "epochs": [1]}
PULL_REQUEST_LR = 0.2


def git(cwd, *args):
    return run(cwd, "git", *args).stdout.strip()


@pytest.fixture(scope="module")
def github(reproduced_template, module_tmp_path):
    """A bare origin whose main holds the reproduced project, its workflows, and its outputs on S3.

    Yields {"root", "origin", "author" (a clone that pushes), "secrets", "s3"}.
    """
    root = module_tmp_path
    author = copy_project(reproduced_template, root / "author")
    for relative in CI_FILES:
        source, target = PROJECT_ROOT / relative, author / relative
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    commit(author, "CI scripts and workflows")
    origin = root / "origin.git"
    run(root, "git", "clone", "-q", "--bare", str(author), str(origin))
    git(author, "remote", "add", "origin", str(origin))
    git(author, "fetch", "-q", "origin")
    with S3Server() as s3, pytest.MonkeyPatch.context() as env:
        secrets = {"DVC_REMOTE_URL": f"s3://{s3.bucket}/fmnist", "DVC_REMOTE_ENDPOINT": s3.url, **s3.env}
        for name, value in secrets.items():
            env.setenv(name, value)
        run(author, "bash", ".ci/dvc-remote")
        run(author, "bash", ".ci/publish")  # main's results, as a previous push to main left them
        yield {"root": root, "origin": origin, "author": author, "secrets": secrets, "s3": s3}


def act_in(github, name, event_name, event, workflow, **kwargs):
    """Run `workflow` for the event in act, from a fresh clone of the origin at the event's commit."""
    clone = github["root"] / f"{name}-clone"
    run(github["root"], "git", "clone", "-q", str(github["origin"]), str(clone))
    git(clone, "fetch", "-q", "origin", event["ref"])
    git(clone, "checkout", "-q", "FETCH_HEAD")
    act_run = run_act(event_name, {**event, "repository": {"clone_url": str(github["origin"])}}, clone,
                      github["root"] / name, clone / ".github" / "workflows" / workflow,
                      secrets=github["secrets"], env={"PIP_NO_DEPS": "1"}, **kwargs)
    assert act_run.returncode == 0, act_run.log()[-20000:]
    assert set(act_run.job_results().values()) == {"success"}, act_run.log()[-20000:]
    return act_run


def test_a_push_to_main_restores_mains_results_and_trains_nothing(github):
    act_run = act_in(github, "push-main", "push", {"ref": "refs/heads/main"}, "results.yml")
    assert list(act_run.job_results()) == [("main", "")]
    log = act_run.step_log("main", "bash .ci/reproduce")
    assert stages_run(log) == [] and "Data and pipelines are up to date." in log, log


def test_a_pull_request_trains_what_it_changed_and_diffs_the_metrics_against_main(github):
    author = github["author"]
    git(author, "checkout", "-q", "-b", "faster-lr", "origin/main")
    set_params(author, {"train_nn.lr": PULL_REQUEST_LR})
    commit(author, f"train_nn.lr {PULL_REQUEST_LR}")
    git(author, "push", "-q", "origin", "HEAD:refs/heads/faster-lr")
    # GitHub's test merge of the pull request into main: the commit a pull_request run checks out.
    git(author, "checkout", "-q", "--detach", "origin/main")
    git(author, "merge", "-q", "--no-ff", "-m", "Merge faster-lr into main", "faster-lr")
    git(author, "push", "-q", "origin", "HEAD:refs/pull/1/merge")
    git(author, "checkout", "-q", "main")
    event = {"ref": "refs/pull/1/merge", "number": 1,
             "pull_request": {"number": 1, "head": {"ref": "faster-lr"}, "base": {"ref": "main"}}}
    act_run = act_in(github, "pull-request", "pull_request", event, "results.yml")
    assert stages_run(act_run.step_log("results", "bash .ci/reproduce")) == ["train_nn", "evaluate@nn"]
    summary = act_run.summary("results")
    params_row = next(line for line in summary.splitlines() if "train_nn.lr" in line)
    assert [cell.strip() for cell in params_row.strip("|").split("|")][2:4] == ["0.1", str(PULL_REQUEST_LR)], summary
    assert "nn.accuracy" in summary and "scratch.accuracy" not in summary, summary
    artifact = github["root"] / "pull-request" / "artifacts" / "plots"
    assert (artifact / "dvc_plots" / "index.html").is_file(), sorted(artifact.rglob("*"))
    assert (artifact / "metrics" / "figures" / "weights_nn.png").is_file(), sorted(artifact.rglob("*"))


def test_the_sweep_runs_one_job_per_setting_and_reports_every_experiments_numbers(github):
    event = {"ref": "refs/heads/main", "inputs": {name: json.dumps(values) for name, values in SWEPT.items()}}
    act_run = act_in(github, "sweep", "workflow_dispatch", event, "sweep.yml")
    names = {f"lr-{lr}-epochs-{epochs}" for lr in SWEPT["lr"] for epochs in SWEPT["epochs"]}
    assert sorted(job for job, _ in act_run.job_results()) == ["report"] + ["run"] * len(names)
    # The experiments as the origin holds them, read in a clone of its own (not through the report).
    reader = github["root"] / "reader"
    run(github["root"], "git", "clone", "-q", str(github["origin"]), str(reader))
    dvc(reader, "exp", "pull", "--no-cache", "origin")
    report = github["root"] / "sweep" / "artifacts" / "sweep-report"
    rows = {row["experiment"]: row for row in csv.DictReader(io.StringIO((report / "sweep.csv").read_text()))}
    assert set(rows) == names
    for name, row in rows.items():
        evaluate = json.loads(dvc_read("metrics/evaluate_nn.json", repo=str(reader), rev=name))
        params = params_show(repo=str(reader), rev=name)
        assert float(row["nn.accuracy"]) == evaluate["nn"]["accuracy"]
        assert float(row["train_nn.lr"]) == params["train_nn"]["lr"]
        assert f"{evaluate['nn']['accuracy']:.4f}" in (report / "sweep.md").read_text()
    # Each experiment's model reached the DVC remote: a clone can apply it and pull it.
    assert any(key.startswith("fmnist/files/md5/") for key in github["s3"].keys("fmnist/"))


def test_ci_installs_with_python_alone_and_reaches_the_suite(github):
    author = github["author"]
    git(author, "checkout", "-q", "-b", "ci-until-the-suite", "origin/main")
    script = (PROJECT_ROOT / ".ci" / "run").read_text()
    # Everything up to the line that installs the environment and runs this very suite.
    (author / ".ci" / "run").write_text(script.split("python3 -m venv")[0] + 'echo ".ci/run reached the suite"\n')
    commit(author, ".ci/run up to the suite")
    git(author, "push", "-q", "origin", "ci-until-the-suite")
    git(author, "checkout", "-q", "main")
    act_run = act_in(github, "ci", "push", {"ref": "refs/heads/ci-until-the-suite"}, "ci.yml")
    assert ".ci/run reached the suite" in act_run.step_log("tests", "bash .ci/run"), act_run.log()[-5000:]
