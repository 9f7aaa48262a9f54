"""The chained file sink: rotation, restarts, several writers, and what happens when it fails.

Threats: TM-24 (records lost at rotation or restart, or a chain split by two worker processes)
and TM-11 (audit evasion by exhausting the disk or replacing the audit directory: the failure
must be reported from the very first record that cannot be written, and be loud).
"""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from pingcalc.audit import (
    Auditor,
    ChainedFileSink,
    DurableSink,
    Sink,
    StdoutSink,
    order_files,
    rotated_paths,
    verify,
)
from pingcalc.audit.auditor import FailurePolicy
from pingcalc.audit.chained_file import DEFAULT_MAX_BYTES
from pingcalc.audit.keys import read_state_header, state_path
from tests_support import AuditKeys, audit_records, file_records

SMALL = 4096  # the smallest rotation size the settings accept


def auditor_for(
    path: Path,
    keys: AuditKeys,
    stream: io.StringIO | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_failure: FailurePolicy = "closed",
) -> Auditor:
    sinks: list[Sink | DurableSink] = [
        StdoutSink(stream or io.StringIO()),
        ChainedFileSink(path, keys.service, max_bytes=max_bytes),
    ]
    return Auditor(sinks, on_failure=on_failure)


def emit_many(auditor: Auditor, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        assert auditor.emit("ping", client_ip="::1", token="pinger", outcome="success", n=index)


def all_records(paths: list[Path]) -> list[dict[str, object]]:
    return [r for p in order_files(paths) for r in file_records(p)]


def events(paths: list[Path], name: str = "ping") -> list[dict[str, object]]:
    return [r for r in all_records(paths) if r["event"] == name]


def test_rotation_keeps_the_chain_across_files(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """At the size limit the file becomes FILE.N and the new FILE continues the same chain."""
    path = tmp_path / "audit.jsonl"
    auditor = auditor_for(path, audit_keys, max_bytes=SMALL)
    emit_many(auditor, 60)
    auditor.checkpoint()
    emit_many(auditor, 60, start=60)
    auditor.close()
    rotated = rotated_paths(path)
    assert len(rotated) >= 3
    files = [*rotated, path]
    for older, newer in itertools.pairwise(files):
        assert older.stat().st_size <= SMALL
        last, first = file_records(older)[-1], file_records(newer)[0]
        assert first["prev"] == last["mac"] and first["seq"] == last["seq"] + 1
    assert [r["n"] for r in events(files)] == list(range(120))
    result = verify(list(reversed(files)), audit_keys.verify)  # any order on the command line
    assert result.ok and result.records == len(all_records(files)), result.describe()


def test_a_deleted_rotated_file_breaks_the_chain(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """Removing a whole rotated file is detected at the first line of the next one."""
    path = tmp_path / "audit.jsonl"
    auditor = auditor_for(path, audit_keys, max_bytes=SMALL)
    emit_many(auditor, 120)
    auditor.close()
    rotated = rotated_paths(path)
    rotated[1].unlink()
    problem = verify([*rotated_paths(path), path], audit_keys.verify).problem
    assert problem is not None
    assert (problem.path, problem.line) == (rotated[2], 1)
    assert f"the last line of {rotated[0].name}" in problem.reason


def test_restart_continues_the_chain(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """A new process (a restart) appends after the last record and key instead of restarting."""
    path = tmp_path / "audit.jsonl"
    emit_many(first := auditor_for(path, audit_keys), 5)
    first.close()
    emit_many(second := auditor_for(path, audit_keys), 5, start=5)
    second.close()
    records = all_records([path])
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert [r["event"] for r in records].count("audit_chain_started") == 1
    assert [r["epoch"] for r in events([path])] == [0] * 5 + [1] * 5
    assert verify([path], audit_keys.verify).ok


def test_restart_right_after_rotation_continues_from_the_rotated_file(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """If FILE was rotated away and not yet recreated, the chain continues from FILE.N."""
    path = tmp_path / "audit.jsonl"
    auditor = auditor_for(path, audit_keys, max_bytes=SMALL)
    emit_many(auditor, 60)
    auditor.close()
    path.rename(path.with_name(f"{path.name}.{len(rotated_paths(path)) + 1}"))
    emit_many(again := auditor_for(path, audit_keys), 3)
    again.close()
    result = verify([*rotated_paths(path), path], audit_keys.verify)
    assert result.ok, result.describe()
    assert len(events([*rotated_paths(path), path])) == 63


def test_two_writers_in_one_process_keep_one_chain(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """Two Auditors on one file interleave into one chain and follow each other's key."""
    path = tmp_path / "audit.jsonl"
    first = auditor_for(path, audit_keys, max_bytes=SMALL)
    second = auditor_for(path, audit_keys, max_bytes=SMALL)
    for index in range(80):
        writer = first if index % 3 else second
        assert writer.emit("ping", outcome="success", n=index)
        if index % 20 == 19:
            assert (second if index % 40 else first).checkpoint()
    first.close()
    second.close()
    files = [*rotated_paths(path), path]
    result = verify(files, audit_keys.verify)
    assert result.ok, result.describe()
    assert [r["n"] for r in events(files)] == list(range(80))
    assert result.chains[0].last_epoch == 3  # four checkpoints, whichever writer made them


WRITER = textwrap.dedent(
    """
    import io, sys
    from pathlib import Path
    from pingcalc.audit import Auditor, ChainedFileSink, StdoutSink
    path, key, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    auditor = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, key, max_bytes=4096)])
    for index in range(150):
        assert auditor.emit("ping", outcome="success", writer=name, n=index)
        if index % 25 == 24:
            auditor.checkpoint()
    auditor.close()
    """
)


def test_two_writer_processes_keep_one_chain_and_agree_on_the_epoch(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """Two processes (two workers) writing, rotating and checkpointing one file concurrently
    leave one chain whose epochs only ever advance at a checkpoint: it verifies."""
    path = tmp_path / "audit" / "audit.jsonl"
    path.parent.mkdir()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(audit_keys.service), name],
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=60)
        assert writer.returncode == 0, stderr.decode()
    files = [*rotated_paths(path), path]
    result = verify(files, audit_keys.verify)
    assert result.ok, result.describe()
    records = events(files)
    assert sorted((r["writer"], r["n"]) for r in records) == sorted(
        (name, n) for name in ("a", "b") for n in range(150)
    )
    checkpoints = events(files, "audit_checkpoint")
    assert len(rotated_paths(path)) >= 2 and len(checkpoints) >= 6
    assert read_state_header(state_path(path)).epoch == result.chains[0].last_epoch + 1


def test_stdout_line_is_the_flat_record_marked_audit(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """The stdout copy is the stored record (with its seal) plus `"log": "audit"`, flat."""
    stream = io.StringIO()
    path = tmp_path / "audit.jsonl"
    auditor = auditor_for(path, audit_keys, stream)
    auditor.emit(
        "auth_failure", request_id="r1", client_ip="127.0.0.1", outcome="denied", reason="x"
    )
    shown = audit_records(stream.getvalue())
    stored = file_records(path)
    assert [r["event"] for r in shown] == ["audit_chain_started", "auth_failure"]
    for record in shown:
        assert record.pop("log") == "audit"
    assert shown == stored
    assert list(stored[1])[:7] == ["ts", "event", "request_id", "client_ip", "token", "outcome",
                                   "reason"]  # fmt: skip
    assert list(stored[1])[-4:] == ["seq", "epoch", "prev", "mac"]
    assert stored[1]["ts"].endswith("Z")


def test_token_shaped_values_are_redacted_in_both_sinks(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """A secret passed by mistake never reaches stdout or the file (second line of defence)."""
    stream = io.StringIO()
    path = tmp_path / "audit.jsonl"
    secret = "pc_" + "A" * 43
    auditor = auditor_for(path, audit_keys, stream)
    auditor.emit("x", outcome="info", note=f"Bearer {secret}", raw=secret)
    for text in (stream.getvalue(), path.read_text()):
        assert secret not in text and "Bearer" not in text
    assert file_records(path)[1]["raw"] == "[REDACTED]"


def blocked_path(tmp_path: Path) -> tuple[Path, Path]:
    """An audit path whose parent is a regular file: creating it fails, even as root."""
    blocker = tmp_path / "audit-dir"
    blocker.write_text("not a directory\n")
    return blocker, blocker / "audit.jsonl"


def test_fail_closed_reports_failure_and_keeps_the_event_on_stdout(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """An unwritable file flips `healthy`, emit returns False, and stdout still has everything."""
    _blocker, path = blocked_path(tmp_path)
    stream = io.StringIO()
    auditor = auditor_for(path, audit_keys, stream, on_failure="closed")
    assert auditor.emit("ping", token="pinger", outcome="success", target="127.0.0.1") is False
    assert not auditor.healthy and not auditor.available
    lines = audit_records(stream.getvalue())
    failure = next(r for r in lines if r["event"] == "audit_file_failed")
    assert str(path.parent) in failure["reason"]
    assert failure["reason"].startswith(("NotADirectoryError", "FileExistsError"))
    event = next(r for r in lines if r["event"] == "ping")
    assert event["target"] == "127.0.0.1" and event["audit_file"] == "failed"
    assert "seq" not in event and "mac" not in event  # it holds no place in the chain
    # The failure is logged once, not once per event.
    auditor.emit("ping", outcome="success")
    assert stream.getvalue().count("audit_file_failed") == 1


def test_replacing_the_directory_with_a_file_fails_the_very_first_record(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """The audit directory swapped for a plain file while the file is open: the very next emit
    returns False (fail closed), not the one after it (issue 16, finding 8)."""
    directory = tmp_path / "audit"
    path = directory / "audit.jsonl"
    auditor = auditor_for(path, audit_keys)
    assert auditor.emit("ping", outcome="success", n=0)
    directory.rename(tmp_path / "moved-away")
    directory.write_text("not a directory any more\n")
    assert auditor.emit("ping", outcome="success", n=1) is False
    assert not auditor.available and "NotADirectoryError" in (auditor.last_error or "")
    assert auditor.emit("ping", outcome="success", n=2) is False
    directory.unlink()
    directory.mkdir()
    assert auditor.probe()
    assert auditor.emit("ping", outcome="success", n=3)


def test_the_file_recovers_and_says_what_it_missed(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """When the path becomes writable again the chain starts with a record of the gap."""
    blocker, path = blocked_path(tmp_path)
    auditor = auditor_for(path, audit_keys)
    assert not auditor.emit("ping", outcome="success")
    assert not auditor.emit("ping", outcome="success")
    assert not auditor.probe()
    blocker.unlink()
    blocker.mkdir()
    assert auditor.probe() and auditor.healthy
    assert auditor.emit("ping", outcome="success")
    records = all_records([path])
    assert [r["event"] for r in records] == ["audit_chain_started", "audit_file_recovered", "ping"]
    assert records[1]["missed"] == 2
    assert verify([path], audit_keys.verify).ok


def test_fail_open_lets_the_caller_proceed(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """With `open`, emit returns True (the action proceeds) while `healthy` still says False."""
    _, path = blocked_path(tmp_path)
    auditor = auditor_for(path, audit_keys, on_failure="open")
    assert auditor.emit("ping", outcome="success") is True
    assert not auditor.healthy and auditor.available


FULL_DISK = textwrap.dedent(
    """
    import io, json, resource, signal, sys
    from pathlib import Path
    from pingcalc.audit import Auditor, ChainedFileSink, StdoutSink
    path, key, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    auditor = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, key)])
    assert auditor.emit("ping", outcome="success", n=0)  # the key state exists before the cap
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    results = [auditor.emit("ping", outcome="success", n=n, pad="x" * 150) for n in range(1, 40)]
    print(json.dumps({"results": results, "error": auditor.last_error}))
    """
)


def test_a_write_that_fails_half_way_is_rolled_back(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """A file size cap (RLIMIT_FSIZE, like a full disk) cuts a record in the middle: emit
    returns False from that record on, and the partial bytes are undone (no torn record)."""
    path = tmp_path / "audit.jsonl"
    limit = 2000
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path), str(audit_keys.service), str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(run.stdout)
    results = outcome["results"]
    first_failure = results.index(False)
    assert all(results[:first_failure]) and not any(results[first_failure:])
    assert "File too large" in outcome["error"]
    assert path.stat().st_size < limit  # the record that straddled the cap is gone entirely
    result = verify([path], audit_keys.verify)
    assert result.ok, result.describe()
    assert [r["n"] for r in events([path])] == list(range(first_failure + 1))


def test_without_a_file_only_stdout_is_written() -> None:
    """No PINGCALC_AUDIT_FILE: stdout only, always healthy, no chain fields, no checkpoints."""
    stream = io.StringIO()
    auditor = Auditor([StdoutSink(stream)])
    assert auditor.emit("ping", outcome="success")
    assert auditor.checkpoint() == [] and not auditor.chained
    (record,) = audit_records(stream.getvalue())
    assert "mac" not in record and record["event"] == "ping"


def test_no_key_at_all_fails_closed_with_the_reason(tmp_path: Path) -> None:
    """Without the evolved key state and without the initial key nothing can be sealed: the
    sink fails closed and says why (no unsealed record is written)."""
    path = tmp_path / "audit.jsonl"
    auditor = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, tmp_path / "gone.key")])
    assert auditor.emit("ping", outcome="success") is False
    assert "the initial key" in (auditor.last_error or "") and "is gone" in (
        auditor.last_error or ""
    )
    assert not path.exists() or path.read_bytes() == b""
