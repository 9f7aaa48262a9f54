"""The audit file sink: rotation, restarts, several writers, and what happens when it fails.

Threats: repudiation (records lost at rotation or restart, or a chain split by two worker
processes), and audit evasion by exhausting the disk (the failure must be loud and visible).
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import pytest

from pingcalc.audit import GENESIS, Auditor, order_files, rotated_paths, truncate, verify

SMALL = 4096  # the smallest rotation size the settings accept


def emit_many(auditor: Auditor, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        assert auditor.emit("ping", client_ip="::1", token="pinger", outcome="success", n=index)


def all_records(paths: list[Path]) -> list[dict[str, object]]:
    return [json.loads(line) for p in order_files(paths) for line in p.read_text().splitlines()]


def test_rotation_keeps_the_chain_across_files(tmp_path: Path) -> None:
    """At the size limit the file becomes FILE.N and the new FILE continues the same chain."""
    path = tmp_path / "audit.jsonl"
    auditor = Auditor(path, max_bytes=SMALL, stream=io.StringIO())
    emit_many(auditor, 120)
    auditor.close()
    rotated = rotated_paths(path)
    assert len(rotated) >= 3
    files = [*rotated, path]
    for older, newer in itertools.pairwise(files):
        assert older.stat().st_size <= SMALL
        last = json.loads(older.read_text().splitlines()[-1])
        first = json.loads(newer.read_text().splitlines()[0])
        assert first["prev"] == last["hash"] and first["seq"] == last["seq"] + 1
    records = all_records(files)
    assert [r["n"] for r in records] == list(range(120))
    result = verify(list(reversed(files)))  # any order on the command line
    assert result.ok and result.records == 120, result.describe()


def test_a_deleted_rotated_file_breaks_the_chain(tmp_path: Path) -> None:
    """Removing a whole rotated file is detected at the first line of the next one."""
    path = tmp_path / "audit.jsonl"
    auditor = Auditor(path, max_bytes=SMALL, stream=io.StringIO())
    emit_many(auditor, 120)
    auditor.close()
    rotated = rotated_paths(path)
    rotated[1].unlink()
    result = verify([*rotated_paths(path), path])
    assert not result.ok
    assert (result.file, result.line) == (rotated[2], 1)
    assert f"the last line of {rotated[0].name}" in (result.problem or "")


def test_restart_continues_the_chain(tmp_path: Path) -> None:
    """A new process (a restart) appends after the last record instead of restarting at genesis."""
    path = tmp_path / "audit.jsonl"
    emit_many(Auditor(path, stream=io.StringIO()), 5)
    emit_many(Auditor(path, stream=io.StringIO()), 5, start=5)
    records = all_records([path])
    assert [r["seq"] for r in records] == list(range(10))
    assert records[5]["prev"] == records[4]["hash"]
    assert verify([path]).ok


def test_restart_right_after_rotation_continues_from_the_rotated_file(tmp_path: Path) -> None:
    """If FILE was rotated away and not yet recreated, the chain continues from FILE.N."""
    path = tmp_path / "audit.jsonl"
    auditor = Auditor(path, max_bytes=SMALL, stream=io.StringIO())
    emit_many(auditor, 60)
    auditor.close()
    path.rename(path.with_name(f"{path.name}.{len(rotated_paths(path)) + 1}"))
    emit_many(Auditor(path, stream=io.StringIO()), 3)
    result = verify([*rotated_paths(path), path])
    assert result.ok and result.records == 63, result.describe()


def test_two_writers_keep_one_chain(tmp_path: Path) -> None:
    """Two Auditors on one file (two worker processes) interleave into a single valid chain."""
    path = tmp_path / "audit.jsonl"
    first = Auditor(path, max_bytes=SMALL, stream=io.StringIO())
    second = Auditor(path, max_bytes=SMALL, stream=io.StringIO())
    for index in range(80):
        assert (first if index % 3 else second).emit("ping", outcome="success", n=index)
    result = verify([*rotated_paths(path), path])
    assert result.ok and result.records == 80, result.describe()


def test_stdout_line_is_the_flat_record_marked_audit(tmp_path: Path) -> None:
    """The stdout copy is the same record (with its hash) plus `"log": "audit"`, flat."""
    stream = io.StringIO()
    path = tmp_path / "audit.jsonl"
    Auditor(path, stream=stream).emit(
        "auth_failure", request_id="r1", client_ip="127.0.0.1", outcome="denied", reason="x"
    )
    shown = json.loads(stream.getvalue())
    stored = json.loads(path.read_text())
    assert shown.pop("log") == "audit"
    assert shown == stored
    assert list(stored)[:7] == ["ts", "event", "request_id", "client_ip", "token", "outcome",
                                "reason"]  # fmt: skip
    assert stored["ts"].endswith("Z") and stored["prev"] == GENESIS


def test_token_shaped_values_are_redacted_in_both_sinks(tmp_path: Path) -> None:
    """A secret passed by mistake never reaches stdout or the file (second line of defence)."""
    stream = io.StringIO()
    path = tmp_path / "audit.jsonl"
    secret = "pc_" + "A" * 43
    Auditor(path, stream=stream).emit("x", outcome="info", note=f"Bearer {secret}", raw=secret)
    for text in (stream.getvalue(), path.read_text()):
        assert secret not in text and "Bearer" not in text


def blocked_path(tmp_path: Path) -> tuple[Path, Path]:
    """An audit path whose parent is a regular file: creating it fails, even as root."""
    blocker = tmp_path / "audit-dir"
    blocker.write_text("not a directory\n")
    return blocker, blocker / "audit.jsonl"


def test_fail_closed_reports_failure_and_keeps_the_event_on_stdout(tmp_path: Path) -> None:
    """An unwritable file flips `healthy`, emit returns False, and stdout still has everything."""
    _blocker, path = blocked_path(tmp_path)
    stream = io.StringIO()
    auditor = Auditor(path, on_failure="closed", stream=stream)
    assert auditor.emit("ping", token="pinger", outcome="success", target="127.0.0.1") is False
    assert not auditor.healthy and not auditor.available
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    failure = next(r for r in lines if r["event"] == "audit_file_failed")
    assert failure["log"] == "audit" and str(path.parent) in failure["reason"]
    assert failure["reason"].startswith(("NotADirectoryError", "FileExistsError"))
    event = next(r for r in lines if r["event"] == "ping")
    assert event["target"] == "127.0.0.1" and event["audit_file"] == "failed"
    # The failure is logged once, not once per event.
    auditor.emit("ping", outcome="success")
    assert stream.getvalue().count("audit_file_failed") == 1


def test_the_file_recovers_and_says_what_it_missed(tmp_path: Path) -> None:
    """When the path becomes writable again the chain resumes with a record of the gap."""
    blocker, path = blocked_path(tmp_path)
    auditor = Auditor(path, stream=io.StringIO())
    assert not auditor.emit("ping", outcome="success")
    assert not auditor.emit("ping", outcome="success")
    assert not auditor.probe()
    blocker.unlink()
    blocker.mkdir()
    assert auditor.probe() and auditor.healthy
    assert auditor.emit("ping", outcome="success")
    records = all_records([path])
    assert [r["event"] for r in records] == ["audit_file_recovered", "ping"]
    assert records[0]["missed"] == 2
    assert verify([path]).ok


def test_fail_open_lets_the_caller_proceed(tmp_path: Path) -> None:
    """With `open`, emit returns True (the action proceeds) while `healthy` still says False."""
    _, path = blocked_path(tmp_path)
    auditor = Auditor(path, on_failure="open", stream=io.StringIO())
    assert auditor.emit("ping", outcome="success") is True
    assert not auditor.healthy and auditor.available


def test_disk_full_is_a_failure(tmp_path: Path) -> None:
    """A device that refuses every write (/dev/full, ENOSPC) is detected as a failing sink."""
    auditor = Auditor(Path("/dev/full"), stream=io.StringIO())
    assert auditor.emit("ping", outcome="success") is False
    assert "No space left" in (auditor.last_error or "")


def test_without_a_file_only_stdout_is_written() -> None:
    """No PINGCALC_AUDIT_FILE: stdout only, always healthy, no chain fields."""
    stream = io.StringIO()
    assert Auditor(stream=stream).emit("ping", outcome="success")
    record = json.loads(stream.getvalue())
    assert "hash" not in record and record["event"] == "ping"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("1+2", 200, "1+2"), ("123456", 4, "123…"), ("123456", 6, "123456"), ("12", 0, "")],
)
def test_truncate_bounds_recorded_expressions(text: str, limit: int, expected: str) -> None:
    """Expressions are cut to `audit_expression_max` so one request cannot bloat the trail."""
    assert truncate(text, limit) == expected
    assert len(truncate(text, limit)) <= max(limit, 0)
