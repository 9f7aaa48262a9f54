"""From untrusted text to a checked tree, rejecting everything outside the grammar.

The order matters; each step makes the next one safe:

1. Length: bounded before anything looks at the text.
2. Characters: one line of printable ASCII from a small alphabet. This rejects quotes
   (strings, f-strings), brackets, `:` (lambdas, walrus), `=` (keyword arguments),
   comparison and bitwise operators, control characters (NUL, newline, tab) and every
   non-ASCII character, so NFKC look-alikes (fullwidth `eval`, `__import__` spelt with
   fullwidth low lines) never reach Python's parser, which would normalise them into
   real identifiers (PEP 3131).
3. A cheap pre-scan counts parenthesis depth and tokens, so `ast.parse` never sees input
   deep or long enough to raise RecursionError or MemoryError (they are still caught).
4. `ast.parse(mode="eval")` only builds a syntax tree; nothing is compiled or executed.
5. A whitelist walk: a table from AST node type to handler. A node type not in the table
   is refused with its column. The handlers hand each checked element to a `Builder`
   (the evaluator's compiler); no AST node ever reaches it.

Columns are 1-based character positions in the original expression (ASCII only, so the
byte offsets `ast` reports are character offsets).
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from pingcalc.calc.errors import CalcError, CalcLimitError, CalcMathError, CalcSyntaxError
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS
from pingcalc.calc.limits import Limits

# Explicit ASCII ranges: `\d` and `\w` would also match non-ASCII digits and letters.
_ALLOWED = re.compile(r"[0-9A-Za-z_ .+\-*/%(),]*")
# One token per number, name or operator: exactly the elements `Limits.max_nodes` counts.
_TOKEN = re.compile(
    r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[A-Za-z_][A-Za-z0-9_]*|\*\*|//|[-+*/%]"
)
# Decimal literals only: no `0x1f`, `0o7`, `0b1`, `1_000` separators or `1j` (complex).
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_DIGIT_LETTER = re.compile(r"[0-9][A-Za-z_]")

_OPERATOR_CHARS = frozenset("+-*/%")

T = TypeVar("T")
A = TypeVar("A")

_CONTROL_NAMES = {"\0": "NUL", "\t": "tab", "\n": "line break", "\r": "carriage return"}

_BINARY_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

# Words for refused constructs whose source text would be a poor description.
_CONSTRUCTS: dict[type[ast.AST], str] = {
    ast.BoolOp: "and/or",
    ast.IfExp: "if ... else",
    ast.GeneratorExp: "for ... in",
    ast.Tuple: ",",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
}


_COMPARISONS: dict[type[ast.cmpop], str] = {
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}


# --- what the walk produces ---------------------------------------------------------------


class Builder(Protocol[T, A]):
    """Receives each checked element in evaluation order (operands before their operator).

    The evaluator has two: one compiles closures, one computes values at once. No AST node
    ever leaves this module: a builder sees only numbers, operator symbols, whitelisted
    function names and the columns to report errors at.
    """

    def number(self, value: int | float, column: int) -> T:
        """A number literal or a named constant."""

    def negate(self, operand: T, column: int) -> T:
        """Unary minus (unary plus produces nothing: it cannot change an int or a float)."""

    # A chain is `first op1 x1 op2 x2 ...` applied left to right. Python nests such chains
    # to the left (`1+2+3` is `(1+2)+3`); keeping them flat makes a long sum one nesting
    # level instead of one level per term. Each step comes as soon as its operand is checked.

    def chain_start(self, first: T) -> A:
        """The first operand of a chain."""

    def chain_step(self, chain: A, op: str, operand: T, column: int) -> A:
        """One `op operand` step; `column` is the operator's."""

    def chain_end(self, chain: A) -> T:
        """The chain is complete."""

    def call(self, name: str, args: list[T], column: int) -> T:
        """A call of a whitelisted function with an allowed number of arguments."""


# --- parsing -------------------------------------------------------------------------------


