"""Turn a client's host name into the ASCII name a resolver may be asked for, or refuse it.

A name is the second dangerous form of a target (after IP literals, target.py): it reaches a
resolver, and through it the networks behind the server. So it is checked before any lookup,
and only the `HostName` this module returns can be handed to a resolver. The rules, first
broken wins, each with its own message:

* At most 253 characters, as given and once encoded (RFC 1035 §2.3.4: 255 octets on the wire
  are 253 in text). Checked first, so nothing works on long strings.
* No whitespace, control or invisible formatting characters (U+200B, U+202E, soft hyphen...):
  they split arguments, inject log or terminal lines, or make two names look alike.
* No leading '-' (option injection such as `-f`), no trailing dot: `example.com.` is absolute
  (skips the resolver's search list) and a second spelling of a name; it is refused, not
  silently rewritten, so what is checked is what was asked.
* Non-ASCII names are converted with IDNA 2008 after UTS #46 mapping, non-transitional, with
  the STD3 ASCII rules (the `idna` package; what browsers do). The mapping folds case and
  width, so every ASCII rule below is applied to its *result*: full-width hyphen and f
  (U+FF0D U+FF46) become `-f`, the ideographic full stop U+3002 becomes `.`, full-width digits
  become `127.0.0.1`. Characters IDNA disallows, RFC 5893 bidi violations and `xn--` labels
  that do not decode are refused.
* The result is lower-case letters, digits and '-' in dot-separated labels of 1-63 characters
  that neither start nor end with '-' (RFC 1123 §2.1, RFC 1035 §2.3.1): no empty label
  (`a..b`), no '_', '%', '/', ':', '@', '$', quotes or brackets.
* Not IP-like: `getaddrinfo(3)` reads `0x7f.1`, `127.1`, `2130706433` and `0177.0.0.1` as
  addresses without any lookup (inet_aton's forms), which would bypass the canonical-IP rule
  of target.py. Refused: every name inet_aton accepts, every name made only of numeric labels,
  and every name whose last label is all digits (RFC 3696 §2: no top-level domain is).
"""

from __future__ import annotations

import re
import socket
import unicodedata
from dataclasses import dataclass

import idna

from pingcalc.ping.errors import NameSyntaxError

# RFC 1035 §2.3.4 (names of 255 octets on the wire, 253 characters in text; labels of 63).
MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
# How much of a refused name is echoed back in the error, escaped with ascii().
ECHO_LENGTH = 64

# RFC 1123 §2.1 label: letter or digit first and last, hyphens inside (lower case: mapped).
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
# ASCII that may appear in a name before mapping; anything else ASCII is refused by name.
_LDH = re.compile(r"[A-Za-z0-9.-]+")
# Labels inet_aton(3) reads as numbers: decimal, octal (leading 0) or hexadecimal (0x).
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
# Unicode categories refused outright: controls, formatting (invisible), separators,
# private use, surrogates and unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class HostName:
    """A checked host name: its ASCII form (A-labels for non-ASCII), lower case, no final dot."""

    ascii: str

    def __str__(self) -> str:
        return self.ascii


def shown(text: str) -> str:
    """`text` safe to put in an error: escaped with ascii() and clipped."""
    clipped = text[:ECHO_LENGTH] + ("..." if len(text) > ECHO_LENGTH else "")
    return ascii(clipped)


def looks_numeric(text: str) -> bool:
    """True if every dot-separated part of `text` is an inet_aton-style number (`0x7f.1`)."""
    labels = text.split(".")
    if labels and labels[-1] == "":
        labels.pop()  # "127.0.0.1." is still an IP-like text
    return bool(labels) and all(_NUMERIC_LABEL.fullmatch(label) for label in labels)


