"""Where the pipeline's time and memory go, printed as one Markdown table.

    python -m benchmarks.bench [--reps 5] [--markdown bench.md] [--no-repro]
    python -m benchmarks.bench --gpu-check      (what benchmarks/gpu_check.sh runs)

Every speed claim is a ratio measured inside this one run, the two sides
alternating and each summarized by its median, so a machine busy with other
work slows both sides alike:

  epoch       the notebook's loop (benchmarks/notebook_loop.py: torchvision
              dataset, ToTensor, DataLoader of 50 with shuffle) against
              stages/train_nn.train, per-epoch metrics included;
  scratch     one gradient-descent iteration of stages/softmax.py against
              one pass over the training matrix (X.sum(): what reading X
              once costs on this machine, the memory floor) and against the
              two matrix products it cannot do without;
  contention  the same iteration in a fresh process, idle and beside one
              busy process, with OpenMP's default waiting and with
              OMP_WAIT_POLICY=PASSIVE;
  repro       `dvc repro` in temporary copies of the project (--repro-reps
              of them): clean, after a train_nn.lr change, after a
              train_nn.epochs change, and with nothing to do; per stage of
              the clean runs, the wall time, the part of it spent importing
              modules, and peak memory.

A benchmark, not a test: nothing here fails because a machine is slow. The
table's first line names the machine it ran on.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from benchmarks import notebook_loop
from stages import flatten, softmax, train_nn
from stages.common import configure_torch, resolve_device

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = PROJECT_ROOT / "data" / "fashion-mnist"
FLAT = PROJECT_ROOT / "data" / "flat"
# The notebook's settings; the repro section uses the project's params.yaml instead.
SEED, LR, MOMENTUM, BATCH_SIZE, SCRATCH_LR = 20190187, 0.1, 0.5, 50, 0.1
GB = 1e9
DEFAULT_THREADS = torch.get_num_threads()  # before configure_torch changes it



def flat_folder(workdir):
    """data/flat when present, else the bundled files flattened into `workdir`/flat."""
    if (FLAT / "train_images.npy").exists():
        return FLAT
    flat_dir = Path(workdir) / "flat"
    if not (flat_dir / "train_images.npy").exists():
        flatten.main(["--raw", str(BUNDLED), "--out", str(flat_dir)])
    return flat_dir


def load_data(workdir):
    """(train, test) as stages/flatten.load_split gives them."""
    flat_dir = flat_folder(workdir)
    return flatten.load_split(flat_dir, "train"), flatten.load_split(flat_dir, "test")


def timed(function, *args, **kwargs):
    """(seconds, result) of one call; waits for the GPU when there is one."""
    _synchronize()
    started = time.perf_counter()
    result = function(*args, **kwargs)
    _synchronize()
    return time.perf_counter() - started, result


def _synchronize():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


# --- epoch: the notebook's loop against the stage's -------------------------------------------

def bench_epochs(train_set, test_set, workdir, reps):
    """Median seconds per epoch of the notebook's loop and of train_nn.train, taken in turns."""
    root = notebook_loop.prepare_root(BUNDLED, Path(workdir) / "torchvision")
    trainset, _ = notebook_loop.datasets(root)
    model, criterion, optimizer = notebook_loop.make_training(SEED)
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=notebook_loop.BATCH_SIZE, shuffle=True)

    def notebook_epoch():
        # Denormals not flushed, as in the notebook. One thread, as the stage: a
        # second one only adds hand-offs to steps this small, and on a machine
        # shared with other work it made the notebook's epoch ten times slower.
        torch.set_num_threads(1)
        torch.set_flush_denormal(False)
        return wall_and_cpu(notebook_loop.train_epoch, model, criterion, optimizer, trainloader)

    def stage_epoch(seed):
        configure_torch(threads=1)  # what stages/train_nn.main sets
        return wall_and_cpu(train_nn.train, train_set, test_set, LR, MOMENTUM, BATCH_SIZE, 1, seed)

    notebook_epoch(), stage_epoch(SEED)  # warm-up: first-touch of memory, lazy initializations
    notebook_times, stage_times = [], []
    for rep in range(reps):
        notebook_times.append(notebook_epoch())
        stage_times.append(stage_epoch(SEED + rep))
    return {
        "notebook_s": statistics.median(wall for wall, _ in notebook_times),
        "stage_s": statistics.median(wall for wall, _ in stage_times),
        "notebook_cpu_s": statistics.median(cpu for _, cpu in notebook_times),
        "stage_cpu_s": statistics.median(cpu for _, cpu in stage_times),
        "reps": reps,
    }


