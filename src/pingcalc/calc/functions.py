"""The whitelisted functions and constants: names and argument counts (the grammar side).

The implementations live in `evaluator.py`; a test checks both tables list the same names.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Arity(NamedTuple):
    """How many arguments a function takes; `most=None` means up to `Limits.max_args`."""

    least: int
    most: int | None

    def describe(self) -> str:
        if self.most is None:
            return f"at least {self.least} argument{'s' if self.least != 1 else ''}"
        if self.least == self.most:
            return f"{self.least} argument{'s' if self.least != 1 else ''}"
        return f"{self.least} to {self.most} arguments"


ONE = Arity(1, 1)

FUNCTIONS: dict[str, Arity] = {
    "abs": ONE,
    "round": Arity(1, 2),
    "min": Arity(1, None),
    "max": Arity(1, None),
    "sqrt": ONE,
    "exp": ONE,
    "log": Arity(1, 2),
    "log10": ONE,
    "log2": ONE,
    "sin": ONE,
    "cos": ONE,
    "tan": ONE,
    "asin": ONE,
    "acos": ONE,
    "atan": ONE,
    "atan2": Arity(2, 2),
    "sinh": ONE,
    "cosh": ONE,
    "tanh": ONE,
    "floor": ONE,
    "ceil": ONE,
    "hypot": Arity(1, None),
    "degrees": ONE,
    "radians": ONE,
    "factorial": ONE,
}

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
