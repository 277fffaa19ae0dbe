"""End to end: a sweep split over two runner clones that share an S3 remote, collected by a third.

The remote is a real S3 API (moto's server on 127.0.0.1, through dvc-s3);
the clones run the `run:` steps of .github/workflows/sweep.yml and
results.yml themselves (tests/workflow_steps.py), with the secrets those
workflows read pointing at the moto server. Tiny settings
(conftest.FAST_PARAMS) keep each experiment to seconds.
"""

import csv
import io
import json
import shutil
import subprocess

import pytest
from conftest import PROJECT_ROOT, commit, copy_project, dvc_env, run, set_params, stages_run
from dvc.api import read as dvc_read
from s3_server import S3Server
from workflow_steps import output, run_job

pytestmark = pytest.mark.slow

GRID = "train_nn.lr=0.05,0.2 train_nn.epochs=1,2"
EXPECTED = {"lr-0.05-epochs-1": (0.05, 1), "lr-0.05-epochs-2": (0.05, 2),
            "lr-0.2-epochs-1": (0.2, 1), "lr-0.2-epochs-2": (0.2, 2)}
CI_FILES = [".ci/dvc-remote", ".ci/reproduce", ".ci/pr-report", ".ci/publish", ".github/workflows"]


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def cloud(reproduced_template, s3, module_tmp_path):
    """A git origin whose base commit's outputs are on the S3 remote, and the workflows' secrets.

    Returns (root folder, origin, context for the workflows' ${{ }}, env with the credentials).
    """
    root = module_tmp_path
    origin = copy_project(reproduced_template, root / "origin")
    for relative in CI_FILES:
        source, target = PROJECT_ROOT / relative, origin / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    commit(origin, "CI scripts and workflows")
    context = {
        "secrets.DVC_REMOTE_URL": f"s3://{s3.bucket}/fmnist",
        "secrets.DVC_REMOTE_ENDPOINT": s3.url,
        "secrets.AWS_ACCESS_KEY_ID": s3.env["AWS_ACCESS_KEY_ID"],
        "secrets.AWS_SECRET_ACCESS_KEY": s3.env["AWS_SECRET_ACCESS_KEY"],
    }
    credentials = {"AWS_ACCESS_KEY_ID": s3.env["AWS_ACCESS_KEY_ID"],
                   "AWS_SECRET_ACCESS_KEY": s3.env["AWS_SECRET_ACCESS_KEY"]}
    # The developer's machine: the same remote, then the base commit's outputs pushed.
    remote_env = {"DVC_REMOTE_URL": context["secrets.DVC_REMOTE_URL"], "DVC_REMOTE_ENDPOINT": s3.url}
    shell(origin, "bash .ci/dvc-remote", {**remote_env})
    shell(origin, "dvc push", credentials)
    return root, origin, context, credentials


