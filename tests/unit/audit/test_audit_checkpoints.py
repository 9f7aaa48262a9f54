"""Checkpoints: the chain's head, sealed and shipped off the file, shows a cut tail, a deleted
file or a rewritten record; and the checkpoints reach stdout, syslog and an HTTP collector.

Threat: TM-24 (T1070 indicator removal; NIST AU-9, AU-10, AU-11): a hash chain alone cannot
show that its end was cut or that the whole file was deleted; the last checkpoint that left
the host can. Receivers are real sockets on loopback started by each test.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pingcalc.audit import Auditor, ChainedFileSink, StdoutSink, rotated_paths, run_checkpoints
from pingcalc.audit.chain import seal
from pingcalc.audit.keys import EvolvingKey, read_initial_key
from pingcalc.audit.shipping import HTTP_TIMEOUT_SECONDS, destination
from pingcalc.audit.verify import verify
from tests_support import AuditKeys, audit_records, file_records


class Trail:
    """A real auditor with a file and a log that receives its checkpoints (stdout format)."""

    def __init__(self, path: Path, keys: AuditKeys, **sink_options: Any) -> None:
        self.path = path
        self.keys = keys
        self.log = path.parent / "shipped.log"
        self.shipped = io.StringIO()
        self.auditor = Auditor(
            [StdoutSink(io.StringIO()), ChainedFileSink(path, keys.service, **sink_options)],
            checkpoint_to=[destination("stdout", StdoutSink(self.shipped))],
        )

    def events(self, count: int, start: int = 0) -> None:
        for index in range(start, start + count):
            assert self.auditor.emit("calculation", token="calc", outcome="success", n=index)

    def checkpoint(self) -> dict[str, Any]:
        (record,) = self.auditor.checkpoint()
        return record

    def save_log(self, *other_lines: str) -> Path:
        """The shipped lines, with other log lines mixed in, as a saved container log."""
        noise = '{"ts":"x","level":"info","event":"access","path":"/healthz"}\nplain text\n'
        self.log.write_text(noise + self.shipped.getvalue() + "".join(other_lines) + noise)
        return self.log

    def files(self) -> list[Path]:
        return [*rotated_paths(self.path), self.path] if self.path.exists() else []


@pytest.fixture
def trail(tmp_path: Path, audit_keys: AuditKeys) -> Trail:
    (tmp_path / "audit").mkdir()
    return Trail(tmp_path / "audit" / "audit.jsonl", audit_keys)


def drop_last_lines(path: Path, count: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-count]))


def test_an_intact_trail_verifies_against_its_shipped_checkpoints(trail: Trail) -> None:
    """Every shipped checkpoint is found, byte for byte, in the file: exit 0."""
    for round_ in range(3):
        trail.events(10, start=round_ * 10)
        trail.checkpoint()
    trail.events(2, start=30)
    result = verify(trail.files(), trail.keys.verify, [trail.save_log()])
    assert result.ok, result.describe()
    assert result.checkpoints_matched == 3
    assert result.chains[0].anchored_seq == file_records(trail.path)[-3]["seq"]


def test_a_cut_tail_is_detected_against_the_last_checkpoint(trail: Trail) -> None:
    """Cutting the file back to before the last checkpoint verifies alone (the rest of the
    chain is sound) but fails against the shipped checkpoint, at the line where records are
    missing."""
    trail.events(10)
    trail.checkpoint()
    trail.events(10, start=10)
    last = trail.checkpoint()
    lines_before = len(file_records(trail.path))
    drop_last_lines(trail.path, 6)
    assert verify(trail.files(), trail.keys.verify).ok  # why checkpoints must leave the host
    problem = verify(trail.files(), trail.keys.verify, [trail.save_log()]).problem
    assert problem is not None
    assert (problem.path, problem.line) == (trail.path, lines_before - 5)
    assert problem.reason.startswith(f"records missing after seq {last['seq'] - 6}")
    assert f"reached seq {last['seq']}" in problem.reason and "cut tail" in problem.reason


def test_a_deleted_live_file_is_detected_against_the_last_checkpoint(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """With rotation, deleting the live FILE leaves FILE.1..N consistent; the checkpoint
    shows the missing records."""
    (tmp_path / "audit").mkdir()
    trail = Trail(tmp_path / "audit" / "audit.jsonl", audit_keys, max_bytes=4096)
    trail.events(40)
    trail.checkpoint()
    trail.auditor.close()
    rotated = rotated_paths(trail.path)
    assert rotated
    trail.path.unlink()
    problem = verify(rotated, audit_keys.verify, [trail.save_log()]).problem
    assert problem is not None and problem.path == rotated[-1]
    assert problem.line == len(file_records(rotated[-1])) + 1
    assert "cut tail or deleted file" in problem.reason


def test_a_deleted_trail_is_detected_even_after_a_fresh_start(trail: Trail) -> None:
    """Deleting the audit directory's files and state lets the service start a new trail from
    the initial key; the old trail's checkpoint then matches no file given."""
    trail.events(5)
    trail.checkpoint()
    log = trail.save_log()
    trail.auditor.close()
    for path in trail.path.parent.iterdir():
        if path != log:
            path.unlink()
    again = Trail(trail.path, trail.keys)
    again.events(3)
    again.auditor.close()
    assert verify(again.files(), trail.keys.verify).ok
    problem = verify(again.files(), trail.keys.verify, [log]).problem
    assert problem is not None and problem.path == log
    assert "matches none of the files given" in problem.reason


