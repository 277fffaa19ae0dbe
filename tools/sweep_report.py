"""The notebook's questions, answered from experiments: accuracy against learning rate and epochs.

Reads `dvc exp show --json` (run here, or a saved copy with --exp-json) and
writes, into --out (default reports/):

- sweep.md: per model, a table of train and test accuracy for each setting
  tried (experiments that trained that model the same way share a row; the
  row of the baseline commit's own params is labelled "the defaults"),
  and the best setting;
- sweep.csv: one row per experiment, every column, full precision;
- sweep.png: accuracy against the learning rate, one line per number of
  epochs (train_nn) or of iterations (train_scratch).

    dvc exp run -S 'train_nn.lr=0.01,0.03,0.1,0.3' -S 'train_nn.epochs=5,15' --queue
    dvc queue start -j 2     # then wait until `dvc queue status` shows nothing queued or running
    python -m stages.sweep_report       # -A: also experiments based on older commits

Not a pipeline stage: it reads the experiments, which live in git refs,
not in the workspace.
"""

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from matplotlib.figure import Figure

from fmnist.errors import UserError, one_line_errors
from fmnist.files import write_text
from fmnist.figures import save_png

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class Column:
    """One value per experiment. `id` names it in the CSV, `header` in its model's Markdown table.

    `source` is "params" (`key` in params.yaml) or the stage whose metrics
    file holds `key`; keys are dotted, as DVC shows them.
    """

    model: str
    id: str
    header: str
    source: str
    key: str


COLUMNS = [
    Column("nn", "train_nn.lr", "lr", "params", "train_nn.lr"),
    Column("nn", "train_nn.epochs", "epochs", "params", "train_nn.epochs"),
    Column("nn", "nn_train_accuracy", "train accuracy", "train_nn", "nn.train_accuracy"),
    Column("nn", "nn_test_accuracy", "test accuracy", "evaluate", "nn.accuracy"),
    Column("scratch", "train_scratch.lr", "lr", "params", "train_scratch.lr"),
    Column("scratch", "train_scratch.max_iter", "max_iter", "params", "train_scratch.max_iter"),
    Column("scratch", "scratch_iterations", "iterations run", "train_scratch", "scratch.iterations"),
    Column("scratch", "scratch_train_accuracy", "train accuracy", "train_scratch", "scratch.train_accuracy"),
    Column("scratch", "scratch_test_accuracy", "test accuracy", "evaluate", "scratch.accuracy"),
]
# Per model: its title, the params that decide how it trains, the swept
# ones (x axis and line groups of the plot), and flags reported when true.
MODELS = {
    "nn": {
        "title": "train_nn: torch.nn Linear + SGD (epochs of minibatches)",
        "params": ("seed", "train_nn"),
        "lr": "train_nn.lr", "steps": "train_nn.epochs", "steps_name": "epochs",
        "notes": [("train_nn", "nn.diverged", "diverged")],
    },
    "scratch": {
        "title": "train_scratch: full-batch gradient descent from scratch (iterations)",
        "params": ("train_scratch",),
        "lr": "train_scratch.lr", "steps": "train_scratch.max_iter", "steps_name": "max_iter",
        "notes": [
            ("train_scratch", "scratch.diverged", "diverged"),
            ("train_scratch", "scratch.converged", "converged early"),
        ],
    },
}


def metrics_files(dvc_yaml):
    """{stage name: its metrics file} as dvc.yaml declares them (the first one of each stage)."""
    stages = yaml.safe_load(Path(dvc_yaml).read_text(encoding="utf-8"))["stages"]
    files = {}
    for name, stage in stages.items():
        for entry in stage.get("metrics", []):
            files.setdefault(name, next(iter(entry)) if isinstance(entry, dict) else entry)
    return files


