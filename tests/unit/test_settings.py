"""Settings: one typed object, safe defaults, env/.env/secret-file sources, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pingcalc.settings import Settings, SettingsError, load_settings
from tests_support import PINGCALC, clean_env


def test_defaults_bind_loopback_port_8080(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exposure is an explicit choice: the default bind is 127.0.0.1:8080 (seed: 0.0.0.0)."""
    clean_env(monkeypatch)
    settings = load_settings(_env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.rate_limit_enabled and settings.audit_on_failure == "closed"


def test_environment_prefix_sets_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """PINGCALC_* variables configure the service."""
    clean_env(monkeypatch)
    monkeypatch.setenv("PINGCALC_PORT", "9090")
    monkeypatch.setenv("PINGCALC_PING_DENY", "203.0.113.0/24, 2001:db8::/32")
    settings = load_settings(_env_file=None)
    assert settings.port == 9090
    assert [str(n) for n in settings.ping_deny] == ["203.0.113.0/24", "2001:db8::/32"]


def test_precedence_env_over_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A named env file is read, and the environment wins over it."""
    clean_env(monkeypatch)
    dotenv = tmp_path / "pingcalc.env"
    dotenv.write_text("PINGCALC_PORT=7070\nPINGCALC_LOG_LEVEL=debug\n")
    dotenv.chmod(0o600)
    monkeypatch.setenv("PINGCALC_PORT", "6060")
    monkeypatch.setenv("PINGCALC_ENV_FILE", str(dotenv))
    settings = load_settings()
    assert settings.port == 6060 and settings.log_level == "debug"


def test_secret_files_are_a_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Values can come from files in a secrets directory (Docker/Kubernetes secrets)."""
    clean_env(monkeypatch)
    (tmp_path / "pingcalc_rate_limit_storage").write_text("redis://:s3cret@127.0.0.1:6379/0")
    settings = Settings(_env_file=None, _secrets_dir=tmp_path)
    assert settings.rate_limit_storage == "redis://:s3cret@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("PINGCALC_PORT", "70000", "PINGCALC_PORT"),
        ("PINGCALC_RATE_LIMIT_PER_TOKEN", "lots", "PINGCALC_RATE_LIMIT_PER_TOKEN"),
        ("PINGCALC_PING_DENY", "10.0.0.1/8", "PINGCALC_PING_DENY"),
        ("PINGCALC_RATE_LIMIT_STORAGE", "mongodb://x", "PINGCALC_RATE_LIMIT_STORAGE"),
        ("PINGCALC_AUDIT_ON_FAILURE", "maybe", "PINGCALC_AUDIT_ON_FAILURE"),
    ],
)
def test_invalid_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    """A bad value stops start-up with one line that names the setting."""
    clean_env(monkeypatch)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_cli_reports_invalid_setting_and_exits_2(tmp_path: Path) -> None:
    """`pingcalc serve` with a bad setting exits 2 with one clear line, no traceback."""
    result = subprocess.run(
        [PINGCALC, "serve"],
        env={"PINGCALC_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PINGCALC_PORT" in lines[0]
    assert "Traceback" not in result.stderr
