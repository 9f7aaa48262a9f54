"""Property: on random expressions of the allowed grammar, the engine agrees with Python.

Threat: a wrong result is tampering with the answer (TM-05's integrity side); a crash on
valid input would be a denial of service. Each generated string is evaluated by
`pingcalc.calc` (uncached and compiled) and by Python's own `eval` of the same string:
values must match within float tolerance, or both must fail. Magnitudes are kept where
Python cannot silently overflow to inf, so "both fail" is exact.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingcalc.calc import Bounds, CalcError, CalcMathError, Evaluator, evaluate
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS

# Generated integers stay below ~12,300 bits (at most 12 leaves of at most 1,024 bits), so
# with the ceiling as the bound a limit error would be a bug.
BOUNDS = Bounds(max_int_bits=14_000)

# Python's own functions under the engine's whitelisted names: the reference to compare with.
PYTHON_NAMESPACE: dict[str, Any] = {
    "__builtins__": {},
    **{name: getattr(builtins, name, None) or getattr(math, name) for name in FUNCTIONS},
    **{name: constant.value for name, constant in CONSTANTS.items()},
}

NUMBERS = st.one_of(
    st.integers(0, 1000).map(str),
    st.floats(0.001, 1000, allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e3", "2.5E-2", ".5", "3.", "1.5e+2", "0.0", "0"]),
)
LEAVES = st.one_of(NUMBERS, st.sampled_from(["pi", "e", "tau"]))
OPERATORS = st.sampled_from(["+", "-", "*", "/", "//", "%"])
# Functions that can overflow or explode take a leaf only: Python raises for them too.
LEAF_ONLY_NAMES = ["exp", "sinh", "cosh"]
LEAF_ONLY = st.sampled_from(LEAF_ONLY_NAMES)
# Every other function that takes one argument gets any subexpression: read from the table,
# so a function added to the whitelist is compared with Python from then on.
ANY_ARGUMENT = st.sampled_from(
    [
        name
        for name, function in FUNCTIONS.items()
        if function.arity.least <= 1 <= (function.arity.most or 0)
        and function.largest_argument is None
        and name not in LEAF_ONLY_NAMES
    ]
)
TWO_ARGUMENTS = st.sampled_from(["min", "max", "hypot", "atan2", "log"])
EXPONENTS = st.sampled_from(["-2", "-1", "0", "1", "2", "3", "0.5"])


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds("{} {} {}".format, inner, OPERATORS, inner),
        st.builds("{}{}{}".format, inner, OPERATORS, inner),
        inner.map("({})".format),
        inner.map("-{}".format),
        inner.map("+{}".format),
        st.builds("{}({})".format, ANY_ARGUMENT, inner),
        st.builds("{}({}, {})".format, TWO_ARGUMENTS, inner, inner),
        st.builds("max({}, {}, {})".format, inner, inner, inner),
        st.builds("round({}, {})".format, inner, st.integers(-3, 3)),
        st.builds("{}({})".format, LEAF_ONLY, LEAVES),
        st.builds("factorial({})".format, st.integers(0, 20)),
        # A power's base is a leaf and its exponent small: Python has no size limit.
        st.builds("{} ** {}".format, NUMBERS, EXPONENTS),
    )


EXPRESSIONS = st.recursive(LEAVES, _extend, max_leaves=12)


def _python(expression: str) -> Any:
    try:
        # The oracle, on generated grammar strings only: never on outside input.
        value = eval(expression, PYTHON_NAMESPACE)  # noqa: S307
    except (ArithmeticError, ValueError):
        return None
    if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_engine_agrees_with_python_on_the_allowed_grammar(expression: str) -> None:
    """Same value and type as Python (float tolerance), or both fail with a math error."""
    expected = _python(expression)
    try:
        value = evaluate(expression, BOUNDS)
    except CalcMathError:
        assert expected is None, f"{expression!r}: Python gives {expected!r}"
        return
    except CalcError as err:
        raise AssertionError(f"{expression!r} was refused: {err}") from None
    assert expected is not None, f"{expression!r}: Python fails, engine gives {value!r}"
    assert type(value) is type(expected), (expression, value, expected)
    assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12), (expression, value)
    assert Evaluator(BOUNDS).evaluate(expression) == value
