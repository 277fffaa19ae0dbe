"""A sweep split into shards, so that several machines (CI runners) run one part each.

    python -m stages.sweep plan  -S 'train_nn.lr=0.01,0.1' -S 'train_nn.epochs=5,15' --shards 2
    python -m stages.sweep run   --shard 1/2 -S 'train_nn.lr=0.01,0.1' -S 'train_nn.epochs=5,15' [-j 2]
    python -m stages.sweep push  --shard 1/2 -S ... [--git-remote origin]
    python -m stages.sweep pull  -S ... [--git-remote origin]
    python -m stages.sweep push-runs

`-S` takes what `dvc exp run -S` takes (comma lists, `range(...)`,
`choice(...)`), expanded by DVC's own parser. `--grid 'A B'` is the same
as `-S A -S B` (split like a shell line), for a CI input held in one
variable. Every machine given the same grid computes the same shards:
the combinations are sorted canonically and dealt out round-robin, so
the shards are disjoint and together hold every combination.

- plan: the GitHub Actions matrix, one line of JSON: {"include": [{"shard": "1/2", ...}, ...]}.
- run: queue the shard's experiments on the current commit, run them with
  `dvc queue start -j J` (J: the number of cores by default), wait, and
  name each failed one.
- push: the shard's finished experiments and the run-cache to the Git
  remote and the default DVC remote.
- pull: every experiment of the grid that the Git remote holds, so that
  `python -m stages.sweep_report` tables them all; names each missing one.
- push-runs: `dvc push --run-cache`, and the `cache: false` outputs (the
  metrics and plots git holds) that its runs name, which DVC leaves behind.

Not a pipeline stage: it drives `dvc` from outside, like a person would.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fmnist.errors import UserError, one_line_errors
from tools.progress_shim import progress

PARAMS_FILE = "params.yaml"
POLL_INTERVAL_S = 2.0
# Characters kept in an experiment name: safe in a git ref, a file name and a shell word.
NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def parse_shard(text):
    """'I/N' -> (I, N), 1 <= I <= N; anything else is a UserError naming the value."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UserError(f"--shard {text!r} is not of the form I/N (e.g. 1/4: the first of 4 shards)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise UserError(f"--shard {text}: the number of shards must be >= 1")
    if not 1 <= index <= count:
        raise UserError(f"--shard {text}: the shard number must be between 1 and {count}")
    return index, count


def param_keys(params):
    """The dotted keys of every leaf of params.yaml's content: {'seed', 'train_nn.lr', ...}."""
    keys = set()
    for key, value in params.items():
        if isinstance(value, dict):
            keys |= {f"{key}.{inner}" for inner in param_keys(value)}
        else:
            keys.add(str(key))
    return keys


def read_param_keys(path=PARAMS_FILE):
    """The dotted keys of params.yaml, read as the stages read it (YAML 1.2 numbers)."""
    from fmnist.params import parse_yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} not found; run this in the project's root folder") from None
    return param_keys(parse_yaml(text, path) or {})


def _parse_overrides(overrides):
    """DVC's -S values -> {params file: [hydra Override]}, through DVC's and Hydra's own parsers."""
    # DVC has no public interface for this: tests/test_sweep.py pins what these return
    # (test_the_dvc_internals_the_grid_reads_still_return_what_it_expects).
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import to_hydra_overrides
    from hydra.errors import HydraException

    parsed = {}
    for path, texts in to_path_overrides(overrides).items():
        for text in texts:
            try:
                parsed.setdefault(path, []).extend(to_hydra_overrides([text]))
            except HydraException as error:
                problem = " ".join(str(error).split("See https://")[0].split())
                raise UserError(f"-S {text!r} does not parse ({problem}); "
                                 "allowed: key=value, key=a,b,c, key=range(start,stop[,step]), "
                                 "key=choice(a,b)") from None
    return parsed


