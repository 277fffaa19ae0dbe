"""End to end: `dvc plots show` renders every plot dvc.yaml declares, offline too, and the PNGs are stable.

The offline test opens the page in headless Chromium with every network
request sent to a closed port; it is skipped, with the reason, where no
Chromium is installed.
"""

import http.server
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, LocalServer, dvc
from ruamel.yaml import YAML

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_TIMEOUT_S = 180
# Drawn vega charts: vega-embed renders each into an <svg class="marks">.
CHART_SVG = re.compile(r'<svg[^>]*class="marks".*?</svg>', re.S)
CHART_CANVAS = re.compile(r'<canvas[^>]*class="marks"[^>]*>')


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
    assert len(titles) >= 5 and len(images) >= 7, (titles, images)
    assert "metrics/figures/weights.png" in images  # what each model learned, one image per class
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


def render(page, profile, network=False, screenshot=None):
    """The DOM of `page` after headless Chromium ran its scripts; with no network unless `network`."""
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--virtual-time-budget=20000", "--window-size=1400,4000",
    ]
    if not network:
        # Every request, loopback included, goes to a closed local port: as offline as a laptop on a train.
        flags += ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    if screenshot:
        subprocess.run([chromium(), *flags, f"--screenshot={screenshot}", page.as_uri()],
                       capture_output=True, timeout=CHROMIUM_TIMEOUT_S, check=True)
    result = subprocess.run([chromium(), *flags, "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=True)
    return result.stdout


def drawn_charts(dom):
    """The charts vega-embed drew, as an <svg> or a <canvas> of class "marks" (vega-embed 6's default)."""
    return CHART_SVG.findall(dom) + CHART_CANVAS.findall(dom)


def vega_bundle():
    """vega, vega-lite and vega-embed in one script, as plots/offline_template.py inlines them."""
    import vl_convert

    sys.path.insert(0, str(PROJECT_ROOT / "plots"))
    try:
        from offline_template import newest_vega_lite
    finally:
        sys.path.pop(0)
    return vl_convert.javascript_bundle(vl_version=newest_vega_lite(vl_convert.get_vegalite_versions()))


class FakeCdn(http.server.BaseHTTPRequestHandler):
    """Serves the vega bundle for the first library URL of DVC's page and an empty script for the others."""

    bundle = b""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        body = b"(function () {" + self.bundle + b"})();" if "/vega@" in self.path else b"/* in the bundle */"
        self.send_response(200)
        self.send_header("Content-Type", "application/javascript")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def requires_chromium():
    """Skip where Chromium is missing, except in CI (CI=true), where .ci/run installs it: there it fails."""
    if chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium on PATH in CI; .ci/run installs it with apt-get")
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium)")


@pytest.mark.slow
def test_offline_page_draws_every_chart_in_headless_chromium(reproduced, tmp_path):
    requires_chromium()
    titles, _ = declared_plots(reproduced)
    plot_page(reproduced, "show")
    screenshot = tmp_path / "offline.png"
    dom = render(reproduced / "plots_out" / "index.html", tmp_path / "profile", screenshot=screenshot)
    charts = drawn_charts(dom)
    assert len(charts) == len(titles), f"{len(charts)} of {len(titles)} charts drawn; see {screenshot}"
    for chart in CHART_SVG.findall(dom):
        assert 'class="mark-' in chart and "<path" in chart
    assert screenshot.stat().st_size > 0


@pytest.mark.slow
def test_the_offline_check_would_see_a_page_that_needs_the_network(reproduced, tmp_path):
    """The control: DVC's own page, its CDN served from 127.0.0.1, draws every chart with the network
    and none without it. So the check above runs with the network really cut, and counts charts
    however vega-embed draws them."""
    from dvc_render.html import PAGE_HTML

    requires_chromium()
    titles, _ = declared_plots(reproduced)
    (tmp_path / "dvc_default.html").write_text(PAGE_HTML)
    default_page = plot_page(reproduced, "show", "--html-template", str(tmp_path / "dvc_default.html"))
    cdn_urls = re.findall(r'<script src="(https://cdn\.jsdelivr\.net/npm/[^"]+)"', default_page)
    assert len(cdn_urls) == 3, cdn_urls  # DVC's own page needs the network for vega, vega-lite, vega-embed

    FakeCdn.bundle = vega_bundle().encode()
    with LocalServer(FakeCdn) as cdn:
        local_page = reproduced / "plots_out" / "index.html"
        text = default_page
        for url in cdn_urls:
            text = text.replace(url, cdn.url + url.split("://", 1)[1])
        local_page.write_text(text, encoding="utf-8")
        with_network = drawn_charts(render(local_page, tmp_path / "profile", network=True))
        without_network = drawn_charts(render(local_page, tmp_path / "profile"))
    assert len(with_network) == len(titles)
    assert without_network == []


def test_figures_are_byte_identical_when_evaluate_runs_again(reproduced):
    figures = sorted((reproduced / "metrics" / "figures").glob("*.png"))
    assert len(figures) == 7
    before = {path.name: path.read_bytes() for path in figures}
    lock = (reproduced / "dvc.lock").read_text()
    ran = dvc(reproduced, "repro", "--force", "--single-item", "evaluate").stdout
    assert "Running stage 'evaluate'" in ran
    after = {path.name: path.read_bytes() for path in (reproduced / "metrics" / "figures").glob("*.png")}
    assert after == before
    assert (reproduced / "dvc.lock").read_text() == lock  # the folder's hash, the same bytes
