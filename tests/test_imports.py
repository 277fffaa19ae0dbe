"""Importing the project's modules does nothing but define things."""

import json
import subprocess
import sys

from conftest import PROJECT_ROOT

# Imports every module of the project between two snapshots of what a process's settings are:
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
# Each package itself first: its __init__ runs before any of its modules.
names = [name for package in ("fmnist", "stages", "tools")
         for name in [package] + [module.name for module in pkgutil.iter_modules([package], package + ".")]]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "before": before, "after": snapshot()}))
"""


def test_importing_every_module_changes_nothing_in_the_process(tmp_path):
    """A notebook or script that imports the project finds its environment and torch's settings as they were."""
    # A plain environment: this process's own imports of stages must not set what the probe looks for.
    result = subprocess.run([sys.executable, "-c", SETTINGS_PROBE], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert {"fmnist.softmax", "fmnist.linear", "stages.train_nn", "stages.evaluate", "tools.predict"} <= set(
        found["modules"])
    assert found["after"] == found["before"]