def _refuse_characters(text: str) -> None:
    """Refuse, by name, the characters no name may hold, before any mapping."""
    name = shown(text)
    for char in text:
        category = unicodedata.category(char)
        if char.isspace() or category in ("Zs", "Zl", "Zp"):
            raise NameSyntaxError(f"host name {name} contains whitespace; give the name alone")
        if category == "Cc":
            raise NameSyntaxError(f"host name {name} contains a control character")
        if category in _REFUSED_CATEGORIES:
            raise NameSyntaxError(
                f"host name {name} contains an invisible or unassigned character "
                f"(U+{ord(char):04X})"
            )
        if char.isascii() and not _LDH.fullmatch(char):
            raise NameSyntaxError(
                f"host name {name} contains {char!r}; a host name has only letters, digits, "
                "'-' and '.'"
            )


def _idna_error(text: str, exc: Exception) -> NameSyntaxError:
    # idna's messages are fixed text and code points; escape and clip them anyway.
    return NameSyntaxError(
        f"host name {shown(text)} is not a valid internationalised name (IDNA 2008): "
        f"{shown(str(exc))[1:-1]}"
    )


def _to_ascii(text: str) -> str:
    """IDNA 2008 with UTS #46 mapping for non-ASCII text; ASCII text is only lower-cased.

    An ASCII `xn--` label must be a canonical A-label: it decodes, and encodes back to itself.
    """
    if text.isascii():
        name = text.lower()
        for label in name.split("."):
            if not label.startswith("xn--"):
                continue
            try:
                canonical = idna.encode(idna.decode(label)).decode("ascii")
            except (idna.IDNAError, UnicodeError) as exc:
                raise _idna_error(text, exc) from None
            if canonical != label:
                raise NameSyntaxError(f"host name {shown(text)} has a non-canonical A-label")
        return name
    try:
        encoded = idna.encode(text, uts46=True, std3_rules=True, transitional=False)
    except (idna.IDNAError, UnicodeError) as exc:
        raise _idna_error(text, exc) from None
    return encoded.decode("ascii")


def _check_labels(name: str, given: str) -> None:
    """The RFC 1123 rules on the final ASCII form `name` (errors quote what was `given`)."""
    shown_given = shown(given)
    if name.startswith("-"):
        raise NameSyntaxError(f"target {shown_given} starts with '-'; options cannot be passed")
    if name.endswith("."):
        raise NameSyntaxError(
            f"host name {shown_given} ends with a dot; remove it (names are not written "
            "fully qualified here)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise NameSyntaxError(
            f"host name {shown_given} is longer than {MAX_NAME_LENGTH} characters once encoded"
        )
    for label in name.split("."):
        if not label:
            raise NameSyntaxError(
                f"host name {shown_given} has an empty label ('..' or a leading '.')"
            )
        if len(label) > MAX_LABEL_LENGTH:
            raise NameSyntaxError(
                f"host name {shown_given} has a label longer than {MAX_LABEL_LENGTH} characters"
            )
        if not _LABEL.fullmatch(label):
            raise NameSyntaxError(
                f"host name {shown_given} has a label {label!r} that is not letters, digits and "
                "inner hyphens (RFC 1123)"
            )


def _check_not_ip_like(name: str, given: str) -> None:
    if looks_numeric(name) or name.rsplit(".", 1)[-1].isdigit():
        raise NameSyntaxError(
            f"target {shown(given)} looks like an IP address but is not one in canonical form; "
            "write IPv4 as four decimal numbers (a.b.c.d) or give a host name"
        )
    try:
        socket.inet_aton(name)
    except OSError:
        return
    raise NameSyntaxError(f"target {shown(given)} would be read as an IPv4 address; write a.b.c.d")


def check_name(text: str) -> HostName:
    """The `HostName` for `text`, or `NameSyntaxError` naming the first rule it breaks."""
    if not isinstance(text, str):
        raise NameSyntaxError("the target must be a string holding an IP address or host name")
    if not text:
        raise NameSyntaxError("the target is empty; give an IP address or a host name")
    if len(text) > MAX_NAME_LENGTH:
        raise NameSyntaxError(
            f"host name {shown(text)} is longer than {MAX_NAME_LENGTH} characters"
        )
    if text.startswith("-"):
        raise NameSyntaxError(f"target {shown(text)} starts with '-'; options cannot be passed")
    _refuse_characters(text)
    name = _to_ascii(text)
    _check_labels(name, text)
    _check_not_ip_like(name, text)
    return HostName(name)
