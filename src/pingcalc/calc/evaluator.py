"""Compile a checked tree into nested closures and run it, bounding every costly operation.

Compiling once and caching the closures (`Evaluator`) makes a repeated expression skip
parsing altogether. Every value is an `int` or a `float`, never a bool, complex, inf or
NaN. Integer growth is bounded *before* it happens: `a * b` from the operands' bit lengths,
`a ** b` from `b * log2(|a|)`, `factorial(n)` from the largest `n` whose factorial fits,
`round(x, n)` from `|n|`; `+` and `-` can add at most one bit, so they are checked after.
A float result that overflowed to inf (or became NaN) is an error at the operator that
produced it, not a JSON value.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache

from pingcalc.calc.errors import CalcError, CalcLimitError, CalcMathError
from pingcalc.calc.functions import FUNCTIONS
from pingcalc.calc.limits import DEFAULT_LIMITS, MAX_ROUND_DIGITS, Limits
from pingcalc.calc.parser import parse, token_columns

Number = int | float
Thunk = Callable[[], Number]
BinaryOp = Callable[[Number, Number], Number]
Function = Callable[..., Number]

# Default number of compiled expressions an `Evaluator` keeps.
CACHE_SIZE = 1024
# Elements (numbers, names, operators) all cached expressions may hold together. One element
# costs a few hundred bytes of closures, so this caps the cache near 20 MB even when a client
# sends thousands of distinct maximum-size expressions (memory exhaustion).
CACHE_MAX_NODES = 64 * 1024


class _Fault(Exception):
    """Raised inside an operation; the closure around it adds the column."""

    def __init__(self, kind: type[CalcError], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _float_fault(value: float) -> _Fault:
    if value != value:
        return _Fault(CalcMathError, "result is not a number (NaN)")
    return _Fault(CalcMathError, "result too large (float overflow)")


def _translate(exc: Exception, column: int, function: str | None = None) -> CalcError:
    """Turn an exception from one operation into a positioned CalcError."""
    if isinstance(exc, _Fault):
        return exc.kind(exc.message, column)
    if isinstance(exc, ZeroDivisionError):
        return CalcMathError("division by zero", column)
    if isinstance(exc, OverflowError):
        return CalcMathError("result too large (float overflow)", column)
    where = f" in `{function}`" if function else ""
    return CalcMathError(f"math domain error{where}", column)


# Exceptions an operation may raise on valid operands; anything else is a bug and propagates.
_ARITHMETIC = (_Fault, ArithmeticError, ValueError)


class _Runtime:
    """The operators and functions, bound to one set of limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.ops = _binary_ops(limits.max_int_bits)
        self.functions = _functions(limits.max_int_bits)
        self.check = _result_check(limits.max_int_bits)


@lru_cache(maxsize=16)
def _cached_runtime(limits: Limits) -> _Runtime:
    return _Runtime(limits)


def _runtime(limits: Limits) -> _Runtime:
    # Hashing a dataclass runs Python code: skip it for the defaults, the common case.
    return _DEFAULT_RUNTIME if limits is DEFAULT_LIMITS else _cached_runtime(limits)


def _too_big(max_bits: int) -> _Fault:
    return _Fault(CalcLimitError, f"result too large (more than {max_bits} bits)")


def _result_check(max_bits: int) -> Callable[[object], Number]:
    def check(value: object) -> Number:
        if type(value) is int:
            if value.bit_length() > max_bits:
                raise _too_big(max_bits)
            return value
        if type(value) is float:
            if value - value:
                raise _float_fault(value)
            return value
        # complex (a negative base to a fractional power) or anything unexpected.
        raise _Fault(CalcMathError, "result is not a real number")

    return check


