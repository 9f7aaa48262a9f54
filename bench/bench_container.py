"""The container: image size, seconds from `docker run` to the first 200 from /healthz, idle RSS.

The baseline, in the same run, is `pingcalc serve` started directly on the host: the ratios
say what the container adds to start time and memory. The container runs hardened as
compose.yaml runs it (read-only, no capabilities, no-new-privileges, uid 10001, published on
127.0.0.1 only). Skipped, with the reason recorded, when there is no Docker engine or no
image (`make image` builds it). A benchmark, not a test: nothing here fails a build.

Run: `.venv/bin/python -m bench.bench_container`.
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
import uuid
from pathlib import Path
from typing import Any

from bench.servers import Tokens, free_port, start_pingcalc, wait_healthy

DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "")
IMAGE = os.environ.get("PINGCALC_BENCH_IMAGE", "pingcalc:local")
APP_UID = 10001
REPETITIONS = 3
# Seconds an idle service settles before its RSS is read (start-up garbage collected).
SETTLE_SECONDS = 1.0


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def skipped_reason() -> str | None:
    """Why the section cannot run here, or None when it can."""
    if not DOCKER:
        return "no docker client"
    info = _docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    if info.returncode != 0:
        return "no docker engine"
    if _docker("image", "inspect", IMAGE).returncode != 0:
        return f"no image {IMAGE} (make image)"
    return None


def _container_once(tokens: Path) -> dict[str, float]:
    port = free_port()
    name = f"pingcalc-bench-{uuid.uuid4().hex[:10]}"
    argv = [
        "run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--user", f"{APP_UID}:{APP_UID}",
        "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=16m",  # noqa: S108 - in the container
        "--sysctl", f"net.ipv4.ping_group_range={APP_UID} {APP_UID}",
        "--memory", "256m", "--pids-limit", "128",
        "-p", f"127.0.0.1:{port}:8080",
        "-v", f"{tokens}:/run/secrets/pingcalc_tokens:ro",
        IMAGE,
    ]  # fmt: skip
    started = time.monotonic()
    try:
        created = _docker(*argv)
        if created.returncode != 0:
            raise RuntimeError(f"docker run failed: {created.stderr.strip()[:500]}")
        log = Path(tempfile.gettempdir()) / f"{name}.log"
        try:
            wait_healthy(f"http://127.0.0.1:{port}", None, log)
        except RuntimeError:
            logs = _docker("logs", name).stderr[-1000:]
            raise RuntimeError(f"container never healthy: {logs}") from None
        seconds = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        pid = int(_docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip())
        return {"start_to_healthy_s": round(seconds, 3), "idle_rss_mib": _rss_mib(pid)}
    finally:
        _docker("rm", "-f", name)


def _host_once(workdir: Path, tokens: Tokens) -> dict[str, float]:
    started = time.monotonic()
    server = start_pingcalc("host", tokens, workdir, os.sched_getaffinity(0).pop(), {})
    seconds = time.monotonic() - started
    try:
        time.sleep(SETTLE_SECONDS)
        return {"start_to_healthy_s": round(seconds, 3), "idle_rss_mib": server.rss_mib()}
    finally:
        server.stop()


def run(quick: bool = False) -> dict[str, Any]:
    """Image size, start time and idle RSS in a container and, as the baseline, on the host."""
    reason = skipped_reason()
    if reason is not None:
        return {"benchmark": "container", "skipped": reason}
    repetitions = 1 if quick else REPETITIONS
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout.strip())
    version = _docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    container: list[dict[str, float]] = []
    host: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="pingcalc-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        tokens = Tokens(workdir / "tokens.json")
        tokens.add("bench", "calculate")
        # The service user must be able to read the bind-mounted file; it stays 0600.
        os.chown(tokens.path, APP_UID, APP_UID)
        for _ in range(repetitions):  # interleaved, so both see the same background load
            container.append(_container_once(tokens.path))
            host.append(_host_once(workdir, tokens))

    def med(cells: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(c[key] for c in cells), 3)

    figures = {
        where: {key: med(cells, key) for key in ("start_to_healthy_s", "idle_rss_mib")}
        for where, cells in (("container", container), ("host", host))
    }
    return {
        "benchmark": "container",
        "image": IMAGE,
        "engine": version,
        "repetitions": repetitions,
        "image_size_mb": round(size / 1e6, 1),
        "medians": figures,
        "ratio_container_over_host": {
            key: round(figures["container"][key] / max(figures["host"][key], 1e-9), 2)
            for key in ("start_to_healthy_s", "idle_rss_mib")
        },
        "runs": {"container": container, "host": host},
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
