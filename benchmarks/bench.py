"""What a user waits for, measured beside one epoch of the notebook's own loop on the same machine.

    python -m benchmarks.bench [--reps 3] [--rev HEAD [--rev OTHER ...]] [--markdown reports/benchmark.md]

Each repetition clones each `--rev` of this repository into a temporary
folder (a fresh clone: an empty DVC cache) and times, with the real `dvc`
command line:

  clean        `dvc repro` of every stage;
  lr loop      `dvc repro` after README's change, train_nn.lr 0.1 -> 0.03;
  experiment   `dvc exp run -S train_nn.epochs=2`, in the workspace;
  two queued   two experiments queued, then run by `dvc exp run --run-all -j 2`;

After the lr loop it also runs `train_nn` and `evaluate@nn` by hand, as
the lr loop ran them (what is left of the loop is DVC's own work), and a
process that only imports torch and makes a `torch.optim.SGD`: the least
a stage that trains with torch.optim costs. Before and after each of the
four rows above it times one epoch of the notebook's loop
(benchmarks/notebook_loop.py: torchvision dataset, ToTensor, DataLoader of
50). Each row is a median over repetitions, given as a ratio to the median
of all those epochs: epochs spread over the whole run, so the ratio
follows the machine's load while one epoch slowed by a passing job does
not move it. Several revs (a before and an after) are timed in turns
within each repetition, in the same hour, the order reversed every other
repetition. A benchmark, not a test: nothing here fails because a machine
is slow.
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
# What the lr loop is made of, each stage run by hand outside DVC (what is left is DVC's own work), and the
# least any process pays that trains with torch.optim.
PARTS = {
    "train_nn": "of the lr loop: `python -m stages.train_nn`, 15 epochs",
    "evaluate@nn": "of the lr loop: `python -m stages.evaluate nn`",
    "torch.optim": "a process that imports torch and makes one `torch.optim.SGD`",
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


def repetition(rev, workdir, epoch):
    """{row: seconds} in a fresh clone of `rev`; `epoch()` times one notebook epoch after each row."""
    project = workdir / "project"
    subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "checkout", "-q", rev], check=True)
    subprocess.run(["git", "-C", str(project), "config", "user.name", "bench"], check=True)
    subprocess.run(["git", "-C", str(project), "config", "user.email", "bench@localhost"], check=True)
    results = {}
    epoch()

    def row(name, command):
        results[name] = timed(command, project)
        epoch()

    row("clean", ["dvc", "repro"])
    params = project / "params.yaml"
    text = params.read_text()
    section = text.index("train_nn:")
    params.write_text(text[:section] + text[section:].replace("lr: 0.1", "lr: 0.03", 1))
    row("lr loop", ["dvc", "repro"])
    python, scratch = sys.executable, workdir / "by-hand"
    results["train_nn"] = timed([python, "-m", "stages.train_nn", "--data", "data/flat",
                                 "--model", str(scratch / "nn.safetensors"), "--metrics", str(scratch / "nn.json"),
                                 "--history", str(scratch / "history.csv")], project)
    results["evaluate@nn"] = timed([python, "-m", "stages.evaluate", "nn", "--data", "data/flat",
                                    "--model", "data/models/nn.safetensors", "--curve", "metrics/train_nn_history.csv",
                                    "--out", str(scratch), "--figures", str(scratch)], project)
    first_sgd = "import torch; torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)"
    results["torch.optim"] = timed([python, "-c", first_sgd], project)
    subprocess.run(["git", "-C", str(project), "commit", "-qam", "lr 0.03"], check=True)
    row("experiment", ["dvc", "exp", "run", "-S", "train_nn.epochs=2"])
    for lr in ("0.02", "0.05"):
        timed(["dvc", "exp", "run", "--queue", "-S", f"train_nn.lr={lr}", "-S", "train_nn.epochs=2"], project)
    row("two queued", ["dvc", "exp", "run", "--run-all", "-j", "2"])
    return results


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="fresh clones of each rev, each timed once (default 3)")
    parser.add_argument("--rev", action="append", help="a commit to clone and time (default HEAD); repeat to compare")
    parser.add_argument("--markdown", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    revs = [subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", rev],
                           capture_output=True, text=True, check=True).stdout.strip() for rev in args.rev or ["HEAD"]]

    from benchmarks import notebook_loop

    load_before = os.getloadavg()[0]
    epochs, runs = [], {rev: [] for rev in revs}
    with tempfile.TemporaryDirectory() as folder:
        root = notebook_loop.prepare_root(PROJECT_ROOT / "data" / "fashion-mnist", Path(folder) / "torchvision")

        def epoch():
            epochs.append(notebook_epoch(root))
            return epochs[-1]

        for rep in range(args.reps):
            # Turns in one order, then the other: a machine that slows as a run goes on favours neither rev.
            for rev in revs if rep % 2 == 0 else revs[::-1]:
                with tempfile.TemporaryDirectory() as workdir:
                    runs[rev].append(repetition(rev, Path(workdir), epoch))
                rows = runs[rev][-1].items()
                print(f"repetition {rep + 1}/{args.reps} of {rev}: "
                      + ", ".join(f"{row} {seconds:.1f} s" for row, seconds in rows),
                      file=sys.stderr)
    table = markdown_table(revs, runs, epochs, load_before, args.reps)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")


def markdown_table(revs, runs, epochs, load_before, reps):
    """The table: per rev, each row's median seconds and their ratio to the median notebook epoch."""
    epoch = statistics.median(epochs)
    lines = [
        f"{cpu_model()}, {os.cpu_count()} CPUs; load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end; medians of {reps} fresh clones of each commit. A notebook epoch "
        f"took {epoch:.1f} s (median of {len(epochs)}, from {min(epochs):.1f} "
        f"to {max(epochs):.1f} s), timed between the rows; each row's ratio is to that median.",
        "",
        "| what a user waits for | " + " | ".join(f"{rev}: seconds | {rev}: notebook epochs" for rev in revs) + " |",
        "|---|" + "---:|---:|" * len(revs),
    ]
    for row, label in {**ROWS, **PARTS}.items():
        cells = []
        for rev in revs:
            seconds = statistics.median(run[row] for run in runs[rev])
            cells += [f"{seconds:.1f}", f"{seconds / epoch:.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
