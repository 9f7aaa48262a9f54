"""The calculator's syntax for its users, as data: operators, functions, constants, bounds.

`syntax_reference()` is what the web page's help panel (as data, `/static/calc-reference.json`)
and the README show (`syntax_markdown()` renders it for the latter); every example in it
is evaluated by the tests, so none can drift from what the engine answers.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from pingcalc.calc.bounds import DEFAULT_BOUNDS, MAX_ROUND_DIGITS, Bounds
from pingcalc.calc.functions import CONSTANTS, FUNCTIONS, Number


class Operator(NamedTuple):
    """One operator of the grammar, with an example and its result."""

    symbol: str
    meaning: str
    example: str
    result: Number


# Lowest precedence first, as in Python.
OPERATORS: tuple[Operator, ...] = (
    Operator("+", "addition", "1 + 2", 3),
    Operator("-", "subtraction, or negation", "5 - 7", -2),
    Operator("*", "multiplication", "6 * 7", 42),
    Operator("/", "division (always a float)", "7 / 2", 3.5),
    Operator("//", "floor division", "7 // 2", 3),
    Operator("%", "remainder (the sign of the divisor)", "-7 % 3", 2),
    Operator("**", "power, right-associative; binds tighter than a minus on its left",
             "2 ** 3 ** 2", 512),
    Operator("( )", "grouping", "2 * (3 + 4)", 14),
)  # fmt: skip
# Written by users who mean something else here, and answered with a hint.
NOT_OPERATORS = {"^": "not an operator: use `**` for powers (`2 ** 10`)"}
NUMBERS = (
    "decimal integers and floats as Python writes them: `12`, `1.5`, `.5`, `3.`, `1e3`, `2.5E-2`; "
    "not `0x10`, `0o7`, `0b1`, `1_000`, `1j` or `012`"
)


def _arguments(least: int, most: int | None, max_args: int) -> dict[str, Any]:
    high = max_args if most is None else most
    text = str(least) if least == high else f"{least} to {high}"
    return {"arguments": text, "min_args": least, "max_args": high}


def _digits(bits: int) -> int:
    """Decimal digits of the largest integer of `bits` bits."""
    return int(bits * math.log10(2)) + 1


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def syntax_reference(bounds: Bounds = DEFAULT_BOUNDS) -> dict[str, Any]:
    """The user-facing reference under `bounds`, as JSON-ready data."""
    return {
        "numbers": NUMBERS,
        "operators": [op._asdict() for op in OPERATORS],
        "not_operators": [{"symbol": s, "hint": hint} for s, hint in NOT_OPERATORS.items()],
        "functions": [
            {
                "name": name,
                **_arguments(*function.arity, bounds.max_args),
                "description": function.description,
                "example": function.example,
                "result": function.result,
            }
            for name, function in FUNCTIONS.items()
        ],
        "constants": [
            {
                "name": name,
                "value": constant.value,
                "description": constant.description,
                "example": constant.example,
                "result": constant.result,
            }
            for name, constant in CONSTANTS.items()
        ],
        "bounds": [
            {"name": "max_length", "value": bounds.max_length,
             "meaning": "characters per expression"},
            {"name": "max_depth", "value": bounds.max_depth,
             "meaning": "nesting levels (brackets, calls, unary and nested operators)"},
            {"name": "max_nodes", "value": bounds.max_nodes,
             "meaning": "numbers, names and operators per expression"},
            {"name": "max_int_bits", "value": bounds.max_int_bits,
             "meaning": "bits of any integer, literal, intermediate or result "
                        f"(up to {_digits(bounds.max_int_bits):,} decimal digits)"},
            {"name": "max_args", "value": bounds.max_args, "meaning": "arguments per call"},
            {"name": "round_digits", "value": MAX_ROUND_DIGITS,
             "meaning": "largest |n| in `round(x, n)`"},
        ],
    }  # fmt: skip


def syntax_markdown(bounds: Bounds = DEFAULT_BOUNDS) -> str:
    """`syntax_reference(bounds)` as Markdown (the README's calculator section)."""
    ref = syntax_reference(bounds)
    lines = [f"Numbers: {ref['numbers']}.", "", "| operator | meaning | example | result |"]
    lines.append("|---|---|---|---|")
    for op in ref["operators"]:
        lines.append(
            f"| `{op['symbol']}` | {op['meaning']} | `{op['example']}` | `{op['result']!r}` |"
        )
    for item in ref["not_operators"]:
        lines.append(f"| `{item['symbol']}` | not an operator: {item['hint']} | | |")
    lines += ["", "| function | arguments | meaning | example | result |", "|---|---|---|---|---|"]
    for fn in ref["functions"]:
        lines.append(
            f"| `{fn['name']}` | {fn['arguments']} | {fn['description']} | `{fn['example']}` "
            f"| `{fn['result']!r}` |"
        )
    lines += ["", "| constant | meaning | example | result |", "|---|---|---|---|"]
    for const in ref["constants"]:
        lines.append(
            f"| `{const['name']}` | {const['description']} | `{const['example']}` "
            f"| `{const['result']!r}` |"
        )
    lines += ["", "| bound | default | what it limits |", "|---|---|---|"]
    for bound in ref["bounds"]:
        lines.append(f"| {bound['name']} | {bound['value']:,} | {_cell(bound['meaning'])} |")
    return "\n".join(lines) + "\n"
