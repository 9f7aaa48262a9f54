"""The resource bounds of the calculator: each is checked *before* the work it protects.

Every default below is a named constant with the attack it stops, and every configurable
bound has a ceiling that keeps even an operator's choice safe. `Bounds` holds one set of
values; `pingcalc.settings` reads its `calc_*` defaults and ranges from here (`RANGES`), and
the caller builds `Bounds` from those settings: this package knows nothing of settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# Characters per expression. Stops CPU and memory spent parsing huge inputs (DoS), and keeps
# every expression small enough to echo in a response and an audit record.
MAX_LENGTH = 1000
# Nesting levels (parentheses, calls, unary operators and right-nested binary operators).
# Stops stack exhaustion in anything that walks an expression tree recursively (`ast.parse`
# raises RecursionError or MemoryError on deep nesting) and keeps expressions readable; the
# engine itself never recurses, so the bound is the grammar's promise, not its crutch (DoS).
MAX_DEPTH = 50
# Numbers, names and operators per expression. Stops CPU time growing with input size:
# every element costs at most one bounded operation (DoS).
MAX_NODES = 500
# Bits of any integer, literal, intermediate or result. Stops big-integer bombs such as
# `9**9**9`, `10**10**10` and `factorial(10**6)` that burn CPU and memory for minutes (DoS);
# 4096 bits (1,234 digits) is far more than any real calculation needs.
MAX_INT_BITS = 4096
# Arguments per function call. Stops `max(1, 1, ...)` style argument floods (DoS).
MAX_ARGS = 16
# Results an `Evaluator` remembers (a repeated expression is answered from memory). With the
# key bound below, stops a client filling memory with distinct expressions (DoS): at most
# CACHE_SIZE results of at most MAX_INT_BITS bits, under 2 MB with the defaults.
CACHE_SIZE = 1024
# Characters of all remembered expressions together. An expression longer than
# CACHE_KEY_CHARS // cache_size is evaluated but not remembered, so raising `cache_size`
# cannot raise the memory its keys take (1 MiB of ASCII at most, whatever the settings).
CACHE_KEY_CHARS = 1024 * 1024
# |ndigits| of round(x, ndigits). `round(1, -10**9)` makes CPython build 10**(10**9) (DoS).
MAX_ROUND_DIGITS = 300
# Significant digits `round_significant` accepts: 17 digits tell every float apart.
MIN_PRECISION = 1
MAX_PRECISION = 17

# Ceilings for configured values. CPython refuses str() of an int over 4,300 digits
# (~14,284 bits), so a larger bound would turn a valid result into a server error.
INT_BITS_CEILING = 14_000
# The depth bound is the grammar's promise to recursive consumers (see MAX_DEPTH); Python's
# default recursion limit is 1,000.
DEPTH_CEILING = 500
LENGTH_CEILING = 100_000
NODES_CEILING = 100_000
ARGS_CEILING = 1000
# Remembered results: 16,384 of 14,000 bits are under 30 MB.
CACHE_SIZE_CEILING = 16_384
# Below 64 bits, ordinary results such as `2**40` would be refused.
INT_BITS_FLOOR = 64

# The range of every configurable bound: `Bounds` checks it, `Settings` declares it.
RANGES: dict[str, tuple[int, int]] = {
    "max_length": (1, LENGTH_CEILING),
    "max_depth": (1, DEPTH_CEILING),
    "max_nodes": (1, NODES_CEILING),
    "max_int_bits": (INT_BITS_FLOOR, INT_BITS_CEILING),
    "max_args": (1, ARGS_CEILING),
    "cache_size": (0, CACHE_SIZE_CEILING),
}


@dataclass(frozen=True, slots=True)
class Bounds:
    """The bounds one evaluator enforces; a value outside its `RANGES` entry is refused."""

    max_length: int = MAX_LENGTH
    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES
    max_int_bits: int = MAX_INT_BITS
    max_args: int = MAX_ARGS
    cache_size: int = CACHE_SIZE

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            low, high = RANGES[field.name]
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{field.name} must be an integer from {low} to {high}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], prefix: str = "") -> Bounds:
        """The bounds named `prefix + field` in `values` (others ignored, missing ones default).

        `Bounds.from_mapping(settings.model_dump(), prefix="calc_")` reads `calc_max_length`...
        """
        return cls(
            **{f.name: values[prefix + f.name] for f in fields(cls) if prefix + f.name in values}
        )


DEFAULT_BOUNDS = Bounds()
