"""README, docs/ and reports/ hold the numbers of the current code: a change that moves one fails here.

The slow tests run the pipeline with the default params.yaml on the bundled
data and compare the pages' figures, to the digits shown, with what it gives,
and run README's everyday loop; the quick ones check that reports/ and the
sweep tables of docs/answers.md are what stages/sweep_report.py makes
of the saved experiments.
"""

import json
import re
import statistics
import subprocess

import pandas as pd
import pytest
import torch
import yaml
from conftest import PROJECT_ROOT, commit, copy_project, dvc, dvc_env, make_project, run, set_params, stages_run
from pages import PAGES, README, README_PT_BR, console_sessions, read, same_to_the_digits_shown, section

from stages import flatten, sweep_report, train_nn
from stages.params import Yaml12Loader

REPORTS = PROJECT_ROOT / "reports"
ANSWERS = "docs/answers.md"  # the notebook's questions, answered from the sweeps
TUTORIAL = "docs/tutorial.md"  # the everyday loop, then a sweep
REFERENCE = "docs/pipeline.md"  # stages, params.yaml, metrics files
BENCHMARK = REPORTS / "benchmark.md"  # python -m benchmarks.bench --markdown reports/benchmark.md


def results_row(model):
    """(label, [numbers as shown]) of the row of README's results table that starts with `model`."""
    for line in section(read(README), "## Results").splitlines():
        if line.startswith(f"| `{model}`"):
            label, *numbers = [cell.strip() for cell in line.strip("|").split("|")]
            return label, numbers
    raise AssertionError(f"README's results table has no row for {model}")


@pytest.fixture(scope="module")
def default_run(default_template):
    """The metrics of `dvc repro` with the default params.yaml: {metrics file name: content}."""
    assert "Data and pipelines are up to date." in dvc(default_template, "status").stdout
    return {path.name: json.loads(path.read_text()) for path in (default_template / "metrics").glob("*.json")}


@pytest.mark.slow
def test_results_table_is_what_the_default_pipeline_gives(default_run):
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    evaluation = default_run["evaluate.json"]
    rows = {
        "train_scratch": (default_run["train_scratch.json"]["scratch"], evaluation["scratch"]),
        "train_nn": (default_run["train_nn.json"]["nn"], evaluation["nn"]),
    }
    for model, (trained, tested) in rows.items():
        label, numbers = results_row(model)
        shown = [f"{value:.4f}" for value in (trained["train_accuracy"], tested["accuracy"], tested["macro_f1"])]
        assert numbers == shown, f"README shows {numbers} for {model}; this commit gives {shown}"
    scratch_label, _ = results_row("train_scratch")
    assert f"lr {params['train_scratch']['lr']:g}, {params['train_scratch']['max_iter']} iterations" in scratch_label
    nn_label, _ = results_row("train_nn")
    nn = params["train_nn"]
    assert (f"lr {nn['lr']:g}, momentum {nn['momentum']:g}, batch {nn['batch_size']}, {nn['epochs']} epochs"
            in nn_label)

    # The notebook's first question, answered in words: on README and wherever else a page says it.
    answer = re.compile(r"classifies\s+\*\*([\d.]+)%\*\*\s+of\s+the\s+training\s+images\s+and\s+\*\*([\d.]+)%\*\*"
                        r"\s+of\s+the\s+test")
    answers = {page: answer.findall(read(page)) for page in PAGES}
    assert answers[README] and answers[ANSWERS], "the answer on training accuracy is missing"
    nn_metrics = default_run["train_nn.json"]["nn"]
    given = (f"{100 * nn_metrics['train_accuracy']:.1f}", f"{100 * evaluation['nn']['accuracy']:.1f}")
    for page, found in answers.items():
        assert all(shown == given for shown in found), f"{page} says {found}; this commit gives {given}"


def results_rows_pt_br():
    """{model: (label, [numbers as shown])} of README.pt-BR.md's results table."""
    rows = {}
    for line in section(read(README_PT_BR), "## Resultados").splitlines():
        match = re.match(r"\| `(\w+)`", line)
        if match:
            label, *numbers = [cell.strip() for cell in line.strip("|").split("|")]
            rows[match.group(1)] = (label, numbers)
    return rows