def wall_and_cpu(function, *args):
    """(wall seconds, CPU seconds of this thread) of one call: both loops run on this one thread.

    On a machine shared with other work the wall time also counts the
    waits for a core; the CPU time does not.
    """
    wall, cpu = time.perf_counter(), time.thread_time()
    function(*args)
    return time.perf_counter() - wall, time.thread_time() - cpu


# --- scratch: one iteration against its two matrix products -----------------------------------

def bench_scratch(train_set, reps, iterations=5):
    """Per thread count (1 and the stage's): median seconds per iteration, per pass over X, per pair of products.

    The pass is X.sum(): it reads every byte of X once and does almost no
    arithmetic, so it is what one read of the training matrix costs here.
    The pair is X @ Theta.T and the gradient's (c, n) @ (n, f) product, the
    arithmetic that an iteration cannot do without. The iteration is
    stages/softmax.gradient_descent's, as train_scratch runs it.
    """
    torch.set_num_threads(DEFAULT_THREADS)
    stage_threads = configure_torch()  # what stages/train_scratch.main sets
    images, labels = train_set
    X = softmax.add_intercept(images)
    Y = softmax.one_hot(labels, train_nn.N_CLASSES)
    Theta = torch.randn(Y.shape[1], X.shape[1], generator=torch.Generator().manual_seed(0)) * 0.01

    def one_pass():
        for _ in range(iterations):
            X.sum()

    def products():
        for _ in range(iterations):
            logits = X @ Theta.T  # the forward pass
            logits.T @ X          # the gradient's product

    def descent():
        result = softmax.gradient_descent(X, Y, SCRATCH_LR, max_iter=iterations, tol=0.0)
        assert result.iterations == iterations, "the benchmark needs every iteration to run"

    results = []
    for threads in sorted({1, stage_threads}):
        torch.set_num_threads(threads)
        one_pass(), products(), descent()
        pass_times, product_times, iteration_times = [], [], []
        for _ in range(reps):
            pass_times.append(timed(one_pass)[0] / iterations)
            product_times.append(timed(products)[0] / iterations)
            iteration_times.append(timed(descent)[0] / iterations)
        results.append({
            "iteration_s": statistics.median(iteration_times), "products_s": statistics.median(product_times),
            "pass_s": statistics.median(pass_times), "bytes": X.numel() * X.element_size(),
            "threads": threads, "stage_threads": stage_threads, "shape": tuple(X.shape),
        })
    return results


# --- contention: the scratch iteration beside a busy process, by how OpenMP's threads wait -----

ITERATION_CHILD = """
import sys, time
from stages import flatten, softmax
from stages.common import configure_torch
configure_torch()
pixels, labels = flatten.load_split(sys.argv[1], "train")
X, Y = softmax.add_intercept(pixels), softmax.one_hot(labels, 10)
softmax.gradient_descent(X, Y, 0.1, 3, 0.0)
started = time.perf_counter()
softmax.gradient_descent(X, Y, 0.1, int(sys.argv[2]), 0.0)
print((time.perf_counter() - started) / int(sys.argv[2]))
"""


