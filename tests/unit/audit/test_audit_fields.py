"""The record's shape, and `clip`: a user's text bounded *after* escaping.

Threats: TM-08 (one request must not bloat the trail: today's route cuts an expression and
then escapes it, so an emoji-heavy text can come out ~10x its limit) and TM-12 (control and
non-ASCII characters never reach a record raw).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pingcalc.audit import FIXED_FIELDS, clip
from pingcalc.audit.fields import CUT_MARK, escape, shape

HOSTILE = st.text(
    alphabet=st.one_of(
        st.characters(max_codepoint=0x7F),  # control characters, DEL, backslash, quotes
        st.characters(min_codepoint=0x80, max_codepoint=0xFFFF),  # non-ASCII, lone surrogates
        st.characters(min_codepoint=0x10000),  # astral: 10-character escapes
    ),
    max_size=400,
)


@given(text=HOSTILE, limit=st.integers(min_value=0, max_value=300))
def test_clip_never_exceeds_its_limit_after_escaping(text: str, limit: int) -> None:
    """Whatever the text, the clipped value is printable ASCII of at most `limit` characters,
    a whole-escape prefix of the escaped text, marked when cut."""
    clipped = clip(text, limit)
    assert len(clipped) <= limit
    assert clipped.isascii() and clipped.isprintable()
    full = escape(text)
    if len(full) <= limit:
        assert clipped == full  # nothing lost when it fits
        return
    body = clipped.removesuffix(CUT_MARK) if limit > len(CUT_MARK) else clipped
    # The kept part is exactly the escape of some prefix of the text: no escape is split.
    prefixes = {escape(text[:n]) for n in range(len(body) + 1)}
    assert body in prefixes
    if limit > len(CUT_MARK):
        assert clipped.endswith(CUT_MARK)


def test_clip_worst_cases_stay_within_the_limit() -> None:
    """Astral characters, ANSI escapes and backslashes: each bounded, none split."""
    assert clip("😀" * 200, 25) == "\\U0001f600\\U0001f600..."
    assert clip("\x1b[31m" * 50, 12) == "\\x1b[31m..."
    assert clip("\\" * 50, 6) == "\\\\..."
    assert clip("1 + 2", 200) == "1 + 2"
    assert clip("123456", 4) == "1..."
    assert clip("123456", 3) == "123"
    assert clip("anything", 0) == ""


def test_shape_puts_fixed_fields_first_and_drops_reserved_ones() -> None:
    """Fixed fields in order (null when absent), then the event's own; reserved names are
    ignored and token-shaped values redacted (TM-12, TM-06)."""
    record = shape(
        "ping",
        {"target": "127.0.0.1", "token": "pinger", "mac": "f" * 64, "log": "x", "seq": 1,
         "note": "Bearer pc_" + "a" * 40},
    )  # fmt: skip
    assert list(record)[:7] == ["ts", "event", *FIXED_FIELDS]
    assert record["token"] == "pinger" and record["request_id"] is None
    assert "mac" not in record and "log" not in record and "seq" not in record
    assert record["note"] == "[REDACTED]" and record["target"] == "127.0.0.1"