def test_the_portuguese_results_table_is_readmes_with_the_params_in_portuguese():
    """README.pt-BR.md shows README's numbers (which the slow test above checks against a run of this commit)."""
    rows = results_rows_pt_br()
    assert set(rows) == {"train_scratch", "train_nn"}
    for model, (_, numbers) in rows.items():
        assert numbers == results_row(model)[1], f"README.pt-BR.md shows {numbers} for {model}, README.md another"
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    scratch, nn = params["train_scratch"], params["train_nn"]
    assert f"lr {scratch['lr']:g}, {scratch['max_iter']} iterações" in rows["train_scratch"][0]
    assert (f"lr {nn['lr']:g}, momento {nn['momentum']:g}, lotes de {nn['batch_size']}, {nn['epochs']} épocas"
            in rows["train_nn"][0])


def test_the_portuguese_readme_gives_readmes_commands_and_everyday_loop_word_for_word():
    """Its two commands and its console session are README's, which the tests run; only the prose is translated."""
    portuguese, english = read(README_PT_BR), read(README)
    commands = re.findall(r"```bash\n(.+?)\n```", section(portuguese, "## Como rodar"))
    assert commands == re.findall(r"```bash\n(.+?)\n```", section(english, "## Quick start"))
    loop = console_sessions(section(portuguese, "## O ciclo do dia a dia"))
    assert loop and loop == console_sessions(section(english, "## Change one thing and compare"))


def test_the_two_readmes_link_each_other_at_the_top():
    assert f"]({README_PT_BR})" in "\n".join(read(README).splitlines()[:5])
    assert f"]({README})" in "\n".join(read(README_PT_BR).splitlines()[:5])


@pytest.mark.parametrize(("page", "title"), [(README, "## The lesson as a notebook"),
                                             (README_PT_BR, "## O notebook da aula")])
def test_each_readme_opens_the_notebook_that_the_tests_execute(page, title):
    from test_notebook import NOTEBOOK

    commands = re.findall(r"^jupyter lab (\S+)$", section(read(page), title), re.M)
    assert commands == [NOTEBOOK.as_posix()] and (PROJECT_ROOT / NOTEBOOK).is_file()


def printed_as_shown(printed, shown):
    """True when `printed` (blank lines left out) is `shown` line for line, each "..." standing for any lines."""
    pattern = "".join(r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + "\n" for line in shown)
    text = "".join(f"{line}\n" for line in printed.splitlines() if line.strip())
    return re.fullmatch(pattern, text) is not None


def test_printed_as_shown_reads_dots_as_any_lines_and_nothing_else():
    printed = "Stage 'a' didn't change\n\nRunning stage 'b':\nepoch 1\nepoch 2\nRunning stage 'c':\n"
    assert printed_as_shown(printed, ["Stage 'a' didn't change", "Running stage 'b':", "...", "Running stage 'c':"])
    assert printed_as_shown(printed, ["...", "Running stage 'c':"])
    assert not printed_as_shown(printed, ["Stage 'a' didn't change", "Running stage 'b':", "Running stage 'c':"])
    assert not printed_as_shown(printed, ["...", "Running stage 'b':"])
    assert not printed_as_shown(printed, ["Stage 'a' didn't change", "...", "Running stage 'd':"])