def expand_grid(overrides, known_keys):
    """-S values -> every combination, sorted canonically, duplicates dropped.

    A combination is a tuple of 'key=value' strings, one per swept key,
    as `dvc exp run -S` would apply them (DVC's expansion of comma lists,
    range() and choice()). Keys must be leaves of params.yaml (`known_keys`).
    """
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import get_hydra_sweeps

    if not overrides:
        raise UserError("no -S given: the grid is empty; e.g. -S 'train_nn.lr=0.01,0.1'")
    parsed = _parse_overrides(overrides)
    other_files = sorted(set(parsed) - {PARAMS_FILE})
    if other_files:
        raise UserError(f"-S for {other_files[0]}: only {PARAMS_FILE} is swept here")
    for override in parsed[PARAMS_FILE]:
        key = override.key_or_group
        if override.is_delete() or override.is_add() or override.is_force_add():
            raise UserError(f"-S {override.input_line!r}: adding or deleting keys is not a sweep; "
                             f"give key=values for keys of {PARAMS_FILE}")
        if key not in known_keys:
            raise UserError(f"-S {override.input_line!r}: unknown key {key!r}; allowed: "
                             + ", ".join(sorted(known_keys)))
    keys = [override.key_or_group for override in parsed[PARAMS_FILE]]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise UserError(f"-S: key {repeated[0]!r} is given twice; give all its values in one -S")
    try:
        sweeps = get_hydra_sweeps({PARAMS_FILE: [override.input_line for override in parsed[PARAMS_FILE]]})
    except InvalidArgumentError as error:
        raise UserError(f"-S: {error}") from None
    combinations = {tuple(sweep[PARAMS_FILE]): None for sweep in sweeps}
    if not combinations or any(not combination for combination in combinations):
        raise UserError("the grid is empty: every -S must give at least one value")
    return sorted(combinations, key=_canonical)


def _split_override(text):
    key, _, value = text.partition("=")
    return key, value


def _canonical(combination):
    # By key name, then by value: numbers by size (0.01 < 0.03 < 0.1), others as text.
    # The order of the -S options does not matter, only the set of values.
    def value_key(text):
        try:
            return (0, float(text), text)
        except ValueError:
            return (1, 0.0, text)

    pairs = sorted(_split_override(text) for text in combination)
    return [(key, value_key(value)) for key, value in pairs]


def shard_of(combinations, index, count):
    """Combinations dealt round-robin into `count` shards; shard `index` (1-based).

    Round-robin rather than contiguous blocks: a grid sorted by lr then
    epochs spreads its long runs (many epochs) over every shard.
    """
    return combinations[index - 1::count]


def experiment_name(combination, grid_keys):
    """('train_nn.lr=0.03', 'train_nn.epochs=15') -> 'lr-0.03-epochs-15'.

    Keys appear in the order of `grid_keys`, by their last part unless two
    swept keys share it (train_nn.lr and train_scratch.lr keep their full
    names). Characters that git refs or shells dislike become '_'.
    """
    values = dict(_split_override(text) for text in combination)
    short = {}
    for key in grid_keys:
        last = key.rsplit(".", 1)[-1]
        clashes = sum(other.rsplit(".", 1)[-1] == last for other in grid_keys)
        short[key] = last if clashes == 1 else key
    name = "-".join(f"{short[key]}-{values[key]}" for key in grid_keys if key in values)
    name = NAME_UNSAFE.sub("_", name)
    # git refuses '..', a trailing '.' and a trailing '.lock'.
    name = re.sub(r"\.{2,}", "_", name)
    return name + "_" if name.endswith((".", ".lock")) else name


def named_grid(overrides, known_keys):
    """-S values -> [(experiment name, combination)], canonically sorted; names are unique."""
    combinations = expand_grid(overrides, known_keys)
    # Each combination lists its keys in the order of the -S options.
    keys = [_split_override(text)[0] for text in combinations[0]]
    named = [(experiment_name(combination, keys), combination) for combination in combinations]
    seen = {}
    for name, combination in named:
        if name in seen:
            raise UserError(f"two settings get the same experiment name {name!r}: "
                             f"{' '.join(seen[name])} and {' '.join(combination)}")
        seen[name] = combination
    return named


def plan(named, shards):
    """The GitHub Actions matrix: {"include": [{"shard": "I/N", "experiments": "name name"}, ...]}."""
    if shards < 1:
        raise UserError(f"--shards {shards}: the number of shards must be >= 1")
    if shards > len(named):
        raise UserError(f"--shards {shards}: the grid has only {len(named)} combinations; "
                         f"use 1 to {len(named)} shards")
    return {"include": [
        {"shard": f"{index}/{shards}",
         "experiments": " ".join(name for name, _ in shard_of(named, index, shards))}
        for index in range(1, shards + 1)
    ]}


