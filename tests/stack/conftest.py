"""The stack suite's fixture: `make stack-up` once per session, `make stack-down` afterwards.

The stack runs under a project name, state directory, published port and subnets unique to
the run, with its own image tags, so it never touches another stack on the engine. Docker,
Compose or openssl missing fails the suite in CI (CI=true) and skips it elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from container_support import IN_CI, REPO, compose_binary, docker, free_port, print_metrics
from stack_support import HOSTNAME, METRICS, SETTINGS, Stack, free_subnets


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"stack suite cannot run in CI: {reason} (.ci/run installs it)")
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the stack tests measured."""
    print_metrics(terminalreporter, "stack metrics", METRICS)


def _write_metrics() -> None:
    out = REPO / "build" / "stack-metrics.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(METRICS, indent=2, default=str) + "\n")


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, uses_configuration: Callable[..., None]
) -> Iterator[Stack]:
    """The whole stack up through `make stack-up`; always torn down with `make stack-down`."""
    if docker("info", "--format", "{{.ServerVersion}}", timeout=20).returncode != 0:
        _unavailable("no Docker engine answering")
    if not compose_binary() and docker("compose", "version").returncode != 0:
        _unavailable("no Compose v2 (docker compose)")
    if not shutil.which("openssl") or not shutil.which("make"):
        _unavailable("openssl and make are needed by make stack-up")
    state = tmp_path_factory.mktemp("stack") / "state"
    state.mkdir()
    (state / "pingcalc.env").write_text("".join(f"{k}={v}\n" for k, v in SETTINGS.items()))
    edge_net, backend_net = free_subnets(2)
    project = f"stack-test-{uuid.uuid4().hex[:8]}"
    tag = os.environ.get("STACK_TEST_TAG", "local")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PINGCALC_", "STACK_"))},
        "STACK_PROJECT": project,
        "STACK_DIR": str(state),
        "STACK_PORT": str(free_port()),
        "STACK_HOSTNAME": HOSTNAME,
        "STACK_IMAGE": f"stack-test-pingcalc:{tag}",
        "STACK_EDGE_IMAGE": f"stack-test-edge:{tag}",
        "STACK_REDIS_IMAGE": f"stack-test-redis:{tag}",
        "STACK_EDGE_SUBNET": str(edge_net),
        "STACK_EDGE_DYNAMIC_RANGE": str(next(edge_net.subnets(1))),
        "STACK_BACKEND_SUBNET": str(backend_net),
        "STACK_BACKEND_DYNAMIC_RANGE": str(list(backend_net.subnets(1))[1]),
        "STACK_PROXY_ADDRESS": str(backend_net.network_address + 2),
    }
    stack = Stack(
        project=project,
        url="",
        ca=Path(),
        state=state,
        env=env,
        edge_subnet=edge_net,
        image=env["STACK_IMAGE"],
    )
    try:
        started = time.monotonic()
        up = stack.make("stack-up", timeout=900)
        METRICS["make stack-up seconds (this run)"] = round(time.monotonic() - started, 1)
        assert up.returncode == 0, f"make stack-up failed:\n{up.stdout}\n{up.stderr[-4000:]}"
        lines = dict(line.split("=", 1) for line in up.stdout.splitlines())
        stack.url, stack.ca, stack.up_stdout = lines["URL"], Path(lines["CA"]), up.stdout
        # `make stack-up` ran these: every test using the stack exercises them (the threat
        # model's reach check cannot see files that make and the engine read).
        uses_configuration(
            "deploy/stack/stack.sh",
            "deploy/stack/compose.yaml",
            "deploy/stack/Dockerfile",
            "deploy/stack/haproxy.cfg",
            "deploy/stack/redis.conf",
            "deploy/stack/make_secrets.py",
        )
        marker = "shown only this once:\n"
        if marker in up.stderr:
            stack.first_token = up.stderr.split(marker, 1)[1].split("\n", 1)[0].strip()
        stack.wait_healthy()
        yield stack
    finally:
        stack.remove_clients()
        down = stack.make("stack-down", timeout=120, STACK_PURGE="1")
        if down.returncode != 0:
            print(f"make stack-down failed: {down.stderr}", file=sys.stderr)
        for key in ("STACK_IMAGE", "STACK_EDGE_IMAGE", "STACK_REDIS_IMAGE"):
            docker("rmi", env[key])
        _write_metrics()


@pytest.fixture
def healthy_stack(stack: Stack) -> Stack:
    """The stack, after every container (and the edge's view of every replica) is healthy
    again: a test that stopped or killed something must not leak into the next."""
    stack.wait_healthy()
    return stack