def finished_experiments(exp_show):
    """`dvc exp show --json` -> ([experiment], [(name, why skipped)]).

    Each experiment is {name, rev, params, metrics, baseline_params}: params
    is params.yaml's content, metrics maps each metrics file to its content,
    baseline_params is params.yaml of the commit it is based on. Baseline commits
    and the workspace are not experiments; queued, running or failed ones
    have no results yet and are skipped, with the reason.
    """
    found, skipped = [], []
    for baseline in exp_show:
        baseline_params = (((baseline.get("data") or {}).get("params") or {}).get(PARAMS_FILE) or {}).get("data")
        for group in baseline.get("experiments") or []:
            state = (group.get("executor") or {}).get("state")
            for rev in group.get("revs") or []:
                name = rev.get("name") or group.get("name") or rev["rev"][:7]
                data = rev.get("data") or {}
                if state not in (None, "success"):
                    skipped.append((name, f"state {state}"))
                elif rev.get("error") or not data.get("metrics"):
                    skipped.append((name, (rev.get("error") or {}).get("msg") or "no metrics"))
                else:
                    found.append({
                        "name": name,
                        "rev": rev["rev"],
                        "params": data["params"][PARAMS_FILE]["data"],
                        "metrics": {path: entry.get("data", {}) for path, entry in data["metrics"].items()},
                        "baseline_params": baseline_params,
                    })
    return found, skipped


def _dotted(mapping, key):
    for part in key.split("."):
        if not isinstance(mapping, dict) or part not in mapping:
            return None
        mapping = mapping[part]
    return mapping


def _flatten(mapping, prefix=""):
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def build_rows(experiments, files):
    """Experiments and {stage: metrics file} -> one dict per experiment, keyed by column id, sorted.

    A value an experiment lacks is None. `<model>_notes` lists the model's
    flags that are true; `<model>_settings` holds every param that decides
    how the model trains (dotted key -> value), and `<model>_defaults` says
    whether they are those of the experiment's baseline commit.
    """

    def lookup(experiment, source, key):
        if source == "params":
            return _dotted(experiment["params"], key)
        return _dotted(experiment["metrics"].get(files[source], {}), key)

    rows = []
    for experiment in experiments:
        row = {"experiment": experiment["name"], "rev": experiment["rev"][:7]}
        row.update({column.id: lookup(experiment, column.source, column.key) for column in COLUMNS})
        for model, spec in MODELS.items():
            row[f"{model}_notes"] = [text for source, key, text in spec["notes"] if lookup(experiment, source, key)]
            settings = {name: experiment["params"].get(name) for name in spec["params"]}
            row[f"{model}_settings"] = _flatten(settings)
            baseline = experiment.get("baseline_params")
            row[f"{model}_defaults"] = baseline is not None and row[f"{model}_settings"] == _flatten(
                {name: baseline.get(name) for name in spec["params"]})
        rows.append(row)

    sort_keys = [spec[key] for spec in MODELS.values() for key in ("lr", "steps")]
    return sorted(rows, key=lambda row: [_sortable(row[key]) for key in sort_keys] + [row["experiment"]])


def _sortable(value):
    return (value is None, value if isinstance(value, (int, float)) else 0)


def model_rows(rows, model):
    """The rows for one model's table: experiments that trained it identically share one row.

    Each returned row is the first such experiment's, with `experiments`
    listing them all, and `other_settings` the settings that differ between
    this table's rows but have no column (so two rows never look the same).
    """
    columns = [column for column in COLUMNS if column.model == model]
    groups = {}
    for row in rows:
        settings = row[f"{model}_settings"]
        key = json.dumps([sorted(settings.items()), [row[c.id] for c in columns]], default=str)
        groups.setdefault(key, []).append(row)
    shown = {c.key for c in columns if c.source == "params"}
    varying = sorted({
        name for group in groups.values() for name, value in group[0][f"{model}_settings"].items()
        if name not in shown and any(other[0][f"{model}_settings"].get(name) != value for other in groups.values())
    })
    merged = []
    for group in groups.values():
        first = dict(group[0])
        first["experiments"] = [row["experiment"] for row in group]
        first["other_settings"] = {name: first[f"{model}_settings"].get(name) for name in varying}
        merged.append(first)
    spec = MODELS[model]
    return sorted(merged, key=lambda row: (_sortable(row[spec["lr"]]), _sortable(row[spec["steps"]])))


