"""From untrusted text to a checked tree, rejecting everything outside the grammar.

The order matters; each step makes the next one safe:

1. Length: bounded before anything looks at the text.
2. Characters: one line of printable ASCII from a small alphabet. This rejects quotes
   (strings, f-strings), brackets, `:` (lambdas, walrus), `=` (keyword arguments),
   comparison and bitwise operators, control characters (NUL, newline, tab) and every
   non-ASCII character, so NFKC look-alikes (`ｅｖａｌ`, `＿＿import＿＿`) never reach
   Python's parser, which would normalise them into real identifiers (PEP 3131).
3. A cheap pre-scan counts parenthesis depth and tokens, so `ast.parse` never sees input
   deep or long enough to raise RecursionError or MemoryError (they are still caught).
4. `ast.parse(mode="eval")` only builds a syntax tree; nothing is compiled or executed.
5. A whitelist walk: a table from AST node type to handler. A node type not in the table
   is refused with its column. The handlers build a small tree of our own (`Num`, `Neg`,
   `Chain`, `Call`) that the evaluator compiles; no AST node ever reaches it.

Columns are 1-based character positions in the original expression (ASCII only, so the
byte offsets `ast` reports are character offsets).
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any, NamedTuple

from pingcalc.calc.errors import CalcError, CalcLimitError, CalcMathError, CalcSyntaxError
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS
from pingcalc.calc.limits import Limits

# Explicit ASCII ranges: `\d` and `\w` would also match non-ASCII digits and letters.
_ALLOWED = re.compile(r"[0-9A-Za-z_ .+\-*/%(),]*")
# One token per number, name or operator: exactly the elements `Limits.max_nodes` counts.
_TOKEN = re.compile(
    r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[A-Za-z_][A-Za-z0-9_]*|\*\*|//|[-+*/%]"
)
# Decimal literals only: no `0x`, `0o`, `0b`, `_` separators or `j` (complex) suffixes.
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

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
    ast.Compare: "comparison",
    ast.IfExp: "if ... else",
    ast.GeneratorExp: "for ... in",
    ast.Tuple: ",",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
}


# --- the checked tree the evaluator compiles -----------------------------------------------


class Num(NamedTuple):
    """A number literal or a named constant."""

    value: int | float
    column: int


class Neg(NamedTuple):
    """Unary minus (unary plus leaves no node: it cannot change an int or a float)."""

    operand: Node
    column: int


class Step(NamedTuple):
    """One `op operand` of a chain, with the column of the operator."""

    op: str
    operand: Node
    column: int


class Chain(NamedTuple):
    """`first op1 x1 op2 x2 ...` applied left to right.

    Python nests left-associative chains to the left (`1+2+3` is `(1+2)+3`); keeping them
    flat makes a long sum one nesting level instead of one level per term.
    """

    first: Node
    steps: tuple[Step, ...]


class Call(NamedTuple):
    """A call of a whitelisted function."""

    name: str
    args: tuple[Node, ...]
    column: int


Node = Num | Neg | Chain | Call


# --- parsing -------------------------------------------------------------------------------


def parse(expression: str, limits: Limits) -> Node:
    """Check `expression` against the grammar and the limits; return the checked tree."""
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
    _prescan(source, lead, limits)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(exc, source, lead) from None
    except (RecursionError, MemoryError):
        raise CalcLimitError("expression too complex to parse") from None
    except ValueError:
        raise CalcSyntaxError("expression cannot be parsed") from None
    return _Checker(source, lead, limits).check(tree.body, 0)


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


class _Checker:
    """The whitelist walk: `_HANDLERS` maps each allowed AST node type to its handler."""

    __slots__ = ("lead", "limits", "nodes", "source")

    def __init__(self, source: str, lead: int, limits: Limits) -> None:
        self.source = source
        self.lead = lead
        self.limits = limits
        self.nodes = 0

    def check(self, node: ast.expr, depth: int) -> Node:
        if depth > self.limits.max_depth:
            raise _too_deep(self.limits, self.column(node))
        self.count(node)
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise self.unsupported(node)
        return handler(self, node, depth)

    def count(self, node: ast.expr) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise _too_many(self.limits, self.column(node))

    def column(self, node: ast.expr | ast.keyword) -> int:
        return node.col_offset + self.lead + 1

    def text(self, node: ast.expr) -> str:
        return self.source[node.col_offset : node.end_col_offset]

    # --- handlers ------------------------------------------------------------------------

    def constant(self, node: ast.Constant, _depth: int) -> Node:
        value = node.value
        # `type(...) is`: True/False are Constant nodes too, and bool is a subclass of int.
        if type(value) is int:
            if not _NUMBER.fullmatch(self.text(node)):
                raise CalcSyntaxError(f"unsupported number `{self.text(node)}`", self.column(node))
            if value.bit_length() > self.limits.max_int_bits:
                raise CalcLimitError(
                    f"integer literal too large (more than {self.limits.max_int_bits} bits)",
                    self.column(node),
                )
            return Num(value, self.column(node))
        if type(value) is float:
            if not _NUMBER.fullmatch(self.text(node)):
                raise CalcSyntaxError(f"unsupported number `{self.text(node)}`", self.column(node))
            if not math.isfinite(value):
                raise CalcMathError("number too large (float overflow)", self.column(node))
            return Num(value, self.column(node))
        raise self.unsupported(node)

    def name(self, node: ast.Name, _depth: int) -> Node:
        if node.id in CONSTANTS:
            return Num(CONSTANTS[node.id], self.column(node))
        if node.id in FUNCTIONS:
            raise CalcSyntaxError(
                f"function `{node.id}` must be called, as in `{node.id}(...)`", self.column(node)
            )
        raise CalcSyntaxError(f"unknown name `{_clip(node.id)}`", self.column(node))

    def unary(self, node: ast.UnaryOp, depth: int) -> Node:
        if isinstance(node.op, ast.USub):
            return Neg(self.check(node.operand, depth + 1), self.column(node))
        if isinstance(node.op, ast.UAdd):
            return self.check(node.operand, depth + 1)
        raise self.unsupported(node)

    def binary(self, node: ast.BinOp, depth: int) -> Node:
        # Walk the left spine without recursion: `1+2+...+n` is one level, not n.
        spine = [node]
        left = node.left
        while isinstance(left, ast.BinOp):
            self.count(left)
            spine.append(left)
            left = left.left
        first = self.check(left, depth + 1)
        steps = []
        for binop in reversed(spine):
            op = _BINARY_OPS.get(type(binop.op))
            column = self.operator_column(binop)
            if op is None:
                raise CalcSyntaxError("unsupported operator", column)
            steps.append(Step(op, self.check(binop.right, depth + 1), column))
        return Chain(first, tuple(steps))

    def operator_column(self, node: ast.BinOp) -> int:
        # Between the operands there are only spaces, parentheses and the operator itself.
        start = node.left.end_col_offset or 0
        between = self.source[start : node.right.col_offset]
        offset = next((i for i, c in enumerate(between) if c not in " ()"), 0)
        return start + offset + self.lead + 1

    def call(self, node: ast.Call, depth: int) -> Node:
        func = node.func
        if not isinstance(func, ast.Name):
            raise CalcSyntaxError("only the built-in functions can be called", self.column(node))
        name = func.id
        column = self.column(func)
        if name not in FUNCTIONS:
            if name in CONSTANTS:
                raise CalcSyntaxError(f"`{name}` is a constant, not a function", column)
            raise CalcSyntaxError(f"unknown function `{_clip(name)}`", column)
        if node.keywords:
            raise CalcSyntaxError("keyword arguments are not supported", self.column(node))
        if len(node.args) > self.limits.max_args:
            raise CalcLimitError(
                f"too many arguments to `{name}` (more than {self.limits.max_args})", column
            )
        arity = FUNCTIONS[name]
        most = self.limits.max_args if arity.most is None else arity.most
        if not arity.least <= len(node.args) <= most:
            raise CalcSyntaxError(
                f"`{name}` takes {arity.describe()} ({len(node.args)} given)", column
            )
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise CalcSyntaxError("starred arguments are not supported", self.column(arg))
            args.append(self.check(arg, depth + 1))
        return Call(name, tuple(args), column)

    def unsupported(self, node: ast.expr) -> CalcSyntaxError:
        if isinstance(node, ast.Attribute):
            # Point at the attribute name itself: `(1).__class__` -> column 5.
            end = node.end_col_offset or 0
            return CalcSyntaxError(
                f"unsupported syntax `{_clip(node.attr)}`", end - len(node.attr) + self.lead + 1
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            what = "not"
        else:
            what = _CONSTRUCTS.get(type(node)) or _clip(self.text(node))
        return CalcSyntaxError(f"unsupported syntax `{what}`", self.column(node))


def _clip(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


_HANDLERS: dict[type[ast.AST], Callable[[_Checker, Any, int], Node]] = {
    ast.Constant: _Checker.constant,
    ast.Name: _Checker.name,
    ast.UnaryOp: _Checker.unary,
    ast.BinOp: _Checker.binary,
    ast.Call: _Checker.call,
}
