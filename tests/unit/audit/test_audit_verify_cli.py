"""`pingcalc audit verify FILE...`: exit 0 only for an intact chain, and say where it broke.

Threat: repudiation; an operator (or a scheduled job) must be able to prove the trail intact,
and a tampered trail must fail loudly with the file and line to look at.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from pingcalc.audit import Auditor, rotated_paths
from pingcalc.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

PINGCALC = str(Path(sys.executable).with_name("pingcalc"))


def write(path: Path, count: int, max_bytes: int = 10 * 1024 * 1024) -> list[Path]:
    auditor = Auditor(path, max_bytes=max_bytes, stream=io.StringIO())
    for index in range(count):
        auditor.emit("calculation", token="calc", outcome="success", expression=str(index))
    auditor.close()
    return [*rotated_paths(path), path]


def test_verify_exits_0_for_an_intact_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An untouched set of rotated files verifies with exit 0 and a summary."""
    files = write(tmp_path / "audit.jsonl", 100, max_bytes=4096)
    assert main(["audit", "verify", *map(str, reversed(files))]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"intact: 100 records in {len(files)} file(s)" in out


def test_verify_exits_1_and_names_the_broken_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deleted record gives exit 1 and `FILE:LINE: what is wrong`."""
    (path,) = write(tmp_path / "audit.jsonl", 20)
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[6]
    path.write_bytes(b"".join(lines))
    assert main(["audit", "verify", str(path)]) == EXIT_FAILED
    assert capsys.readouterr().out.strip() == (
        f"{path}:7: prev does not match line 6's hash (line deleted, inserted or reordered)"
    )


def test_verify_exits_2_for_an_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file is a usage error (2), not a verdict on the chain."""
    (path,) = write(tmp_path / "audit.jsonl", 3)
    assert main(["audit", "verify", str(path), str(tmp_path / "missing.jsonl")]) == EXIT_USAGE
    assert "cannot read" in capsys.readouterr().err


def test_verify_console_script_reports_an_edit(tmp_path: Path) -> None:
    """The installed `pingcalc` command gives the same verdict from a shell or a cron job."""
    (path,) = write(tmp_path / "audit.jsonl", 10)
    intact = subprocess.run(
        [PINGCALC, "audit", "verify", str(path)], capture_output=True, text=True, timeout=30
    )
    assert intact.returncode == 0, intact.stderr
    path.write_bytes(path.read_bytes().replace(b'"expression":"4"', b'"expression":"5"'))
    broken = subprocess.run(
        [PINGCALC, "audit", "verify", str(path)], capture_output=True, text=True, timeout=30
    )
    assert broken.returncode == 1
    assert broken.stdout.strip() == f"{path}:5: hash mismatch (record edited)"
