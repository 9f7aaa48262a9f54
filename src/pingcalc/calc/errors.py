"""The errors the calculator raises; each carries a human message and, where it applies, a column.

    CalcError(PingcalcError)   .message, .position (1-based column or None)
     ├── CalcSyntaxError       not in the grammar, not printable ASCII, unknown name, `^`
     ├── CalcLimitError        a resource bound would be crossed (length, depth, size, ...)
     └── CalcMathError         division by zero, domain errors, float overflow, NaN

    Fault(Exception)           internal: raised inside one operation, which has no column;
     └── TooBig                the interpreter turns it into the CalcError at the operator

The engine knows nothing of HTTP: the API maps every CalcError to 422.
"""

from __future__ import annotations

from pingcalc.errors import PingcalcError


class CalcError(PingcalcError):
    """An expression was rejected; `str()` reads "division by zero at column 3"."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message, position)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        return f"{self.message} at column {self.position}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, position={self.position!r})"


class CalcSyntaxError(CalcError):
    """The expression is outside the grammar (a name, attribute, string, character, ...)."""


class CalcLimitError(CalcError):
    """Evaluating the expression would cross a resource bound; nothing costly was computed."""


class CalcMathError(CalcError):
    """The arithmetic itself failed: division by zero, a domain error, overflow or NaN."""


class Fault(Exception):
    """One operation failed; the interpreter adds the column (never leaves the package)."""

    def __init__(self, kind: type[CalcError], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class TooBig(Fault):
    """An integer result would cross `max_int_bits`; the message names the bound in force."""

    def __init__(self) -> None:
        super().__init__(CalcLimitError, "result too large")
