"""Resource bounds of the calculator: each is checked *before* the work it protects.

Every default below is a named constant with the attack it stops. The `Settings` fields
`calc_max_length`, `calc_max_depth`, `calc_max_nodes`, `calc_max_int_bits` and
`calc_max_args` override them; the ceilings keep even an operator's choice safe.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pingcalc.settings import Settings

# Characters per expression. Stops CPU and memory spent parsing huge inputs (DoS), and keeps
# every expression small enough to echo in a response and an audit record.
MAX_LENGTH = 1000
# Nesting levels (parentheses, calls, unary and right-nested operators). Stops stack
# exhaustion: deep nesting is what makes `ast.parse` and recursive evaluators (such as the
# compiled closures, which recurse once per level) raise RecursionError/MemoryError or
# crash (DoS).
MAX_DEPTH = 50
# Numbers, names and operators per expression. Stops CPU time growing with input size
# (every element costs at most one bounded operation) and cache memory per entry (DoS).
MAX_NODES = 500
# Bits of any integer, literal, intermediate or result. Stops big-integer bombs such as
# `9**9**9`, `10**10**10` and `factorial(10**6)` that burn CPU and memory for minutes (DoS);
# 4096 bits (1,234 digits) is far more than any real calculation needs.
MAX_INT_BITS = 4096
# Arguments per function call. Stops `max(1, 1, ...)` style argument floods (DoS).
MAX_ARGS = 16
# |ndigits| of round(x, ndigits). `round(1, -10**9)` makes CPython build 10**(10**9) (DoS).
MAX_ROUND_DIGITS = 300

# Ceilings for configured values. CPython refuses str() of an int over 4,300 digits
# (~14,284 bits), so a larger bound would turn a valid result into a server error.
INT_BITS_CEILING = 14_000
# Evaluation recurses once per nesting level; Python's default recursion limit is 1,000.
DEPTH_CEILING = 500
LENGTH_CEILING = 100_000
NODES_CEILING = 100_000
ARGS_CEILING = 1000

_RANGES = {
    "max_length": (1, LENGTH_CEILING),
    "max_depth": (1, DEPTH_CEILING),
    "max_nodes": (1, NODES_CEILING),
    "max_int_bits": (64, INT_BITS_CEILING),
    "max_args": (1, ARGS_CEILING),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds one evaluator enforces; field names match `Settings.calc_*`."""

    max_length: int = MAX_LENGTH
    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES
    max_int_bits: int = MAX_INT_BITS
    max_args: int = MAX_ARGS

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            low, high = _RANGES[field.name]
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{field.name} must be an integer from {low} to {high}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits configured by `PINGCALC_CALC_*`; a value past a ceiling is refused."""
        from pingcalc.settings import SettingsError

        values = {name: getattr(settings, f"calc_{name}") for name in _RANGES}
        try:
            return cls(**values)
        except ValueError as exc:
            name = str(exc).split(" ", 1)[0]
            raise SettingsError(f"invalid setting PINGCALC_CALC_{name.upper()}: {exc}") from None


DEFAULT_LIMITS = Limits()
