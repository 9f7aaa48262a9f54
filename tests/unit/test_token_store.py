"""Token store: hashes only, 0600 file, shown once, reload on change (seed: hard-coded password)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pingcalc.auth import (
    Secret,
    TokenStore,
    TokenStoreError,
    create_token,
    hash_token,
    read_records,
    revoke_token,
)
from tests_support import run_pingcalc


def test_token_file_stores_only_sha256_hash(tmp_path: Path) -> None:
    """The secret never reaches the disk; only its SHA-256, name, scopes and creation time."""
    path = tmp_path / "tokens.json"
    record, secret = create_token(path, "alice", ["ping", "calculate"])
    raw = path.read_text()
    assert secret.reveal() not in raw
    entry = json.loads(raw)["tokens"][0]
    assert set(entry) == {"name", "sha256", "scopes", "created"}
    assert entry["sha256"] == hash_token(secret.reveal()) == record.sha256
    assert entry["scopes"] == ["calculate", "ping"]


def test_token_file_is_created_mode_0600(tmp_path: Path) -> None:
    """Only the owner can read the hashes (NIST AC-6)."""
    path = tmp_path / "sub" / "tokens.json"
    create_token(path, "alice", ["ping"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    revoke_token(path, "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_tokens_are_high_entropy_and_unique(tmp_path: Path) -> None:
    """Tokens carry 256 random bits, so guessing is hopeless."""
    path = tmp_path / "tokens.json"
    secrets = {create_token(path, f"t{i}", ["ping"])[1].reveal() for i in range(20)}
    assert len(secrets) == 20
    assert all(s.startswith("pc_") and len(s) >= 40 for s in secrets)


def test_secret_repr_hides_value() -> None:
    """A Secret in a log line or traceback shows stars, never the token."""
    secret = Secret("pc_verysecretvalue")
    assert "verysecret" not in repr(secret) and "verysecret" not in str(secret)
    assert secret.reveal() == "pc_verysecretvalue"


@pytest.mark.parametrize(
    ("name", "scopes"),
    [
        ("", ["ping"]),
        ("bad name", ["ping"]),
        ("a\nb", ["ping"]),
        ("x" * 65, ["ping"]),
        ("ok", []),
        ("ok", ["root"]),
    ],
)
def test_create_rejects_bad_names_and_scopes(tmp_path: Path, name: str, scopes: list[str]) -> None:
    """Names are safe to log; scopes must be known ones."""
    with pytest.raises(TokenStoreError):
        create_token(tmp_path / "tokens.json", name, scopes)
    assert not (tmp_path / "tokens.json").exists()


def test_duplicate_name_is_refused(tmp_path: Path) -> None:
    """Two tokens cannot share a name (names identify tokens in the audit trail)."""
    path = tmp_path / "tokens.json"
    create_token(path, "alice", ["ping"])
    with pytest.raises(TokenStoreError, match="exists"):
        create_token(path, "alice", ["ping"])


def test_store_reloads_when_file_changes(tmp_path: Path) -> None:
    """A revoked token stops working and a new one starts working without a restart."""
    path = tmp_path / "tokens.json"
    _, first = create_token(path, "first", ["ping"])
    store = TokenStore(path)
    assert store.authenticate(first.reveal()) is not None
    _, second = create_token(path, "second", ["ping"])
    revoke_token(path, "first")
    assert store.authenticate(first.reveal()) is None
    assert store.authenticate(second.reveal()) is not None


def test_a_rewrite_moves_the_mtime_past_the_replaced_file_even_when_the_clock_does_not(
    tmp_path: Path,
) -> None:
    """Servers reload on a changed (inode, mtime, size). A rename can hand the old inode
    number to the new file and a revoke-then-create can keep the size, so the mtime must move
    on even where the clock did not (coarse timestamps, a clock stepped back): else a revoked
    token stays honoured (the stack's second attack pass)."""
    path = tmp_path / "tokens.json"
    _, alice = create_token(path, "alice", ["ping"])
    store = TokenStore(path)
    later = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(later, later))  # the replaced file is "newer" than the clock
    assert store.authenticate(alice.reveal()) is not None
    revoke_token(path, "alice")
    assert path.stat().st_mtime_ns > later
    _, bob = create_token(path, "bob", ["ping"])
    assert path.stat().st_mtime_ns > later + 10**9
    assert store.authenticate(alice.reveal()) is None
    assert store.authenticate(bob.reveal()) is not None


def test_corrupt_file_keeps_last_good_view(tmp_path: Path) -> None:
    """A half-written tokens file neither locks everyone out nor lets anyone in."""
    path = tmp_path / "tokens.json"
    _, secret = create_token(path, "alice", ["ping"])
    store = TokenStore(path)
    time.sleep(0.01)
    path.write_text("{not json")
    assert store.authenticate(secret.reveal()) is not None
    assert store.authenticate("pc_guess") is None


def test_malformed_file_is_a_clear_error(tmp_path: Path) -> None:
    """A malformed tokens file at start-up is reported, not silently treated as empty."""
    path = tmp_path / "tokens.json"
    path.write_text('{"tokens": [{"name": "x"}]}')
    with pytest.raises(TokenStoreError, match="malformed"):
        read_records(path)


