"""Render `bench/results.json` as `docs/benchmarks.md`: machine, method, targets, sections."""

from __future__ import annotations

from typing import Any

# What a missed target means and what was done about it, shown under the targets table.
# Written after profiling (bench/profile_http.py on the live server); update it when the
# code changes.
MISSED_NOTES: dict[str, str] = {
    "http_calculate_cpu": (
        "see the attribution table in section 2 and the profile below for where pingcalc's "
        "CPU per calculation goes."
    ),
    "http_healthz_cpu": (
        "on /healthz pingcalc's own work is the edge, the response and the access line; see "
        "the attribution table in section 2."
    ),
    "http_calculate_p99": (
        "p99 on this shared 2-core machine follows other processes' bursts more than the "
        "server: compare the spread of the per-round ratios and the load per round."
    ),
    "http_healthz_p99": (
        "p99 on this shared 2-core machine follows other processes' bursts more than the "
        "server: compare the spread of the per-round ratios and the load per round."
    ),
    "image_size": "the runtime image grew past the budget: see `make image` and "
    "deploy/docker/assemble_rootfs.py for what it holds.",
    "evaluator_fresh": "pingcalc's lexer, parser and bound checks run on every fresh expression.",
    "evaluator_repeated": "a repeat is one call of the result cache (functools.lru_cache).",
    "evaluator_worst_case": "the slowest hostile expression exceeded the engine-time budget.",
    "ping": "the in-process backend did not reach 10x the subprocess backend here.",
    "abuse_healthz": (
        "the tail under abuse: until each address crosses its per-IP limit, and for every "
        "per-token or capacity refusal, a flooding request still takes the full path, and "
        "those bursts queue ahead of the probe."
    ),
    "abuse_calculate": (
        "the same bursts: the calculation's median equals its idle value, its p99 (a handful "
        "of samples at 8 per second) is the burst it landed in."
    ),
}

# What profiling found (bench/profile_http.py: py-spy on the live server under the wrk load
# of section 2). Written by hand after a run; update it when the code changes.
PROFILE_NOTES = """\
Profiled on the request path this benchmark measures (pure-ASGI edge, gatekeeper, GCRA limits,
guarded httptools protocol with a one-write response) with `python -m bench.profile_http
calculate` (py-spy 0.4, `--nonblocking`, on the live `pingcalc serve` under section 2's wrk
load), cProfile over the in-process application, and section 2's attribution table. The
figures quoted below are from section 2's run of 2026-12-06 10:21 UTC (load average under 2.3);
re-read them from the tables above after a new run.

Where a calculation's ~117 µs of server CPU go:

- About 62 µs (a little over half) is outside pingcalc's code: uvicorn's httptools protocol
  (with pingcalc's guarded subclass), the uvloop event loop, the socket read and the one-write
  response (`GuardedCycle.send` is mostly the `write` system call). The bare FastAPI app pays
  about as much there (~69 µs: its ~148 µs on the server less its ~79 µs in-process, with
  uvicorn's own two-write response): this is the largest item, and it belongs to the server
  stack, not to any control.
- About 55 µs is the application. The two flushed JSON lines are its largest parts: the audit
  record (`Auditor.emit`, ~11 µs in-process) and the access line (~11 µs in-process; ~15 µs on
  the server by the settings difference, and ~30 µs on /healthz, where the line's `write`
  system call is a larger share of a short request). Both stay one flushed line per request by
  rule: a crash must not lose them. The two GCRA limiter checks cost ~2 µs (the settings
  difference, near its noise), the gate as a whole ~3.5 µs, the body parse 0.7 µs, a repeated
  expression 0.1 µs.

Changed after an earlier profile of the same path:

1. Secret scrubbing: one search over all of a record's plain string values decides whether any
   field needs scrubbing (`logs.redact_secrets`), instead of a Python call and a regular
   expression per field; about 4 µs less per audit record and per access line.
2. Start time: `redis` is imported only when a `redis://` storage is configured (it was the
   largest package of the start, ~40-85 ms in the container).
3. Profiling method: py-spy's default mode stops the server for each sample, and the stops land
   at the ends of system calls: it put 8 % of samples in the tokens file's per-request
   `os.stat` (0.9 µs in-process) and 27 % in `Auditor.emit` (10 % with `--nonblocking`, in line
   with its in-process cost). bench/profile_http.py uses `--nonblocking`.
"""

