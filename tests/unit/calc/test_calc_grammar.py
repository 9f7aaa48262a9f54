"""The grammar of `pingcalc.calc`: what it accepts, what it refuses, and the message and column.

Threats: code execution through the expression (TM-05: T1059.006, OWASP A03, CWE-95). The
engine must refuse everything outside a fixed arithmetic grammar, with a typed error saying
where, while computing ordinary arithmetic exactly as Python does.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import pingcalc.calc as calc
from pingcalc.calc import (
    CalcError,
    CalcLimitError,
    CalcMathError,
    CalcSyntaxError,
    Evaluator,
    evaluate,
)
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS
from pingcalc.errors import PingcalcError


def outcome(expression: str) -> object:
    """The value, or (error class name, message, position), of one evaluation."""
    try:
        return evaluate(expression)
    except CalcError as err:
        return (type(err).__name__, err.message, err.position)


def test_public_api_is_exactly_the_documented_names() -> None:
    """`pingcalc.calc.__all__` lists the public names, no more and no fewer."""
    assert sorted(calc.__all__) == sorted(
        [
            "Bounds",
            "DEFAULT_BOUNDS",
            "evaluate",
            "Evaluator",
            "CalcError",
            "CalcSyntaxError",
            "CalcLimitError",
            "CalcMathError",
            "round_significant",
            "syntax_markdown",
            "syntax_reference",
        ]
    )


def test_calc_package_imports_nothing_of_http_or_settings() -> None:
    """The engine is HTTP-free: importing it loads no web framework and no settings."""
    code = (
        "import sys, pingcalc.calc; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'uvicorn', 'pydantic', 'pydantic_settings', 'httpx') "
        "or m in ('pingcalc.settings', 'pingcalc.api', 'pingcalc.services')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_errors_are_pingcalc_errors_and_not_builtin_arithmetic_errors() -> None:
    """Every rejection is a PingcalcError; none can be mistaken for a Python math error."""
    for kind in (CalcSyntaxError, CalcLimitError, CalcMathError):
        assert issubclass(kind, CalcError) and issubclass(kind, PingcalcError)
        assert not issubclass(kind, ArithmeticError | ValueError | TypeError)


def test_whitelist_is_exactly_the_documented_functions_and_constants() -> None:
    """Adding a callable name is a deliberate change: the whitelist is pinned here."""
    assert set(FUNCTIONS) == {
        "abs",
        "round",
        "min",
        "max",
        "sqrt",
        "exp",
        "log",
        "log10",
        "log2",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "atan2",
        "sinh",
        "cosh",
        "tanh",
        "floor",
        "ceil",
        "hypot",
        "degrees",
        "radians",
        "factorial",
    }
    assert set(CONSTANTS) == {"pi", "e", "tau"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2*(3+4)", 14),
        ("1 + 2 * 3 - 4 / 5", 1 + 2 * 3 - 4 / 5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("-7 % 3", 2),
        ("7.5 % 2", 1.5),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("2 ** 3 ** 2", 512),
        ("(2 ** 3) ** 2", 64),
        ("-2 ** 2", -4),
        ("--3", 3),
        ("+-+3", -3),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        (".5 + 3.", 3.5),
        ("1.5e+2", 150.0),
        ("00", 0),
        ("  1 + 1  ", 2),
        ("pi", math.pi),
        ("e", math.e),
        ("tau", math.tau),
        ("abs(-3)", 3),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("round(1234, -2)", 1200),
        ("min(3, 1, 2)", 1),
        ("max(1, 2.5)", 2.5),
        ("min(4)", 4),
        ("sqrt(16)", 4.0),
        ("exp(0)", 1.0),
        ("log(8, 2)", 3.0),
        ("log(e)", 1.0),
        ("log10(1000)", 3.0),
        ("log2(1024)", 10.0),
        ("atan2(1, 1)", math.pi / 4),
        ("hypot(3, 4)", 5.0),
        ("floor(2.5) + ceil(2.5)", 5),
        ("degrees(pi)", 180.0),
        ("radians(180)", math.pi),
        ("factorial(10)", 3628800),
        ("sin(0) + cos(0) + tan(0)", 1.0),
        ("asin(1) + acos(1) + atan(0)", math.pi / 2),
        ("sinh(0) + cosh(0) + tanh(0)", 1.0),
        ("1+2+3+4+5+6+7+8+9+10+11+12+13+14+15+16+17+18+19+20", 210),
    ],
)
def test_allowed_grammar_computes_like_python(expression: str, expected: float) -> None:
    """Ordinary arithmetic gives Python's value and type (a legitimate request works)."""
    value = evaluate(expression)
    assert value == expected and type(value) is type(expected)
    evaluator = Evaluator()
    assert evaluator.evaluate(expression) == value and evaluator.evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "kind", "message", "position"),
    [
        ("(1).__class__", CalcSyntaxError, "unsupported syntax `__class__`", 5),
        ("1 .real", CalcSyntaxError, "unsupported syntax `real`", 4),
        ("__import__", CalcSyntaxError, "unknown name `__import__`", 1),
        ("x + 1", CalcSyntaxError, "unknown name `x`", 1),
        ("1 + sum(1, 2)", CalcSyntaxError, "unknown function `sum`", 5),
        ("sqrt", CalcSyntaxError, "function `sqrt` must be called, as in `sqrt(...)`", 1),
        ("pi(2)", CalcSyntaxError, "`pi` is a constant, not a function", 1),
        ("(1)(2)", CalcSyntaxError, "only the built-in functions can be called", 1),
        ("abs(*1)", CalcSyntaxError, "starred arguments are not supported", 5),
        ("atan2(1)", CalcSyntaxError, "`atan2` takes 2 arguments (1 given)", 1),
        ("sqrt(1, 2)", CalcSyntaxError, "`sqrt` takes 1 argument (2 given)", 1),
        ("round(1, 2, 3)", CalcSyntaxError, "`round` takes 1 to 2 arguments (3 given)", 1),
        ("min()", CalcSyntaxError, "`min` takes at least 1 argument (0 given)", 1),
        ("True", CalcSyntaxError, "unsupported syntax `True`", 1),
        ("None", CalcSyntaxError, "unsupported syntax `None`", 1),
        ("...", CalcSyntaxError, "unsupported syntax `...`", 1),
        ("1 if 2 else 3", CalcSyntaxError, "unsupported syntax `if ... else`", 1),
        ("1 and 2", CalcSyntaxError, "unsupported syntax `and/or`", 1),
        ("not 1", CalcSyntaxError, "unsupported syntax `not`", 1),
        ("1 in 2", CalcSyntaxError, "unsupported syntax `in`", 1),
        ("(x for x in y)", CalcSyntaxError, "unsupported syntax `for ... in`", 1),
        ("1, 2", CalcSyntaxError, "unsupported syntax `,`", 1),
        ("0x10", CalcSyntaxError, "unsupported number `0x10` (decimal numbers only)", 1),
        ("1 + 1_000", CalcSyntaxError, "unsupported number `1_000` (decimal numbers only)", 5),
        ("2j", CalcSyntaxError, "unsupported syntax `2j`", 1),
        ("'a'", CalcSyntaxError, "unsupported character `'`", 1),
        ("1 == 1", CalcSyntaxError, "unsupported character `=`", 3),
        ("2 ^ 10", CalcSyntaxError, "unsupported operator `^`; use `**` for powers", 3),
        ("[1]", CalcSyntaxError, "unsupported character `[`", 1),
        ("1\n+1", CalcSyntaxError, "unsupported character U+000A (line break)", 2),
        ("\t1", CalcSyntaxError, "unsupported character U+0009 (tab)", 1),
        ("1\x00", CalcSyntaxError, "unsupported character U+0000 (NUL)", 2),
        (
            "\uff45",
            CalcSyntaxError,
            "unsupported character U+FF45 (FULLWIDTH LATIN SMALL LETTER E); only ASCII is accepted",
            1,
        ),
        ("", CalcSyntaxError, "empty expression", None),
        ("   ", CalcSyntaxError, "empty expression", None),
        ("1 +", CalcSyntaxError, "invalid syntax", 4),
        ("(1", CalcSyntaxError, "invalid syntax: '(' was never closed", 1),
        ("  1)", CalcSyntaxError, "invalid syntax: unmatched ')'", 4),
        ("1/0", CalcMathError, "division by zero", 2),
        ("1 + (2) // (1 - 1)", CalcMathError, "division by zero", 9),
        ("5 % 0.0", CalcMathError, "division by zero", 3),
        ("0 ** -1", CalcMathError, "division by zero", 3),
        ("log(8, 1)", CalcMathError, "division by zero", 1),
        ("sqrt(-1)", CalcMathError, "math domain error in `sqrt`", 1),
        ("1 + log(0)", CalcMathError, "math domain error in `log`", 5),
        ("acos(2)", CalcMathError, "math domain error in `acos`", 1),
        ("factorial(-1)", CalcMathError, "`factorial` takes a non-negative integer", 1),
        ("factorial(2.5)", CalcMathError, "`factorial` takes a non-negative integer", 1),
        ("round(2.5, 1.0)", CalcMathError, "`round` takes an integer number of digits", 1),
        ("(-8) ** 0.5", CalcMathError, "result is not a real number", 6),
        ("1e308 * 10", CalcMathError, "result too large (float overflow)", 7),
        ("1e308 + 1e308", CalcMathError, "result too large (float overflow)", 7),
        ("1 / (1e308 * 10)", CalcMathError, "result too large (float overflow)", 12),
        ("exp(1000)", CalcMathError, "result too large (float overflow)", 1),
        ("2.0 ** 10000", CalcMathError, "result too large (float overflow)", 5),
        ("10 ** 400 / 3", CalcMathError, "result too large (float overflow)", 11),
        ("1e999", CalcMathError, "number too large (float overflow)", 1),
        ("2 ** 4096", CalcLimitError, "result too large (more than 4096 bits)", 3),
    ],
)
def test_rejections_have_type_message_and_column(
    expression: str, kind: type[CalcError], message: str, position: int | None
) -> None:
    """Each refusal names what is wrong and where, on both the uncached and cached paths."""
    with pytest.raises(kind) as caught:
        evaluate(expression)
    assert (caught.value.message, caught.value.position) == (message, position)
    with pytest.raises(kind) as cached:
        Evaluator().evaluate(expression)
    assert (cached.value.message, cached.value.position) == (message, position)


