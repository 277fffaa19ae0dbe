"""The lesson's notebook: run afresh from an empty folder, it prints the numbers committed with it.

The slow test copies the project into a temporary git repository (code,
params, bundled data, the notebook; no outputs) and executes the notebook
alone from an empty folder, pointed at that repository by a file:// URL,
as from Colab or a downloaded notebook: no git identity, no venv on PATH,
the kernel on this interpreter. Its first cell clones the project, its
`dvc repro` trains both models, and its two experiments run one after the
other with `dvc exp run --temp`. What every cell prints must then be the
committed output of that cell, word for word and number for number to the
digits that hold on any CPU (another CPU adds float32 sums in another
order): a fixed-point figure within 2 units of its last digit, one in
scientific notation (a tensor's `4.2397e-06`) within a relative 1e-3, an
integer exactly. stderr, where progress goes, is left out. A figure that
moved further means the code, the data or the params moved, and the
committed outputs must be refreshed, from a run inside a fresh copy:

    python tests/test_notebook.py     # execute afresh in a fresh copy, write the outputs into notebooks/

The quick tests read the committed notebook: executed in order without
errors, the seed's checks kept as the course wrote them, no second
implementation of the project's functions, no stray control character.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # conftest, when run as a script
from conftest import PROJECT_ROOT, commit, run  # noqa: E402
from pages import same_to_the_digits_shown  # noqa: E402
from planted_bugs import tracked_copy  # noqa: E402

NOTEBOOK = Path("notebooks") / "aula03_softmax.ipynb"
EXECUTION_TIMEOUT_S = 1800  # a cell's limit: the cell of the two experiments trains twice
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
# The course's checks on make_blobs, as the seed notebook has them.
SEED_CHECKS = [
    "# testes, não apague!",
    "Theta = torch.randn(4, X.shape[1])\nP = softmax(X, Theta)\nassert_equal((200, 4), P.shape)\n"
    "assert_almost_equal(np.ones(len(P)), P.sum(axis=1).numpy(), 4) # verifica se toda linha soma == 1.",
    "for _ in range(100):\n    Theta = torch.randn(2, X.shape[1])\n    assert(cross_entropy(X, Theta, Y) >= 0)",
]
SEED_SETUP = ("from sklearn import datasets\nstate = np.random.seed(20190187)\n\n"
              "X, y = datasets.make_blobs(n_samples=200, n_features=20, centers=2)\n"
              "X = torch.tensor(X)\ny = torch.tensor(y)")


def read_notebook(path=PROJECT_ROOT / NOTEBOOK):
    return nbformat.read(path, as_version=4)


def printed_text(cell):
    """What a code cell printed and displayed as text: stdout and text/plain results (not stderr's progress)."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream" and output["name"] == "stdout":
            parts.append(output["text"])
        elif output["output_type"] in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def printed_numbers(cell):
    return NUMBER.findall(printed_text(cell))


def images_shown(cell):
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def fresh_project(destination):
    """A fresh git repository holding what a clone would: the files git tracks here, no outputs.

    The files are copied from the working tree, uncommitted edits and new files included.
    """
    tracked_copy(destination)
    run(destination, "git", "init", "-q", "-b", "main")
    commit(destination, "project")
    return destination


def pointed_at(notebook, url):
    """`notebook` with its URL_DO_PROJETO line, the one a teacher edits, set to `url`."""
    lines = [(cell, line) for cell in code_cells(notebook) for line in cell.source.splitlines()
             if line.startswith("URL_DO_PROJETO = ")]
    assert len(lines) == 1, lines
    cell, line = lines[0]
    cell.source = cell.source.replace(line, f"URL_DO_PROJETO = {url!r}")
    return notebook


@contextlib.contextmanager
def students_environment(folder, **variables):
    """os.environ as on a student's machine, and `variables`; a kernel spec `python3` that runs this interpreter.

    No git identity (an empty HOME, no GIT_AUTHOR_*/GIT_COMMITTER_*, no
    system git config) and no venv on PATH: the notebook's first cell must
    cope. The kernel spec lives in `folder`, first on JUPYTER_PATH: nothing
    is registered outside it, and no other `python3` kernel is used.
    """
    folder = Path(folder)
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    (folder / "home").mkdir()
    venv_bin = str(Path(sys.executable).parent)
    saved = dict(os.environ)
    for name in [name for name in os.environ if name.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))]:
        del os.environ[name]
    for name in ("VIRTUAL_ENV", "XDG_CONFIG_HOME"):
        os.environ.pop(name, None)
    os.environ.update(
        PATH=os.pathsep.join(entry for entry in saved.get("PATH", "").split(os.pathsep) if entry != venv_bin),
        HOME=str(folder / "home"), GIT_CONFIG_NOSYSTEM="1", JUPYTER_PATH=str(folder),
        OMP_WAIT_POLICY=saved.get("OMP_WAIT_POLICY", "PASSIVE"), **variables)  # one worker per core (dvc_env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(notebook, folder, scratch_folder):
    """`notebook` executed afresh with `folder` as its working folder, in a student's environment; seconds taken."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=EXECUTION_TIMEOUT_S, kernel_name="python3", coalesce_streams=True,
                            resources={"metadata": {"path": str(folder)}})
    with students_environment(scratch_folder):
        started = time.perf_counter()
        client.execute()
        return time.perf_counter() - started


def git_config(project, name):
    return subprocess.run(["git", "config", "--local", name], cwd=project, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_the_notebook_runs_from_an_empty_folder_and_prints_the_committed_numbers(tmp_path):
    """As from Colab or a downloaded notebook: the notebook alone in an empty folder clones the project."""
    committed = read_notebook()
    project = fresh_project(tmp_path / "project")
    assert not git_config(project, "user.name")
    folder = tmp_path / "aula"
    folder.mkdir()
    executed = pointed_at(read_notebook(project / NOTEBOOK), project.as_uri())
    seconds = execute(executed, folder, tmp_path / "jupyter")
    print(f"the notebook ran in {seconds:.0f} s")
    (clone,) = folder.iterdir()

    differences = []
    # The first code cell's output says where the project came from: the only one that differs by design.
    for index, (old, new) in enumerate(zip(code_cells(committed), code_cells(executed), strict=True)):
        # Whole text, not only its numbers: a class name in the wrong place is as wrong as a digit.
        if index > 0 and not same_text_to_the_digits_shown(printed_text(new), printed_text(old)):
            pairs = zip(printed_numbers(old), printed_numbers(new), strict=False)  # a cut-short output: fewer
            moved = [(was, now) for was, now in pairs if was != now][:5]
            differences.append(f"code cell {index + 1} ({old.source.splitlines()[0]}), numbers moved: {moved}\n"
                               f"committed: {printed_text(old)}\nnow: {printed_text(new)}")
        assert images_shown(new) == images_shown(old), f"code cell {index + 1} shows another number of images"
    assert not differences, "\n".join(differences)

    # The experiments' commits needed a git identity: the notebook gave the clone one of its own.
    assert git_config(clone, "user.name") and git_config(clone, "user.email")
    # The experiments ran in DVC's temporary copies and were removed; the workspace is as committed, but
    # for what another CPU's dvc repro rewrites in its last bits: dvc.lock and metrics/ (README).
    assert (clone / "params.yaml").read_bytes() == (project / "params.yaml").read_bytes()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert re.fullmatch(r"(?: M dvc\.lock\n)?(?: M metrics/\S+\n)*", status), status


def same_text_to_the_digits_shown(printed, committed, units=2, relative=1e-3):
    """The same text, each number equal to the committed one to the digits that hold on any CPU.

    A fixed-point figure may be `units` of its last digit off, one in
    scientific notation `relative` of its value; integers and words are exact.
    """
    if printed == committed:
        return True
    words, committed_words = NUMBER.split(printed), NUMBER.split(committed)
    numbers, committed_numbers = NUMBER.findall(printed), NUMBER.findall(committed)
    if words != committed_words or len(numbers) != len(committed_numbers):
        return False
    return all(same_number(number, shown, units, relative)
               for number, shown in zip(numbers, committed_numbers, strict=True))


def same_number(number, shown, units, relative):
    if "e" in shown:
        return "e" in number and abs(float(number) - float(shown)) <= relative * abs(float(shown))
    if "." in shown:
        return "." in number and same_to_the_digits_shown(number, shown, units)
    return number == shown


def test_text_to_the_digits_shown_lets_only_a_last_digit_move():
    assert same_text_to_the_digits_shown("acurácia 0.8412 em 10000", "acurácia 0.8411 em 10000")
    assert not same_text_to_the_digits_shown("acurácia 0.8415 em 10000", "acurácia 0.8411 em 10000")
    assert not same_text_to_the_digits_shown("acurácia 0.8411 em 10001", "acurácia 0.8411 em 10000")
    assert not same_text_to_the_digits_shown("Camisa 0.8411", "Casaco 0.8411")
    assert same_text_to_the_digits_shown("[1.0000e+00, 4.2396e-06]", "[1.0000e+00, 4.2397e-06]")
    assert not same_text_to_the_digits_shown("[1.0000e+00, 4.2496e-06]", "[1.0000e+00, 4.2397e-06]")
    assert not same_text_to_the_digits_shown("[1.0000e+00, 4.2397e-05]", "[1.0000e+00, 4.2397e-06]")


def test_the_committed_notebook_was_executed_whole_in_order():
    cells = code_cells(read_notebook())
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    errors = [output for cell in cells for output in cell.outputs if output["output_type"] == "error"]
    assert errors == []


def test_the_notebook_holds_the_seeds_setup_and_checks():
    sources = [cell.source for cell in code_cells(read_notebook())]
    assert SEED_SETUP in sources
    for check in SEED_CHECKS:
        assert any(check in source for source in sources), check


# An exercise cell (nbgrader's solution markers, tests/test_student_version.py): the course's function, which the
# student version leaves for the student to write; in the key, the project's function called with the same arguments.
EXERCISE = re.compile(r'def \w+\((.+)\):\n    """[^"]+"""\n    ### BEGIN SOLUTION\n    import fmnist\.softmax\n'
                      r"    return fmnist\.softmax\.\w+\(\1\)\n    ### END SOLUTION")


