"""The whitelist: every function and constant, with its implementation and documentation.

One table in simpleeval's style: a name is callable in an expression exactly when it is a key
of `FUNCTIONS`, with the argument counts, the implementation and the example given here (the
user-facing reference, `reference.py`, and its tests read the same rows). Implementations see
ints and finite floats only and raise `Fault` or an ArithmeticError/ValueError on bad values;
the runtime bounds their arguments and checks their results (`runtime.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from pingcalc.calc.bounds import MAX_ROUND_DIGITS
from pingcalc.calc.errors import CalcLimitError, CalcMathError, Fault

Number = int | float


class Arity(NamedTuple):
    """How many arguments a function takes; `most=None` means up to `Bounds.max_args`."""

    least: int
    most: int | None

    def describe(self) -> str:
        if self.most is None:
            return f"at least {self.least} argument{'s' if self.least != 1 else ''}"
        if self.least == self.most:
            return f"{self.least} argument{'s' if self.least != 1 else ''}"
        return f"{self.least} to {self.most} arguments"


class Function(NamedTuple):
    """One whitelisted function: how it is called, what runs, and how the reference shows it."""

    arity: Arity
    implementation: Callable[..., Number]
    description: str
    example: str
    result: Number
    # For a function whose cost grows with its argument: the largest first argument whose
    # result fits in `max_int_bits` bits. The runtime refuses a larger one before calling.
    largest_argument: Callable[[int], int] | None = None


class Constant(NamedTuple):
    """One named constant, with an example of its use and that example's value."""

    value: float
    description: str
    example: str
    result: Number


def _round(x: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(x)
    if ndigits.__class__ is not int:
        raise Fault(CalcMathError, "`round` takes an integer number of digits")
    if abs(ndigits) > MAX_ROUND_DIGITS:
        raise Fault(CalcLimitError, f"`round` digits out of range (at most {MAX_ROUND_DIGITS})")
    return round(x, ndigits)


def _min(*args: Number) -> Number:
    return min(args)


def _max(*args: Number) -> Number:
    return max(args)


def _factorial(n: Number) -> Number:
    if n.__class__ is not int or n < 0:
        raise Fault(CalcMathError, "`factorial` takes a non-negative integer")
    return math.factorial(n)


def largest_factorial(max_bits: int) -> int:
    """The largest n whose factorial has at most `max_bits` bits (computed exactly)."""
    n, value = 0, 1
    while (value * (n + 1)).bit_length() <= max_bits:
        n += 1
        value *= n
    return n


ONE = Arity(1, 1)
TWO = Arity(2, 2)
ONE_OR_TWO = Arity(1, 2)
SOME = Arity(1, None)

# name: (arguments, implementation, description, example, the example's result)
FUNCTIONS: dict[str, Function] = {
    "abs": Function(ONE, abs, "absolute value", "abs(-3)", 3),
    "round": Function(
        ONE_OR_TWO, _round, "round to an integer, or to n decimals (ties to even)",
        "round(2.567, 2)", 2.57,
    ),
    "min": Function(SOME, _min, "smallest argument", "min(3, 1, 2)", 1),
    "max": Function(SOME, _max, "largest argument", "max(1, 2.5)", 2.5),
    "sqrt": Function(ONE, math.sqrt, "square root", "sqrt(16)", 4.0),
    "exp": Function(ONE, math.exp, "e to the power x", "exp(1)", math.e),
    "log": Function(
        ONE_OR_TWO, math.log, "natural logarithm, or logarithm to a base", "log(8, 2)", 3.0
    ),
    "log10": Function(ONE, math.log10, "base-10 logarithm", "log10(1000)", 3.0),
    "log2": Function(ONE, math.log2, "base-2 logarithm", "log2(1024)", 10.0),
    "sin": Function(ONE, math.sin, "sine (radians)", "sin(pi / 2)", 1.0),
    "cos": Function(ONE, math.cos, "cosine (radians)", "cos(0)", 1.0),
    "tan": Function(ONE, math.tan, "tangent (radians)", "tan(0)", 0.0),
    "asin": Function(ONE, math.asin, "arc sine, in radians", "asin(1)", math.pi / 2),
    "acos": Function(ONE, math.acos, "arc cosine, in radians", "acos(1)", 0.0),
    "atan": Function(ONE, math.atan, "arc tangent, in radians", "atan(1)", math.pi / 4),
    "atan2": Function(
        TWO, math.atan2, "arc tangent of y / x, in radians, by quadrant", "atan2(1, 1)",
        math.pi / 4,
    ),
    "sinh": Function(ONE, math.sinh, "hyperbolic sine", "sinh(0)", 0.0),
    "cosh": Function(ONE, math.cosh, "hyperbolic cosine", "cosh(0)", 1.0),
    "tanh": Function(ONE, math.tanh, "hyperbolic tangent", "tanh(0)", 0.0),
    "floor": Function(ONE, math.floor, "largest integer not above x", "floor(2.5)", 2),
    "ceil": Function(ONE, math.ceil, "smallest integer not below x", "ceil(2.5)", 3),
    "hypot": Function(
        SOME, math.hypot, "Euclidean norm: sqrt(x*x + y*y + ...)", "hypot(3, 4)", 5.0
    ),
    "degrees": Function(ONE, math.degrees, "radians to degrees", "degrees(pi)", 180.0),
    "radians": Function(ONE, math.radians, "degrees to radians", "radians(180)", math.pi),
    "factorial": Function(
        ONE, _factorial, "n! for a non-negative integer n", "factorial(10)", 3628800,
        largest_argument=largest_factorial,
    ),
}  # fmt: skip

CONSTANTS: dict[str, Constant] = {
    "pi": Constant(math.pi, "the circle constant π = 3.14159...", "2 * pi", 2 * math.pi),
    "e": Constant(math.e, "Euler's number e = 2.71828...", "log(e)", 1.0),
    "tau": Constant(math.tau, "τ = 2π = 6.28318...", "tau / 2", math.pi),
}
