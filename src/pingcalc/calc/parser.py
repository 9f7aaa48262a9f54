"""From untrusted text to checked elements, rejecting everything outside the grammar.

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

The order matters; each step makes the next one safe:

1. Length: bounded before anything looks at the text.
2. Characters: one line of printable ASCII from a small alphabet. This rejects quotes
   (strings, f-strings), brackets, `:` (lambdas, walrus), `=` (keyword arguments),
   comparison and bitwise operators, control characters (NUL, newline, tab) and every
   non-ASCII character, so NFKC look-alikes (fullwidth `eval`, `__import__` spelt with
   fullwidth low lines) can never be normalised into real identifiers (PEP 3131).
3. Tokens: one regular expression splits the text into numbers, names and operators;
   with the alphabet above, every character is part of a token or a space. The element
   count (`Limits.max_nodes`) is checked on the token list, before any parsing.
4. A hand-written precedence parser (shunting-yard: an operand stack and an operator
   stack, no recursion) accepts exactly the grammar above. Open brackets are bounded as
   they open (`Limits.max_depth`); names are looked up in the whitelist; each checked
   operator and call goes to a `Builder` (the evaluator), after its operands.
5. Nesting (`Limits.max_depth`, counted as the compiled closures nest: one level per
   unary operator, call or chain of binary operators) is measured once the grammar is
   known good, and only when there are more elements than levels (`_Heights`).

CPython's parser never sees the input: no `ast.parse`, no `compile`. So the traps it has
on hostile input are gone, not merely caught: `ast.parse` raises RecursionError or
MemoryError on long operator chains and deep nesting before any check could run, and
refuses int literals over 4,300 digits with a ValueError. Here parsing uses no recursion
at all (memory is two stacks bounded by the element count) and the size of an int literal
is bounded from its digit count before it is converted.

Errors come in two tiers, so the message names the outermost problem as a tree walk
would: a grammar error (or a limit) is raised at once; a whitelist error (unknown name,
wrong argument count) or an oversized literal is remembered, the leftmost one wins, and
it is raised only if the rest of the expression is grammatical and not nested too deeply.
`(x for x in y)` is thus "unsupported syntax `for ... in`", not "unknown name `x`".

Columns are 1-based character positions in the original expression. To keep the common
path lean, the parser hands the builder token indexes; `token_columns` turns them into
columns when one is needed (an error, or compiling closures that may report one).
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from typing import Protocol, TypeVar

from pingcalc.calc.errors import CalcError, CalcLimitError, CalcMathError, CalcSyntaxError
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS
from pingcalc.calc.limits import LENGTH_CEILING, Limits

# Explicit ASCII ranges: `\d` and `\w` would also match non-ASCII digits and letters.
_ALLOWED = re.compile(r"[0-9A-Za-z_ .+\-*/%(),]*")
# One token per operator, number, name or dot; spaces between tokens are skipped. The
# operators come first (`**` and `//` before `*` and `/`): they are the most frequent
# tokens. A number token takes any letters, digits and `_` glued to it (`0x10`, `1_000`,
# `2j`, `1e`), so that a malformed literal is refused whole and named in the message.
_TOKEN = re.compile(
    r"\*\*?|//?|[-+%(),]"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[0-9A-Za-z_]*"
    r"|[A-Za-z_][A-Za-z0-9_]*"
    r"|\."
)
# A complex literal (`2j`) is named as syntax, not as a number: it is a different type.
_IMAGINARY = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[jJ]")

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
_ARITY = {name: (arity.least, arity.most or LENGTH_CEILING) for name, arity in FUNCTIONS.items()}
# Operator-stack entry codes that are not a binary operator's own symbol.
_NEG, _POS, _GROUP = "neg", "pos", "("
# An unknown function's call: parsed like any call, then replaced by a placeholder.
_UNKNOWN = ""
# Int literals of up to this many digits are below 2**63: no size check needed.
_SMALL_INT_DIGITS = 18
# log2(10) rounded down: a literal of d digits (no leading zero) has more than
# (d - 1) * 3.32 bits, so it is refused without converting it.
_BITS_PER_DIGIT = 3.32

_CONTROL_NAMES = {"\0": "NUL", "\t": "tab", "\n": "line break", "\r": "carriage return"}
_KEYWORDS = frozenset(keyword.kwlist)
# Words for refused constructs whose keyword alone would be a poor description.
_INFIX_CONSTRUCTS = {"and": "and/or", "or": "and/or", "if": "if ... else", "in": "in"}

T = TypeVar("T")
Number = int | float


class Builder(Protocol[T]):
    """Receives each checked operator and call in evaluation order, after its operands.

    The evaluator has two: one compiles closures, one computes values at once. An operand
    is a number (a literal or a named constant) or what the builder returned earlier. A
    builder sees only numbers, operator symbols, whitelisted function names and `where`,
    the element's token index (`token_columns` maps it to the column to report errors at).
    """

    def negate(self, operand: T | Number, where: int) -> T:
        """Unary minus."""

    def positive(self, operand: T | Number, where: int) -> T | Number:
        """Unary plus: the operand itself for an evaluator (it cannot change a number)."""

    def binary(self, left: T | Number, op: str, right: T | Number, where: int) -> T:
        """`left op right`; `where` is the operator's token."""

    def call(self, name: str, args: list[T | Number], where: int) -> T:
        """A call of a whitelisted function with an allowed number of arguments."""


