"""Evaluate an expression once: lex, parse, and compute each value as soon as it is checked.

No tree and no closures are built: the interpreter is the parser's `Builder`, so a value is
computed right after its operands, in evaluation order. The first failure is kept and the
parse goes on (with 0 in place of the failed value, every operation still bounded), so that
a grammar error further right still takes precedence, as a tree walk would find it first.
"""

from __future__ import annotations

from pingcalc.calc.bounds import DEFAULT_BOUNDS, Bounds
from pingcalc.calc.errors import CalcError, CalcLimitError, CalcMathError, Fault, TooBig
from pingcalc.calc.functions import Number
from pingcalc.calc.lexer import columns, tokenize
from pingcalc.calc.parser import parse
from pingcalc.calc.runtime import Runtime, runtime_for

# Exceptions an operation may raise on valid operands; anything else is a bug and propagates.
_ARITHMETIC = (Fault, ArithmeticError, ValueError)


class Interpreter:
    """The `Builder` that computes values; `error` is the first failure, if any."""

    __slots__ = ("check", "error", "functions", "ops")

    def __init__(self, runtime: Runtime) -> None:
        self.ops = runtime.ops
        self.functions = runtime.functions
        self.check = runtime.check
        # The first failure: the exception, its token index and the function it was in.
        self.error: tuple[Exception, int, str | None] | None = None

    def _fail(self, exc: Exception, where: int, function: str | None = None) -> Number:
        if self.error is None:
            self.error = (exc, where, function)
        return 0

    def negate(self, operand: Number, where: int) -> Number:
        # Negation cannot grow an int or overflow a float: nothing to check.
        return -operand

    def positive(self, operand: Number, where: int) -> Number:
        return operand

    def binary(self, left: Number, op: str, right: Number, where: int) -> Number:
        try:
            return self.ops[op](left, right)
        except _ARITHMETIC as exc:
            return self._fail(exc, where)

    def call(self, name: str, args: list[Number], where: int) -> Number:
        try:
            return self.check(self.functions[name](*args))
        except _ARITHMETIC as exc:
            return self._fail(exc, where, name)


def evaluate(expression: str, bounds: Bounds = DEFAULT_BOUNDS) -> Number:
    """Evaluate `expression` once, uncached; the result is an int or a finite float.

    Raises a `CalcError` (with the column where it applies) if the expression is refused.
    """
    return interpret(expression, bounds, runtime_for(bounds))


def interpret(expression: str, bounds: Bounds, runtime: Runtime) -> Number:
    """`evaluate` with the runtime for `bounds` already at hand (the evaluator's miss path)."""
    interpreter = Interpreter(runtime)
    value = parse(expression, tokenize(expression, bounds), bounds, interpreter)
    if interpreter.error is not None:
        exc, where, function = interpreter.error
        raise translate(exc, columns(expression)[where], runtime.max_int_bits, function)
    return value


def translate(exc: Exception, column: int, max_int_bits: int, function: str | None) -> CalcError:
    """Turn an exception from one operation into a positioned CalcError."""
    if isinstance(exc, TooBig):
        return CalcLimitError(f"result too large (more than {max_int_bits} bits)", column)
    if isinstance(exc, Fault):
        return exc.kind(exc.message, column)
    if isinstance(exc, ZeroDivisionError):
        return CalcMathError("division by zero", column)
    if isinstance(exc, OverflowError):
        return CalcMathError("result too large (float overflow)", column)
    where = f" in `{function}`" if function else ""
    return CalcMathError(f"math domain error{where}", column)
