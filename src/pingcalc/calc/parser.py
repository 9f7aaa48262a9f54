"""A precedence parser over the lexer's tokens: accepts exactly the grammar, feeds a builder.

The grammar, in Python's own precedence and associativity (lowest first)::

    sum     := product (("+" | "-") product)*            left-associative
    product := unary (("*" | "/" | "//" | "%") unary)*  left-associative
    unary   := ("-" | "+") unary | power
    power   := atom ("**" unary)?                       right-associative: 2**3**2 == 2**9
    atom    := NUMBER | CONSTANT | FUNCTION "(" sum ("," sum)* ","? ")" | "(" sum ")"

so `-2**2 == -4` (the power binds tighter than the minus on its left) and `2**-1 == 0.5`
(a power's right operand may carry its own sign). NUMBER is a decimal int or float as
Python spells it (`12`, `1.`, `.5`, `1e3`, `1E-3`); `0x10`, `0o7`, `0b1`, `1_000`, `1j` and
leading-zero ints such as `012` are refused.

Shunting-yard: an operand stack and an operator stack, no recursion, one pass over the
tokens. Open brackets are bounded as they open (`Bounds.max_depth`); names are looked up in
the whitelist; each checked operator and call goes to a `Builder` (the interpreter), after
its operands. Nesting through operators is measured in the same pass (`nesting.py`), only
for expressions with more elements than levels.

CPython's parser never sees the input: no `ast.parse`, no `compile`. So the traps it has on
hostile input are gone, not merely caught: `ast.parse` raises RecursionError or MemoryError
on long operator chains and deep nesting before any check could run, and refuses int
literals over 4,300 digits with a ValueError. Here memory is two stacks bounded by the
element count, and an int literal's size is bounded from its digit count before conversion.

Errors come in two tiers, so the message names the outermost problem as a tree walk would:
a grammar error (or a bound) is raised at once; a whitelist error (unknown name, wrong
argument count) or an oversized literal is only remembered by its token index, the
leftmost wins, and it is raised (built by `diagnostics.py`) only if the rest of the
expression is grammatical and not nested too deeply. `(x for x in y)` is thus "unsupported
syntax `for ... in`", not "unknown name `x`". Builders get token indexes, not columns.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pingcalc.calc import diagnostics
from pingcalc.calc.bounds import LENGTH_CEILING, Bounds
from pingcalc.calc.diagnostics import KEYWORDS
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS, Number
from pingcalc.calc.nesting import Nesting, unwrap

# Operator precedence (binding power); brackets are 0 so no operator ever reduces past one.
_ADD, _MUL, _UNARY, _POW = 1, 2, 3, 4
# How each token is handled: binary operators by their precedence, the rest by a code.
_OPEN, _CLOSE, _COMMA, _DOT, _END = 10, 11, 12, 13, 14
_KINDS: dict[str, int] = {
    "+": _ADD,
    "-": _ADD,
    "*": _MUL,
    "/": _MUL,
    "//": _MUL,
    "%": _MUL,
    "**": _POW,
    "(": _OPEN,
    ")": _CLOSE,
    ",": _COMMA,
    ".": _DOT,
    "": _END,
}
# Argument counts by function, the upper bound made finite.
_ARITY = {
    name: (function.arity.least, function.arity.most or LENGTH_CEILING)
    for name, function in FUNCTIONS.items()
}
_CONSTANTS = {name: constant.value for name, constant in CONSTANTS.items()}
# Operator-stack entry codes that are not a binary operator's own symbol.
_NEG, _POS, _GROUP = "neg", "pos", "("
# An unknown function's call: parsed like any call, then replaced by a placeholder.
_UNKNOWN = ""
# Int literals of up to this many digits are below 2**63: no size check needed.
_SMALL_INT_DIGITS = 18
# log2(10) rounded down: a literal of d digits (no leading zero) has more than
# (d - 1) * 3.32 bits, so it is refused without converting it.
_BITS_PER_DIGIT = 3.32
# What `_literal` returns for a token that is no number of ours, or one too large.
_MALFORMED, _TOO_LARGE = "malformed", "too large"

T = TypeVar("T")
# An operator-stack entry: (precedence, operator or function name, token index, call base).
# The base is where a call's arguments start on the value stack, plus one (so it is truthy
# for calls only). A plain tuple: building a NamedTuple costs ~8x more, and it is built once
# per operator (measured: 20 % of evaluating a short expression).
Pending = tuple[int, str, int, int]


class Builder(Protocol[T]):
    """Receives each checked operator and call in evaluation order, after its operands.

    An operand is a number (a literal or a named constant) or what the builder returned
    earlier. A builder sees only numbers, operator symbols, whitelisted function names and
    `where`, the element's token index (`lexer.columns` maps it to a column).
    """

    def negate(self, operand: T | Number, where: int) -> T | Number:
        """Unary minus."""

    def positive(self, operand: T | Number, where: int) -> T | Number:
        """Unary plus: the operand itself for an evaluator (it cannot change a number)."""

    def binary(self, left: T | Number, op: str, right: T | Number, where: int) -> T | Number:
        """`left op right`; `where` is the operator's token."""

    def call(self, name: str, args: list[T | Number], where: int) -> T | Number:
        """A call of a whitelisted function with an allowed number of arguments."""


