"""stages/__init__.py: OpenMP's idle threads spin briefly where a core is free, else sleep; the user's setting wins."""

import os
import subprocess
import sys

import pytest

import stages
from stages import openmp_waiting

QUIET = "0.10 0.20 0.30 1/79 2688\n"  # only the reading process runs
BUSY = "1.10 0.90 0.70 2/80 2694\n"


@pytest.mark.parametrize(("loadavg", "cores", "expected"), [
    (QUIET, 2, {"GOMP_SPINCOUNT": stages.SPIN_COUNT}),
    (BUSY, 2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    (BUSY, 4, {"GOMP_SPINCOUNT": stages.SPIN_COUNT}),
    (QUIET, 1, {"OMP_WAIT_POLICY": "PASSIVE"}),  # one core: a spinning thread only delays the working one
    (None, 8, {"OMP_WAIT_POLICY": "PASSIVE"}),  # no /proc/loadavg: the safe choice
    ("garbage", 8, {"OMP_WAIT_POLICY": "PASSIVE"}),
])
def test_threads_spin_only_while_fewer_processes_run_than_there_are_cores(loadavg, cores, expected):
    assert openmp_waiting({}, cores, loadavg) == expected


@pytest.mark.parametrize("setting", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}])
def test_a_setting_of_the_users_wins(setting):
    assert openmp_waiting(setting, 2, QUIET) == {}


def test_a_stage_process_has_the_setting_before_torch_loads():
    environ = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = ("import os, sys; import stages.train_scratch; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")
    printed = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True,
                             check=True).stdout.split()
    assert printed in (["PASSIVE", "None", "True"], ["None", stages.SPIN_COUNT, "True"])
    environ["OMP_WAIT_POLICY"] = "ACTIVE"
    printed = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True,
                             check=True).stdout.split()
    assert printed == ["ACTIVE", "None", "True"]
