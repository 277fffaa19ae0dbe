"""README.md and the pages of docs/ as the tests read them: pages, sections, console sessions."""

import re

from conftest import PROJECT_ROOT

README = "README.md"
README_PT_BR = "README.pt-BR.md"  # the same front door in Portuguese
PAGES = [README, README_PT_BR, *sorted(f"docs/{path.name}" for path in (PROJECT_ROOT / "docs").glob("*.md"))]


def read(page, root=PROJECT_ROOT):
    """The Markdown text of `page`, a path relative to the project root ("README.md", "docs/speed.md")."""
    return (root / page).read_text(encoding="utf-8")


def section(markdown, title):
    """The text from the heading `title` ("## Sweeps") to the next heading of the same level or higher."""
    level = len(re.match(r"#+", title).group())
    start = markdown.index(f"\n{title}\n") + 1
    following = re.search(rf"^#{{1,{level}}} ", markdown[start + len(title):], re.M)
    return markdown[start: start + len(title) + following.start()] if following else markdown[start:]


def console_sessions(markdown):
    """[(command, [output lines])] of the ```console blocks in `markdown`."""
    sessions = []
    for block in markdown.split("```console\n")[1:]:
        for line in block.split("\n```", 1)[0].splitlines():
            if line.startswith("$ "):
                sessions.append((line[2:], []))
            else:
                sessions[-1][1].append(line)
    return sessions


def same_to_the_digits_shown(printed, shown, units=2):
    """True when `printed` is `shown`, or both are numbers at most `units` of `shown`'s last digit apart.

    A float from another CPU can differ in its last bits, which may move
    the last digit that DVC prints (README promises the digits that hold).
    """
    if printed == shown:
        return True
    try:
        decimals = len(shown.split(".")[1]) if "." in shown else 0
        return abs(float(printed) - float(shown)) <= units * 10.0 ** -decimals + 1e-12
    except ValueError:
        return False
