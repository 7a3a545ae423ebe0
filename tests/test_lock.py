"""requirements.lock: the image's runtime dependencies, pinned with hashes.

pyproject.toml keeps ranges for people installing the package; the Dockerfile
installs exactly the lock (`pip install --require-hashes`), then the project's
wheel with `--no-deps`, so an image built next year has the same packages.
These tests keep the two in step without the network: every runtime dependency
of pyproject.toml is pinned, to a version its range allows, every pin is exact
and hashed, and the Dockerfile really installs the lock that way. That the
lock is complete (dependencies of dependencies) and installs on the base image
is proven by the Docker engine test, where pip's hash mode refuses anything else.
"""
import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.test_docker import is_ignored, load_dockerignore, parse_dockerfile, split_flags, split_stages

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"


def parse_lock(text):
    """{canonical name: (Version, [sha256 hashes])} from pip's requirements format,
    `\\` continuations joined; fails on anything but `name==version --hash=...`."""
    pins = {}
    logical = re.sub(r"\\\n", " ", text)
    for number, line in enumerate(logical.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"line {number}: option {line.split()[0]} in the lock " \
            "(index or find-links lines are machine-specific; pins only)"
        requirement, *options = line.split()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", requirement)
        assert match, f"line {number}: {requirement!r} is not pinned exactly (name==version)"
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=sha256:")]
        assert len(hashes) == len(options), f"line {number}: only --hash=sha256:... may follow a pin"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"line {number}: {name} pinned twice"
        pins[name] = (Version(match.group(2)), hashes)
    return pins


def runtime_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def lock_problems(requirements, pins):
    """What keeps `pins` from satisfying `requirements` (empty when it does)."""
    problems = []
    for requirement in requirements:
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not in the lock")
        elif not requirement.specifier.contains(pinned[0], prereleases=True):
            problems.append(f"{requirement.name}=={pinned[0]} is outside pyproject's range {requirement.specifier}")
    return problems


@pytest.fixture(scope="module")
def pins():
    return parse_lock(LOCK.read_text())


def test_every_runtime_dependency_of_pyproject_is_pinned_within_its_range(pins):
    problems = lock_problems(runtime_requirements(), pins)
    assert not problems, "\n".join(problems) + "\nrun `make lock` (see docs/deployment.md)"


def test_every_pin_carries_hashes(pins):
    assert len(pins) >= len(runtime_requirements())
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name


def test_the_check_fails_on_a_stale_lock(pins):
    """Guards the tests above: a lock missing a dependency or pinning one out of
    its range must be reported, and so must a pin without hashes."""
    requirements = runtime_requirements()
    first, second = requirements[0], requirements[1]
    stale = dict(pins)
    del stale[canonicalize_name(first.name)]
    stale[canonicalize_name(second.name)] = (Version("0.0.1"), pins[canonicalize_name(second.name)][1])
    problems = lock_problems(requirements, stale)
    assert len(problems) == 2
    assert first.name in problems[0] and "not in the lock" in problems[0]
    assert second.name in problems[1] and "outside" in problems[1]

    with pytest.raises(AssertionError, match="only --hash"):
        parse_lock("flask==3.1.0 --no-binary\n")
    with pytest.raises(AssertionError, match="not pinned exactly"):
        parse_lock("flask>=3.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(AssertionError, match="machine-specific"):
        parse_lock("--find-links /opt/wheels\nflask==3.1.0\n")


def _final_stage():
    return split_stages(parse_dockerfile((REPO / "Dockerfile").read_text()))[-1]


def test_the_image_installs_the_lock_with_hashes_then_the_wheel_alone():
    runs = [ins for ins in _final_stage() if ins.keyword == "RUN" and "pip install" in ins.args]
    assert len(runs) == 1, [r.args for r in runs]
    run_args = runs[0].args
    mounts = {}
    for spec in re.findall(r"--mount=(\S+)", run_args):
        options = dict(option.split("=", 1) for option in spec.split(","))
        mounts[options.get("source")] = options
    assert "requirements.lock" in mounts and "from" not in mounts["requirements.lock"], \
        "requirements.lock is not mounted from the build context"
    lock_target = mounts["requirements.lock"]["target"]
    commands = [c.strip() for c in split_flags(run_args)[1].split("&&")]
    lock_install = [c for c in commands if f"-r {lock_target}" in c]
    assert len(lock_install) == 1 and "--require-hashes" in lock_install[0], commands
    wheel_install = [c for c in commands if "/wheels/" in c and "pip install" in c]
    assert len(wheel_install) == 1 and "--no-deps" in wheel_install[0], commands
    assert commands.index(lock_install[0]) < commands.index(wheel_install[0])
    rules = load_dockerignore((REPO / ".dockerignore").read_text())
    assert not is_ignored(rules, "requirements.lock"), ".dockerignore keeps the lock out of the build context"


def test_the_lock_is_made_for_the_python_of_the_image():
    """`make lock` resolves for one Python version; it must be the base image's."""
    base = split_flags(_final_stage()[0].args)[1].split()[0]
    image_python = re.search(r":(\d+\.\d+)\.", base).group(1)
    recipe = (REPO / "Makefile").read_text()
    lock_python = re.search(r"uv pip compile[^\n]*(?:\\\n[^\n]*)*--python-version (\d+\.\d+)", recipe)
    assert lock_python, "the lock target must name its --python-version"
    assert lock_python.group(1) == image_python, f"lock for {lock_python.group(1)}, image runs {image_python}"