def test_error_text_reads_message_then_column() -> None:
    """str() is the issue's form, "unsupported syntax `__class__` at column 5"."""
    with pytest.raises(CalcSyntaxError) as caught:
        evaluate("(1).__class__")
    assert str(caught.value) == "unsupported syntax `__class__` at column 5"
    with pytest.raises(CalcSyntaxError) as empty:
        evaluate("")
    assert str(empty.value) == "empty expression"


def test_grammar_error_further_right_wins_over_an_earlier_math_error() -> None:
    """Both paths report the same error: grammar first, then the first failure in order."""
    assert outcome("1/0 + x") == ("CalcSyntaxError", "unknown name `x`", 7)
    assert outcome("1/0 + sqrt(-1)") == ("CalcMathError", "division by zero", 2)
    assert outcome("sqrt(-1) + 1/0") == ("CalcMathError", "math domain error in `sqrt`", 1)
    evaluator = Evaluator()
    for expression in ("1/0 + x", "1/0 + sqrt(-1)", "sqrt(-1) + 1/0"):
        with pytest.raises(CalcError) as caught:
            evaluator.evaluate(expression)
        err = caught.value
        assert (type(err).__name__, err.message, err.position) == outcome(expression)


def test_results_are_never_bool_complex_or_non_finite() -> None:
    """Only int and finite float come out, so JSON never carries inf, NaN or true."""
    for expression in ("1", "1.5", "round(2.5)", "min(1, 2)", "abs(-0.0)", "floor(1e300)"):
        value = evaluate(expression)
        assert type(value) in (int, float)
        assert math.isfinite(value)
