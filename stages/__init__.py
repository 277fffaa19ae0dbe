"""Fashion-MNIST softmax regression as DVC stages: one module per stage."""

import os

# libgomp's busy-wait, in spins, before an idle thread sleeps (its default is 300,000).
SPIN_COUNT = "30000"
# Names the settings chosen here, so that a process started from this one
# (dvc, then a stage) chooses again instead of taking them for the user's.
CHOSEN = "FMNIST_OPENMP_CHOSEN"


def choose_openmp_waiting(environ, cores, loadavg):
    """Set in `environ` how OpenMP's idle threads wait in this process.

    Between two parallel steps of a gradient-descent iteration (dozens each)
    a worker thread either spins, ready at once, or sleeps and is woken
    through the kernel. Spinning pays only while a core is free for it:
    measured on 2 cores, 300 iterations took 5.3 s spinning briefly
    (SPIN_COUNT) and 6.9 s sleeping on an idle machine, but 20 s against
    10 s beside one busy process (46 s with libgomp's default spin). So a
    process spins briefly when, as it starts, fewer processes are running
    than there are `cores` (`loadavg`: /proc/loadavg's text, whose fourth
    field counts the running ones, this one included), and sleeps
    otherwise. A setting of the user's (OMP_WAIT_POLICY, GOMP_SPINCOUNT)
    wins; one that a parent process chose here is chosen again.
    """
    for name in environ.pop(CHOSEN, "").split():
        environ.pop(name, None)
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return
    try:
        running = int(loadavg.split()[3].split("/")[0])
    except (AttributeError, IndexError, ValueError):
        running = cores  # unknown: as if every core were taken
    settings = {"GOMP_SPINCOUNT": SPIN_COUNT} if running < cores else {"OMP_WAIT_POLICY": "PASSIVE"}
    environ.update(settings, **{CHOSEN: " ".join(settings)})


def _read_loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read()
    except OSError:
        return None


# Read by OpenMP when torch loads: so set before any stage imports torch.
choose_openmp_waiting(os.environ, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1, _read_loadavg())
