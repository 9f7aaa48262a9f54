"""Profile the live `pingcalc serve` under the HTTP benchmark's load with py-spy.

Starts `pingcalc serve` with bench/bench_http.py's settings for one variant (default: every
control on), pinned to the server core; puts the benchmark's wrk load on one endpoint from
the other core; meanwhile samples the server with
`py-spy record -r 500 -d 7 -f raw --nonblocking --pid PID` (py-spy on the load core too).
Prints the functions with the most samples, self (the frame on top of the stack) and
inclusive (anywhere in it), as shares of all samples; a nonblocking read sometimes gets a
partial stack, so even the outermost frames stay under 100 %. py-spy leaves out samples where
the thread waits (epoll), so the shares are of the time the server is busy. Python frames
only: C code (httptools' parser, uvloop, the kernel's socket work) shows as the Python frame
that called it.

Run: `.venv/bin/python -m bench.profile_http calculate [--variant NAME] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.bench_http import CALCULATE, EXPRESSION, VARIANTS, lua_script, wrk_argv
from bench.servers import cores, pinned, start_pingcalc
from pingcalc.testing import Tokens

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
RATE = 500
SECONDS = 7
TOP = 25
# py-spy's default stops the server for each sample; a stop takes effect when the thread next
# returns to user space, most often at the end of a system call, so frames that make system
# calls (socket and file writes, `stat`) collect more than their share of samples.
# --nonblocking reads the stacks without stopping it: samples are spread evenly in time.
NONBLOCKING = ("--nonblocking",)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


def short(frame: str) -> str:
    """`function (dir/file.py)`: the line number dropped, the path cut to two parts."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    parts = Path(match["file"]).parts[-2:]
    return f"{match['function']} ({'/'.join(parts)})"


def summarise(raw: str) -> tuple[int, Counter[str], Counter[str]]:
    """(total samples, self samples by function, inclusive samples by function)."""
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, own, inclusive


def profile(endpoint: str, variant: str, out: Path) -> str:
    """Record one profile into `out`; return the printed summary."""
    server_core, load_core = cores()
    with tempfile.TemporaryDirectory(prefix="pingcalc-profile-") as tmp:
        workdir = Path(tmp)
        tokens = Tokens(workdir / "tokens.json")
        tokens.add("bench", "calculate")
        script = None
        if endpoint == "calculate":
            script = lua_script(
                workdir / "pingcalc.lua",
                {"Content-Type": "application/json", **tokens.header("bench")},
                f'{{"expression": "{EXPRESSION}"}}',
            )
        server = start_pingcalc(variant, tokens, workdir, server_core, VARIANTS[variant])
        try:
            load = subprocess.Popen(
                wrk_argv(server.url, endpoint, script, SECONDS + 2, load_core),
                stdout=subprocess.DEVNULL,
            )
            try:
                subprocess.run(
                    pinned([PY_SPY, "record", "-r", str(RATE), "-d", str(SECONDS), "-f", "raw",
                            *NONBLOCKING, "-o", str(out), "--pid", str(server.process.pid)],
                           load_core),
                    capture_output=True, timeout=SECONDS + 30, check=True,
                )  # fmt: skip
            finally:
                load.wait(SECONDS + 30)
        finally:
            server.stop()
    total, own, inclusive = summarise(out.read_text())
    lines = [f"{variant}, {endpoint if endpoint != 'calculate' else CALCULATE}: {total} samples"]
    for title, counts in (("self", own), ("inclusive", inclusive)):
        lines.append(f"-- {title}")
        lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in counts.most_common(TOP)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_http", description=__doc__)
    parser.add_argument("endpoint", choices=("calculate", "healthz"))
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="pingcalc")
    parser.add_argument("--out", type=Path, default=Path("profile.txt"))
    args = parser.parse_args()
    print(profile(args.endpoint, args.variant, args.out))
    print(f"(raw stacks in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
