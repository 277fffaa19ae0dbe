"""End to end: `dvc plots show` renders every plot dvc.yaml declares, and each PNG figure beside them."""

import json
from pathlib import Path

from conftest import dvc, dvc_stages
from ruamel.yaml import YAML


def declared_plots(project):
    """What dvc.yaml declares: the names `dvc plots show` gives its plots, a folder of images counted per image."""
    spec = YAML(typ="safe").load((project / "dvc.yaml").read_text())
    entries = [entry for stage in dvc_stages(project).values() for entry in stage.get("plots", [])]
    entries += spec.get("plots", [])
    names = set()
    for entry in entries:
        name = next(iter(entry)) if isinstance(entry, dict) else entry
        path = project / name
        names |= {str(f.relative_to(project)) for f in path.glob("*.png")} if path.is_dir() else {name}
    return names


def test_plots_show_renders_every_declared_plot_and_figure(reproduced):
    declared = declared_plots(reproduced)
    assert "metrics/figures/weights_nn.png" in declared and "metrics/predictions_nn.csv" in declared
    shown = json.loads(dvc(reproduced, "plots", "show", "--json").stdout)["data"]
    rendered = {name for name, renders in shown.items() if renders}
    assert rendered == declared, (sorted(declared - rendered), sorted(rendered - declared))
    for name in declared:
        [render] = shown[name]
        if name.endswith(".png"):
            assert render["type"] == "image" and Path(render["url"]).is_file(), render
        else:
            assert render["type"] == "vega" and render["content"]["data"]["values"], name