def parse(expression: str, tokens: list[str], bounds: Bounds, builder: Builder[T]) -> T | Number:
    """Check `tokens` (the lexer's, of `expression`) against the grammar and the bounds.

    Returns what the builder made of the whole expression (a bare number if it is one).
    `tokens` is the caller's to give away: an end marker is appended to it.
    """
    max_depth = bounds.max_depth
    max_args = bounds.max_args
    # Only an expression of more elements than levels can nest too deeply.
    nesting = Nesting(builder, max_depth) if len(tokens) > max_depth else None
    active: Builder[Any] = builder if nesting is None else nesting
    tokens.append("")  # the end: every lookahead `tokens[i + 1]` stays in range

    kinds = _KINDS
    binary = active.binary
    # Operands: numbers, and what the builder made of the operators and calls so far.
    values: list[Any] = []
    # Pending operators and open brackets, innermost last.
    stack: list[Pending] = []
    depth = 0  # open brackets, calls included
    # The leftmost remembered error: its token index (-1: none) and, for a wrong argument
    # count, how many were given. Its message is built only if it is the one raised.
    deferred, given = -1, 0

    def reduce_top() -> None:
        """Apply the operator on top of the stack to the operand(s) on top of the values."""
        precedence, op, where, _ = stack.pop()
        if precedence != _UNARY:
            right = values.pop()
            values[-1] = binary(values[-1], op, right, where)
        elif op is _NEG:
            values[-1] = active.negate(values[-1], where)
        else:
            values[-1] = active.positive(values[-1], where)

    i = 0
    while True:
        # --- an operand is expected: prefix operators, then a number, name or call --------
        tok = tokens[i]
        kind = kinds.get(tok)
        if kind is None:
            if tok[0] <= "9":  # digits and "." sort before letters and "_"
                if (
                    tok.isdigit()
                    and len(tok) <= _SMALL_INT_DIGITS
                    and (tok[0] != "0" or len(tok) == 1)
                ):
                    values.append(int(tok))
                else:
                    # Other numbers: long, zero-led, float or malformed.
                    literal = _literal(tok, bounds.max_int_bits)
                    if isinstance(literal, str):
                        if literal is _MALFORMED:
                            raise diagnostics.malformed_number(expression, tokens, i)
                        if deferred < 0:
                            deferred = i
                        literal = 0
                    values.append(literal)
                i += 1
            elif tokens[i + 1] == "(":
                # A call: its entry is at its name, its arguments follow on `values`.
                if tok in _ARITY:
                    stack.append((0, tok, i, len(values) + 1))
                else:
                    if tok in KEYWORDS:
                        raise diagnostics.keyword_used(expression, tokens, i)
                    stack.append((0, _UNKNOWN, i, len(values) + 1))
                    if deferred < 0:
                        deferred = i
                depth += 1
                if depth > max_depth:
                    raise diagnostics.too_deep(expression, i, max_depth)
                i += 2
                continue
            elif tok in _CONSTANTS:
                values.append(_CONSTANTS[tok])
                i += 1
            else:
                if tok in KEYWORDS:
                    raise diagnostics.keyword_used(expression, tokens, i)
                if deferred < 0:
                    deferred = i
                values.append(0)
                i += 1
        elif kind == _ADD:
            stack.append((_UNARY, _NEG if tok == "-" else _POS, i, 0))
            i += 1
            continue
        elif kind == _OPEN:
            stack.append((0, _GROUP, i, 0))
            depth += 1
            if depth > max_depth:
                raise diagnostics.too_deep(expression, i, max_depth)
            i += 1
            continue
        elif kind == _CLOSE and stack and stack[-1][3]:
            # `f()` or a trailing comma `f(1,)`: the call ends here.
            _, name, where, base = stack.pop()
            depth -= 1
            count = len(values) - base + 1
            if count > max_args:
                raise diagnostics.too_many_arguments(expression, tokens, where, max_args)
            args = values[base - 1 :]
            del values[base - 1 :]
            if name is not _UNKNOWN and _ARITY[name][0] <= count <= _ARITY[name][1]:
                values.append(active.call(name, args, where))
            else:
                if name is not _UNKNOWN and (deferred < 0 or where < deferred):
                    deferred, given = where, count
                values.append(0)
            i += 1
        else:
            raise diagnostics.operand_error(
                expression, tokens, i, in_arguments=bool(stack) and bool(stack[-1][3])
            )

        # --- an operand is complete: an operator, a closing bracket, a comma or the end ----
        while True:
            tok = tokens[i]
            kind = kinds.get(tok)
            if kind is None:
                raise diagnostics.operator_error(expression, tokens, i)
            if kind <= _POW:
                # Reduce what binds at least as tightly (left-associative); `**` is
                # right-associative and binds tightest, so it reduces nothing.
                if kind != _POW:
                    while stack and stack[-1][0] >= kind:
                        reduce_top()
                stack.append((kind, tok, i, 0))
                i += 1
                break
            if kind in (_DOT, _OPEN):
                raise diagnostics.operator_error(expression, tokens, i)
            # `)`, `,` or the end: complete the operand inside the innermost bracket.
            while stack and stack[-1][0]:
                reduce_top()
            if kind == _END:
                if stack:
                    _, _, where, base = stack[-1]
                    raise diagnostics.never_closed(expression, where, is_call=bool(base))
                # Measured on the checked grammar, before the whitelist errors: the order
                # a tree walk would find them in.
                if nesting is not None and nesting.too_deep >= 0:
                    raise diagnostics.too_deep(expression, nesting.too_deep, max_depth)
                if deferred >= 0:
                    raise diagnostics.deferred(
                        expression, tokens, deferred, given, bounds.max_int_bits
                    )
                # Every bracket was closed, and no dot was accepted.
                result: T | Number = values[0] if nesting is None else unwrap(values[0])
                return result
            if not stack:
                raise diagnostics.outside_brackets(expression, tokens, i)
            _, name, where, base = stack[-1]
            if not base:
                if kind == _COMMA:
                    raise diagnostics.tuple_in_group(expression, where)
                stack.pop()
                depth -= 1
                i += 1
                continue
            count = len(values) - base + 1
            if kind == _COMMA:
                # Refuse an argument flood as soon as it is one too many.
                if count > max_args:
                    raise diagnostics.too_many_arguments(expression, tokens, where, max_args)
                i += 1
                break
            stack.pop()
            depth -= 1
            args = values[base - 1 :]
            del values[base - 1 :]
            arity = _ARITY.get(name)
            if arity is not None and arity[0] <= count <= arity[1] and count <= max_args:
                values.append(active.call(name, args, where))
            else:
                if count > max_args:
                    raise diagnostics.too_many_arguments(expression, tokens, where, max_args)
                # A wrong argument count (remembered) or an unknown function (already).
                if arity is not None and (deferred < 0 or where < deferred):
                    deferred, given = where, count
                values.append(0)
            i += 1