ENDPOINT_PATHS = {"calculate": "/api/v1/calculate", "healthz": "/healthz"}
HTTP_NAMES = {
    "bare": "bare FastAPI",
    "starlette": "bare Starlette",
    "pingcalc": "pingcalc, every control on",
    "pingcalc_no_access_log": "pingcalc, access log off",
    "pingcalc_no_rate_limit": "pingcalc, rate limiting off",
}
CONTAINER_NAMES = {
    "pingcalc": "pingcalc image",
    "bare": "bare-app image (FastAPI)",
    "floor": "Docker's floor: the image's Python doing nothing",
    "pingcalc_host": "pingcalc serve on the host (no Docker)",
    "bare_host": "bare app on the host (no Docker)",
}


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(key, target, measured, verdict) for every target the sections measured; verdicts
    follow the figures ("met", "**missed**"), or "measured" where the target is a
    measurement with no threshold."""
    rows: list[tuple[str, str, str, str]] = []
    sections = results.get("sections", {})
    calc = sections.get("evaluator")
    if calc and "evaluations_per_second" in calc:
        rows.append(
            (
                "evaluator_fresh",
                "server evaluator, fresh expressions >= 1.5x simpleeval",
                f"{calc['fresh_over_simpleeval']}x simpleeval",
                _verdict(calc["fresh_over_simpleeval"] >= 1.5),
            )
        )
        rows.append(
            (
                "evaluator_repeated",
                "server evaluator, repeated expressions >= 1.0x eval(precompiled code)",
                f"{calc['repeated_over_eval_precompiled']}x eval(precompiled code)",
                _verdict(calc["repeated_over_eval_precompiled"] >= 1.0),
            )
        )
        worst = calc["worst_case"]
        rows.append(
            (
                "evaluator_worst_case",
                "every expression up to the length limit < 2 ms of engine time",
                f"{worst['worst_ms']} ms worst of {worst['expressions']} ({worst['worst_family']})",
                _verdict(worst["worst_ms"] < 2.0),
            )
        )
    http = sections.get("http")
    if http and "cells" in http and "targets" in http:
        rows += _http_targets(http)
    ping = sections.get("ping")
    if ping and "ratio_datagram_over_subprocess" in ping:
        at16 = ping["ratio_datagram_over_subprocess"].get("16")
        rows.append(
            (
                "ping",
                "in-process ping >= 10x subprocess pings/s at concurrency 16",
                f"{at16}x" if at16 is not None else "not measured",
                _verdict(at16 is not None and at16 >= 10),
            )
        )
    container = sections.get("container")
    if container and "images" in container:
        rows += _container_targets(container)
    abuse = sections.get("abuse")
    if abuse and "summary" in abuse:
        under = abuse["summary"]["abuse"]
        rows.append(
            (
                "abuse_healthz",
                "under abuse, /healthz p99 < 50 ms",
                f"{under['healthz']['p99_ms']} ms",
                _verdict(abuse["meets_healthz_target"]),
            )
        )
        refused = abuse["legitimate_calculations_refused"]
        rows.append(
            (
                "abuse_calculate",
                "under abuse, legitimate calculation p99 < 100 ms",
                f"{under['calculate']['p99_ms']} ms"
                + (f", {refused} refused" if refused else ", none refused"),
                _verdict(abuse["meets_calculate_target"]),
            )
        )
    return rows


def _http_targets(http: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    rounds = http["what"]["rounds"]
    for endpoint, path in ENDPOINT_PATHS.items():
        ratio = http["ratio_vs_bare"]["pingcalc"][endpoint]
        cpu, p99 = ratio["cpu_efficiency"], ratio["p99"]
        cpu_target = http["targets"][f"{endpoint}_cpu"]["target"]
        p99_target = http["targets"][f"{endpoint}_p99"]["target"]
        cells = http["cells"]
        mine = cells["pingcalc"][endpoint]["p99_ms"]["median"]
        bare = cells["bare"][endpoint]["p99_ms"]["median"]
        rows.append(
            (
                f"http_{endpoint}_cpu",
                f"{path}, every control on: >= {cpu_target:.1f}x bare FastAPI in requests per "
                f"server CPU-second (median of {rounds} rounds)",
                f"{cpu['median']:.2f}x (rounds {cpu['min']:.2f}-{cpu['max']:.2f}x)",
                _verdict(cpu["median"] >= cpu_target),
            )
        )
        rows.append(
            (
                f"http_{endpoint}_p99",
                f"{path}, every control on: p99 <= {p99_target:.1f}x bare FastAPI's (median of "
                "the per-round ratios)",
                f"{p99['median']:.2f}x (rounds {p99['min']:.2f}-{p99['max']:.2f}x; medians "
                f"{mine:g} ms vs {bare:g} ms)",
                _verdict(p99["median"] <= p99_target),
            )
        )
    return rows


def _container_targets(container: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    images, cells = container["images"], container["cells"]
    size, bare = images["pingcalc"]["size_mb"], images["bare"]["size_mb"]
    target = container["targets"]["image_size"]["target_mb"]
    start = cells["pingcalc"]["start_to_healthy_s"]["median"]
    bare_start = cells["bare"]["start_to_healthy_s"]["median"]
    floor = cells["floor"]["start_to_exit_s"]["median"]
    ratio = container["ratios"]["start_pingcalc_over_bare"]["median"]
    return [
        (
            "image_size",
            f"runtime image <= {target:g} MB",
            f"{size} MB (bare-app image {bare} MB, {container['size_ratio_pingcalc_over_bare']}x)",
            _verdict(size <= target),
        ),
        (
            "container_start",
            "docker run -> first 200 from /healthz, against a bare-app image on the same engine",
            f"{start} s vs {bare_start} s ({ratio}x); Docker's own floor {floor} s",
            "measured",
        ),
    ]


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _range(cell: dict[str, float], digits: int = 0, unit: str = "") -> str:
    """`median (min-max)` of a spread."""
    f = f"{{:,.{digits}f}}"
    low, high = f.format(cell["min"]), f.format(cell["max"])
    return f"{f.format(cell['median'])}{unit} ({low}-{high})"


def _machine(results: dict[str, Any]) -> list[str]:
    machine = results.get("machine", {})
    rows = [
        ("CPU", machine.get("cpu_model", "?")),
        ("cores", machine.get("cores", "?")),
        ("kernel", machine.get("kernel", "?")),
        ("Python", machine.get("python", "?")),
        ("wrk", machine.get("wrk", "not installed")),
        ("load average before / after", machine.get("loadavg", "?")),
        ("date (UTC)", results.get("generated_at", "?")),
        ("mode", "quick smoke run" if results.get("quick") else "full run"),
        ("wall time", f"{results.get('wall_seconds', '?')} s"),
    ]
    lines = _table(("", ""), rows)
    for key, title in (("packages", "Server packages"), ("baseline_packages", "Baselines")):
        versions = ", ".join(f"{k} {v}" for k, v in machine.get(key, {}).items())
        if versions:
            lines += [f"{title}: {versions}.", ""]
    return lines


def _evaluator(calc: dict[str, Any]) -> list[str]:
    rows = [
        (name, f"{rate:,}", f"{calc['ratio_to_simpleeval'][name]}x")
        for name, rate in calc["evaluations_per_second"].items()
    ]
    worst = calc["worst_case"]
    families = [(name, ms) for name, ms in worst["worst_ms_by_family"].items()]
    return [
        f"{calc['expressions']} realistic expressions, the same functions and constants in "
        "every engine, results cross-checked first. The pingcalc rows are the `Evaluator` "
        "built by `pingcalc.services.build_evaluator`, the code path of `POST "
        '/api/v1/calculate`. "fresh" strings were never seen by that evaluator (a new one '
        "per round, every string distinct), so each is lexed, parsed and interpreted; "
        '"repeated" strings are answered from its result cache. `eval(compile())` compiles '
        "every time, as a server would for user input; `eval(precompiled code)` is the "
        "unsafe upper bound for repeats. Engines are interleaved round by round; the best "
        "round counts.",
        "",
        *_table(("engine", "evaluations/s", "vs simpleeval"), rows),
        f"Worst case: {worst['expressions']} hostile expressions of up to "
        f"{worst['max_length']} characters (many errors, deep nesting, many calls, unbalanced "
        "brackets, operator runs, random soup), each timed on a new server evaluator: worst "
        f"{worst['worst_ms']} ms, median {worst['median_ms']} ms. Worst per family (ms):",
        "",
        *_table(("family", "worst ms"), families),
    ]


def _http(http: dict[str, Any]) -> list[str]:
    if "cells" not in http:
        return ["Results in an older format: re-run `python -m bench --only http`.", ""]
    what = http["what"]
    settings = ", ".join(f"`{k}={v}`" for k, v in what["pingcalc_settings"].items())
    variants = "; ".join(
        f"`{name}`: " + ", ".join(f"`{k}={v}`" for k, v in changed.items()
                                   if what["pingcalc_settings"].get(k) != v)
        for name, changed in what["variants"].items()
    )  # fmt: skip
    servers = [f"- `{name}`: {text}" for name, text in what["servers"].items()]
    return [
        "What is measured: "
        f"{what['rounds']} interleaved rounds; each round runs every (server, endpoint) pair "
        "below back to back, starting one pair further on each round, so the per-round ratios "
        "compare runs that saw the same background load. Each server is one uvicorn worker "
        f"(httptools, uvloop) pinned to core {what['server_core']}; the load is "
        f"`{what['load_generator']}` pinned to core {what['load_core']}. Calculate: "
        f"`{what['requests']['calculate']}` (pingcalc's requests carry a bearer token with "
        "the `calculate` scope); healthz: `GET /healthz`; every answer was a 2xx. pingcalc "
        f"runs with every control on: {settings} (every request runs every limiter check, "
        "none is refused), bearer authentication, audit records on stdout, the access log, "
        "security headers, request ids and metrics; stdout is a file, for every server. "
        f"Variants, changed only through settings: {variants}. Server CPU per request: "
        f"{what['cpu_measure']}; requests per server CPU-second is its inverse, and steadier "
        "than requests/s when other processes share the cores. Each cell is the median over "
        "the rounds with (min-max).",
        "",
        *servers,
        "",
        *_table(
            (
                "server",
                "endpoint",
                "requests/s",
                "p50 ms",
                "p99 ms",
                "server CPU µs/request",
                "requests per server CPU-second",
            ),
            [
                (
                    HTTP_NAMES.get(name, name),
                    ENDPOINT_PATHS[endpoint],
                    _range(cell["requests_per_second"]),
                    _range(cell["p50_ms"], 2),
                    _range(cell["p99_ms"], 2),
                    _range(cell["server_cpu_us_per_request"]),
                    _range(cell["requests_per_cpu_second"]),
                )
                for name, by_endpoint in http["cells"].items()
                for endpoint, cell in by_endpoint.items()
            ],
        ),
        "Against bare FastAPI, each ratio taken within a round, then the median (min-max) over "
        "the rounds; above 1 is better for requests, below 1 is better for p99:",
        "",
        *_table(
            ("server", "endpoint", "requests per server CPU-second", "requests/s", "p99"),
            [
                (
                    HTTP_NAMES.get(name, name),
                    ENDPOINT_PATHS[endpoint],
                    _range(ratio["cpu_efficiency"], 2, "x"),
                    _range(ratio["rps"], 2, "x"),
                    _range(ratio["p99"], 2, "x"),
                )
                for name, by_endpoint in http["ratio_vs_bare"].items()
                for endpoint, ratio in by_endpoint.items()
            ],
        ),
        *_p99_caveat(http),
        *_attribution(http),
        "Load average (1 min) at the start of each round: "
        + ", ".join(f"{x:.2f}" for x in http.get("loadavg_per_round", []))
        + ".",
        "",
    ]


# A per-round p99 ratio spread wider than this (max over min) says the tail measured other
# processes' bursts more than the servers.
P99_SPREAD_WARNING = 3.0


def _p99_caveat(http: dict[str, Any]) -> list[str]:
    """A warning when the p99 ratios of pingcalc against bare FastAPI are mostly noise."""
    wide = [
        f"{ENDPOINT_PATHS[endpoint]} {_range(ratio['p99'], 2, 'x')}"
        for endpoint, ratio in http["ratio_vs_bare"].get("pingcalc", {}).items()
        if ratio["p99"]["max"] > P99_SPREAD_WARNING * ratio["p99"]["min"]
    ]
    if not wide:
        return []
    return [
        f"The per-round p99 ratios of pingcalc over bare FastAPI spread over more than "
        f"{P99_SPREAD_WARNING:g}x ({'; '.join(wide)}): at this load the tail mostly measures "
        "other processes' bursts, so the p99 verdicts are weak evidence; requests per server "
        "CPU-second is the robust comparison.",
        "",
    ]


_HOW = {
    "server": "wrk, /proc",
    "server difference": "difference of wrk runs",
    "in-process": "in-process",
    "remainder": "difference",
}


def _attribution(http: dict[str, Any]) -> list[str]:
    """What each layer costs per request, as µs and as a share of pingcalc's server CPU."""
    table = http.get("attribution")
    if not table:
        return []
    runs = len(http.get("layer_runs", [])) or "?"
    lines = [
        'What each layer costs on the path the server runs, in this run. "wrk, /proc": '
        'server CPU per request from the runs above. "difference of wrk runs": every '
        "control on minus a variant, taken within each round, then the median. "
        '"in-process": bench/layers.py, run between the rounds in a child pinned to the '
        "server core with pingcalc's settings, timing the server's own objects (process CPU "
        f"per call, median of {runs} runs); a loop keeps a function's code and data in the "
        'caches, so read these as lower bounds inside a whole request. "difference": a '
        "remainder, not a measurement of its own. Indented rows are parts of the row above.",
        "",
    ]
    for endpoint, rows in table.items():
        lines.append(f"{ENDPOINT_PATHS[endpoint]}:")
        lines.append("")
        lines += _table(
            ("layer", "how", "µs per request", "share of pingcalc's server CPU"),
            [
                (
                    ("&nbsp;&nbsp;&nbsp;&nbsp;" + row["layer"].strip())
                    if row["layer"].startswith("  ")
                    else row["layer"],
                    _HOW.get(row["kind"], row["kind"]),
                    f"{row['us']:.1f}",
                    f"{row['share_percent']:.1f} %",
                )
                for row in rows
            ],
        )
    return lines