def test_an_empty_file_is_detected(trail: Trail) -> None:
    """A file emptied in place is refused, with and without checkpoints."""
    trail.events(3)
    trail.auditor.close()
    trail.path.write_bytes(b"")
    problem = verify(trail.files(), trail.keys.verify).problem
    assert problem is not None and (problem.path, problem.line) == (trail.path, 1)
    assert problem.reason.startswith("empty file")


def test_a_record_rewritten_after_its_checkpoint_left_is_detected(trail: Trail) -> None:
    """Even a rewrite by someone who held the key of that epoch (re-sealed consistently)
    differs from the checkpoint shipped before: reported at the checkpoint's line."""
    trail.events(6)
    shipped = trail.checkpoint()
    trail.auditor.close()
    lines = trail.path.read_bytes().splitlines(keepends=True)
    key = read_initial_key(trail.keys.verify)  # the holder of epoch 0's key
    prev = json.loads(lines[2])["mac"]
    for index in range(3, len(lines)):
        record = json.loads(lines[index])
        del record["mac"]
        if index == 3:
            record["token"] = "someone-else"
        record["prev"] = prev
        key.advance_to(record["epoch"])
        lines[index], prev = seal(record, key)
    trail.path.write_bytes(b"".join(lines))
    assert verify(trail.files(), trail.keys.verify).ok
    problem = verify(trail.files(), trail.keys.verify, [trail.save_log()]).problem
    assert problem is not None and problem.line == shipped["seq"] + 1
    assert "rewritten after the checkpoint was shipped" in problem.reason


def test_a_forged_checkpoint_line_is_detected(trail: Trail) -> None:
    """A checkpoint line edited in the log (a smaller seq, to hide a cut) fails its seal."""
    trail.events(4)
    trail.checkpoint()
    forged = trail.shipped.getvalue().replace('"records":6', '"records":2')
    trail.shipped = io.StringIO(forged)
    problem = verify(trail.files(), trail.keys.verify, [trail.save_log()]).problem
    assert problem is not None and problem.path == trail.log
    assert problem.reason.startswith("checkpoint seal mismatch")


def test_checkpoints_in_container_and_syslog_wrappers_and_of_other_keys(
    trail: Trail, tmp_path: Path
) -> None:
    """The LOG may be a docker json-file log or a syslog file; checkpoints of another key
    (another deployment) are ignored, not judged."""
    trail.events(4)
    line = audit_records(trail.shipped.getvalue())
    trail.checkpoint()
    shipped = trail.shipped.getvalue().strip()
    assert line == [] and shipped
    docker = json.dumps({"log": shipped + "\n", "stream": "stdout", "time": "2026-01-01T00:00Z"})
    syslog = f"Jan  1 00:00:00 host pingcalc: {shipped}"
    other = Trail(tmp_path / "other" / "audit.jsonl", AuditKeys.create(tmp_path / "k2"))
    other.events(2)
    other.checkpoint()
    for wrapped in (docker, syslog):
        trail.shipped = io.StringIO(wrapped + "\n" + other.shipped.getvalue())
        result = verify(trail.files(), trail.keys.verify, [trail.save_log()])
        assert result.ok, result.describe()
        assert (result.checkpoints_matched, result.checkpoints_ignored) == (1, 1)


