"""The evaluator the server runs: bounded evaluation, with the results of repeats remembered.

An expression is a pure function of its text, so the result of a successful one is kept,
keyed by the exact string, in a `functools.lru_cache` (its C implementation: a hit is about
one dictionary lookup, and an LRU step on a miss costs ~0.1 µs, about 1 % of interpreting a
short expression). A first-seen expression is interpreted directly: compiling it first
(closures, bytecode) would only pay off if the same text ran again, and then the remembered
result is cheaper still. Refused expressions, and those whose arithmetic fails, are not kept.

The cache is bounded by entries (`Bounds.cache_size`) and by the characters of its keys
(`CACHE_KEY_CHARS`: an expression longer than `CACHE_KEY_CHARS // cache_size` is evaluated
but not remembered). That stops a client who sends many distinct expressions from growing
the server's memory (T1499): with the defaults, at most 1,024 results of at most 4,096 bits
under keys of at most 1,000 characters, under 2 MB.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from pingcalc.calc.bounds import CACHE_KEY_CHARS, DEFAULT_BOUNDS, Bounds
from pingcalc.calc.functions import Number
from pingcalc.calc.interpreter import interpret
from pingcalc.calc.runtime import runtime_for

if TYPE_CHECKING:
    from functools import _CacheInfo


class Evaluator:
    """`Evaluator()` is the server's evaluator with the default bounds; `evaluate(text)` runs.

    `evaluate(expression)` returns an int or a finite float, or raises a `CalcError` with
    the column where it applies; a repeated expression is answered from the cache.
    `cache_info()` is `functools`' (hits, misses, maxsize, currsize).
    """

    __slots__ = ("bounds", "cache_info", "evaluate", "longest_cached")

    evaluate: Callable[[str], Number]
    cache_info: Callable[[], _CacheInfo]

    def __init__(self, bounds: Bounds = DEFAULT_BOUNDS) -> None:
        self.bounds = bounds
        runtime = runtime_for(bounds)

        def run(expression: str) -> Number:
            return interpret(expression, bounds, runtime)

        cached = lru_cache(maxsize=bounds.cache_size)(run)
        self.cache_info = cached.cache_info
        self.longest_cached = CACHE_KEY_CHARS // bounds.cache_size if bounds.cache_size else 0
        longest = self.longest_cached
        if bounds.cache_size == 0 or bounds.max_length <= longest:
            # Every expression the bounds accept fits: the cache is the whole call.
            self.evaluate = cached
        else:

            def evaluate(expression: str) -> Number:
                return cached(expression) if len(expression) <= longest else run(expression)

            self.evaluate = evaluate

    def __repr__(self) -> str:
        return f"Evaluator({self.bounds!r})"
