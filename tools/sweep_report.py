"""The notebook's questions, answered from experiments: accuracy against learning rate and training length.

Reads `dvc exp show --json` (run now, or a saved copy with --from) and writes into --out (reports/):

- sweep.md: per model, train and test accuracy for each (lr, epochs or
  max_iter) tried, and the best of them;
- sweep.csv: one row per experiment, every param and metric, full precision;
- sweep.png: accuracy against the learning rate, one line per training length;
- exp_show.json: what it read, when it ran `dvc exp show` itself.

    dvc exp run -S 'train_nn.lr=0.01,0.03,0.1,0.3' -S 'train_nn.epochs=5,15'
    python -m tools.sweep_report                  # -A: also experiments of older commits
    python -m tools.sweep_report --from reports/exp_show.json

Not a pipeline stage: experiments live in git refs, not in the workspace.
"""

import argparse
import json
import subprocess
from pathlib import Path

import pandas as pd

from fmnist.errors import UserError, one_line_errors
from fmnist.figures import new_figure, save_png
from fmnist.files import write_csv, write_text

# Per model: its title, its learning rate and what sets how long it trains.
MODELS = {
    "nn": ("train_nn: torch.nn Linear + SGD (epochs of minibatches)", "train_nn.lr", "train_nn.epochs"),
    "scratch": ("train_scratch: full-batch gradient descent from scratch (iterations)",
                "train_scratch.lr", "train_scratch.max_iter"),
}
# Metrics that experiments of older commits recorded under another name.
OLD_NAMES = {"scratch.final_loss": "scratch.train_loss"}
# `dvc exp show --json` flattened by pandas: data.params.<file>.data.<key>, data.metrics.<file>.data.<key>.
VALUE_COLUMN = r"^data\.(?:params|metrics)\..+?\.data\."


def experiments_frame(exp_show):
    """Parsed `dvc exp show --json` -> one row per finished experiment: experiment, rev, its params and metrics.

    Columns are named as `dvc exp show` names them (train_nn.lr, nn.accuracy);
    queued, running and failed experiments are left out.
    """
    with_experiments = [baseline for baseline in exp_show if baseline.get("experiments")]
    if not with_experiments:
        return pd.DataFrame(columns=["experiment", "rev"])
    revs = pd.json_normalize(with_experiments, record_path=["experiments", "revs"], meta=[["experiments", "executor"]])
    state = revs["experiments.executor"].str.get("state").fillna("success")
    revs = revs[(state == "success") & revs["error"].isna()]
    values = revs.filter(regex=VALUE_COLUMN)
    values.columns = values.columns.str.replace(VALUE_COLUMN, "", regex=True)
    frame = pd.concat([revs["name"].rename("experiment"), revs["rev"].str[:7]], axis=1).join(
        values.rename(columns=OLD_NAMES))
    return frame.dropna(subset=[column for column in ("nn.accuracy", "scratch.accuracy") if column in frame])


def model_table(frame, model):
    """One model's rows: lr and training length, mean train and test accuracy, the experiments behind each row."""
    _, lr, steps = MODELS[model]
    train, test = f"{model}.train_accuracy", f"{model}.accuracy"
    table = frame.pivot_table(index=[lr, steps], values=[train, test, "experiment"],
                              aggfunc={train: "mean", test: "mean", "experiment": experiments_cell})
    return table.reset_index()[[lr, steps, train, test, "experiment"]]


def experiments_cell(names):
    return names.iloc[0] if len(names) == 1 else f"{len(names)} experiments"


def markdown_report(frame):
    """sweep.md: each model's table under its title, then the best setting of each."""
    parts, best = [], []
    for model, (title, lr, steps) in MODELS.items():
        table = model_table(frame, model)
        if table.empty:
            continue
        length = steps.split(".")[1]
        shown = table.set_axis(["lr", length, "train accuracy", "test accuracy", "experiments"], axis=1)
        parts.append(f"### {title}\n\n{shown.to_markdown(index=False, floatfmt=('g', 'g', '.4f', '.4f'))}\n")
        top = table.loc[table[f"{model}.accuracy"].idxmax()]
        best.append(f"- best {model} test accuracy: {top[f'{model}.accuracy']:.4f} with lr={top[lr]:g}, "
                    f"{length}={top[steps]:g} (train accuracy {top[f'{model}.train_accuracy']:.4f}; "
                    f"{top['experiment']})\n")
    return "\n".join(parts) + "\n" + "".join(best)


def accuracy_figure(frame):
    """One panel per model: accuracy against lr (log scale), one color per training length, solid test, dashed train."""
    figure = new_figure(figsize=(12, 4.5), dpi=100)
    for axes, (model, (title, lr, steps)) in zip(figure.subplots(1, len(MODELS)), MODELS.items(), strict=True):
        for kind, style in (("accuracy", "-o"), ("train_accuracy", "--s")):
            if frame.empty or f"{model}.{kind}" not in frame:
                continue
            curves = frame.pivot_table(index=lr, columns=steps, values=f"{model}.{kind}", aggfunc="mean")
            for number, (length, curve) in enumerate(curves.items()):
                axes.plot(curve.dropna().index, curve.dropna(), style, color=f"C{number}",
                          label=f"{'test' if kind == 'accuracy' else 'train'}, {steps.split('.')[1]}={length}")
        axes.set_xscale("log")
        tried = sorted(frame[lr].dropna().unique()) if lr in frame else []
        axes.set_xticks(tried, [f"{value:g}" for value in tried], minor=False)
        axes.minorticks_off()
        axes.set_xlabel(f"{lr} (log scale)")
        axes.set_ylabel("accuracy")
        axes.set_title(title.split(":")[0] + ": accuracy against learning rate")
        axes.grid(alpha=0.3, which="both")
        if axes.lines:
            axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def read_exp_show(path=None, all_commits=False):
    """(the text of `dvc exp show --json`, parsed): from `path`, else from running it here."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"--from {path}: {error.strerror}") from None
    else:
        command = ["dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        except FileNotFoundError:
            raise UserError("the dvc command is not on PATH; activate the project's environment") from None
        if result.returncode != 0:
            raise UserError(f"dvc exp show --json failed: {' '.join(result.stderr.split())}")
        text = result.stdout
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path or 'dvc exp show --json'} holds no JSON ({error})") from None


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="saved", metavar="FILE", help="a saved `dvc exp show --json` (default: run it)")
    parser.add_argument("-A", "--all-commits", action="store_true", help="also experiments based on older commits")
    parser.add_argument("--out", default="reports", help="folder for the report (default: reports)")
    args = parser.parse_args(argv)

    text, exp_show = read_exp_show(args.saved, args.all_commits)
    frame = experiments_frame(exp_show)
    if frame.empty:
        raise UserError("no finished experiments in `dvc exp show`; run some first, e.g. "
                        "dvc exp run -S 'train_nn.lr=0.01,0.1' (or add -A for experiments of older commits)")
    out = Path(args.out)
    report = markdown_report(frame)
    write_text(out / "sweep.md", report)
    write_csv(out / "sweep.csv", frame.sort_values("experiment").to_dict("records"))
    save_png(accuracy_figure(frame), out / "sweep.png")
    if not args.saved:
        write_text(out / "exp_show.json", text)
    print(report)
    print(f"wrote {out}/: sweep.md, sweep.csv, sweep.png ({len(frame)} experiments)")


if __name__ == "__main__":
    main()
