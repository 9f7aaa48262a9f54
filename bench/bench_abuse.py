"""Latency for legitimate clients while 200 abusive clients hammer `/api/v1/ping`.

Each repetition starts a fresh `pingcalc serve` with its default (production) limits, pinned
to one core. A probe on the other core measures `/healthz` and a legitimate calculation (its
own token, its own address 127.0.0.1) first on the idle server (the baseline), then while a
separate process runs 200 keep-alive clients that POST pings as fast as they are answered,
from ten other loopback addresses (127.0.0.2-11) with four ping tokens: far beyond the per-IP
and per-token rate limits and the in-flight caps. The abusers' answers are counted by status.
Bounded: `ABUSE_SECONDS` of load per repetition, and every request has a timeout.

Measuring starts `RAMP_SECONDS` after the abusers have launched, so the figures are the
steady state under abuse, not the onset. The probe is paced (one request every interval on
each of its two connections) and does not correct for coordinated omission: a stalled
request delays the next one, so its p99 is, if anything, optimistic for a server that
stalls for a long time.

Run: `.venv/bin/python -m bench.bench_abuse`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.rawhttp import Connection, encode_request
from bench.servers import cores, pinned, start_pingcalc
from pingcalc.testing import Tokens

ATTACKERS = 200
ATTACK_SOURCES = tuple(f"127.0.0.{n}" for n in range(2, 12))
ATTACK_TOKENS = 4
IDLE_SECONDS = 3.0
ABUSE_SECONDS = 8.0
QUICK_IDLE_SECONDS = 1.0
QUICK_ABUSE_SECONDS = 2.0
REPETITIONS = 3
# Probe pacing. The calculation rate keeps the legitimate token well under its default
# 120/minute over one repetition (8/s for 11 s is 88 requests): it must never be the cause.
HEALTHZ_INTERVAL = 0.02
CALC_INTERVAL = 0.125
# Seconds the abusers run before the probe starts measuring: the onset (200 connections
# opening, the first burst passing the limits before they fill) is left out, steady state in.
RAMP_SECONDS = 1.0
REQUEST_TIMEOUT = 5.0
EXPRESSION = "(17.5 * 3 + 2 ** 10) / sqrt(144) - max(3, 7, 1) * 0.25"
# Targets of issue 9, in milliseconds.
HEALTHZ_P99_TARGET_MS = 50.0
CALC_P99_TARGET_MS = 100.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


async def _exchange(conn: Connection, raw: bytes, statuses: Counter[str]) -> bool:
    """Send `raw` once and count the answer's status, or the error's name (the connection is
    then closed, and reopened by the next request); False when there was no answer."""
    try:
        status = await asyncio.wait_for(conn.request(raw), REQUEST_TIMEOUT)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        statuses[type(exc).__name__] += 1
        await conn.close()
        return False
    statuses[str(status)] += 1
    return True


async def _paced(conn: Connection, raw: bytes, interval: float, until: float) -> dict[str, Any]:
    """Send `raw` every `interval` until `until`; latencies in ms and statuses."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    next_at = began = time.perf_counter()
    slowest_at = 0.0
    while next_at < until:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        started = time.perf_counter()
        await _exchange(conn, raw, statuses)
        latencies.append(1000 * (time.perf_counter() - started))
        if latencies[-1] >= max(latencies):
            slowest_at = started - began
        next_at += interval
    return {"latencies": latencies, "statuses": dict(statuses), "slowest_at_s": slowest_at}


async def _connect(conn: Connection, raw: bytes, budget: float) -> float:
    """Milliseconds until `conn` is open and has answered `raw`, retrying for `budget` s."""
    started = time.perf_counter()
    while (left := budget - (time.perf_counter() - started)) > 0:
        try:
            await asyncio.wait_for(conn.request(raw), min(REQUEST_TIMEOUT, left))
            break
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            await conn.close()
    return 1000 * (time.perf_counter() - started)


def _summary(sample: dict[str, Any]) -> dict[str, Any]:
    values: list[float] = sample["latencies"]
    return {
        "requests": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values, default=0.0), 2),
        # When the slowest request was sent, in seconds from the start of the phase.
        "slowest_at_s": round(sample["slowest_at_s"], 2),
        "statuses": sample["statuses"],
    }