def token_columns(expression: str) -> list[int]:
    """The 1-based column of each token of `expression`, then the column after the end."""
    columns = [match.start() + 1 for match in _TOKEN.finditer(expression)]
    columns.append(len(expression) + 1)
    return columns


def parse(expression: str, limits: Limits, builder: Builder[T]) -> tuple[T | Number, int]:
    """Check `expression` against the grammar and the limits, feeding `builder`.

    Returns what the builder made of the whole expression (a bare number if it is one)
    and how many elements (numbers, names, operators) it has.
    """
    if len(expression) > limits.max_length:
        raise CalcLimitError(
            f"expression too long (more than {limits.max_length} characters)",
            limits.max_length + 1,
        )
    if not _ALLOWED.fullmatch(expression):
        raise _bad_character(expression)
    tokens: list[str] = _TOKEN.findall(expression)
    if not tokens:
        raise CalcSyntaxError("empty expression")
    # Each element is a token, so only a long token list needs counting.
    if len(tokens) > limits.max_nodes:
        _check_element_count(expression, tokens, limits)
    tokens.append("")  # the end: every lookahead `tokens[i + 1]` stays in range

    kinds = _KINDS
    binary = builder.binary
    max_depth = limits.max_depth
    max_args = limits.max_args
    # Operands: numbers, and what the builder made of the operators and calls so far.
    values: list[T | Number] = []
    # Pending operators and open brackets: (precedence, op, token index, call base). The
    # stack is never shorter than the count of open brackets, so `len(stack) > max_depth`
    # is the one cheap test before counting them exactly.
    stack: list[tuple[int, str, int, int]] = []
    deferred: CalcError | None = None  # the leftmost whitelist or literal error so far

    def reduce_top() -> None:
        """Apply the operator on top of the stack to the operand(s) on top of the values."""
        precedence, op, where, _ = stack.pop()
        if precedence != _UNARY:
            right = values.pop()
            values[-1] = binary(values[-1], op, right, where)
        elif op is _NEG:
            values[-1] = builder.negate(values[-1], where)
        else:
            values[-1] = builder.positive(values[-1], where)

    i = 0
    while True:
        # --- an operand is expected: prefix operators, then a number, name or call ----
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
                    literal = _literal(expression, tok, i, limits)
                    if isinstance(literal, CalcError):
                        deferred = _leftmost(deferred, literal)
                        literal = 0
                    values.append(literal)
                i += 1
            elif tokens[i + 1] == "(":
                # A call. A truthy fourth field marks it: where its arguments start on
                # the value stack, plus one.
                stack.append((0, tok, i, len(values) + 1))
                if tok not in FUNCTIONS:
                    stack[-1] = (0, _UNKNOWN, i, len(values) + 1)
                    deferred = _leftmost(deferred, _not_a_function(expression, tok, i))
                if len(stack) > max_depth:
                    _check_depth(expression, stack, limits)
                i += 2
                continue
            elif tok in CONSTANTS:
                values.append(CONSTANTS[tok])
                i += 1
            else:
                deferred = _leftmost(deferred, _not_a_value(expression, tok, i))
                values.append(0)
                i += 1
        elif kind == _ADD:
            stack.append((_UNARY, _NEG if tok == "-" else _POS, i, 0))
            i += 1
            continue
        elif kind == _OPEN:
            stack.append((0, _GROUP, i, 0))
            if len(stack) > max_depth:
                _check_depth(expression, stack, limits)
            i += 1
            continue
        elif kind == _CLOSE and stack and stack[-1][3]:
            # `f()` or a trailing comma `f(1,)`: the call ends here.
            deferred = _close_call(expression, values, stack.pop(), limits, builder, deferred)
            i += 1
        else:
            raise _operand_error(expression, tokens, i, stack)

        # --- an operand is complete: an operator, a closing bracket, a comma or the end --
        while True:
            tok = tokens[i]
            kind = kinds.get(tok)
            if kind is None:
                raise _operator_error(expression, tokens, i)
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
                raise _operator_error(expression, tokens, i)
            # `)`, `,` or the end: complete the operand inside the innermost bracket.
            while stack and stack[-1][0]:
                reduce_top()
            if kind == _END:
                if stack:
                    raise _never_closed(expression, stack[-1])
                if len(tokens) > max_depth + 1 and not isinstance(builder, _Heights):
                    # Only an expression of more elements than levels can nest too deeply.
                    # Measured on the checked grammar, before the whitelist errors, the
                    # order a tree walk would find them in.
                    parse(expression, limits, _Heights(expression, max_depth))
                if deferred is not None:
                    raise deferred
                # Every bracket was closed, and no dot was accepted.
                return values[0], len(tokens) - 1 - 2 * tokens.count("(") - tokens.count(",")
            if not stack:
                raise _outside_brackets(expression, tokens, i)
            entry = stack[-1]
            base = entry[3]
            if not base:
                if kind == _COMMA:
                    # `(1, 2)`: a tuple, reported at its parenthesis.
                    raise CalcSyntaxError("unsupported syntax `,`", _column(expression, entry[2]))
                stack.pop()
                i += 1
                continue
            count = len(values) - base + 1
            if kind == _COMMA:
                # Refuse an argument flood as soon as it is one too many.
                if count > max_args:
                    raise _too_many_arguments(expression, entry, limits)
                i += 1
                break
            stack.pop()
            name = entry[1]
            arity = _ARITY.get(name)
            if arity is not None and arity[0] <= count <= arity[1] and count <= max_args:
                args = values[base - 1 :]
                del values[base - 1 :]
                values.append(builder.call(name, args, entry[2]))
            else:
                deferred = _close_call(expression, values, entry, limits, builder, deferred)
            i += 1


