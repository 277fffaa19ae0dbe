"""A stage killed at any point leaves nothing a later step could take for a good output.

The real `dvc repro` runs in its own process group and the whole group gets
the signal, as a terminal's Ctrl-C (SIGINT), a CI timeout (SIGTERM) or the
kernel's OOM killer (SIGKILL) would deliver it. The next `dvc repro` must
then produce exactly what an uninterrupted run produces.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import copy_project, dvc, dvc_env, set_params, stages_run
from ruamel.yaml import YAML

from fmnist.errors import UserError
from fmnist.files import atomic_dir
from fmnist.models import load_model

# Long enough that the kill lands inside the loop (after its first progress line), short enough to rerun.
SLOW_SCRATCH = {"train_scratch.max_iter": 40, "train_scratch.tol": 0.0, "train_scratch.device": "cpu"}
WAIT_S = 300


def read_lock(project):
    return YAML(typ="safe").load((Path(project) / "dvc.lock").read_text())


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(condition, process, what):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"dvc repro exited ({process.returncode}) before {what}")
        time.sleep(0.01)
    pytest.fail(f"no {what} within {WAIT_S} s")


def start_repro(project, log, *targets):
    return subprocess.Popen(
        ["dvc", "repro", *targets], cwd=project, env=dvc_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a shell gives each job
    )


def kill_group_and_wait(process, signum):
    os.killpg(process.pid, signum)
    try:
        process.wait(timeout=WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # a stage may outlive dvc for a moment while it cleans up
        assert not group_alive(process.pid), "processes of the killed group are still running"
    finally:
        if process.poll() is None or group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def temporaries(project):
    """Temporary files and folders left anywhere under data/ and metrics/."""
    return sorted(str(p.relative_to(project)) for top in ("data", "metrics") for p in (project / top).rglob("*.tmp"))


@pytest.fixture(scope="module")
def uninterrupted_lock(reproduced_template, module_tmp_path):
    """dvc.lock after an uninterrupted `dvc repro train_scratch` with SLOW_SCRATCH."""
    project = copy_project(reproduced_template, module_tmp_path / "uninterrupted")
    set_params(project, SLOW_SCRATCH)
    dvc(project, "repro", "train_scratch")
    return read_lock(project)


@pytest.mark.parametrize("signum", [signal.SIGKILL], ids=lambda s: s.name)
def test_train_scratch_killed_mid_loop_then_repro_gives_the_uninterrupted_result(
    reproduced, uninterrupted_lock, tmp_path, signum
):
    set_params(reproduced, SLOW_SCRATCH)
    lock_before = (reproduced / "dvc.lock").read_text()
    log_path = tmp_path / "interrupted.log"

    with open(log_path, "w") as log:
        process = start_repro(reproduced, log, "train_scratch")

        wait_until(lambda: "train_scratch: iteration " in log_path.read_text(), process, "train_scratch loop")
        kill_group_and_wait(process, signum)

    log = log_path.read_text()
    assert process.returncode != 0, log
    assert "Traceback" not in log
    if signum != signal.SIGKILL:
        assert "interrupted: no output was left half-written" in log
    # Nothing of the interrupted run can pass for a result: no model, no recorded run,
    # and (unless SIGKILL gave it no chance) no temporary file either.
    assert not (reproduced / "data/models/scratch.safetensors").exists()
    assert not (reproduced / "metrics/train_scratch.json").exists()
    assert (reproduced / "dvc.lock").read_text() == lock_before
    if signum != signal.SIGKILL:
        assert temporaries(reproduced) == []
    assert "train_scratch" in dvc(reproduced, "status").stdout

    result = dvc(reproduced, "repro", "train_scratch")

    assert stages_run(result.stdout) == ["train_scratch"]  # run again for real, not restored from a cache
    assert read_lock(reproduced) == uninterrupted_lock  # every hash, the model's and the metrics' included
    assert temporaries(reproduced) == []
    assert "train_scratch" not in dvc(reproduced, "status", "train_scratch").stdout


def test_replacing_a_folder_leaves_the_new_one_and_no_temporaries(tmp_path):
    target = tmp_path / "raw"
    target.mkdir()
    (target / "old-file").write_text("old")
    with atomic_dir(target) as folder:
        (folder / "new-file").write_text("new")
        assert (target / "old-file").exists()  # the old output stays whole until the new one is complete
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]
    assert [p.name for p in target.iterdir()] == ["new-file"]


@pytest.mark.parametrize("content", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{", b"cut short by a kill"])
def test_a_damaged_model_file_is_one_line(tmp_path, content):
    path = tmp_path / "scratch.safetensors"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        load_model("scratch", path)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a safetensors model file (") and "\n" not in message
    assert message.endswith("rerun `dvc repro train_scratch`")