def table_rows(lines):
    """{first cells: the row's numbers} of a table as DVC prints it (cells apart by two spaces or more)."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines if line.strip()]
    header, *body = rows
    keys = 2 if header[:2] == ["Path", "Metric"] or header[:2] == ["Path", "Param"] else 1
    return header, {tuple(row[:keys]): row[keys:] for row in body}


def assert_table_as_shown(printed, shown, where):
    """A table DVC printed against README's: the same rows, in any order, the same numbers to the digits shown.

    HEAD's column is read from git and must be the very digits. A metric
    that moved only past the digits shown (another CPU) may add a row whose
    change reads 0.0 (or -0.0).
    """
    printed_header, printed_rows = table_rows(printed.splitlines())
    shown_header, shown_rows = table_rows(shown)
    assert printed_header == shown_header, f"{where}\n{printed}"
    assert set(shown_rows) <= set(printed_rows), f"{where}: rows missing\n{printed}"
    for key in set(printed_rows) - set(shown_rows):
        assert printed_rows[key][-1] in ("0.0", "-0.0"), f"{where}: a row README does not show: {key}\n{printed}"
    for key, cells in shown_rows.items():
        got = printed_rows[key]
        assert len(got) == len(cells) and got[0] == cells[0], f"{where}: {key}\n{printed}"
        assert all(same_to_the_digits_shown(a, b) for a, b in zip(got[1:], cells[1:], strict=True)), \
            f"{where}: {key} printed {got}, README shows {cells}\n{printed}"


def test_a_table_compares_heads_digits_exactly_and_the_run_to_the_digits_shown():
    shown = ["Path  Metric  HEAD  workspace  Change", "m.json  nn.accuracy  0.8411   0.8436   0.0025"]
    assert_table_as_shown("Path  Metric  HEAD  workspace  Change\nm.json  nn.accuracy  0.8411  0.8437  0.0026\n"
                          "m.json  scratch.final_loss  0.57481  0.57481  0.0\n", shown, "ok")
    for wrong in ("m.json  nn.accuracy  0.8412  0.8436  0.0025",   # HEAD's digits moved
                  "m.json  nn.accuracy  0.8411  0.8446  0.0035",   # the run's, beyond two units
                  "m.json  nn.macro_f1  0.8411  0.8436  0.0025"):  # another metric
        with pytest.raises(AssertionError):
            assert_table_as_shown(f"Path  Metric  HEAD  workspace  Change\n{wrong}\n", shown, "wrong")
    with pytest.raises(AssertionError):  # a row README lacks, that moved
        assert_table_as_shown("Path  Metric  HEAD  workspace  Change\nm.json  nn.accuracy  0.8411  0.8436  0.0025\n"
                              "m.json  nn.train_loss  0.38535  0.39323  0.00788\n", shown, "extra")


def run_readmes_loop(project):
    """README's "Change one thing and compare" in `project`, command by command, each against what README shows."""
    sessions = console_sessions(section(read(README), "## Change one thing and compare"))
    assert [command.split("#")[0].strip() for command, _ in sessions] == [
        "dvc repro", "dvc params diff", "dvc metrics diff", "git checkout params.yaml && dvc repro"]
    for command, shown in sessions:
        edit = re.search(r"# after setting (\S+): (\S+) in params\.yaml", command)
        if edit:  # what README asks the reader to do by hand
            set_params(project, {edit.group(1): yaml.safe_load(edit.group(2))})
        result = subprocess.run(["bash", "-c", command], cwd=project, env=dvc_env(), timeout=600,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert result.returncode == 0, f"$ {command}\n{result.stdout}"
        if "..." in shown:
            assert printed_as_shown(result.stdout, shown), f"$ {command}\n{result.stdout}"
        else:  # a table: DVC lists the metrics files in no fixed order
            assert_table_as_shown(result.stdout, shown, f"$ {command}")


@pytest.mark.slow
def test_readmes_everyday_loop_prints_what_readme_shows(default_template, tmp_path):
    """README's loop in a copy of the default run reproduced and committed on this machine."""
    run_readmes_loop(copy_project(default_template, tmp_path / "project"))


def as_made_on_another_cpu(project):
    """Commit `project` as if HEAD's outputs came from a CPU whose bytes this one never reproduces.

    Every output's hash in dvc.lock becomes one that no file here has, and
    the scratch model's final loss moves in its last bits, as float sums
    taken in another order move it.
    """
    lock = (project / "dvc.lock").read_text()
    lock = re.sub(r"(\n {4}- path: (?:data/models|metrics)/\S+\n(?: {6}\S.*\n)*? {6}md5: )([0-9a-f]{32})",
                  lambda match: match.group(1) + "f" * 32, lock)
    assert lock.count("f" * 32) >= 10, "dvc.lock's outputs are not where they were"
    (project / "dvc.lock").write_text(lock)
    scratch = project / "metrics" / "train_scratch.json"
    metrics = json.loads(scratch.read_text())
    metrics["scratch"]["final_loss"] *= 1 + 2**-40
    scratch.write_text(json.dumps(metrics, indent=2) + "\n")
    commit(project, "made on another CPU")


@pytest.mark.slow
def test_readmes_loop_works_in_a_fresh_clone_on_another_cpu(tmp_path):
    """The quick start's `dvc repro`, then README's loop, in a clone of this commit with an empty DVC cache.

    HEAD's metrics come from git, not from a cache this machine would have
    to fill with the same bytes: every row of `dvc metrics diff` has them.
    """
    origin = make_project(tmp_path / "origin", extra=["dvc.lock", "metrics", "data/models/.gitignore"])
    as_made_on_another_cpu(origin)
    project = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(origin), str(project))
    assert not (project / ".dvc" / "cache").exists()

    first = dvc(project, "repro").stdout  # README's quick start
    assert stages_run(first) == ["download", "flatten", "train_scratch", "train_nn", "evaluate"], first
    changed = run(project, "git", "status", "--porcelain").stdout.splitlines()
    assert " M dvc.lock" in changed, changed  # modified, not staged: DVC leaves git's index alone
    assert all(line.startswith(" M ") for line in changed), changed

    run_readmes_loop(project)

    # HEAD's plot data comes from git too: `dvc plots diff HEAD` draws both revisions' curves.
    plots = json.loads(dvc(project, "plots", "diff", "HEAD", "--json").stdout)
    history = plots["data"]["metrics/train_nn_history.csv"][0]["content"]["data"]["values"]
    head_epochs = [row for row in history if row["rev"] == "HEAD"]
    assert len(head_epochs) == yaml.safe_load((project / "params.yaml").read_text())["train_nn"]["epochs"]
    assert "errors" not in plots, plots.get("errors")