async def _session(
    port: int, token: str, idle: float, abuse: float, attack: Callable[[], subprocess.Popen[str]]
) -> dict[str, Any]:
    """Probe the idle server, start the abusers, probe again on the same connections.

    The probe connects once, before anything, and keeps its two connections alive, as a
    client does. Separately, a fresh connection is attempted under abuse (bounded by the
    phase): under a flood of connections the kernel's accept queue overflows and a new client
    waits for SYN retries (1 s, then 3 s) before the server ever sees it.
    """
    healthz = encode_request("GET", "/healthz", port=port)
    calc = encode_request(
        "POST",
        "/api/v1/calculate",
        port=port,
        headers={"Authorization": f"Bearer {token}"},
        json_body={"expression": EXPRESSION},
    )
    conns = (Connection(port, source="127.0.0.1"), Connection(port, source="127.0.0.1"))
    fresh = Connection(port, source="127.0.0.1")

    async def measure(seconds: float) -> dict[str, dict[str, Any]]:
        until = time.perf_counter() + seconds
        healthz_sample, calc_sample = await asyncio.gather(
            _paced(conns[0], healthz, HEALTHZ_INTERVAL, until),
            _paced(conns[1], calc, CALC_INTERVAL, until),
        )
        return {"healthz": healthz_sample, "calculate": calc_sample}

    try:
        connect_idle = max(await asyncio.gather(*(_connect(c, healthz, 5.0) for c in conns)))
        idle_sample = await measure(idle)
        hammer = attack()
        assert hammer.stdout is not None
        await asyncio.get_running_loop().run_in_executor(None, hammer.stdout.readline)
        await asyncio.sleep(RAMP_SECONDS)
        connecting = asyncio.create_task(_connect(fresh, healthz, abuse))
        abuse_sample = await measure(abuse)
        connect_abuse = await connecting
    finally:
        for conn in (*conns, fresh):
            await conn.close()
    return {
        "idle": idle_sample,
        "abuse": abuse_sample,
        "hammer": hammer,
        "connect_ms": {"idle": round(connect_idle, 2), "abuse": round(connect_abuse, 2)},
    }


async def _hammer(port: int, tokens: list[str], seconds: float) -> dict[str, Any]:
    """ATTACKERS keep-alive clients POSTing pings until `seconds` have passed."""
    statuses: Counter[str] = Counter()
    until = time.perf_counter() + seconds

    async def attacker(index: int) -> None:
        conn = Connection(port, source=ATTACK_SOURCES[index % len(ATTACK_SOURCES)])
        raw = encode_request(
            "POST",
            "/api/v1/ping",
            port=port,
            headers={"Authorization": f"Bearer {tokens[index % len(tokens)]}"},
            json_body={"target": "127.0.0.1", "count": 1},
        )
        while time.perf_counter() < until:
            if not await _exchange(conn, raw, statuses):
                await asyncio.sleep(0.01)
        await conn.close()

    started = time.perf_counter()
    attackers = [asyncio.create_task(attacker(i)) for i in range(ATTACKERS)]
    await asyncio.sleep(0)
    print("started", flush=True)  # the parent measures from RAMP_SECONDS after this line
    await asyncio.gather(*attackers)
    elapsed = time.perf_counter() - started
    total = sum(statuses.values())
    return {
        "clients": ATTACKERS,
        "sources": len(ATTACK_SOURCES),
        "tokens": len(tokens),
        "seconds": round(elapsed, 2),
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "statuses": dict(sorted(statuses.items())),
    }


