"""Fixtures for end-to-end tests: a copy of the project (code, params, bundled data, no outputs) in a temporary
git repository, and the real `dvc` command line run in it."""

import http.server
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from filelock import FileLock
from ruamel.yaml import YAML

PROJECT_ROOT = Path(__file__).resolve().parents[1]
COPIED = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore",
          "fmnist", "stages", "tools", "data/fashion-mnist", "data/.gitignore"]
# Small settings for tests that check the pipeline's mechanics, not its accuracy.
FAST_PARAMS = {"train_scratch.max_iter": 5, "train_nn.epochs": 1}


def dvc_env():
    """The environment stage commands run in: this interpreter's `python` and `dvc` first on PATH.

    One worker per core: a stage's OpenMP threads sleep while they wait for
    another worker's (OMP_WAIT_POLICY=PASSIVE, docs/speed.md), unless the caller chose.
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@localhost",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost",
    )
    return env


def run(cwd, *args, check=True, timeout=600):
    """Run a command in `cwd`; returns the CompletedProcess with stdout and stderr as text."""
    result = subprocess.run(args, cwd=cwd, env=dvc_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def dvc(cwd, *args, check=True, timeout=600):
    return run(cwd, "dvc", *args, check=check, timeout=timeout)


def start_queue(cwd, jobs):
    """`dvc queue start -j jobs`; returns what it printed.

    Its output goes to a file, not a pipe: the workers it starts inherit it,
    and a pipe would stay open until the last worker exits (a worker can hang
    in its own shutdown).
    """
    with tempfile.TemporaryFile("w+") as log:
        result = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=cwd, env=dvc_env(),
                                stdout=log, stderr=subprocess.STDOUT, timeout=600)
        log.seek(0)
        printed = log.read()
    if result.returncode != 0:
        raise AssertionError(f"dvc queue start exited {result.returncode}\n{printed}")
    return printed


def fake_dvc(folder, script):
    """A `dvc` executable in `folder`/bin that runs the sh `script`; returns that bin folder."""
    bin_folder = Path(folder) / "bin"
    bin_folder.mkdir()
    (bin_folder / "dvc").write_text(f"#!/bin/sh\n{script}\n")
    (bin_folder / "dvc").chmod(0o755)
    return bin_folder


def stop_queue_workers(folder):
    """Terminate the `dvc exp queue-worker` processes working anywhere under `folder`."""
    folder = Path(folder).resolve()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"queue-worker" in (proc / "cmdline").read_bytes() and \
                    Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                os.kill(int(proc.name), signal.SIGTERM)
        except OSError:  # gone meanwhile, or not ours to read
            continue


def dvc_stages(project):
    """dvc.yaml's stages by the names `dvc repro` gives them: a `foreach` stage as one `name@key` per key,
    its ${key} and ${item} filled in."""
    stages = {}
    for name, stage in YAML(typ="safe").load((Path(project) / "dvc.yaml").read_text()).get("stages", {}).items():
        if "foreach" not in stage:
            stages[name] = stage
            continue
        for key, item in stage["foreach"].items():
            filled = {"${key}": str(key), "${item}": str(item)}
            stages[f"{name}@{key}"] = fill_in(stage["do"], filled)
    return stages


def fill_in(value, filled):
    """`value` (nested dicts, lists and strings) with each placeholder of `filled` replaced."""
    if isinstance(value, dict):
        return {fill_in(key, filled): fill_in(item, filled) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_in(item, filled) for item in value]
    if isinstance(value, str):
        for placeholder, text in filled.items():
            value = value.replace(placeholder, text)
    return value


def stages_run(output):
    """Names of the stages that `dvc repro` ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


DELETE = object()  # set_params({"train_nn.lr": DELETE}) removes the key


def set_params(project, changes):
    """Set (or DELETE) dotted keys of params.yaml, keeping its comments: {"train_nn.lr": 0.01}."""
    yaml = YAML()
    path = Path(project) / "params.yaml"
    params = yaml.load(path.read_text())
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        node = params
        for section in sections:
            node = node[section]
        if value is DELETE:
            del node[key]
        elif isinstance(value, float) and math.isfinite(value):
            # ruamel writes a plain float such as 0.01 as 0.010000000000000001; its own scalar keeps the text
            node[key] = yaml.load(repr(value))
        else:
            node[key] = value
    with open(path, "w") as f:
        yaml.dump(params, f)


def commit(project, message="test"):
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", message, "--allow-empty")


# Files named by their content, never changed in place: a copy hard-links them and costs its workspace only.
CONTENT_ADDRESSED = (".git/objects", ".dvc/cache")


