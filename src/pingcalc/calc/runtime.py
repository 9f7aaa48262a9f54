"""The operators and functions, bound to one set of bounds: no operation outgrows them.

Every value is an `int` or a `float`, never a bool, complex, inf or NaN. Integer growth is
bounded *before* it happens: `a * b` from the operands' bit lengths, `a ** b` from
`b * log2(|a|)`, `factorial(n)` from the largest `n` whose factorial fits, `round(x, n)`
from `|n|`; `+` and `-` can add at most one bit, so they are checked after. A float that
overflowed to inf (or became NaN) is a `Fault`, never a result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

from pingcalc.calc.bounds import DEFAULT_BOUNDS, Bounds
from pingcalc.calc.errors import CalcMathError, Fault, TooBig
from pingcalc.calc.functions import FUNCTIONS, Number

BinaryOp = Callable[[Number, Number], Number]
Implementation = Callable[..., Number]


class Runtime:
    """The seven operators and the whitelisted functions under one integer bound."""

    __slots__ = ("check", "functions", "max_int_bits", "ops")

    def __init__(self, max_int_bits: int) -> None:
        self.max_int_bits = max_int_bits
        self.check = _result_check(max_int_bits)
        self.ops = _binary_ops(max_int_bits, self.check)
        self.functions = _functions(max_int_bits)


def runtime_for(bounds: Bounds) -> Runtime:
    """The runtime for `bounds`, built once per integer bound."""
    # Hashing a dataclass runs Python code: skip it for the defaults, the common case.
    if bounds is DEFAULT_BOUNDS:
        return _DEFAULT
    return _runtime(bounds.max_int_bits)


@lru_cache(maxsize=16)
def _runtime(max_int_bits: int) -> Runtime:
    return Runtime(max_int_bits)


def _float_fault(value: float) -> Fault:
    if value != value:
        return Fault(CalcMathError, "result is not a number (NaN)")
    return Fault(CalcMathError, "result too large (float overflow)")


def _result_check(max_bits: int) -> Callable[[object], Number]:
    # `v - v` is 0.0 for a finite float and NaN (truthy) for inf and NaN: the cheapest test.
    def check(value: object) -> Number:
        if type(value) is int:
            if value.bit_length() > max_bits:
                raise TooBig
            return value
        if type(value) is float:
            if value - value:
                raise _float_fault(value)
            return value
        # complex (a negative base to a fractional power) or anything unexpected.
        raise Fault(CalcMathError, "result is not a real number")

    return check


def _binary_ops(max_bits: int, check: Callable[[object], Number]) -> dict[str, BinaryOp]:
    """The seven operators with their bounds; each raises `Fault` or an ArithmeticError."""

    def add(a: Number, b: Number) -> Number:
        return check(a + b)

    def sub(a: Number, b: Number) -> Number:
        return check(a - b)

    def mul(a: Number, b: Number) -> Number:
        if a.__class__ is int and b.__class__ is int:
            # The product has at least bits(a) + bits(b) - 1 bits: refuse before computing.
            if a.bit_length() + b.bit_length() - 1 > max_bits:
                raise TooBig
            product = a * b
            if product.bit_length() > max_bits:
                raise TooBig
            return product
        r = a * b
        if r - r:
            raise _float_fault(r)
        return r

    def truediv(a: Number, b: Number) -> Number:
        r = a / b
        if r - r:
            raise _float_fault(r)
        return r

    def floordiv(a: Number, b: Number) -> Number:
        return check(a // b)

    def mod(a: Number, b: Number) -> Number:
        return check(a % b)

    def power(a: Number, b: Number) -> Number:
        # A base of 0 or +-1 to a non-negative integer power is answered directly: CPython
        # would still square and multiply once per bit of a 4,096-bit exponent (35 us a
        # term, so a 1,000-character expression of them took 3 ms).
        if a.__class__ is int and b.__class__ is int and b >= 0 and -1 <= a <= 1:
            if b == 0:
                return 1
            return a if a != -1 or b & 1 else 1
        # For |a| >= 2 the result has more than b bits, and about b * log2|a|: refuse
        # before computing. The estimate has a bit of float slack; `check` is exact.
        if (
            a.__class__ is int
            and b.__class__ is int
            and b > 0
            and (a > 1 or a < -1)
            and (b > max_bits or b * math.log2(abs(a)) > max_bits + 1)
        ):
            raise TooBig
        # Other cases stay small: a base of 0 or +-1, or a negative or float exponent,
        # whose result is a float (which may overflow, or be complex for a negative base).
        return check(a**b)

    return {"+": add, "-": sub, "*": mul, "/": truediv, "//": floordiv, "%": mod, "**": power}


def _functions(max_bits: int) -> dict[str, Implementation]:
    """Each function's implementation, behind an argument bound where its table row has one."""
    return {
        name: function.implementation
        if function.largest_argument is None
        else _bounded(function.implementation, function.largest_argument(max_bits))
        for name, function in FUNCTIONS.items()
    }


def _bounded(implementation: Implementation, largest: int) -> Implementation:
    def run(n: Number) -> Number:
        # Refused before the call: computing the result first is the cost being bounded.
        if n.__class__ is int and n > largest:
            raise TooBig
        return implementation(n)

    return run


_DEFAULT = Runtime(DEFAULT_BOUNDS.max_int_bits)
