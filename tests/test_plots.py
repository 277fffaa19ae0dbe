"""End to end: `dvc plots show` renders every plot dvc.yaml declares, offline too, and the PNGs are stable.

The offline test opens the page in headless Chromium with every network
request sent to a closed port; it is skipped, with the reason, where no
Chromium is installed.
"""

import json
import re
import shutil
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, dvc, run
from ruamel.yaml import YAML

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_TIMEOUT_S = 180
# Drawn vega charts: vega-embed renders each into an <svg class="marks">.
CHART_SVG = re.compile(r'<svg[^>]*class="marks".*?</svg>', re.S)


def declared_plots(project):
    """What dvc.yaml declares: ([title of each vega plot], [path of each image file])."""
    spec = YAML(typ="safe").load((project / "dvc.yaml").read_text())
    entries = [entry for stage in spec["stages"].values() for entry in stage.get("plots", [])]
    entries += spec.get("plots", [])
    titles, images = [], []
    for entry in entries:
        name, props = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        props = props or {}
        path = project / name
        if path.is_dir():
            images += sorted(str(f.relative_to(project)) for f in path.iterdir() if f.suffix == ".png")
        elif path.suffix == ".png":
            images.append(name)
        else:
            titles.append(props.get("title", name))
    return titles, images


def plot_page(project, *args):
    """Run `dvc plots <args>` into the folder `plots_out`; returns the page's text."""
    dvc(project, "plots", *args, "-o", "plots_out")
    return (project / "plots_out" / "index.html").read_text(encoding="utf-8")


def test_plots_show_renders_every_declared_plot(reproduced):
    titles, images = declared_plots(reproduced)
    assert len(titles) >= 5 and len(images) >= 6, (titles, images)
    page = plot_page(reproduced, "show")
    assert page.count("vegaEmbed('#") == len(titles)
    for title in titles:
        assert json.dumps(title) in page, f"plot {title!r} is missing"
    for image in images:
        assert f"<p>{image}</p>" in page, f"image {image} is missing"
        copied = reproduced / "plots_out" / "static" / ("workspace_" + image.replace("/", "_"))
        assert copied.read_bytes() == (reproduced / image).read_bytes()


def test_offline_template_matches_what_its_generator_builds():
    # Catches a hand edit, or a vl-convert upgrade that was not followed by a rebuild.
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "plots" / "offline_template.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_offline_page_loads_no_script_from_the_network(reproduced):
    page = plot_page(reproduced, "show")
    assert re.findall(r"<script[^>]*\bsrc=", page) == []
    assert "window.vegaEmbed=" in page and "{plot_divs}" not in page


def chromium():
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def render(page, profile, screenshot=None):
    """The DOM of `page` after headless Chromium ran its scripts, with no network at all."""
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        # Every http(s) request goes to a closed local port: as offline as a laptop on a train.
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        "--virtual-time-budget=20000", "--window-size=1400,4000",
    ]
    if screenshot:
        subprocess.run([chromium(), *flags, f"--screenshot={screenshot}", page.as_uri()],
                       capture_output=True, timeout=CHROMIUM_TIMEOUT_S, check=True)
    result = subprocess.run([chromium(), *flags, "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=True)
    return result.stdout


@pytest.mark.skipif(chromium() is None, reason="no Chromium on PATH (Debian: apt-get install chromium)")
def test_offline_page_draws_every_chart_in_headless_chromium(reproduced, tmp_path):
    from dvc_render.html import PAGE_HTML

    titles, _ = declared_plots(reproduced)
    (tmp_path / "dvc_default.html").write_text(PAGE_HTML)
    default_page = plot_page(reproduced, "show", "--html-template", str(tmp_path / "dvc_default.html"))
    assert "cdn.jsdelivr.net" in default_page  # the control: DVC's own page needs the network
    shutil.copytree(reproduced / "plots_out", tmp_path / "default")

    plot_page(reproduced, "show")
    screenshot = tmp_path / "offline.png"
    dom = render(reproduced / "plots_out" / "index.html", tmp_path / "profile", screenshot)
    charts = CHART_SVG.findall(dom)
    assert len(charts) == len(titles), f"{len(charts)} of {len(titles)} charts drawn; see {screenshot}"
    for chart in charts:
        assert 'class="mark-' in chart and "<path" in chart
    assert screenshot.stat().st_size > 0

    # Offline, DVC's own page stays blank: the check above would notice a blank page.
    assert CHART_SVG.findall(render(tmp_path / "default" / "index.html", tmp_path / "profile")) == []


def test_figures_are_byte_identical_when_evaluate_runs_again(reproduced):
    figures = sorted((reproduced / "metrics" / "figures").glob("*.png"))
    assert len(figures) == 6
    before = {path.name: path.read_bytes() for path in figures}
    dvc(reproduced, "repro", "--force", "--single-item", "evaluate")
    after = {path.name: path.read_bytes() for path in (reproduced / "metrics" / "figures").glob("*.png")}
    assert after == before
    assert run(reproduced, "git", "status", "--porcelain", "metrics").stdout == ""