def parse(expression: str, limits: Limits, builder: Builder[T, A]) -> tuple[T, int]:
    """Check `expression` against the grammar and the limits, feeding `builder`.

    Returns what the builder made of the whole expression and how many elements
    (numbers, names, operators) it has.
    """
    if len(expression) > limits.max_length:
        raise CalcLimitError(
            f"expression too long (more than {limits.max_length} characters)",
            limits.max_length + 1,
        )
    if not _ALLOWED.fullmatch(expression):
        raise _bad_character(expression)
    source = expression.lstrip(" ")
    # `ast.parse` refuses leading spaces (an indent); columns stay those of `expression`.
    lead = len(expression) - len(source)
    if not source.rstrip(" "):
        raise CalcSyntaxError("empty expression")
    if len(source) > limits.max_nodes or source.count("(") > limits.max_depth:
        _prescan(source, lead, limits)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(exc, source, lead) from None
    except (RecursionError, MemoryError):
        raise CalcLimitError("expression too complex to parse") from None
    except ValueError:
        raise CalcSyntaxError("expression cannot be parsed") from None
    checker = _Checker(source, lead, limits, builder)
    return checker.check(tree.body, 0), checker.nodes


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


def _prescan(source: str, lead: int, limits: Limits) -> None:
    """Refuse input too deep or too long for `ast.parse`, without running it."""
    if source.count("(") > limits.max_depth:
        depth = 0
        for index, char in enumerate(source):
            if char == "(":
                depth += 1
                if depth > limits.max_depth:
                    raise _too_deep(limits, index + lead + 1)
            elif char == ")":
                depth -= 1
    # Each token is at least one character, so a short input cannot have too many.
    if len(source) > limits.max_nodes and len(_TOKEN.findall(source)) > limits.max_nodes:
        for count, match in enumerate(_TOKEN.finditer(source), start=1):
            if count > limits.max_nodes:
                raise _too_many(limits, match.start() + lead + 1)


def _syntax_error(exc: SyntaxError, source: str, lead: int) -> CalcError:
    message = exc.msg or "invalid syntax"
    if message.startswith("Exceeds the limit"):
        return CalcLimitError("integer literal too long")
    # CPython reports offset 0 when the input ends too early ("1+").
    offset = exc.offset if exc.offset and 0 < exc.offset <= len(source) else len(source) + 1
    if message != "invalid syntax":
        message = f"invalid syntax: {message}"
    return CalcSyntaxError(message, offset + lead)


def _too_deep(limits: Limits, position: int) -> CalcLimitError:
    return CalcLimitError(
        f"expression nested too deeply (more than {limits.max_depth} levels)", position
    )


def _too_many(limits: Limits, position: int) -> CalcLimitError:
    return CalcLimitError(
        f"expression too complex (more than {limits.max_nodes} numbers, names and operators)",
        position,
    )


