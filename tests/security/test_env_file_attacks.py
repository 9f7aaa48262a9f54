"""Configuration planted through the working directory or a writable env file (T1562, TM-31).

Before: pingcalc read `.env` from whatever directory it ran in, so anyone able to write that
directory could point the tokens file at their own, switch rate limits off or open the ping
policy. Now only an env file the operator names is read, and only if no one else could have
written it. Every test runs the real CLI or server in a directory holding the hostile file,
and shows that the legitimate configuration still works.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pingcalc.auth import create_token
from tests_support import LiveServer, Tokens, run_pingcalc

OTHER_UID = 54321  # a user that is not the one running the tests


def _events(server: LiveServer) -> list[dict[str, object]]:
    return [json.loads(x) for x in server.log_text().splitlines() if x.startswith("{")]


def _attacker_setup(directory: Path) -> str:
    """A planted tokens file with the attacker's token, and a `.env` pointing at it."""
    planted = directory / "planted-tokens.json"
    _, secret = create_token(planted, "attacker", ["ping", "calculate", "metrics"])
    (directory / ".env").write_text(
        f"PINGCALC_TOKENS_FILE={planted}\n"
        "PINGCALC_RATE_LIMIT_ENABLED=false\n"
        "PINGCALC_PING_ALLOW=10.0.0.0/8\n"
    )
    return secret.reveal()


def test_dotenv_in_the_working_directory_is_not_read_by_the_server(
    server_factory: Callable[..., LiveServer], tmp_path: Path, tokens: Tokens
) -> None:
    """A hostile `.env` in the server's working directory changes nothing: the planted token
    is refused, limits stay on; the operator's token works."""
    attacker = _attacker_setup(tmp_path)  # the server's cwd is tmp_path
    server = server_factory()
    with server.client() as client:
        planted = client.post(
            "/api/v1/calculate",
            json={"expression": "1+1"},
            headers={"Authorization": f"Bearer {attacker}"},
        )
        assert planted.status_code == 401
    with server.client("calc") as client:
        assert client.post("/api/v1/calculate", json={"expression": "1+1"}).status_code == 200
    [start] = [e for e in _events(server) if e.get("event") == "server_start"]
    assert start["tokens_file"] == str(tokens.path)
    assert start["rate_limit_enabled"] is True


def test_dotenv_in_the_working_directory_is_not_read_by_the_cli(tmp_path: Path) -> None:
    """`pingcalc token list` in a directory with a hostile `.env` lists the operator's file."""
    _attacker_setup(tmp_path)
    operator = tmp_path / "operator-tokens.json"
    create_token(operator, "operator", ["calculate"])
    env = {"PINGCALC_TOKENS_FILE": str(operator)}
    done = run_pingcalc("token", "list", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [row["name"] for row in json.loads(done.stdout)] == ["operator"]


def _serve_with_env_file(
    env_file: Path, tokens: Tokens, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {"PINGCALC_TOKENS_FILE": str(tokens.path), "PINGCALC_PORT": "1"}
    if not args:
        env["PINGCALC_ENV_FILE"] = str(env_file)
    return run_pingcalc(*args, "serve", env=env, cwd=env_file.parent)


@pytest.mark.parametrize(
    ("mode", "owner", "fragment"),
    [
        (0o666, None, "writable by its group or by others (mode 0666)"),
        (0o620, None, "writable by its group or by others (mode 0620)"),
        (0o600, OTHER_UID, f"is owned by uid {OTHER_UID}"),
    ],
)
@pytest.mark.parametrize("how", ["PINGCALC_ENV_FILE", "--env-file"])
def test_env_file_others_could_write_is_refused_with_exit_2(
    tmp_path: Path, tokens: Tokens, mode: int, owner: int | None, fragment: str, how: str
) -> None:
    """A named env file that someone else could have written stops start-up: one line, exit 2."""
    env_file = tmp_path / "pingcalc.env"
    env_file.write_text("PINGCALC_RATE_LIMIT_ENABLED=false\n")
    env_file.chmod(mode)
    if owner is not None:
        if os.geteuid() != 0:
            pytest.skip("chown to another user needs root (CI runs as root)")
        os.chown(env_file, owner, -1)
    args = ("--env-file", str(env_file)) if how == "--env-file" else ()
    done = _serve_with_env_file(env_file, tokens, *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pingcalc: refusing PINGCALC_ENV_FILE=")
    assert fragment in lines[0] and "Traceback" not in done.stderr


def test_missing_env_file_is_a_clear_error(tmp_path: Path, tokens: Tokens) -> None:
    """A named env file that does not exist is an error, not silently ignored."""
    done = _serve_with_env_file(tmp_path / "absent.env", tokens)
    assert done.returncode == 2
    assert "PINGCALC_ENV_FILE=" in done.stderr and "cannot open it" in done.stderr


def _operator_env_file(directory: Path) -> Path:
    env_file = directory / "operator.env"
    env_file.write_text(
        "PINGCALC_RATE_LIMIT_PER_TOKEN=77/minute\nPINGCALC_MAX_BODY_BYTES=4096\n"
        "PINGCALC_PUBLISH_PORT=9999\n"  # compose's variable: ignored by pingcalc
    )
    env_file.chmod(0o600)
    return env_file


def test_explicit_env_file_of_the_operator_configures_the_server(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """The legitimate path: the operator's own 0600 env file configures the server, and the
    environment still wins over it."""
    env_file = _operator_env_file(tmp_path)
    server = server_factory(
        env={"PINGCALC_ENV_FILE": str(env_file), "PINGCALC_MAX_BODY_BYTES": "8192"}
    )
    [start] = [e for e in _events(server) if e.get("event") == "server_start"]
    assert start["rate_limit_per_token"] == "77/minute"
    assert start["max_body_bytes"] == 8192  # the environment wins over the file
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def test_env_file_flag_configures_the_cli(tmp_path: Path, tokens: Tokens) -> None:
    """`pingcalc --env-file FILE check --json` reads the operator's file."""
    env_file = _operator_env_file(tmp_path)
    env = {"PINGCALC_TOKENS_FILE": str(tokens.path)}
    done = run_pingcalc(
        "--env-file", str(env_file), "check", "--json", env=env, cwd=tmp_path, timeout=60
    )
    report = json.loads(done.stdout)
    [limits] = [f for f in report["findings"] if f["check"] == "rate-limit"]
    assert "per token 77/minute" in limits["message"], report
