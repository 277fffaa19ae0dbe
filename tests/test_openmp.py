"""stages/__init__.py: OpenMP's idle threads spin briefly where a core is free, else sleep; the user's setting wins."""

import os
import subprocess
import sys

import pytest

import stages
from stages import CHOSEN, choose_openmp_waiting

QUIET = "0.10 0.20 0.30 1/79 2688\n"  # only the reading process runs
BUSY = "1.10 0.90 0.70 2/80 2694\n"
SPIN = {"GOMP_SPINCOUNT": stages.SPIN_COUNT, CHOSEN: "GOMP_SPINCOUNT"}
SLEEP = {"OMP_WAIT_POLICY": "PASSIVE", CHOSEN: "OMP_WAIT_POLICY"}


def chosen(environ, cores, loadavg):
    environ = dict(environ)
    choose_openmp_waiting(environ, cores, loadavg)
    return environ


@pytest.mark.parametrize(("loadavg", "cores", "expected"), [
    (QUIET, 2, SPIN),
    (BUSY, 2, SLEEP),
    (BUSY, 4, SPIN),
    (QUIET, 1, SLEEP),  # one core: a spinning thread only delays the working one
    (None, 8, SLEEP),  # no /proc/loadavg: the safe choice
    ("garbage", 8, SLEEP),
])
def test_threads_spin_only_while_fewer_processes_run_than_there_are_cores(loadavg, cores, expected):
    assert chosen({"PATH": "/bin"}, cores, loadavg) == {"PATH": "/bin", **expected}


@pytest.mark.parametrize("setting", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}])
def test_a_setting_of_the_users_wins(setting):
    assert chosen(setting, 2, QUIET) == setting


def test_a_parent_process_choice_is_made_again():
    """A stage started by dvc, started by a process that chose on a quiet machine, chooses for itself."""
    assert chosen(SPIN, 2, BUSY) == SLEEP
    assert chosen(SLEEP, 2, QUIET) == SPIN


def test_a_stage_process_has_the_setting_before_torch_loads():
    environ = {key: value for key, value in os.environ.items()
               if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", CHOSEN)}
    code = ("import os, sys; import stages.train_scratch; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")

    def printed(**settings):
        return subprocess.run([sys.executable, "-c", code], env={**environ, **settings}, capture_output=True,
                              text=True, check=True).stdout.split()

    assert printed() in (["PASSIVE", "None", "True"], ["None", stages.SPIN_COUNT, "True"])
    assert printed(**SPIN) in (["PASSIVE", "None", "True"], ["None", stages.SPIN_COUNT, "True"])
    assert printed(OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "None", "True"]
