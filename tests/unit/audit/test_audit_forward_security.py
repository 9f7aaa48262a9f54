"""Forward security: the sealing key evolves one way at each checkpoint and the old key is
gone, so a key stolen today cannot re-seal yesterday's records.

Threat: TM-24 (T1070 indicator removal; NIST AU-9, AU-10): an intruder who takes the host,
and with it the current key from the audit directory, rewrites earlier records to hide what
they did. Only records after the last checkpoint are within the stolen key's reach.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from pingcalc.audit import Auditor, ChainedFileSink, StdoutSink, verify
from pingcalc.audit.chain import seal
from pingcalc.audit.keys import EvolvingKey, read_initial_key, read_state, state_path
from tests_support import AuditKeys, file_records


def trail(path: Path, keys: AuditKeys, epochs: int, per_epoch: int = 5) -> Auditor:
    """`epochs` checkpointed epochs of `per_epoch` records each, then 3 unanchored records."""
    auditor = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, keys.service)])
    for epoch in range(epochs):
        for index in range(per_epoch):
            assert auditor.emit("ping", token="pinger", outcome="success", n=f"{epoch}.{index}")
        assert auditor.checkpoint()
    for index in range(3):
        assert auditor.emit("ping", token="pinger", outcome="success", n=f"tail.{index}")
    return auditor


def stolen_key(path: Path) -> EvolvingKey:
    """What an intruder finds on the host: the evolved key state beside the audit file."""
    _state, key = read_state(state_path(path))
    return key


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def unsealed(raw: bytes) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(raw)
    del record["mac"]
    return record


def rewrite_from(path: Path, index: int, key: EvolvingKey, **changes: Any) -> None:
    """Apply `changes` to line `index` (0-based) and re-seal it and every later line with
    `key`, keeping each record's epoch label unless `changes` sets it."""
    lines = lines_of(path)
    prev = json.loads(lines[index - 1])["mac"]
    for position in range(index, len(lines)):
        record = unsealed(lines[position])
        if position == index:
            record.update(changes)
        if "epoch" in changes:
            record["epoch"] = changes["epoch"]
        record["prev"] = prev
        lines[position], prev = seal(record, key)
    path.write_bytes(b"".join(lines))


def test_the_key_evolves_at_each_checkpoint_and_the_state_file_forgets_the_old_one(
    tmp_path: Path, keys: AuditKeys
) -> None:
    """After 4 checkpoints the state holds k4 = H^4(k0), 0600, never k0..k3; the verifier
    derives the same keys from the offline copy."""
    path = tmp_path / "audit" / "audit.jsonl"
    trail(path, keys, epochs=4)
    state, current = read_state(state_path(path))
    initial = read_initial_key(keys.verify)
    assert state.epoch == current.epoch == 4
    assert oct(state_path(path).stat().st_mode & 0o777) == "0o600"
    text = state_path(path).read_text()
    for epoch in range(4):
        earlier = read_initial_key(keys.verify)
        earlier.advance_to(epoch)
        assert earlier.hex().decode() not in text
    initial.advance_to(4)
    assert initial.hex() == current.hex()
    assert [r["epoch"] for r in file_records(path) if r["event"] == "audit_checkpoint"] == [
        0,
        1,
        2,
        3,
    ]


def test_advancing_overwrites_the_key_in_memory(keys: AuditKeys) -> None:
    """The key's one buffer is overwritten in place when it evolves and zeroed by erase."""
    key = read_initial_key(keys.service)
    buffer = key._key  # the object the hmac calls read
    before = bytes(buffer)
    key.advance_to(3)
    assert key._key is buffer and bytes(buffer) != before
    key.erase()
    assert bytes(buffer) == bytes(32) and "key" not in repr(key).replace("key_id", "")


@pytest.fixture
def keys(audit_keys: AuditKeys) -> AuditKeys:
    return audit_keys


def test_a_stolen_current_key_cannot_reseal_an_earlier_epoch(
    tmp_path: Path, keys: AuditKeys
) -> None:
    """Rewriting a record of epoch 1 with the stolen k4, keeping its epoch label, fails its
    seal at that line; the untouched trail verifies."""
    path = tmp_path / "audit.jsonl"
    trail(path, keys, epochs=4).close()
    assert verify([path], keys.verify).ok
    target = next(i for i, r in enumerate(file_records(path)) if r.get("n") == "1.2")
    rewrite_from(path, target, stolen_key(path), token="someone-else")
    problem = verify([path], keys.verify).problem
    assert problem is not None and problem.line == target + 1
    assert problem.reason.startswith("seal mismatch")


def test_a_stolen_key_relabelling_records_into_its_epoch_is_detected(
    tmp_path: Path, keys: AuditKeys
) -> None:
    """Re-sealing an epoch-1 record and everything after it as epoch 4 (valid seals under the
    stolen key) is caught at that line: the epoch changed without its checkpoint."""
    path = tmp_path / "audit.jsonl"
    trail(path, keys, epochs=4).close()
    key = stolen_key(path)
    target = next(i for i, r in enumerate(file_records(path)) if r.get("n") == "1.2")
    rewrite_from(path, target, key, token="someone-else", epoch=key.epoch)
    problem = verify([path], keys.verify).problem
    assert problem is not None and problem.line == target + 1
    assert "a key change without its checkpoint" in problem.reason


def test_a_stolen_key_deleting_the_end_of_an_epoch_is_detected(
    tmp_path: Path, keys: AuditKeys
) -> None:
    """Dropping epoch 2's last records and its checkpoint, then chaining epoch 3 on, fails:
    the stolen key cannot seal epoch 2's checkpoint again."""
    path = tmp_path / "audit.jsonl"
    trail(path, keys, epochs=4).close()
    records = file_records(path)
    cut = next(i for i, r in enumerate(records) if r.get("n") == "2.3")
    resume = next(i for i, r in enumerate(records) if r.get("n") == "3.0")
    lines = lines_of(path)
    path.write_bytes(b"".join(lines[:cut] + lines[resume:]))
    rewrite_from(path, cut, stolen_key(path))
    problem = verify([path], keys.verify).problem
    assert problem is not None and problem.line == cut + 1
    assert problem.reason.startswith(("seal mismatch", "epoch"))


def test_the_stolen_key_reaches_only_records_after_the_last_checkpoint(
    tmp_path: Path, keys: AuditKeys
) -> None:
    """The documented limit: records sealed since the last checkpoint use the key the service
    still holds, so whoever steals it can rewrite those (and only those) undetected; the
    verifier reports how many records that is."""
    path = tmp_path / "audit.jsonl"
    auditor = trail(path, keys, epochs=2)  # not closed: the tail is in the current epoch
    key = stolen_key(path)
    records = file_records(path)
    tail = next(i for i, r in enumerate(records) if r.get("n") == "tail.1")
    rewrite_from(path, tail, key, token="someone-else")
    result = verify([path], keys.verify)
    assert result.ok, result.describe()
    assert result.chains[0].summary()["unanchored_records"] == 3
    assert "3 record(s) after the last checkpoint" in result.describe()
    auditor.close()
