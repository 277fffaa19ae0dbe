"""Whole-or-nothing writes: each output is written under a temporary name, then renamed onto its own.

A reader (DVC, git, a notebook) finds the old file, the new one or none,
never half of one. The temporary name is fixed (`.name.tmp` beside the
output): one workspace runs one stage at a time (DVC locks it), so a
temporary left behind by a killed run is simply overwritten by the next.
"""

import contextlib
import csv
import json
import math
import os
import shutil
from pathlib import Path


def temporary_path(path):
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; it becomes `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path):
    """Yield an empty temporary folder beside `path`; it replaces the folder `path` only if the block succeeds."""
    path = Path(path)
    tmp = temporary_path(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, data):
    """Write JSON whole; NaN and infinity (a diverged run) become null, which every JSON reader takes."""
    write_text(path, json.dumps(_finite_or_none(data), indent=2, allow_nan=False) + "\n")


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def write_csv(path, rows):
    """Write a list of {column: value} dicts whole as CSV: a header row, floats in full, NaN as `nan`.

    The csv module, not pandas: a stage that writes a table need not load
    pandas for it. Python writes a float as its shortest exact form, and
    NaN and infinity as `nan` and `inf`, as pandas does.
    """
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