def copy_project(source, target):
    """Copy a project folder (git history and DVC cache included) to `target`; returns `target`.

    Everything but CONTENT_ADDRESSED is copied: a test may rewrite a workspace file without touching `source`.
    """
    source, target = Path(source), Path(target)
    shared = [source / folder for folder in CONTENT_ADDRESSED]

    def link_or_copy(src, dst):
        if any(Path(src).is_relative_to(folder) for folder in shared):
            try:
                os.link(src, dst)
                return dst
            except OSError:  # another file system, or links not allowed
                pass
        return shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
    return target


def origin_with_remote(template, root, remote="storage"):
    """`root`/origin: a copy of `template` whose outputs are pushed to the DVC remote folder `root`/remote."""
    origin = copy_project(template, Path(root) / "origin")
    dvc(origin, "remote", "add", "-d", remote, str(Path(root) / "remote"))
    commit(origin, "a DVC remote")
    dvc(origin, "push")
    return origin


def make_project(destination, params=None, extra=()):
    """A fresh git repository holding a copy of the project, committed, nothing run yet.

    `extra`: more of the project's paths to copy ("dvc.lock", "metrics": what HEAD ran).
    """
    destination = Path(destination)
    for relative in [*COPIED, *extra]:
        source = PROJECT_ROOT / relative
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    if params:
        set_params(destination, params)
    run(destination, "git", "init", "-q", "-b", "main")
    commit(destination, "project")
    return destination


class LocalServer:
    """An HTTP server on 127.0.0.1 (a free port) that runs in a thread for the length of a `with` block."""

    def __init__(self, handler, path="/"):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


# A test that takes a copy of the project drives the real dvc command line: it is slow, whether marked or not.
END_TO_END_FIXTURES = {"project", "reproduced", "reproduced_template", "default_template"}


# The longest modules, started first: pytest-xdist hands out files in collection order,
# and the run ends when the last worker does.
LONGEST_FIRST = ["test_workflows_in_act.py", "test_predict.py", "test_readme.py", "test_notebook.py",
                 "test_pipeline.py"]


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses an end-to-end fixture `slow`; put the LONGEST_FIRST modules first."""
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort: nothing else moves


@pytest.fixture
def project(tmp_path):
    """A fresh copy with FAST_PARAMS, not yet reproduced."""
    return make_project(tmp_path / "project", FAST_PARAMS)


@pytest.fixture(scope="module")
def module_tmp_path(request, tmp_path_factory):
    """A folder for one module's shared fixtures, removed after its last test unless a test failed
    (as tmp_path_retention_policy = "failed" does for each test's tmp_path)."""
    path = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    failed_before = request.session.testsfailed
    yield path
    stop_queue_workers(path)
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def no_queue_worker_left_behind(tmp_path_factory):
    """At the end of the session, stop the queue workers that tests left in their folders."""
    yield
    stop_queue_workers(tmp_path_factory.getbasetemp())


def shared_template(tmp_path_factory, name, build):
    """The folder `name`/project that `build(path)` makes, once per run however many workers share it.

    It goes next to the xdist workers' own folders; a file lock lets the first build it while the others wait.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / name / "project"
    with FileLock(root / f"{name}.lock"):
        if not (root / name / "done").exists():
            shutil.rmtree(root / name, ignore_errors=True)
            build(path)
            (root / name / "done").touch()
    return path


def reproduce_and_commit(path, params=None):
    """A fresh project at `path`, `dvc repro`, committed; what the repro printed is kept in REPRO_LOG beside it."""
    make_project(path, params)
    (path.parent / REPRO_LOG).write_text(dvc(path, "repro").stdout)
    commit(path, "reproduced")


REPRO_LOG = "repro-stdout.txt"


@pytest.fixture(scope="session")
def reproduced_template(tmp_path_factory):
    """A copy with FAST_PARAMS after one full `dvc repro`, committed. Copy it; don't change it."""
    return shared_template(tmp_path_factory, "template", lambda path: reproduce_and_commit(path, FAST_PARAMS))


@pytest.fixture(scope="session")
def default_template(tmp_path_factory):
    """A copy with the default params.yaml after one full `dvc repro` (the real results), committed. Copy it."""
    return shared_template(tmp_path_factory, "defaults", reproduce_and_commit)


@pytest.fixture
def reproduced(reproduced_template, tmp_path):
    """A private copy of the reproduced project (git history and DVC cache included)."""
    return copy_project(reproduced_template, tmp_path / "project")
