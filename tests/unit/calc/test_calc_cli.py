"""`pingcalc calc`: the command-line face of the same engine and limits.

Threat: the CLI must not be a way around the engine's checks (TM-05, TM-08): a refused
expression exits 2 with the error on stderr and nothing on stdout.
"""

from __future__ import annotations

import subprocess

from tests_support import run_pingcalc


def _calc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_pingcalc("calc", *args, env=env)


def test_calc_prints_the_result() -> None:
    """A legitimate expression prints its value and exits 0."""
    done = _calc("2*(3+4)")
    assert (done.returncode, done.stdout, done.stderr) == (0, "14\n", "")
    assert _calc("--", "-2**2 + sqrt(16)").stdout == "0.0\n"


def test_calc_rejects_with_exit_2_and_message_on_stderr() -> None:
    """A sandbox-escape attempt exits 2, names the problem and its column on stderr."""
    done = _calc("(1).__class__")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "pingcalc: unsupported syntax `__class__` at column 5"


def test_calc_honours_the_calc_settings() -> None:
    """PINGCALC_CALC_MAX_INT_BITS applies to the CLI as to the server."""
    assert _calc("2**100").returncode == 0
    done = _calc("2**100", PINGCALC_CALC_MAX_INT_BITS="64")
    assert done.returncode == 2 and "more than 64 bits" in done.stderr