def _literal(tok: str, max_int_bits: int) -> Number | str:
    """A number token other than a short int, or `_MALFORMED` or `_TOO_LARGE`.

    A malformed literal is a grammar error, raised at once. A literal too large (an int
    over `max_int_bits`, a float beyond the largest float) is remembered, to be reported
    only if the rest of the expression is grammatical; 0 stands in for it.
    """
    if tok.isdigit():
        significant = tok.lstrip("0")
        if significant and len(significant) != len(tok):
            return _MALFORMED  # `012`: Python refuses it too
        # Bounded from the digit count before converting: `int()` of a long string costs
        # quadratic time, and CPython refuses more than 4,300 digits with a ValueError.
        if (len(significant) - 1) * _BITS_PER_DIGIT > max_int_bits:
            return _TOO_LARGE
        value = int(significant or "0")
        if value.bit_length() > max_int_bits:
            return _TOO_LARGE
        return value
    # `float()` also reads `1_0`; apart from that, on a token that starts with a digit or
    # a dot it accepts exactly Python's decimal float literals (`1.5`, `1.`, `.5`, `1e3`).
    if "_" in tok:
        return _MALFORMED
    try:
        number = float(tok)
    except ValueError:
        return _MALFORMED
    if number - number:  # inf: the literal is beyond the largest float
        return _TOO_LARGE
    return number
