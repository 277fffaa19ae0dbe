"""stages/sweep.py: the grid (DVC's own -S grammar), its shards, experiment names, bad input, a shard run.

The pure functions are checked against values worked out by hand; the
command is run for real (`python -m stages.sweep`, the real `dvc`) in a
temporary copy of the project.
"""

import itertools
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, copy_project, dvc, dvc_env, fake_dvc, run

from stages import sweep
from stages.common import StageError

KEYS = sweep.read_param_keys(PROJECT_ROOT / "params.yaml")
README_GRID = ["train_nn.lr=0.01,0.03,0.1,0.3", "train_nn.epochs=5,15"]


def settings(combination):
    """('train_nn.lr=0.1', 'train_nn.epochs=5') -> {'train_nn.lr': '0.1', 'train_nn.epochs': '5'}."""
    return dict(text.split("=", 1) for text in combination)


def as_sets(combinations):
    return {frozenset(combination) for combination in combinations}


# The grid: DVC's grammar, through DVC's parser.

def test_comma_lists_are_crossed():
    grid = sweep.expand_grid(README_GRID, KEYS)
    expected = {frozenset({f"train_nn.lr={lr}", f"train_nn.epochs={epochs}"})
                for lr in ("0.01", "0.03", "0.1", "0.3") for epochs in ("5", "15")}
    assert len(grid) == 8
    assert as_sets(grid) == expected


def test_range_and_choice_sweeps_expand_as_dvc_exp_run_expands_them():
    # A comma split by hand would cut range(1,4) into 'range(1' and '4)'.
    grid = sweep.expand_grid(["train_nn.epochs=range(1,4)", "train_nn.lr=choice(0.1,1e-3)"], KEYS)
    expected = {frozenset({f"train_nn.epochs={epochs}", f"train_nn.lr={lr}"})
                for epochs in (1, 2, 3) for lr in ("0.1", "0.001")}
    assert as_sets(grid) == expected
    assert as_sets(sweep.expand_grid(["train_nn.epochs=range(2,11,4)"], KEYS)) == \
        {frozenset({"train_nn.epochs=2"}), frozenset({"train_nn.epochs=6"}), frozenset({"train_nn.epochs=10"})}


def test_a_single_value_is_a_grid_of_one_and_repeated_values_run_once():
    assert sweep.expand_grid(["train_nn.lr=0.1"], KEYS) == [("train_nn.lr=0.1",)]
    assert sweep.expand_grid(["train_nn.lr=0.1,0.1,0.2"], KEYS) == [("train_nn.lr=0.1",), ("train_nn.lr=0.2",)]


def test_combinations_are_sorted_by_key_then_value_as_numbers():
    # As text, 15 would come before 5, and 0.001 (1e-3) before 0.03 only by luck.
    grid = sweep.expand_grid(["train_nn.lr=0.3,0.03", "train_nn.epochs=5,15,10"], KEYS)
    assert [tuple(settings(combination).values()) for combination in grid] == [
        ("0.03", "5"), ("0.3", "5"), ("0.03", "10"), ("0.3", "10"), ("0.03", "15"), ("0.3", "15")]


# Shards: disjoint, covering, deterministic.

@pytest.mark.parametrize("count", range(1, 9))
def test_shards_are_disjoint_and_cover_every_combination(count):
    grid = sweep.expand_grid(README_GRID, KEYS)
    shards = [sweep.shard_of(grid, index, count) for index in range(1, count + 1)]
    everything = [combination for shard in shards for combination in shard]
    assert sorted(everything) == sorted(grid)
    assert len(set(everything)) == len(everything) == 8
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_shards_do_not_depend_on_the_order_of_the_s_options():
    forward = sweep.expand_grid(README_GRID, KEYS)
    backward = sweep.expand_grid(README_GRID[::-1], KEYS)
    for index in (1, 2, 3):
        assert as_sets(sweep.shard_of(forward, index, 3)) == as_sets(sweep.shard_of(backward, index, 3))


def test_first_shard_starts_with_the_first_combination():
    # Shards are numbered from 1, as the matrix shows them: 1/2 holds the first combination.
    grid = sweep.expand_grid(["train_nn.lr=0.1,0.2,0.3"], KEYS)
    assert sweep.shard_of(grid, 1, 2) == [("train_nn.lr=0.1",), ("train_nn.lr=0.3",)]
    assert sweep.shard_of(grid, 2, 2) == [("train_nn.lr=0.2",)]


