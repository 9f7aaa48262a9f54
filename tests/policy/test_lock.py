"""requirements.lock agrees with pyproject.toml: every runtime dependency pinned and hashed.

The image installs with `pip install --require-hashes --no-deps -r requirements.lock`, so a
dependency added to pyproject.toml but not locked would be missing from the image, and a
loose pin or a missing hash would let a different file be installed (T1195.001, SR-4).
Regenerate with `make lock`.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import cast

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
# The image's platform: Linux, CPython 3.11.
# cast: `Environment` is a TypedDict whose fields are all str, which mypy widens to object.
TARGET_ENV: dict[str, str] = {
    **cast(dict[str, str], default_environment()),
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "python_version": "3.11",
    "implementation_name": "cpython",
}
ENTRY = re.compile(r"^(?P<spec>[A-Za-z0-9][^\s\\]*)\s*\\?\s*$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}\s*\\?$")


def parse_lock(text: str) -> tuple[dict[str, Requirement], list[str]]:
    """Pinned requirements by name, and the problems found in the lock's own shape."""
    pins: dict[str, Requirement] = {}
    hashes: dict[str, int] = {}
    problems: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            if not HASH.match(line) or not current:
                problems.append(f"bad hash line {line[:40]!r}")
            else:
                hashes[current] += 1
            continue
        match = ENTRY.match(line)
        if match is None:
            problems.append(f"unexpected line {line[:60]!r}")
            continue
        requirement = Requirement(match["spec"])
        current = canonicalize_name(requirement.name)
        specs = list(requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            problems.append(f"{requirement.name} is not pinned with == ({requirement.specifier})")
        pins[current] = requirement
        hashes[current] = 0
    problems += [f"{name} has no hash" for name, count in hashes.items() if count == 0]
    return pins, problems


def _pinned_version(requirement: Requirement) -> str:
    return next(iter(requirement.specifier)).version


def lock_problems(requires: list[str], lock_text: str) -> list[str]:
    """Everything on which `requires` (PEP 508 strings) and the lock disagree."""
    pins, problems = parse_lock(lock_text)
    for spec in requires:
        wanted = Requirement(spec)
        if wanted.marker is not None and not wanted.marker.evaluate(TARGET_ENV):
            continue
        name = canonicalize_name(wanted.name)
        if name not in pins:
            problems.append(f"{wanted.name} is required but not in the lock")
            continue
        version = _pinned_version(pins[name])
        if not wanted.specifier.contains(version, prereleases=True):
            problems.append(f"{wanted.name}=={version} does not satisfy {wanted.specifier}")
        for extra in sorted(wanted.extras):
            for dep in _extra_requirements(wanted.name, extra):
                if canonicalize_name(dep.name) not in pins:
                    problems.append(f"{dep.name} (for {wanted.name}[{extra}]) is not locked")
    return problems


def _extra_requirements(distribution: str, extra: str) -> list[Requirement]:
    """What `distribution[extra]` adds, from the installed distribution's metadata."""
    found = []
    for spec in metadata.requires(distribution) or []:
        requirement = Requirement(spec)
        marker = requirement.marker
        if (
            marker is not None
            and marker.evaluate({**TARGET_ENV, "extra": extra})
            and not marker.evaluate({**TARGET_ENV, "extra": ""})
        ):
            found.append(requirement)
    return found


def _pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def test_runtime_lock_matches_pyproject() -> None:
    """T1195.001: every runtime dependency is locked at a version its specifier allows."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    problems = lock_problems(project["dependencies"], (REPO / "requirements.lock").read_text())
    assert problems == [], "run `make lock`:\n" + "\n".join(problems)


def test_build_lock_matches_build_system() -> None:
    """T1195.001: the image's build backend (hatchling) is pinned and hashed too."""
    build = _pyproject()["build-system"]
    assert isinstance(build, dict)
    text = (REPO / "deploy/docker/requirements-build.lock").read_text()
    problems = lock_problems(build["requires"], text)
    assert problems == [], "run `make lock`:\n" + "\n".join(problems)


def test_lock_pins_every_package_with_one_version_and_a_hash() -> None:
    """T1195.001: no range, no unhashed entry anywhere in the lock (pip --require-hashes)."""
    pins, problems = parse_lock((REPO / "requirements.lock").read_text())
    assert problems == []
    assert "uvicorn" in pins and "pydantic-core" in pins  # transitive ones are there too


def test_drift_between_pyproject_and_lock_is_reported() -> None:
    """The checker itself catches each kind of drift (so the tests above can fail)."""
    lock = (
        "fastapi==0.100.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"
        "uvicorn>=0.30 \\\n    --hash=sha256:" + "b" * 64 + "\n"
        "structlog==24.1.0\n"
    )
    problems = lock_problems(
        ["fastapi>=0.115", "uvicorn>=0.30", "httptools>=0.6", "winonly; sys_platform == 'win32'"],
        lock,
    )
    assert "fastapi==0.100.0 does not satisfy >=0.115" in problems
    assert "uvicorn is not pinned with == (>=0.30)" in problems
    assert "structlog has no hash" in problems
    assert "httptools is required but not in the lock" in problems
    assert not any("winonly" in p for p in problems)  # not for this platform
    assert (
        lock_problems(["fastapi>=0.99"], "fastapi==0.100.0 \\\n  --hash=sha256:" + "c" * 64) == []
    )
