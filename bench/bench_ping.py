"""Pings per second and CPU per ping for both backends at concurrency 1, 16 and 256.

Run: `.venv/bin/python -m bench.bench_ping`. Every echo goes to 127.0.0.1 (count=1). Each cell
is bounded in time and in pings. The datagram backend needs `net.ipv4.ping_group_range` to
include our group: as root the benchmark opens it for its run and restores the old value.
Target of issue 4: in-process >= 10x the pings/s of the subprocess backend at concurrency 16.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bench.results import show
from pingcalc.ping import DatagramBackend, Echoes, PingBackend, SubprocessBackend
from pingcalc.ping.selection import find_ping, probe_datagram

TARGET = IPv4Address("127.0.0.1")
ONE_ECHO = Echoes(count=1, timeout=1.0, interval=0.2, deadline=2.0)
CONCURRENCY = (1, 16, 256)
# Bounds per cell: the whole benchmark stays under a minute and a few thousand processes.
MAX_SECONDS = 3.0
MAX_PINGS = {"datagram": 50_000, "subprocess": 2_000}
PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")


@contextmanager
def datagram_icmp_allowed() -> Iterator[bool]:
    """Open ping_group_range for every group (root only), restore it afterwards."""
    if probe_datagram() is None:
        yield True
        return
    old = PING_GROUP_RANGE.read_text().split()
    try:
        PING_GROUP_RANGE.write_text("0 2147483647")
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        PING_GROUP_RANGE.write_text(" ".join(old))


def _rss_mib(who: int) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def _cell(backend: PingBackend, concurrency: int, max_pings: int) -> dict[str, Any]:
    issued = answered = 0
    stop_at = time.perf_counter() + MAX_SECONDS

    async def worker() -> None:
        nonlocal issued, answered
        while issued < max_pings and time.perf_counter() < stop_at:
            issued += 1
            result = await backend.ping(TARGET, ONE_ECHO)
            answered += result.received

    cpu_before, started = _cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    return {
        "backend": backend.name,
        "concurrency": concurrency,
        "pings": issued,
        "answered": answered,
        "seconds": round(elapsed, 3),
        "pings_per_second": round(issued / elapsed, 1),
        "cpu_ms_per_ping": round(1000 * cpu / max(issued, 1), 4),
    }


def run() -> dict[str, Any]:
    """Measure every (backend, concurrency) cell; return the cells and the ratios."""
    ping_path = find_ping()
    cells: list[dict[str, Any]] = []
    with datagram_icmp_allowed() as allowed:
        backends: list[PingBackend] = []
        if allowed:
            backends.append(DatagramBackend())
        if ping_path:
            backends.append(SubprocessBackend(ping_path))
        for backend in backends:
            for concurrency in CONCURRENCY:
                cell = asyncio.run(_cell(backend, concurrency, MAX_PINGS[backend.name]))
                if concurrency == max(CONCURRENCY):
                    # ru_maxrss is a high-water mark in KiB. For subprocess, also the largest
                    # child (it includes the forked copy of this process before exec).
                    cell["peak_rss_mib"] = _rss_mib(resource.RUSAGE_SELF)
                    if backend.name == "subprocess":
                        cell["largest_child_rss_mib"] = _rss_mib(resource.RUSAGE_CHILDREN)
                cells.append(cell)
    by_key = {(c["backend"], c["concurrency"]): c for c in cells}
    ratios = {
        str(n): round(
            by_key[("datagram", n)]["pings_per_second"]
            / by_key[("subprocess", n)]["pings_per_second"],
            1,
        )
        for n in CONCURRENCY
        if ("datagram", n) in by_key and ("subprocess", n) in by_key
    }
    return {
        "benchmark": "ping",
        "target": str(TARGET),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "cells": cells,
        "ratio_datagram_over_subprocess": ratios,
        "meets_10x_at_16": ratios.get("16", 0) >= 10,
    }


def _table(results: dict[str, Any]) -> str:
    header = ("backend", "conc", "pings", "pings/s", "CPU ms/ping", "loss", "peak RSS")
    lines = ["{:<11} {:>4} {:>6} {:>9} {:>11} {:>5} {:>9}".format(*header)]
    for c in results["cells"]:
        loss = 100 * (c["pings"] - c["answered"]) / max(c["pings"], 1)
        rss = f"{c['peak_rss_mib']} MiB" if "peak_rss_mib" in c else ""
        lines.append(
            f"{c['backend']:<11} {c['concurrency']:>4} {c['pings']:>6} {c['pings_per_second']:>9} "
            f"{c['cpu_ms_per_ping']:>11} {loss:>4.0f}% {rss:>9}"
        )
    for n, ratio in results["ratio_datagram_over_subprocess"].items():
        lines.append(f"in-process / subprocess at concurrency {n}: {ratio}x")
    return "\n".join(lines)


if __name__ == "__main__":
    show(run(), _table)