# --- literals ------------------------------------------------------------------------------


def _literal(expression: str, tok: str, i: int, limits: Limits) -> Number | CalcError:
    """A number token other than a short int, or the error it is.

    A malformed literal is a grammar error, raised at once. A literal too large (an int
    over `max_int_bits`, a float beyond the largest float) is returned as an error, to be
    reported only if the rest of the expression is grammatical; 0 stands in for it.
    """
    if tok.isdigit():
        significant = tok.lstrip("0")
        if significant and len(significant) != len(tok):
            # Python refuses `012` too (it would be octal in other languages).
            raise CalcSyntaxError(
                f"unsupported number `{_clip(tok)}` (an integer cannot start with 0)",
                _column(expression, i),
            )
        # Bounded from the digit count before converting: `int()` of a long string costs
        # quadratic time, and CPython refuses more than 4,300 digits with a ValueError.
        if (len(significant) - 1) * _BITS_PER_DIGIT > limits.max_int_bits:
            return _literal_too_large(expression, i, limits)
        value = int(significant or "0")
        if value.bit_length() > limits.max_int_bits:
            return _literal_too_large(expression, i, limits)
        return value
    # `float()` also reads `1_0`; apart from that, on a token that starts with a digit or
    # a dot it accepts exactly Python's decimal float literals (`1.5`, `1.`, `.5`, `1e3`).
    try:
        number = float(tok) if "_" not in tok else None
    except ValueError:
        number = None
    if number is None:
        if _IMAGINARY.fullmatch(tok):
            raise CalcSyntaxError(f"unsupported syntax `{_clip(tok)}`", _column(expression, i))
        raise CalcSyntaxError(
            f"unsupported number `{_clip(tok)}` (decimal numbers only)", _column(expression, i)
        )
    if number - number:  # inf: the literal is beyond the largest float
        return CalcMathError("number too large (float overflow)", _column(expression, i))
    return number


