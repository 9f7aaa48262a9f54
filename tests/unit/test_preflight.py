"""The suite's preflight, run for real: a prerequisite hidden from PATH is listed with its fix
at the start, its tests skip with that one reason, and with CI=true they fail instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
TINY = """
import pytest

@pytest.mark.redis
def test_needs_redis():
    pass

def test_needs_nothing():
    pass
"""
REASON = "redis-server: `redis-server` is not in PATH (fix: apt-get install -y redis-server)"


def _run_without_redis(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    """pytest on a tiny test file, with a PATH that holds every other prerequisite's tool."""
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    for tool in ("docker", "promtool", "chromium"):
        found = shutil.which(tool)
        if found and not (shims / tool).exists():
            (shims / tool).symlink_to(found)
    (tmp_path / "test_tiny.py").write_text(TINY)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS"}}
    env |= {"PATH": str(shims), "PYTHONPATH": str(TESTS)}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "preflight", "-p", "no:cacheprovider", "-rs",
         "-c", str(tmp_path / "pytest.ini"), str(tmp_path / "test_tiny.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def test_missing_prerequisite_is_listed_first_and_its_tests_skip_locally(tmp_path: Path) -> None:
    """Locally: the header names redis-server with its install command; only the test that
    needs it skips, with that reason; the run passes."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is already missing here; the hidden case is the same")
    done = _run_without_redis(tmp_path, ci=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    header = out.split("test_tiny.py", 1)[0]
    assert "prerequisites missing" in header and REASON in header
    assert "tests that need them skip" in header
    assert f"SKIPPED [1] test_tiny.py:4: missing prerequisite: {REASON}" in out
    assert "1 passed, 1 skipped" in out


def test_missing_prerequisite_fails_its_tests_in_ci(tmp_path: Path) -> None:
    """CI=true: the same missing tool fails the test that needs it (a skip would hide it)."""
    done = _run_without_redis(tmp_path, ci=True)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "tests that need them FAIL (CI=true)" in out
    assert f"missing prerequisite in CI: {REASON}" in out
    assert "1 passed, 1 error" in out  # refused at setup: the run fails