def test_a_log_without_any_checkpoint_of_this_key_fails(trail: Trail) -> None:
    """`--checkpoints` with a log that anchors nothing is refused: nothing proves the tail."""
    trail.events(4)
    problem = verify(trail.files(), trail.keys.verify, [trail.save_log()]).problem
    assert problem is not None and problem.path == trail.log
    assert problem.reason.startswith("no checkpoint sealed with this key")


def test_run_checkpoints_anchors_the_head_every_interval(trail: Trail) -> None:
    """The lifespan's driver checkpoints on its own, off the event loop, until cancelled."""

    async def drive() -> None:
        task = asyncio.create_task(run_checkpoints(trail.auditor, 0.05))
        for index in range(3):
            trail.events(2, start=index * 2)
            await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(drive())
    checkpoints = [r for r in file_records(trail.path) if r["event"] == "audit_checkpoint"]
    assert len(checkpoints) == 3
    assert [r["epoch"] for r in checkpoints] == [0, 1, 2]
    assert len(audit_records(trail.shipped.getvalue())) == 3


def test_checkpoints_are_not_repeated_while_nothing_happens(trail: Trail) -> None:
    """No new record, no new checkpoint: an idle service does not fill its trail."""
    trail.events(1)
    assert trail.auditor.checkpoint()
    assert trail.auditor.checkpoint() == []
    trail.auditor.close()
    assert [r["event"] for r in file_records(trail.path)].count("audit_checkpoint") == 1


# --- shipping to real receivers on loopback --------------------------------------------------


def shipping_auditor(path: Path, keys: AuditKeys, *targets: str) -> tuple[Auditor, io.StringIO]:
    stream = io.StringIO()
    stdout = StdoutSink(stream)
    return (
        Auditor(
            [stdout, ChainedFileSink(path, keys.service)],
            checkpoint_to=[destination(t, stdout) for t in targets],
        ),
        stream,
    )


