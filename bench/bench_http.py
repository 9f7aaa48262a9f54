"""pingcalc with every control on against a bare FastAPI app and a bare Starlette app.

What is measured (issue 19's configuration):

- servers: each one uvicorn worker (httptools, uvloop) pinned with `taskset` to one core;
  `bare` is bench/bare_app.py (FastAPI, a pydantic body model, `eval(compile(expr))` with no
  builtins, `{"status": "ok"}`), `starlette` is bench/bare_starlette_app.py (the same two
  routes on Starlette alone), `pingcalc` is the real `pingcalc serve` with every control on:
  per-address and per-token GCRA limits raised to 100000000/minute (every request still runs
  every limiter check, none is refused), memory storage, bearer authentication, audit records
  on stdout, the access log on, security headers, request ids, metrics; its stdout and the
  bare apps' go to a file. Two pingcalc variants, changed only through settings, attribute
  the cost: `pingcalc_no_access_log` (`PINGCALC_ACCESS_LOG=false`) and
  `pingcalc_no_rate_limit` (`PINGCALC_RATE_LIMIT_ENABLED=false`, calculate only);
- load: `wrk -t1 -c16 -d4s --latency`, pinned to the other core, on `POST /api/v1/calculate`
  with `{"expression": "2*(3+4)**2-17/3"}` (pingcalc's requests carry a bearer token with
  the `calculate` scope) and on `GET /healthz`; every answer must be a 2xx;
- rounds: `ROUNDS` interleaved rounds; each measures every (server, endpoint) pair back to
  back (starting one pair further on each round), so the per-round ratios compare runs that
  saw the same background load;
- figures per run: requests/s, p50 and p99 latency (wrk), and server CPU µs per request:
  the server process's user+system time from /proc over wrk's request count. Requests per
  server CPU-second (10^6 / that) barely moves when other processes steal the core: it is
  the figure the target is judged on;
- reported: for each (server, endpoint) the median and spread (min-max, quartiles) over the
  rounds; for each server the per-round ratios to `bare`, then their median and spread:
  requests per server CPU-second (bare's CPU per request over ours), requests/s and p99
  (ours over bare's);
- attribution: the same run's pingcalc variants (differences of server CPU per request,
  taken within each round), and, between rounds, bench/layers.py's in-process timings of the
  functions the server calls per request, as µs and as a share of pingcalc's server CPU.

Targets (issue 19): on both endpoints, pingcalc >= 1.0x bare FastAPI in requests per server
CPU-second (median of the rounds), p99 <= 1.2x bare's (median of the per-round ratios).

Run: `.venv/bin/python -m bench.bench_http` (`--quick`: one short round; `--json`).

Profiling a layer on the live server: `.venv/bin/python -m bench.profile_http calculate`
starts `pingcalc serve` as here, puts wrk on it, and meanwhile runs
`py-spy record -r 500 -d 7 -f raw --nonblocking --pid PID`; it prints the functions with the
most samples, self and inclusive. By hand: start the server with the `VARIANTS` settings, run
wrk as `wrk_argv` does, then `.venv/bin/py-spy record -r 500 -d 7 -f raw -o profile.txt
--pid PID` (`py-spy dump --pid PID` for one stack). Without `--nonblocking`, py-spy stops the
server for each sample and the stops land at the end of system calls: file and socket writes
and `stat` then look several times costlier than they are (bench/profile_http.py).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.layers import LABELS
from bench.results import show
from bench.servers import (
    UNLIMITED_RATE,
    Server,
    cores,
    pinned,
    start_bare,
    start_pingcalc,
)
from pingcalc.testing import Tokens

WRK = shutil.which("wrk") or "/usr/bin/wrk"
CONNECTIONS = 16
SECONDS = 4
QUICK_SECONDS = 1
ROUNDS = 8
WARMUP_SECONDS = 1
EXPRESSION = "2*(3+4)**2-17/3"
CALCULATE = "/api/v1/calculate"
ENDPOINTS = ("calculate", "healthz")
# Issue 19's targets: requests per server CPU-second and p99, each against bare FastAPI.
CPU_TARGET = 1.0
P99_TARGET = 1.2

ALL_CONTROLS: dict[str, str] = {
    "PINGCALC_RATE_LIMIT_PER_TOKEN": UNLIMITED_RATE,
    "PINGCALC_RATE_LIMIT_PER_IP": UNLIMITED_RATE,
    "PINGCALC_RATE_LIMIT_STORAGE": "memory://",
    "PINGCALC_ACCESS_LOG": "true",
}
VARIANTS: dict[str, dict[str, str]] = {
    "pingcalc": ALL_CONTROLS,
    "pingcalc_no_access_log": {**ALL_CONTROLS, "PINGCALC_ACCESS_LOG": "false"},
    "pingcalc_no_rate_limit": {**ALL_CONTROLS, "PINGCALC_RATE_LIMIT_ENABLED": "false"},
}
BASELINES = {"bare": "bench.bare_app", "starlette": "bench.bare_starlette_app"}
# The endpoints each server is measured on (the limiter never runs on /healthz).
MEASURED: dict[str, tuple[str, ...]] = {
    "bare": ENDPOINTS,
    "starlette": ENDPOINTS,
    "pingcalc": ENDPOINTS,
    "pingcalc_no_access_log": ENDPOINTS,
    "pingcalc_no_rate_limit": ("calculate",),
}
DESCRIPTIONS = {
    "bare": "bare FastAPI app (bench/bare_app.py), plain uvicorn",
    "starlette": "bare Starlette app (bench/bare_starlette_app.py), plain uvicorn",
    "pingcalc": "pingcalc serve, every control on",
    "pingcalc_no_access_log": "pingcalc serve, access log off",
    "pingcalc_no_rate_limit": "pingcalc serve, rate limiting off",
}
METRICS = ("requests_per_second", "p50_ms", "p99_ms", "server_cpu_us_per_request",
           "requests_per_cpu_second")  # fmt: skip

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    for unit in ("us", "ms", "s"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _UNITS[unit]
    raise ValueError(f"unexpected wrk duration {text!r}")


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


def lua_script(path: Path, headers: dict[str, str], body: str) -> Path:
    """A wrk script that POSTs `body` with `headers`."""
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk_argv(url: str, endpoint: str, script: Path | None, seconds: int, core: int) -> list[str]:
    """The load of one run: wrk on `core`, CONNECTIONS connections, one thread."""
    argv = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    path = "/healthz" if endpoint == "healthz" else CALCULATE
    return pinned([*argv, url + path], core)


def measure(
    server: Server, endpoint: str, script: Path | None, seconds: int, core: int
) -> dict[str, float]:
    """One bounded wrk run against one server, plus the server's CPU per request."""
    cpu_before = server.cpu_seconds()
    out = subprocess.run(
        wrk_argv(server.url, endpoint, script, seconds, core),
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    cpu = server.cpu_seconds() - cpu_before
    figures = parse_wrk(out.stdout)
    if figures.get("non_2xx", 0) or figures.get("socket_errors", 0):
        raise RuntimeError(f"{server.name} {endpoint}: refusals or errors:\n{out.stdout}")
    per_request = cpu / max(figures["requests"], 1)
    figures["server_cpu_us_per_request"] = round(1e6 * per_request, 1)
    figures["requests_per_cpu_second"] = round(1 / per_request) if per_request else 0.0
    return figures


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and quartiles of one figure over the rounds."""
    ordered = sorted(values)
    q1, q3 = (
        statistics.quantiles(ordered, n=4, method="inclusive")[::2]
        if len(ordered) > 1
        else (ordered[0], ordered[0])
    )
    return {
        "median": round(statistics.median(ordered), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "q1": round(q1, 3),
        "q3": round(q3, 3),
        "n": len(ordered),
    }


def summarise(rounds: list[dict[str, dict[str, dict[str, float]]]]) -> dict[str, Any]:
    """Medians and spreads per (server, endpoint), and per-round ratios to `bare`.

    `rounds[i][server][endpoint]` is one wrk run. Ratios are taken within a round, so both
    sides saw the same background load: `cpu_efficiency` is bare's CPU per request over the
    server's (requests per server CPU-second relative to bare), `rps` and `p99` are the
    server's over bare's. `cpu_saved_us` is what a variant saves against `pingcalc`.
    """
    cells: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    ratios: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    saved: dict[str, dict[str, dict[str, float]]] = {}
    names = list(rounds[0])
    for name in names:
        for endpoint in rounds[0][name]:
            runs = [r[name][endpoint] for r in rounds]
            cells.setdefault(name, {})[endpoint] = {
                m: spread([c[m] for c in runs]) for m in METRICS
            }
            if name != "bare" and endpoint in rounds[0].get("bare", {}):
                bare = [r["bare"][endpoint] for r in rounds]
                ratios.setdefault(name, {})[endpoint] = {
                    "cpu_efficiency": spread(
                        [
                            b["server_cpu_us_per_request"] / c["server_cpu_us_per_request"]
                            for b, c in zip(bare, runs, strict=True)
                        ]
                    ),
                    "rps": spread(
                        [
                            c["requests_per_second"] / b["requests_per_second"]
                            for b, c in zip(bare, runs, strict=True)
                        ]
                    ),
                    "p99": spread(
                        [c["p99_ms"] / b["p99_ms"] for b, c in zip(bare, runs, strict=True)]
                    ),
                }
            if name.startswith("pingcalc_") and endpoint in rounds[0].get("pingcalc", {}):
                full = [r["pingcalc"][endpoint] for r in rounds]
                saved.setdefault(name, {})[endpoint] = spread(
                    [
                        f["server_cpu_us_per_request"] - c["server_cpu_us_per_request"]
                        for f, c in zip(full, runs, strict=True)
                    ]
                )
    return {"cells": cells, "ratios": ratios, "cpu_saved_us": saved}


def attribution(
    cells: dict[str, Any], saved: dict[str, Any], layers: dict[str, dict[str, float]]
) -> dict[str, list[dict[str, Any]]]:
    """Per endpoint, rows of (layer, µs, share of pingcalc's server CPU per request).

    Server rows come from wrk runs (server CPU from /proc); in-process rows from
    bench/layers.py. `remainder` rows are differences, not measurements of their own.
    """
    table: dict[str, list[dict[str, Any]]] = {}
    for endpoint in ENDPOINTS:
        total = cells["pingcalc"][endpoint]["server_cpu_us_per_request"]["median"]
        inproc = layers.get(endpoint, {})
        rows: list[dict[str, Any]] = [
            {"layer": "pingcalc serve, every control on: server CPU per request (wrk, /proc)",
             "us": total, "kind": "server"},
        ]  # fmt: skip
        for variant, what in (
            ("pingcalc_no_access_log", "access log (every control on minus access log off)"),
            ("pingcalc_no_rate_limit", "rate limiting (every control on minus limits off)"),
        ):
            if endpoint in saved.get(variant, {}):
                rows.append({"layer": what, "us": saved[variant][endpoint]["median"],
                             "kind": "server difference"})  # fmt: skip
        if "app_pingcalc" in inproc:
            app = inproc["app_pingcalc"]
            rows.append({"layer": "outside the application: uvicorn's protocol and httptools, "
                         "the event loop, socket reads and writes (server CPU minus the "
                         "in-process application)", "us": round(total - app, 2),
                         "kind": "remainder"})  # fmt: skip
            rows.append({"layer": LABELS["app_pingcalc"], "us": app, "kind": "in-process"})
            parts = [k for k in LABELS if not k.startswith("app_") and k in inproc]
            for key in parts:
                rows.append({"layer": "  " + LABELS[key], "us": inproc[key], "kind": "in-process"})
            rest = app - sum(inproc[k] for k in parts)
            rows.append({"layer": "  the rest of the application (route handler glue, body "
                         "read, media-type check, audit context, exception frames; and what "
                         "the loops above keep warm in the caches)", "us": round(rest, 2),
                         "kind": "remainder"})  # fmt: skip
        for key in ("app_bare", "app_starlette"):
            if key in inproc:
                rows.append({"layer": "for comparison: " + LABELS[key], "us": inproc[key],
                             "kind": "in-process"})  # fmt: skip
        for row in rows:
            row["share_percent"] = round(100 * row["us"] / total, 1) if total else 0.0
        table[endpoint] = rows
    return table


@dataclass
class Setup:
    """What one benchmark run needs: servers, wrk scripts, the layers child's environment."""

    servers: dict[str, Server]
    scripts: dict[str, Path]
    layers_env: dict[str, str]


def _script(setup: Setup, name: str, endpoint: str) -> Path | None:
    if endpoint == "healthz":
        return None
    return setup.scripts["pingcalc" if name.startswith("pingcalc") else "bare"]


def _layers(env: dict[str, str], core: int) -> dict[str, dict[str, float]]:
    """bench/layers.py in a child pinned to the server core (with no load running)."""
    done = subprocess.run(
        pinned([sys.executable, "-m", "bench.layers"], core),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.layers failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool = False) -> dict[str, Any]:
    """Start every server, run the interleaved rounds, return the figures (see module doc)."""
    seconds = QUICK_SECONDS if quick else SECONDS
    rounds_wanted = 1 if quick else ROUNDS
    server_core, load_core = cores()
    rounds: list[dict[str, dict[str, dict[str, float]]]] = []
    layer_runs: list[dict[str, dict[str, float]]] = []
    loads: list[float] = []
    pairs = [(name, endpoint) for name, endpoints in MEASURED.items() for endpoint in endpoints]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pingcalc-bench-") as tmp:
        workdir = Path(tmp)
        tokens = Tokens(workdir / "tokens.json")
        secret = tokens.add("bench", "calculate")
        body = json.dumps({"expression": EXPRESSION})
        content = {"Content-Type": "application/json"}
        scripts = {
            "bare": lua_script(workdir / "bare.lua", content, body),
            "pingcalc": lua_script(
                workdir / "pingcalc.lua", {**content, **tokens.header("bench")}, body
            ),
        }
        repo = str(Path(__file__).resolve().parents[1])
        layers_env = {k: v for k, v in os.environ.items() if not k.startswith("PINGCALC_")}
        layers_env.update(ALL_CONTROLS)
        layers_env.update(
            PINGCALC_TOKENS_FILE=str(tokens.path),
            BENCH_BEARER=secret,
            PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
        )
        setup = Setup({}, scripts, layers_env)
        try:
            for name, module in BASELINES.items():
                setup.servers[name] = start_bare(workdir, server_core, module, name)
            for name, settings in VARIANTS.items():
                setup.servers[name] = start_pingcalc(name, tokens, workdir, server_core, settings)
            for name, endpoint in pairs:  # imports, first-call caches, the evaluator's cache
                server = setup.servers[name]
                measure(server, endpoint, _script(setup, name, endpoint), WARMUP_SECONDS,
                        load_core)  # fmt: skip
            for index in range(rounds_wanted):
                loads.append(os.getloadavg()[0])
                shift = index % len(pairs)
                this: dict[str, dict[str, dict[str, float]]] = {name: {} for name in MEASURED}
                for name, endpoint in pairs[shift:] + pairs[:shift]:
                    server = setup.servers[name]
                    this[name][endpoint] = measure(
                        server, endpoint, _script(setup, name, endpoint), seconds, load_core
                    )
                rounds.append(this)
                layer_runs.append(_layers(layers_env, server_core))
        finally:
            for server in setup.servers.values():
                server.stop()
    summary = summarise(rounds)
    layers = {
        endpoint: {
            key: round(statistics.median(run[endpoint][key] for run in layer_runs), 2)
            for key in layer_runs[0][endpoint]
        }
        for endpoint in ENDPOINTS
    }
    ratios = summary["ratios"]["pingcalc"]
    targets = {}
    for endpoint in ENDPOINTS:
        cpu = ratios[endpoint]["cpu_efficiency"]["median"]
        p99 = ratios[endpoint]["p99"]["median"]
        targets[f"{endpoint}_cpu"] = {"ratio": cpu, "target": CPU_TARGET, "met": cpu >= CPU_TARGET}
        targets[f"{endpoint}_p99"] = {"ratio": p99, "target": P99_TARGET, "met": p99 <= P99_TARGET}
    return {
        "benchmark": "http",
        "what": {
            "servers": {name: DESCRIPTIONS[name] for name in MEASURED},
            "pingcalc_settings": ALL_CONTROLS,
            "variants": {k: v for k, v in VARIANTS.items() if k != "pingcalc"},
            "load_generator": f"wrk -t1 -c{CONNECTIONS} -d{seconds}s --latency",
            "server_core": server_core,
            "load_core": load_core,
            "requests": {
                "calculate": f"POST {CALCULATE} {body}",
                "healthz": "GET /healthz",
            },
            "rounds": rounds_wanted,
            "seconds_per_run": seconds,
            "cpu_measure": "server process user+system time (/proc/PID/stat) over wrk's "
            "request count",
        },
        "expression": EXPRESSION,
        "loadavg_per_round": [round(x, 2) for x in loads],
        "cells": summary["cells"],
        # Per-round ratios to bare FastAPI, then their median and spread.
        "ratio_vs_bare": summary["ratios"],
        "cpu_saved_us": summary["cpu_saved_us"],
        "layers_us": layers,
        "layer_labels": LABELS,
        "attribution": attribution(summary["cells"], summary["cpu_saved_us"], layers),
        "targets": targets,
        "rounds": rounds,
        "layer_runs": layer_runs,
        "run_seconds": round(time.monotonic() - started),
    }


def _range(cell: dict[str, float], digits: int = 0) -> str:
    fmt = f"{{:,.{digits}f}}"
    return f"{fmt.format(cell['median'])} ({fmt.format(cell['min'])}-{fmt.format(cell['max'])})"


def table(results: dict[str, Any]) -> str:
    """Plain text: what was measured, medians (min-max), ratios, attribution, targets."""
    what = results["what"]
    lines = [
        f"Measured: {what['rounds']} interleaved rounds; servers pinned to core "
        f"{what['server_core']}, `{what['load_generator']}` on core {what['load_core']}; "
        f"calculate = {what['requests']['calculate']}; server CPU = {what['cpu_measure']}.",
        f"pingcalc settings: {what['pingcalc_settings']}",
        "",
        f"{'server':<24} {'endpoint':<9} {'req/s':>22} {'p50 ms':>18} {'p99 ms':>20} "
        f"{'CPU us/req':>16}",
    ]
    for name, by_endpoint in results["cells"].items():
        for endpoint, cell in by_endpoint.items():
            lines.append(
                f"{name:<24} {endpoint:<9} {_range(cell['requests_per_second']):>22} "
                f"{_range(cell['p50_ms'], 2):>18} {_range(cell['p99_ms'], 2):>20} "
                f"{_range(cell['server_cpu_us_per_request']):>16}"
            )
    lines += ["", "Ratios to bare FastAPI (per round, median (min-max)):"]
    for name, by_endpoint in results["ratio_vs_bare"].items():
        for endpoint, ratio in by_endpoint.items():
            lines.append(
                f"  {name:<24} {endpoint:<9} req/CPU-s {_range(ratio['cpu_efficiency'], 2)}x  "
                f"req/s {_range(ratio['rps'], 2)}x  p99 {_range(ratio['p99'], 2)}x"
            )
    for endpoint, rows in results["attribution"].items():
        lines += ["", f"Attribution, {endpoint} (µs per request, share of pingcalc's CPU):"]
        lines += [f"  {r['us']:>7.1f} {r['share_percent']:>6.1f}%  {r['layer']}" for r in rows]
    lines.append("")
    for key, target in results["targets"].items():
        lines.append(f"target {key}: {target['ratio']}x {'met' if target['met'] else 'MISSED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    show(run(quick="--quick" in sys.argv), table)