def test_plan_is_the_same_on_every_machine():
    # Another process with another hash seed (set iteration order differs) prints the same plan.
    outputs = set()
    for seed in ("1", "2", "3"):
        result = subprocess.run(
            [sys.executable, "-m", "stages.sweep", "plan", "-S", README_GRID[1], "-S", README_GRID[0],
             "--shards", "3"],
            cwd=PROJECT_ROOT, env={**dvc_env(), "PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True)
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_plan_lists_each_shards_experiments_for_the_matrix():
    named = sweep.named_grid(README_GRID, KEYS)
    matrix = sweep.plan(named, 3)
    assert [entry["shard"] for entry in matrix["include"]] == ["1/3", "2/3", "3/3"]
    for index, entry in enumerate(matrix["include"], start=1):
        assert entry["experiments"].split() == [name for name, _ in sweep.shard_experiments(named, f"{index}/3")]
    # One line of JSON: what `echo "matrix=..." >> $GITHUB_OUTPUT` needs.
    assert "\n" not in json.dumps(matrix)


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 4/4 ", (4, 4))])
def test_shard_text_is_parsed(text, expected):
    assert sweep.parse_shard(text) == expected


# Names.

def test_names_tell_the_params_apart():
    named = dict(sweep.named_grid(README_GRID, KEYS))
    assert named["lr-0.03-epochs-15"] == ("train_nn.lr=0.03", "train_nn.epochs=15")
    assert len(named) == 8


def test_keys_that_share_a_last_part_keep_their_full_names():
    named = dict(sweep.named_grid(["train_nn.lr=0.1,0.2", "train_scratch.lr=0.3"], KEYS))
    assert set(named) == {"train_nn.lr-0.1-train_scratch.lr-0.3", "train_nn.lr-0.2-train_scratch.lr-0.3"}


def test_names_are_valid_git_refs_and_dvc_experiment_names(tmp_path):
    overrides = ["train_nn.lr=1e-3,-0.5", "train_nn.device=cpu,'a b',x..y,z.lock", "seed=range(1,3)"]
    named = sweep.named_grid(overrides, KEYS)
    assert len({name for name, _ in named}) == len(named) == 16
    run(tmp_path, "git", "init", "-q")
    for name, _ in named:
        assert "/" not in name
        assert run(tmp_path, "git", "check-ref-format", f"refs/exps/ab/cdef/{name}", check=False).returncode == 0, name


# Bad input, as the pure functions see it.

@pytest.mark.parametrize(("overrides", "message"), [
    ([], "the grid is empty"),
    (["train_nn.learning_rate=0.1"], "unknown key 'train_nn.learning_rate'"),
    (["train_nn=0.1"], "unknown key 'train_nn'"),
    (["train_nn.lr=range(1"], "does not parse"),
    (["train_nn.lr"], "does not parse"),
    (["train_nn.lr=glob(*)"], "Glob override"),
    (["~train_nn.lr"], "adding or deleting keys"),
    (["+train_nn.extra=1"], "adding or deleting keys"),
    (["other.yaml:train_nn.lr=1"], "only params.yaml"),
    (["train_nn.lr=0.1", "train_nn.lr=0.2"], "given twice"),
])
def test_bad_grids_are_rejected_with_the_value_and_what_is_allowed(overrides, message):
    with pytest.raises(StageError, match=message.replace("(", r"\(").replace("*", r"\*")):
        sweep.expand_grid(overrides, KEYS)



def test_the_dvc_internals_the_grid_reads_still_return_what_it_expects():
    """expand_grid calls three functions of DVC that are not its public API: a DVC upgrade that changes them fails here.

    requirements.txt pins DVC; this says what to check before moving the pin.
    """
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps, to_hydra_overrides

    assert to_path_overrides(["a.b=1,2", "other.yaml:c=3", "d=range(1,3)"]) == {
        "params.yaml": ["a.b=1,2", "d=range(1,3)"], "other.yaml": ["c=3"]}
    overrides = to_hydra_overrides(["a.b=1,2", "~e", "+f=1", "++g=2"])
    assert [(override.key_or_group, override.input_line) for override in overrides] == [
        ("a.b", "a.b=1,2"), ("e", "~e"), ("f", "+f=1"), ("g", "++g=2")]
    assert [(override.is_delete(), override.is_add(), override.is_force_add()) for override in overrides] == [
        (False, False, False), (True, False, False), (False, True, False), (False, False, True)]
    assert get_hydra_sweeps({"params.yaml": ["a=1,2", "c=range(1,3)", "d=choice(x,y)"]}) == [
        {"params.yaml": [f"a={a}", f"c={c}", f"d={d}"]} for a in (1, 2) for c in (1, 2) for d in ("x", "y")]

@pytest.mark.parametrize(("text", "message"), [
    ("3/2", "between 1 and 2"), ("0/2", "between 1 and 2"), ("1/0", "must be >= 1"),
    ("1", "not of the form I/N"), ("a/b", "not of the form I/N"), ("-1/2", "not of the form I/N"), ("", "I/N"),
])
def test_bad_shards_are_rejected(text, message):
    with pytest.raises(StageError, match=message):
        sweep.parse_shard(text)


def test_more_shards_than_combinations_is_rejected():
    named = sweep.named_grid(["train_nn.lr=0.1,0.2"], KEYS)
    with pytest.raises(StageError, match="only 2 combinations"):
        sweep.plan(named, 3)
    with pytest.raises(StageError, match="shard 3 of 3 is empty"):
        sweep.shard_experiments(named, "3/3")


def test_queue_status_table_is_read_by_name_and_status():
    # `dvc queue status` as DVC 3.67 prints it (README, "Sweeps").
    text = ("Task     Name        Created    Status\n"
            "1cc8109  spiry-goos  11:30 PM   Success\n"
            "76d9417  liked-tods  11:30 PM   Running\n"
            "8a1b2c3  lr-0.1      Nov 29, 2026   Failed\n\n"
            "Worker status: 1 active, 0 idle\n")
    assert sweep.queue_table(text) == [("spiry-goos", "Success"), ("liked-tods", "Running"), ("lr-0.1", "Failed")]


@pytest.mark.parametrize(("states", "done"), [
    ({"a": "Success", "b": "Failed"}, True),
    ({"a": "Success", "b": "Running"}, False),
    ({"a": "Success", "b": "Queued"}, False),
    ({"a": "Success"}, False),
    ({}, False),
])
def test_a_shard_is_finished_only_when_each_of_its_experiments_has_ended(states, done):
    assert sweep.finished(states, ["a", "b"]) is done


# The command, for real.

def sweep_command(project, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", "stages.sweep", *args], cwd=project, env=dvc_env(),
                          capture_output=True, text=True, timeout=timeout)


BAD_COMMANDS = [
    (["run", "--shard", "3/2", "-S", "train_nn.lr=0.1,0.2"], "--shard 3/2"),
    (["run", "--shard", "0/2", "-S", "train_nn.lr=0.1,0.2"], "--shard 0/2"),
    (["run", "--shard", "1/0", "-S", "train_nn.lr=0.1,0.2"], "--shard 1/0"),
    (["run", "--shard", "one", "-S", "train_nn.lr=0.1,0.2"], "--shard 'one'"),
    (["run", "--shard", "3/3", "-S", "train_nn.lr=0.1,0.2"], "only 2 combinations"),
    (["run", "--shard", "1/1", "-S", "train_nn.rate=0.1,0.2"], "unknown key 'train_nn.rate'"),
    (["run", "--shard", "1/1"], "the grid is empty"),
    (["run", "--shard", "1/1", "-S", "train_nn.lr=choice(0.1"], "does not parse"),
    (["run", "--shard", "1/1", "--grid", "train_nn.lr=0.1 'train_nn.epochs=1"], "--grid"),
    (["plan", "--shards", "0", "-S", "train_nn.lr=0.1,0.2"], "--shards 0"),
    (["push", "--shard", "2/1", "-S", "train_nn.lr=0.1"], "--shard 2/1"),
]


@pytest.mark.slow
def test_bad_input_is_one_line_and_queues_nothing(reproduced):
    for args, message in BAD_COMMANDS:
        result = sweep_command(reproduced, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, result.stderr)
    assert "No experiment tasks in the queue." in dvc(reproduced, "queue", "status").stdout
    assert dvc(reproduced, "exp", "list", "--name-only").stdout.strip() == ""


@pytest.fixture(scope="module")
def shard_run(reproduced_template, module_tmp_path):
    """A shard of three, one of whose experiments fails (lr -1 is not allowed), run with two workers."""
    project = copy_project(reproduced_template, module_tmp_path / "shard")
    result = sweep_command(project, "run", "--shard", "1/2", "-S", "train_nn.lr=-1,0.05,0.15,0.2", "-j", "2")
    return project, result


@pytest.mark.slow
def test_run_names_each_failed_experiment_on_its_own_line(shard_run):
    project, result = shard_run
    # Sorted: lr -1, 0.05, 0.15, 0.2; shard 1/2 holds -1 and 0.15 (0.1, the base's, would train nothing).
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if not line.startswith("sweep: experiment ")] == [
        "error: experiment lr--1 failed; its log: dvc queue logs lr--1"], result.stderr
    # The queue's progress, a line as each experiment ended: the failed one counted.
    assert lines[-2].startswith("sweep: experiment 2/2, failed 1, "), result.stderr
    assert "shard 1/2: 1 of 2 experiments succeeded: lr-0.15" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_run_records_exactly_the_shards_experiments_with_their_params(shard_run):
    project, _ = shard_run
    assert dvc(project, "exp", "list", "--name-only").stdout.split() == ["lr-0.15"]
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    lrs = {rev["name"]: rev["data"]["params"]["params.yaml"]["data"]["train_nn"]["lr"]
           for baseline in shown for group in baseline.get("experiments") or [] for rev in group["revs"]
           if (group.get("executor") or {}).get("state") in (None, "success")}
    assert lrs == {"lr-0.15": 0.15}
    # The failed one's log says why, in the stage's own one line.
    assert "train_nn.lr" in dvc(project, "queue", "logs", "lr--1").stdout


@pytest.mark.slow
def test_running_the_same_shard_again_is_refused_and_queues_nothing(shard_run):
    project, _ = shard_run
    result = sweep_command(project, "run", "--shard", "1/2", "-S", "train_nn.lr=-1,0.05,0.15,0.2")
    assert result.returncode == 2
    assert result.stderr.startswith("error: experiment ") and "already exists" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    status = dvc(project, "queue", "status").stdout
    assert "Queued" not in status and "Running" not in status


@pytest.mark.slow
def test_each_queued_experiment_trains_with_one_torch_thread(shard_run):
    project, _ = shard_run
    log = dvc(project, "queue", "logs", "lr-0.15").stdout
    assert "(1 threads" in log.split("Running stage 'train_nn'")[1], log


def test_combinations_match_itertools_product_for_plain_lists():
    lrs, epochs, seeds = ["0.01", "0.1"], ["1", "2", "3"], ["0", "7"]
    grid = sweep.expand_grid([f"train_nn.lr={','.join(lrs)}", f"train_nn.epochs={','.join(epochs)}",
                              f"seed={','.join(seeds)}"], KEYS)
    expected = {frozenset({f"train_nn.lr={a}", f"train_nn.epochs={b}", f"seed={c}"})
                for a, b, c in itertools.product(lrs, epochs, seeds)}
    assert as_sets(grid) == expected and len(grid) == 12


def test_starting_the_queue_returns_while_its_workers_still_hold_its_output(monkeypatch, tmp_path):
    # Like `dvc queue start`: a worker inherits stdout and stderr and outlives the command.
    finished = tmp_path / "worker-finished"
    bin_folder = fake_dvc(tmp_path, f"echo started\n(sleep 30; touch {finished}) &\necho $! > {tmp_path / 'worker'}")
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    sweep._dvc_starting_daemons("queue", "start", "--jobs", "2")
    try:
        assert not finished.exists(), "the sweep waited for the worker to end"
    finally:
        os.kill(int((tmp_path / "worker").read_text()), signal.SIGTERM)


def test_a_queue_that_cannot_start_is_one_line_with_what_dvc_said(monkeypatch, tmp_path):
    bin_folder = fake_dvc(tmp_path, "echo 'ERROR: unexpected error' >&2\necho '  - celery broker' >&2\nexit 255")
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(StageError) as raised:
        sweep._dvc_starting_daemons("queue", "start", "--jobs", "2")
    assert str(raised.value) == "dvc queue start --jobs 2 failed: ERROR: unexpected error - celery broker"


def test_waiting_shows_experiments_done_of_total_and_failed_so_far(monkeypatch):
    """One line each time an experiment ends (stderr is a log here), none while nothing changes."""
    import io

    tables = iter([
        "Task Name Created Status\n1 a 10:00 Running\n2 b 10:00 Queued\n3 c 10:00 Queued\n",
        "Task Name Created Status\n1 a 10:00 Success\n2 b 10:00 Running\n3 c 10:00 Queued\n",
        "Task Name Created Status\n1 a 10:00 Success\n2 b 10:00 Running\n3 c 10:00 Queued\n",
        "Task Name Created Status\n1 a 10:00 Success\n2 b 10:00 Failed\n3 c 10:00 Success\n",
    ])
    monkeypatch.setattr(sweep, "_dvc", lambda *args, **kwargs: subprocess.CompletedProcess(args, 0, next(tables), ""))
    stream = io.StringIO()
    states = sweep.wait_for(["a", "b", "c"], poll_s=0, stream=stream)
    assert states == {"a": "Success", "b": "Failed", "c": "Success"}
    lines = stream.getvalue().splitlines()
    assert [line.split(", ")[:2] for line in lines] == [["sweep: experiment 1/3", "failed 0"],
                                                       ["sweep: experiment 3/3", "failed 1"]]
