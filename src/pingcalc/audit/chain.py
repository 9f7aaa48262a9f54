"""The sealed chain format, shared by the writer and the verifier (docs/audit.md).

A record line is the record serialised compactly as ASCII JSON (`dumps`) with the
chain fields ``seq, epoch, prev`` last, then ``,"mac":"<hex>"`` inserted before the closing
brace, where::

    mac = HMAC-SHA256(k_epoch, RECORD_DOMAIN + <the line's bytes without the mac member>)

`prev` is the previous record's `mac` (`GENESIS` for the first record, which is always an
`audit_chain_started` record naming the chain and the key). `k_epoch` evolves one way at every
`audit_checkpoint` record (`keys.EvolvingKey`): a record of epoch e+1 may only follow the
checkpoint of epoch e. Rotated files are `FILE.1` (oldest), `FILE.2`, ..., then `FILE`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pingcalc.audit.keys import EvolvingKey

# `prev` of the first record of a chain.
GENESIS = "0" * 64
GENESIS_EVENT = "audit_chain_started"
CHECKPOINT_EVENT = "audit_checkpoint"
# Sealed by the writer when it finds the file shorter than it left it: records were cut.
CUT_EVENT = "audit_file_cut"
# Domain separation: a record's MAC input can never equal the key-evolution input.
RECORD_DOMAIN = b"pingcalc-audit-v1 record\n"
# The mac is the last member of every line, in exactly this form.
_MAC_SUFFIX = re.compile(rb',"mac":"([0-9a-f]{64})"\}\n?\Z')
# How much of a file's end is read to find its last record; records are far smaller.
TAIL_BYTES = 64 * 1024
# The format's serialisation, owned here and not borrowed from the log renderer: a shipped
# checkpoint is re-serialised to check its seal, so these bytes must never change with the
# log format. ASCII (ensure_ascii) so no value can forge a line. One encoder, built once.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str)


def dumps(record: dict[str, Any]) -> str:
    """The record as one line of compact ASCII JSON, as the chain seals it."""
    return _ENCODER.encode(record)


def seal(record: dict[str, Any], key: EvolvingKey) -> tuple[bytes, str]:
    """The file line for `record` (chain fields set, no `mac`) and its mac."""
    body = _ENCODER.encode(record).encode("ascii")
    mac = key.mac(RECORD_DOMAIN + body)
    return body[:-1] + b',"mac":"' + mac.encode("ascii") + b'"}\n', mac


@dataclass(frozen=True, slots=True)
class Sealed:
    """One parsed record line: its fields, the bytes its mac covers, and the mac."""

    record: dict[str, Any]
    body: bytes
    mac: str

    @property
    def seq(self) -> int:
        return int(self.record["seq"])

    @property
    def epoch(self) -> int:
        return int(self.record["epoch"])

    @property
    def prev(self) -> str:
        return str(self.record["prev"])

    @property
    def event(self) -> object:
        return self.record.get("event")

    @property
    def is_checkpoint(self) -> bool:
        return self.record.get("event") == CHECKPOINT_EVENT

    @property
    def is_genesis(self) -> bool:
        return self.record.get("event") == GENESIS_EVENT and self.record.get("prev") == GENESIS

    def sealed_by(self, key: EvolvingKey) -> bool:
        """Whether `key` (at this record's epoch) produced the mac."""
        return key.matches(RECORD_DOMAIN + self.body, self.mac)


def parse(raw: bytes) -> Sealed | str:
    """The sealed record on one line, or what is wrong with the line."""
    if not raw.endswith(b"\n"):
        return "not valid JSON (truncated?): the last line has no end"
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: a line of deeply nested brackets
        return "not valid JSON (truncated?)"
    if not isinstance(record, dict):
        return "not an audit record"
    match = _MAC_SUFFIX.search(raw)
    if match is None or not _has_chain_fields(record):
        if isinstance(record.get("hash"), str):
            return (
                "an unkeyed record (the format before keyed seals): anyone who can write the "
                "file could have re-chained it, so it proves nothing"
            )
        return "not a sealed audit record (no seq, epoch, prev or trailing mac)"
    # The mac covers the exact bytes written, so even a whitespace edit is caught.
    return Sealed(record, raw[: match.start()] + b"}", match.group(1).decode("ascii"))


def _has_chain_fields(record: dict[str, Any]) -> bool:
    seq, epoch = record.get("seq"), record.get("epoch")
    return (
        type(seq) is int
        and type(epoch) is int
        and seq >= 0
        and epoch >= 0
        and isinstance(record.get("prev"), str)
    )


def read_tail(fd: int, size: int) -> Sealed | None:
    """The last record of the open file `fd` of `size` bytes; None if empty.

    Raises ValueError when the last line is not a sealed record (a crash mid-write, an edit).
    """
    if size == 0:
        return None
    start = max(0, size - TAIL_BYTES)
    data = os.pread(fd, size - start, start)
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1] + b"\n"
    parsed = parse(last)
    if isinstance(parsed, str):
        raise ValueError(parsed)
    return parsed


def read_head(path: Path) -> Sealed | None:
    """The first record of `path`, or None if it is missing, empty or not sealed."""
    with contextlib.suppress(OSError), path.open("rb") as handle:
        parsed = parse(handle.readline(TAIL_BYTES))
        return None if isinstance(parsed, str) else parsed
    return None


def _is_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes `²`, which `int()` refuses."""
    return text.isascii() and text.isdigit()


def rotated_paths(path: Path) -> list[Path]:
    """`path.1`, `path.2`, ... that exist, oldest (lowest number) first."""
    found: list[tuple[int, Path]] = []
    prefix = path.name + "."
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            suffix = entry.name[len(prefix) :]
            if entry.name.startswith(prefix) and _is_number(suffix):
                found.append((int(suffix), entry))
    return [p for _, p in sorted(found)]


def base_of(path: Path) -> Path:
    """The live file a rotated `X.N` belongs to (`X`); `path` itself otherwise."""
    base, _, suffix = path.name.rpartition(".")
    return path.with_name(base) if _is_number(suffix) and base else path


def order_files(paths: Iterable[Path]) -> list[Path]:
    """Rotated files `X.1`, `X.2`, ... before the live `X`; other names keep their order."""

    def key(item: tuple[int, Path]) -> tuple[str, int, int]:
        index, path = item
        base = base_of(path)
        if base != path:
            return (str(base), 0, int(path.name.rpartition(".")[2]))
        return (str(path), 1, index)

    return [p for _, p in sorted(enumerate(paths), key=key)]
