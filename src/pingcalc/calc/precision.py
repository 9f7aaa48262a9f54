"""Round a result to a number of significant digits, for display (a precision option).

A float is rounded to `digits` significant digits (ties to even, as Python's `round` and
`format` do) and stays a float; an int is exact and is never rounded. Rounding never turns
a finite float into inf: a value that would round past the largest float is rounded
toward zero instead.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal

from pingcalc.calc.bounds import MAX_PRECISION, MIN_PRECISION
from pingcalc.calc.functions import Number


def round_significant(value: Number, digits: int) -> Number:
    """`value` rounded to `digits` (1 to 17) significant digits; an int is returned unchanged.

        >>> round_significant(2 / 3, 3)
        0.667
        >>> round_significant(123456, 2)
        123456

    Raises ValueError for `digits` outside 1..17 (17 tell every float apart) and for a
    float that is inf or NaN (the engine never returns one).
    """
    if type(digits) is not int or not MIN_PRECISION <= digits <= MAX_PRECISION:
        raise ValueError(
            f"precision must be an integer from {MIN_PRECISION} to {MAX_PRECISION} "
            f"significant digits, not {digits!r}"
        )
    if type(value) is int:
        return value
    if value - value:  # inf or NaN
        raise ValueError(f"cannot round a non-finite number ({value!r})")
    if not value:
        return value  # 0.0 or -0.0, sign kept (Decimal arithmetic would drop it)
    exact = Decimal(value)  # the float's exact binary value, so ties are real ties
    rounded = float(Context(prec=digits, rounding=ROUND_HALF_EVEN).plus(exact))
    if rounded - rounded:  # rounded up past the largest float: round toward zero instead
        rounded = float(Context(prec=digits, rounding=ROUND_DOWN).plus(exact))
    return rounded
