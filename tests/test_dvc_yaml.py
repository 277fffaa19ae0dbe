"""dvc.yaml declares, stage by stage, exactly the project code that the stage's command runs.

The reference is the code itself: each stage module's imports of the
project's packages, followed transitively with Python's own parser.
"""

import ast
import hashlib
import re
from pathlib import Path

import pytest
import yaml
from conftest import dvc_stages

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fmnist", "stages", "tools")


def module_file(module):
    """'fmnist.data' -> Path('fmnist/data.py'); the package itself -> fmnist/__init__.py."""
    relative = Path(*module.split("."))
    package_init = relative / "__init__.py"
    return package_init if (PROJECT_ROOT / package_init).is_file() else relative.with_suffix(".py")


def project_imports(path):
    """Modules of the project's packages that the file imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse((PROJECT_ROOT / path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] in PACKAGES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found.add(node.module)
            # `from fmnist import figures` imports the module fmnist.figures
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if (PROJECT_ROOT / module_file(f"{node.module}.{alias.name}")).is_file()}
    return found


def code_of(module):
    """Every project file that running `python -m module` loads: the module, its imports, their packages."""
    files, pending = set(), [module]
    while pending:
        name = pending.pop()
        parts = name.split(".")
        # Importing fmnist.x runs fmnist/__init__.py first.
        for depth in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:depth]))
            if path not in files:
                files.add(path)
                pending += sorted(project_imports(path))
    # A package's __init__.py holds its docstring only (test below): not code a stage's results depend on.
    return {str(path) for path in files if path.name != "__init__.py"}


def stage_module(command):
    match = re.match(r"python -m ([\w.]+)", command)
    assert match, f"a stage command that is not `python -m stages.<name>`: {command}"
    return match.group(1)


STAGES = dvc_stages(PROJECT_ROOT)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_declares_exactly_the_code_it_runs(name):
    stage = STAGES[name]
    declared = {dep for dep in stage["deps"] if dep.split("/")[0] in PACKAGES}
    assert declared == code_of(stage_module(stage["cmd"])), name


def test_each_stage_runs_the_module_named_like_it():
    """evaluate@nn, one of the evaluate stage's keys, runs stages.evaluate."""
    assert {name: stage_module(stage["cmd"]) for name, stage in STAGES.items()} == {
        name: f"stages.{name.split('@')[0]}" for name in STAGES
    }


def test_each_package_init_holds_only_its_docstring():
    for package in PACKAGES:
        tree = ast.parse((PROJECT_ROOT / package / "__init__.py").read_text(encoding="utf-8"))
        assert len(tree.body) == 1 and isinstance(tree.body[0].value, ast.Constant), package


def test_the_import_walk_follows_imports_inside_functions_and_packages():
    """The reference itself: evaluate imports figures (`from fmnist import figures`) and no torch code."""
    evaluate = code_of("stages.evaluate")
    assert {"stages/evaluate.py", "fmnist/figures.py", "fmnist/models.py", "fmnist/data.py"} <= evaluate
    assert "fmnist/softmax.py" not in evaluate and "fmnist/linear.py" not in evaluate
    # save_model imports fmnist.files inside the function.
    assert "fmnist/files.py" in code_of("fmnist.models")


def test_the_committed_lock_holds_the_current_code_of_every_stage():
    """dvc.lock's hash of each file a stage reads from the repository is the file's: a change lands with its lock.

    A stale hash makes a fresh clone's `dvc repro` rewrite dvc.lock and
    `dvc status` call the stage changed although nothing in it changed.
    """
    lock = yaml.safe_load((PROJECT_ROOT / "dvc.lock").read_text())
    stale = [f"{name}: {dep['path']}" for name, stage in lock["stages"].items() for dep in stage["deps"]
             if (PROJECT_ROOT / dep["path"]).is_file() and
             hashlib.md5((PROJECT_ROOT / dep["path"]).read_bytes()).hexdigest() != dep["md5"]]
    assert not stale, f"dvc.lock is stale for {stale}: run `dvc repro` and commit dvc.lock"


def test_metrics_and_plots_live_in_git_and_every_other_output_in_the_dvc_cache():
    """Metrics and plots are `cache: false` (any clone diffs against any commit); plain outputs are cached.

    DVC keeps no run-cache for a stage with an uncached plain `outs` entry
    (dvc/stage/__init__.py: Stage.run), so going back would train again.
    """
    declared = {kind: {} for kind in ("outs", "metrics", "plots")}
    for stage in STAGES.values():
        for kind in declared:
            for entry in stage.get(kind, []):
                path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                declared[kind][path] = (options or {}).get("cache", True)
    shown = declared["metrics"] | declared["plots"]
    assert {"metrics/evaluate_nn.json", "metrics/train_nn_history.csv", "metrics/figures/weights_nn.png"} <= set(shown)
    assert [path for path, cached in shown.items() if cached] == []
    assert [path for path, cached in declared["outs"].items() if not cached] == []
    # git holds them: none of them is ignored
    ignored = (PROJECT_ROOT / "metrics" / ".gitignore").read_text().split()
    assert not {f"/{path.removeprefix('metrics/')}" for path in shown} & set(ignored), ignored
