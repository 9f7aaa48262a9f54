"""The shape of an audit record: fixed fields first, reserved fields never from a caller.

Every record starts with ``ts, event, request_id, client_ip, token, outcome, reason`` (null
when they do not apply), then the event's own fields. The chain fields (`seq`, `epoch`,
`prev`, `mac`), `ts` and `log` are set by the package, never by a caller (a forged `prev` or
`mac`). Token-shaped strings are redacted from every value, as a second line of defence.
"""

from __future__ import annotations

from typing import Any

from pingcalc.logs import redact_secrets, utc_timestamp

FIXED_FIELDS = ("request_id", "client_ip", "token", "outcome", "reason")
# Added by the file sink; a caller's values are dropped (forged chain positions or seals).
CHAIN_FIELDS = ("seq", "epoch", "prev", "mac")
# Set here or by a sink, never by a caller: a forged time, stdout marker or chain field.
RESERVED_FIELDS = ("ts", "log", *CHAIN_FIELDS)
_RESERVED = frozenset(RESERVED_FIELDS)
# What `clip` puts after a cut text, so a reader sees that the record holds only a prefix.
CUT_MARK = "..."


def shape(event: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The record for `event`: fixed fields in order, then `fields` minus reserved names."""
    record: dict[str, Any] = {"ts": utc_timestamp(), "event": event}
    for name in FIXED_FIELDS:
        record[name] = fields.pop(name, None)
    if not _RESERVED.isdisjoint(fields):
        for name in RESERVED_FIELDS:
            fields.pop(name, None)
    record.update(fields)
    redact_secrets(None, "audit", record)  # in place
    return record


def escape(text: str) -> str:
    """Printable ASCII: backslash, control and non-ASCII characters as Python escapes."""
    return text.encode("unicode_escape").decode("ascii")


def clip(text: str, limit: int) -> str:
    """`text` escaped (`escape`) and cut on a whole escape so the result has at most `limit`
    characters, ending in `CUT_MARK` when cut (and `limit` leaves room for it).

    Bounds what one request can add to a record *after* escaping: cutting first and escaping
    after would let a 4-byte character become a 10-character escape (``\\U0001f600``).
    """
    if limit <= 0:
        return ""
    mark = CUT_MARK if limit > len(CUT_MARK) else ""
    if text.isascii() and text.isprintable() and "\\" not in text:
        # The common case: nothing to escape, so characters and escaped length are equal.
        return text if len(text) <= limit else text[: limit - len(mark)] + mark
    # Every character escapes to at least one, so limit + 1 characters decide whether it fits.
    head = escape(text[: limit + 1])
    if len(head) <= limit:
        return head
    room = limit - len(mark)
    pieces: list[str] = []
    used = 0
    for char in text:  # at most `room` + 1 rounds: each adds at least one character
        piece = escape(char)
        if used + len(piece) > room:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces) + mark