class _Checker(Generic[T, A]):
    """The whitelist walk: `_HANDLERS` maps each allowed AST node type to its handler."""

    __slots__ = (
        "base",
        "builder",
        "check_spelling",
        "limits",
        "max_depth",
        "max_int_bits",
        "max_nodes",
        "nodes",
        "source",
    )

    def __init__(self, source: str, lead: int, limits: Limits, builder: Builder[T, A]) -> None:
        self.source = source
        self.base = lead + 1  # from a 0-based offset in `source` to a column in the input
        self.limits = limits
        self.max_depth = limits.max_depth
        self.max_nodes = limits.max_nodes
        self.max_int_bits = limits.max_int_bits
        # Every literal Python reads differently from a decimal (`0x1f`, `0o7`, `0b1`,
        # `1_000`, `1j`) has a digit followed by a letter or `_`; most inputs have none.
        self.check_spelling = _DIGIT_LETTER.search(source) is not None
        self.builder = builder
        self.nodes = 0

    def check(self, node: ast.expr, depth: int) -> T:
        if depth > self.max_depth:
            raise _too_deep(self.limits, node.col_offset + self.base)
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise _too_many(self.limits, node.col_offset + self.base)
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise self.unsupported(node)
        result: T = handler(self, node, depth)
        return result

    # --- handlers ------------------------------------------------------------------------

    def constant(self, node: ast.Constant, _depth: int) -> T:
        value = node.value
        # `type(...) is`: True/False are Constant nodes too, and bool is a subclass of int.
        if type(value) is int:
            if value.bit_length() > self.max_int_bits:
                raise CalcLimitError(
                    f"integer literal too large (more than {self.max_int_bits} bits)",
                    node.col_offset + self.base,
                )
        elif type(value) is float:
            if not math.isfinite(value):
                raise CalcMathError(
                    "number too large (float overflow)", node.col_offset + self.base
                )
        else:
            raise self.unsupported(node)
        if self.check_spelling:
            # `ast` gives 16 for `0x10` and 1000 for `1_000`: look at the text itself.
            text = self.source[node.col_offset : node.end_col_offset]
            if not _NUMBER.fullmatch(text):
                raise CalcSyntaxError(
                    f"unsupported number `{_clip(text)}` (decimal numbers only)",
                    node.col_offset + self.base,
                )
        return self.builder.number(value, node.col_offset + self.base)

    def name(self, node: ast.Name, _depth: int) -> T:
        column = node.col_offset + self.base
        if node.id in CONSTANTS:
            return self.builder.number(CONSTANTS[node.id], column)
        if node.id in FUNCTIONS:
            raise CalcSyntaxError(
                f"function `{node.id}` must be called, as in `{node.id}(...)`", column
            )
        raise CalcSyntaxError(f"unknown name `{_clip(node.id)}`", column)

    def unary(self, node: ast.UnaryOp, depth: int) -> T:
        if type(node.op) is ast.USub:
            return self.builder.negate(
                self.check(node.operand, depth + 1), node.col_offset + self.base
            )
        if type(node.op) is ast.UAdd:
            return self.check(node.operand, depth + 1)
        raise self.unsupported(node)

    def binary(self, node: ast.BinOp, depth: int) -> T:
        # Walk the left spine without recursion: `1+2+...+n` is one level, not n.
        spine = [node]
        left = node.left
        while type(left) is ast.BinOp:
            self.nodes += 1
            if self.nodes > self.max_nodes:
                raise _too_many(self.limits, left.col_offset + self.base)
            spine.append(left)
            left = left.left
        builder = self.builder
        source = self.source
        chain = builder.chain_start(self.check(left, depth + 1))
        for binop in reversed(spine):
            # The operator's column: right after the left operand in the common `1+2`.
            start = binop.left.end_col_offset or 0
            if source[start] in _OPERATOR_CHARS:
                column = start + self.base
            else:
                column = self.operator_column(binop)
            op = _BINARY_OPS.get(type(binop.op))
            if op is None:
                raise CalcSyntaxError("unsupported operator", column)
            chain = builder.chain_step(chain, op, self.check(binop.right, depth + 1), column)
        return builder.chain_end(chain)

    def operator_column(self, node: ast.BinOp) -> int:
        # Between the operands there are only spaces, parentheses and the operator itself.
        start = node.left.end_col_offset or 0
        between = self.source[start : node.right.col_offset]
        return start + len(between) - len(between.lstrip(" ()")) + self.base

    def call(self, node: ast.Call, depth: int) -> T:
        func = node.func
        if type(func) is not ast.Name:
            raise CalcSyntaxError(
                "only the built-in functions can be called", node.col_offset + self.base
            )
        name = func.id
        column = func.col_offset + self.base
        arity = FUNCTIONS.get(name)
        if arity is None:
            if name in CONSTANTS:
                raise CalcSyntaxError(f"`{name}` is a constant, not a function", column)
            raise CalcSyntaxError(f"unknown function `{_clip(name)}`", column)
        if node.keywords:
            raise CalcSyntaxError(
                "keyword arguments are not supported", node.keywords[0].col_offset + self.base
            )
        count = len(node.args)
        if count > self.limits.max_args:
            raise CalcLimitError(
                f"too many arguments to `{name}` (more than {self.limits.max_args})", column
            )
        if count < arity.least or (arity.most is not None and count > arity.most):
            raise CalcSyntaxError(f"`{name}` takes {arity.describe()} ({count} given)", column)
        args = []
        for arg in node.args:
            if type(arg) is ast.Starred:
                raise CalcSyntaxError(
                    "starred arguments are not supported", arg.col_offset + self.base
                )
            args.append(self.check(arg, depth + 1))
        return self.builder.call(name, args, column)

    def unsupported(self, node: ast.expr) -> CalcSyntaxError:
        if isinstance(node, ast.Attribute):
            # Point at the attribute name itself: `(1).__class__` -> column 5.
            end = node.end_col_offset or 0
            return CalcSyntaxError(
                f"unsupported syntax `{_clip(node.attr)}`", end - len(node.attr) + self.base
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            what = "not"
        elif isinstance(node, ast.Compare):
            what = _COMPARISONS.get(type(node.ops[0]), "comparison")
        else:
            text = self.source[node.col_offset : node.end_col_offset]
            what = _CONSTRUCTS.get(type(node)) or _clip(text)
        return CalcSyntaxError(f"unsupported syntax `{what}`", node.col_offset + self.base)


def _clip(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


_HANDLERS: dict[type[ast.AST], Callable[[_Checker[Any, Any], Any, int], Any]] = {
    ast.Constant: _Checker.constant,
    ast.Name: _Checker.name,
    ast.UnaryOp: _Checker.unary,
    ast.BinOp: _Checker.binary,
    ast.Call: _Checker.call,
}
