"""Evaluations per second of `pingcalc.calc` against simpleeval, asteval and `eval(compile())`.

Run: `.venv/bin/python -m bench.bench_calc` (`--json` also prints the results). Every engine
evaluates the same fixed corpus of realistic expressions in one run, with the same
functions and constants; the results are cross-checked first, so a fast wrong engine
cannot win. `eval(compile(...))` is the unsafe upper bound (it compiles every time, as a
server evaluating user input would); `eval(cached code)` (bytecode compiled once, which
CPython also constant-folds) is printed for reference only. Targets of issue 3: uncached
at least as fast as simpleeval; with the cache warm, within 2x of `eval(compile(...))`
(ratio >= 0.5). Bounded: about SECONDS_PER_ENGINE per engine, well under 30 s in all.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from pingcalc.calc import Evaluator, evaluate
from pingcalc.calc.functions import CONSTANTS
from pingcalc.calc.functions import FUNCTIONS as WHITELIST

CORPUS: tuple[str, ...] = (
    "2*(3+4)",
    "1 + 2 * 3 - 4 / 5",
    "((1 + 2) * (3 + 4)) / 5",
    "(1.5 + 2.25) * 4 / 3",
    "2**10 - 1",
    "-(5 - 12) ** 2",
    "(17 % 5) * 3 + 1",
    "1e3 / 7",
    "100 * 1.075 ** 10",
    "1234 // 7 + 1234 % 7",
    "sqrt(3**2 + 4**2)",
    "hypot(3, 4) * 2",
    "round(100 * 0.075, 2)",
    "max(3, 7, 2) - min(4, 1)",
    "abs(-42) + floor(3.7) + ceil(0.2)",
    "sin(pi / 6) + cos(pi / 3)",
    "degrees(atan2(1, 1))",
    "log(1024, 2) + log10(1000) + log2(8)",
    "exp(1) - e",
    "factorial(10) // 3",
    "tau / 2 - pi",
    "2 * pi * 6371",
    "(25 - 32) * 5 / 9",
    "1000 * (1 + 0.05 / 12) ** (12 * 10)",
    "sqrt(2) * sqrt(8)",
    "tanh(0.5) + sinh(1) - cosh(1)",
    "radians(180) / pi",
    "asin(0.5) + acos(0.5) + atan(1)",
    "round(2.5) + round(3.5) + round(-2.5)",
    "((((1 + 2) * 3 - 4) / 5 + 6) * 7) - 8",
)

# Bounds: each engine runs whole passes over the corpus for this long, best of REPEATS.
SECONDS_PER_ENGINE = 1.0
REPEATS = 3

# Python's own functions under the engine's whitelisted names, for the baseline engines.
FUNCTIONS: dict[str, Any] = {
    name: getattr(builtins, name, None) or getattr(math, name) for name in WHITELIST
}
NAMES: dict[str, float] = dict(CONSTANTS)


def _engines() -> dict[str, Callable[[str], Any]]:
    import asteval
    import simpleeval

    simple = simpleeval.SimpleEval(functions=FUNCTIONS, names=NAMES)
    aeval = asteval.Interpreter(minimal=True, use_numpy=False, symtable={**FUNCTIONS, **NAMES})
    namespace: dict[str, Any] = {"__builtins__": {}, **FUNCTIONS, **NAMES}
    warm = Evaluator(cache_size=len(CORPUS))
    for expression in CORPUS:
        warm.evaluate(expression)

    def python_eval(expression: str) -> Any:
        # The unsafe upper bound, on our own fixed corpus only: never on user input.
        return eval(compile(expression, "<bench>", "eval"), namespace)

    # For reference only: CPython bytecode compiled once (constant-folded by CPython).
    bytecode = {expression: compile(expression, "<bench>", "eval") for expression in CORPUS}

    def python_cached(expression: str) -> Any:
        return eval(bytecode[expression], namespace)

    return {
        "eval(compile())": python_eval,
        "eval(cached code)": python_cached,
        "pingcalc cached": warm.evaluate,
        "pingcalc uncached": evaluate,
        "simpleeval": simple.eval,
        "asteval": aeval,
    }


def _check_agreement(engines: dict[str, Callable[[str], Any]]) -> None:
    reference = engines["eval(compile())"]
    for expression in CORPUS:
        expected = reference(expression)
        for name, engine in engines.items():
            got = engine(expression)
            if not math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-12):
                raise AssertionError(f"{name} gives {got!r} for {expression!r}, not {expected!r}")


def _rate(engine: Callable[[str], Any]) -> float:
    best = 0.0
    for _ in range(REPEATS):
        count, started = 0, time.perf_counter()
        deadline = started + SECONDS_PER_ENGINE / REPEATS
        while time.perf_counter() < deadline:
            for expression in CORPUS:
                engine(expression)
            count += len(CORPUS)
        best = max(best, count / (time.perf_counter() - started))
    return best


def run() -> dict[str, Any]:
    """Measure every engine on the corpus; return the rates and the ratios."""
    with warnings.catch_warnings():
        # asteval and simpleeval warn about unused features on some Python versions.
        warnings.simplefilter("ignore")
        engines = _engines()
        _check_agreement(engines)
        rates = {name: round(_rate(engine)) for name, engine in engines.items()}
    reference = rates["eval(compile())"]
    uncached_vs_simpleeval = rates["pingcalc uncached"] / rates["simpleeval"]
    cached_vs_eval = rates["pingcalc cached"] / reference
    return {
        "benchmark": "calc",
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "expressions": len(CORPUS),
        "evaluations_per_second": rates,
        "ratio_to_eval_compile": {name: round(rate / reference, 2) for name, rate in rates.items()},
        "uncached_over_simpleeval": round(uncached_vs_simpleeval, 2),
        "cached_over_eval_compile": round(cached_vs_eval, 2),
        "meets_uncached_target": uncached_vs_simpleeval >= 1.0,
        "meets_cached_target": cached_vs_eval >= 0.5,
    }


def _table(results: dict[str, Any]) -> str:
    lines = [f"{'engine':<20} {'evals/s':>10} {'vs eval(compile())':>19}"]
    for name, rate in results["evaluations_per_second"].items():
        ratio = results["ratio_to_eval_compile"][name]
        lines.append(f"{name:<20} {rate:>10} {ratio:>18}x")
    lines.append(
        f"pingcalc uncached / simpleeval: {results['uncached_over_simpleeval']}x "
        f"(target >= 1: {'met' if results['meets_uncached_target'] else 'MISSED'})"
    )
    lines.append(
        f"pingcalc cached / eval(compile()): {results['cached_over_eval_compile']}x "
        f"(target >= 0.5: {'met' if results['meets_cached_target'] else 'MISSED'})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    measured = run()
    print(_table(measured))
    if "--json" in sys.argv:
        print(json.dumps(measured, indent=2))
