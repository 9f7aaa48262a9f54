"""Host name checking: only strict RFC 1123 / IDNA names ever reach a resolver (TM-34, SI-10)."""

from __future__ import annotations

import re
import socket
from ipaddress import IPv4Address, IPv6Address

import idna
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingcalc.ping import HostName, NameSyntaxError, TargetSyntaxError, check_name, parse_host
from pingcalc.ping.names import MAX_NAME_LENGTH

LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost", "localhost"),
        ("Example.COM", "example.com"),
        ("a-b.c-d.test", "a-b.c-d.test"),
        ("1e100.net", "1e100.net"),
        ("3com.test", "3com.test"),
        ("a" * 63 + ".test", "a" * 63 + ".test"),
        (LONGEST, LONGEST),
        ("xn--bcher-kva.test", "xn--bcher-kva.test"),
        ("XN--BCHER-KVA.test", "xn--bcher-kva.test"),
    ],
)
def test_check_name_accepts_rfc1123_names_in_lower_case(text: str, expected: str) -> None:
    """Letters, digits and inner hyphens in labels of 1-63, up to 253 characters, lower-cased."""
    assert check_name(text) == HostName(expected)
    assert str(check_name(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bücher.test", "xn--bcher-kva.test"),
        ("café.fr", "xn--caf-dma.fr"),
        ("ß.de", "xn--zca.de"),  # non-transitional (IDNA 2008): not "ss.de"
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),  # full-width
        ("مثال.إختبار", "xn--mgbh0fb.xn--kgbechtv"),
    ],
)
def test_check_name_converts_non_ascii_names_with_idna_2008_and_uts46(
    text: str, expected: str
) -> None:
    """A non-ASCII name becomes its punycode A-labels after UTS #46 mapping."""
    assert check_name(text).ascii == expected


def _message(text: str) -> str:
    """The message of the NameSyntaxError that `check_name(text)` raises."""
    with pytest.raises(NameSyntaxError) as caught:
        check_name(text)
    return str(caught.value)


HOSTILE = [
    ("-f", "starts with '-'"),
    ("-a.test", "starts with '-'"),
    ("$(id)", "contains '$'"),
    ("`id`", "contains '`'"),
    ("a;id", "contains ';'"),
    ("a|id", "contains '|'"),
    ("a&id", "contains '&'"),
    ("a'b", "contains"),
    ("a..b", "empty label"),
    (".a.b", "empty label"),
    ("a" * 300, "longer than 253"),
    ("a" * 64 + ".test", "label longer than 63"),
    (LONGEST + "d", "longer than 253"),
    ("a-.test", "not letters, digits and inner hyphens"),
    ("a.-b", "not letters, digits and inner hyphens"),
    ("0x7f.1", "looks like an IP address"),
    ("0x7f", "looks like an IP address"),
    ("127.1", "looks like an IP address"),
    ("2130706433", "looks like an IP address"),
    ("0177.0.0.1", "looks like an IP address"),
    ("example.123", "looks like an IP address"),
    ("a b", "whitespace"),
    ("a\tb", "whitespace"),
    ("a\nb", "whitespace"),
    ("localhost\r\nX-Injected: 1", "whitespace"),
    ("a\x00b", "control character"),
    ("a\x1b[31mb", "control character"),
    ("a\x7fb", "control character"),
    ("example.com.", "ends with a dot"),
    ("example.com\u3002", "ends with a dot"),  # ideographic full stop maps to '.'
    ("a\u3002\u3002b", "IDNA"),
    ("foo_bar.test", "contains '_'"),
    ("*.example.com", "contains '*'"),
    ("example.com/x", "contains '/'"),
    ("user@example.com", "contains '@'"),
    ("example.com:80", "contains ':'"),
    ("exa\u00admple.com", "invisible"),  # soft hyphen: UTS #46 would silently drop it
    ("a\u200bb.test", "invisible"),
    ("\u202emoc.elpmaxe", "invisible"),
    ("xn--zz.test", "IDNA"),
    ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", "looks like an IP address"),
    ("\uff0d\uff46", "IDNA"),  # full-width "-f"
    ("\u0661\u0662\u0667.\u0660.\u0660.\u0661", "IDNA"),  # Arabic-Indic digits
    ("", "empty"),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE, ids=lambda v: ascii(v)[:30])