def _binary_ops(max_bits: int) -> dict[str, BinaryOp]:
    """The seven operators with their bounds; each raises `_Fault` or an ArithmeticError."""
    check = _result_check(max_bits)

    # `r - r` is 0.0 for a finite float and NaN (truthy) for inf and NaN: the cheapest test.
    def add(a: Number, b: Number) -> Number:
        r = a + b
        if r.__class__ is int:
            if r.bit_length() > max_bits:
                raise _too_big(max_bits)
        elif r - r:
            raise _float_fault(r)
        return r

    def sub(a: Number, b: Number) -> Number:
        r = a - b
        if r.__class__ is int:
            if r.bit_length() > max_bits:
                raise _too_big(max_bits)
        elif r - r:
            raise _float_fault(r)
        return r

    def mul(a: Number, b: Number) -> Number:
        if a.__class__ is int and b.__class__ is int:
            # The product has at least bits(a) + bits(b) - 1 bits: refuse before computing.
            if a.bit_length() + b.bit_length() - 1 > max_bits:
                raise _too_big(max_bits)
            product = a * b
            if product.bit_length() > max_bits:
                raise _too_big(max_bits)
            return product
        r = a * b
        if r - r:
            raise _float_fault(r)
        return r

    def truediv(a: Number, b: Number) -> Number:
        r = a / b
        if r - r:
            raise _float_fault(r)
        return r

    def floordiv(a: Number, b: Number) -> Number:
        return check(a // b)

    def mod(a: Number, b: Number) -> Number:
        return check(a % b)

    def power(a: Number, b: Number) -> Number:
        # For |a| >= 2 the result has more than b bits, and about b * log2|a|: refuse
        # before computing. The estimate has a bit of float slack; `check` is exact.
        if (
            a.__class__ is int
            and b.__class__ is int
            and b > 0
            and (a > 1 or a < -1)
            and (b > max_bits or b * math.log2(abs(a)) > max_bits + 1)
        ):
            raise _too_big(max_bits)
        # Other cases stay small: a base of 0 or +-1, or a negative or float exponent,
        # whose result is a float (which may overflow, or be complex for a negative base).
        return check(a**b)

    return {
        "+": add,
        "-": sub,
        "*": mul,
        "/": truediv,
        "//": floordiv,
        "%": mod,
        "**": power,
    }


def _largest_factorial(max_bits: int) -> int:
    """The largest n whose factorial has at most `max_bits` bits (computed exactly, once)."""
    n, value = 0, 1
    while (value * (n + 1)).bit_length() <= max_bits:
        n += 1
        value *= n
    return n


def _functions(max_bits: int) -> dict[str, Function]:
    largest = _largest_factorial(max_bits)

    def factorial(n: Number) -> Number:
        if n.__class__ is not int or n < 0:
            raise _Fault(CalcMathError, "`factorial` takes a non-negative integer")
        if n > largest:
            raise _too_big(max_bits)
        return math.factorial(n)

    def round_(x: Number, ndigits: Number | None = None) -> Number:
        if ndigits is None:
            return round(x)
        if ndigits.__class__ is not int:
            raise _Fault(CalcMathError, "`round` takes an integer number of digits")
        if abs(ndigits) > MAX_ROUND_DIGITS:
            raise _Fault(
                CalcLimitError, f"`round` digits out of range (at most {MAX_ROUND_DIGITS})"
            )
        return round(x, ndigits)

    def min_(*args: Number) -> Number:
        return min(args)

    def max_(*args: Number) -> Number:
        return max(args)

    table: dict[str, Function] = {
        "abs": abs,
        "round": round_,
        "min": min_,
        "max": max_,
        "sqrt": math.sqrt,
        "exp": math.exp,
        "log": math.log,
        "log10": math.log10,
        "log2": math.log2,
        "sin": math.sin,
        "cos": math.cos,
        "tan": math.tan,
        "asin": math.asin,
        "acos": math.acos,
        "atan": math.atan,
        "atan2": math.atan2,
        "sinh": math.sinh,
        "cosh": math.cosh,
        "tanh": math.tanh,
        "floor": math.floor,
        "ceil": math.ceil,
        "hypot": math.hypot,
        "degrees": math.degrees,
        "radians": math.radians,
        "factorial": factorial,
    }
    if table.keys() != FUNCTIONS.keys():
        raise RuntimeError("the function table and its implementations differ")
    return table


# --- compiling checked elements into closures ---------------------------------------------


def _constant(value: Number) -> Thunk:
    def run() -> Number:
        return value

    return run


class _Chain:
    """An open chain `first op1 x1 op2 x2 ...`, applied left to right.

    Python nests such chains to the left (`1+2+3` is `(1+2)+3`); keeping them flat makes a
    long sum one closure calling its operands in a loop instead of one nested closure per
    term, so evaluating it cannot exhaust the stack. `binary` extends a chain that is its
    left operand; any other use closes it into a closure (`_close`).
    """

    __slots__ = ("first", "steps")

    def __init__(self, first: Thunk, steps: list[tuple[BinaryOp, Thunk, int]]) -> None:
        self.first = first
        self.steps = steps


_Node = Thunk | _Chain


def _close(node: _Node | Number) -> Thunk:
    """The closure that computes `node`: a number, a closure or an open chain."""
    if isinstance(node, int | float):
        return _constant(node)
    if not isinstance(node, _Chain):
        return node
    first = node.first
    if len(node.steps) == 1:
        ((op, right, column),) = node.steps

        def run_one() -> Number:
            # An operand's own failure is already a CalcError and passes through.
            try:
                return op(first(), right())
            except _ARITHMETIC as exc:
                raise _translate(exc, column) from None

        return run_one

    compiled = tuple(node.steps)

    def run() -> Number:
        value = first()
        for op, right, column in compiled:
            try:
                value = op(value, right())
            except _ARITHMETIC as exc:
                raise _translate(exc, column) from None
        return value

    return run


class _Compiler:
    """The `Builder` the parser feeds: each element becomes a closure over its operands.

    One per compilation: the closures keep the column of their operator or function, to
    report a failure where it happens. The columns are found once the parser has checked
    the expression's length and characters, on the first element that needs one.
    """

    __slots__ = ("_columns", "check", "expression", "functions", "ops")

    def __init__(self, runtime: _Runtime, expression: str) -> None:
        self.ops = runtime.ops
        self.functions = runtime.functions
        self.check = runtime.check
        self.expression = expression
        self._columns: list[int] | None = None

    def column(self, where: int) -> int:
        if self._columns is None:
            self._columns = token_columns(self.expression)
        return self._columns[where]

    def negate(self, operand: _Node | Number, where: int) -> _Node:
        # Negation cannot grow an int or overflow a float: nothing to check.
        inner = _close(operand)

        def run() -> Number:
            return -inner()

        return run

    def positive(self, operand: _Node | Number, where: int) -> _Node | Number:
        return operand

    def binary(self, left: _Node | Number, op: str, right: _Node | Number, where: int) -> _Node:
        step = (self.ops[op], _close(right), self.column(where))
        if isinstance(left, _Chain):
            left.steps.append(step)
            return left
        return _Chain(_close(left), [step])

    def call(self, name: str, args: list[_Node | Number], where: int) -> _Node:
        function = self.functions[name]
        check = self.check
        column = self.column(where)
        if len(args) == 1:
            only = _close(args[0])

            def run_one() -> Number:
                try:
                    return check(function(only()))
                except _ARITHMETIC as exc:
                    raise _translate(exc, column, name) from None

            return run_one

        operands = tuple(_close(arg) for arg in args)

        def run() -> Number:
            try:
                return check(function(*[arg() for arg in operands]))
            except _ARITHMETIC as exc:
                raise _translate(exc, column, name) from None

        return run


class _Interpreter:
    """The `Builder` for one-off evaluation: computes each value as soon as it is checked.

    It reports the same error the compiled form would: the first failure in evaluation
    order is kept, the parse goes on (with 0 in place of the failed value, every operation
    still bounded) so that a grammar error further right still takes precedence, as it
    does when compiling.
    """

    __slots__ = ("check", "error", "functions", "ops")

    def __init__(self, runtime: _Runtime) -> None:
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


_DEFAULT_RUNTIME = _Runtime(DEFAULT_LIMITS)


# --- public API ----------------------------------------------------------------------------


class Compiled:
    """A checked, compiled expression: call it to evaluate (it may raise CalcError)."""

    __slots__ = ("_run", "expression", "limits", "nodes")

    def __init__(self, expression: str, limits: Limits, run: Thunk, nodes: int) -> None:
        self.expression = expression
        self.limits = limits
        self.nodes = nodes
        self._run = run

    def __call__(self) -> Number:
        try:
            return self._run()
        except RecursionError:
            # Only if the caller's own stack is already deep: the depth limit keeps ours short.
            raise CalcLimitError("expression nested too deeply to evaluate here") from None

    def __repr__(self) -> str:
        return f"Compiled({self.expression!r})"


def compile_expression(expression: str, limits: Limits = DEFAULT_LIMITS) -> Compiled:
    """Parse, check and compile `expression`; raise CalcError if it is rejected."""
    try:
        parsed = parse(expression, limits, _Compiler(_runtime(limits), expression))
        run, nodes = _close(parsed[0]), parsed[1]
    except RecursionError:
        # Only if the caller's own stack is already deep: the depth limit keeps ours short.
        raise CalcLimitError("expression nested too deeply to compile here") from None
    return Compiled(expression, limits, run, nodes)


def evaluate(expression: str, limits: Limits = DEFAULT_LIMITS) -> Number:
    """Evaluate `expression` once, uncached; the result is an int or a finite float.

    Same checks and same errors as `compile_expression(expression, limits)()`, but the
    values are computed during the walk instead of building closures first.
    """
    interpreter = _Interpreter(_runtime(limits))
    # The parser and the interpreter never recurse: no RecursionError to catch here.
    value, _ = parse(expression, limits, interpreter)
    if interpreter.error is not None:
        exc, where, function = interpreter.error
        raise _translate(exc, token_columns(expression)[where], function)
    return value


class Evaluator:
    """Evaluates expressions under fixed limits, with an LRU cache of compiled expressions.

    The cache is keyed by the exact expression string and bounded both in entries and in
    total elements (`CACHE_MAX_NODES`); rejected expressions are never cached.
    """

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        cache_size: int = CACHE_SIZE,
        *,
        cache_max_nodes: int = CACHE_MAX_NODES,
    ) -> None:
        if cache_size < 0 or cache_max_nodes < 0:
            raise ValueError("cache sizes must not be negative")
        self.limits = limits
        self.cache_size = cache_size
        self.cache_max_nodes = cache_max_nodes
        self._cache: OrderedDict[str, Compiled] = OrderedDict()
        self._cached_nodes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def compile(self, expression: str) -> Compiled:
        """The compiled form of `expression`, from the cache when it is there."""
        with self._lock:
            compiled = self._cache.get(expression)
            if compiled is not None:
                self._cache.move_to_end(expression)
                self.hits += 1
                return compiled
            self.misses += 1
        compiled = compile_expression(expression, self.limits)
        self._store(compiled)
        return compiled

    def evaluate(self, expression: str) -> Number:
        """Evaluate `expression`; raise CalcError if it is rejected."""
        return self.compile(expression)()

    def _store(self, compiled: Compiled) -> None:
        if compiled.nodes > self.cache_max_nodes or self.cache_size == 0:
            return
        with self._lock:
            if compiled.expression in self._cache:
                return
            self._cache[compiled.expression] = compiled
            self._cached_nodes += compiled.nodes
            while len(self._cache) > self.cache_size or self._cached_nodes > self.cache_max_nodes:
                _, evicted = self._cache.popitem(last=False)
                self._cached_nodes -= evicted.nodes

    def cache_len(self) -> int:
        """How many compiled expressions the cache holds."""
        return len(self._cache)

    def cache_clear(self) -> None:
        """Forget every compiled expression."""
        with self._lock:
            self._cache.clear()
            self._cached_nodes = 0