def _literal_too_large(expression: str, i: int, limits: Limits) -> CalcLimitError:
    return CalcLimitError(
        f"integer literal too large (more than {limits.max_int_bits} bits)",
        _column(expression, i),
    )


# --- calls ---------------------------------------------------------------------------------


def _too_many_arguments(
    expression: str, entry: tuple[int, str, int, int], limits: Limits
) -> CalcLimitError:
    name = entry[1] or _clip(_TOKEN.findall(expression)[entry[2]])
    return CalcLimitError(
        f"too many arguments to `{name}` (more than {limits.max_args})",
        _column(expression, entry[2]),
    )


def _close_call(
    expression: str,
    values: list[T | Number],
    entry: tuple[int, str, int, int],
    limits: Limits,
    builder: Builder[T],
    deferred: CalcError | None,
) -> CalcError | None:
    """Replace a call's arguments on the value stack by the call; return the deferred error."""
    _, name, where, base = entry
    args = values[base - 1 :]
    del values[base - 1 :]
    count = len(args)
    if count > limits.max_args:
        raise _too_many_arguments(expression, entry, limits)
    if name is _UNKNOWN:
        values.append(0)
        return deferred
    arity = FUNCTIONS[name]
    if count < arity.least or (arity.most is not None and count > arity.most):
        error = CalcSyntaxError(
            f"`{name}` takes {arity.describe()} ({count} given)", _column(expression, where)
        )
        values.append(0)
        return _leftmost(deferred, error)
    values.append(builder.call(name, args, where))
    return deferred


def _not_a_function(expression: str, tok: str, i: int) -> CalcSyntaxError:
    """The deferred error for `tok(...)` when `tok` is no function (a keyword is refused now)."""
    column = _column(expression, i)
    if tok in _KEYWORDS:
        raise CalcSyntaxError(f"unsupported syntax `{tok}`", column)
    if tok in CONSTANTS:
        return CalcSyntaxError(f"`{tok}` is a constant, not a function", column)
    return CalcSyntaxError(f"unknown function `{_clip(tok)}`", column)


def _not_a_value(expression: str, tok: str, i: int) -> CalcSyntaxError:
    """The deferred error for a name that is no constant (a keyword is refused now)."""
    column = _column(expression, i)
    if tok in _KEYWORDS:
        raise CalcSyntaxError(f"unsupported syntax `{tok}`", column)
    if tok in FUNCTIONS:
        return CalcSyntaxError(f"function `{tok}` must be called, as in `{tok}(...)`", column)
    return CalcSyntaxError(f"unknown name `{_clip(tok)}`", column)


# --- errors --------------------------------------------------------------------------------


def _column(expression: str, i: int) -> int:
    return token_columns(expression)[i]


def _leftmost(deferred: CalcError | None, error: CalcError) -> CalcError:
    if deferred is None or (error.position or 0) < (deferred.position or 0):
        return error
    return deferred