def _ping(ping: dict[str, Any]) -> list[str]:
    rows = []
    for cell in ping["cells"]:
        loss = 100 * (cell["pings"] - cell["answered"]) / max(cell["pings"], 1)
        rss = cell.get("peak_rss_mib", "")
        rows.append(
            (
                cell["backend"],
                cell["concurrency"],
                f"{cell['pings_per_second']:,.0f}",
                cell["cpu_ms_per_ping"],
                f"{loss:.0f} %",
                f"{rss} MiB" if rss != "" else "",
            )
        )
    ratios = ", ".join(
        f"{n}: {r}x" for n, r in ping.get("ratio_datagram_over_subprocess", {}).items()
    )
    return [
        "Every echo to 127.0.0.1, count 1, each cell bounded in time and pings. `datagram` is "
        "the in-process backend (an unprivileged ICMP datagram socket); `subprocess` runs "
        "`ping` once per request. Peak RSS is the benchmark process's high-water mark.",
        "",
        *_table(("backend", "concurrency", "pings/s", "CPU ms/ping", "loss", "peak RSS"), rows),
        f"In-process over subprocess pings/s by concurrency: {ratios}.",
        "",
    ]


def _container(container: dict[str, Any]) -> list[str]:
    if "skipped" in container:
        return [f"Skipped: {container['skipped']}.", ""]
    if "images" not in container:
        return ["Results in an older format: re-run `python -m bench --only container`.", ""]
    what, cells, images = container["what"], container["cells"], container["images"]
    ratios = container["ratios"]
    rows = []
    for kind, name in CONTAINER_NAMES.items():
        cell = cells.get(kind)
        if cell is None:
            continue
        start = cell.get("start_to_healthy_s") or cell.get("start_to_exit_s")
        returned = cell.get("run_returned_s")
        rss = cell.get("idle_rss_mib")
        rows.append(
            (
                name,
                _range(start, 3, " s") if start else "",
                _range(returned, 3, " s") if returned else "",
                _range(rss, 1, " MiB") if rss else "",
            )
        )
    host = cells["pingcalc_host"]["start_to_healthy_s"]["median"]
    floor = cells["floor"]["start_to_exit_s"]["median"]
    pingcalc = cells["pingcalc"]["start_to_healthy_s"]["median"]
    return [
        f"What is measured: on Docker Engine {container['engine']}, {what['rounds']} "
        "interleaved rounds, each starting every kind below once (one kind further on each "
        "round). Every container runs with the same flags: "
        f"`{what['run_flags']}`. A start is timed from just before `docker run -d` until "
        f"/healthz first answers 200 (polled every {what['poll_seconds'] * 1000:g} ms); "
        '"`docker run -d` returned" is when the client came back with the container '
        f"started. The bare-app image: {what['bare_image']} (built in "
        f"{what['bare_build_seconds']} s; BuildKit caches it). The floor: {what['floor']}. "
        "Host starts run the same server from the host's virtual environment. Sizes in MB "
        "of 10^6 bytes, as `docker image inspect` counts them; RSS after 1 s idle.",
        "",
        *_table(
            ("image", "tag", "id", "size"),
            [
                (name, f"`{image['tag']}`", f"`{image['id']}`", f"{image['size_mb']} MB")
                for name, image in (("pingcalc", images["pingcalc"]), ("bare app", images["bare"]))
            ],
        ),
        f"pingcalc over the bare-app image: {container['size_ratio_pingcalc_over_bare']}x in size.",
        "",
        *_table(
            ("start", "docker run -> first 200 (or exit)", "`docker run -d` returned", "idle RSS"),
            rows,
        ),
        "Per round: pingcalc over the bare-app image "
        f"{_range(ratios['start_pingcalc_over_bare'], 2, 'x')}; above Docker's floor, "
        f"pingcalc {_range(ratios['start_pingcalc_minus_floor_s'], 3, ' s')}, the bare app "
        f"{_range(ratios['start_bare_minus_floor_s'], 3, ' s')}.",
        "",
        f"What bounds the start: Docker's own cost (creating and starting a container with "
        f"these flags and a published port, and running its Python to exit) is {floor} s of "
        f"pingcalc's {pingcalc} s; the rest is the server process starting (imports, "
        f"settings, services, the first request; {host} s on the host).",
        "",
    ]


