"""Property: the engine's work grows linearly with the expression, accepted or refused.

Threat: denial of service through the error path (TM-08: T1499, CWE-407). Issue 16 found a
998-character expression of unknown names inside calls costing 100-200 ms, because every
remembered error re-tokenised the whole expression. Wall time is noisy, so these tests count
steps instead: every line the calculator's own code executes (lexer, parser, diagnostics,
interpreter), seen through `sys.settrace`, which costs production nothing. Hypothesis
generates the worst cases: many errors, deep nesting, many calls, maximum length,
unbalanced brackets and long runs of operators.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pingcalc.calc
from pingcalc.calc import DEFAULT_BOUNDS, Bounds, CalcError, Evaluator

CALC_DIR = str(Path(pingcalc.calc.__file__).parent)
MAX_LENGTH = DEFAULT_BOUNDS.max_length
# The bound: executed lines <= STEPS_PER_CHARACTER * len(expression) + FIXED_STEPS. The worst
# measured is ~28 lines per character (`a+-a+-...`: a token per character, each through the
# nesting measurement); the quadratic error path of issue 16 took ~860 per character.
STEPS_PER_CHARACTER = 50
FIXED_STEPS = 300


class StepCounter:
    """Counts lines executed in `pingcalc.calc` and calls of each of its functions."""

    def __init__(self) -> None:
        self.lines = 0
        self.calls: Counter[str] = Counter()
        self._previous: Any = None

    def _global(self, frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename.startswith(CALC_DIR):
            self.calls[frame.f_code.co_name] += 1
            return self._local
        return None

    def _local(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            self.lines += 1
        return self._local

    def __enter__(self) -> StepCounter:
        self._previous = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        sys.settrace(self._previous)


def steps(expression: str, bounds: Bounds = DEFAULT_BOUNDS) -> StepCounter:
    """Evaluate `expression` on a new server evaluator (a cache miss), counting its steps."""
    evaluator = Evaluator(bounds)
    with StepCounter() as counter, contextlib.suppress(CalcError):
        evaluator.evaluate(expression)
    return counter


# Pieces of hostile expressions: unknown names and functions, wrong argument counts, literals
# too large, calls, brackets (balanced or not), operators, keywords, dots, spaces.
PIECES = st.sampled_from(
    [
        "a", "x1", "_", "1", "0", "2.5", "1e999", "9" * 40, "012", "1_0", "2j", "pi",
        "max(", "min(", "f(", "sqrt(", "atan2(", "abs(", "factorial(", "round(", "pi(",
        "max(a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a)", "sqrt(1,2)", "f(a)", "abs(1)",
        "(", ")", "((", "))", ",", "+", "-", "*", "/", "//", "%", "**", "--", "+-",
        " ", ".", "..", "for", "in", "if", "is", "not", "lambda", "True",
    ]
)  # fmt: skip


@st.composite
def hostile_expressions(draw: st.DrawFn) -> str:
    """A unit of pieces repeated up to a length (usually the limit), maybe wrapped deeply."""
    unit = "".join(draw(st.lists(PIECES, min_size=1, max_size=16)))
    length = draw(st.one_of(st.just(MAX_LENGTH), st.integers(1, MAX_LENGTH)))
    opening = draw(st.one_of(st.just(0), st.integers(0, 60)))
    closing = draw(st.integers(0, opening))
    body = max(length - opening - closing, 1)
    text = (unit * (body // len(unit) + 1))[:body]
    return ("(" * opening + text + ")" * closing)[:MAX_LENGTH]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_expressions())
def test_every_expression_costs_steps_linear_in_its_length(expression: str) -> None:
    """Lines executed <= 50 per character + 300; the text is lexed once, columns found once."""
    counter = steps(expression)
    assert counter.lines <= STEPS_PER_CHARACTER * len(expression) + FIXED_STEPS, (
        f"{counter.lines} steps for {len(expression)} characters: {expression[:80]!r}"
    )
    assert counter.calls["tokenize"] <= 1
    assert counter.calls["columns"] <= 1


ISSUE_16 = "+".join(["max(" + ",".join(["a"] * 16) + ")"] * 27)  # 998 characters


@pytest.mark.parametrize(
    "unit",
    [
        "max(a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a)+",  # issue 16: unknown names inside calls
        "f(a,a,a,a)+",  # unknown functions
        "sqrt(1,2)+",  # wrong argument counts
        "1e999+",  # literals too large
        "abs(" * 40 + "a" + ")" * 40 + "+",  # deep calls over unknown names
        "1+",  # a long accepted chain (depth measured on the way)
        "(a for a in b)+",  # a grammar error after many elements
    ],
)
def test_doubling_the_expression_at_most_doubles_its_steps(unit: str) -> None:
    """Steps for 2n characters <= 2.2x steps for n (quadratic work would give ~4x)."""
    roomy = Bounds(max_length=8000, max_nodes=8000)
    short = (unit * (2000 // len(unit)))[:-1]
    long = (unit * (4000 // len(unit)))[:-1]
    assert steps(long, roomy).lines <= 2.2 * steps(short, roomy).lines


def test_issue_16_expression_is_lexed_once_and_columned_once() -> None:
    """The issue's 998-character expression: one tokenisation, one column scan, linear steps."""
    assert len(ISSUE_16) == 998
    counter = steps(ISSUE_16)
    assert (counter.calls["tokenize"], counter.calls["columns"]) == (1, 1)
    assert counter.lines <= STEPS_PER_CHARACTER * len(ISSUE_16)
    with pytest.raises(CalcError) as caught:
        Evaluator().evaluate(ISSUE_16)
    assert (caught.value.message, caught.value.position) == ("unknown name `a`", 5)
