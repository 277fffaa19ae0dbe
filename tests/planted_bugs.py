"""Plant realistic bugs one at a time in a copy of the project, and run the tests that should catch each.

    python tests/planted_bugs.py               # every bug (slow tests included: half an hour)
    python tests/planted_bugs.py -k fmnist/    # the bugs whose name or file holds "fmnist/"

A bug is an exact edit of one piece of text. The copy holds the files git
tracks (and those it would), as they are in the working tree, which is
never touched. A bug's tests must pass in the unchanged copy, else the bug
is reported untested; it is caught when they then fail. Run by hand, not
by pytest: exits 1 when a bug is missed, untested or its text is gone.
"""

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

PROJECT_ROOT = Path(__file__).resolve().parents[1]
QUICK = "-m 'not slow'"


class Bug(NamedTuple):
    name: str
    path: str  # relative to the project root
    old: str  # appears exactly once in `path`
    new: str
    tests: str  # pytest's arguments: files or node ids, options allowed


LOOP = "tests/test_readme.py::test_readmes_loop_in_a_fresh_clone_from_another_cpu"
BUGS = [
    Bug("softmax's shift dropped", "fmnist/softmax.py",
        "shifted = logits - logits.amax(dim=1, keepdim=True).detach()", "shifted = logits", "tests/test_softmax.py"),
    Bug("cross-entropy summed, not averaged", "fmnist/softmax.py",
        ".sum(dim=1).mean()", ".sum(dim=1).sum()", "tests/test_softmax.py"),
    Bug("intercept column appended, not prepended", "fmnist/softmax.py",
        "torch.cat([ones, X], dim=1)", "torch.cat([X, ones], dim=1)", "tests/test_softmax.py"),
    Bug("gradient step without the learning rate", "fmnist/softmax.py",
        "Theta = Theta - lr * grad", "Theta = Theta - grad", "tests/test_softmax.py tests/test_train_scratch.py"),
    Bug("gradients never cleared", "fmnist/linear.py",
        "        optimizer.zero_grad()\n", "", f"tests/test_train_nn.py {QUICK}"),
    Bug("SGD without momentum", "fmnist/linear.py",
        "torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)", "torch.optim.SGD(model.parameters(), lr=lr)",
        f"tests/test_train_nn.py {QUICK}"),
    Bug("a diverged run keeps its diverged model", "fmnist/linear.py",
        "            model.load_state_dict(last_good)\n", "", f"tests/test_divergence.py {QUICK}"),
    Bug("the seed left to chance", "fmnist/linear.py",
        "    torch.manual_seed(seed)\n", "    torch.seed()\n", "tests/test_reproducibility.py"),
    Bug("pixels scaled by 256", "fmnist/data.py",
        "np.divide(images, np.float32(255)", "np.divide(images, np.float32(256)",
        f"tests/test_flatten.py tests/test_train_nn.py {QUICK}"),
    Bug("label 10 accepted", "fmnist/data.py",
        "body.max() >= N_CLASSES", "body.max() > N_CLASSES", "tests/test_flatten.py"),
    Bug("intercept read from the last column", "fmnist/models.py",
        'return model["Theta"][:, 1:], model["Theta"][:, 0]', 'return model["Theta"][:, :-1], model["Theta"][:, -1]',
        "tests/test_evaluate.py"),
    Bug("bias dropped from the logits", "fmnist/models.py",
        "return pixels @ weights.T + bias", "return pixels @ weights.T", "tests/test_evaluate.py"),
    Bug("YAML 1.2 exponent floats forgotten", "fmnist/params.py",
        'rf"|{_DIGITS}{_EXPONENT}|', 'rf"|', "tests/test_params.py"),
    Bug("CSV written without its header row", "fmnist/files.py",
        "        writer.writeheader()\n", "", "tests/test_figures.py"),
    Bug("a bad input exits 0", "fmnist/errors.py",
        "            sys.exit(2)\n", "            return 2\n", "tests/test_flatten.py"),
    Bug("weight images drawn transposed", "fmnist/figures.py",
        "weight_row.reshape(IMAGE_SIDE, IMAGE_SIDE)", "weight_row.reshape(IMAGE_SIDE, IMAGE_SIDE).T",
        "tests/test_figures.py"),
    Bug("confusion counts written transposed", "fmnist/figures.py",
        "axes.text(column, row, str(count)", "axes.text(row, column, str(count)", "tests/test_figures.py"),
    Bug("matplotlib imported with the figures module", "fmnist/figures.py",
        "import numpy as np\nimport pandas as pd\n",
        "import matplotlib.pyplot\nimport numpy as np\nimport pandas as pd\n", "tests/test_imports.py"),
    Bug("the bundled copy tried before the mirrors", "stages/download.py",
        "[*mirrors, args.bundled, TORCHVISION_MIRROR]", "[args.bundled, *mirrors, TORCHVISION_MIRROR]",
        f"tests/test_download.py {QUICK}"),
    Bug("train_scratch trains on the test split", "stages/train_scratch.py",
        'load_split(args.data, "train")', 'load_split(args.data, "test")', "tests/test_train_scratch.py"),
    Bug("train_nn's final metrics on the test split", "stages/train_nn.py",
        "linear.loss_and_accuracy(model, *(t.to(device) for t in train_set))",
        "linear.loss_and_accuracy(model, *(t.to(device) for t in test_set))", f"tests/test_train_nn.py {QUICK}"),
    Bug("confusion_matrix's arguments swapped", "stages/evaluate.py",
        "confusion_matrix(true_labels, predicted, labels=LABELS)",
        "confusion_matrix(predicted, true_labels, labels=LABELS)", "tests/test_evaluate.py"),
    Bug("predictions' columns swapped", "stages/evaluate.py",
        '{"actual": CLASS_NAMES[actual], "predicted": CLASS_NAMES[guess]}',
        '{"actual": CLASS_NAMES[guess], "predicted": CLASS_NAMES[actual]}', "tests/test_evaluate.py"),
    Bug("a light background not inverted", "tools/predict.py",
        "return float(border_pixels(gray).mean()) > 127.5", "return float(border_pixels(gray).mean()) < 127.5",
        f"tests/test_predict.py {QUICK}"),
    Bug("the best sweep setting taken by min", "tools/sweep_report.py",
        '.accuracy"].idxmax()', '.accuracy"].idxmin()', "tests/test_sweep_report.py"),
    Bug("train_nn's code left out of its deps", "dvc.yaml",
        "      - fmnist/linear.py\n", "", "tests/test_dvc_yaml.py"),
    Bug("evaluate's metrics in the DVC cache, not in git", "dvc.yaml",
        "        - metrics/evaluate_${key}.json:\n            cache: false\n",
        "        - metrics/evaluate_${key}.json\n",
        f"tests/test_dvc_yaml.py {LOOP}"),
    Bug("a classification report kept in git: no run-cache for evaluate", "dvc.yaml",
        "        - metrics/report_${key}.json\n",
        "        - metrics/report_${key}.json:\n            cache: false\n", LOOP),
    Bug("train_scratch declares train_nn's params", "dvc.yaml",
        "      - train_scratch\n    outs:", "      - train_scratch\n      - train_nn\n    outs:", LOOP),
    Bug("DVC's autostage turned on", ".dvc/config",
        "autostage = false", "autostage = true", "tests/test_commits.py"),
    Bug("metrics rerun, README's table not updated", "metrics/evaluate_nn.json",
        '"accuracy": 0.8411', '"accuracy": 0.8436',
        "tests/test_readme.py::test_the_results_table_is_the_committed_metrics"),
    Bug("the sweep run on other code than the committed metrics", "metrics/train_nn.json",
        '"train_accuracy": 0.8657333333333334', '"train_accuracy": 0.8693333333333334',
        "tests/test_readme.py::test_the_sweeps_runs_of_the_default_settings_are_the_committed_metrics"),
    Bug("docs/answers.md's sweep table not pasted again", "docs/answers.md",
        "|           0.8643 |          0.8436 |", "|           0.8643 |          0.8439 |",
        "tests/test_readme.py::test_the_answers_page_embeds_the_sweep_report"),
    Bug("a link to a heading that was renamed", "docs/answers.md",
        "(tutorial.md#4-a-sweep)", "(tutorial.md#a-sweep)", "tests/test_docs.py"),
    Bug("the key's exercise reworded, the student version not made again", "notebooks/aula03_softmax.ipynb",
        "**Exercício 4.** Implemente", "**Exercício 4.** Escreva", f"tests/test_student_version.py {QUICK}"),
    Bug("the notebook trusts git to know who commits", "notebooks/aula03_softmax.ipynb",
        '"if not git_sabe_quem_commita():\\n",', '"if False:\\n",', "tests/test_notebook.py"),
    Bug("the notebook's stages run on the shell's python", "notebooks/aula03_softmax.ipynb",
        "env=ambiente, timeout=limite_s)", "timeout=limite_s)", "tests/test_notebook.py"),
    Bug("a weight image titled in English", "fmnist/figures.py",
        "axes.set_title(translate(words, name), fontsize=8)", "axes.set_title(name, fontsize=8)",
        "tests/test_figures.py"),
    Bug("the student's stub returns None", "notebooks/versao_do_aluno.py",
        'raise NotImplementedError()"}', 'pass"}', f"tests/test_student_version.py {QUICK}"),
    Bug("numpy's pin moved in requirements.in, the lock not made again", "requirements.in",
        "numpy==2.4.6\n", "numpy==2.4.7\n", "tests/test_requirements.py"),
    Bug("torch's hashes cut off from its pin", "requirements.txt",
        "torch==2.14.1 \\\n", "torch==2.14.1\n", "tests/test_requirements.py"),
    Bug("triton's Linux marker dropped", "requirements.txt",
        "triton==3.8.0 ; python_full_version < '3.15' and sys_platform == 'linux' \\\n", "triton==3.8.0 \\\n",
        "tests/test_requirements.py"),
    Bug("the dev lock at another filelock", "requirements-dev.txt",
        "filelock==4.3.2 \\\n", "filelock==4.3.1 \\\n", "tests/test_requirements.py"),
    Bug("a test's copy hard-links workspace files too", "tests/conftest.py",
        "if any(Path(src).is_relative_to(folder) for folder in shared):", "if True:", "tests/test_fixtures.py"),
    Bug("`dvc queue start` read through a pipe", "tests/conftest.py",
        "stdout=log, stderr=subprocess.STDOUT, timeout=600)", "capture_output=True, timeout=600)",
        "tests/test_fixtures.py"),
    Bug("queue workers stopped by name, not by folder", "tests/conftest.py",
        '(proc / "cmdline").read_bytes() and \\', '(proc / "cmdline").read_bytes() or \\', "tests/test_fixtures.py"),
]


