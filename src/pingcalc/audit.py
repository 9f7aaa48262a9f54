"""Audit events: who did what, with which outcome, separate from the access log.

Every event is one flat JSON line on stdout, marked ``"log": "audit"``, with the fixed fields
``ts, event, request_id, client_ip, token, outcome, reason`` plus event-specific ones. The
token field is always a token *name*; the secret never reaches this module.

With ``PINGCALC_AUDIT_FILE`` the same records are also appended to a JSON-lines file as a
hash chain: each record carries ``seq``, ``prev`` (the previous record's hash) and ``hash``
(SHA-256 of the record's own bytes without the hash), so editing, inserting, deleting or
reordering a record in the middle breaks the chain at that line (`verify`). The format is
in docs/audit.md; the writer and `verify` below are its reference implementation.

Durability: each record is handed to the kernel with one ``write(2)`` before `emit` returns
(it survives a crash or SIGKILL of the process); ``fsync`` runs at rotation and shutdown,
not per record, because a per-record fsync costs milliseconds on real disks. Writers in
several processes (``--workers``) serialise on an ``flock`` and re-read the tail when another
process appended, so the chain stays one chain.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from pingcalc.logs import json_line, redact_secrets, utc_timestamp

FIXED_FIELDS = ("request_id", "client_ip", "token", "outcome", "reason")
# Chain fields the file sink adds; callers cannot set them (a forged `prev` or `hash`).
CHAIN_FIELDS = ("seq", "prev", "hash")
# Set here, never by a caller (a forged `ts`, `prev` or `hash`).
RESERVED_FIELDS = ("ts", "log", *CHAIN_FIELDS)
# `prev` of the first record ever written.
GENESIS = "0" * 64
# The hash is the last member of every line, in exactly this form.
_HASH_SUFFIX = re.compile(rb',"hash":"([0-9a-f]{64})"\}\n?\Z')
# How much of a file's end is read to find its last record; records are far smaller.
TAIL_BYTES = 64 * 1024
FILE_MODE = 0o600

FailurePolicy = Literal["closed", "open"]
Observer = Callable[[dict[str, Any]], None]


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut (bounds record size)."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…" if limit > 0 else ""


def seal(record: dict[str, Any]) -> bytes:
    """The file line for `record` (which has `prev`, no `hash`): its bytes plus their SHA-256."""
    body = json_line(record).encode("ascii")
    digest = hashlib.sha256(body).hexdigest()
    return body[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}\n'


def _scrub(record: dict[str, Any]) -> dict[str, Any]:
    # Second line of defence: nothing token-shaped reaches a sink even if a caller slips.
    return dict(redact_secrets(None, "audit", record))


def rotated_paths(path: Path) -> list[Path]:
    """`path.1`, `path.2`, ... that exist, oldest (lowest number) first."""
    found: list[tuple[int, Path]] = []
    prefix = path.name + "."
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            suffix = entry.name[len(prefix) :]
            if entry.name.startswith(prefix) and suffix.isdigit():
                found.append((int(suffix), entry))
    return [p for _, p in sorted(found)]


def _read_tail(fd: int, size: int) -> dict[str, Any] | None:
    """The last complete record in the open file `fd` of `size` bytes, or None if empty."""
    if size == 0:
        return None
    start = max(0, size - TAIL_BYTES)
    data = os.pread(fd, size - start, start)
    lines = data.rstrip(b"\n").rsplit(b"\n", 1)
    last = lines[-1]
    try:
        record: dict[str, Any] = json.loads(last)
        if isinstance(record.get("hash"), str) and isinstance(record.get("seq"), int):
            return record
    except ValueError:
        pass
    raise ValueError("the last line is not a sealed audit record")


class Auditor:
    """Writes audit events to stdout and, optionally, to a hash-chained JSON-lines file."""

    def __init__(
        self,
        file: Path | None = None,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        on_failure: FailurePolicy = "closed",
        stream: TextIO | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.file = file
        self.max_bytes = max_bytes
        self.on_failure = on_failure
        self._stream = stream
        self.observer = observer
        self.healthy = True
        self.last_error: str | None = None
        # Records that reached stdout only while the file was failing (reported on recovery).
        self.missed = 0
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._offset = 0
        self._prev = GENESIS
        self._seq = -1

    # --- public ---------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether audited actions may proceed: the sink works, or the policy is fail-open."""
        return self.healthy or self.on_failure == "open"

    def emit(self, event: str, **fields: Any) -> bool:
        """Record one event; False only if the file failed and the policy is fail-closed."""
        record: dict[str, Any] = {"ts": utc_timestamp(), "event": event}
        for name in FIXED_FIELDS:
            record[name] = fields.pop(name, None)
        for name in RESERVED_FIELDS:
            fields.pop(name, None)
        record.update(fields)
        record = _scrub(record)
        written = self._write_file(record) if self.file is not None else True
        self._print(record)
        if self.observer is not None:
            with contextlib.suppress(Exception):  # metrics must never break auditing
                self.observer(record)
        return written or self.on_failure == "open"

    def probe(self) -> bool:
        """Retry a failing file now (readiness); True when the file sink works."""
        if self.file is not None and not self.healthy:
            with self._lock:
                self._recover()
        return self.healthy

    def close(self) -> None:
        """Flush the file to disk and close it (shutdown)."""
        with self._lock:
            self._close()

    # --- stdout ----------------------------------------------------------------------------

    def _print(self, record: dict[str, Any]) -> None:
        stream = self._stream or sys.stdout
        # The record itself, marked so that log pipelines can route it apart from access lines.
        shown = {"log": "audit", **record}
        shown["log"] = "audit"
        line = json_line(shown)
        with contextlib.suppress(OSError, ValueError):  # a closed stdout must not stop requests
            stream.write(line + "\n")
            stream.flush()

    def _print_failure(self, event: str, error: str) -> None:
        record: dict[str, Any] = {
            "ts": utc_timestamp(),
            "event": event,
            **dict.fromkeys(FIXED_FIELDS),
        }
        record.update(outcome="error", reason=error, file=str(self.file))
        record["on_failure"] = self.on_failure
        self._print(record)

    # --- file sink -----------------------------------------------------------------------

    def _write_file(self, record: dict[str, Any]) -> bool:
        with self._lock:
            if not self.healthy and not self._recover():
                self.missed += 1
                record["audit_file"] = "failed"
                return False
            try:
                self._append(record)
            except OSError as exc:
                self._fail(exc)
                self.missed += 1
                record["audit_file"] = "failed"
                return False
            return True

    def _fail(self, exc: OSError) -> None:
        error = f"{type(exc).__name__}: {exc.strerror or exc}"
        if exc.filename:
            error += f": {exc.filename}"
        self._close()
        if self.healthy:
            self._print_failure("audit_file_failed", error)
        self.healthy = False
        self.last_error = error

    def _recover(self) -> bool:
        """Try to write an `audit_file_recovered` record; on success the sink is healthy."""
        marker: dict[str, Any] = {"ts": utc_timestamp(), "event": "audit_file_recovered"}
        marker.update(dict.fromkeys(FIXED_FIELDS))
        marker.update(outcome="info", missed=self.missed, error=self.last_error)
        try:
            self._append(marker)
        except OSError:
            self._close()
            return False
        self.healthy = True
        self.last_error = None
        self.missed = 0
        self._print(marker)
        return True

    def _open(self) -> int:
        if self.file is None:  # only reached with a file configured
            raise RuntimeError("no audit file")
        # A dedicated directory, private to the service (records name tokens and clients).
        self.file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.file, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        self._fd = fd
        self._offset = -1  # unknown: the tail is read under the lock before the first write
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _sync_with_file(self, fd: int) -> int:
        """Under the lock: make `prev`/`seq` follow what is really at the end of the file."""
        size = os.fstat(fd).st_size
        if size == self._offset:
            return size
        try:
            last = _read_tail(fd, size) if size else self._last_rotated()
        except ValueError:
            # A damaged tail (a crash mid-write, or an edit): keep writing; verify reports it.
            self._print_failure("audit_file_tail_unreadable", "the chain restarts at genesis")
            last = None
        self._prev = last["hash"] if last else GENESIS
        self._seq = int(last["seq"]) if last else -1
        return size

    def _last_rotated(self) -> dict[str, Any] | None:
        if self.file is None:  # only reached with a file configured
            raise RuntimeError("no audit file")
        older = rotated_paths(self.file)
        if not older:
            return None
        with older[-1].open("rb") as handle:
            return _read_tail(handle.fileno(), os.fstat(handle.fileno()).st_size)

    def _locked_fd(self) -> int:
        """The open file, exclusively locked and still the one at `self.file` (not rotated)."""
        if self.file is None:  # only reached with a file configured
            raise RuntimeError("no audit file")
        while True:
            fd = self._fd if self._fd is not None else self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = self.file.stat()
                mine = os.fstat(fd)
            except OSError:
                fcntl.flock(fd, fcntl.LOCK_UN)
                self._close()
                raise
            if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                return fd
            # Another process rotated the file: follow it to the new one.
            fcntl.flock(fd, fcntl.LOCK_UN)
            self._close()

    def _append(self, record: dict[str, Any]) -> None:
        fd = self._locked_fd()
        try:
            size = self._sync_with_file(fd)
            record["seq"] = self._seq + 1
            record["prev"] = self._prev
            line = seal(record)
            if size > 0 and size + len(line) > self.max_bytes:
                fd = self._rotate(fd)
                size = 0
            _write_all(fd, line, size)
            record["hash"] = line[-67:-3].decode("ascii")
            self._prev = record["hash"]
            self._seq = record["seq"]
            self._offset = size + len(line)
        except BaseException:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)

    def _rotate(self, fd: int) -> int:
        """Rename the full file to the next `FILE.N`; the chain continues in a fresh file."""
        if self.file is None:  # only reached with a file configured
            raise RuntimeError("no audit file")
        os.fsync(fd)
        older = rotated_paths(self.file)
        number = int(older[-1].name.rsplit(".", 1)[1]) + 1 if older else 1
        self.file.replace(self.file.with_name(f"{self.file.name}.{number}"))
        new_fd = os.open(
            self.file,
            os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
            FILE_MODE,
        )
        fcntl.flock(new_fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self._fd = new_fd
        return new_fd


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """Append `data` completely, or undo the partial write and raise (no torn records)."""
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError:
        if written:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, offset)
        raise


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of `verify`: intact, or the first broken record."""

    ok: bool
    records: int
    files: int
    file: Path | None = None
    line: int | None = None
    problem: str | None = None
    # The hash of the last intact record: compare with the stdout copy to detect a cut tail.
    last_hash: str | None = None
    # seq of the first record: above 0 when the files continue an earlier one (or a cut head).
    first_seq: int | None = None

    def describe(self) -> str:
        """`FILE:LINE: what is wrong`, or a one-line summary when intact."""
        if not self.ok:
            return f"{self.file}:{self.line}: {self.problem}"
        text = f"intact: {self.records} records in {self.files} file(s)"
        if self.first_seq:
            text += (
                f"; the first record has seq {self.first_seq}, so these files continue an "
                "earlier one (pass it too to check the link)"
            )
        return text + f"; last hash {self.last_hash or GENESIS}"


def order_files(paths: Iterable[Path]) -> list[Path]:
    """Rotated files `X.1`, `X.2`, ... before the live `X`; other names keep their order."""

    def key(item: tuple[int, Path]) -> tuple[str, int, int]:
        index, path = item
        base, _, suffix = path.name.rpartition(".")
        if suffix.isdigit() and base:
            return (str(path.with_name(base)), 0, int(suffix))
        return (str(path), 1, index)

    return [p for _, p in sorted(enumerate(paths), key=key)]


@dataclass(slots=True)
class _Link:
    """The last intact record seen so far: what the next record must point at."""

    hash: str | None = None  # None: the first file may continue a chain we were not given
    seq: int | None = None
    where: str = ""


def verify(paths: Sequence[Path]) -> VerifyResult:
    """Check the hash chain through `paths` (ordered with `order_files`); the first break wins.

    Raises OSError when a file cannot be read.
    """
    link = _Link()
    count = 0
    first_seq: int | None = None
    ordered = order_files(paths)
    for path in ordered:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                problem = _check_line(raw, link)
                if problem is not None:
                    return VerifyResult(
                        False, count, len(ordered), path, number, problem, link.hash, first_seq
                    )
                record = json.loads(raw)
                if first_seq is None:
                    first_seq = record["seq"]
                link = _Link(record["hash"], record["seq"], f"line {number}")
                count += 1
        if link.hash is not None:
            link.where = f"the last line of {path.name}"
    return VerifyResult(True, count, len(ordered), last_hash=link.hash, first_seq=first_seq)


def _check_line(raw: bytes, link: _Link) -> str | None:
    """What is wrong with one line, given the last intact record before it; None if nothing."""
    if not raw.endswith(b"\n"):
        return "not valid JSON (truncated?): the last line has no end"
    try:
        record = json.loads(raw)
    except ValueError:
        return "not valid JSON (truncated?)"
    match = _HASH_SUFFIX.search(raw)
    if (
        not isinstance(record, dict)
        or match is None
        or not isinstance(record.get("prev"), str)
        or not isinstance(record.get("seq"), int)
    ):
        return "not a sealed audit record (no seq, prev or trailing hash)"
    # The hash covers the exact bytes written, so even a whitespace edit is caught.
    body = raw[: match.start()] + b"}"
    if hashlib.sha256(body).hexdigest() != match.group(1).decode("ascii"):
        return "hash mismatch (record edited)"
    if link.hash is not None and record["prev"] != link.hash:
        return f"prev does not match {link.where}'s hash (line deleted, inserted or reordered)"
    if link.hash is None and record["prev"] == GENESIS and record["seq"] != 0:
        return "the first record of a chain must have seq 0"
    if link.seq is not None and record["seq"] != link.seq + 1:
        return f"seq {record['seq']} does not follow {link.seq} (records spliced)"
    return None
