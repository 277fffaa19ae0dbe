"""A commit made as README says holds the params that ran: an edit of params.yaml is never left out.

An editor saves a params.yaml edit in place, often at the same size
(lr 0.1 -> 0.2). git tells such an edit from the committed file by its
timestamp, to the second; for an edit made within the same second as
the one before it, git relies on its own care when it writes its index
(an entry as new as the index is checked by content). A tool that
rewrites the index without that care (DVC's autostage does, through
dulwich) leaves the entry looking committed when it is not, and
`git add -A` skips the edit. So the project keeps DVC's default,
autostage off: DVC never writes git's index, and says what to add.
"""

import re
import shutil
import textwrap

import yaml
from conftest import PROJECT_ROOT, dvc, run
from pages import README, read, section

EDITS = 20
RATES = ["0.2", "0.3", "0.1"]  # the same length as params.yaml's 0.1: the file keeps its size
# One quick stage that reads train_nn: an edit, its run and its commit take under a second, as
# two edits within a second need. What is tested is git and DVC's settings, not the training.
PIPELINE = textwrap.dedent("""\
    stages:
      train_nn:
        cmd: >-
          python -c "import json, yaml;
          json.dump(yaml.safe_load(open('params.yaml'))['train_nn'], open('ran.json', 'w'))"
        params:
          - train_nn
        outs:
          - ran.json:
              cache: false
    """)


def readmes_commit_command():
    """The `git add ... && git commit ...` line of README's "Change one thing and compare"."""
    commands = re.findall(r"^git add .*$", section(read(README), "## Change one thing and compare"), re.M)
    assert len(commands) == 1, commands
    return commands[0]


def edit_in_place(path, rate):
    """Overwrite train_nn.lr's value in params.yaml at its offset, as an editor saves a same-size edit."""
    text = path.read_text()
    value = re.search(r"^train_nn:\n(?:[ #].*\n)*?  lr: (\S+)", text, re.M)
    assert len(value.group(1)) == len(rate), value.group(1)
    with open(path, "r+b") as f:
        f.seek(len(text[:value.start(1)].encode()))
        f.write(rate.encode())


def test_every_commit_holds_the_params_its_dvc_lock_ran(tmp_path):
    """20 times: a same-size edit, `dvc repro`, README's commit; each commit's params are those its dvc.lock ran.

    A lost edit needs two edits within one second, which a loaded machine
    may not reach; that `dvc repro` leaves git's index alone is checked each time.
    """
    project = tmp_path / "edits"
    (project / ".dvc").mkdir(parents=True)
    for name in ("params.yaml", ".dvc/config", ".dvc/.gitignore"):
        shutil.copy2(PROJECT_ROOT / name, project / name)
    (project / "dvc.yaml").write_text(PIPELINE)
    run(project, "git", "init", "-q", "-b", "main")
    dvc(project, "repro")
    run(project, "bash", "-c", readmes_commit_command())

    for edit in range(EDITS):
        rate = RATES[edit % len(RATES)]
        edit_in_place(project / "params.yaml", rate)
        index = project / ".git" / "index"
        before = (index.stat().st_mtime_ns, index.read_bytes())
        dvc(project, "repro")
        # The cause, checked whatever the timing: only git writes git's index.
        assert (index.stat().st_mtime_ns, index.read_bytes()) == before, f"edit {edit}: dvc repro wrote git's index"
        run(project, "bash", "-c", readmes_commit_command())
        committed = yaml.safe_load(run(project, "git", "show", "HEAD:params.yaml").stdout)["train_nn"]["lr"]
        lock = yaml.safe_load(run(project, "git", "show", "HEAD:dvc.lock").stdout)
        ran_with = lock["stages"]["train_nn"]["params"]["params.yaml"]["train_nn"]["lr"]
        assert committed == ran_with == float(rate), f"edit {edit}: lr {rate}, committed {committed}, ran {ran_with}"
    assert run(project, "git", "status", "--porcelain").stdout == ""
