"""What every stage shares: one-line errors, torch set-up, whole-or-nothing writes."""

import contextlib
import functools
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


class StageError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


def stage_main(main):
    """Run a stage's main(): a StageError or an interrupt becomes one line and a non-zero exit."""

    @functools.wraps(main)
    def run(argv=None):
        # SIGTERM (dvc queue kill, a CI timeout) unwinds like Ctrl-C, so the
        # temporary files of a write in progress are removed on the way out.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            main(argv)
        except StageError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: no output was left half-written", file=sys.stderr)
            sys.exit(130)

    return run


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def configure_torch(threads=None):
    """Flush denormals and pick the thread count; returns the count used.

    A confident model's softmax underflows into denormal floats, which CPUs
    handle 20x slower or worse; flushing them to zero changes no result that
    matters. Threads come from FMNIST_THREADS, else `threads`, else torch's
    default. A queued experiment (dvc queue start -j N) runs under
    .dvc/tmp/exps and takes one thread, so N workers share the cores
    instead of fighting over them.
    """
    import torch

    torch.set_flush_denormal(True)
    if os.environ.get("FMNIST_THREADS"):
        threads = _positive_int_env("FMNIST_THREADS")
    elif _in_dvc_queue():
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _positive_int_env(name):
    value = os.environ[name]
    if not value.isdigit() or int(value) < 1:
        raise StageError(f"environment variable {name}={value!r} must be a positive integer")
    return int(value)


def _in_dvc_queue():
    return os.path.join(".dvc", "tmp", "exps") in os.getcwd()


def resolve_device(name):
    """'auto' -> 'cuda' when a GPU is usable, else 'cpu'; 'cpu' and 'cuda' as given."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError("device 'cuda' was asked for, but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(name)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A reader never sees a half-written file: it finds the old file, the
    new one, or none.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp"))
    # mkdtemp makes a private folder (0700); the output gets a plain folder's mode.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    old = None
    try:
        yield tmp
        if path.exists():
            # Renamed away whole, not deleted in place: a kill mid-way leaves
            # the old folder or none at `path`, never a half-deleted one.
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _temporary_prefix(path):
    # The writer's process id in the name tells a later run whether the
    # writer is still at work or was killed before it could clean up.
    return f".{path.name}.{os.getpid()}."


def remove_stale_temporaries(path):
    """Delete the temporary siblings of `path` whose writer no longer runs (killed by SIGKILL, say).

    A temporary name is `.{name}.{pid}.{random}.tmp`; one whose process is
    alive belongs to a write in progress and is left alone.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[A-Za-z0-9_]+\.tmp")
    if not path.parent.is_dir():
        return
    for candidate in path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if not match or _writer_alive(int(match.group(1)), candidate):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()


def _writer_alive(pid, temporary):
    """True while process `pid` runs and may be the one that made `temporary`.

    A killed process that nobody has reaped yet (a zombie) no longer writes,
    and a process that started after the temporary was last written is not
    its writer but a newer one that the system gave the same pid.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        pass
    state, started = _process_state(pid)
    if state in ("Z", "X"):
        return False
    return started is None or started <= temporary.lstat().st_mtime + 1.0


def _process_state(pid):
    """(state letter, start time in seconds since the epoch) of process `pid`; Nones where /proc cannot tell."""
    try:
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        # The fields after the command name, which is in parentheses and may hold spaces.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return None, None


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, data):
    """Write JSON whole; NaN and infinity (a diverged run) become null, which every JSON reader takes."""
    write_text(path, json.dumps(_finite_or_none(data), indent=2, allow_nan=False) + "\n")


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def write_csv(path, frame):
    """Write a pandas DataFrame whole as CSV: a header row, no index, floats in full (shortest repr).

    NaN (a diverged run's loss) is written `nan`, as Python and numpy print it.
    """
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n", na_rep="nan")


def save_tensors(path, tensors):
    """Save a dict of tensors as safetensors: plain arrays, nothing pickled."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, str(tmp))


def load_tensors(path, as_numpy=False):
    """{name: tensor} from a safetensors file; numpy arrays instead with `as_numpy`."""
    from safetensors import SafetensorError

    if as_numpy:
        from safetensors.numpy import load_file
    else:
        from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise StageError(f"model file {path} does not exist; run the stage that trains it") from None
    except (SafetensorError, OSError) as error:
        problem = " ".join(str(error).split())
        raise StageError(f"model file {path} cannot be read ({problem}); rerun the stage that trains it") from None


# --- progress -----------------------------------------------------------------------------------

PLAIN_INTERVAL_S = 5.0  # without a terminal: one line at most this often, and one at the end


def progress(total, description, unit, stream=None, interval_s=None, clock=None):
    """A progress display for `total` steps of `unit` on `stream` (stderr by default).

    On a terminal it is a tqdm bar, redrawn in place; elsewhere (a log, CI,
    `dvc queue logs`) it is a plain line every `interval_s` seconds and a
    last one when it closes, never a carriage return. Call
    `.step(**figures)` after each step and `.close()` at the end (or use it
    in a `with` block). Progress is printed, never written to an output file.
    """
    stream = stream if stream is not None else sys.stderr
    if _is_terminal(stream):
        return _TerminalProgress(total, description, unit, stream)
    interval_s = PLAIN_INTERVAL_S if interval_s is None else interval_s
    return _PlainProgress(total, description, unit, stream, interval_s, clock or _monotonic)


def _is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _monotonic():
    import time

    return time.monotonic()


def _format_figures(figures):
    return ", ".join(f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in figures.items())


class _PlainProgress:
    def __init__(self, total, description, unit, stream, interval_s, clock):
        self.total, self.description, self.unit, self.stream = total, description, unit, stream
        self.interval_s, self.clock = interval_s, clock
        self.done, self.figures = 0, {}
        self.started = self.last_line = clock()
        self.printed_at = None

    def step(self, count=1, **figures):
        self.done += count
        self.figures = figures
        if self.clock() - self.last_line >= self.interval_s:
            self._line()

    def _line(self):
        now = self.clock()
        elapsed = now - self.started
        if elapsed <= 0 or not self.done:
            rate = f"- {self.unit}/s"
        elif self.done >= elapsed:
            rate = f"{self.done / elapsed:.1f} {self.unit}/s"
        else:  # slower than one a second: seconds per step, as tqdm shows it
            rate = f"{elapsed / self.done:.1f} s/{self.unit}"
        details = _format_figures(self.figures)
        print(f"{self.description}: {self.unit} {self.done}/{self.total}" + (f", {details}" if details else "")
              + f", {rate}", file=self.stream, flush=True)
        self.last_line, self.printed_at = now, self.done

    def close(self):
        if self.done and self.printed_at != self.done:
            self._line()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _TerminalProgress:
    def __init__(self, total, description, unit, stream):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=description, unit=unit, file=stream, leave=True, dynamic_ncols=True)

    def step(self, count=1, **figures):
        if figures:
            self.bar.set_postfix_str(_format_figures(figures), refresh=False)
        self.bar.update(count)

    def close(self):
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