def _start_hammer(port: int, tokens: list[str], seconds: float, core: int) -> subprocess.Popen[str]:
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    argv = [sys.executable, "-m", "bench.bench_abuse", "--hammer", str(port), str(seconds)]
    process = subprocess.Popen(
        pinned(argv, core), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdin is not None
    # The secrets go through a pipe, not argv, where every local user could read them.
    process.stdin.write(json.dumps(tokens) + "\n")
    process.stdin.flush()
    return process


def _repetition(workdir: Path, idle: float, abuse: float) -> dict[str, Any]:
    server_core, load_core = cores()
    tokens = Tokens(workdir / "tokens.json")
    legit = tokens.add("legit", "calculate")
    attackers = [tokens.add(f"abuser{n}", "ping") for n in range(ATTACK_TOKENS)]
    server = start_pingcalc("abuse", tokens, workdir, server_core, {"PINGCALC_LOG_LEVEL": "info"})
    hammers: list[subprocess.Popen[str]] = []

    def attack() -> subprocess.Popen[str]:
        hammers.append(_start_hammer(server.port, attackers, abuse + RAMP_SECONDS + 1, load_core))
        return hammers[-1]

    try:
        os.sched_setaffinity(0, {load_core})
        session = asyncio.run(_session(server.port, legit, idle, abuse, attack))
        out, _ = hammers[0].communicate(timeout=abuse + 60)
        backend = _ping_backend(server.log_path)
        rss = server.rss_mib()
    finally:
        for hammer in hammers:
            if hammer.poll() is None:
                hammer.kill()
                hammer.wait()
        server.stop()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        tokens.path.unlink()
    idle_sample, abuse_sample = session["idle"], session["abuse"]
    return {
        "ping_backend": backend,
        "server_rss_mib_after": rss,
        "connect_ms": session["connect_ms"],
        "idle": {name: _summary(sample) for name, sample in idle_sample.items()},
        "abuse": {name: _summary(sample) for name, sample in abuse_sample.items()},
        "abusers": json.loads(out),
    }


def _ping_backend(log_path: Path) -> str:
    for line in log_path.read_text(errors="replace").splitlines():
        if '"ping_backend_selected"' in line:
            return str(json.loads(line).get("backend"))
    return "unknown"


def run(quick: bool = False) -> dict[str, Any]:
    """Repeat (idle probe, probe under abuse) on fresh servers; medians of the p99s."""
    from bench.bench_ping import datagram_icmp_allowed

    idle = QUICK_IDLE_SECONDS if quick else IDLE_SECONDS
    abuse = QUICK_ABUSE_SECONDS if quick else ABUSE_SECONDS
    repetitions = 1 if quick else REPETITIONS
    reps = []
    # The container's sysctl lets the service use in-process ICMP; give the host the same.
    with datagram_icmp_allowed(), tempfile.TemporaryDirectory(prefix="pingcalc-abuse-") as tmp:
        for _ in range(repetitions):
            reps.append(_repetition(Path(tmp), idle, abuse))

    def med(phase: str, endpoint: str, key: str) -> float:
        return round(statistics.median(r[phase][endpoint][key] for r in reps), 2)

    summary = {
        phase: {
            endpoint: {key: med(phase, endpoint, key) for key in ("p50_ms", "p99_ms", "max_ms")}
            for endpoint in ("healthz", "calculate")
        }
        for phase in ("idle", "abuse")
    }
    healthz_p99 = summary["abuse"]["healthz"]["p99_ms"]
    calc_p99 = summary["abuse"]["calculate"]["p99_ms"]
    legit_refused = sum(
        n
        for r in reps
        for phase in ("idle", "abuse")
        for status, n in r[phase]["calculate"]["statuses"].items()
        if status != "200"
    )
    abuser_statuses: Counter[str] = Counter()
    for r in reps:
        abuser_statuses.update(r["abusers"]["statuses"])
    return {
        "benchmark": "abuse",
        "repetitions": repetitions,
        "idle_seconds": idle,
        "abuse_seconds": abuse,
        "attackers": ATTACKERS,
        "ping_backend": reps[0]["ping_backend"],
        "summary": summary,
        # p99 under abuse over p99 of the same server idle (median over repetitions).
        "ratio_abuse_over_idle_p99": {
            endpoint: round(
                summary["abuse"][endpoint]["p99_ms"]
                / max(summary["idle"][endpoint]["p99_ms"], 1e-3),
                2,
            )
            for endpoint in ("healthz", "calculate")
        },
        # Opening a new connection (plus one /healthz) on the idle server and under abuse.
        "connect_ms": {
            phase: round(statistics.median(r["connect_ms"][phase] for r in reps), 2)
            for phase in ("idle", "abuse")
        },
        "abuser_requests_per_second": round(
            statistics.median(r["abusers"]["requests_per_second"] for r in reps), 1
        ),
        "abuser_statuses_total": dict(sorted(abuser_statuses.items())),
        "legitimate_calculations_refused": legit_refused,
        "meets_healthz_target": healthz_p99 < HEALTHZ_P99_TARGET_MS,
        "meets_calculate_target": calc_p99 < CALC_P99_TARGET_MS and legit_refused == 0,
        "runs": reps,
    }


def table(results: dict[str, Any]) -> str:
    """A plain-text summary."""
    lines = [f"{'phase':<6} {'endpoint':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    for phase, by_endpoint in results["summary"].items():
        for endpoint, cell in by_endpoint.items():
            lines.append(
                f"{phase:<6} {endpoint:<10} {cell['p50_ms']:>8} {cell['p99_ms']:>8} "
                f"{cell['max_ms']:>8}"
            )
    lines.append(f"abusers: {results['abuser_requests_per_second']} req/s, statuses "
                 f"{results['abuser_statuses_total']}")  # fmt: skip
    lines.append(f"legitimate calculations refused: {results['legitimate_calculations_refused']}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--hammer"]:
        secrets = json.loads(sys.stdin.readline())
        import uvloop  # the load generator's own CPU is the bottleneck: the faster loop

        hammered = uvloop.run(_hammer(int(sys.argv[2]), secrets, float(sys.argv[3])))
        print(json.dumps(hammered))
    else:
        measured = run(quick="--quick" in sys.argv)
        print(table(measured))
        if "--json" in sys.argv:
            print(json.dumps({k: v for k, v in measured.items() if k != "runs"}, indent=2))
