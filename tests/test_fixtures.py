"""The tests' own helpers, where a fault would make other tests hang or spoil one another's projects."""

import os
import signal
import subprocess
import sys

import conftest
from conftest import copy_project, dvc_env, fake_dvc


def test_a_copy_shares_only_content_addressed_files_and_a_change_to_it_leaves_the_source_alone(tmp_path):
    source = tmp_path / "source"
    for relative in (".git/objects/ab/cdef", ".dvc/cache/files/md5/12/3456", "params.yaml", "data/flat/x.npy"):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(relative)
    copy = copy_project(source, tmp_path / "copy")
    assert os.path.samefile(source / ".dvc/cache/files/md5/12/3456", copy / ".dvc/cache/files/md5/12/3456")
    for relative in ("params.yaml", "data/flat/x.npy"):
        (copy / relative).write_text("changed by a test")
        assert (source / relative).read_text() == relative


def test_start_queue_returns_while_the_workers_it_started_still_hold_its_output(monkeypatch, tmp_path):
    finished = tmp_path / "worker-finished"
    # Like `dvc queue start`: prints, leaves a worker that inherits stdout and stderr, exits.
    bin_folder = fake_dvc(tmp_path, f"echo \"Started '2' workers\"\n(sleep 30; touch {finished}) &\n"
                                    f"echo $! > {tmp_path / 'worker'}")
    env = dvc_env()
    monkeypatch.setattr(conftest, "dvc_env", lambda: {**env, "PATH": f"{bin_folder}{os.pathsep}{env['PATH']}"})
    try:
        assert "Started '2' workers" in conftest.start_queue(tmp_path, 2)
        assert not finished.exists(), "start_queue waited for the worker to end"
    finally:
        os.kill(int((tmp_path / "worker").read_text()), signal.SIGTERM)


def test_stop_queue_workers_stops_those_under_the_folder_only(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    worker = [sys.executable, "-c", "import time; time.sleep(60)", "exp", "queue-worker"]
    mine, other = (subprocess.Popen(worker, cwd=folder) for folder in (inside, outside))
    try:
        conftest.stop_queue_workers(inside)
        assert mine.wait(timeout=10) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for proc in (mine, other):
            proc.kill()
            proc.wait()
