"""Target parsing: only strict IP address text reaches the engine (T1190, T1059, NIST SI-10)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingcalc.ping import TargetSyntaxError, parse_target
from pingcalc.ping.target import MAX_TARGET_LENGTH


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("8.8.8.8", "8.8.8.8"),
        ("::1", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("2001:DB8::A", "2001:db8::a"),
        ("2606:4700:4700::1111", "2606:4700:4700::1111"),
        (
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        # IPv4-mapped IPv6 is the IPv4 address it reaches (policy bypass via ::ffff:).
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::FFFF:7f00:1", "127.0.0.1"),
        ("::ffff:a00:1", "10.0.0.1"),
    ],
)
def test_parse_target_accepts_addresses_and_unwraps_ipv4_mapped_ipv6(
    text: str, expected: str
) -> None:
    """Legitimate IPv4 dotted-quads and IPv6 text forms parse to the normalised address of
    its family; IPv4-mapped IPv6 is judged as the IPv4 address it reaches."""
    address = parse_target(text)
    assert address == ip_address(expected) and str(address) == expected
    assert isinstance(address, type(ip_address(expected)))


REFUSED = [
    ("0177.0.0.1", "leading zero"),
    ("127.000.000.001", "leading zero"),
    ("0x7f.1", "hexadecimal"),
    ("0x7f000001", "hexadecimal"),
    ("2130706433", "not a dotted-quad"),
    ("127.1", "not a dotted-quad"),
    ("127.0.1", "not a dotted-quad"),
    ("127.0.0.1.", "not a dotted-quad"),
    ("256.1.1.1", "0-255"),
    ("fe80::1%eth0", "zone id"),
    ("fe80::1%$(id)", "zone id"),
    (" 127.0.0.1", "whitespace"),
    ("127.0.0.1\n", "whitespace"),
    ("127.0.0.1\x00", "control character"),
    ("127.0.0.1\x1b[31m", "control character"),
    ("-f", "starts with '-'"),
    ("-c 100000 127.0.0.1", "starts with '-'"),
    ("1" * (MAX_TARGET_LENGTH + 1), "longer than"),
    ("\u0661\u0662\u0667.0.0.1", "non-ASCII"),
    ("\uff11\uff12\uff17.0.0.1", "non-ASCII"),
    ("", "empty"),
    ("localhost", "cannot appear in an IP address"),
    ("[::1]", "cannot appear in an IP address"),
    ("127.0.0.1/8", "cannot appear in an IP address"),
    ("1:2:3:4:5:6:7:8:9", "not a valid IPv6 address"),
    ("::ffff:0177.0.0.1", "leading zero"),
    (":::", "not a valid IPv6 address"),
]


@pytest.mark.parametrize(("text", "fragment"), REFUSED)
def test_parse_target_rejects_ambiguous_and_hostile_text(text: str, fragment: str) -> None:
    """Alternative IPv4 forms, zone ids, options and non-ASCII digits fail with a clear reason."""
    with pytest.raises(TargetSyntaxError) as caught:
        parse_target(text)
    assert fragment in str(caught.value)


def test_parse_target_error_escapes_control_characters() -> None:
    """The echoed target cannot inject a line into a log or a terminal (CWE-117)."""
    with pytest.raises(TargetSyntaxError) as caught:
        parse_target("1.2.3.4\r\nforged: line")
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert "\\r\\n" in message


def test_parse_target_rejects_non_strings() -> None:
    """Only text is parsed; an integer is not silently read as an IPv4 address."""
    with pytest.raises(TargetSyntaxError):
        parse_target(2130706433)  # type: ignore[arg-type]  # the runtime check is tested


@given(st.text(max_size=60))
def test_parse_target_never_yields_option_or_unsafe_text(text: str) -> None:
    """Whatever the input, an accepted target's argv text is a plain normalised address."""
    try:
        address = parse_target(text)
    except TargetSyntaxError:
        return
    rendered = str(address)
    assert set(rendered) <= set("0123456789abcdef.:")
    assert not rendered.startswith("-")
    assert isinstance(address, IPv4Address | IPv6Address)
    assert parse_target(rendered) == address


@given(st.ip_addresses())
def test_parse_target_round_trips_every_address(address: IPv4Address | IPv6Address) -> None:
    """Every normalised address text is accepted and denotes the same address."""
    parsed = parse_target(str(address))
    expected = (
        address.ipv4_mapped if isinstance(address, IPv6Address) and address.ipv4_mapped else address
    )
    assert parsed == expected