def test_overlong_presented_token_is_refused_cheaply(tmp_path: Path) -> None:
    """A megabyte Authorization value is refused before hashing (DoS)."""
    path = tmp_path / "tokens.json"
    create_token(path, "alice", ["ping"])
    assert TokenStore(path).authenticate("pc_" + "a" * 1_000_000) is None


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_pingcalc("--tokens-file", str(tmp_path / "tokens.json"), *args, cwd=tmp_path)


def test_cli_create_prints_token_once_and_list_never_shows_it(tmp_path: Path) -> None:
    """`token create` prints the secret once on stdout; `token list` shows names and scopes only."""
    created = _cli(tmp_path, "token", "create", "ci", "--scope", "ping", "--scope", "calculate")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("pc_") and "\n" not in secret
    assert secret not in created.stderr
    listed = _cli(tmp_path, "token", "list")
    assert listed.returncode == 0
    assert "ci" in listed.stdout and "calculate,ping" in listed.stdout
    assert secret not in listed.stdout + listed.stderr
    assert hash_token(secret) not in listed.stdout


def test_cli_revoke_and_errors(tmp_path: Path) -> None:
    """Revoking removes the token; revoking an unknown name is a clear error with exit 2."""
    assert _cli(tmp_path, "token", "create", "ci", "--scope", "ping").returncode == 0
    assert _cli(tmp_path, "token", "revoke", "ci").returncode == 0
    again = _cli(tmp_path, "token", "revoke", "ci")
    assert again.returncode == 2 and "no token named 'ci'" in again.stderr
    assert "Traceback" not in again.stderr


def test_cli_if_none_creates_only_the_first_token(tmp_path: Path) -> None:
    """`make run` creates a first token only when the file has none."""
    first = _cli(tmp_path, "token", "create", "first", "--scope", "ping", "--if-none")
    second = _cli(tmp_path, "token", "create", "first", "--scope", "ping", "--if-none")
    assert first.stdout.startswith("pc_") and second.returncode == 0 and second.stdout == ""
    assert len(read_records(tmp_path / "tokens.json")) == 1


@pytest.mark.parametrize(("owner", "mode"), [((10001, 10001), 0o600), ((0, 10001), 0o640)])
def test_rewrite_keeps_owner_group_and_mode(
    tmp_path: Path, owner: tuple[int, int], mode: int
) -> None:
    """Root revoking a token in the service's file must not lock the service out (TM-01): the
    rewritten file keeps its owner, group and mode (never wider than 0640)."""
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root (CI runs as root)")
    path = tmp_path / "tokens.json"
    create_token(path, "keep", ["ping"])
    create_token(path, "drop", ["ping"])
    os.chown(path, *owner)
    path.chmod(mode)
    revoke_token(path, "drop")
    create_token(path, "added", ["calculate"])
    info = path.stat()
    assert ((info.st_uid, info.st_gid), info.st_mode & 0o777) == (owner, mode)
    assert [r.name for r in read_records(path)] == ["keep", "added"]


def test_rewrite_never_widens_the_mode(tmp_path: Path) -> None:
    """A tokens file someone made world-readable is narrowed to 0640 at the next rewrite."""
    path = tmp_path / "tokens.json"
    create_token(path, "one", ["ping"])
    path.chmod(0o666)
    create_token(path, "two", ["ping"])
    assert path.stat().st_mode & 0o777 == 0o640


def test_concurrent_writers_never_lose_a_revoke_or_a_create(tmp_path: Path) -> None:
    """TM-01: a revoke racing token creations stays revoked, and every creation is kept (the
    stack's attack pass saw 3 of 5 reported revokes undone by a concurrent create)."""
    path = tmp_path / "tokens.json"
    victims = [f"victim-{i}" for i in range(8)]
    for name in victims:
        create_token(path, name, ["calculate"])
    created = [f"writer{w}-{i}" for w in range(4) for i in range(10)]

    def create_ten(writer: int) -> None:
        for i in range(10):
            create_token(path, f"writer{writer}-{i}", ["ping"])

    with ThreadPoolExecutor(len(victims) + 4) as pool:
        revokes = [pool.submit(revoke_token, path, name) for name in victims]
        creates = [pool.submit(create_ten, writer) for writer in range(4)]
        # Every call reported success.
        assert [job.result().name for job in revokes] == victims
        assert [job.result() for job in creates] == [None] * 4
    names = {record.name for record in read_records(path)}
    assert names == set(created), sorted(names ^ set(created))
    # The legitimate writer still works afterwards, and the lock file holds no secret.
    create_token(path, "after", ["ping"])
    assert "after" in {record.name for record in read_records(path)}
    assert path.with_name(".tokens.json.lock").read_bytes() == b""


def test_a_writer_gives_up_with_a_clear_error_while_another_holds_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stuck writer (or a held lock) makes the next one fail clearly, not hang forever."""
    import fcntl

    import pingcalc.auth as auth

    path = tmp_path / "tokens.json"
    create_token(path, "first", ["ping"])
    monkeypatch.setattr(auth, "WRITER_LOCK_WAIT_SECONDS", 0.2)
    with path.with_name(".tokens.json.lock").open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(TokenStoreError, match="locked by another writer"):
            revoke_token(path, "first")
    revoke_token(path, "first")
    assert read_records(path) == []
