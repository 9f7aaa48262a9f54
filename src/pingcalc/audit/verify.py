"""Verification of audit files against the initial key and the shipped checkpoints.

`verify` walks the files in chain order (`chain.order_files`) and stops at the first
problem, naming its file and line:

- every record must carry a seal made with the key of its epoch, derived from the initial key
  (a record edited, or re-chained by someone without the key, fails here);
- `prev` and `seq` must follow the previous record (deleted, inserted, reordered records);
- the epoch may only change right after a checkpoint, by one (a later key, stolen, cannot
  seal a record into an earlier epoch);
- each trail starts at its genesis record, in epoch 0, sealed for this key (a cut head);
- no file is empty, and a rotation set holds one chain (a deleted file);
- every checkpoint found in the logs (`--checkpoints`) that claims this key must carry a valid
  seal and be present, byte for byte, in the files (a cut tail, a deleted last file, or a
  record rewritten after its checkpoint left the host).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pingcalc.audit.chain import (
    CHECKPOINT_EVENT,
    CUT_EVENT,
    Sealed,
    base_of,
    dumps,
    order_files,
    parse,
)
from pingcalc.audit.keys import EvolvingKey, read_initial_key

# A shipped checkpoint may claim at most this many epochs past the files' last one; each costs
# one HMAC to check, so a forged line cannot make the verifier spin (about a second).
MAX_EPOCHS_AHEAD = 1_000_000
# Log lines longer than this are not checkpoints (which are a few hundred bytes).
MAX_LOG_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong, and where: `FILE:LINE: reason`."""

    path: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.reason}"


@dataclass(slots=True)
class _File:
    path: Path
    first_seq: int
    lines: int


