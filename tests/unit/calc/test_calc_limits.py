"""Each resource bound of the calculator at its boundary: just under passes, just over fails.

Threat: denial of service through expensive expressions (TM-08: T1499, CWE-400, CWE-1333).
Every bound is checked before the costly operation, so an expression over a limit costs
almost nothing to refuse.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest

from pingcalc.calc import DEFAULT_BOUNDS, Bounds, CalcLimitError, CalcMathError, Evaluator, evaluate
from pingcalc.calc.bounds import (
    CACHE_SIZE_CEILING,
    DEPTH_CEILING,
    INT_BITS_CEILING,
    MAX_LENGTH,
    MAX_ROUND_DIGITS,
)
from pingcalc.services import build_evaluator
from pingcalc.settings import Settings, SettingsError


def test_defaults_match_the_issue_and_the_settings() -> None:
    """The engine's defaults are the documented ones, and the settings build exactly them."""
    assert (DEFAULT_BOUNDS.max_length, DEFAULT_BOUNDS.max_int_bits) == (1000, 4096)
    settings = Settings(_env_file=None)
    assert Bounds.from_mapping(settings.model_dump(), prefix="calc_") == DEFAULT_BOUNDS
    assert build_evaluator(settings).bounds == Evaluator().bounds == DEFAULT_BOUNDS


def test_length_limit_at_its_boundary() -> None:
    """1,000 characters pass, 1,001 are refused before parsing (column 1001)."""
    assert evaluate("1" + " " * 999) == 1
    with pytest.raises(CalcLimitError) as caught:
        evaluate("1" + " " * 1000)
    assert caught.value.position == 1001
    assert "more than 1000 characters" in caught.value.message


@pytest.mark.parametrize(
    "nest",
    [
        lambda n: "(" * n + "1" + ")" * n,
        lambda n: "abs(" * n + "1" + ")" * n,
        lambda n: "-" * n + "1",
        lambda n: "1**" * n + "2",
        lambda n: "1*(" * n + "1" + ")" * n,
    ],
    ids=["parentheses", "calls", "unary", "right-nested-power", "nested-operands"],
)
def test_depth_limit_at_its_boundary(nest: Callable[[int], str]) -> None:
    """50 levels of nesting pass, 51 are refused: no stack exhaustion in parser or evaluator."""
    evaluate(nest(50))
    with pytest.raises(CalcLimitError, match="nested too deeply"):
        evaluate(nest(51))


def test_long_flat_chain_is_one_nesting_level() -> None:
    """A 200-term sum is not "deep": left-associative chains are kept flat."""
    assert evaluate("+".join(["1"] * 200)) == 200


def test_node_limit_at_its_boundary() -> None:
    """500 numbers, names and operators pass, 501 are refused."""
    at_limit = "-1" + "+1" * 249  # 250 numbers, 249 `+`, one unary minus
    assert evaluate(at_limit) == 248
    with pytest.raises(CalcLimitError, match="more than 500"):
        evaluate("-" + at_limit)


def test_node_limit_is_checked_before_parsing_long_inputs() -> None:
    """With a small node limit, the token pre-scan refuses at the first token over it."""
    limits = Bounds(max_nodes=10)
    assert evaluate("1+1+1+1+1", limits) == 5  # 9 elements
    with pytest.raises(CalcLimitError) as caught:
        evaluate("1+1+1+1+1+1", limits)  # 11 elements, 11 characters
    assert caught.value.position == 11


@pytest.mark.parametrize(
    ("under", "over"),
    [
        ("2 ** 4095", "2 ** 4096"),
        ("(-2) ** 4095", "(-2) ** 4096"),
        ("(2 ** 63) ** 65", "(2 ** 64) ** 64"),
        ("2 ** 2047 * 2 ** 2048", "2 ** 2048 * 2 ** 2048"),
        ("2 ** 4095 - 1 + 2 ** 4095", "2 ** 4095 + 2 ** 4095"),
        ("-(2 ** 4095) - (2 ** 4095 - 1)", "-(2 ** 4095) - 2 ** 4095"),
        ("floor(2.0 ** 1023) * 2 ** 3072", "floor(2.0 ** 1023) * 2 ** 3073"),
    ],
)
def test_integer_size_limit_at_its_boundary(under: str, over: str) -> None:
    """A 4,096-bit result passes; a 4,097-bit one is refused (with the issue's message)."""
    result = evaluate(under)
    assert isinstance(result, int) and result.bit_length() == 4096
    with pytest.raises(CalcLimitError) as caught:
        evaluate(over)
    assert caught.value.message == "result too large (more than 4096 bits)"


def test_power_bound_is_exact_for_bases_that_are_not_powers_of_two() -> None:
    """The b*log2(a) estimate neither refuses a result that fits nor admits one that does not."""
    for base in (3, 7, 10, 12345):
        k = 1
        while (base ** (k + 1)).bit_length() <= 4096:
            k += 1
        assert evaluate(f"{base} ** {k}") == base**k
        with pytest.raises(CalcLimitError):
            evaluate(f"{base} ** {k + 1}")


