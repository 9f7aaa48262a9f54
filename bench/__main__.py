"""`make bench`: run every section, write bench/results.json and docs/benchmarks.md.

    python -m bench                     # everything (about fifteen minutes on 2 cores)
    python -m bench --quick             # a short smoke run of everything
    python -m bench --only http,container   # some sections; the others' results are kept
    python -m bench --render            # re-render docs/benchmarks.md from bench/results.json

Each section (and, for the evaluator and ping, each repetition) runs in a child process with
a timeout, so one section's memory or failure cannot skew or stop another. Each section's
results carry when they were measured and the load average around them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results.json"
DOC = REPO / "docs" / "benchmarks.md"
# section -> (child timeout in seconds, repetitions run as separate processes).
SECTIONS: dict[str, tuple[float, int]] = {
    "evaluator": (60, 3),
    "http": (900, 1),  # rounds inside, interleaving servers
    "ping": (90, 3),
    "container": (1200, 1),  # builds the bare-app image, then rounds inside
    "abuse": (180, 1),  # repeats inside, each on a fresh server
}
# What `pingcalc serve` runs on (the image's runtime dependencies)...
PACKAGES = (
    "uvicorn", "uvloop", "httptools", "pydantic", "pydantic-core", "pydantic-settings",
    "structlog", "prometheus-client", "redis",
)  # fmt: skip
# ...and the baselines it is measured against (not in the image).
BASELINE_PACKAGES = ("fastapi", "starlette", "simpleeval", "asteval")


def run_section(name: str, quick: bool) -> dict[str, Any]:
    """Run one repetition of one section in this process (the child side)."""
    if name == "evaluator":
        from bench import bench_calc

        if quick:
            bench_calc.ROUNDS = 2
            bench_calc.WORST_CASE_SECONDS = 0.5
        return bench_calc.run()
    if name == "ping":
        from bench import bench_ping

        if quick:
            bench_ping.MAX_SECONDS = 0.3
        return bench_ping.run()
    runners: dict[str, Callable[[bool], dict[str, Any]]] = {}
    if name == "http":
        from bench import bench_http

        runners[name] = bench_http.run
    elif name == "container":
        from bench import bench_container

        runners[name] = bench_container.run
    elif name == "abuse":
        from bench import bench_abuse

        runners[name] = bench_abuse.run
    return runners[name](quick)


def _child(name: str, quick: bool, timeout: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench", "--child", name] + (["--quick"] if quick else [])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["exit " + str(done.returncode)])[-1]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def merge_median(values: list[Any]) -> Any:
    """Merge repetitions of one result: the median of every number, the same shape otherwise."""
    first = values[0]
    if isinstance(first, bool):
        return sum(bool(v) for v in values) * 2 > len(values)
    if isinstance(first, int | float):
        median = statistics.median(float(v) for v in values)
        return round(median) if isinstance(first, int) else round(median, 4)
    if isinstance(first, dict):
        return {key: merge_median([v[key] for v in values if key in v]) for key in first}
    if isinstance(first, list) and all(len(v) == len(first) for v in values):
        return [merge_median([v[i] for v in values]) for i in range(len(first))]
    return first


def _rederive(name: str, merged: dict[str, Any]) -> dict[str, Any]:
    """Verdicts follow the merged medians, not a vote over repetitions."""
    if name == "evaluator" and "fresh_over_simpleeval" in merged:
        merged["meets_fresh_target"] = merged["fresh_over_simpleeval"] >= 1.5
        merged["meets_repeated_target"] = merged["repeated_over_eval_precompiled"] >= 1.0
        worst = merged["worst_case"]
        worst["meets_worst_case_target"] = worst["worst_ms"] < 2.0
    if name == "ping" and "ratio_datagram_over_subprocess" in merged:
        merged["meets_10x_at_16"] = merged["ratio_datagram_over_subprocess"].get("16", 0) >= 10
    return merged


def measure_section(name: str, quick: bool) -> dict[str, Any]:
    """All repetitions of one section, merged."""
    timeout, repetitions = SECTIONS[name]
    runs = [_child(name, quick, timeout) for _ in range(1 if quick else repetitions)]
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    if len(runs) == 1:
        return good[0]
    merged = _rederive(name, merge_median(good))
    merged["repetitions"] = len(good)
    merged["runs"] = good
    return merged


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        wrk = (
            subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5, check=False)
            .stdout.split(" [")[0]
            .strip()
        )
    except OSError:
        wrk = "not installed"
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk or "not installed",
        "packages": _versions(PACKAGES),
        "baseline_packages": _versions(BASELINE_PACKAGES),
    }


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--doc", type=Path, default=DOC, help="where to write the Markdown")
    parser.add_argument(
        "--render", action="store_true", help="only re-render the Markdown from the JSON"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_section(args.child, args.quick)))
        return 0
    from bench.report import render, targets
    from bench.results import kept_sections

    if args.render:
        args.doc.write_text(render(json.loads(args.results.read_text())))
        print(f"wrote {args.doc}")
        return 0

    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(names) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "sections": {},
    }
    kept = kept_sections(args.results, names, SECTIONS) if args.only and not args.quick else {}
    for name in names:
        section_started = time.monotonic()
        section_load = os.getloadavg()[0]
        measured_at = datetime.now(UTC).isoformat(timespec="seconds")
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        section = measure_section(name, args.quick)
        section["section_seconds"] = round(time.monotonic() - section_started)
        section["measured_at"] = measured_at
        section["loadavg"] = f"{section_load:.2f} / {os.getloadavg()[0]:.2f}"
        results["sections"][name] = section
    # Sections not measured now keep their earlier results, in the usual order.
    results["sections"] = {
        name: results["sections"].get(name) or kept[name]
        for name in SECTIONS
        if name in results["sections"] or name in kept
    }
    load_after = os.getloadavg()
    results["machine"]["loadavg"] = f"{load_before[0]:.2f} / {load_after[0]:.2f}"
    results["wall_seconds"] = round(time.monotonic() - started)
    results["targets"] = [
        # met: None for a target that is a measurement with no threshold.
        {"target": target, "measured": measured,
         "met": None if verdict == "measured" else verdict == "met"}
        for _key, target, measured, verdict in targets(results)
    ]  # fmt: skip
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(render(results))
    for row in results["targets"]:
        verdict = {True: "met   ", False: "MISSED", None: "info  "}[row["met"]]
        print(f"{verdict} {row['target']}: {row['measured']}")
    print(f"wrote {args.results} and {args.doc} in {results['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