def _abuse(abuse: dict[str, Any]) -> list[str]:
    rows = []
    for phase, by_endpoint in abuse["summary"].items():
        for endpoint, cell in by_endpoint.items():
            rows.append((phase, endpoint, cell["p50_ms"], cell["p99_ms"], cell["max_ms"]))
    statuses = ", ".join(f"{k}: {v:,}" for k, v in abuse["abuser_statuses_total"].items())
    ratio = abuse["ratio_abuse_over_idle_p99"]
    return [
        f"{abuse['attackers']} keep-alive clients POST `/api/v1/ping` from ten loopback "
        f"addresses with four tokens for {abuse['abuse_seconds']} s per repetition, against "
        f"a fresh server with the default limits (ping backend: {abuse['ping_backend']}). "
        "Measuring starts 1 s after the abusers launch. A separate probe sends /healthz every "
        "20 ms and a calculation with its own token every 125 ms on kept-alive connections; "
        "the baseline is the same probe against the same server idle. "
        "Medians over repetitions.",
        "",
        *_table(("phase", "endpoint", "p50 ms", "p99 ms", "max ms"), rows),
        f"p99 under abuse over idle: /healthz {ratio['healthz']}x, calculate "
        f"{ratio['calculate']}x. Abusers got {abuse['abuser_requests_per_second']:,} "
        f"answers/s; by status: {statuses}. Legitimate calculations refused: "
        f"{abuse['legitimate_calculations_refused']}.",
        "",
        *_connect(abuse),
    ]


