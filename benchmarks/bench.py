"""What a user waits for, measured beside one epoch of the notebook's own loop on the same machine.

    python -m benchmarks.bench [--reps 3] [--rev HEAD] [--markdown reports/benchmark.md]

Each repetition clones `--rev` of this repository into a temporary folder (a
fresh clone: an empty DVC cache) and times, with the real `dvc` command line:

  clean        `dvc repro` of every stage;
  lr loop      `dvc repro` after README's change, train_nn.lr 0.1 -> 0.03;
  experiment   `dvc exp run -S train_nn.epochs=2`, in the workspace;
  two queued   two experiments queued, then run by `dvc exp run --run-all -j 2`;

and, between them, one epoch of the notebook's loop (benchmarks/notebook_loop.py:
torchvision dataset, ToTensor, DataLoader of 50). Every row is a median,
also given as a ratio to the median notebook epoch, so a machine busy with
other work slows both sides alike. A benchmark, not a test: nothing here
fails because a machine is slow.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    "clean": "clean `dvc repro`",
    "lr loop": "`dvc repro` after train_nn.lr 0.1 -> 0.03 (README's loop)",
    "experiment": "`dvc exp run -S train_nn.epochs=2`",
    "two queued": "two queued experiments, `dvc exp run --run-all -j 2`",
}


def timed(command, cwd):
    """Seconds `command` took in `cwd`; a failure stops the benchmark with what it printed."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def notebook_epoch(root):
    """Seconds of one epoch of the notebook's loop, as the notebook writes it."""
    import torch

    from benchmarks import notebook_loop

    trainset, _ = notebook_loop.datasets(root)
    model, criterion, optimizer = notebook_loop.make_training(seed=0)
    loader = torch.utils.data.DataLoader(trainset, batch_size=notebook_loop.BATCH_SIZE, shuffle=True)
    started = time.perf_counter()
    notebook_loop.train_epoch(model, criterion, optimizer, loader)
    return time.perf_counter() - started


def repetition(rev, workdir):
    """{row: seconds} in a fresh clone of `rev`."""
    project = workdir / "project"
    subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "checkout", "-q", rev], check=True)
    subprocess.run(["git", "-C", str(project), "config", "user.name", "bench"], check=True)
    subprocess.run(["git", "-C", str(project), "config", "user.email", "bench@localhost"], check=True)
    seconds = {"clean": timed(["dvc", "repro"], project)}
    params = project / "params.yaml"
    text = params.read_text()
    section = text.index("train_nn:")
    params.write_text(text[:section] + text[section:].replace("lr: 0.1", "lr: 0.03", 1))
    seconds["lr loop"] = timed(["dvc", "repro"], project)
    subprocess.run(["git", "-C", str(project), "commit", "-qam", "lr 0.03"], check=True)
    seconds["experiment"] = timed(["dvc", "exp", "run", "-S", "train_nn.epochs=2"], project)
    for lr in ("0.02", "0.05"):
        timed(["dvc", "exp", "run", "--queue", "-S", f"train_nn.lr={lr}", "-S", "train_nn.epochs=2"], project)
    seconds["two queued"] = timed(["dvc", "exp", "run", "--run-all", "-j", "2"], project)
    return seconds


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="fresh clones, each timed once (default 3)")
    parser.add_argument("--rev", default="HEAD", help="the commit to clone and time (default HEAD)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    rev = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", args.rev],
                         capture_output=True, text=True, check=True).stdout.strip()

    from benchmarks import notebook_loop

    load_before = os.getloadavg()[0]
    epochs, runs = [], []
    with tempfile.TemporaryDirectory() as folder:
        root = notebook_loop.prepare_root(PROJECT_ROOT / "data" / "fashion-mnist", Path(folder) / "torchvision")
        for rep in range(args.reps):
            epochs.append(notebook_epoch(root))
            with tempfile.TemporaryDirectory() as workdir:
                runs.append(repetition(rev, Path(workdir)))
            print(f"repetition {rep + 1}/{args.reps}: notebook epoch {epochs[-1]:.1f} s, "
                  + ", ".join(f"{row} {seconds:.1f} s" for row, seconds in runs[-1].items()), file=sys.stderr)
    epoch = statistics.median(epochs)
    lines = [
        f"Commit {rev}; {cpu_model()}, {os.cpu_count()} CPUs; load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end; medians of {args.reps} fresh clones.",
        "",
        "| what a user waits for | seconds | notebook epochs |",
        "|---|---:|---:|",
        f"| one epoch of the notebook's loop (DataLoader, ToTensor) | {epoch:.1f} | 1.00 |",
    ]
    for row, label in ROWS.items():
        seconds = statistics.median(run[row] for run in runs)
        lines.append(f"| {label} | {seconds:.1f} | {seconds / epoch:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