def shard_experiments(named, shard_text):
    """The [(name, combination)] of shard 'I/N'; a shard left empty by a small grid is an error."""
    index, count = parse_shard(shard_text)
    part = shard_of(named, index, count)
    if not part:
        raise UserError(f"--shard {shard_text}: the grid has only {len(named)} combinations, "
                         f"so shard {index} of {count} is empty; use at most {len(named)} shards")
    return part


def queue_table(status_text):
    """`dvc queue status` -> [(name, status)] of its task rows (name 'None' when unnamed)."""
    rows = []
    for line in status_text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[-1] in ("Queued", "Running", "Success", "Failed"):
            rows.append((fields[1], fields[-1]))
    return rows


def _dvc(*args, check=True):
    try:
        result = subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UserError("the dvc command is not on PATH; activate the project's environment") from None
    if check and result.returncode != 0:
        problem = " ".join((result.stderr or result.stdout).split())
        raise UserError(f"dvc {' '.join(args)} failed: {problem}")
    return result


def _dvc_starting_daemons(*args):
    """Run a dvc command that leaves daemons behind (`dvc queue start`: its workers).

    Its output goes to a file: the workers inherit the command's stdout,
    and a pipe they hold open would keep a reader waiting until the last
    worker exits, which an idle worker may never do.
    """
    with tempfile.TemporaryFile("w+") as log:
        try:
            result = subprocess.run(["dvc", *args], stdout=log, stderr=subprocess.STDOUT, check=False)
        except FileNotFoundError:
            raise UserError("the dvc command is not on PATH; activate the project's environment") from None
        if result.returncode != 0:
            log.seek(0)
            raise UserError(f"dvc {' '.join(args)} failed: {' '.join(log.read().split())}")


def local_experiments():
    """Names of the experiments based on the current commit."""
    return set(_dvc("exp", "list", "--name-only").stdout.split())


def check_nothing_in_the_way(names):
    """Refuse before queueing anything: other queued work, or names taken by earlier runs."""
    table = queue_table(_dvc("queue", "status").stdout)
    busy = [name for name, status in table if status in ("Queued", "Running")]
    if busy:
        raise UserError(f"the experiment queue already holds queued or running tasks ({', '.join(busy)}); "
                         "let them finish or remove them (dvc queue remove --queued) first")
    taken = sorted((set(names) & local_experiments()) | {name for name, _ in table if name in names})
    if taken:
        raise UserError(f"experiment {taken[0]} already exists here (or in dvc queue status); "
                         f"remove it first: dvc exp remove {' '.join(taken)}; dvc queue remove --success --failed")


def queue(experiments):
    """`dvc exp run --queue` for each (name, combination); all queued, or none (removed again)."""
    queued = []
    try:
        for name, combination in experiments:
            _dvc("exp", "run", "--queue", "--name", name, *(arg for text in combination for arg in ("-S", text)))
            queued.append(name)
    except BaseException:
        if queued:
            _dvc("queue", "remove", *queued, check=False)
        raise


def finished(states, names):
    """True when every one of `names` has ended ('Success' or 'Failed') in `states` ({name: status}).

    A name not listed yet is not finished: `dvc queue status` may not show
    a task in the moment between queueing and a worker taking it.
    """
    return all(states.get(name) in ("Success", "Failed") for name in names)


def wait_for(names, poll_s=POLL_INTERVAL_S, stream=None):
    """Poll `dvc queue status` until every one of `names` has ended; {name: final status}.

    Shows the experiments done of the total and the failed ones so far on
    `stream` (stderr): a bar on a terminal, else a line whenever one ends.
    """
    with progress(len(names), "sweep", "experiment", stream=stream, interval_s=0) as shown:
        done = 0
        while True:
            states = {name: status for name, status in queue_table(_dvc("queue", "status").stdout) if name in names}
            ended = sum(status in ("Success", "Failed") for status in states.values())
            if ended > done:
                shown.step(ended - done, failed=sum(status == "Failed" for status in states.values()))
                done = ended
            if finished(states, names):
                return states
            time.sleep(poll_s)


def run_shard(experiments, jobs):
    """Queue, start `jobs` workers, wait: {name: 'Success' | 'Failed'}."""
    names = [name for name, _ in experiments]
    check_nothing_in_the_way(names)
    queue(experiments)
    _dvc_starting_daemons("queue", "start", "--jobs", str(jobs))
    return wait_for(names)


def _grid_arguments(parser):
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], metavar="KEY=VALUES",
                        help="a param and its values, as `dvc exp run -S` takes them; repeat for a cross product")
    parser.add_argument("--grid", default="",
                        help="several -S values in one string, split like a shell line (for a CI input)")
    parser.add_argument("--params", default=PARAMS_FILE, help="the params file whose keys may be swept")


