"""The test copies of a project: cheap on disk, and independent of the project they copy."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import conftest
import pytest
from conftest import copy_project, dvc_env, fake_dvc


def test_copy_links_git_objects_and_dvc_cache_and_copies_everything_else(tmp_path):
    source = tmp_path / "source"
    for relative in (".git/objects/ab/cdef", ".dvc/cache/files/md5/12/3456", ".dvc/tmp/btime",
                     "params.yaml", "data/flat/train_images.npy"):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(relative)
    copy = copy_project(source, tmp_path / "copy")

    for relative in (".git/objects/ab/cdef", ".dvc/cache/files/md5/12/3456"):
        assert os.path.samefile(source / relative, copy / relative), relative
    for relative in (".dvc/tmp/btime", "params.yaml", "data/flat/train_images.npy"):
        assert not os.path.samefile(source / relative, copy / relative), relative
        (copy / relative).write_text("changed by a test")
        assert (source / relative).read_text() == relative


def test_copy_keeps_symlinks_as_links(tmp_path):
    source = tmp_path / "source"
    (source / "data").mkdir(parents=True)
    (source / "data" / "model").write_text("weights")
    (source / "latest").symlink_to("data/model")
    copy = copy_project(source, tmp_path / "copy")
    assert os.readlink(copy / "latest") == "data/model"


MODULE = '''
import importlib.util
import os
from pathlib import Path

spec = importlib.util.spec_from_file_location("project_conftest", {conftest!r})
project_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(project_conftest)
module_tmp_path = project_conftest.module_tmp_path


def test_first(module_tmp_path):
    (module_tmp_path / "shared").write_text("written by the first test")
    Path(os.environ["WHERE"]).write_text(str(module_tmp_path))


def test_second(module_tmp_path):
    assert (module_tmp_path / "shared").read_text() == "written by the first test"
    assert {outcome!s}
'''


@pytest.mark.parametrize("passes", [True, False], ids=["all-passed", "one-failed"])
def test_module_folder_is_shared_then_removed_unless_a_test_failed(pytester, monkeypatch, tmp_path, passes):
    monkeypatch.setenv("WHERE", str(tmp_path / "where"))
    pytester.makepyfile(test_inner=MODULE.format(conftest=str(Path(__file__).with_name("conftest.py")),
                                                 outcome=passes))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--basetemp", str(tmp_path / "base"))
    result.assert_outcomes(passed=2 if passes else 1, failed=0 if passes else 1)
    folder = Path((tmp_path / "where").read_text())
    assert folder.is_relative_to(tmp_path / "base")
    assert folder.exists() is not passes


def test_pyproject_keeps_the_tmp_path_of_failed_tests_only(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("WHERE", str(tmp_path))
    pytester.makepyfile(test_inner='''
import os
from pathlib import Path


def test_passes(tmp_path):
    Path(os.environ["WHERE"], "passed").write_text(str(tmp_path))


def test_fails(tmp_path):
    Path(os.environ["WHERE"], "failed").write_text(str(tmp_path))
    assert False
''')
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    result = pytester.runpytest_subprocess("-c", str(pyproject), "--rootdir", str(pytester.path),
                                           "-p", "no:cacheprovider", "test_inner.py")
    result.assert_outcomes(passed=1, failed=1)
    assert not Path((tmp_path / "passed").read_text()).exists()
    assert Path((tmp_path / "failed").read_text()).exists()


def test_start_queue_returns_while_the_workers_it_started_still_hold_its_output(monkeypatch, tmp_path):
    finished = tmp_path / "worker-finished"
    # Like `dvc queue start`: prints, leaves a worker that inherits stdout and stderr, exits.
    bin_folder = fake_dvc(tmp_path, f"echo \"Started '2' workers\"\n(sleep 30; touch {finished}) &\n"
                                    f"echo $! > {tmp_path / 'worker'}")
    env = dvc_env()
    monkeypatch.setattr(conftest, "dvc_env", lambda: {**env, "PATH": f"{bin_folder}{os.pathsep}{env['PATH']}"})
    printed = conftest.start_queue(tmp_path, 2)
    try:
        assert not finished.exists(), "start_queue waited for the worker to end"
        assert "Started '2' workers" in printed
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


SHARED_TEMPLATE = '''
import importlib.util
import os
import time
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("project_conftest", {conftest!r})
project_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(project_conftest)


def build(path):
    time.sleep(1)  # long enough for the other worker to ask for it meanwhile
    path.mkdir(parents=True)
    (path / "built").write_text("once")
    with open(os.environ["BUILDS"], "a") as builds:
        builds.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    return project_conftest.shared_template(tmp_path_factory, "template", build)


@pytest.mark.parametrize("n", range(4))
def test_uses_it(template, n):
    assert (template / "built").read_text() == "once"
    with open(os.environ["USERS"], "a") as users:
        users.write(os.environ["PYTEST_XDIST_WORKER"] + " " + str(template) + "\\n")
'''


def test_a_shared_template_is_built_once_for_all_workers(pytester, monkeypatch, tmp_path):
    builds, users = tmp_path / "builds", tmp_path / "users"
    monkeypatch.setenv("BUILDS", str(builds))
    monkeypatch.setenv("USERS", str(users))
    pytester.makepyfile(test_inner=SHARED_TEMPLATE.format(conftest=str(Path(__file__).with_name("conftest.py"))))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "load",
                                           "--basetemp", str(tmp_path / "base"))
    result.assert_outcomes(passed=4)
    assert len(builds.read_text().splitlines()) == 1
    workers, folders = zip(*(line.split() for line in users.read_text().splitlines()), strict=True)
    assert set(workers) == {"gw0", "gw1"}
    assert len(set(folders)) == 1


def test_the_modules_started_first_exist(pytester):
    """A renamed module would silently lose its place at the front of the run."""
    for name in conftest.LONGEST_FIRST:
        assert (Path(conftest.__file__).parent / name).is_file(), name
    pytester.makepyfile(test_b="def test_b(): pass", test_a="def test_a(): pass",
                        test_predict="def test_p(): pass")
    pytester.makeconftest(f"from importlib.machinery import SourceFileLoader\n"
                          f"pytest_collection_modifyitems = SourceFileLoader('c', {conftest.__file__!r})"
                          f".load_module().pytest_collection_modifyitems\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "-q")
    assert [line.split("::")[0] for line in result.outlines if "::" in line] == \
        ["test_predict.py", "test_a.py", "test_b.py"]
