"""The README's container section, run as written in a fresh clone on a real Docker engine.

A newcomer copies the section's first shell block, then the revoke line, into a shell at the
repository root. This test does the same in a `git clone` of this repository (committed files
only), with its own compose project, image tag and free port (the block reads them from
`COMPOSE_PROJECT_NAME`, `IMAGE` and `PINGCALC_PUBLISH_PORT`, whose defaults are the documented
ones). Token changes on the host must reach the running container within 2 s without
recreating it (the secrets directory is mounted, not one file whose inode a rename replaces),
and the tokens file keeps the owner the service needs. Everything started is removed after.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from container_support import APP_GID, APP_UID, REPO, Image, docker, free_port, run

pytestmark = [pytest.mark.container, pytest.mark.slow]

SECTION = "## Run it in a container"
# A token change on the host must be seen by the running container within this.
PROPAGATION_BUDGET_S = 2.0
BLOCK_TIMEOUT_S = 1200  # make venv + make image + up, on a busy 2-core machine


def readme_blocks(readme: str) -> list[str]:
    """The fenced `sh` blocks of the README's container section, in order."""
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


@dataclass
class Clone:
    path: Path
    env: dict[str, str]
    project: str
    port: int
    image: str

    def shell(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`script` in a fresh bash at the clone's root, as a newcomer's terminal would run it."""
        return run(["bash", "-euo", "pipefail", "-c", script], timeout, cwd=self.path, env=self.env)

    def calculate(self, token: str) -> int:
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/api/v1/calculate",
            json={"expression": "2*(3+4)"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        return response.status_code

    def container(self) -> dict[str, str]:
        out = docker(
            "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}"
        ).stdout.split()
        assert len(out) == 1, out
        fields = "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}"
        cid, started, restarts = docker("inspect", "-f", fields, out[0]).stdout.split()
        return {"id": cid, "started": started, "restarts": restarts}


@pytest.fixture
def clone(image: Image, tmp_path: Path) -> Iterator[Clone]:
    """A fresh clone with its own project, port and image tag; torn down whatever happens."""
    path = tmp_path / "pingcalc"
    cloned = run(["git", "clone", "--quiet", str(REPO), str(path)], timeout=120)
    assert cloned.returncode == 0, cloned.stderr
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "DOCKER_HOST", "SSL_CERT_FILE", "PIP_CERT")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
    project = f"ncreadme{uuid.uuid4().hex[:8]}"
    port = free_port()
    tag = f"{project}:readme"
    env |= {"COMPOSE_PROJECT_NAME": project, "PINGCALC_PUBLISH_PORT": str(port), "IMAGE": tag}
    made = Clone(path, env, project, port, tag)
    try:
        yield made
    finally:
        down = made.shell("deploy/compose.sh down -v --remove-orphans -t 5", timeout=120)
        if down.returncode != 0:
            print(f"compose down failed: {down.stderr}")
        docker("rmi", "-f", tag)


def test_readme_container_block_runs_as_written_and_token_changes_reach_the_container(
    clone: Clone,
) -> None:
    """T1078/TM-01: the documented path works from a fresh clone, and a revoked token stops
    working in the running container within 2 s (a new one starts working), no recreate."""
    readme = (clone.path / "README.md").read_text(encoding="utf-8")
    blocks = readme_blocks(readme)
    first = blocks[0]
    assert "$ " not in first and first.rstrip().splitlines()[-1].strip().endswith(
        '/api/v1/calculate"'
    ), first
    started = time.monotonic()
    done = clone.shell(
        first + '\nprintf "\\nREADME_TOKEN=%s\\n" "$TOKEN"\n', timeout=BLOCK_TIMEOUT_S
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"README container block: {seconds:.1f} s from a fresh clone to the first answer")
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == '{"expression":"2*(3+4)","result":14}', done.stdout[-2000:]
    token = lines[-1].removeprefix("README_TOKEN=")
    assert token.startswith("pc_") and token not in done.stderr

    tokens_file = clone.path / "secrets" / "tokens.json"
    before = clone.container()
    assert (tokens_file.stat().st_uid, tokens_file.stat().st_gid) == (APP_UID, APP_GID)

    [revoke] = [b.strip() for b in blocks[1:] if "token revoke ops" in b]
    assert "\n" not in revoke  # one line, for a fresh shell
    revoked = clone.shell(revoke)
    assert revoked.returncode == 0, revoked.stderr
    assert _within_budget(lambda: clone.calculate(token) == 401), "revoked token still accepted"

    added = clone.shell(
        ".venv/bin/pingcalc --tokens-file secrets/tokens.json token create ops2 --scope calculate"
    )
    assert added.returncode == 0, added.stderr
    new_token = added.stdout.strip()
    assert _within_budget(lambda: clone.calculate(new_token) == 200), "new token not accepted"
    assert clone.calculate(token) == 401

    info = tokens_file.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (APP_UID, APP_GID, 0o600)
    assert clone.container() == before  # same container, never restarted or recreated


def _within_budget(condition: object) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + PROPAGATION_BUDGET_S
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
