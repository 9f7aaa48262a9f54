"""The container: image size and seconds from `docker run` to the first 200 from /healthz.

What is measured, on one Docker engine, in `ROUNDS` interleaved rounds (each round runs every
kind once, starting one kind further on each round, so all see the same background load):

- `pingcalc`: the pingcalc image (`make image`; PINGCALC_BENCH_IMAGE, default pingcalc:local);
- `bare`: a bare-app image (`BARE_IMAGE`), built here from bench/docker/bare.Dockerfile: the
  bare FastAPI app of bench/bare_app.py on the same local base, assembled by the same
  deploy/docker/assemble_rootfs.py into a `FROM scratch` image (not a plain venv image), so
  the two images differ only in the application and its dependencies;
- `floor`: Docker's own start cost: the pingcalc image's Python running `-c ''` (nothing),
  from `docker run -d` until `docker wait` sees it exit;
- `pingcalc_host`, `bare_host`: the same two servers started directly on the host (no
  Docker), to show how much of a start is the process itself.

Every container runs with the same flags, as compose.yaml runs pingcalc: read-only root,
no capabilities, no-new-privileges, uid 10001, a small /tmp tmpfs, the ping sysctl, memory
and pids limits, the tokens file bind-mounted, published on 127.0.0.1 only. A start is timed
from just before the `docker run -d` client starts until /healthz first answers 200, polled
every `POLL_SECONDS`; `run_returned_s` is when `docker run -d` itself returned (the container
created and started). Idle RSS is read from /proc after `SETTLE_SECONDS`. Containers and the
bare image are named `bench-*`. Skipped, with the reason recorded, without a Docker engine or
the pingcalc image. A benchmark, not a test: nothing here fails a build.

Run: `.venv/bin/python -m bench.bench_container` (`--quick`: one round).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import start_bare, start_pingcalc, wait_healthy
from pingcalc.testing import Tokens, free_port

REPO = Path(__file__).resolve().parents[1]
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "")
IMAGE = os.environ.get("PINGCALC_BENCH_IMAGE", "pingcalc:local")
BARE_IMAGE = "bench-bare-fastapi:local"
BARE_CONTEXT = {  # file in the repository -> name in the bare image's build context
    "bench/docker/bare.Dockerfile": "Dockerfile",
    "bench/docker/bare-requirements.lock": "bare-requirements.lock",
    "bench/bare_app.py": "bare_app.py",
    "deploy/docker/assemble_rootfs.py": "assemble_rootfs.py",
}
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APP_UID = 10001
ROUNDS = 7
POLL_SECONDS = 0.005
# Seconds an idle service settles before its RSS is read (start-up garbage collected).
SETTLE_SECONDS = 1.0
BUILD_TIMEOUT = 900
# Issue 19: the runtime image at most this many MB (10^6 bytes, as `make image` prints).
SIZE_TARGET_MB = 45.0
KINDS = ("pingcalc", "bare", "floor", "pingcalc_host", "bare_host")


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
    if _docker("info", "--format", "{{.ServerVersion}}", timeout=20).returncode != 0:
        return "no docker engine"
    if _docker("image", "inspect", IMAGE).returncode != 0:
        return f"no image {IMAGE} (make image)"
    return None


def base_image() -> str:
    """The local base `make image` builds on (deploy/docker/build-base.sh; reused if present)."""
    done = subprocess.run(
        [str(REPO / "deploy/docker/build-base.sh")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, "DOCKER": DOCKER},
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def build_bare_image(base: str) -> None:
    """Build BARE_IMAGE from a context holding only BARE_CONTEXT (BuildKit caches it)."""
    with tempfile.TemporaryDirectory(prefix="bench-bare-image-") as tmp:
        for source, name in BARE_CONTEXT.items():
            shutil.copy2(REPO / source, Path(tmp) / name)
        argv = [DOCKER, "build", "--build-arg", f"BASE_IMAGE={base}", "-t", BARE_IMAGE]
        if CA_BUNDLE.exists():  # a TLS-intercepting proxy's CA, never in a layer
            argv += ["--secret", f"id=pip_cert,src={CA_BUNDLE}"]
        done = subprocess.run(
            [*argv, tmp],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"building {BARE_IMAGE} failed: {done.stderr.strip()[-1500:]}")


def run_flags(tokens: Path, port: int) -> list[str]:
    """The flags of every container here: compose.yaml's hardening, a 127.0.0.1 publish."""
    return [
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--user", f"{APP_UID}:{APP_UID}",
        "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=16m",  # noqa: S108 - in the container
        "--sysctl", f"net.ipv4.ping_group_range={APP_UID} {APP_UID}",
        "--memory", "256m", "--pids-limit", "128",
        "-p", f"127.0.0.1:{port}:8080",
        "-v", f"{tokens}:/run/secrets/pingcalc_tokens:ro",
    ]  # fmt: skip


def _container_start(image: str, tokens: Path) -> dict[str, float]:
    """`docker run -d` of `image` until /healthz answers 200, then its idle RSS."""
    port = free_port()
    name = f"bench-start-{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    try:
        created = _docker("run", "-d", "--name", name, *run_flags(tokens, port), image)
        returned = time.monotonic() - started
        if created.returncode != 0:
            raise RuntimeError(f"docker run failed: {created.stderr.strip()[:500]}")
        log = Path(tempfile.gettempdir()) / f"{name}.log"
        try:
            wait_healthy(f"http://127.0.0.1:{port}", None, log, poll=POLL_SECONDS)
        except RuntimeError:
            logs = _docker("logs", name).stderr[-1000:]
            raise RuntimeError(f"{image} never healthy: {logs}") from None
        seconds = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        pid = int(_docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip())
        return {
            "start_to_healthy_s": round(seconds, 3),
            "run_returned_s": round(returned, 3),
            "idle_rss_mib": _rss_mib(pid),
        }
    finally:
        _docker("rm", "-f", name)