def format_value(value):
    """A param or a count as a table shows it: 0.03, 15, true."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _cell(column, value):
    if column.id.endswith("accuracy"):
        return "" if value is None else f"{value:.4f}"
    return format_value(value)


def _experiments_cell(names, defaults=False):
    """What a table row is: "the defaults" (the baseline's own params), else its experiment(s)."""
    if defaults:
        return "the defaults" + ("" if len(names) == 1 else f" ({len(names)} experiments)")
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} alike)"


def model_table(rows, model):
    """One model's table as a DataFrame of display strings: experiments, its columns' values, notes."""
    columns = [column for column in COLUMNS if column.model == model]
    records = []
    for row in model_rows(rows, model):
        others = [f"{name}={format_value(value)}" for name, value in row["other_settings"].items()]
        record = {"experiments": _experiments_cell(row["experiments"], row.get(f"{model}_defaults", False))}
        record.update({column.header: _cell(column, row[column.id]) for column in columns})
        record["notes"] = ", ".join(others + row[f"{model}_notes"])
        records.append(record)
    return pd.DataFrame(records, columns=["experiments", *(column.header for column in columns), "notes"])


def markdown_table(rows, model):
    """One model's Markdown table: a row per distinct setting, the experiments that tried it, accuracies."""
    table = model_table(rows, model)
    align = ["left", *["right"] * (len(table.columns) - 2), "left"]
    # disable_numparse: the cells are already formatted (0.8300 stays 0.8300).
    return table.to_markdown(index=False, colalign=align, disable_numparse=True) + "\n"


def best_line(rows, model):
    """The model's best test accuracy and the setting that gave it, in one sentence (None without data)."""
    spec = MODELS[model]
    candidates = [row for row in model_rows(rows, model) if row[f"{model}_test_accuracy"] is not None]
    if not candidates:
        return None
    top = max(candidates, key=lambda row: row[f"{model}_test_accuracy"])
    return (f"best {model} test accuracy: {top[f'{model}_test_accuracy']:.4f} with "
            f"lr={format_value(top[spec['lr']])}, {spec['steps_name']}={format_value(top[spec['steps']])} "
            f"(train accuracy {top[f'{model}_train_accuracy']:.4f}; "
            f"{_experiments_cell(top['experiments'], top.get(f'{model}_defaults', False))})")


def markdown_report(rows):
    """sweep.md: each model's table under its title, then the best setting of each."""
    parts = [f"### {spec['title']}\n\n{markdown_table(rows, model)}" for model, spec in MODELS.items()]
    best = [line for line in (best_line(rows, model) for model in MODELS) if line]
    return "\n".join(parts) + ("\n" + "".join(f"- {line}\n" for line in best) if best else "")


def sweep_frame(rows):
    """Every experiment as one DataFrame row: name, short rev, every column at full precision, notes."""
    records = []
    for row in rows:
        record = {"experiment": row["experiment"], "rev": row["rev"]}
        record.update({column.id: row[column.id] for column in COLUMNS})
        record["notes"] = "; ".join(f"{model} {note}" for model in MODELS for note in row[f"{model}_notes"])
        records.append(record)
    columns = ["experiment", "rev", *(column.id for column in COLUMNS), "notes"]
    # object dtype: an int stays an int (15, not 15.0) and a missing value stays empty.
    return pd.DataFrame(records, columns=columns, dtype=object)


def csv_text(rows):
    """sweep.csv: every column, full precision, one line per experiment."""
    return sweep_frame(rows).to_csv(index=False, lineterminator="\n")


