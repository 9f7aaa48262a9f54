"""Why a token is wrong: the one error an expression is refused with, message and column.

The parser calls here only for the error that wins, so each function runs at most once per
expression, and so do the column scan (`lexer.columns`) and the bracket scanner
(`_opening`, the one backward walk over brackets that every message needing "the bracket
this is in" shares). Messages follow what CPython's parser would say where it applies.
"""

from __future__ import annotations

import keyword
import re

from pingcalc.calc.errors import CalcError, CalcLimitError, CalcMathError, CalcSyntaxError
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS
from pingcalc.calc.lexer import columns

KEYWORDS = frozenset(keyword.kwlist)
# A complex literal: `2j`, `1.5e3J`.
_IMAGINARY = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[jJ]")
# Words for refused constructs whose keyword alone would be a poor description.
_INFIX_CONSTRUCTS = {"and": "and/or", "or": "and/or", "if": "if ... else", "in": "in"}


def _column(expression: str, i: int) -> int:
    return columns(expression)[i]


def _clip(text: str, width: int = 24) -> str:
    """`text`, shortened with "..." past `width` characters (names can be 1,000 long)."""
    return text if len(text) <= width else text[: width - 3] + "..."


# --- the grammar (raised at once) -----------------------------------------------------------


def keyword_used(expression: str, tokens: list[str], i: int) -> CalcSyntaxError:
    """A Python keyword where a value or a function name should be (`True`, `lambda(...)`)."""
    return CalcSyntaxError(f"unsupported syntax `{tokens[i]}`", _column(expression, i))


def malformed_number(expression: str, tokens: list[str], i: int) -> CalcSyntaxError:
    """A number token Python would not read as a decimal int or float of ours."""
    tok = tokens[i]
    column = _column(expression, i)
    if tok.isdigit():
        # Python refuses `012` too (it would be octal in other languages).
        return CalcSyntaxError(
            f"unsupported number `{_clip(tok)}` (an integer cannot start with 0)", column
        )
    # A complex literal (`2j`) is named as syntax, not as a number: it is a different type.
    if _IMAGINARY.fullmatch(tok):
        return CalcSyntaxError(f"unsupported syntax `{_clip(tok)}`", column)
    return CalcSyntaxError(f"unsupported number `{_clip(tok)}` (decimal numbers only)", column)


def operand_error(
    expression: str, tokens: list[str], i: int, in_arguments: bool
) -> CalcSyntaxError:
    """Why `tokens[i]` cannot start an operand."""
    tok = tokens[i]
    cols = columns(expression)
    column = cols[i]
    if not tok:
        opening = _opening(tokens, i)
        if opening is not None:
            return CalcSyntaxError("invalid syntax: '(' was never closed", cols[opening])
        return CalcSyntaxError("invalid syntax", column)
    if tok == "*" and in_arguments:
        return CalcSyntaxError("starred arguments are not supported", column)
    if tok == "**" and in_arguments:
        return CalcSyntaxError("keyword arguments are not supported", column)
    if tok == ")":
        if _opening(tokens, i) is None:
            return CalcSyntaxError("invalid syntax: unmatched ')'", column)
        if tokens[i - 1] == "(":
            return CalcSyntaxError("unsupported syntax `()`", column - 1)
    if tok == "." and expression[column - 1 : column + 2] == "...":
        return CalcSyntaxError("unsupported syntax `...`", column)
    return CalcSyntaxError("invalid syntax", column)


def operator_error(expression: str, tokens: list[str], i: int) -> CalcSyntaxError:
    """Why `tokens[i]` cannot follow a complete operand."""
    tok = tokens[i]
    cols = columns(expression)
    if tok == "(":
        # `(1)(2)`, `2(3)`, `sqrt(4)(2)`: the callee is no function name; point at it.
        start = i - 1
        if tokens[start] == ")":
            opening = _opening(tokens, start)
            if opening is not None:
                start = opening - 1 if opening and _is_name(tokens[opening - 1]) else opening
        return CalcSyntaxError("only the built-in functions can be called", cols[start])
    if tok == ".":
        after = tokens[i + 1]
        if _is_name(after):
            # An attribute: `(1).__class__`, `sqrt.__globals__`; point at its name.
            return CalcSyntaxError(f"unsupported syntax `{_clip(after)}`", cols[i + 1])
        return CalcSyntaxError("invalid syntax", cols[i])
    if tok in ("for", "async"):
        # A generator expression: its node starts at its parenthesis.
        opening = _opening(tokens, i)
        where = _segment_start(tokens, i) if opening is None else opening
        return CalcSyntaxError("unsupported syntax `for ... in`", cols[where])
    # A construct that takes the operand before it: reported where that operand starts.
    what = _INFIX_CONSTRUCTS.get(tok)
    if tok == "not" and tokens[i + 1] == "in":
        what = "not in"
    elif tok == "is":
        what = "is not" if tokens[i + 1] == "not" else "is"
    if what is not None:
        segment = _segment_start(tokens, i)
        return CalcSyntaxError(f"unsupported syntax `{what}`", cols[segment])
    return CalcSyntaxError("invalid syntax", cols[i])


