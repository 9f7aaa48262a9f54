"""Requests/s and latency of pingcalc against a bare FastAPI app doing the same evaluation.

Every server is one uvicorn worker pinned to one core; `wrk` (one thread, 32 connections) runs
pinned to the other. Each repetition measures every (server, endpoint) pair back to back, so
the ratios compare runs that saw the same background load. Besides requests/s, the server's
own CPU time per request is read from /proc: it barely moves when other processes steal the
core, so it is the steadier measure of what each layer costs.

Servers: `bare` (bench/bare_app.py), `pingcalc` (the real `pingcalc serve`, access log on,
rate limits raised so they count but never refuse), `pingcalc_no_access_log`, and
`pingcalc_no_log_no_limits` (also no rate limiter) to attribute the cost.

Run: `.venv/bin/python -m bench.bench_http` (`--quick`: one short repetition).

Profiling a layer: start `pingcalc serve` as `start_pingcalc` does (the `VARIANTS` settings),
put the wrk load of `measure` on it, and meanwhile run
`.venv/bin/py-spy record -r 300 -d 6 -f raw -o profile.txt --pid PID` (or `py-spy dump`);
keep only the stacks through `Runner.run` (the event loop) to drop idle worker threads.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.servers import (
    UNLIMITED_RATE,
    Server,
    Tokens,
    cores,
    pinned,
    start_bare,
    start_pingcalc,
)

WRK = shutil.which("wrk") or "/usr/bin/wrk"
CONNECTIONS = 32
SECONDS = 4
QUICK_SECONDS = 1
REPETITIONS = 3
WARMUP_SECONDS = 1
# A realistic calculation: constants, precedence, a power and two functions.
EXPRESSION = "(17.5 * 3 + 2 ** 10) / sqrt(144) - max(3, 7, 1) * 0.25"

_RAISED_LIMITS = {
    "PINGCALC_RATE_LIMIT_PER_TOKEN": UNLIMITED_RATE,
    "PINGCALC_RATE_LIMIT_PER_IP": UNLIMITED_RATE,
    "PINGCALC_AUTH_FAILURES_PER_IP": UNLIMITED_RATE,
    "PINGCALC_LOG_LEVEL": "info",
}
VARIANTS: dict[str, dict[str, str]] = {
    "pingcalc": {**_RAISED_LIMITS, "PINGCALC_ACCESS_LOG": "true"},
    "pingcalc_no_access_log": {**_RAISED_LIMITS, "PINGCALC_ACCESS_LOG": "false"},
    "pingcalc_no_log_no_limits": {
        **_RAISED_LIMITS,
        "PINGCALC_ACCESS_LOG": "false",
        "PINGCALC_RATE_LIMIT_ENABLED": "false",
    },
}
ENDPOINTS = ("healthz", "calculate")
# The target of issue 9: the security layers cost at most 15 % of the bare app's requests/s.
TARGET_RATIO = 0.85

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, p50/p99 latency (ms), requests and non-2xx count from `wrk --latency`."""
    figures: dict[str, float] = {}
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            figures["requests_per_second"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            figures[f"p{parts[0][:-1]}_ms"] = round(_ms(parts[1]), 3)
        elif "requests in" in line:
            figures["requests"] = float(parts[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            figures["non_2xx"] = float(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            figures["socket_errors"] = float(sum(int(n.rstrip(",")) for n in parts[3::2]))
    figures.setdefault("non_2xx", 0.0)
    figures.setdefault("socket_errors", 0.0)
    return figures


def _lua_script(path: Path, headers: dict[str, str], body: str) -> Path:
    """A wrk script that POSTs `body` with `headers`."""
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _wrk(server: Server, endpoint: str, script: Path | None, seconds: int, core: int) -> list[str]:
    path = "/healthz" if endpoint == "healthz" else "/api/v1/calculate"
    argv = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    return pinned([*argv, server.url + path], core)


def measure(
    server: Server, endpoint: str, script: Path | None, seconds: int, core: int
) -> dict[str, float]:
    """One bounded wrk run against one server; adds the server's CPU µs per request."""
    cpu_before = server.cpu_seconds()
    out = subprocess.run(
        _wrk(server, endpoint, script, seconds, core),
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    cpu = server.cpu_seconds() - cpu_before
    figures = parse_wrk(out.stdout)
    if figures.get("non_2xx", 0) or figures.get("socket_errors", 0):
        raise RuntimeError(f"{server.name} {endpoint}: refusals or errors:\n{out.stdout}")
    figures["server_cpu_us_per_request"] = round(1e6 * cpu / max(figures["requests"], 1), 1)
    return figures


def _median(cells: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(c[key] for c in cells), 3) for key in cells[0]}


def run(quick: bool = False) -> dict[str, Any]:
    """Start the servers, measure every (server, endpoint) per repetition, return medians."""
    seconds = QUICK_SECONDS if quick else SECONDS
    repetitions = 1 if quick else REPETITIONS
    server_core, load_core = cores()
    raw: dict[str, dict[str, list[dict[str, float]]]] = {}
    ratios: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="pingcalc-bench-") as tmp:
        workdir = Path(tmp)
        tokens = Tokens(workdir / "tokens.json")
        tokens.add("bench", "calculate")
        body = json.dumps({"expression": EXPRESSION})
        content = {"Content-Type": "application/json"}
        scripts = {
            "bare": _lua_script(workdir / "bare.lua", content, body),
            "pingcalc": _lua_script(
                workdir / "pingcalc.lua", {**content, **tokens.bearer("bench")}, body
            ),
        }
        servers: list[Server] = []
        try:
            servers.append(start_bare(workdir, server_core))
            for name, settings in VARIANTS.items():
                servers.append(start_pingcalc(name, tokens, workdir, server_core, settings))
            for server in servers:  # warm caches, imports and the evaluator's LRU
                for endpoint in ENDPOINTS:
                    script = _script_for(scripts, server, endpoint)
                    measure(server, endpoint, script, WARMUP_SECONDS, load_core)
            for _ in range(repetitions):
                per_rep: dict[tuple[str, str], dict[str, float]] = {}
                for server in servers:
                    for endpoint in ENDPOINTS:
                        script = _script_for(scripts, server, endpoint)
                        cell = measure(server, endpoint, script, seconds, load_core)
                        raw.setdefault(server.name, {}).setdefault(endpoint, []).append(cell)
                        per_rep[(server.name, endpoint)] = cell
                for name in VARIANTS:
                    for endpoint in ENDPOINTS:
                        mine, bare = per_rep[(name, endpoint)], per_rep[("bare", endpoint)]
                        pair = ratios.setdefault(name, {})
                        pair.setdefault(f"{endpoint}_rps", []).append(
                            mine["requests_per_second"] / bare["requests_per_second"]
                        )
                        pair.setdefault(f"{endpoint}_cpu", []).append(
                            bare["server_cpu_us_per_request"] / mine["server_cpu_us_per_request"]
                        )
        finally:
            for server in servers:
                server.stop()
    medians = {
        name: {endpoint: _median(cells) for endpoint, cells in by_endpoint.items()}
        for name, by_endpoint in raw.items()
    }
    ratio_medians = {
        name: {key: round(statistics.median(values), 3) for key, values in by_key.items()}
        for name, by_key in ratios.items()
    }
    calc_ratio = ratio_medians["pingcalc"]["calculate_rps"]
    return {
        "benchmark": "http",
        "load_generator": f"wrk -t1 -c{CONNECTIONS} -d{seconds}s --latency (core {load_core})",
        "server_core": server_core,
        "repetitions": repetitions,
        "seconds_per_run": seconds,
        "expression": EXPRESSION,
        "medians": medians,
        "runs": raw,
        # Each ratio is taken within one repetition, then the median over repetitions.
        # *_rps: requests/s over the bare app's; *_cpu: the bare app's CPU per request over ours.
        "ratio_vs_bare": ratio_medians,
        "security_cost_percent": round(100 * (1 - calc_ratio), 1),
        "meets_target": calc_ratio >= TARGET_RATIO,
    }


def _script_for(scripts: dict[str, Path], server: Server, endpoint: str) -> Path | None:
    if endpoint == "healthz":
        return None
    return scripts["bare" if server.name == "bare" else "pingcalc"]


def table(results: dict[str, Any]) -> str:
    """A plain-text table of the medians and ratios."""
    lines = [f"{'server':<26} {'endpoint':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'CPU us/req':>10} {'x bare rps':>10} {'x bare CPU':>10}"]  # fmt: skip
    for name, by_endpoint in results["medians"].items():
        for endpoint, cell in by_endpoint.items():
            ratio = results["ratio_vs_bare"].get(name, {})
            rps = ratio.get(f"{endpoint}_rps", 1.0)
            cpu = ratio.get(f"{endpoint}_cpu", 1.0)
            lines.append(
                f"{name:<26} {endpoint:<10} {cell['requests_per_second']:>9.0f} "
                f"{cell['p50_ms']:>8.2f} {cell['p99_ms']:>8.2f} "
                f"{cell['server_cpu_us_per_request']:>10.0f} {rps:>10.2f} {cpu:>10.2f}"
            )
    lines.append(f"security layers cost on calculate: {results['security_cost_percent']}%")
    return "\n".join(lines)


if __name__ == "__main__":
    started = time.monotonic()
    measured = run(quick="--quick" in sys.argv)
    print(table(measured))
    print(f"({time.monotonic() - started:.0f} s)")
    if "--json" in sys.argv:
        print(json.dumps(measured, indent=2))
