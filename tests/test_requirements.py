"""requirements.txt and requirements-dev.txt install as README says: `pip install --require-hashes` takes them.

pip refuses a whole lock with one entry unpinned or without hashes, two
pins of a package at different versions (README installs both locks
together), and on macOS or Windows a CUDA package, which has no wheel
there. A lock not made again after its .in file changed misses what the
.in asks for.
"""

import re

import pytest
from conftest import PROJECT_ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCKS = {"requirements.in": "requirements.txt", "requirements-dev.in": "requirements-dev.txt"}
CUDA = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")  # PyPI's torch for Linux pulls these in
OTHER_PLATFORMS = [
    {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix", "platform_machine": "arm64"},
    {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"},
]


def entries(lock):
    """[(Requirement, number of hashes)] of each package line of a lock, its continued lines joined."""
    text = (PROJECT_ROOT / lock).read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.strip() and not line[0].isspace() and not line.startswith(("#", "-")):
            requirement, *hashes = line.split(" --hash=")
            found.append((Requirement(requirement), len(hashes)))
    return found


def versions(lock):
    """{package: {versions pinned}}; a package may have one entry per platform marker."""
    found = {}
    for requirement, _ in entries(lock):
        found.setdefault(canonicalize_name(requirement.name), set()).add(str(requirement.specifier))
    return found


@pytest.mark.parametrize("source", LOCKS)
def test_each_lock_holds_every_package_of_its_input_at_a_version_it_allows(source):
    locked = versions(LOCKS[source])
    lines = [line.split(" #")[0].strip() for line in (PROJECT_ROOT / source).read_text().splitlines()]
    asked = [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]
    assert asked
    assert {str(requirement): locked.get(canonicalize_name(requirement.name)) for requirement in asked
            if not locked.get(canonicalize_name(requirement.name)) or not all(
                requirement.specifier.contains(pin.removeprefix("=="), prereleases=True)
                for pin in locked[canonicalize_name(requirement.name)])} == {}


@pytest.mark.parametrize("lock", LOCKS.values())
def test_every_package_is_pinned_to_one_version_with_its_hashes(lock):
    found = entries(lock)
    assert len(found) > 50, "not a full lock"
    assert [str(requirement) for requirement, hashes in found
            if hashes == 0 or not str(requirement.specifier).startswith("==")] == []


@pytest.mark.parametrize("lock", LOCKS.values())
def test_cuda_packages_install_on_linux_only(lock):
    assert [str(requirement) for requirement, _ in entries(lock) if CUDA.match(canonicalize_name(requirement.name))
            and (not requirement.marker or any(map(requirement.marker.evaluate, OTHER_PLATFORMS)))] == []


def test_the_two_locks_pin_the_same_version_of_every_package_they_share():
    runtime, dev = versions("requirements.txt"), versions("requirements-dev.txt")
    shared = runtime.keys() & dev.keys()
    assert {name: (runtime[name], dev[name]) for name in shared if runtime[name] != dev[name]} == {}