def test_the_notebook_imports_the_project_and_defines_none_of_its_functions():
    """No second implementation: softmax, cross_entropy, gradient, ... come from fmnist/, never from a cell."""
    cells = code_cells(read_notebook())
    sources = "\n".join(cell.source for cell in cells if not EXERCISE.fullmatch(cell.source))
    assert "from fmnist.softmax import" in sources
    assert any(EXERCISE.fullmatch(cell.source) for cell in cells)
    from fmnist import softmax

    defined = set(re.findall(r"^def (\w+)", sources, re.M))
    project_functions = {name for name in dir(softmax) if callable(getattr(softmax, name))}
    assert defined & project_functions == set(), defined & project_functions


def test_no_cell_holds_a_control_character():
    """A `\\b` typed in a string that Python reads becomes a backspace: the formula shows `ar` instead of `\\bar`."""
    for index, cell in enumerate(read_notebook().cells):
        stray = {hex(ord(char)) for char in cell.source if unicodedata.category(char) == "Cc" and char not in "\n\t"}
        assert not stray, f"cell {index} holds control characters {stray}"


def main():
    """Execute the notebook afresh inside a fresh copy of the project; write it, outputs and all, into notebooks/."""
    with tempfile.TemporaryDirectory() as folder:
        project = fresh_project(Path(folder) / "project")
        executed = read_notebook(project / NOTEBOOK)
        seconds = execute(executed, (project / NOTEBOOK).parent, Path(folder) / "jupyter")
    nbformat.write(executed, PROJECT_ROOT / NOTEBOOK)
    print(f"{NOTEBOOK}: executed afresh in {seconds:.0f} s")


if __name__ == "__main__":
    main()