def _bad_character(expression: str) -> CalcSyntaxError:
    for index, char in enumerate(expression):
        if not _ALLOWED.fullmatch(char):
            # Never echo the character itself unless it is plain printable ASCII: a
            # control or bidi character in an error message is an injection of its own.
            if " " < char < "\x7f":
                what = f"unsupported character `{char}`"
            else:
                name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "")
                what = f"unsupported character U+{ord(char):04X}" + (f" ({name})" if name else "")
                if char > "\x7f":
                    what += "; only ASCII is accepted"
            return CalcSyntaxError(what, index + 1)
    raise AssertionError("unreachable: the expression matched the alphabet")


def _check_depth(expression: str, stack: list[tuple[int, str, int, int]], limits: Limits) -> None:
    """Refuse the bracket just opened if too many are open (calls included)."""
    if sum(1 for entry in stack if entry[1] is _GROUP or entry[3]) > limits.max_depth:
        raise _too_deep(expression, stack[-1][2], limits.max_depth)


def _too_deep(expression: str, where: int, max_depth: int) -> CalcLimitError:
    return CalcLimitError(
        f"expression nested too deeply (more than {max_depth} levels)",
        _column(expression, where),
    )


_Height = tuple[int, bool]


class _Heights:
    """A `Builder` that measures nesting and refuses it past `max_depth`.

    The nesting is that of the compiled closures, which recurse once per level when
    evaluated: a unary minus or a call is one level over its operands, a chain of binary
    operators `a op b op c` (left-associative, parentheses or not) one level over all its
    operands. Values are (height, is an open chain); a bare number is a leaf, height 0.
    """

    __slots__ = ("expression", "max_depth")

    def __init__(self, expression: str, max_depth: int) -> None:
        self.expression = expression
        self.max_depth = max_depth

    def _level(self, height: int, where: int, chain: bool = False) -> _Height:
        if height > self.max_depth:
            raise _too_deep(self.expression, where, self.max_depth)
        return height, chain

    def negate(self, operand: _Height | Number, where: int) -> _Height:
        return self._level(_height(operand) + 1, where)

    def positive(self, operand: _Height | Number, where: int) -> _Height:
        return self._level(_height(operand) + 1, where)

    def binary(
        self, left: _Height | Number, op: str, right: _Height | Number, where: int
    ) -> _Height:
        if isinstance(left, tuple) and left[1]:
            return self._level(max(left[0], _height(right) + 1), where, chain=True)
        return self._level(max(_height(left), _height(right)) + 1, where, chain=True)

    def call(self, name: str, args: list[_Height | Number], where: int) -> _Height:
        return self._level(max(_height(arg) for arg in args) + 1, where)


def _height(value: _Height | Number) -> int:
    return value[0] if isinstance(value, tuple) else 0


def _check_element_count(expression: str, tokens: list[str], limits: Limits) -> None:
    """Refuse the first element over the limit (brackets, commas and dots are none)."""
    count = 0
    for i, tok in enumerate(tokens):
        if tok not in ("(", ")", ",", "."):
            count += 1
            if count > limits.max_nodes:
                raise CalcLimitError(
                    f"expression too complex (more than {limits.max_nodes} numbers, "
                    "names and operators)",
                    _column(expression, i),
                )


def _never_closed(expression: str, entry: tuple[int, str, int, int]) -> CalcSyntaxError:
    # A call's entry is at its name: its parenthesis is the next token.
    where = entry[2] + 1 if entry[3] else entry[2]
    return CalcSyntaxError("invalid syntax: '(' was never closed", _column(expression, where))


def _outside_brackets(expression: str, tokens: list[str], i: int) -> CalcSyntaxError:
    """A `)` or `,` with no open bracket."""
    if tokens[i] == ")":
        return CalcSyntaxError("invalid syntax: unmatched ')'", _column(expression, i))
    # `1, 2`: a tuple, reported where it starts.
    return CalcSyntaxError("unsupported syntax `,`", _column(expression, _segment_start(tokens, i)))


