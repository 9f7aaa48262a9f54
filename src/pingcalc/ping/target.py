"""Turn a client's target text into an IP address, or refuse it: the dangerous input.

The old service pasted this text into a shell command (T1059, T1190). Here the text never
reaches a shell, an argv or a resolver: `parse_target` makes it an `IPv4Address`/`IPv6Address`
or a `TargetSyntaxError`, and backends are only ever given the address object (whose `str()`
is the normalised form). `parse_host` also lets a host name through, as a `HostName` checked
by names.py; only that type reaches a resolver, and every address it resolves to is judged by
the policy (destination.py). The IP rules are deliberately narrower than what `ipaddress` and
`inet_aton(3)` accept, because every looser form has been an attack somewhere:

* `parse_target` takes no host names: a name is resolved, which is a DNS-rebinding and
  internal-mapping vector handled separately (destination.py resolves it once).
* IPv4 only as the strict dotted-quad of RFC 6943 §3.1.1 ("strict form"): four decimal
  parts, 0-255, no leading zeros. `inet_aton` also reads `0177.0.0.1` (octal, = 127.0.0.1),
  `0x7f.1` (hex), `2130706433` (one 32-bit integer) and `127.1` (short form); a filter and
  a pinger that disagree about such text is how SSRF filters are bypassed.
* IPv6 as the text forms of RFC 4291 §2.2 (upper or lower case, `::` compression, a
  dotted-quad tail), answered in the RFC 5952 canonical form. No zone ids (RFC 6874 `%eth0`):
  `ipaddress` keeps any text after `%` (`fe80::1%$(id)` parses), and a scoped address is
  link-local anyway. No brackets or prefix lengths.
* Nothing but `0-9 a-f A-F . :` at all: this rejects whitespace and control characters
  (argument splitting, CR/LF log and header injection), shell metacharacters, `-` (option
  injection such as `-f`, `-s 65000`), `%`, `/`, `[`, and non-ASCII digits such as `١٢٧`
  that `str.isdigit` and `int` would accept (Unicode normalisation tricks).
* IPv4-mapped IPv6 (`::ffff:10.0.0.1`, RFC 4291 §2.5.5.2) is unwrapped to the IPv4 address
  it denotes, so the policy judges what the kernel would actually send to.
"""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address, IPv6Address

from pingcalc.ping.errors import TargetSyntaxError
from pingcalc.ping.interface import Address
from pingcalc.ping.names import HostName, check_name, looks_numeric

# Longest valid text: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is 45 characters
# (the INET6_ADDRSTRLEN of RFC 2553 minus the NUL). Checked first, so no later step ever
# works on a long string (memory/CPU exhaustion through huge targets).
MAX_TARGET_LENGTH = 45
# How much of a rejected target is echoed back in the error, escaped with ascii().
ECHO_LENGTH = 48

_ALLOWED = re.compile(r"[0-9A-Fa-f.:]+")
# RFC 6943 §3.1.1 strict dotted-decimal: 0-255 each, "0" alone or no leading zero.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# What inet_aton's hexadecimal forms look like, only to name them in the error.
_IPV4_LIKE = re.compile(r"[0-9A-Fa-fXx.]+")


__all__ = ["MAX_TARGET_LENGTH", "TargetSyntaxError", "parse_host", "parse_target"]


def _shown(text: str) -> str:
    # ascii() escapes control characters and non-ASCII, so the message cannot inject
    # lines into a log or a terminal; the truncation bounds the error size.
    clipped = text[:ECHO_LENGTH] + ("..." if len(text) > ECHO_LENGTH else "")
    return ascii(clipped)