def test_factorial_limit_at_its_boundary() -> None:
    """The largest n whose factorial fits in 4,096 bits passes; n + 1 is refused."""
    n = 1
    while math.factorial(n + 1).bit_length() <= 4096:
        n += 1
    assert evaluate(f"factorial({n})") == math.factorial(n)
    with pytest.raises(CalcLimitError, match="more than 4096 bits"):
        evaluate(f"factorial({n + 1})")


def test_integer_literal_limit_at_its_boundary() -> None:
    """A literal of max_int_bits bits parses; one bit more is refused at its column."""
    limits = Bounds(max_int_bits=64)
    assert evaluate(str(2**64 - 1), limits) == 2**64 - 1
    with pytest.raises(CalcLimitError) as caught:
        evaluate(f"1 + {2**64}", limits)
    assert caught.value.position == 5


def test_argument_count_limit_at_its_boundary() -> None:
    """16 arguments pass, 17 are refused."""
    assert evaluate("max(" + ", ".join(["1"] * 16) + ")") == 1
    with pytest.raises(CalcLimitError, match="too many arguments to `max`"):
        evaluate("max(" + ", ".join(["1"] * 17) + ")")


def test_round_digits_limit_at_its_boundary() -> None:
    """|ndigits| up to 300 passes; 301 is refused before CPython builds 10**ndigits."""
    assert evaluate(f"round(1.5, {MAX_ROUND_DIGITS})") == 1.5
    assert evaluate(f"round(12345, -{MAX_ROUND_DIGITS})") == 0
    with pytest.raises(CalcLimitError):
        evaluate(f"round(1, -{MAX_ROUND_DIGITS + 1})")


def test_float_overflow_at_its_boundary() -> None:
    """The largest finite float passes; doubling it is an error, never inf."""
    assert evaluate("1.7976931348623157e308") == 1.7976931348623157e308
    with pytest.raises(CalcMathError, match="float overflow"):
        evaluate("1.7976931348623157e308 * 2")


def test_limits_are_configurable_and_checked() -> None:
    """Custom limits apply; values past a ceiling are refused when the limits are built."""
    assert evaluate("2 ** 100", Bounds(max_int_bits=101)) == 2**100
    with pytest.raises(CalcLimitError):
        evaluate("2 ** 101", Bounds(max_int_bits=101))
    with pytest.raises(ValueError, match="max_int_bits"):
        Bounds(max_int_bits=INT_BITS_CEILING + 1)
    with pytest.raises(ValueError, match="max_depth"):
        Bounds(max_depth=0)


def test_settings_past_a_ceiling_are_a_settings_error(
    make_settings: Callable[..., Settings],
) -> None:
    """PINGCALC_CALC_MAX_INT_BITS=14001 would make results unprintable: refused by name."""
    with pytest.raises(SettingsError, match="PINGCALC_CALC_MAX_INT_BITS"):
        make_settings(calc_max_int_bits=INT_BITS_CEILING + 1)
    with pytest.raises(SettingsError, match="PINGCALC_CALC_CACHE_SIZE"):
        make_settings(calc_cache_size=CACHE_SIZE_CEILING + 1)
    # The settings' range is the engine's: the largest allowed value reaches the evaluator.
    settings = make_settings(calc_max_int_bits=INT_BITS_CEILING, calc_max_depth=DEPTH_CEILING)
    bounds = build_evaluator(settings).bounds
    assert (bounds.max_int_bits, bounds.max_depth) == (INT_BITS_CEILING, DEPTH_CEILING)
    assert build_evaluator(settings).evaluate(f"2 ** {INT_BITS_CEILING - 1}") > 0


def test_bounds_from_mapping_takes_prefixed_names_and_refuses_bad_values() -> None:
    """`from_mapping` reads `calc_*` keys, ignores the rest, and range-checks what it reads."""
    bounds = Bounds.from_mapping({"calc_max_args": 3, "calc_max_depth": 7, "port": 1}, "calc_")
    assert (bounds.max_args, bounds.max_depth, bounds.max_length) == (3, 7, MAX_LENGTH)
    with pytest.raises(ValueError, match="max_args must be an integer from 1 to"):
        Bounds.from_mapping({"max_args": 0})
    with pytest.raises(ValueError, match="max_nodes"):
        Bounds.from_mapping({"max_nodes": True})


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9",
        "4000000**4000000",
        "factorial(10**6)",
        "2**4095 * 2**4095",
        "round(1, -10**9)",
        "-" * 999 + "1",
        "1+" * 499 + "1",
        "(" * 999,
    ],
)
def test_refusals_are_fast(expression: str) -> None:
    """Over-limit expressions are refused in milliseconds, whatever they would cost."""
    started = time.perf_counter()
    with pytest.raises(CalcLimitError):
        evaluate(expression)
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize("base", [0, 1, -1])
@pytest.mark.parametrize("exponent", ["0", "1", "2", "9**1292", "9**1292 + 1"])
def test_unit_bases_to_any_power_are_exact(base: int, exponent: str) -> None:
    """0, 1 and -1 to a huge integer power are answered exactly (and directly: CPython would
    square once per bit of a 4,096-bit exponent, TM-08)."""
    value = eval(exponent, {"__builtins__": {}})  # noqa: S307 - our own literal test input
    expected = base**value
    result = Evaluator().evaluate(f"({base})**({exponent})")
    assert result == expected and type(result) is type(expected)
