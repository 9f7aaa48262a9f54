"""From untrusted characters to tokens: length, alphabet, tokens, element count, in that order.

1. Length: bounded before anything looks at the text.
2. Characters: one line of printable ASCII from a small alphabet. This rejects quotes
   (strings, f-strings), brackets, `:` (lambdas, walrus), `=` (keyword arguments), `^`
   (answered with a hint: powers are `**`), comparison and bitwise operators, control
   characters (NUL, newline, tab) and every non-ASCII character, so NFKC look-alikes
   (fullwidth `eval`, `__import__` spelt with fullwidth low lines) can never be normalised
   into real identifiers (PEP 3131).
3. Tokens: one regular expression splits the text into numbers, names and operators; with
   the alphabet above, every character is part of a token or a space.
4. Elements (`Bounds.max_nodes`) are counted on the token list, before any parsing.

Columns are 1-based character positions in the original expression. Only an error needs
one, so they are found on demand (`columns`), at most once per expression.
"""

from __future__ import annotations

import re
import unicodedata

from pingcalc.calc.bounds import Bounds
from pingcalc.calc.errors import CalcLimitError, CalcSyntaxError

# Explicit ASCII ranges: `\d` and `\w` would also match non-ASCII digits and letters.
ALLOWED = re.compile(r"[0-9A-Za-z_ .+\-*/%(),]*")
# One token per operator, number, name or dot; spaces between tokens are skipped. The
# operators come first (`**` and `//` before `*` and `/`): they are the most frequent
# tokens. A number token takes any letters, digits and `_` glued to it (`0x10`, `1_000`,
# `2j`, `1e`), so that a malformed literal is refused whole and named in the message.
TOKEN = re.compile(
    r"\*\*?|//?|[-+%(),]"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[0-9A-Za-z_]*"
    r"|[A-Za-z_][A-Za-z0-9_]*"
    r"|\."
)
# Tokens that are not elements: brackets, commas and dots only arrange the others.
NOT_ELEMENTS = frozenset(("(", ")", ",", "."))

_CONTROL_NAMES = {"\0": "NUL", "\t": "tab", "\n": "line break", "\r": "carriage return"}
# Characters users type for an operator spelt otherwise here: answered with the spelling.
_HINTS = {"^": "unsupported operator `^`; use `**` for powers"}


def tokenize(expression: str, bounds: Bounds) -> list[str]:
    """The tokens of `expression`, once its length, characters and element count are checked."""
    if len(expression) > bounds.max_length:
        raise CalcLimitError(
            f"expression too long (more than {bounds.max_length} characters)",
            bounds.max_length + 1,
        )
    if not ALLOWED.fullmatch(expression):
        raise _bad_character(expression)
    tokens: list[str] = TOKEN.findall(expression)
    if not tokens:
        raise CalcSyntaxError("empty expression")
    # Each element is a token, so only a long token list needs counting.
    if len(tokens) > bounds.max_nodes:
        _check_element_count(expression, tokens, bounds.max_nodes)
    return tokens


def columns(expression: str) -> list[int]:
    """The 1-based column of each token of `expression`, then the column after the end."""
    found = [match.start() + 1 for match in TOKEN.finditer(expression)]
    found.append(len(expression) + 1)
    return found


def _check_element_count(expression: str, tokens: list[str], max_nodes: int) -> None:
    """Refuse the first element over the bound."""
    count = 0
    for i, tok in enumerate(tokens):
        if tok not in NOT_ELEMENTS:
            count += 1
            if count > max_nodes:
                raise CalcLimitError(
                    f"expression too complex (more than {max_nodes} numbers, names and operators)",
                    columns(expression)[i],
                )


def _bad_character(expression: str) -> CalcSyntaxError:
    """The first character outside the alphabet, named safely."""
    end = ALLOWED.match(expression)
    index = end.end() if end else 0
    char = expression[index]
    # Never echo the character itself unless it is plain printable ASCII: a control or
    # bidi character in an error message is an injection of its own.
    if char in _HINTS:
        what = _HINTS[char]
    elif " " < char < "\x7f":
        what = f"unsupported character `{char}`"
    else:
        name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "")
        what = f"unsupported character U+{ord(char):04X}" + (f" ({name})" if name else "")
        if char > "\x7f":
            what += "; only ASCII is accepted"
    return CalcSyntaxError(what, index + 1)