def test_checkpoints_reach_syslog_over_udp_and_a_unix_socket(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """syslog://127.0.0.1:PORT and syslog:///path each receive the sealed checkpoint, as a
    syslog message (facility authpriv) that `verify` reads."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        udp.bind(("127.0.0.1", 0))
        unix.bind(str(tmp_path / "log.sock"))
        for receiver in (udp, unix):
            receiver.settimeout(5)
        port = udp.getsockname()[1]
        auditor, _ = shipping_auditor(
            tmp_path / "audit.jsonl",
            audit_keys,
            f"syslog://127.0.0.1:{port}",
            f"syslog://{tmp_path / 'log.sock'}",
        )
        auditor.emit("ping", outcome="success")
        (shipped,) = auditor.checkpoint()
        messages = [receiver.recv(65536).decode() for receiver in (udp, unix)]
    finally:
        udp.close()
        unix.close()
    for message in messages:
        assert message.startswith("<86>pingcalc: {")  # authpriv (10) * 8 + info (6)
        received = json.loads(message.split(": ", 1)[1].rstrip("\x00"))
        assert received["mac"] == shipped["mac"] and received["event"] == "audit_checkpoint"
    log = tmp_path / "syslog.log"
    log.write_text("".join(f"Jan  1 00:00:00 host {m.split('>', 1)[1]}\n" for m in messages))
    result = verify([tmp_path / "audit.jsonl"], audit_keys.verify, [log])
    assert result.ok and result.checkpoints_matched == 2, result.describe()


class Collector:
    """An HTTP collector on loopback that keeps what it is sent (or never answers)."""

    def __init__(self, *, hang: bool = False) -> None:
        received: list[bytes] = []
        self.received = received
        self.connected = threading.Event()
        self.release = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                collector.connected.set()
                if hang:
                    collector.release.wait(30)
                    return
                length = int(self.headers["Content-Length"])
                received.append(self.rfile.read(length))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/checkpoints"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.stop()


@pytest.fixture
def hung_collector() -> Iterator[Collector]:
    server = Collector(hang=True)
    yield server
    server.stop()


def test_checkpoints_reach_an_http_collector(
    tmp_path: Path, audit_keys: AuditKeys, collector: Collector
) -> None:
    """Each checkpoint is POSTed as one JSON record; the collector's copy verifies the file."""
    auditor, _ = shipping_auditor(tmp_path / "audit.jsonl", audit_keys, collector.url)
    for _ in range(2):
        auditor.emit("ping", outcome="success")
        auditor.checkpoint()
    auditor.close()
    assert len(collector.received) == 2
    log = tmp_path / "collected.log"
    log.write_bytes(b"".join(collector.received))
    result = verify([tmp_path / "audit.jsonl"], audit_keys.verify, [log])
    assert result.ok and result.checkpoints_matched == 2, result.describe()


def test_a_hung_collector_delays_no_event_and_is_reported(
    tmp_path: Path, audit_keys: AuditKeys, hung_collector: Collector
) -> None:
    """A collector that accepts and never answers: while the checkpoint waits for it, emit
    goes on (the lock is not held); after the deadline the failure is reported on stdout and
    the next checkpoint is not blocked by the last."""
    auditor, stream = shipping_auditor(tmp_path / "audit.jsonl", audit_keys, hung_collector.url)
    auditor.emit("ping", outcome="success", n=0)
    shipping = threading.Thread(target=auditor.checkpoint)
    started = time.monotonic()
    shipping.start()
    assert hung_collector.connected.wait(10)
    assert auditor.emit("ping", outcome="success", n=1)  # not held up by the collector
    assert shipping.is_alive()
    shipping.join(HTTP_TIMEOUT_SECONDS * 4)
    assert not shipping.is_alive()
    assert time.monotonic() - started < HTTP_TIMEOUT_SECONDS * 4
    unshipped = [
        r for r in audit_records(stream.getvalue()) if r["event"] == "audit_checkpoint_unshipped"
    ]
    assert len(unshipped) == 1 and unshipped[0]["reason"].startswith("TimeoutError")
    assert unshipped[0]["destination"] == hung_collector.url
    assert [r["n"] for r in file_records(tmp_path / "audit.jsonl") if r["event"] == "ping"] == [
        0,
        1,
    ]


def test_an_unreachable_collector_is_reported_and_auditing_goes_on(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """A refused connection is one `audit_checkpoint_unshipped` line; events still succeed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    auditor, stream = shipping_auditor(
        tmp_path / "audit.jsonl", audit_keys, f"http://127.0.0.1:{port}/c"
    )
    assert auditor.emit("ping", outcome="success")
    assert auditor.checkpoint()
    assert auditor.emit("ping", outcome="success")
    reasons = [
        r["reason"]
        for r in audit_records(stream.getvalue())
        if r["event"] == "audit_checkpoint_unshipped"
    ]
    assert len(reasons) == 1 and "ConnectionRefusedError" in reasons[0]


def test_destinations_are_checked_when_settings_are_read() -> None:
    """A typo in PINGCALC_AUDIT_CHECKPOINT_TO is a settings error, not a silent no-op."""
    from pingcalc.settings import SettingsError, load_settings

    good = load_settings(_env_file=None, audit_checkpoint_to="stdout, syslog:///dev/log")
    assert good.audit_checkpoint_to == ["stdout", "syslog:///dev/log"]
    for bad in ("stdot", "syslog://host", "http://user:pw@collector/", "ftp://x/"):
        with pytest.raises(SettingsError, match="PINGCALC_AUDIT_CHECKPOINT_TO"):
            load_settings(_env_file=None, audit_checkpoint_to=bad)


def test_unused_key_helpers_stay_private(audit_keys: AuditKeys) -> None:
    """A key's repr never shows the key (it may end up in a traceback)."""
    key: EvolvingKey = read_initial_key(audit_keys.service)
    assert key.hex().decode() not in repr(key)
