"""The sealed chain of the audit file: any edit, insertion, deletion or reordering is found,
even when the tamperer re-chains the file without the key.

Threat: TM-24, repudiation / log tampering (T1070): someone with write access to the audit
file quietly removes or rewrites what they did. Each test tampers with a real chain written by
`Auditor` and checks that `verify` names the first broken line; the untouched chain verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from pingcalc.audit import GENESIS, Auditor, ChainedFileSink, StdoutSink, verify
from pingcalc.audit.chain import RECORD_DOMAIN, seal
from pingcalc.audit.keys import EvolvingKey, read_initial_key
from pingcalc.audit.verify import Problem
from tests_support import AuditKeys

RECORDS = 1000
CHECKPOINT_EVERY = 100


def write_chain(path: Path, keys: AuditKeys, count: int) -> Auditor:
    """`count` calculation records through a real Auditor, a checkpoint every 100."""
    auditor = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, keys.service)])
    for index in range(count):
        assert auditor.emit(
            "calculation",
            request_id=f"req-{index}",
            client_ip="127.0.0.1",
            token="calc",
            outcome="success",
            expression=f"{index} * 2",
            result=str(index * 2),
        )
        if index % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
            auditor.checkpoint()
    auditor.close()
    return auditor


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def unsealed(raw: bytes) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(raw)
    record.pop("mac")
    return record


def problem_in(chain: Path, data: bytes, keys: AuditKeys) -> Problem:
    """`chain` rewritten as `data` (a tampered copy), then verified: the problem found."""
    chain.write_bytes(data)
    problem = verify([chain], keys.verify).problem
    assert problem is not None
    return problem


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditKeys, bytes]:
    """1,000 records written once and copied into each test (writing is the slow part)."""
    directory = tmp_path_factory.mktemp("chain")
    keys = AuditKeys.create(directory / "keys")
    path = directory / "audit.jsonl"
    write_chain(path, keys, RECORDS)
    return keys, path.read_bytes()


@pytest.fixture
def keys(written: tuple[AuditKeys, bytes]) -> AuditKeys:
    return written[0]


@pytest.fixture
def chain(tmp_path: Path, written: tuple[AuditKeys, bytes]) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(written[1])
    return path


def test_chain_of_1000_records_verifies(chain: Path, keys: AuditKeys) -> None:
    """An untouched chain verifies from its genesis record to the last mac, across 10 epochs."""
    result = verify([chain], keys.verify)
    lines = lines_of(chain)
    assert result.ok, result.describe()
    # The genesis record, 1,000 events and 10 checkpoints (close had nothing new to anchor).
    assert result.records == len(lines) == 1 + RECORDS + 10
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert (first["event"], first["seq"], first["epoch"], first["prev"]) == (
        "audit_chain_started",
        0,
        0,
        GENESIS,
    )
    assert (last["event"], last["epoch"]) == ("audit_checkpoint", 9)
    assert result.chains[0].last_mac == last["mac"]


def test_each_mac_is_the_documented_hmac_of_the_record_bytes(chain: Path, keys: AuditKeys) -> None:
    """The format can be checked without pingcalc: HMAC-SHA256 with the epoch's key over the
    domain and the line minus its mac; the key evolves as HMAC(k, "...evolve") (docs/audit.md)."""
    header, hex_key = keys.verify.read_text().splitlines()
    key = bytes.fromhex(hex_key)
    epoch = 0
    for raw in lines_of(chain)[:250]:
        record = json.loads(raw)
        while epoch < record["epoch"]:
            key = hmac.digest(key, b"pingcalc-audit-v1 evolve", "sha256")
            epoch += 1
        body = raw[: raw.rindex(b',"mac":')] + b"}"
        assert hmac.digest(key, RECORD_DOMAIN + body, "sha256").hex() == record["mac"]
    assert epoch == 2 and json.loads(header)["key_id"] == json.loads(lines_of(chain)[0])["key_id"]


@pytest.mark.parametrize("line", [2, 500, RECORDS])
def test_editing_one_byte_is_detected_at_that_line(chain: Path, keys: AuditKeys, line: int) -> None:
    """Changing one character of a record (here a digit of its result) breaks its own seal."""
    lines = lines_of(chain)
    original = lines[line - 1]
    position = original.index(b'"result":"') + len(b'"result":"')
    digit = original[position : position + 1]
    lines[line - 1] = (
        original[:position] + (b"7" if digit != b"7" else b"8") + original[position + 1 :]
    )
    problem = problem_in(chain, b"".join(lines), keys)
    assert (problem.path, problem.line) == (chain, line)
    assert problem.reason.startswith("seal mismatch")


def test_editing_whitespace_only_is_detected(chain: Path, keys: AuditKeys) -> None:
    """Even an edit that keeps the JSON meaning (an added space) changes the sealed bytes."""
    lines = lines_of(chain)
    lines[41] = lines[41].replace(b'"event":', b'"event": ', 1)
    problem = problem_in(chain, b"".join(lines), keys)
    assert problem.line == 42 and problem.reason.startswith("seal")


@pytest.mark.parametrize("rechain", ["sha256", "another key"])
def test_rechaining_an_edit_without_the_key_is_detected_at_the_edit(
    chain: Path, keys: AuditKeys, rechain: str
) -> None:
    """An editor who recomputes every seal after the edit, with a plain hash or a key of their
    own, is caught at the edited line: only the key holder can seal."""
    guessed = EvolvingKey.initial(bytearray(secrets.token_bytes(32)))
    lines = lines_of(chain)
    prev = json.loads(lines[298])["mac"]
    for index in range(299, len(lines)):
        record = unsealed(lines[index])
        if index == 299:
            record["token"] = "someone-else"
        record["prev"] = prev
        body = json.dumps(record, separators=(",", ":")).encode()
        if rechain == "sha256":
            prev = hashlib.sha256(body).hexdigest()
            lines[index] = body[:-1] + b',"mac":"' + prev.encode() + b'"}\n'
        else:
            lines[index], prev = seal(record, guessed)
    problem = problem_in(chain, b"".join(lines), keys)
    assert problem.line == 300
    assert problem.reason.startswith("seal mismatch")


def test_deleting_a_line_is_detected_where_it_was(chain: Path, keys: AuditKeys) -> None:
    """Removing line 500 leaves the next line pointing at a mac that is no longer there."""
    lines = lines_of(chain)
    del lines[499]
    problem = problem_in(chain, b"".join(lines), keys)
    assert problem.line == 500
    assert problem.reason == (
        "prev does not match line 499's mac (line deleted, inserted or reordered)"
    )


def test_inserting_a_forged_record_is_detected(chain: Path, keys: AuditKeys) -> None:
    """A well-formed record slipped in after line 10, chained to it, cannot carry a valid seal."""
    lines = lines_of(chain)
    before = json.loads(lines[9])
    forged = {
        **unsealed(lines[9]),
        "event": "token_revoked",
        "token": "intruder",
        "seq": before["seq"] + 1,
        "prev": before["mac"],
    }
    lines.insert(10, seal(forged, EvolvingKey.initial(bytearray(32)))[0])
    problem = problem_in(chain, b"".join(lines), keys)
    assert problem.line == 11
    assert problem.reason.startswith("seal mismatch")


def test_swapping_two_lines_is_detected_at_the_first(chain: Path, keys: AuditKeys) -> None:
    """Reordering records 300 and 301 breaks the chain at line 300."""
    lines = lines_of(chain)
    lines[299], lines[300] = lines[300], lines[299]
    problem = problem_in(chain, b"".join(lines), keys)
    assert problem.line == 300
    assert "prev does not match line 299's mac" in problem.reason


def test_truncating_the_middle_is_detected_at_the_cut(chain: Path, keys: AuditKeys) -> None:
    """Cutting from the middle of line 400 to the middle of line 600 is found at line 400."""
    data = chain.read_bytes()
    lines = lines_of(chain)
    start = sum(len(raw) for raw in lines[:399]) + len(lines[399]) // 2
    end = sum(len(raw) for raw in lines[:599]) + len(lines[599]) // 3
    problem = problem_in(chain, data[:start] + data[end:], keys)
    assert problem.line == 400
    assert problem.reason.startswith(("not valid JSON", "not a sealed", "seal mismatch"))


def test_a_torn_last_line_is_reported_as_truncated(chain: Path, keys: AuditKeys) -> None:
    """A file cut in the middle of its last record (a crash, or a cut tail) does not verify."""
    count = len(lines_of(chain))
    problem = problem_in(chain, chain.read_bytes()[:-40], keys)
    assert problem.line == count
    assert problem.reason.startswith("not valid JSON (truncated?)")


def test_a_replayed_record_is_detected(chain: Path, keys: AuditKeys) -> None:
    """Copying a valid old line further down (a replay) breaks the chain there."""
    lines = lines_of(chain)
    lines.insert(700, lines[100])
    problem = problem_in(chain, b"".join(lines), keys)
    assert problem.line == 701


def test_a_cut_head_is_detected(chain: Path, keys: AuditKeys) -> None:
    """Dropping the first records leaves a trail without its genesis: exit 1, line 1."""
    problem = problem_in(chain, b"".join(lines_of(chain)[10:]), keys)
    assert problem.line == 1
    assert problem.reason.startswith("the trail starts at seq 10, not at its genesis record")


def test_a_cut_head_with_a_forged_genesis_is_detected(chain: Path, keys: AuditKeys) -> None:
    """A new genesis record in front of a cut trail cannot be sealed without the initial key."""
    lines = lines_of(chain)
    forged_key = EvolvingKey.initial(bytearray(secrets.token_bytes(32)))
    line, _ = seal(unsealed(lines[0]), forged_key)
    problem = problem_in(chain, line + b"".join(lines[150:]), keys)
    assert problem.line == 1
    assert problem.reason.startswith("seal mismatch")


def test_the_wrong_key_is_named(chain: Path, tmp_path: Path) -> None:
    """Verifying with another key says so at line 1 instead of blaming every record."""
    other = AuditKeys.create(tmp_path / "other")
    problem = verify([chain], other.verify).problem
    assert problem is not None and problem.line == 1
    assert "--key holds key id" in problem.reason


def test_an_unkeyed_file_does_not_verify(tmp_path: Path, keys: AuditKeys) -> None:
    """A file in the old unkeyed format (a SHA-256 chain) is refused under --key: anyone could
    have re-chained it."""
    path = tmp_path / "old.jsonl"
    record = {"ts": "2026-01-01T00:00:00.000000Z", "event": "ping", "seq": 0, "prev": GENESIS}
    body = json.dumps(record, separators=(",", ":")).encode()
    digest = hashlib.sha256(body).hexdigest().encode()
    path.write_bytes(body[:-1] + b',"hash":"' + digest + b'"}\n')
    problem = verify([path], keys.verify).problem
    assert problem is not None and problem.line == 1 and "unkeyed record" in problem.reason


def test_callers_cannot_forge_chain_fields(tmp_path: Path, keys: AuditKeys) -> None:
    """`prev`, `mac`, `seq`, `epoch` and `ts` passed by a caller are ignored, not written; the
    chain's own events cannot be emitted by a caller (TM-12)."""
    path = tmp_path / "audit.jsonl"
    auditor = Auditor([StdoutSink(io.StringIO()), ChainedFileSink(path, keys.service)])
    auditor.emit("ping", outcome="success", prev="f" * 64, mac="e" * 64, seq=99, epoch=7, ts="1970")
    with pytest.raises(ValueError, match="written by the audit file itself"):
        auditor.emit("audit_checkpoint", outcome="info")
    auditor.close()
    record = json.loads(lines_of(path)[1])
    assert (record["event"], record["seq"], record["epoch"]) == ("ping", 1, 0)
    assert record["ts"] != "1970" and record["mac"] != "e" * 64 and record["prev"] != "f" * 64
    assert verify([path], keys.verify).ok


def test_the_verify_key_file_is_the_initial_key(keys: AuditKeys) -> None:
    """Both keygen files hold the same initial key, so the offline copy checks epoch 0."""
    service, offline = read_initial_key(keys.service), read_initial_key(keys.verify)
    assert service.key_id == offline.key_id and service.mac(b"x") == offline.mac(b"x")
