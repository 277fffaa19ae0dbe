"""The student version of the lesson: what README.pt-BR.md's command makes from the key, and what a student meets.

notebooks/aula03_softmax.ipynb is the answer key: each exercise cell holds
the course's function, with nbgrader's `### BEGIN SOLUTION` ... `### END
SOLUTION` around a call of the project's. `jupyter nbconvert --config
notebooks/versao_do_aluno.py` makes notebooks/aula03_softmax_aluno.ipynb from
it: a stub that raises NotImplementedError in each exercise, a blank for each
written answer, no `gabarito` cell, no output. The tests make it afresh,
compare it with the committed one, and run its from-scratch part on the
blobs twice, in a kernel on this interpreter: as handed out, every graded
test cell (nbgrader's `grade`, not `solution`) fails; with the key's
solution cells pasted in, every one passes.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from test_notebook import NOTEBOOK, code_cells, read_notebook, students_environment

STUDENT = PROJECT_ROOT / "notebooks" / "aula03_softmax_aluno.ipynb"
COMMAND = "jupyter nbconvert --config notebooks/versao_do_aluno.py"  # README.pt-BR.md's
STUB = "# SEU CÓDIGO AQUI\nraise NotImplementedError()"


def nbgrader(cell, key):
    return cell.metadata.get("nbgrader", {}).get(key, False)


def graded_tests(notebook):
    return [cell for cell in code_cells(notebook) if nbgrader(cell, "grade") and not nbgrader(cell, "solution")]


def exercises(notebook):
    return [cell for cell in code_cells(notebook) if nbgrader(cell, "solution")]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The student version as the command makes it now, from the key in the working tree (its folder's own config
    only: a user's ~/.jupyter changes nothing)."""
    folder = tmp_path_factory.mktemp("aluno")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(folder),
           "JUPYTER_CONFIG_DIR": str(folder / "config"), "JUPYTER_PLATFORM_DIRS": "1"}
    subprocess.run([sys.executable, "-m", *COMMAND.split(), "--output-dir", str(folder)], cwd=PROJECT_ROOT,
                   env=env, check=True, capture_output=True, timeout=300)
    return folder / STUDENT.name


def test_the_committed_student_version_is_what_the_command_makes_from_the_key_now(made):
    assert made.read_bytes() == STUDENT.read_bytes(), f"notebooks/ is stale: run `{COMMAND}`"


def test_the_student_version_is_the_key_without_its_answers():
    key, student = read_notebook(), read_notebook(STUDENT)
    kept = [cell for cell in key.cells if "gabarito" not in cell.metadata.get("tags", [])]
    assert len(kept) < len(key.cells)
    assert [cell.id for cell in student.cells] == [cell.id for cell in kept]
    for given, handed_out in zip(kept, student.cells, strict=True):
        assert "outputs" not in handed_out or handed_out.outputs == []
        assert "execution" not in handed_out.metadata  # the key's timestamps
        if not nbgrader(given, "solution"):
            assert handed_out.source == given.source  # text, given code and tests, as in the key
        elif given.cell_type == "markdown":
            assert handed_out.source == "SUA RESPOSTA AQUI"
        else:  # the signature and docstring, and the stub in place of the solution
            start, _, rest = given.source.partition("    ### BEGIN SOLUTION\n")
            assert handed_out.source == start + textwrap.indent(STUB, "    ") + rest.partition("### END SOLUTION")[2]
    assert [cell.metadata.nbgrader.grade_id for cell in student.cells if nbgrader(cell, "solution")] == [
        "softmax", "cross_entropy", "derivadas", "previsoes", "resposta_1", "resposta_2", "resposta_3"]
    assert len(graded_tests(student)) == 4
    # The answers are the project's functions: the student version never names them (it imports them in its setup).
    assert [cell.id for cell in student.cells if "fmnist.softmax." in cell.source] == []
    assert all(cell.metadata.get("editable") is False for cell in graded_tests(student))


def run_the_blobs_part(notebook, scratch):
    """Executes `notebook`'s cells up to its last graded test, errors allowed, from notebooks/ as a student would;
    {cell id: the error's name or None}."""
    from nbclient import NotebookClient

    last = notebook.cells.index(graded_tests(notebook)[-1])
    notebook.cells = notebook.cells[:last + 1]
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(PROJECT_ROOT / NOTEBOOK.parent)}})
    # A git identity: the setup cell would otherwise give this repository one of its own.
    identity = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                for what, value in (("NAME", "test"), ("EMAIL", "test@localhost"))}
    with students_environment(scratch, **identity):
        client.execute()
    return {cell.id: next((output.ename for output in cell.outputs if output.output_type == "error"), None)
            for cell in code_cells(notebook)}


@pytest.mark.slow
def test_every_graded_test_fails_as_handed_out_and_passes_with_the_key_pasted_in(made, tmp_path):
    student = read_notebook(made)
    errors = run_the_blobs_part(student, tmp_path / "blank")
    first = student.cells.index(exercises(student)[0])
    before = [cell.id for cell in code_cells(student) if student.cells.index(cell) < first and errors[cell.id]]
    assert before == [], "a cell the student did not have to write failed"
    # The stub's error, or one it causes (a variable a failed cell did not set; a check that does not hold).
    failed = {cell.id: errors[cell.id] for cell in graded_tests(student)}
    assert all(error in ("NotImplementedError", "NameError", "AssertionError") for error in failed.values()), failed

    answers = {cell.id: cell.source for cell in exercises(read_notebook())}
    pasted = read_notebook(made)
    for cell in exercises(pasted):
        cell.source = answers[cell.id]
    errors = run_the_blobs_part(pasted, tmp_path / "key")
    assert {cell_id: error for cell_id, error in errors.items() if error} == {}
