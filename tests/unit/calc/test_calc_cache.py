"""The evaluator's LRU cache of compiled expressions.

Threat: memory exhaustion through many distinct expressions (TM-08: T1499, CWE-400): the
cache is bounded in entries and in total elements, and refused expressions are never kept.
"""

from __future__ import annotations

import pytest

from pingcalc.calc import CalcError, CalcMathError, Compiled, Evaluator, Limits


def test_repeated_expression_is_compiled_once() -> None:
    """A cache hit returns the same compiled form and skips parsing."""
    evaluator = Evaluator()
    first = evaluator.compile("2*(3+4)")
    again = evaluator.compile("2*(3+4)")
    assert again is first and isinstance(first, Compiled)
    assert (evaluator.hits, evaluator.misses) == (1, 1)
    assert evaluator.evaluate("2*(3+4)") == 14 and first() == 14


def test_cache_evicts_the_least_recently_used_entry() -> None:
    """With room for two, using `a` then adding `c` evicts `b`."""
    evaluator = Evaluator(cache_size=2)
    a = evaluator.compile("1+1")
    evaluator.compile("2+2")
    evaluator.compile("1+1")
    evaluator.compile("3+3")
    assert evaluator.cache_len() == 2
    assert evaluator.compile("1+1") is a
    misses = evaluator.misses
    evaluator.compile("2+2")
    assert evaluator.misses == misses + 1


def test_cache_is_bounded_by_total_elements() -> None:
    """Large expressions cannot pin more than `cache_max_nodes` elements in memory."""
    evaluator = Evaluator(cache_size=1000, cache_max_nodes=20)
    for i in range(10):
        evaluator.evaluate(f"{i}+1+1+1+1")  # 9 elements each
    assert evaluator.cache_len() == 2
    huge = "+".join(["1"] * 15)  # 29 elements: never cached
    evaluator.evaluate(huge)
    assert huge not in [c.expression for c in evaluator._cache.values()]


def test_refused_expressions_are_not_cached() -> None:
    """An expression that fails to compile leaves nothing behind."""
    evaluator = Evaluator()
    for _ in range(3):
        with pytest.raises(CalcError):
            evaluator.evaluate("__import__")
    assert evaluator.cache_len() == 0


def test_cached_expression_fails_the_same_way_every_time() -> None:
    """A compiled expression whose evaluation fails raises the same positioned error again."""
    evaluator = Evaluator()
    for _ in range(2):
        with pytest.raises(CalcMathError) as caught:
            evaluator.evaluate("1 + 1/0")
        assert caught.value.position == 6
    assert evaluator.cache_len() == 1


def test_cache_size_zero_disables_caching() -> None:
    """`PINGCALC_CALC_CACHE_SIZE=0` compiles every time and keeps nothing."""
    evaluator = Evaluator(cache_size=0)
    assert evaluator.evaluate("1+1") == 2
    assert evaluator.evaluate("1+1") == 2
    assert evaluator.cache_len() == 0 and evaluator.misses == 2


def test_evaluator_enforces_its_own_limits() -> None:
    """An evaluator built with tighter limits applies them to cached expressions too."""
    evaluator = Evaluator(Limits(max_int_bits=64))
    with pytest.raises(CalcError):
        evaluator.evaluate("2 ** 64")
    assert evaluator.evaluate("2 ** 63") == 2**63
    evaluator.cache_clear()
    assert evaluator.cache_len() == 0
