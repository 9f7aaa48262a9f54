"""The servers under test: the real `pingcalc serve` and the bare baseline app, each one
uvicorn worker on loopback, pinned to one core so the load generator can have the other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pingcalc.testing import Tokens, free_port

PINGCALC = str(Path(sys.executable).with_name("pingcalc"))
# A server that is not answering /healthz by then has failed to start.
START_TIMEOUT_S = 20.0
# Raised rate limits for throughput runs (issue 19's configuration): every request still runs
# every limiter check (a GCRA update per key), none is refused.
UNLIMITED_RATE = "100000000/minute"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cores() -> tuple[int, int]:
    """(server core, load-generator core): different ones when the machine has two."""
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[-1])


def pinned(argv: list[str], core: int) -> list[str]:
    """`argv` run under `taskset` on one core (plain argv if taskset is missing)."""
    return ["taskset", "-c", str(core), *argv] if Path("/usr/bin/taskset").exists() else argv


@dataclass
class Server:
    """A started server process; `cpu_seconds()` reads its user+system time from /proc."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat (utime, stime), counted after the ")" of the command name.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def wait_healthy(
    url: str, process: subprocess.Popen[bytes] | None, log_path: Path, poll: float = 0.02
) -> float:
    """Poll /healthz every `poll` seconds until it answers 200; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"server exited {process.returncode}: {log_path.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(poll)
    raise RuntimeError(f"{url} did not become healthy: {log_path.read_text()[-2000:]}")


def _start(name: str, argv: list[str], env: dict[str, str], workdir: Path, port: int) -> Server:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = Server(name, process, port, log_path)
    try:
        wait_healthy(server.url, process, log_path)
    except BaseException:
        server.stop()
        raise
    return server


def clean_env() -> dict[str, str]:
    """This environment without any PINGCALC_* setting a developer may have exported."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PINGCALC_")}


def start_pingcalc(
    name: str, tokens: Tokens, workdir: Path, core: int, settings: dict[str, str]
) -> Server:
    """The real `pingcalc serve` (one worker) with extra PINGCALC_* `settings`."""
    port = free_port()
    env = clean_env()
    env.update({"PINGCALC_TOKENS_FILE": str(tokens.path), "PINGCALC_PORT": str(port)})
    env.update(settings)
    return _start(name, pinned([PINGCALC, "serve"], core), env, workdir, port)


def start_bare(
    workdir: Path, core: int, module: str = "bench.bare_app", name: str = "bare"
) -> Server:
    """A bare baseline app (`module`: bench.bare_app or bench.bare_starlette_app), one worker."""
    port = free_port()
    repo = Path(__file__).resolve().parents[1]
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    argv = pinned([sys.executable, "-m", module, str(port)], core)
    return _start(name, argv, env, workdir, port)
