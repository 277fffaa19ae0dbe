"""An edit of params.yaml, `dvc repro`, then README's commit command: the commit holds the edit and the run of it.

`git add -A` can skip an edit made within the second of the index's last
write when a tool other than git rewrote the index (DVC's autostage does).
The project keeps autostage off: `dvc repro` never writes git's index.
"""

import shutil

import yaml
from conftest import PROJECT_ROOT, dvc, run, set_params
from pages import README, read

# One quick stage that reads train_nn: what is tested is git and DVC's settings, not the training.
PIPELINE = """\
stages:
  train_nn:
    cmd: python -c "import yaml; open('ran.txt', 'w').write(str(yaml.safe_load(open('params.yaml'))['train_nn']))"
    params: [train_nn]
    outs:
      - ran.txt:
          cache: false
"""


def test_an_edit_run_and_committed_as_readme_says_is_in_the_commit(tmp_path):
    (commit_command,) = [line for line in read(README).splitlines() if line.startswith("git add ")]
    project = tmp_path / "edits"
    (project / ".dvc").mkdir(parents=True)
    for name in ("params.yaml", ".dvc/config", ".dvc/.gitignore"):
        shutil.copy2(PROJECT_ROOT / name, project / name)
    (project / "dvc.yaml").write_text(PIPELINE)
    run(project, "git", "init", "-q", "-b", "main")
    dvc(project, "repro")
    run(project, "bash", "-c", commit_command)

    set_params(project, {"train_nn.lr": 0.2})
    index = project / ".git" / "index"
    before = (index.stat().st_mtime_ns, index.read_bytes())
    dvc(project, "repro")
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before, "dvc repro wrote git's index"
    run(project, "bash", "-c", commit_command)

    lock = yaml.safe_load(run(project, "git", "show", "HEAD:dvc.lock").stdout)
    committed = yaml.safe_load(run(project, "git", "show", "HEAD:params.yaml").stdout)["train_nn"]["lr"]
    assert committed == lock["stages"]["train_nn"]["params"]["params.yaml"]["train_nn"]["lr"] == 0.2
    assert run(project, "git", "status", "--porcelain").stdout == ""