def never_closed(expression: str, where: int, is_call: bool) -> CalcSyntaxError:
    """A bracket still open at the end; a call's entry is at its name, its `(` just after."""
    return CalcSyntaxError(
        "invalid syntax: '(' was never closed", _column(expression, where + 1 if is_call else where)
    )


def outside_brackets(expression: str, tokens: list[str], i: int) -> CalcSyntaxError:
    """A `)` or `,` with no open bracket."""
    if tokens[i] == ")":
        return CalcSyntaxError("invalid syntax: unmatched ')'", _column(expression, i))
    # `1, 2`: a tuple, reported where it starts.
    return CalcSyntaxError("unsupported syntax `,`", _column(expression, _segment_start(tokens, i)))


def tuple_in_group(expression: str, opening: int) -> CalcSyntaxError:
    """`(1, 2)`: a tuple, reported at its parenthesis."""
    return CalcSyntaxError("unsupported syntax `,`", _column(expression, opening))


# --- the bounds (raised at once) --------------------------------------------------------------


def too_deep(expression: str, where: int, max_depth: int) -> CalcLimitError:
    """The element at token `where` is more than `max_depth` levels deep."""
    return CalcLimitError(
        f"expression nested too deeply (more than {max_depth} levels)", _column(expression, where)
    )


def too_many_arguments(
    expression: str, tokens: list[str], where: int, max_args: int
) -> CalcLimitError:
    """The call whose name is token `where` has more than `max_args` arguments."""
    return CalcLimitError(
        f"too many arguments to `{_clip(tokens[where])}` (more than {max_args})",
        _column(expression, where),
    )


# --- the whitelist and the literals (deferred: the leftmost wins, if the grammar holds) -----


def deferred(
    expression: str, tokens: list[str], i: int, given: int, max_int_bits: int
) -> CalcError:
    """The error remembered at token `i`: a name, a call's name (with `given` arguments),
    or a literal too large; rebuilt from the token, since only the leftmost is ever raised."""
    tok = tokens[i]
    column = _column(expression, i)
    if tok[0] <= "9":  # digits and "." sort before letters and "_"
        if tok.isdigit():
            return CalcLimitError(
                f"integer literal too large (more than {max_int_bits} bits)", column
            )
        return CalcMathError("number too large (float overflow)", column)
    if tokens[i + 1] == "(":
        if tok in FUNCTIONS:
            arity = FUNCTIONS[tok].arity
            return CalcSyntaxError(f"`{tok}` takes {arity.describe()} ({given} given)", column)
        if tok in CONSTANTS:
            return CalcSyntaxError(f"`{tok}` is a constant, not a function", column)
        return CalcSyntaxError(f"unknown function `{_clip(tok)}`", column)
    if tok in FUNCTIONS:
        return CalcSyntaxError(f"function `{tok}` must be called, as in `{tok}(...)`", column)
    return CalcSyntaxError(f"unknown name `{_clip(tok)}`", column)


# --- the bracket scanner ---------------------------------------------------------------------


def _opening(tokens: list[str], i: int, commas: bool = False) -> int | None:
    """The innermost `(` still open at `tokens[i]` or, with `commas`, a nearer `,` at its level."""
    level = 0
    for j in range(i - 1, -1, -1):
        tok = tokens[j]
        if tok == ")":
            level += 1
        elif tok == "(":
            if not level:
                return j
            level -= 1
        elif commas and tok == "," and not level:
            return j
    return None


def _segment_start(tokens: list[str], i: int) -> int:
    """The first token of the operand list `tokens[i]` is in (after `(`, `,` or the start)."""
    found = _opening(tokens, i, commas=True)
    return 0 if found is None else found + 1


def _is_name(tok: str) -> bool:
    return tok[:1].isalpha() or tok[:1] == "_"
