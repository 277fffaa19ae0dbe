"""The same params and seed give the same bytes in another folder and another git repository.

dvc.lock hashes every output (models, metrics, reports, figures), so equal
hashes mean no clock, no path and no unseeded randomness in any of them.
"""

import yaml
from conftest import dvc


def output_hashes(project):
    """{output path: md5} of every output the project's dvc.lock records."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def test_a_run_in_another_repository_gives_every_output_the_same_bytes(project, reproduced_template):
    dvc(project, "repro")
    hashes = output_hashes(project)
    assert {"data/models/nn.safetensors", "metrics/evaluate_nn.json", "metrics/figures/weights_nn.png"} <= set(hashes)
    assert hashes == output_hashes(reproduced_template)