@dataclass(slots=True)
class Chain:
    """One trail: the files from its genesis record to its last record."""

    id: str | None
    base: Path
    files: list[_File] = field(default_factory=list)
    records: int = 0
    last_seq: int = -1
    last_mac: str = ""
    last_epoch: int = 0
    # seq -> mac of the checkpoint records in the files.
    checkpoints: dict[int, str] = field(default_factory=dict)
    # The highest seq confirmed by a shipped checkpoint (None: no shipped checkpoint matched).
    anchored_seq: int | None = None

    @property
    def last_checkpoint_seq(self) -> int | None:
        return max(self.checkpoints, default=None)

    def locate(self, seq: int) -> tuple[Path, int]:
        """The file and line of record `seq` (seqs are consecutive in a verified chain)."""
        for entry in self.files:
            if entry.first_seq <= seq < entry.first_seq + entry.lines:
                return entry.path, seq - entry.first_seq + 1
        last = self.files[-1]
        return last.path, last.lines + 1

    def summary(self, shipped: bool = False) -> dict[str, Any]:
        """What was proved; with `shipped` (logs were given), the records not yet anchored
        are counted from the last *shipped* checkpoint: one only in the file proves nothing
        against someone who can write the file."""
        last_checkpoint = self.last_checkpoint_seq
        anchor = self.anchored_seq if shipped else last_checkpoint
        return {
            "chain": self.id,
            "files": [str(f.path) for f in self.files],
            "records": self.records,
            "last_seq": self.last_seq,
            "last_mac": self.last_mac,
            "last_epoch": self.last_epoch,
            "last_checkpoint_seq": last_checkpoint,
            "anchored_seq": self.anchored_seq,
            # Sealed with the key the service still holds: authentic only until the next
            # checkpoint anchors them.
            "unanchored_records": self.last_seq - (-1 if anchor is None else anchor),
        }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The verdict: intact, or the first problem; with what was checked."""

    problem: Problem | None
    chains: tuple[Chain, ...]
    files: int
    checkpoint_logs: int
    checkpoints_matched: int
    checkpoints_ignored: int

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)

    def describe(self) -> str:
        """`FILE:LINE: reason`, or a summary of what was proved."""
        if self.problem is not None:
            return str(self.problem)
        text = f"intact: {self.records} records in {self.files} file(s)"
        for chain in self.chains:
            summary = chain.summary(shipped=bool(self.checkpoint_logs))
            text += (
                f"; chain {chain.id}: seq 0-{chain.last_seq}, epochs 0-{chain.last_epoch}, "
                f"last mac {chain.last_mac}"
            )
            if summary["unanchored_records"]:
                which = "shipped checkpoint" if self.checkpoint_logs else "checkpoint"
                text += (
                    f", {summary['unanchored_records']} record(s) after the last {which} "
                    "(sealed with the key the service still holds)"
                )
        if self.checkpoint_logs:
            text += f"; {self.checkpoints_matched} shipped checkpoint(s) found in the files"
            if self.checkpoints_ignored:
                text += f" ({self.checkpoints_ignored} of other keys ignored)"
        else:
            text += (
                "; no --checkpoints given: a cut tail or a deleted last file cannot be seen "
                "without the shipped checkpoints"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        """The verdict for scripts (`audit verify --json`)."""
        problem = self.problem
        return {
            "ok": self.ok,
            "problem": None
            if problem is None
            else {"file": str(problem.path), "line": problem.line, "reason": problem.reason},
            "records": self.records,
            "files": self.files,
            "chains": [c.summary(shipped=bool(self.checkpoint_logs)) for c in self.chains],
            "checkpoints": {
                "logs": self.checkpoint_logs,
                "matched": self.checkpoints_matched,
                "ignored": self.checkpoints_ignored,
            },
        }


def verify(
    paths: Sequence[Path], key_file: Path, checkpoint_logs: Sequence[Path] = ()
) -> VerifyResult:
    """Check `paths` (any order) with the initial key in `key_file`, against the checkpoints
    shipped to `checkpoint_logs` (any JSON-lines logs). Raises OSError when a file cannot be
    read and AuditKeyError when `key_file` is not an initial key."""
    initial = read_initial_key(key_file)
    walker = _Walker(initial)
    try:
        ordered = order_files(dict.fromkeys(paths))  # a file named twice is checked once
        problem = walker.walk_files(ordered)
        matched = ignored = 0
        if problem is None and checkpoint_logs:
            problem, matched, ignored = walker.check_logs(checkpoint_logs)
    finally:
        walker.erase()
    return VerifyResult(
        problem, tuple(walker.chains), len(ordered), len(checkpoint_logs), matched, ignored
    )


@dataclass(slots=True)
class _Link:
    """The last intact record: what the next one must point at."""

    seq: int
    mac: str
    epoch: int
    checkpoint: bool
    where: str


class _Walker:
    def __init__(self, initial: EvolvingKey) -> None:
        self.initial = initial
        self.key = initial.copy()
        self.chains: list[Chain] = []
        self.link: _Link | None = None

    def erase(self) -> None:
        self.initial.erase()
        self.key.erase()

    def key_for(self, epoch: int) -> EvolvingKey:
        if epoch < self.key.epoch:
            self.key.erase()
            self.key = self.initial.copy()
        self.key.advance_to(epoch)
        return self.key

    # --- files -------------------------------------------------------------------------------

    def walk_files(self, ordered: list[Path]) -> Problem | None:
        for path in ordered:
            problem = self.walk_file(path)
            if problem is not None:
                return problem
        return None

    def walk_file(self, path: Path) -> Problem | None:
        entry: _File | None = None
        with _open_regular(path) as handle:
            for number, raw in enumerate(handle, start=1):
                sealed = parse(raw)
                if isinstance(sealed, str):
                    return Problem(path, number, sealed)
                if entry is None:
                    problem = self.enter_file(path, sealed)
                    if problem is not None:
                        return problem
                    entry = _File(path, sealed.seq, 0)
                    self.chains[-1].files.append(entry)
                reason = self.check(sealed, number)
                if reason is not None:
                    return Problem(path, number, reason)
                entry.lines = number
        if entry is None:
            return Problem(path, 1, "empty file: its records were removed (the writer never "
                           "leaves a file empty)")  # fmt: skip
        if self.link is not None:
            self.link.where = f"the last line of {path.name}"
        return None

    def enter_file(self, path: Path, first: Sealed) -> Problem | None:
        """Decide whether `path` starts a chain (its genesis) or continues the current one."""
        base = base_of(path)
        current = self.chains[-1] if self.chains else None
        if first.is_genesis and first.seq == 0:
            if current is not None and current.base == base:
                return Problem(
                    path,
                    1,
                    f"a new chain starts inside the rotation set of {base.name}, after seq "
                    f"{current.last_seq}: a file was deleted or the trail was restarted",
                )
            chain_id = first.record.get("chain")
            self.chains.append(Chain(chain_id if isinstance(chain_id, str) else None, base))
            self.link = None
            return None
        if current is None or current.base != base:
            return Problem(
                path,
                1,
                f"the trail starts at seq {first.seq}, not at its genesis record (cut head, or "
                "earlier files not given)",
            )
        return None

    def check(self, sealed: Sealed, number: int) -> str | None:
        """What is wrong with one record given the link before it; None if nothing."""
        chain = self.chains[-1]
        link = self.link
        if link is None:
            if sealed.epoch != 0:
                return (
                    f"the trail starts at epoch {sealed.epoch}: the records of epochs 0-"
                    f"{sealed.epoch - 1} are missing (a deleted trail; a new trail needs a new key)"
                )
            claimed = sealed.record.get("key_id")
            if claimed != self.initial.key_id:
                return (
                    f"the trail is sealed for key id {claimed}, but --key holds key id "
                    f"{self.initial.key_id} (wrong key file, or the trail was re-sealed)"
                )
        else:
            due = link.epoch + 1 if link.checkpoint else link.epoch
            if sealed.epoch > due:
                return (
                    f"epoch {sealed.epoch} where {due} was due after {link.where}: a key change "
                    "without its checkpoint (records forged with a later, stolen key, or deleted)"
                )
            if sealed.epoch < due:
                return (
                    f"epoch {sealed.epoch} after {link.where} of epoch {link.epoch}: keys never "
                    "go back (records reordered or replayed)"
                )
        if not sealed.sealed_by(self.key_for(sealed.epoch)):
            return (
                f"seal mismatch: the record was edited, or sealed without the key of epoch "
                f"{sealed.epoch}"
            )
        if link is not None and sealed.prev != link.mac:
            return f"prev does not match {link.where}'s mac (line deleted, inserted or reordered)"
        if link is not None and sealed.seq != link.seq + 1:
            return f"seq {sealed.seq} does not follow {link.seq} (records spliced)"
        if sealed.event == CUT_EVENT:
            return (
                f"the writer found the file cut here, from {sealed.record.get('expected_bytes')} "
                f"to {sealed.record.get('found_bytes')} bytes: records before this line were "
                "removed"
            )
        if sealed.is_checkpoint:
            if sealed.record.get("chain") != chain.id:
                return "a checkpoint of another chain (records spliced from another trail)"
            chain.checkpoints[sealed.seq] = sealed.mac
        self.link = _Link(
            sealed.seq, sealed.mac, sealed.epoch, sealed.is_checkpoint, f"line {number}"
        )
        chain.records += 1
        chain.last_seq, chain.last_mac, chain.last_epoch = sealed.seq, sealed.mac, sealed.epoch
        return None

    # --- shipped checkpoints -----------------------------------------------------------------

    def check_logs(self, logs: Sequence[Path]) -> tuple[Problem | None, int, int]:
        """Every shipped checkpoint of this key must be sealed and present in the files."""
        found: list[tuple[Path, int, Sealed]] = []
        ignored = 0
        for log in logs:
            with _open_regular(log) as handle:
                for number, raw in enumerate(handle, start=1):
                    if b"audit_checkpoint" not in raw or len(raw) > MAX_LOG_LINE:
                        continue
                    candidate = _checkpoint_in(raw)
                    if candidate is None:
                        continue
                    if candidate.get("key_id") != self.initial.key_id:
                        ignored += 1  # another trail's key: not ours to judge
                        continue
                    sealed = _canonical(candidate)
                    if sealed is None:
                        return Problem(log, number, "a malformed checkpoint of this key"), 0, 0
                    found.append((log, number, sealed))
        if not found:
            return (
                Problem(
                    logs[0],
                    None,
                    "no checkpoint sealed with this key: the wrong log, or no checkpoint was "
                    "ever shipped (nothing anchors the files' tail)",
                ),
                0,
                ignored,
            )
        latest_epoch = max((c.last_epoch for c in self.chains), default=0)
        by_id = {c.id: c for c in self.chains}
        found.sort(key=lambda item: item[2].epoch)
        for log, number, sealed in found:
            problem = self.check_shipped(log, number, sealed, by_id, latest_epoch)
            if problem is not None:
                return problem, 0, ignored
        return None, len(found), ignored

    def check_shipped(
        self,
        log: Path,
        number: int,
        sealed: Sealed,
        by_id: dict[str | None, Chain],
        latest_epoch: int,
    ) -> Problem | None:
        if sealed.epoch > latest_epoch + MAX_EPOCHS_AHEAD:
            return Problem(
                log,
                number,
                f"a checkpoint claims epoch {sealed.epoch}, far past the files' last epoch "
                f"{latest_epoch}: forged, or the files lack most of the trail",
            )
        if not sealed.sealed_by(self.key_for(sealed.epoch)):
            return Problem(log, number, "checkpoint seal mismatch: the line was forged or edited")
        chain_id = sealed.record.get("chain")
        chain = by_id.get(chain_id if isinstance(chain_id, str) else None)
        when = sealed.record.get("ts")
        if chain is None:
            return Problem(
                log,
                number,
                f"checkpoint of chain {chain_id} (seq {sealed.seq}, {when}) matches none of the "
                "files given: the trail's files were deleted (or pass them too)",
            )
        if sealed.seq > chain.last_seq:
            path, line = chain.locate(sealed.seq)
            return Problem(
                path,
                line,
                f"records missing after seq {chain.last_seq}: the checkpoint at {log}:{number} "
                f"({when}) proves the trail reached seq {sealed.seq} (cut tail or deleted file)",
            )
        if chain.checkpoints.get(sealed.seq) != sealed.mac:
            path, line = chain.locate(sealed.seq)
            return Problem(
                path,
                line,
                f"differs from the checkpoint at {log}:{number} (seq {sealed.seq}, {when}): "
                "rewritten after the checkpoint was shipped",
            )
        chain.anchored_seq = max(chain.anchored_seq or -1, sealed.seq)
        return None


def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file (a FIFO would block for ever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _checkpoint_in(raw: bytes) -> dict[str, Any] | None:
    """The checkpoint record in one log line: bare, after a prefix (syslog, timestamps), or
    wrapped in a container runtime's JSON (`log`, `MESSAGE`, `message`)."""
    text = raw.decode("utf-8", "replace")
    start = text.find("{")
    if start < 0:
        return None
    try:
        # raw_decode: whatever follows the object (a NUL, a suffix) is not the record's.
        obj, _end = _DECODER.raw_decode(text, start)
    except ValueError:
        return None
    if isinstance(obj, dict) and obj.get("event") != CHECKPOINT_EVENT:
        for wrapper in ("log", "MESSAGE", "message"):
            inner = obj.get(wrapper)
            if isinstance(inner, str) and "{" in inner:
                return _checkpoint_in(inner.encode("utf-8", "surrogatepass"))
        return None
    return obj if isinstance(obj, dict) else None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate member")  # one reading only: no smuggled second value
    return dict(pairs)


_DECODER = json.JSONDecoder(object_pairs_hook=_unique)


def _canonical(record: dict[str, Any]) -> Sealed | None:
    """The checkpoint as the file holds it: the record without `log`, re-serialised exactly
    as the writer did (`chain.dumps`), and its mac."""
    fields = {k: v for k, v in record.items() if k != "log"}
    mac = fields.pop("mac", None)
    if not isinstance(mac, str):
        return None
    body = dumps(fields).encode("ascii")
    sealed = parse(body[:-1] + b',"mac":"' + mac.encode("ascii", "replace") + b'"}\n')
    return sealed if isinstance(sealed, Sealed) else None
