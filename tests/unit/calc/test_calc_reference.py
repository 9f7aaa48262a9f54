"""The user-facing syntax reference: every example is true, and the README shows all of it.

Threat: none directly; a wrong reference sends users to the error path and hides what the
engine accepts. Every function and constant of the whitelist is documented with one example
whose result is the engine's own answer, and the README's calculator section is exactly
`syntax_markdown()`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pingcalc.calc import (
    Bounds,
    CalcSyntaxError,
    evaluate,
    syntax_markdown,
    syntax_reference,
)
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS

README = Path(__file__).resolve().parents[3] / "README.md"
REFERENCE = syntax_reference()
EXAMPLES = [
    (kind, entry["example"], entry["result"])
    for kind in ("operators", "functions", "constants")
    for entry in REFERENCE[kind]
]


@pytest.mark.parametrize(("kind", "example", "result"), EXAMPLES, ids=[e[1] for e in EXAMPLES])
def test_each_documented_example_evaluates_to_its_documented_result(
    kind: str, example: str, result: float
) -> None:
    """The engine gives exactly the documented value and type for every example."""
    value = evaluate(example)
    assert value == result and type(value) is type(result), (kind, example, value)


def test_reference_lists_every_function_and_constant_once() -> None:
    """No whitelisted name is missing from the reference, none is listed twice."""
    assert [f["name"] for f in REFERENCE["functions"]] == list(FUNCTIONS)
    assert [c["name"] for c in REFERENCE["constants"]] == list(CONSTANTS)
    for function in REFERENCE["functions"]:
        assert function["example"].startswith(function["name"] + "(")
        assert function["description"]


def test_readme_calculator_section_is_the_generated_reference() -> None:
    """README.md holds `syntax_markdown()` verbatim between its markers."""
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- calc-syntax:start -->\n", "<!-- calc-syntax:end -->"
    assert start in text and end in text
    section = text.split(start, 1)[1].split(end, 1)[0]
    assert section == syntax_markdown()


def test_readme_shows_every_function_and_constant_with_its_example_and_result() -> None:
    """Each name appears in the README with its example and that example's result."""
    text = README.read_text(encoding="utf-8")
    for entry in (*REFERENCE["functions"], *REFERENCE["constants"]):
        row = f"| `{entry['name']}` |"
        line = next((line for line in text.splitlines() if line.startswith(row)), "")
        assert f"`{entry['example']}`" in line and f"`{entry['result']!r}`" in line, entry["name"]
    assert "`**`" in text and "`^`" in text


def test_reference_bounds_follow_the_bounds_in_force() -> None:
    """The bounds and argument counts shown are those of the evaluator described."""
    reference = syntax_reference(Bounds(max_length=200, max_args=4))
    bounds = {b["name"]: b["value"] for b in reference["bounds"]}
    assert (bounds["max_length"], bounds["max_args"], bounds["max_depth"]) == (200, 4, 50)
    maximum = next(f for f in reference["functions"] if f["name"] == "max")
    assert (maximum["arguments"], maximum["min_args"], maximum["max_args"]) == ("1 to 4", 1, 4)


@pytest.mark.parametrize(("expression", "column"), [("2 ^ 10", 3), ("2^10", 2), ("(1+2)^2 + 1", 6)])
def test_caret_is_answered_with_a_hint_to_use_double_star(expression: str, column: int) -> None:
    """`^` is not XOR here and not a power: the message says to write `**`, at its column."""
    with pytest.raises(CalcSyntaxError) as caught:
        evaluate(expression)
    assert caught.value.message == "unsupported operator `^`; use `**` for powers"
    assert caught.value.position == column
    assert evaluate(expression.replace("^", "**")) > 0
