"""The planted-bug table stays true to the code: each bug's text is where it says, each test exists, docs list them all.

Planting them and watching their tests fail is tests/planted_bugs.py's
job (a minute or two, run by hand); this checks, in milliseconds, what
would make that run meaningless.
"""

import re

import pytest
from conftest import PROJECT_ROOT
from pages import read
from planted_bugs import BUGS, markdown


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: bug.name)
def test_the_text_of_each_bug_appears_once_where_it_is_planted(bug):
    text = (PROJECT_ROOT / bug.path).read_text(encoding="utf-8")
    assert text.count(bug.old) == 1, f"{bug.path} holds the text of '{bug.name}' {text.count(bug.old)} times"
    assert bug.new != bug.old


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: bug.name)
def test_the_test_that_catches_each_bug_exists(bug):
    path, _, name = bug.test.partition("::")
    assert re.search(rf"^def {re.escape(name)}\(", (PROJECT_ROOT / path).read_text(encoding="utf-8"), re.M), bug.test


def test_docs_list_every_planted_bug():
    assert markdown(BUGS) in read("docs/testing.md"), "paste `python tests/planted_bugs.py --markdown` into it"


def test_each_bug_is_named_once():
    names = [bug.name for bug in BUGS]
    assert len(names) == len(set(names))
