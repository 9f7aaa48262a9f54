"""An intruder who can write the audit directory steers the *writer*, not the verifier: what
the outside attack pass on the audit trail found, each now caught (TM-24; T1070; AU-9, AU-10).

Each test makes the writer meet a tampered directory (a future time in the key state, a key
that cannot be saved, a strange rotated name, a forged tail, a cut file), then proves the
trail still tells the truth: `audit verify` fails at the right place, or the writer fails
closed, and the legitimate path keeps working.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pingcalc.audit import Auditor, ChainedFileSink, StdoutSink, keys, rotated_paths
from pingcalc.audit.keys import state_path
from pingcalc.audit.shipping import destination
from pingcalc.audit.verify import verify
from tests_support import AuditKeys, audit_records


class Trail:
    """A real auditor with a file, its stdout stream, and the shipped checkpoints."""

    def __init__(self, path: Path, keys: AuditKeys, **sink_options: Any) -> None:
        self.path = path
        self.keys = keys
        self.stream = io.StringIO()
        self.shipped = io.StringIO()
        self.auditor = Auditor(
            [StdoutSink(self.stream), ChainedFileSink(path, keys.service, **sink_options)],
            checkpoint_to=[destination("stdout", StdoutSink(self.shipped))],
        )

    def events(self, count: int) -> list[bool]:
        return [
            self.auditor.emit("calculation", token="calc", outcome="success", n=n)
            for n in range(count)
        ]

    def log(self) -> Path:
        saved = self.path.parent.parent / "shipped.log"
        saved.write_text(self.shipped.getvalue())
        return saved

    def files(self) -> list[Path]:
        return [*rotated_paths(self.path), self.path]

    def verify(self) -> Any:
        return verify(self.files(), self.keys.verify, [self.log()])


@pytest.fixture
def trail(tmp_path: Path, audit_keys: AuditKeys) -> Trail:
    (tmp_path / "audit").mkdir()
    return Trail(tmp_path / "audit" / "audit.jsonl", audit_keys)


def _edit_state_header(path: Path, **changes: Any) -> None:
    """Edit the readable first line of the key state without touching the key (line 2)."""
    header, _, rest = path.read_bytes().partition(b"\n")
    fields = json.loads(header)
    fields.update(changes)
    path.write_bytes(json.dumps(fields, separators=(",", ":")).encode() + b"\n" + rest)


def test_a_future_checkpoint_time_in_the_key_state_does_not_stop_checkpoints(
    trail: Trail,
) -> None:
    """The attack pass's F1: one edited digit (a checkpoint time in 2279) made every worker
    skip its interval checkpoint, opening an unbounded window to cut records unseen."""
    trail.events(3)
    assert trail.auditor.checkpoint()  # the state now has a checkpoint time
    trail.events(3)
    _edit_state_header(state_path(trail.path), checkpointed=9.79e9)
    assert trail.auditor.checkpoint(min_interval=60), "the future time was believed"
    assert trail.verify().ok


def test_a_key_that_cannot_be_saved_fails_closed_and_the_checkpoint_still_ships(
    trail: Trail, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack pass's F2: when the evolved key could not be saved, the old key stayed on
    disk while requests got 200 and the checkpoints never shipped. Now the checkpoint ships,
    the sink fails closed, and it recovers (saving the key) once the disk takes it."""
    trail.events(3)
    real = keys.write_state

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(1, "Operation not permitted", str(args[0]))

    monkeypatch.setattr("pingcalc.audit.chained_file.write_state", refuse)
    (anchored,) = trail.auditor.checkpoint()
    shipped = audit_records(trail.shipped.getvalue())
    assert [r["event"] for r in shipped] == ["audit_checkpoint"]
    assert shipped[0]["mac"] == anchored["mac"]
    assert not trail.auditor.available
    assert trail.events(1) == [False]  # fail-closed: nothing proceeds on the old key
    failed = [
        r for r in audit_records(trail.stream.getvalue()) if r["event"] == "audit_file_failed"
    ]
    assert failed and "evolved audit key could not be saved" in failed[0]["reason"]
    monkeypatch.setattr("pingcalc.audit.chained_file.write_state", real)
    assert trail.auditor.probe()
    assert keys.read_state_header(state_path(trail.path)).epoch == 1  # the old key is gone
    assert trail.events(2) == [True, True]
    assert trail.verify().ok