def _named_grid(args):
    try:
        overrides = [*args.overrides, *shlex.split(args.grid)]
    except ValueError as error:
        raise UserError(f"--grid {args.grid!r} does not split like a shell line ({error})") from None
    return named_grid(overrides, read_param_keys(args.params))


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def push_runs():
    """`dvc push --run-cache`, then every output that the run-cache's entries name; returns how many of those went.

    `dvc push --run-cache` sends the run-cache's entries and the outputs of
    the workspace's dvc.lock, but never a `cache: false` output (the metrics
    and plots that git holds): another clone that restores one of those runs
    would lack them and train again. DVC saves them in its cache for each
    entry; this sends them too.
    """
    from dvc.repo import Repo

    _dvc("push", "--run-cache")
    with Repo() as repo:
        entries = [(entry.parent.name, entry.name) for entry in Path(repo.stage_cache.cache_dir).glob("*/*/*")]
        return sum(len(repo.cloud.push(objects).transferred)
                   for objects in repo.stage_cache.get_used_objs(entries).values())


@one_line_errors
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan_parser = commands.add_parser("plan", help="print the GitHub Actions matrix of the shards as JSON")
    _grid_arguments(plan_parser)
    plan_parser.add_argument("--shards", type=int, required=True, help="number of shards (machines)")
    run_parser = commands.add_parser("run", help="run one shard as queued DVC experiments and wait")
    _grid_arguments(run_parser)
    run_parser.add_argument("--shard", required=True, help="I/N: shard I of N (1-based)")
    run_parser.add_argument("-j", "--jobs", type=_positive, default=os.cpu_count() or 1,
                            help="queue workers (default: the number of cores)")
    push_parser = commands.add_parser("push", help="push one shard's experiments and the run-cache")
    _grid_arguments(push_parser)
    push_parser.add_argument("--shard", required=True, help="I/N: shard I of N (1-based)")
    push_parser.add_argument("--git-remote", default="origin")
    commands.add_parser("push-runs", help="dvc push --run-cache, with the `cache: false` outputs its runs name")
    pull_parser = commands.add_parser("pull", help="pull every experiment of the grid from the Git remote")
    _grid_arguments(pull_parser)
    pull_parser.add_argument("--git-remote", default="origin")
    args = parser.parse_args(argv)

    if args.command == "push-runs":
        print(f"pushed {push_runs()} outputs of the run-cache's runs that git holds")
        return
    named = _named_grid(args)
    if args.command == "plan":
        print(json.dumps(plan(named, args.shards)))
    elif args.command == "run":
        experiments = shard_experiments(named, args.shard)
        states = run_shard(experiments, args.jobs)
        failed = [name for name, _ in experiments if states[name] != "Success"]
        done = [name for name, _ in experiments if states[name] == "Success"]
        print(f"shard {args.shard}: {len(done)} of {len(experiments)} experiments succeeded: {' '.join(done)}")
        for name in failed:
            print(f"error: experiment {name} failed; its log: dvc queue logs {name}", file=sys.stderr)
        if failed:
            sys.exit(1)
    elif args.command == "push":
        names = [name for name, _ in shard_experiments(named, args.shard)]
        present = local_experiments()
        found = [name for name in names if name in present]
        if found:
            _dvc("exp", "push", "--run-cache", args.git_remote, *found)
        # Also the run-cache of stages no experiment recorded (the base commit's).
        push_runs()
        print(f"pushed {len(found)} experiments to {args.git_remote}: {' '.join(found)}")
        missing = [name for name in names if name not in present]
        if missing:
            raise UserError(f"not pushed, not found here (failed or not run): {' '.join(missing)}")
    else:
        names = [name for name, _ in named]
        remote = set(_dvc("exp", "list", "--name-only", args.git_remote).stdout.split())
        found = [name for name in names if name in remote]
        if found:
            _dvc("exp", "pull", "--run-cache", args.git_remote, *found)
        print(f"pulled {len(found)} of {len(names)} experiments from {args.git_remote}: {' '.join(found)}")
        missing = [name for name in names if name not in remote]
        if missing:
            raise UserError(f"not on {args.git_remote} (their shard failed or has not pushed yet): "
                             + " ".join(missing))


if __name__ == "__main__":
    main()
