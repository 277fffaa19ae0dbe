"""Run a GitHub Actions job's `run:` steps here, as the runner would, so the tests run what CI runs.

The steps are read from the workflow file itself. `${{ expr }}` in a
step's `env:` or `if:` is looked up in a dict of the test's choosing
({"inputs.grid": ..., "secrets.AWS_ACCESS_KEY_ID": ...}); a `run:` script
holds no `${{ }}` (the lint test checks that), so it runs unchanged, with
bash -e as GitHub does. `uses:` steps (checkout, setup-python, upload)
and the setup commands in SETUP are the test's own business: the test
has the clone and the environment ready.
"""

import re
import subprocess
from pathlib import Path

from conftest import dvc_env
from ruamel.yaml import YAML

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
# Commands that set the machine up; the tests run in an environment set up
# the same way (.ci/run runs `pip install -r requirements.txt`, then the tests).
SETUP = {"pip install -r requirements.txt", "bash .ci/run"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load_workflow(name):
    return YAML(typ="safe").load((WORKFLOWS / name).read_text())


def run_steps(workflow, job):
    """[(step, its `run:` script)] of a job, setup commands left out."""
    steps = load_workflow(workflow)["jobs"][job]["steps"]
    return [(step, step["run"].strip()) for step in steps if "run" in step and step["run"].strip() not in SETUP]


def expand(text, context):
    """'${{ inputs.grid }}' -> context['inputs.grid']; an expression the test did not provide is an error."""

    def lookup(match):
        expression = match.group(1)
        if expression not in context:
            raise KeyError(f"the test gives no value for ${{{{ {expression} }}}}")
        return str(context[expression])

    return EXPRESSION.sub(lookup, str(text))


def run_job(workflow, job, cwd, context, extra_env=None, timeout=900):
    """Run the job's `run:` steps in `cwd`; returns [CompletedProcess], one per step run.

    Stops at the first failing step, like GitHub, except that steps with
    `if: ${{ !cancelled() }}` still run after a failure.
    """
    results, failed = [], False
    for step, script in run_steps(workflow, job):
        condition = str(step.get("if", ""))
        if failed and "!cancelled()" not in condition:
            continue
        env = {**dvc_env(), **(extra_env or {})}
        env.update({name: expand(value, context) for name, value in (step.get("env") or {}).items()})
        result = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=timeout)
        result.script = script
        results.append(result)
        failed = failed or result.returncode != 0
    return results


def output(results):
    """Everything the steps printed, stdout and stderr, step by step."""
    return "\n".join(f"$ {r.script}\n{r.stdout}{r.stderr}" for r in results)
