"""The chained file sink: records sealed into one JSON-lines file (format in chain.py).

Durability: each record is handed to the kernel with one ``write(2)`` before `write` returns
(it survives a crash or SIGKILL of the process); a write that fails half-way is undone
(``ftruncate``), so a failure never leaves a torn record. ``fsync`` runs at rotation, at each
checkpoint and at close, not per record (milliseconds per request on real disks).

Several processes (``--workers``, the CLI) serialise on an ``flock`` of the live file, follow
each other's rotations (inode check), re-read the tail when another process appended, and
follow another process's key evolution: the tail's epoch says which key comes next, and a
key can be evolved forward by anyone holding an earlier one. Not thread-safe: the Auditor
serialises calls.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pingcalc.audit.chain import (
    CHECKPOINT_EVENT,
    CUT_EVENT,
    GENESIS,
    GENESIS_EVENT,
    Sealed,
    read_head,
    read_tail,
    rotated_paths,
    seal,
)
from pingcalc.audit.errors import AuditKeyError, KeyNotSavedError
from pingcalc.audit.fields import CHAIN_FIELDS, shape
from pingcalc.audit.keys import (
    EvolvingKey,
    KeyState,
    open_sealing_key,
    read_state,
    read_state_header,
    state_path,
    write_state,
)
from pingcalc.filelock import lock_exclusive

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Records name tokens and clients: a directory and files private to the service.
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
# Longest wait for the file's lock, and the pause between tries (see `_lock`).
LOCK_WAIT_SECONDS = 0.2

Notice = Callable[[dict[str, Any]], None]


def _drop(_record: dict[str, Any]) -> None:
    """The default notice handler: a sink alone has nowhere else to report."""


# A checkpoint time this far in the future is not believed (workers share one host clock):
# an intruder who edits the state file's readable first line must not stop checkpoints.
CLOCK_SKEW_SECONDS = 5.0
# Most epochs a file's last record may be ahead of the key this process holds before the
# tail is taken as forged (another worker's checkpoints, one per interval, never get near it):
# a forged far-future epoch must not make the writer hash its key for ever under the lock.
MAX_EPOCH_GAP = 10_000


def _recent(checkpointed: float | None, interval: float) -> bool:
    """Whether another process checkpointed less than `interval` seconds ago."""
    if checkpointed is None:
        return False
    elapsed = time.time() - checkpointed
    return -CLOCK_SKEW_SECONDS <= elapsed < interval


class _Head(NamedTuple):
    """The last record of the chain: what the next record points at, and with which key."""

    seq: int
    mac: str
    epoch: int
    checkpoint: bool

    @classmethod
    def of(cls, sealed: Sealed) -> _Head:
        return cls(sealed.seq, sealed.mac, sealed.epoch, sealed.is_checkpoint)

    @property
    def next_epoch(self) -> int:
        """A checkpoint closes its epoch: the record after it is sealed with the next key."""
        return self.epoch + 1 if self.checkpoint else self.epoch


class ChainedFileSink:
    """Seals records into `path` (rotated at `max_bytes`) with the key evolving beside it."""

    def __init__(
        self, path: Path, key_file: Path | None, *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.path = path
        self.name = str(path)
        self.key_file = key_file
        self.max_bytes = max_bytes
        # Records for the stream sinks only: a new chain's genesis, a damaged tail.
        self.notice: Notice = _drop
        self._state_path = state_path(path)
        self._fd: int | None = None
        self._offset = -1  # the file size after our last write; -1: unknown
        self._head: _Head | None = None
        self._key: EvolvingKey | None = None
        self._state: KeyState | None = None  # as last read from, or written to, the state file
        # A cut found by `_sync`, sealed into the file before the next record.
        self._pending_cut: dict[str, int] | None = None

    # --- the sink interface ------------------------------------------------------------------

    def write(self, record: dict[str, Any]) -> str:
        """Seal `record` after the head and append it; the line as written (without its end).

        Raises OSError or AuditKeyError when it was not written (and leaves no chain fields in
        `record`: the stdout copy must not claim a place in the chain).
        """
        size = self._locked_fd()
        try:
            line = self._append(record, size)
        except BaseException:
            for name in CHAIN_FIELDS:
                record.pop(name, None)
            self._release(close=True)
            raise
        self._release(close=False)
        return line

    def checkpoint(self, min_interval: float = 0.0) -> dict[str, Any] | None:
        """Seal the head into a checkpoint record, fsync, then evolve the key; the record.

        None when there is nothing new to anchor, or when another process checkpointed less
        than `min_interval` seconds ago (one checkpoint per interval, not one per worker).
        """
        if self._fd is None and not self.path.exists():
            return None  # nothing was ever written here: no chain to anchor
        size = self._locked_fd()
        try:
            record = self._checkpoint(min_interval, size)
        except BaseException:
            self._release(close=True)
            raise
        self._release(close=False)
        return record

    def close(self) -> None:
        """Flush the file to disk, close it, and erase the key from memory."""
        self._close_fd(sync=True)
        if self._key is not None:
            self._key.erase()
        self._key = None
        self._state = None

    # --- under the lock ----------------------------------------------------------------------

    def _release(self, *, close: bool) -> None:
        """Unlock; after a failure also close, so the next write rereads everything."""
        self._unlock()
        if close:
            self._close_fd(sync=False)

    def _append(self, record: dict[str, Any], size: int) -> str:
        """Under the lock, with the file `size` bytes long: seal and write `record`."""
        self._sync(size)
        key = self._current_key()
        data = b""
        genesis: dict[str, Any] | None = None
        if self._head is None:
            genesis, data = self._genesis(key, record.get("ts"))
            self._head = _Head(0, genesis["mac"], key.epoch, False)
        if self._pending_cut is not None:
            cut = shape(CUT_EVENT, {"outcome": "error", "reason": "records_removed"})
            cut.update(self._pending_cut)
            cut.update(seq=self._head.seq + 1, epoch=key.epoch, prev=self._head.mac)
            line, cut["mac"] = seal(cut, key)
            data += line
            self._head = _Head(cut["seq"], cut["mac"], key.epoch, False)
            self._pending_cut = None
        head = self._head
        record["seq"] = head.seq + 1
        record["epoch"] = key.epoch
        record["prev"] = head.mac
        line, mac = seal(record, key)
        data += line
        if size > 0 and size + len(data) > self.max_bytes:
            self._rotate()
            size = 0
        _write_all(self._fd_now(), data, size)
        record["mac"] = mac
        self._head = _Head(record["seq"], mac, key.epoch, record["event"] == CHECKPOINT_EVENT)
        self._offset = size + len(data)
        if genesis is not None:
            self.notice(genesis)
        return line[:-1].decode("ascii")

    def _genesis(self, key: EvolvingKey, ts: object) -> tuple[dict[str, Any], bytes]:
        """The first record of a new chain; its id is saved in the state before it is written."""
        chain = secrets.token_hex(16)
        previous = self._state
        checkpointed = previous.checkpointed if previous else None
        state = KeyState(key.key_id, key.epoch, chain, checkpointed)
        write_state(self._state_path, state, key)
        self._state = state
        fields: dict[str, Any] = {"outcome": "info", "chain": chain, "key_id": key.key_id}
        if key.epoch > 0:
            # The key has evolved, so records of earlier epochs existed: their files are gone.
            fields.update(outcome="error", reason="earlier_epochs_missing")
        record = shape(GENESIS_EVENT, fields)
        if isinstance(ts, str):
            record["ts"] = ts  # the time of the record that opened the chain: times stay in order
        record.update(seq=0, epoch=key.epoch, prev=GENESIS)
        line, record["mac"] = seal(record, key)
        return record, line

    def _checkpoint(self, min_interval: float, size: int) -> dict[str, Any] | None:
        self._sync(size)
        head = self._head
        if head is None or head.checkpoint:
            return None
        try:
            disk = read_state_header(self._state_path)
        except FileNotFoundError:  # removed behind our back: the write below recreates it
            disk = self._state or KeyState(self._current_key().key_id, self._current_key().epoch)
        if disk.epoch > self._current_key().epoch:
            self._adopt_state()
        if min_interval and _recent(disk.checkpointed, min_interval):
            return None
        key = self._current_key()
        chain = disk.chain or self._chain_from_files()
        record = shape(
            CHECKPOINT_EVENT,
            {"outcome": "info", "chain": chain, "key_id": key.key_id, "records": head.seq + 2},
        )
        self._append(record, size)
        # The records a checkpoint vouches for reach the disk before the checkpoint leaves.
        os.fsync(self._fd_now())
        key.advance_to(key.epoch + 1)  # k_e is overwritten: nothing here can seal epoch e again
        state = KeyState(key.key_id, key.epoch, chain, time.time())
        try:
            write_state(self._state_path, state, key)
        except OSError as exc:
            # The old key is still on disk: the sink fails (closed) until the new one is saved
            # (the next write retries it), and the checkpoint, durable in the file, still ships.
            raise KeyNotSavedError(record, exc) from exc
        self._state = state
        return record

    def _sync(self, size: int) -> None:
        """Make head and key follow what is really at the end of the file (`size` bytes)."""
        fd = self._fd_now()
        if size != self._offset or self._key is None:
            if self._key is None:
                self._state, self._key = open_sealing_key(self.path, self.key_file)
            elif 0 < size < self._offset:
                # The file we hold shrank behind our back: records were cut. Said on the
                # streams now and sealed into the file, where `audit verify` reports it.
                self._cut(self._offset, size)
            try:
                last = read_tail(fd, size) if size else self._last_rotated()
                if last is not None and not self._trusted(last):
                    raise ValueError("the last record is not sealed by this trail's key")
            except ValueError:
                # A damaged tail (a crash mid-write, or an edit): keep writing; verify reports it.
                self.notice(self._problem("audit_file_tail_unreadable", "a new chain starts here"))
                last = None
            self._head = _Head.of(last) if last else None
            if self._head is not None:
                self._key.advance_to(self._head.next_epoch)  # another process checkpointed
            self._offset = size
        if self._state is None or self._state.epoch < self._current_key().epoch:
            self._persist()

    def _trusted(self, last: Sealed) -> bool:
        """Whether the file's last record was sealed by this trail's key at its epoch.

        Its epoch may be ahead of ours (another worker checkpointed): the state file then
        holds that key; a forged epoch far ahead, or a record no key of ours sealed, is not
        followed.
        """
        key = self._current_key()
        if last.epoch > key.epoch:
            with contextlib.suppress(OSError, AuditKeyError):
                if read_state_header(self._state_path).epoch >= last.epoch:
                    self._adopt_state()
                    key = self._current_key()
        if not 0 <= last.epoch - key.epoch <= MAX_EPOCH_GAP:
            # Behind our key: sealed by a key this process no longer holds (a checkpoint it
            # closed was cut, or an old record was replayed); far ahead: forged.
            return last.epoch == key.epoch - 1 and last.is_checkpoint
        probe = key.copy()
        try:
            probe.advance_to(last.epoch)
            return last.sealed_by(probe)
        finally:
            probe.erase()

    def _cut(self, expected: int, found: int) -> None:
        """Record that the file was cut from `expected` to `found` bytes (the streams at once,
        then the file itself, right after what is left of it)."""
        problem = self._problem(CUT_EVENT, f"the file shrank from {expected} to {found} bytes")
        problem.update(expected_bytes=expected, found_bytes=found)
        self.notice(problem)
        self._pending_cut = {"expected_bytes": expected, "found_bytes": found}

    def _persist(self) -> None:
        """Save the evolved key unless another process already did (or went further)."""
        key = self._current_key()
        try:
            disk: KeyState | None = read_state_header(self._state_path)
        except (OSError, AuditKeyError):
            disk = None
        if disk is not None and disk.epoch > key.epoch:
            self._adopt_state()
            return
        if disk is not None and disk.epoch == key.epoch:
            self._state = disk
            return
        base = disk or self._state
        state = KeyState(
            key.key_id, key.epoch, base.chain if base else None, base.checkpointed if base else None
        )
        write_state(self._state_path, state, key)
        self._state = state  # only once it is on disk: a failure is retried at the next write

    def _adopt_state(self) -> None:
        """Take the state file's key: it is ahead of ours (never seal with an older key)."""
        state, newer = read_state(self._state_path)
        if self._key is not None:
            self._key.erase()
        self._state, self._key = state, newer

    def _current_key(self) -> EvolvingKey:
        if self._key is None:  # _sync loads it before anything seals
            raise AuditKeyError("no sealing key loaded")
        return self._key

    def _chain_from_files(self) -> str | None:
        """The chain id from the genesis record, when the state lost it."""
        first = read_head((rotated_paths(self.path) or [self.path])[0])
        chain = first.record.get("chain") if first and first.is_genesis else None
        return chain if isinstance(chain, str) else None

    def _last_rotated(self) -> Sealed | None:
        older = rotated_paths(self.path)
        if not older:
            return None
        with older[-1].open("rb") as handle:
            return read_tail(handle.fileno(), os.fstat(handle.fileno()).st_size)

    def _problem(self, event: str, error: str) -> dict[str, Any]:
        return shape(event, {"outcome": "error", "reason": error, "file": self.name})

    # --- the file ----------------------------------------------------------------------------

    def _fd_now(self) -> int:
        if self._fd is None:  # only called under the lock, which opens it
            raise OSError("the audit file is not open")
        return self._fd

    def _open(self) -> int:
        self.path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        # Never through a symlink, and only a regular file: a link to /dev/null (or a FIFO)
        # in place of the trail would swallow every record while looking writable.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.path, flags, FILE_MODE)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "the audit file is not a regular file", str(self.path))
        self._fd = fd
        self._offset = -1  # unknown: the tail is read under the lock before the first write
        return self._fd

    def _close_fd(self, *, sync: bool) -> None:
        if self._fd is not None:
            if sync:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _unlock(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _locked_fd(self) -> int:
        """Lock the open file, still the one at `path` (not rotated away); its size."""
        while True:
            fd = self._fd if self._fd is not None else self._open()
            _lock(fd, self.name)
            try:
                # Per record: os.lstat costs a fraction of Path.lstat; a link in the file's
                # place is not the file (it is refused when reopened).
                current = os.lstat(self.name)
                mine = os.fstat(fd)
            except OSError:
                # The file or its directory was removed or replaced: this record fails now.
                self._unlock()
                self._close_fd(sync=False)
                raise
            if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                return mine.st_size
            # Another process rotated the file: follow it to the new one.
            self._unlock()
            self._close_fd(sync=False)

    def _rotate(self) -> None:
        """Give the full file the next `FILE.N` name; the chain continues in a fresh file.

        The path is never missing, not even for a moment: the fresh file is made and locked
        under a hidden name, the full one gets its `.N` name as a second link, and the fresh one
        is renamed over the path. A writer in another process (a worker) that opens or checks
        the path at any moment finds a file there, whose lock it then waits for. Renaming the
        full file away first left a gap in which another writer failed its record (no file) or
        created a file of its own at the path (two workers, one file: found by the suite).
        """
        fd = self._fd_now()
        os.fsync(fd)
        older = rotated_paths(self.path)
        number = int(older[-1].name.rsplit(".", 1)[1]) + 1 if older else 1
        full = self.path.with_name(f"{self.path.name}.{number}")
        fresh = self.path.with_name(f".{self.path.name}.fresh")
        with contextlib.suppress(FileNotFoundError):
            fresh.unlink()  # left by a writer that died while rotating (only the holder rotates)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        new_fd = os.open(fresh, flags, FILE_MODE)
        linked = False
        try:
            _lock(new_fd, self.name)  # no one else knows the file yet: taken at once
            os.link(self.path, full)
            linked = True
            fresh.replace(self.path)
        except BaseException:
            os.close(new_fd)
            with contextlib.suppress(OSError):
                fresh.unlink()
            if linked:
                with contextlib.suppress(OSError):
                    full.unlink()
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self._fd = new_fd


def _lock(fd: int, name: str) -> None:
    """The file's exclusive lock, waiting at most LOCK_WAIT_SECONDS: the writers (workers, the
    CLI) hold it for microseconds, so a longer wait means someone else holds it on purpose,
    and the event loop must not freeze behind them. Failing is fail-closed (503), not a hang."""
    if not lock_exclusive(fd, LOCK_WAIT_SECONDS):
        raise OSError(errno.EAGAIN, "the audit file is locked by another process", name)


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