def tracked_copy(destination):
    """The project's tracked files (as they are in the working tree) under `destination`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = PROJECT_ROOT / relative
        if source.is_file():
            target = Path(destination) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return Path(destination)


def passes(root, tests):
    """True when pytest passes `tests` in the copy at `root`."""
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
               *shlex.split(tests)]
    return subprocess.run(command, cwd=root, capture_output=True, timeout=1800).returncode == 0


def verdict(root, bug, passed_unchanged):
    target = root / bug.path
    original = target.read_text(encoding="utf-8")
    if original.count(bug.old) != 1:
        return "GONE: its text is not in the file once"
    if not passed_unchanged:
        return "UNTESTED: its tests fail without it"
    target.write_text(original.replace(bug.old, bug.new), encoding="utf-8")
    try:
        return "MISSED" if passes(root, bug.tests) else "caught"
    finally:
        target.write_text(original, encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="keyword", default="", help="only the bugs whose name or file holds this text")
    keyword = parser.parse_args(argv).keyword
    bugs = [bug for bug in BUGS if keyword in bug.name or keyword in bug.path]
    with tempfile.TemporaryDirectory(prefix="planted-bugs-") as folder:
        root = tracked_copy(Path(folder) / "project")
        # A git repository, as a clone is: the tests that copy the project list its files with git.
        identity = ["-c", "user.name=planted-bugs", "-c", "user.email=planted-bugs@localhost"]
        for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "copy"]):
            subprocess.run(["git", *command], cwd=root, check=True, capture_output=True)
        unchanged = {tests: passes(root, tests) for tests in sorted({bug.tests for bug in bugs})}
        verdicts = []
        for bug in bugs:
            verdicts.append(verdict(root, bug, unchanged[bug.tests]))
            print(f"{verdicts[-1]:40} {bug.name} ({bug.path}; {bug.tests})", flush=True)
    caught = verdicts.count("caught")
    print(f"{caught} of {len(bugs)} planted bugs caught")
    return 0 if bugs and caught == len(bugs) else 1


if __name__ == "__main__":
    sys.exit(main())