def bench_contention(workdir, reps, iterations=30):
    """Median seconds per scratch iteration, as the stage runs it, idle and beside one busy process.

    Each in a fresh process (OpenMP reads how its idle threads wait when it
    loads): with libgomp's default (they spin a while, then sleep) and with
    OMP_WAIT_POLICY=PASSIVE (they sleep at once).
    """
    flat_dir = flat_folder(workdir)
    results = {}
    for busy in (False, True):
        neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for policy in ("default", "PASSIVE"):
                env = {key: value for key, value in os.environ.items()
                       if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
                if policy != "default":
                    env["OMP_WAIT_POLICY"] = policy
                times = [float(subprocess.run(
                    [sys.executable, "-c", ITERATION_CHILD, str(flat_dir), str(iterations)], cwd=PROJECT_ROOT,
                    env=env, capture_output=True, text=True, check=True).stdout) for _ in range(reps)]
                results[(busy, policy)] = statistics.median(times)
        finally:
            if neighbour:
                neighbour.kill()
                neighbour.wait()
    return results


# --- repro: the real `dvc repro` in a temporary copy -------------------------------------------

SHIM = '''#!{python} -S
"""Stands in for `python` on PATH: runs the real one, then logs wall time, import time, peak memory.

The child's stderr goes to a file, read once it has ended: this process
sleeps meanwhile, so the stage has the machine as it would without it.
"""
import json, os, resource, subprocess, sys, tempfile, time

started = time.perf_counter()
with tempfile.TemporaryFile("w+") as err:
    code = subprocess.call([{python!r}, "-X", "importtime", *sys.argv[1:]], stderr=err)
    wall_s = time.perf_counter() - started
    err.seek(0)
    import_us = 0
    for line in err:
        if line.startswith("import time:"):
            _, cumulative, name = line.split("|")
            # Top-level imports only (nested ones are indented): their cumulative times add up.
            if cumulative.strip().isdigit() and not name[1:].startswith(" "):
                import_us += int(cumulative)
        else:
            sys.stderr.write(line)
record = {{
    "argv": sys.argv[1:], "returncode": code, "wall_s": wall_s,
    "import_s": import_us / 1e6, "peak_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
}}
with open(os.environ["BENCH_STAGE_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
sys.exit(code)
'''


def bench_repro(workdir, lr_change, epochs_change, reps):
    """Median wall seconds of `dvc repro` runs in `reps` fresh copies and, per stage of the clean ones, its cost.

    In each copy: a clean repro, one after train_nn.lr -> `lr_change`, one
    after train_nn.epochs -> `epochs_change` (the lr set back first, so
    only the epochs differ from the defaults), and one with nothing to do.
    """
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from conftest import dvc_env, make_project, set_params, stages_run

    workdir = Path(workdir)
    shim_dir = workdir / "bin"
    shim_dir.mkdir()
    (shim_dir / "python").write_text(SHIM.format(python=sys.executable))
    (shim_dir / "python").chmod(0o755)
    defaults = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["train_nn"]
    runs = {"clean": [], "lr": [], "epochs": [], "noop": []}
    stages = {"clean": None, "lr": None, "epochs": None, "noop": None}
    per_stage = {}
    for rep in range(reps):
        project = make_project(workdir / f"project-{rep}")
        log = workdir / f"stages-{rep}.jsonl"
        env = dvc_env()
        env.update(PATH=f"{shim_dir}{os.pathsep}{env['PATH']}", BENCH_STAGE_LOG=str(log))

        def repro(kind, project=project, env=env):
            started = time.perf_counter()
            result = subprocess.run(["dvc", "repro"], cwd=project, env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            if result.returncode != 0:
                raise SystemExit(f"dvc repro failed in {project}:\n{result.stdout}\n{result.stderr}")
            runs[kind].append(elapsed)
            stages[kind] = stages_run(result.stdout)

        repro("clean")
        for line in log.read_text().splitlines():
            record = json.loads(line)
            argv = record["argv"]
            name = argv[argv.index("-m") + 1].rsplit(".", 1)[-1] if "-m" in argv else " ".join(argv)
            per_stage.setdefault(name, []).append(record)
        set_params(project, {"train_nn.lr": lr_change})
        repro("lr")
        set_params(project, {"train_nn.lr": defaults["lr"], "train_nn.epochs": epochs_change})
        repro("epochs")
        repro("noop")
    summary = {kind: statistics.median(times) for kind, times in runs.items()}
    return {
        "runs": runs, "median": summary, "stages": stages, "reps": reps,
        "lr_change": lr_change, "epochs_change": epochs_change,
        "per_stage": {name: {key: statistics.median(record[key] for record in records)
                             for key in ("wall_s", "import_s", "peak_bytes")}
                      | {"returncode": max(record["returncode"] for record in records)}
                      for name, records in per_stage.items()},
    }


# --- the table ---------------------------------------------------------------------------------

def table(epochs, scratch, repro, contention=None):
    rows = [("what", "measured")]
    if epochs:
        rows += [
            ("notebook loop (DataLoader, ToTensor), one epoch, 1 thread",
             f"{epochs['notebook_s']:.3f} s (CPU {epochs['notebook_cpu_s']:.3f} s)"),
            ("stages/train_nn.train, one epoch with its metrics, 1 thread",
             f"{epochs['stage_s']:.3f} s (CPU {epochs['stage_cpu_s']:.3f} s): "
             f"{epochs['notebook_s'] / epochs['stage_s']:.1f}x faster "
             f"(CPU {epochs['notebook_cpu_s'] / epochs['stage_cpu_s']:.1f}x)"),
        ]
    for result in scratch or []:
        n, f = result["shape"]
        threads = f"{result['threads']} thread" + ("s" if result["threads"] > 1 else "")
        if result["threads"] == result["stage_threads"]:
            threads += ", as the stage"
        rows += [
            (f"scratch: one pass over X (X.sum(), {n}x{f} float32, {result['bytes'] / 1e6:.0f} MB), {threads}",
             f"{result['pass_s'] * 1e3:.1f} ms ({result['bytes'] / result['pass_s'] / GB:.1f} GB/s)"),
            (f"scratch: X @ Theta.T and the gradient's product over all of X, {threads}",
             f"{result['products_s'] * 1e3:.1f} ms ({result['products_s'] / result['pass_s']:.2f}x the pass)"),
            (f"scratch: one gradient-descent iteration, {threads}",
             f"{result['iteration_s'] * 1e3:.1f} ms: {result['iteration_s'] / result['pass_s']:.2f}x "
             f"the pass, {result['iteration_s'] / result['products_s']:.2f}x the products"),
        ]
    for (busy, policy), seconds in (contention or {}).items():
        where = "beside one busy process" if busy else "idle"
        waiting = "libgomp's default waiting" if policy == "default" else f"OMP_WAIT_POLICY={policy}"
        rows.append((f"scratch: one iteration as the stage runs it, {where}, {waiting}", f"{seconds * 1e3:.1f} ms"))
    if repro:
        median, stages, reps = repro["median"], repro["stages"], repro["reps"]

        def spread(kind):
            times = repro["runs"][kind]
            return f"{median[kind]:.1f} s" + (f" ({min(times):.1f} to {max(times):.1f})" if reps > 1 else "")

        rows += [
            (f"`dvc repro`, clean, every stage (median of {reps})", spread("clean")),
            (f"`dvc repro` after train_nn.lr -> {repro['lr_change']}",
             f"{spread('lr')}, ran {', '.join(stages['lr'])}"),
            (f"`dvc repro` after train_nn.epochs -> {repro['epochs_change']}",
             f"{spread('epochs')}, ran {', '.join(stages['epochs'])}"),
            ("`dvc repro` with nothing to do", f"{spread('noop')}, {len(stages['noop'])} stages ran"),
        ]
        for name, record in repro["per_stage"].items():
            rows.append((
                f"stage {name} (clean): wall, of which imports; peak memory",
                f"{record['wall_s']:.1f} s, {record['import_s']:.2f} s; {record['peak_bytes'] / GB:.2f} GB",
            ))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def cpu_model():
    """The CPU's model name as Linux reports it, else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(load_before):
    load_after = os.getloadavg()[0]
    shared = max(load_before, load_after) > os.cpu_count()
    return (
        f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
        f"load average {load_before:.1f} at the start, "
        f"{load_after:.1f} at the end" + (": above the CPU count, other work shared the machine" if shared else "")
    )


# --- gpu check ---------------------------------------------------------------------------------

def gpu_check(epochs, iterations):
    """Exit status of the GPU check: 2 without a CUDA GPU, else compare_devices('cuda', 'cpu')."""
    if not torch.cuda.is_available():
        print(
            f"error: no CUDA GPU: torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'}) "
            "sees no usable GPU, so there is nothing to compare the CPU with. Run benchmarks/gpu_check.sh "
            "on a machine with an NVIDIA GPU and its driver.",
            file=sys.stderr,
        )
        return 2
    print(f"GPU: {torch.cuda.get_device_name()}; CPU: {os.cpu_count()} cores; torch {torch.__version__}; "
          f"device 'auto' resolves to {resolve_device('auto')}")
    return compare_devices("cuda", "cpu", epochs, iterations)


def compare_devices(fast, reference, epochs, iterations):
    """Time both trainers on two devices and check that they train the same model; 0 if they do.

    train_nn: seconds per epoch, per-epoch metrics included (the first
    epoch, with the copy to the device and lazy initializations, apart).
    train_scratch: seconds per gradient-descent iteration on data already
    on the device.
    """
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as workdir:
        train_set, test_set = load_data(workdir)
    results = []
    for device in (fast, reference):
        configure_torch(threads=1)  # as stages/train_nn.main
        epoch_times, last = [], [time.perf_counter()]

        def on_epoch(record, epoch_times=epoch_times, last=last):
            now = time.perf_counter()  # the record holds Python floats: the device has finished the epoch
            epoch_times.append(now - last[0])
            last[0] = now

        model, history, _ = train_nn.train(train_set, test_set, LR, MOMENTUM, BATCH_SIZE, epochs, SEED,
                                           device, on_epoch=on_epoch)
        torch.set_num_threads(DEFAULT_THREADS)
        configure_torch()  # as stages/train_scratch.main
        images, labels = (t.to(device) for t in train_set)
        X = softmax.add_intercept(images)
        Y = softmax.one_hot(labels, train_nn.N_CLASSES)
        softmax.gradient_descent(X, Y, SCRATCH_LR, max_iter=1, tol=0.0)  # warm-up
        scratch_s, descent = timed(softmax.gradient_descent, X, Y, SCRATCH_LR, max_iter=iterations, tol=0.0)
        results.append({
            "epoch_s": statistics.median(epoch_times[1:] or epoch_times), "first_epoch_s": epoch_times[0],
            "test_accuracy": history[-1]["test_accuracy"], "weight": model.weight.detach().cpu(),
            "iteration_s": scratch_s / descent.iterations, "Theta": descent.Theta.cpu(),
            "loss": descent.loss_history[-1],
        })
        del images, labels, X, Y
    a, b = results
    weight_gap = (a["weight"] - b["weight"]).abs().max().item()
    theta_gap = (a["Theta"] - b["Theta"]).abs().max().item()
    accuracy_gap = abs(a["test_accuracy"] - b["test_accuracy"])
    agree = weight_gap <= 1e-3 and theta_gap <= 1e-4 and accuracy_gap <= 0.005
    rows = [
        ("", fast, reference, f"{reference} / {fast}"),
        (f"train_nn, s per epoch (median of epochs 2..{epochs})",
         f"{a['epoch_s']:.3f}", f"{b['epoch_s']:.3f}", f"{b['epoch_s'] / a['epoch_s']:.1f}x"),
        ("train_nn, first epoch, s (copy to the device included)",
         f"{a['first_epoch_s']:.3f}", f"{b['first_epoch_s']:.3f}", ""),
        (f"train_nn, test accuracy after {epochs} epochs",
         f"{a['test_accuracy']:.4f}", f"{b['test_accuracy']:.4f}", ""),
        ("train_scratch, ms per iteration",
         f"{a['iteration_s'] * 1e3:.2f}", f"{b['iteration_s'] * 1e3:.2f}",
         f"{b['iteration_s'] / a['iteration_s']:.1f}x"),
        (f"train_scratch, loss after {iterations} iterations", f"{a['loss']:.6f}", f"{b['loss']:.6f}", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(
        f"the same models on both devices, up to rounding: max |weight gap| {weight_gap:.1e} (<= 1e-3), "
        f"max |Theta gap| {theta_gap:.1e} (<= 1e-4), test accuracy gap {accuracy_gap:.4f} (<= 0.005): "
        + ("yes" if agree else "NO")
    )
    return 0 if agree else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions of each timing (default 5)")
    parser.add_argument("--markdown", type=Path, help="also write the table, as Markdown, to this file")
    parser.add_argument("--no-repro", action="store_true", help="skip the `dvc repro` section (a minute per copy)")
    parser.add_argument("--repro-reps", type=int, default=3, help="fresh project copies for the repro runs")
    parser.add_argument("--lr-change", type=float, default=0.05, help="train_nn.lr for the second repro")
    parser.add_argument("--epochs-change", type=int, default=16, help="train_nn.epochs for the third repro")
    parser.add_argument("--gpu-check", action="store_true", help="GPU against CPU instead (benchmarks/gpu_check.sh)")
    parser.add_argument("--epochs", type=int, default=3, help="--gpu-check: train_nn epochs per device")
    parser.add_argument("--iterations", type=int, default=20, help="--gpu-check: train_scratch iterations")
    args = parser.parse_args(argv)
    if args.gpu_check:
        return gpu_check(args.epochs, args.iterations)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as workdir:
        train_set, test_set = load_data(workdir)
        epochs = bench_epochs(train_set, test_set, workdir, args.reps)
        scratch = bench_scratch(train_set, args.reps)
        contention = bench_contention(workdir, max(1, args.reps // 2))
        del train_set, test_set
        repro = None if args.no_repro else bench_repro(workdir, args.lr_change, args.epochs_change, args.repro_reps)
    text = table(epochs, scratch, repro, contention)
    header = machine_line(load_before)
    print(header + "\n\n" + text)
    if args.markdown:
        args.markdown.write_text(f"{header}\n\n{text}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
