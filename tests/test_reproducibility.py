"""End to end: the same params and seed give bit-identical outputs, run after run and clone after clone.

Every output DVC tracks (models, metrics, reports, plots) is hashed in
dvc.lock, so an unchanged dvc.lock after a forced rerun means every byte
is the same: no wall-clock time, no unseeded randomness, no path of the
machine inside any of them.
"""

from pathlib import Path

from conftest import dvc, stages_run
from ruamel.yaml import YAML

ALL_STAGES = ["download", "flatten", "train_scratch", "train_nn", "evaluate"]


def output_hashes(project):
    """{(stage, path): md5} of every output recorded in the project's dvc.lock."""
    lock = YAML(typ="safe").load((Path(project) / "dvc.lock").read_text())
    return {
        (stage, out["path"]): out["md5"]
        for stage, entry in lock["stages"].items()
        for out in entry.get("outs", [])
    }


def test_forced_rerun_leaves_every_hash_in_dvc_lock_unchanged(reproduced):
    before = (reproduced / "dvc.lock").read_text()
    hashes = output_hashes(reproduced)
    assert {stage for stage, _ in hashes} == set(ALL_STAGES)
    assert any(path.startswith("metrics/") for _, path in hashes)  # metrics and plots are hashed too

    result = dvc(reproduced, "repro", "-f")
    assert stages_run(result.stdout) == ALL_STAGES  # every stage really ran again

    assert output_hashes(reproduced) == hashes
    assert (reproduced / "dvc.lock").read_text() == before
    assert dvc(reproduced, "status").stdout.strip() == "Data and pipelines are up to date."


def test_a_fresh_clone_reproduces_the_same_outputs(project, reproduced_template):
    """Another folder, another git repository, the same params: the same bytes everywhere."""
    dvc(project, "repro")
    assert output_hashes(project) == output_hashes(reproduced_template)
