"""Every relative link of README and docs/ leads somewhere, and every page of docs/ can be reached from README."""

import re
from pathlib import PurePosixPath

import pytest
from conftest import PROJECT_ROOT
from pages import PAGES, README, read

LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCED = re.compile(r"^```.*?^```", re.M | re.S)


def anchors(markdown):
    """The anchors GitHub gives the headings of `markdown`: lower case, punctuation dropped, a repeat numbered."""
    seen, found = {}, set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCED.sub("", markdown), re.M):
        text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
        base = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def relative_links(page):
    """[(path relative to the project root, anchor or "")] of `page`'s links outside code."""
    prose = re.sub(r"`[^`\n]*`", "", FENCED.sub("", read(page)))
    links = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target):  # https:, mailto: are not checked offline
            continue
        path, _, anchor = target.partition("#")
        parts = []
        for part in (PurePosixPath(page).parent / path).parts if path else PurePosixPath(page).parts:
            if part == "..":
                parts.pop()
            elif part != ".":
                parts.append(part)
        links.append(("/".join(parts), anchor))
    return links


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_and_anchor_resolves(page):
    broken = [f"{target}#{anchor}" for target, anchor in relative_links(page)
              if not (PROJECT_ROOT / target).exists()
              or (anchor and target.endswith(".md") and anchor not in anchors(read(target)))]
    assert broken == []


def test_every_page_is_reachable_from_readme():
    reached, frontier = {README}, [README]
    while frontier:
        for target, _ in relative_links(frontier.pop()):
            if target in PAGES and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert set(PAGES) - reached == set()
