"""A GitHub Actions job's `run:` steps, read from the workflow file itself.

tests/test_workflows.py checks with them that every command a workflow runs
is run by a test: the tests that run the workflows in act
(tests/test_workflows_in_act.py) run each job's steps for real. The setup
commands in SETUP are left out: the tests run in an environment set up the
same way (.ci/run installs requirements.txt and requirements-dev.txt, then
runs the tests).
"""

from pathlib import Path

from ruamel.yaml import YAML

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
SETUP = {"pip install --require-hashes -r requirements.txt", "bash .ci/run"}


def load_workflow(name):
    return YAML(typ="safe").load((WORKFLOWS / name).read_text())


def run_steps(workflow, job):
    """[(step, its `run:` script)] of a job, setup commands left out."""
    steps = load_workflow(workflow)["jobs"][job]["steps"]
    return [(step, step["run"].strip()) for step in steps if "run" in step and step["run"].strip() not in SETUP]
