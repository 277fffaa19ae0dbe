"""README is the front door and docs/ the rest: every relative link and anchor resolves, every page is reachable."""

import re
from pathlib import PurePosixPath

import pytest
from conftest import PROJECT_ROOT
from pages import PAGES, README, read, section

README_LIMIT = 12 * 1024  # bytes: a page a newcomer reads in five minutes
# bytes, every page of docs/ together: what a reader needs, not a lab diary
DOCS_LIMIT = 55 * 1024
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def outside_code(markdown):
    """`markdown` without its fenced code blocks and inline code spans."""
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", prose)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown):
    """Every anchor the headings of `markdown` define, repeated headings numbered as GitHub numbers them."""
    seen, found = {}, set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S), re.M):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def relative_links(page, root=PROJECT_ROOT):
    """[(target path relative to the project root, anchor or None)] of the page's relative links."""
    links = []
    for target in LINK.findall(outside_code(read(page, root))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check offline
            continue
        path, _, anchor = target.partition("#")
        resolved = str(PurePosixPath(page).parent / path) if path else page
        links.append((normalize(resolved), anchor or None))
    return links


def normalize(path):
    parts = []
    for part in PurePosixPath(path).parts:
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def broken_links(page, root=PROJECT_ROOT):
    problems = []
    for target, anchor in relative_links(page, root):
        if not (root / target).exists():
            problems.append(f"{page}: {target} does not exist")
        elif anchor and target.endswith(".md") and anchor not in anchors(read(target, root)):
            problems.append(f"{page}: {target} has no heading for #{anchor}")
    return problems


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_every_docs_page_is_reachable_from_readme():
    reached, frontier = {README}, [README]
    while frontier:
        for target, _ in relative_links(frontier.pop()):
            if target.endswith(".md") and target not in reached and (PROJECT_ROOT / target).exists():
                reached.add(target)
                frontier.append(target)
    assert set(PAGES) - reached == set()


def test_readme_links_every_docs_page_itself():
    linked = {target for target, _ in relative_links(README)}
    assert set(PAGES) - {README} <= linked


def test_readme_is_a_front_door():
    size = len(read(README).encode("utf-8"))
    assert size <= README_LIMIT, f"README.md is {size} bytes; move a section to docs/ (at most {README_LIMIT})"


def test_the_docs_stay_what_a_reader_needs():
    sizes = {page: len(read(page).encode("utf-8")) for page in PAGES if page.startswith("docs/")}
    total = sum(sizes.values())
    assert total <= DOCS_LIMIT, f"docs/ holds {total} bytes (at most {DOCS_LIMIT}): {sorted(sizes.items())}"


def test_anchors_are_githubs():
    assert slug("CI (GitHub Actions)") == "ci-github-actions"
    assert slug("What the notebook asked") == "what-the-notebook-asked"
    assert slug("`dvc repro`, clean") == "dvc-repro-clean"
    assert anchors("# A\n## B\n```\n# not a heading\n```\n## B\n") == {"a", "b", "b-1"}


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Here\n\n[ok](#here) [up](../README.md)\n"
                                            "[gone](b.md) [no anchor](#there) `[code](nowhere.md)`\n")
    (tmp_path / "README.md").write_text("# R\n")
    assert broken_links("docs/a.md", tmp_path) == ["docs/a.md: docs/b.md does not exist",
                                         "docs/a.md: docs/a.md has no heading for #there"]


def test_ci_runs_the_readmes_two_commands_test_command():
    """.ci/run ends with README's test command, word for word: what CI passes is what README promises."""
    quick_start = section(read(README), "## Quick start")
    commands = re.findall(r"```bash\n(.+?)\n```", quick_start)
    assert len(commands) == 2 and commands[0].endswith("&& dvc repro") and "pytest" in commands[1], commands
    ci_lines = (PROJECT_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == commands[1]