def _explain(text: str) -> str:
    """Why `text` (which passed no check) is not acceptable; the first rule broken wins."""
    if not text:
        return "the target is empty; give an IPv4 or IPv6 address such as 127.0.0.1"
    shown = _shown(text)
    if len(text) > MAX_TARGET_LENGTH:
        return (
            f"target {shown} is longer than {MAX_TARGET_LENGTH} characters, the longest IP address"
        )
    if text.startswith("-"):
        return f"target {shown} starts with '-'; options cannot be passed to ping"
    if text != text.strip() or any(c.isspace() for c in text):
        return f"target {shown} contains whitespace; give the address alone"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return f"target {shown} contains a control character"
    if "%" in text:
        return f"target {shown} has a zone id ('%...'); scoped addresses are not accepted"
    if not text.isascii():
        return f"target {shown} contains non-ASCII characters; use ASCII digits"
    if _IPV4_LIKE.fullmatch(text):
        return _explain_ipv4(text)  # e.g. 0x7f.1: only the "x" is outside the allowlist
    return (
        f"target {shown} contains characters that cannot appear in an IP address "
        "(brackets, ports, URLs and prefix lengths are not accepted)"
    )


def _explain_ipv4(text: str) -> str:
    """Name the alternative IPv4 form `text` uses, for a message a client can act on."""
    shown = _shown(text)
    parts = text.split(".")
    if any(p[:2].lower() == "0x" or any(c in "abcdefABCDEF" for c in p) for p in parts):
        return f"target {shown} uses hexadecimal; write IPv4 as four decimal numbers (a.b.c.d)"
    if len(parts) != 4:
        return (
            f"target {shown} is not a dotted-quad; integer and short IPv4 forms are ambiguous, "
            "write four decimal numbers (a.b.c.d)"
        )
    if any(len(p) > 1 and p.startswith("0") for p in parts):
        return f"target {shown} has a leading zero, which some parsers read as octal; remove it"
    return f"target {shown} is not a valid IPv4 address (each part must be 0-255)"


def parse_target(text: str) -> Address:
    """The address `text` denotes, or `TargetSyntaxError` saying which rule it breaks."""
    if not isinstance(text, str):
        raise TargetSyntaxError("the target must be a string holding an IP address")
    # Length, then the character allowlist, before any parser sees the text.
    if not text or len(text) > MAX_TARGET_LENGTH or not _ALLOWED.fullmatch(text):
        raise TargetSyntaxError(_explain(text))
    if ":" not in text:
        if not _DOTTED_QUAD.fullmatch(text):
            raise TargetSyntaxError(_explain_ipv4(text))
        # Defence in depth: the stdlib parser agrees (it refuses leading zeros since 3.9.5).
        return IPv4Address(text)
    # A dotted tail inside IPv6 (RFC 4291 §2.2 form 3) must be a strict dotted-quad too; the
    # stdlib also checks it with IPv4Address, this keeps the rule explicit and the message clear.
    tail = text.rpartition(":")[2]
    if "." in tail and not _DOTTED_QUAD.fullmatch(tail):
        raise TargetSyntaxError(_explain_ipv4(tail))
    try:
        address = IPv6Address(text)
    except AddressValueError as exc:
        raise TargetSyntaxError(
            f"target {_shown(text)} is not a valid IPv6 address: {exc}"
        ) from None
    if address.scope_id is not None:  # unreachable after the allowlist; kept as a guard
        raise TargetSyntaxError(f"target {_shown(text)} has a zone id")
    mapped = address.ipv4_mapped
    return mapped if mapped is not None else address


def parse_host(text: str) -> Address | HostName:
    """A canonical IP address, or a checked host name; anything else is `TargetSyntaxError`.

    Text with a ':' or made only of inet_aton-style numbers (`127.1`, `0x7f.1`) is an IP
    address or nothing: `parse_target` judges it and says which form it uses. Everything else
    is a host name for `check_name` (which refuses IP-like names again after IDNA mapping).
    """
    if not isinstance(text, str):
        raise TargetSyntaxError("the target must be a string holding an IP address or host name")
    if ":" in text or looks_numeric(text):
        return parse_target(text)
    return check_name(text)