def _connect(abuse: dict[str, Any]) -> list[str]:
    connect = abuse.get("connect_ms")
    if not connect:
        return []
    return [
        "The probe opens its two connections once, on the idle server, and keeps them alive "
        "through both phases. Opening a connection and getting a first /healthz took "
        f"{connect['idle']} ms on the idle server; a fresh connection attempted under abuse "
        f"took {connect['abuse']} ms (median; bounded by the {abuse['abuse_seconds']} s phase, "
        "so a value near it means it never got in). The abusers' reconnections fill the "
        "kernel's accept queue, and a new client waits for SYN retries (1 s, 3 s, ...) before "
        "the server ever sees it.",
        "",
    ]


SECTIONS = (
    ("evaluator", "1. Evaluator", _evaluator),
    ("http", "2. HTTP: every control on against bare FastAPI and bare Starlette", _http),
    ("ping", "3. Ping backends", _ping),
    ("container", "4. Container: image size and start time", _container),
    ("abuse", "5. Under abuse", _abuse),
)


def render(results: dict[str, Any]) -> str:
    """The whole of docs/benchmarks.md."""
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`) from `bench/results.json`; do not edit "
        "by hand. Every figure is a ratio against a baseline measured in the same run.",
        "",
        "## Machine and versions",
        "",
        *_machine(results),
        "## Method",
        "",
        "- Loopback only; every load is bounded in count and in time.",
        "- Each section runs in its own process. The evaluator and ping sections are repeated "
        "in fresh processes and every figure is the median over repetitions; the HTTP, abuse "
        "and container sections interleave the measured server and its baselines inside each "
        "round and report medians with their spread, and ratios taken within each round.",
        "- Servers are one uvicorn worker (uvloop, httptools) pinned to one core with "
        "`taskset`; the load generator runs on the other core.",
        "- This is a 2-core machine shared with other work: absolute numbers are noisy. "
        "Ratios from interleaved runs, and server CPU per request, are the figures to trust.",
        "- `python -m bench --only SECTIONS` re-measures some sections and keeps the others' "
        "results; each section says when it was measured and under what load.",
        "",
        "## Targets",
        "",
    ]
    rows = targets(results)
    lines += _table(("target", "measured", "verdict"), [r[1:] for r in rows])
    missed = [key for key, *_rest, verdict in rows if verdict == "**missed**"]
    for key in missed:
        lines.append(f"- Missed, {key}: {MISSED_NOTES.get(key, '')}")
    if missed:
        lines.append("")
    for key, title, renderer in SECTIONS:
        section = results.get("sections", {}).get(key)
        if section is None:
            continue
        lines += [f"## {title}", ""]
        if "measured_at" in section:
            lines += [
                f"Measured {section['measured_at']} (load average before / after: "
                f"{section.get('loadavg', '?')}).",
                "",
            ]
        if "error" in section:
            lines += [f"Failed: `{section['error']}`.", ""]
            continue
        lines += renderer(section)
    lines += ["## Profile", "", PROFILE_NOTES]
    return "\n".join(lines).rstrip() + "\n"