def _floor(tokens: Path) -> dict[str, float]:
    """Docker's own cost: the same flags, the image's Python doing nothing, until it exits."""
    port = free_port()
    name = f"bench-floor-{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    try:
        created = _docker(
            "run", "-d", "--name", name, *run_flags(tokens, port),
            "--entrypoint", "/opt/venv/bin/python", IMAGE, "-c", "",
        )  # fmt: skip
        returned = time.monotonic() - started
        if created.returncode != 0:
            raise RuntimeError(f"docker run failed: {created.stderr.strip()[:500]}")
        waited = _docker("wait", name)
        seconds = time.monotonic() - started
        if waited.stdout.strip() != "0":
            raise RuntimeError(f"the floor container exited {waited.stdout.strip()}")
        return {"start_to_exit_s": round(seconds, 3), "run_returned_s": round(returned, 3)}
    finally:
        _docker("rm", "-f", name)


def _host_start(workdir: Path, tokens: Tokens, kind: str) -> dict[str, float]:
    core = sorted(os.sched_getaffinity(0))[0]
    started = time.monotonic()
    server = (
        start_pingcalc("host", tokens, workdir, core, {})
        if kind == "pingcalc_host"
        else start_bare(workdir, core)
    )
    seconds = time.monotonic() - started
    try:
        time.sleep(SETTLE_SECONDS)
        return {"start_to_healthy_s": round(seconds, 3), "idle_rss_mib": server.rss_mib()}
    finally:
        server.stop()


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "n": len(ordered),
    }


def _image(tag: str) -> dict[str, Any]:
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())
    image_id = _docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
    return {"tag": tag, "id": image_id[:19], "size_mb": round(size / 1e6, 1)}


def run(quick: bool = False) -> dict[str, Any]:
    """Build the bare image, then start every kind once per round (see the module doc)."""
    reason = skipped_reason()
    if reason is not None:
        return {"benchmark": "container", "skipped": reason}
    base = base_image()
    build_started = time.monotonic()
    build_bare_image(base)
    build_seconds = round(time.monotonic() - build_started)
    rounds = 1 if quick else ROUNDS
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="bench-container-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        tokens = Tokens(workdir / "tokens.json")
        tokens.add("bench", "calculate")
        # The service user must be able to read the bind-mounted file; it stays 0600.
        os.chown(tokens.path, APP_UID, APP_UID)
        measure: dict[str, Callable[[], dict[str, float]]] = {
            "pingcalc": lambda: _container_start(IMAGE, tokens.path),
            "bare": lambda: _container_start(BARE_IMAGE, tokens.path),
            "floor": lambda: _floor(tokens.path),
            "pingcalc_host": lambda: _host_start(workdir, tokens, "pingcalc_host"),
            "bare_host": lambda: _host_start(workdir, tokens, "bare_host"),
        }
        for index in range(rounds):
            shift = index % len(KINDS)
            for kind in KINDS[shift:] + KINDS[:shift]:
                runs[kind].append(measure[kind]())
    cells = {
        kind: {key: _spread([c[key] for c in cells]) for key in cells[0]}
        for kind, cells in runs.items()
    }
    per_round = {
        "start_pingcalc_over_bare": [
            p["start_to_healthy_s"] / b["start_to_healthy_s"]
            for p, b in zip(runs["pingcalc"], runs["bare"], strict=True)
        ],
        "start_pingcalc_minus_floor_s": [
            p["start_to_healthy_s"] - f["start_to_exit_s"]
            for p, f in zip(runs["pingcalc"], runs["floor"], strict=True)
        ],
        "start_bare_minus_floor_s": [
            b["start_to_healthy_s"] - f["start_to_exit_s"]
            for b, f in zip(runs["bare"], runs["floor"], strict=True)
        ],
    }
    images = {"pingcalc": _image(IMAGE), "bare": _image(BARE_IMAGE)}
    size = images["pingcalc"]["size_mb"]
    return {
        "benchmark": "container",
        "engine": _docker("version", "--format", "{{.Server.Version}}").stdout.strip(),
        "what": {
            "rounds": rounds,
            "run_flags": " ".join(run_flags(Path("TOKENS"), 0)).replace(":0:", ":PORT:"),
            "bare_image": f"{BARE_IMAGE}: bench/docker/bare.Dockerfile on {base}, assembled "
            "by deploy/docker/assemble_rootfs.py (FROM scratch), bench/bare_app.py",
            "floor": f"{IMAGE} with --entrypoint /opt/venv/bin/python -c '' (same flags), "
            "docker run -d until docker wait returns",
            "poll_seconds": POLL_SECONDS,
            "bare_build_seconds": build_seconds,
        },
        "images": images,
        "size_ratio_pingcalc_over_bare": round(size / images["bare"]["size_mb"], 2),
        "cells": cells,
        "ratios": {key: _spread(values) for key, values in per_round.items()},
        "targets": {
            "image_size": {"mb": size, "target_mb": SIZE_TARGET_MB, "met": size <= SIZE_TARGET_MB}
        },
        "runs": runs,
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