def test_check_name_refuses_hostile_and_malformed_names(text: str, fragment: str) -> None:
    """Options, shell text, empty labels, long names, IP-like names and tricks are refused."""
    assert fragment in _message(text)


def test_refusal_messages_escape_and_clip_the_name() -> None:
    """An error never carries a raw control character or an unbounded copy of the input."""
    message = _message("a\x1b[2Jb")
    assert "\x1b" not in message and "\\x1b" in message
    assert len(_message("a" * 250 + "$")) < 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", IPv4Address("127.0.0.1")),
        ("::1", IPv6Address("::1")),
        ("localhost", HostName("localhost")),
        ("cafe.be", HostName("cafe.be")),  # hex letters only, still a name
    ],
)
def test_parse_host_gives_an_address_or_a_checked_name(
    text: str, expected: IPv4Address | IPv6Address | HostName
) -> None:
    """A target is a canonical IP address or a valid host name, nothing else."""
    assert parse_host(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0x7f.1", "hexadecimal"),
        ("127.1", "not a dotted-quad"),
        ("0177.0.0.1", "leading zero"),
        ("127.0.0.1.", "not a dotted-quad"),
        ("[::1]", "cannot appear in an IP address"),
        ("fe80::1%eth0", "zone id"),
    ],
)
def test_parse_host_judges_ip_like_text_by_the_ip_rules(text: str, fragment: str) -> None:
    """IP-like text is never taken for a name: the IP parser refuses it and names the form."""
    with pytest.raises(TargetSyntaxError, match=re.escape(fragment)):
        parse_host(text)


_STRICT = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


@given(st.text(max_size=80))
def test_check_name_never_yields_unsafe_text(text: str) -> None:
    """Whatever the input, a checked name is strict LDH text that no parser reads as an IP."""
    try:
        name = check_name(text).ascii
    except NameSyntaxError:
        return
    assert _STRICT.fullmatch(name) and len(name) <= MAX_NAME_LENGTH
    assert not name.rsplit(".", 1)[-1].isdigit()
    with pytest.raises(OSError):
        socket.inet_aton(name)


# Default_Ignorable_Code_Point, copied from Unicode's DerivedCoreProperties.txt (16.0): the
# test's own oracle, independent of the module's table.
DEFAULT_IGNORABLE = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
]  # fmt: skip


def _ignored_by_uts46(low: int, high: int) -> list[int]:
    """The code points in [low, high] that the `idna` package's UTS #46 mapping drops."""
    dropped = []
    for code in range(low, high + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        try:
            if idna.uts46_remap(chr(code), std3_rules=False) == "":
                dropped.append(code)
        except idna.IDNAError:
            continue
    return dropped


def test_characters_uts46_drops_or_unicode_ignores_are_refused_not_dropped() -> None:
    """TM-34: every code point UTS #46 maps to nothing (the BMP and the tag/variation plane,
    where all of them are) and every Default_Ignorable one is refused inside a name, where
    it used to vanish (`loc\\u3164alhost` was asked as `localhost`): 267 were accepted."""
    ignorable = [c for low, high in DEFAULT_IGNORABLE for c in range(low, high + 1)]
    dropped = _ignored_by_uts46(0x80, 0xFFFF) + _ignored_by_uts46(0xE0000, 0xE0FFF)
    assert {0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0, 0x180B, 0xFE0F, 0xE0100} <= set(dropped)
    for code in sorted(set(ignorable) | set(dropped)):
        with pytest.raises(NameSyntaxError, match="invisible") as caught:
            check_name(f"loc{chr(code)}alhost")
        assert f"U+{code:04X}" in str(caught.value), hex(code)
    assert _message("loc\u3164alhost") == (
        "host name 'loc\\u3164alhost' contains an invisible character (U+3164) that IDNA "
        "would silently drop; remove it"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "localhost"),  # full-width
        ("\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34", "localhost"),
        ("LocalHost", "localhost"),
        ("K.test", "k.test"),  # KELVIN SIGN folds to k
        ("localho\ufb06", "localhost"),  # the ligature st
        ("\u0130.test", "xn--i-9bb.test"),
    ],
)
def test_width_and_case_folding_still_work(text: str, expected: str) -> None:
    """The legitimate mappings of UTS #46 (width, case, compatibility) are kept."""
    assert check_name(text).ascii == expected
