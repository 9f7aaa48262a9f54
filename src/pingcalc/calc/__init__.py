"""A safe arithmetic engine: a strict whitelist grammar, bounded resources, no `eval()`.

    >>> evaluate("2*(3+4)")
    14

`Evaluator()` is the evaluator the server runs (default bounds, results of repeated
expressions remembered); `evaluate` runs one expression uncached. Every rejection is a
`CalcError` (`CalcSyntaxError`, `CalcLimitError`, `CalcMathError`) with a message and, where
it applies, the 1-based column. `bounds.py` holds the bounds, `functions.py` the whitelist,
`reference.py` the user-facing syntax, `precision.py` rounding for display.
"""

from __future__ import annotations

from pingcalc.calc.bounds import DEFAULT_BOUNDS, Bounds
from pingcalc.calc.errors import CalcError, CalcLimitError, CalcMathError, CalcSyntaxError
from pingcalc.calc.evaluator import Evaluator
from pingcalc.calc.interpreter import evaluate
from pingcalc.calc.precision import round_significant
from pingcalc.calc.reference import syntax_markdown, syntax_reference

__all__ = [
    "DEFAULT_BOUNDS",
    "Bounds",
    "CalcError",
    "CalcLimitError",
    "CalcMathError",
    "CalcSyntaxError",
    "Evaluator",
    "evaluate",
    "round_significant",
    "syntax_markdown",
    "syntax_reference",
]
