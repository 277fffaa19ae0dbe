"""Each stage loads only what its work needs: start-up is a good part of a short stage's time.

Run in a fresh interpreter per stage, on small inputs, with the names of
the heavy packages it must not load (or not yet, at a given moment).
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import PROJECT_ROOT
from safetensors.numpy import save_file

from stages import flatten

HEAVY = ("torch", "torchvision", "sklearn", "scipy", "matplotlib", "pandas")

# Runs a stage's main() and prints, as JSON, the heavy packages loaded at the end and, for each file
# whose name ends in one of WATCH, those loaded at the moment it was written.
PROBE = """
import json, sys
from stages import common
HEAVY, WATCH = {heavy!r}, {watch!r}
seen = {{}}
write_text = common.write_text
def watching(path, text):
    if str(path).endswith(WATCH):
        seen[str(path).rsplit("/", 1)[-1]] = sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY))
    write_text(path, text)
common.write_text = watching
from stages import {stage} as stage
stage.main({argv!r})
print(json.dumps({{"at_end": sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY)), "when_written": seen}}))
"""


def loaded(stage, argv, cwd, watch=()):
    script = PROBE.format(heavy=HEAVY, watch=tuple(watch), stage=stage, argv=argv)
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True,
                            env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_download_verifies_the_bundled_files_without_torch_or_torchvision(tmp_path):
    (tmp_path / "params.yaml").write_text("download: {mirrors: []}\n")
    found = loaded("download", ["--bundled", str(PROJECT_ROOT / "data" / "fashion-mnist"), "--out", "raw"],
                   tmp_path)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        name for name in flatten.SPLITS["train"][:2] + flatten.SPLITS["test"][:2])
    assert found["at_end"] == []


def test_flatten_loads_none_of_the_heavy_packages(tmp_path):
    found = loaded("flatten", ["--raw", str(PROJECT_ROOT / "data" / "fashion-mnist"), "--out", "flat"], tmp_path)
    assert found["at_end"] == []


@pytest.fixture
def small_project(tmp_path):
    """flat/ with 200 random images per split, both models, and the two training CSVs."""
    rng = np.random.default_rng(0)
    (tmp_path / "flat").mkdir()
    for split in ("train", "test"):
        flatten.save_npy(tmp_path / "flat" / f"{split}_images.npy",
                         rng.integers(0, 256, (200, flatten.N_FEATURES), dtype=np.uint8))
        flatten.save_npy(tmp_path / "flat" / f"{split}_labels.npy", (np.arange(200) % 10).astype(np.uint8))
    save_file({"Theta": rng.normal(size=(10, 785)).astype(np.float32)}, str(tmp_path / "scratch.safetensors"))
    save_file({"weight": rng.normal(size=(10, 784)).astype(np.float32), "bias": np.zeros(10, np.float32)},
              str(tmp_path / "nn.safetensors"))
    (tmp_path / "history.csv").write_text("epoch,train_loss,train_accuracy,test_accuracy\n1,0.5,0.8,0.7\n")
    (tmp_path / "loss.csv").write_text("iteration,loss\n1,2.3\n2,1.9\n")
    (tmp_path / "params.yaml").write_text(
        "seed: 1\ntrain_scratch: {lr: 0.1, max_iter: 3, tol: 0.0, device: cpu}\n"
        "train_nn: {lr: 0.1, momentum: 0.5, batch_size: 50, epochs: 1, device: cpu}\n")
    return tmp_path


def test_evaluate_writes_its_metrics_before_loading_matplotlib_and_never_loads_torch(small_project):
    found = loaded("evaluate", [
        "--data", "flat", "--scratch-model", "scratch.safetensors", "--nn-model", "nn.safetensors",
        "--nn-history", "history.csv", "--scratch-loss", "loss.csv", "--out", "metrics", "--figures", "figures",
    ], small_project, watch=("evaluate.json",))
    assert found["when_written"] == {"evaluate.json": ["pandas", "scipy", "sklearn"]}  # the reports are scikit-learn's
    assert found["at_end"] == ["matplotlib", "pandas", "scipy", "sklearn"]  # the figures, drawn after the metrics
    assert len(list((small_project / "figures").glob("*.png"))) == 7


@pytest.mark.parametrize(("stage", "argv"), [
    ("train_scratch", ["--data", "flat", "--model", "m.safetensors", "--metrics", "m.json", "--loss-curve", "c.csv"]),
    ("train_nn", ["--data", "flat", "--model", "m.safetensors", "--metrics", "m.json", "--history", "h.csv"]),
])
def test_the_trainers_load_torch_and_pandas_and_nothing_else_heavy(stage, argv, small_project):
    assert loaded(stage, argv, small_project)["at_end"] == ["pandas", "torch"]


# Imports every module under stages/ between two snapshots of what a process's settings are:
# the environment, torch's threads, dtype and denormal handling, signal handlers, YAML's number rules.
SETTINGS_PROBE = """
import json, os, pkgutil, signal, importlib, sys
# The libraries the stages use, first: scikit-learn sets KMP_* variables of its own when imported.
import matplotlib, numpy, pandas, PIL.Image, safetensors, sklearn.metrics, torch, torchvision, yaml

def snapshot():
    return {
        "environ": dict(os.environ),
        "torch": [torch.get_num_threads(), str(torch.get_default_dtype()),
                  # 1e-40 is a float32 denormal: 0.0 once denormals are flushed
                  (torch.tensor([1e-40]) * 1.0).item(), torch.are_deterministic_algorithms_enabled()],
        "signals": [repr(signal.getsignal(number)) for number in (signal.SIGINT, signal.SIGTERM)],
        "yaml": repr(yaml.safe_load("[1e-3, 1.0e-3, on]")),
        "cwd": os.getcwd(),
    }

before = snapshot()
# The package itself first: its __init__ runs before any of its modules.
names = ["stages"] + [module.name for module in pkgutil.iter_modules(["stages"], "stages.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "before": before, "after": snapshot()}))
"""


def test_importing_every_stage_module_changes_nothing_in_the_process(tmp_path):
    """A notebook or script that imports stages.* finds its environment and torch's settings as they were."""
    # A plain environment: this process's own imports of stages must not set what the probe looks for.
    result = subprocess.run([sys.executable, "-c", SETTINGS_PROBE], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert {"stages.softmax", "stages.train_scratch", "stages.train_nn", "stages.evaluate"} <= set(found["modules"])
    assert found["after"] == found["before"]
