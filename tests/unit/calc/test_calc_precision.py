"""`round_significant`: a float result rounded to 1-17 significant digits for display.

Threat: none directly (issue 22's precision option); a precision that turned a finite result
into inf would put a non-JSON value in a response, so that is tested at the boundary.
"""

from __future__ import annotations

import math
import sys

import pytest

from pingcalc.calc import round_significant
from pingcalc.calc.bounds import MAX_PRECISION, MIN_PRECISION


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (2 / 3, 1, 0.7),
        (2 / 3, 3, 0.667),
        (2 / 3, 17, 0.66666666666666663),
        (-2 / 3, 3, -0.667),
        (123456.789, 2, 120000.0),
        (0.000123456, 2, 0.00012),
        (2.5, 1, 2.0),  # a tie goes to even, as Python's round() does
        (3.5, 1, 4.0),
        (-0.0, 5, -0.0),
        (1e-320, 1, 1e-320),  # subnormal
        (5e-324, 17, 5e-324),  # the smallest float
        (1.2345e300, 3, 1.23e300),
    ],
)
def test_floats_are_rounded_to_significant_digits(
    value: float, digits: int, expected: float
) -> None:
    """The result is the float nearest the value rounded to `digits` significant digits."""
    rounded = round_significant(value, digits)
    assert type(rounded) is float
    assert rounded == expected and math.copysign(1, rounded) == math.copysign(1, expected)


def test_seventeen_digits_keep_every_float_and_one_digit_keeps_the_first() -> None:
    """17 digits round-trip any float exactly; the bounds are 1 and 17, both accepted."""
    for value in (math.pi, 0.1, 1 / 3, 1e-300, sys.float_info.max, -sys.float_info.min):
        assert round_significant(value, MAX_PRECISION) == value
    assert round_significant(math.pi, MIN_PRECISION) == 3.0


def test_integers_are_never_rounded() -> None:
    """An int result is exact: returned unchanged, even a 4,096-bit one."""
    big = 2**4095 + 12345
    assert round_significant(big, 1) is big
    assert round_significant(123456, 2) == 123456
    assert type(round_significant(-7, 1)) is int


@pytest.mark.parametrize("value", [sys.float_info.max, -sys.float_info.max, 1.75e308])
def test_rounding_never_makes_inf(value: float) -> None:
    """1.797e308 to one digit would be 2e308 (inf): it becomes 1e308 instead, finite."""
    for digits in range(MIN_PRECISION, MAX_PRECISION + 1):
        rounded = round_significant(value, digits)
        assert math.isfinite(rounded) and abs(rounded) <= abs(value)
    assert round_significant(sys.float_info.max, 1) == 1e308
    assert round_significant(9.96e307, 1) == 1e308  # rounding up that stays finite is kept


@pytest.mark.parametrize("digits", [0, 18, -1, 2.0, True, "3"])
def test_precision_outside_one_to_seventeen_is_refused(digits: object) -> None:
    """0, 18, non-integers and bools are refused with a message naming the range."""
    with pytest.raises(ValueError, match="precision must be an integer from 1 to 17"):
        round_significant(1.5, digits)  # type: ignore[arg-type]  # the runtime check is tested


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_values_are_refused(value: float) -> None:
    """The engine never returns inf or NaN; rounding one is a caller's bug, said clearly."""
    with pytest.raises(ValueError, match="non-finite"):
        round_significant(value, 3)
