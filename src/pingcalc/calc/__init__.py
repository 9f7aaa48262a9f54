"""A safe arithmetic engine: a strict whitelist grammar, bounded resources, no `eval()`.

    >>> evaluate("2*(3+4)")
    14

`evaluate` parses and runs once; `Evaluator` keeps an LRU cache of `Compiled` expressions.
Every rejection is a `CalcError` (`CalcSyntaxError`, `CalcLimitError`, `CalcMathError`) with
a message and, where it applies, the 1-based column. See `limits.py` for the bounds.
"""

from __future__ import annotations

from pingcalc.calc.errors import CalcError, CalcLimitError, CalcMathError, CalcSyntaxError
from pingcalc.calc.evaluator import Compiled, Evaluator, compile_expression, evaluate
from pingcalc.calc.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "DEFAULT_LIMITS",
    "CalcError",
    "CalcLimitError",
    "CalcMathError",
    "CalcSyntaxError",
    "Compiled",
    "Evaluator",
    "Limits",
    "compile_expression",
    "evaluate",
]