def curves(rows, x_key, group_key, y_key):
    """{group value: (sorted x values, y values)}; repeated (x, group) pairs are averaged."""
    points = pd.DataFrame([{"x": row[x_key], "group": row[group_key], "y": row[y_key]} for row in rows],
                          columns=["x", "group", "y"]).dropna()
    means = points.groupby(["group", "x"])["y"].mean()
    return {
        group: (means[group].index.to_numpy(), means[group].to_numpy())
        for group in sorted(points["group"].unique())
    }


def accuracy_figure(rows):
    """Rows -> one panel per model: accuracy against lr (log scale), solid test, dashed train."""
    figure = Figure(figsize=(12, 4.5), dpi=100)
    for axes, (model, spec) in zip(figure.subplots(1, len(MODELS)), MODELS.items(), strict=True):
        test = curves(rows, spec["lr"], spec["steps"], f"{model}_test_accuracy")
        train = curves(rows, spec["lr"], spec["steps"], f"{model}_train_accuracy")
        colors = {group: f"C{i}" for i, group in enumerate(sorted(set(test) | set(train)))}
        for group, (x, y) in test.items():
            axes.plot(x, y, marker="o", color=colors[group], label=f"test, {spec['steps_name']}={group}")
        for group, (x, y) in train.items():
            axes.plot(x, y, marker="s", linestyle="--", color=colors[group],
                      label=f"train, {spec['steps_name']}={group}")
        axes.set_xscale("log")
        tried = sorted({float(x) for xs, _ in [*test.values(), *train.values()] for x in xs})
        if tried:
            axes.set_xticks(tried, [format_value(x) for x in tried])
            axes.minorticks_off()
        axes.set_xlabel(f"{spec['lr']} (log scale)")
        axes.set_ylabel("accuracy")
        axes.set_title(spec["title"].split(":")[0] + ": accuracy against learning rate")
        axes.grid(alpha=0.3, which="both")
        if test or train:
            axes.legend(fontsize=8)
        else:
            axes.text(0.5, 0.5, "no experiments", ha="center", transform=axes.transAxes)
    figure.tight_layout()
    return figure


def read_exp_show(path=None, all_commits=False):
    """The parsed output of `dvc exp show --json` (with -A: of every commit): from `path`, else run here."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        command = ["dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise UserError("the dvc command is not on PATH; activate the project's environment") from None
        if result.returncode != 0:
            raise UserError(f"dvc exp show --json failed: {' '.join(result.stderr.split())}")
        text = result.stdout
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"dvc exp show --json gave no JSON ({error})") from None


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-json", help="saved output of `dvc exp show --json` (default: run it now)")
    parser.add_argument("-A", "--all-commits", action="store_true",
                        help="experiments of every commit, not only those based on HEAD")
    parser.add_argument("--dvc-yaml", default="dvc.yaml", help="where the stages' metrics files are declared")
    parser.add_argument("--out", default="reports", help="folder for sweep.md, sweep.csv and sweep.png")
    args = parser.parse_args(argv)

    experiments, skipped = finished_experiments(read_exp_show(args.exp_json, args.all_commits))
    for name, why in skipped:
        print(f"skipped {name}: {why}", file=sys.stderr)
    if not experiments:
        raise UserError("no finished experiments in `dvc exp show`; run some first, e.g. "
                         "dvc exp run -S 'train_nn.lr=0.01,0.1' --queue && dvc queue start "
                         "(or add -A for experiments based on older commits)")
    rows = build_rows(experiments, metrics_files(args.dvc_yaml))

    out = Path(args.out)
    report = markdown_report(rows)
    write_text(out / "sweep.md", report)
    write_text(out / "sweep.csv", csv_text(rows))
    save_png(accuracy_figure(rows), out / "sweep.png")
    print(report)
    print(f"wrote {out / 'sweep.md'}, {out / 'sweep.csv'}, {out / 'sweep.png'} ({len(rows)} experiments)")


if __name__ == "__main__":
    main()
