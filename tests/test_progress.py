"""Progress on long work (stages/common.progress): a tqdm bar on a terminal, plain lines in a log.

The trainers show it while they run; the files they write are the same
bytes whether progress went to a terminal or to a log.
"""

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from stages import common, flatten, train_nn, train_scratch


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as sys.stderr does in an interactive shell."""

    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_without_a_terminal_a_line_every_interval_and_one_at_the_end():
    stream, clock = io.StringIO(), Clock()
    with common.progress(10, "train_scratch", "iteration", stream=stream, interval_s=5.0, clock=clock) as shown:
        for step in range(10):
            clock.now = 2.0 * (step + 1)  # a step every 2 s: a line at 6 s and 12 s (>= 5 s apart), 20 s last
            shown.step(loss=1.0 / (step + 1))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines == [
        "train_scratch: iteration 3/10, loss 0.3333, 2.0 s/iteration",
        "train_scratch: iteration 6/10, loss 0.1667, 2.0 s/iteration",
        "train_scratch: iteration 9/10, loss 0.1111, 2.0 s/iteration",
        "train_scratch: iteration 10/10, loss 0.1000, 2.0 s/iteration",
    ]


def test_a_zero_interval_prints_every_step_once():
    stream, clock = io.StringIO(), Clock()
    shown = common.progress(3, "sweep", "experiment", stream=stream, interval_s=0, clock=clock)
    for step in range(3):
        clock.now = 0.25 * (step + 1) if step < 2 else 30.0
        shown.step(failed=step)
    shown.close()
    assert stream.getvalue().splitlines() == [
        "sweep: experiment 1/3, failed 0, 4.0 experiment/s",
        "sweep: experiment 2/3, failed 1, 4.0 experiment/s",
        "sweep: experiment 3/3, failed 2, 10.0 s/experiment",
    ]


def test_on_a_terminal_it_is_a_tqdm_bar_with_the_figures():
    stream = Terminal()
    with common.progress(4, "train_nn", "epoch", stream=stream) as shown:
        for epoch in range(4):
            shown.step(**{"test accuracy": 0.5 + epoch / 10})
    text = stream.getvalue()
    assert "\r" in text  # redrawn in place
    last = text.split("\r")[-1]
    assert last.startswith("train_nn: 100%") and "4/4" in last and "test accuracy 0.8000" in last


def synthetic_flat(folder, n=300, seed=0):
    """A flat/ folder of n random images around one pattern per class (train and test splits)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=generator)
    centers = torch.rand(10, flatten.N_FEATURES, generator=generator)
    pixels = (0.5 * centers[labels] + 0.5 * torch.rand(n, flatten.N_FEATURES, generator=generator)).clamp(0, 1)
    folder.mkdir()
    for split in ("train", "test"):
        flatten.save_npy(folder / f"{split}_images.npy", np.rint(pixels.numpy() * 255).astype(np.uint8))
        flatten.save_npy(folder / f"{split}_labels.npy", labels.numpy().astype(np.uint8))


def outputs(folder, names):
    return {name: (folder / name).read_bytes() for name in names}


@pytest.mark.parametrize("stage", ["train_scratch", "train_nn"])
def test_progress_reaches_stderr_and_changes_no_output_file(stage, tmp_path, monkeypatch, capsys):
    synthetic_flat(tmp_path / "flat")
    (tmp_path / "params.yaml").write_text(
        "seed: 3\ntrain_scratch: {lr: 0.1, max_iter: 12, tol: 0.0, device: cpu}\n"
        "train_nn: {lr: 0.1, momentum: 0.5, batch_size: 50, epochs: 3, device: cpu}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "PLAIN_INTERVAL_S", 0.0)  # a line per step in the log
    if stage == "train_scratch":
        names = ["model.safetensors", "metrics.json", "curve.csv"]
        args = ["--data", "flat", "--model", names[0], "--metrics", names[1], "--loss-curve", names[2]]
        main, final = train_scratch.main, "train_scratch: iteration 12/12, loss "
    else:
        names = ["model.safetensors", "metrics.json", "history.csv"]
        args = ["--data", "flat", "--model", names[0], "--metrics", names[1], "--history", names[2]]
        main, final = train_nn.main, "train_nn: epoch 3/3, train loss "
    threads = torch.get_num_threads()
    try:
        main(args)
        logged = capsys.readouterr().err
        in_log = outputs(tmp_path, names)
        terminal = Terminal()
        monkeypatch.setattr("sys.stderr", terminal)
        main(args)
    finally:
        torch.set_num_threads(threads)
    assert "\r" not in logged
    lines = logged.splitlines()
    assert lines[-1].startswith(final), logged
    assert len(lines) == (12 if stage == "train_scratch" else 3)
    if stage == "train_scratch":
        curve = pd.read_csv(tmp_path / "curve.csv")
        assert f"loss {curve['loss'].iloc[-1]:.4f}" in lines[-1]
    else:
        history = pd.read_csv(tmp_path / "history.csv")
        assert f"test accuracy {history['test_accuracy'].iloc[-1]:.4f}" in lines[-1]
    assert f"{stage}: 100%" in terminal.getvalue()
    assert outputs(tmp_path, names) == in_log  # the same bytes, wherever progress went
    json.loads(in_log["metrics.json"])