def test_a_strange_rotated_file_name_is_ignored_not_fatal(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """The attack pass's F3: an empty `audit.jsonl.²` ("²".isdigit() is true, int() refuses
    it) turned every rotation into a 500 and crashed verify. Only ASCII digits count."""
    (tmp_path / "audit").mkdir()
    trail = Trail(tmp_path / "audit" / "audit.jsonl", audit_keys, max_bytes=4096)
    (tmp_path / "audit" / "audit.jsonl.²").write_bytes(b"")
    assert all(trail.events(60))  # rotates several times
    assert len(rotated_paths(trail.path)) >= 2
    assert all(path.name.rpartition(".")[2].isascii() for path in rotated_paths(trail.path))
    trail.auditor.checkpoint()
    assert trail.verify().ok


def test_a_forged_tail_with_a_far_epoch_does_not_hang_the_writer(trail: Trail) -> None:
    """The attack pass's F4: one appended line claiming epoch 10**12 made the writer evolve its
    key for ever under the lock (every request and /healthz hung). The tail is checked against
    the key before it is followed; the forgery is reported and verify fails at it."""
    trail.events(2)
    forged = {"ts": "x", "event": "calculation", "seq": 99, "epoch": 10**12, "prev": "0" * 64}
    with trail.path.open("ab") as handle:
        handle.write(json.dumps(forged).encode()[:-1] + b',"mac":"' + b"a" * 64 + b'"}\n')
    trail.auditor.close()
    writer = Trail(trail.path, trail.keys)  # a new process meets the tampered file
    started = time.monotonic()
    assert writer.events(1) == [True]
    assert time.monotonic() - started < 1
    notices = [r["event"] for r in audit_records(writer.stream.getvalue())]
    assert "audit_file_tail_unreadable" in notices
    result = verify(writer.files(), writer.keys.verify)
    assert not result.ok and result.problem is not None and result.problem.line == 4


def test_records_cut_behind_the_writers_back_are_sealed_as_a_cut(trail: Trail) -> None:
    """The attack pass's F5: cutting the records written since the last checkpoint needed no
    key (the writer re-chained silently, and its next checkpoint vouched for the cut). The
    writer now says so at once on stdout and seals the cut into the file; verify fails there."""
    trail.events(3)
    trail.auditor.checkpoint()
    trail.events(4)
    lines = trail.path.read_bytes().splitlines(keepends=True)
    with trail.path.open("r+b") as handle:  # the same file, cut in place
        handle.truncate(sum(len(line) for line in lines[:-3]))
    assert trail.events(1) == [True]
    cut = [r for r in audit_records(trail.stream.getvalue()) if r["event"] == "audit_file_cut"]
    assert cut and cut[0]["expected_bytes"] > cut[0]["found_bytes"]
    trail.auditor.checkpoint()
    result = trail.verify()
    assert not result.ok and result.problem is not None
    assert "cut here" in result.problem.reason


def test_verify_survives_crafted_lines_and_files(trail: Trail, tmp_path: Path) -> None:
    """Deeply nested JSON is a reported line (not a traceback), and a FIFO among the files is
    refused at once (it would block for ever)."""
    trail.events(2)
    trail.auditor.checkpoint()
    with trail.path.open("ab") as handle:
        handle.write(b"[" * 100_000 + b"]" * 100_000 + b"\n")
    result = trail.verify()
    assert (
        not result.ok and result.problem is not None and "not valid JSON" in result.problem.reason
    )
    fifo = tmp_path / "audit" / "audit.jsonl.7"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OSError, match="not a regular file"):
        verify([*trail.files(), fifo], trail.keys.verify)
    assert time.monotonic() - started < 2


def test_unanchored_records_are_counted_from_shipped_checkpoints(trail: Trail) -> None:
    """A checkpoint that never left the host anchors nothing: with the shipped log, verify
    counts the records after the last *shipped* checkpoint."""
    trail.events(3)
    trail.auditor.checkpoint()  # shipped
    trail.events(4)
    saved = trail.shipped.getvalue()
    trail.auditor.checkpoint()  # its shipment is dropped below
    log = trail.path.parent.parent / "shipped.log"
    log.write_text(saved)
    result = verify(trail.files(), trail.keys.verify, [log])
    assert result.ok
    (chain,) = result.to_json()["chains"]
    assert chain["unanchored_records"] >= 5  # four events and the unshipped checkpoint
    assert "after the last shipped checkpoint" in result.describe()