def shell(cwd, script, extra_env=None):
    result = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env={**dvc_env(), **(extra_env or {})},
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise AssertionError(f"{script} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def clone(root, origin, name):
    target = root / name
    run(root, "git", "clone", "-q", str(origin), str(target))
    return target


def assert_job_passed(results):
    failed = [r for r in results if r.returncode != 0]
    assert not failed, output(results)


def experiment_names(project):
    return set(run(project, "dvc", "exp", "list", "--name-only").stdout.split())


@pytest.fixture(scope="module")
def swept(cloud):
    """The sweep workflow, job by job: plan, one clone per shard, a collecting clone.

    Returns {"matrix", "runners": {shard: (clone, job results)}, "collector", "report"}.
    """
    root, origin, context, _ = cloud
    context = {**context, "inputs.grid": GRID, "inputs.shards": 2}

    planner = clone(root, origin, "planner")
    github_output = root / "github_output"
    results = run_job("sweep.yml", "plan", planner, context, {"GITHUB_OUTPUT": str(github_output)})
    assert_job_passed(results)
    key, _, value = github_output.read_text().strip().partition("=")
    assert key == "matrix"
    matrix = json.loads(value)

    runners = {}
    for entry in matrix["include"]:
        runner = clone(root, origin, f"runner-{entry['shard'].replace('/', '-of-')}")
        results = run_job("sweep.yml", "run", runner, {**context, "matrix.shard": entry["shard"]})
        assert_job_passed(results)
        runners[entry["shard"]] = (runner, results)

    collector = clone(root, origin, "collector")
    results = run_job("sweep.yml", "report", collector, context)
    assert_job_passed(results)
    report = list(csv.DictReader(io.StringIO((collector / "reports" / "sweep.csv").read_text())))
    return {"matrix": matrix, "runners": runners, "collector": collector, "collect_results": results,
            "report": report}


def table_rows(markdown):
    """A Markdown table -> {its second column: [every cell of the row]} (Path | Param or Metric | ...)."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|--"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[1]] = cells
    return rows


def test_plan_job_gives_two_disjoint_shards_that_cover_the_grid(swept):
    entries = swept["matrix"]["include"]
    assert [entry["shard"] for entry in entries] == ["1/2", "2/2"]
    shards = [entry["experiments"].split() for entry in entries]
    assert sorted(sum(shards, [])) == sorted(EXPECTED)
    assert all(len(names) == 2 for names in shards)


def test_each_runner_restores_the_base_commit_and_runs_exactly_its_shard(swept):
    for entry in swept["matrix"]["include"]:
        runner, results = swept["runners"][entry["shard"]]
        restore = next(r for r in results if r.script == "bash .ci/reproduce")
        # The base commit's outputs came from the S3 remote: no stage ran.
        assert stages_run(restore.stdout) == [], restore.stdout
        assert experiment_names(runner) == set(entry["experiments"].split()), output(results)
        for name in entry["experiments"].split():
            log = run(runner, "dvc", "queue", "logs", name).stdout
            # A queued experiment on a fresh clone trains the swept model and nothing upstream of it.
            assert stages_run(log) == ["train_nn", "evaluate"], log


def test_runners_push_their_experiments_to_git_and_outputs_and_run_cache_to_s3(swept, cloud, s3):
    _, origin, _, _ = cloud
    on_origin = set(run(origin, "dvc", "exp", "list", "--name-only").stdout.split())
    assert on_origin == set(EXPECTED)
    keys = s3.keys("fmnist/")
    assert any(key.startswith("fmnist/runs/") for key in keys), keys[:20]
    assert any(key.startswith("fmnist/files/md5/") for key in keys), keys[:20]


def test_collecting_clone_tables_every_experiment_of_every_shard(swept):
    rows = {row["experiment"]: row for row in swept["report"]}
    assert set(rows) == set(EXPECTED)
    for name, (lr, epochs) in EXPECTED.items():
        assert float(rows[name]["train_nn.lr"]) == lr
        assert int(rows[name]["train_nn.epochs"]) == epochs
    # Each number is the one its runner computed, read from the runner's own commit of the experiment.
    for entry in swept["matrix"]["include"]:
        runner, _ = swept["runners"][entry["shard"]]
        for name in entry["experiments"].split():
            evaluate = json.loads(dvc_read("metrics/evaluate.json", repo=str(runner), rev=name))
            train_nn = json.loads(dvc_read("metrics/train_nn.json", repo=str(runner), rev=name))
            assert float(rows[name]["nn_test_accuracy"]) == evaluate["nn"]["accuracy"]
            assert float(rows[name]["nn_train_accuracy"]) == train_nn["nn"]["train_accuracy"]
    markdown = (swept["collector"] / "reports" / "sweep.md").read_text()
    assert all(name in markdown for name in EXPECTED)


def test_an_experiment_applied_in_the_collecting_clone_trains_nothing(swept, cloud):
    _, _, _, credentials = cloud
    collector = swept["collector"]
    name = "lr-0.2-epochs-2"
    shell(collector, f"dvc exp apply {name}", credentials)
    reproduced = shell(collector, "dvc repro --pull", credentials)
    assert stages_run(reproduced.stdout) == [], reproduced.stdout
    evaluate = json.loads((collector / "metrics" / "evaluate.json").read_text())
    row = next(row for row in swept["report"] if row["experiment"] == name)
    assert evaluate["nn"]["accuracy"] == float(row["nn_test_accuracy"])


def results_job(cloud, branch):
    """Run results.yml's job in a fresh clone of `branch` (a pull request into main); (clone, results, summary)."""
    root, origin, context, _ = cloud
    pull_request = clone(root, origin, f"ci-{branch}")
    run(pull_request, "git", "checkout", "-q", branch)
    summary = root / f"step_summary-{branch}.md"
    results = run_job("results.yml", "results", pull_request, {**context, "github.base_ref": "main"},
                      {"GITHUB_STEP_SUMMARY": str(summary)})
    assert_job_passed(results)
    return pull_request, results, summary.read_text()


def assert_summary_compares_with_main(text, origin, pull_request):
    params_table = table_rows(text.split("## Params")[1].split("## Metrics")[0])
    assert params_table["train_nn.lr"][2:4] == ["0.1", "0.2"], text
    assert params_table["train_nn.epochs"][2:4] == ["1", "2"], text
    metrics_table = table_rows(text.split("## Metrics")[1])
    base = json.loads(dvc_read("metrics/evaluate.json", repo=str(origin), rev="main"))
    head = json.loads((pull_request / "metrics" / "evaluate.json").read_text())
    assert head["nn"]["accuracy"] != base["nn"]["accuracy"]
    cells = metrics_table["nn.accuracy"]
    assert float(cells[2]) == pytest.approx(base["nn"]["accuracy"], abs=1e-5), text
    assert float(cells[3]) == pytest.approx(head["nn"]["accuracy"], abs=1e-5), text
    assert (pull_request / "dvc_plots" / "index.html").is_file()
    assert sorted(p.name for p in (pull_request / "metrics" / "figures").glob("*.png"))


def test_pull_request_that_changes_params_only_is_restored_from_the_run_cache(swept, cloud):
    root, origin, _, _ = cloud
    author = clone(root, origin, "author-params")
    run(author, "git", "checkout", "-q", "-b", "params-only")
    # Params one runner of the sweep already trained: their run-cache is on the remote.
    set_params(author, {"train_nn.lr": 0.2, "train_nn.epochs": 2})
    commit(author, "lr 0.2, 2 epochs")
    run(author, "git", "push", "-q", "origin", "params-only")
    pull_request, results, text = results_job(cloud, "params-only")
    restore = next(r for r in results if r.script == "bash .ci/reproduce")
    assert stages_run(restore.stdout) == [], restore.stdout
    for stage in ("train_nn", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in restore.stdout, restore.stdout
    assert_summary_compares_with_main(text, origin, pull_request)


def test_pull_request_with_its_results_committed_is_compared_with_the_base_branch(swept, cloud):
    root, origin, context, credentials = cloud
    author = clone(root, origin, "author-results")
    run(author, "git", "checkout", "-q", "-b", "with-results")
    shell(author, "bash .ci/dvc-remote", {"DVC_REMOTE_URL": context["secrets.DVC_REMOTE_URL"],
                                          "DVC_REMOTE_ENDPOINT": context["secrets.DVC_REMOTE_ENDPOINT"]})
    set_params(author, {"train_nn.lr": 0.2, "train_nn.epochs": 2})
    shell(author, "dvc pull --run-cache --allow-missing && dvc repro --pull && dvc push", credentials)
    commit(author, "lr 0.2, 2 epochs, with dvc.lock")
    run(author, "git", "push", "-q", "origin", "with-results")
    pull_request, results, text = results_job(cloud, "with-results")
    restore = next(r for r in results if r.script == "bash .ci/reproduce")
    assert stages_run(restore.stdout) == [], restore.stdout
    assert "Data and pipelines are up to date." in restore.stdout, restore.stdout
    # HEAD holds the same results as the workspace: only a diff against main shows the change.
    assert_summary_compares_with_main(text, origin, pull_request)


def test_credentials_are_never_written_into_the_clones(swept, cloud):
    _, _, context, _ = cloud
    secret = context["secrets.AWS_SECRET_ACCESS_KEY"]
    for project in [swept["collector"], *(runner for runner, _ in swept["runners"].values())]:
        config = (project / ".dvc" / "config").read_text()
        assert "endpointurl" not in config and "s3://" not in config, config
        local = (project / ".dvc" / "config.local").read_text()
        assert context["secrets.DVC_REMOTE_ENDPOINT"] in local
        assert secret not in config + local
        assert run(project, "git", "status", "--porcelain", ".dvc").stdout == ""
