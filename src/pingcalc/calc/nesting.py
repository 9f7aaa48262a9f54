"""How deeply an expression nests through its operators, measured while it is parsed.

The depth is that of the expression tree, as a recursive evaluator would walk it: a unary
operator or a call is one level over its operands, and a chain of binary operators
`a op b op c` (left-associative, parenthesised or not) one level over all its operands, so a
200-term sum is one level and `-(-(-1))` three. `Nesting` is a `Builder` wrapped around
another one: it passes every operation through and records the first element, in evaluation
order, deeper than `max_depth`; the parser raises that only once the grammar is known good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pingcalc.calc.parser import Builder

# The inner builder's values, opaque here.
Value = Any


class Nested:
    """An operand with its height; `chain` while it is an open chain of binary operators."""

    __slots__ = ("chain", "height", "value")

    def __init__(self, value: Value, height: int, chain: bool) -> None:
        self.value = value
        self.height = height
        self.chain = chain


class Nesting:
    """A `Builder` that measures nesting around `inner`; a bare number is a leaf (height 0)."""

    __slots__ = ("inner", "max_depth", "too_deep")

    def __init__(self, inner: Builder[Any], max_depth: int) -> None:
        self.inner = inner
        self.max_depth = max_depth
        self.too_deep = -1  # the token index of the first element too deep, -1 for none

    def _level(self, value: Value, height: int, where: int, chain: bool) -> Nested:
        if height > self.max_depth and self.too_deep < 0:
            self.too_deep = where
        return Nested(value, height, chain)

    def negate(self, operand: Value, where: int) -> Nested:
        value = self.inner.negate(unwrap(operand), where)
        return self._level(value, _height(operand) + 1, where, chain=False)

    def positive(self, operand: Value, where: int) -> Nested:
        value = self.inner.positive(unwrap(operand), where)
        return self._level(value, _height(operand) + 1, where, chain=False)

    def binary(self, left: Value, op: str, right: Value, where: int) -> Nested:
        value = self.inner.binary(unwrap(left), op, unwrap(right), where)
        if isinstance(left, Nested) and left.chain:
            height = max(left.height, _height(right) + 1)
        else:
            height = max(_height(left), _height(right)) + 1
        return self._level(value, height, where, chain=True)

    def call(self, name: str, args: list[Value], where: int) -> Nested:
        value = self.inner.call(name, [unwrap(arg) for arg in args], where)
        return self._level(value, max(_height(arg) for arg in args) + 1, where, chain=False)


def unwrap(operand: Value) -> Value:
    """What the inner builder made of `operand`."""
    return operand.value if isinstance(operand, Nested) else operand


def _height(operand: object) -> int:
    return operand.height if isinstance(operand, Nested) else 0
