"""The student version of the lesson, made from the answer key by nbgrader's preprocessors, without a course folder.

From the project's root (README.pt-BR.md, "Versão do aluno"):

    jupyter nbconvert --config notebooks/versao_do_aluno.py

reads notebooks/aula03_softmax.ipynb and writes notebooks/aula03_softmax_aluno.ipynb:
each `### BEGIN SOLUTION` ... `### END SOLUTION` region of an exercise cell
becomes a stub that raises NotImplementedError, each written answer to the
questions a blank; the cells tagged `gabarito` (the project's source, printed)
are left out, and so are every output and the key's execution timestamps. The
`# testes, não apague!` cells stay as they are, locked. `--output-dir DIR`
writes it elsewhere (tests/test_student_version.py).
"""

c = get_config()  # noqa: F821 (nbconvert's config files are run with it defined)

c.NbConvertApp.notebooks = ["notebooks/aula03_softmax.ipynb"]
c.NbConvertApp.export_format = "notebook"
c.NbConvertApp.output_base = "aula03_softmax_aluno"
c.FilesWriter.build_directory = "notebooks"

c.NotebookExporter.preprocessors = [
    "nbgrader.preprocessors.CheckCellMetadata",  # every exercise, test and answer cell has its nbgrader metadata
    "nbconvert.preprocessors.TagRemovePreprocessor",
    "nbgrader.preprocessors.ClearSolutions",
    "nbgrader.preprocessors.LockCells",
    "nbconvert.preprocessors.ClearOutputPreprocessor",
]
c.TagRemovePreprocessor.enabled = True
c.TagRemovePreprocessor.remove_cell_tags = ["gabarito"]
c.ClearSolutions.code_stub = {"python": "# SEU CÓDIGO AQUI\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "SUA RESPOSTA AQUI"
c.ClearOutputPreprocessor.remove_metadata_fields = ["collapsed", "scrolled", "execution"]