@pytest.mark.slow
def test_the_sweep_rows_with_the_default_settings_are_the_default_run(default_run):
    """reports/sweep.csv came from the same code: its runs with the default settings give today's numbers."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    table = pd.read_csv(REPORTS / "sweep.csv")
    nn_rows = table[(table["train_nn.lr"] == params["train_nn"]["lr"])
                    & (table["train_nn.epochs"] == params["train_nn"]["epochs"])]
    assert len(nn_rows) >= 1
    for _, row in nn_rows.iterrows():  # the same single thread; another CPU may move the last digit shown
        for column, value in (("nn_train_accuracy", default_run["train_nn.json"]["nn"]["train_accuracy"]),
                              ("nn_test_accuracy", default_run["evaluate.json"]["nn"]["accuracy"])):
            assert same_to_the_digits_shown(f"{value:.4f}", f"{row[column]:.4f}", units=1), (column, value)
    scratch_rows = table[(table["train_scratch.lr"] == params["train_scratch"]["lr"])
                         & (table["train_scratch.max_iter"] == params["train_scratch"]["max_iter"])]
    assert len(scratch_rows) >= 1
    for _, row in scratch_rows.iterrows():  # queued runs use one thread: equal to rounding, as README says
        assert same_to_the_digits_shown(f"{default_run['evaluate.json']['scratch']['accuracy']:.4f}",
                                        f"{row['scratch_test_accuracy']:.4f}", units=1)


@pytest.mark.slow
def test_seed_figures_in_the_results_are_what_train_gives():
    """docs/answers.md's test accuracies of the nn model over seeds, retrained here with the default params."""
    page = read(ANSWERS)
    match = re.search(r"over\s+seeds\s+0\s+to\s+(\d)\s+and\s+the\s+default\s+(\d+)\s+it\s+ended\s+at\s+([\d.,\sand]+?)"
                      r"\s+\(mean\s+([\d.]+)", page)
    assert match, f"{ANSWERS}'s seed figures are missing"
    last_seed, default_seed = int(match.group(1)), int(match.group(2))
    shown = re.findall(r"0\.\d{4}", match.group(3))
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    assert default_seed == params["seed"]
    config = params["train_nn"]
    images, labels = flatten.flatten_split(PROJECT_ROOT / "data" / "fashion-mnist", "train")
    test_images, test_labels = flatten.flatten_split(PROJECT_ROOT / "data" / "fashion-mnist", "test")

    def to_tensors(pixels, classes):
        return torch.from_numpy(pixels.astype("float32") / 255), torch.from_numpy(classes.astype("int64"))

    train_set, test_set = to_tensors(images, labels), to_tensors(test_images, test_labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the stage trains
    try:
        accuracies = [
            train_nn.train(train_set, test_set, config["lr"], config["momentum"], config["batch_size"],
                           config["epochs"], seed)[1][-1]["test_accuracy"]
            for seed in [*range(last_seed + 1), default_seed]
        ]
    finally:
        torch.set_num_threads(threads)
    assert shown == [f"{accuracy:.4f}" for accuracy in accuracies]
    assert match.group(4) == f"{statistics.mean(accuracies):.3f}"
    spread = re.search(r"mean\s+[\d.]+,\s+spread\s+([\d.]+)\s+to\s+([\d.]+)\)", page)
    assert spread and spread.groups() == (f"{min(accuracies):.3f}", f"{max(accuracies):.3f}")


def test_reports_are_what_sweep_report_makes_of_the_saved_experiments(tmp_path):
    """reports/exp_show.json is `dvc exp show --json` of the sweeps; the report is rebuilt from it byte for byte."""
    sweep_report.main(["--exp-json", str(REPORTS / "exp_show.json"), "--out", str(tmp_path)])
    for name in ("sweep.md", "sweep.csv", "sweep.png"):
        assert (tmp_path / name).read_bytes() == (REPORTS / name).read_bytes(), f"reports/{name} is stale"


def test_the_experiments_page_shows_the_sweep_report_as_it_is():
    report = (REPORTS / "sweep.md").read_text(encoding="utf-8")
    assert report in read(ANSWERS), f"{ANSWERS}'s sweep tables differ from reports/sweep.md; paste it again"


def test_the_answers_quote_only_numbers_of_the_sweep_report():
    """Every accuracy that the answers to the notebook's questions quote is a cell of reports/sweep.md."""
    answers = section(read(ANSWERS), "## What the notebook asked")
    report = (REPORTS / "sweep.md").read_text(encoding="utf-8")
    quoted = set(re.findall(r"\b0\.\d{4}\b", answers.replace(report, "")))
    assert quoted, "the answers quote no accuracy"
    assert quoted <= set(re.findall(r"\b0\.\d{4}\b", report)), sorted(quoted - set(re.findall(r"0\.\d{4}", report)))


def benchmark_row(label):
    """The measured cell of reports/benchmark.md's row whose label starts with `label`."""
    assert BENCHMARK.is_file(), "make it: python -m benchmarks.bench --markdown reports/benchmark.md"
    for line in BENCHMARK.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(label):
            return cells[1]
    raise AssertionError(f"reports/benchmark.md has no row {label!r}")


def test_readmes_speed_figures_are_those_of_the_benchmarks_table():
    """README's clean and lr-change `dvc repro` times are rows of reports/benchmark.md, on its machine's cores."""
    readme = " ".join(read(README).split())
    clean, cores, lr_change = re.search(
        r"a clean `dvc repro` in ([\d.]+) s on (\d+) CPU cores, ([\d.]+) s after a learning-rate", readme).groups()
    machine = BENCHMARK.read_text(encoding="utf-8").splitlines()[0] if BENCHMARK.is_file() else ""
    assert f", {cores} CPUs," in machine, f"README says {cores} cores; reports/benchmark.md ran on: {machine}"
    for label, shown in (("`dvc repro`, clean, every stage", clean), ("`dvc repro` after train_nn.lr", lr_change)):
        measured = benchmark_row(label)
        assert measured.startswith(f"{shown} s"), f"README says {shown} s; reports/benchmark.md: {label}: {measured}"


def test_the_reference_gives_the_defaults_of_params_yaml():
    """docs/pipeline.md's params.yaml table: every key of params.yaml, with its value there."""
    params = yaml.load((PROJECT_ROOT / "params.yaml").read_text(), Loader=Yaml12Loader)
    flat = {f"{group}.{key}": value for group, entries in params.items() if isinstance(entries, dict)
            for key, value in entries.items()}
    flat.update({key: value for key, value in params.items() if not isinstance(value, dict)})
    shown = {}
    for line in section(read(REFERENCE), "## `params.yaml`").splitlines()[4:]:
        if not line.startswith("|"):
            continue
        keys, defaults = [cell.strip() for cell in line.strip("|").split("|")][:2]
        names = re.findall(r"`([\w.]+)`", keys)
        names = [name if "." in name or name in params else f"{names[0].rsplit('.', 1)[0]}.{name}" for name in names]
        values = [defaults] * len(names) if len(names) > 1 and "," not in defaults else defaults.split(", ")
        shown.update(zip(names, values, strict=True))
    assert set(shown) == set(flat)
    for key, value in flat.items():
        assert yaml.load(shown[key].strip("`"), Loader=Yaml12Loader) == value, (key, shown[key], value)