def _segment_start(tokens: list[str], i: int) -> int:
    """The first token of the operand list `tokens[i]` is in (after `(`, `,` or the start)."""
    level = 0
    for j in range(i - 1, -1, -1):
        tok = tokens[j]
        if tok == ")":
            level += 1
        elif tok == "(":
            if not level:
                return j + 1
            level -= 1
        elif tok == "," and not level:
            return j + 1
    return 0


def _open_bracket(tokens: list[str], i: int) -> int | None:
    """The innermost `(` still open at `tokens[i]`, if any."""
    level = 0
    for j in range(i - 1, -1, -1):
        if tokens[j] == ")":
            level += 1
        elif tokens[j] == "(":
            if not level:
                return j
            level -= 1
    return None


def _is_name(tok: str) -> bool:
    return tok[:1].isalpha() or tok[:1] == "_"


def _operand_error(
    expression: str, tokens: list[str], i: int, stack: list[tuple[int, str, int, int]]
) -> CalcSyntaxError:
    """Why `tokens[i]` cannot start an operand."""
    tok = tokens[i]
    column = _column(expression, i)
    if not tok:
        if stack and _open_bracket(tokens, i) is not None:
            opening = _open_bracket(tokens, i) or 0
            return CalcSyntaxError(
                "invalid syntax: '(' was never closed", _column(expression, opening)
            )
        return CalcSyntaxError("invalid syntax", column)
    in_arguments = bool(stack) and bool(stack[-1][3])
    if tok == "*" and in_arguments:
        return CalcSyntaxError("starred arguments are not supported", column)
    if tok == "**" and in_arguments:
        return CalcSyntaxError("keyword arguments are not supported", column)
    if tok == ")":
        if _open_bracket(tokens, i) is None:
            return CalcSyntaxError("invalid syntax: unmatched ')'", column)
        if tokens[i - 1] == "(":
            return CalcSyntaxError("unsupported syntax `()`", column - 1)
    if tok == "." and expression[column - 1 : column + 2] == "...":
        return CalcSyntaxError("unsupported syntax `...`", column)
    return CalcSyntaxError("invalid syntax", column)


def _operator_error(expression: str, tokens: list[str], i: int) -> CalcSyntaxError:
    """Why `tokens[i]` cannot follow a complete operand."""
    tok = tokens[i]
    if tok == "(":
        # `(1)(2)`, `2(3)`, `sqrt(4)(2)`: the callee is no function name.
        start = i - 1
        if tokens[start] == ")":
            level = 0
            for j in range(start, -1, -1):
                if tokens[j] == ")":
                    level += 1
                elif tokens[j] == "(":
                    level -= 1
                    if not level:
                        start = j - 1 if j and _is_name(tokens[j - 1]) else j
                        break
        return CalcSyntaxError(
            "only the built-in functions can be called", _column(expression, start)
        )
    if tok == ".":
        after = tokens[i + 1]
        if _is_name(after):
            # An attribute: `(1).__class__`, `sqrt.__globals__`; point at its name.
            return CalcSyntaxError(
                f"unsupported syntax `{_clip(after)}`", _column(expression, i + 1)
            )
        return CalcSyntaxError("invalid syntax", _column(expression, i))
    segment = _column(expression, _segment_start(tokens, i))
    if tok in _INFIX_CONSTRUCTS:
        return CalcSyntaxError(f"unsupported syntax `{_INFIX_CONSTRUCTS[tok]}`", segment)
    if tok == "not" and tokens[i + 1] == "in":
        return CalcSyntaxError("unsupported syntax `not in`", segment)
    if tok == "is":
        what = "is not" if tokens[i + 1] == "not" else "is"
        return CalcSyntaxError(f"unsupported syntax `{what}`", segment)
    if tok in ("for", "async"):
        # A generator expression: its node starts at its parenthesis.
        opening = _open_bracket(tokens, i)
        column = segment if opening is None else _column(expression, opening)
        return CalcSyntaxError("unsupported syntax `for ... in`", column)
    return CalcSyntaxError("invalid syntax", _column(expression, i))


def _clip(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
