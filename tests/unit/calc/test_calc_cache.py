"""The server evaluator's cache of results.

Threat: memory exhaustion through many distinct expressions (TM-08: T1499, CWE-400): the
cache is bounded in entries and in the characters of its keys, and refused expressions are
never kept. A repeated expression is answered from the cache, never recomputed.
"""

from __future__ import annotations

import tracemalloc

import pytest

from pingcalc.calc import Bounds, CalcError, CalcLimitError, CalcMathError, Evaluator
from pingcalc.calc.bounds import CACHE_KEY_CHARS, CACHE_SIZE


@pytest.mark.parametrize(
    ("bounds", "hits", "misses", "kept"),
    [
        pytest.param(Bounds(), 1, 1, 1, id="default"),
        pytest.param(Bounds(cache_size=0), 0, 2, 0, id="cache_size=0"),
    ],
)
def test_repeated_expression_is_answered_from_the_cache_unless_its_size_is_zero(
    bounds: Bounds, hits: int, misses: int, kept: int
) -> None:
    """The second evaluation of the same text is a hit and gives the same value;
    `PINGCALC_CALC_CACHE_SIZE=0` evaluates every time and keeps nothing."""
    evaluator = Evaluator(bounds)
    assert evaluator.evaluate("2*(3+4)") == 14
    assert evaluator.evaluate("2*(3+4)") == 14
    info = evaluator.cache_info()
    assert (info.hits, info.misses, info.currsize) == (hits, misses, kept)


def test_cache_evicts_the_least_recently_used_entry() -> None:
    """With room for two, using `a` then adding `c` evicts `b`."""
    evaluator = Evaluator(Bounds(cache_size=2))
    for expression in ("1+1", "2+2", "1+1", "3+3"):
        evaluator.evaluate(expression)
    assert evaluator.cache_info().currsize == 2
    hits = evaluator.cache_info().hits
    evaluator.evaluate("1+1")
    assert evaluator.cache_info().hits == hits + 1
    misses = evaluator.cache_info().misses
    evaluator.evaluate("2+2")
    assert evaluator.cache_info().misses == misses + 1


def test_cache_is_bounded_by_entries_and_by_key_characters() -> None:
    """A cache size that would let long keys exceed CACHE_KEY_CHARS stops caching long texts."""
    evaluator = Evaluator(Bounds(cache_size=CACHE_SIZE * 4, max_length=5000))
    longest = CACHE_KEY_CHARS // (CACHE_SIZE * 4)
    assert evaluator.longest_cached == longest
    short = "1" + " " * (longest - 1)
    long = "1" + " " * longest
    for expression in (short, short, long, long):
        assert evaluator.evaluate(expression) == 1
    info = evaluator.cache_info()
    assert (info.currsize, info.hits) == (1, 1)  # only the short one is kept, and hit once
    assert info.maxsize is not None and info.maxsize * longest <= CACHE_KEY_CHARS


def test_default_cache_keeps_every_accepted_expression_within_its_bound() -> None:
    """With the defaults, every expression the bounds accept fits the key budget."""
    evaluator = Evaluator()
    assert evaluator.longest_cached >= evaluator.bounds.max_length
    assert CACHE_SIZE * evaluator.bounds.max_length <= CACHE_KEY_CHARS


def test_a_flood_of_distinct_maximal_expressions_stays_within_two_megabytes() -> None:
    """3x the cache size of 1,000-character expressions with 4,096-bit results: < 2 MB held."""
    evaluator = Evaluator()
    padding = " " * (evaluator.bounds.max_length - 20)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for k in range(3 * CACHE_SIZE):
            expression = f"2**4095+{k}{padding}"[: evaluator.bounds.max_length]
            result = evaluator.evaluate(expression)
            assert isinstance(result, int) and result.bit_length() == 4096
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert evaluator.cache_info().currsize == CACHE_SIZE
    assert held - before < 2 * 1024 * 1024, f"{held - before} bytes held"


def test_refused_expressions_are_not_cached() -> None:
    """An expression that is refused leaves nothing behind."""
    evaluator = Evaluator()
    for _ in range(3):
        with pytest.raises(CalcError):
            evaluator.evaluate("__import__")
    assert evaluator.cache_info().currsize == 0


def test_failing_expression_fails_the_same_way_every_time_and_is_not_kept() -> None:
    """An expression whose arithmetic fails raises the same positioned error again."""
    evaluator = Evaluator()
    for _ in range(2):
        with pytest.raises(CalcMathError) as caught:
            evaluator.evaluate("1 + 1/0")
        assert caught.value.position == 6
    assert evaluator.cache_info().currsize == 0


def test_evaluator_enforces_its_own_bounds_on_cached_expressions() -> None:
    """An evaluator built with tighter bounds applies them, cached or not."""
    evaluator = Evaluator(Bounds(max_int_bits=64))
    for _ in range(2):
        with pytest.raises(CalcLimitError, match="more than 64 bits"):
            evaluator.evaluate("2 ** 64")
    assert evaluator.evaluate("2 ** 63") == 2**63
    assert evaluator.evaluate("2 ** 63") == 2**63
    assert Evaluator().evaluate("2 ** 64") == 2**64
