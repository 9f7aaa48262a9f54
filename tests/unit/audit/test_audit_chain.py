"""The hash chain of the audit file: any edit, insertion, deletion or reordering is found.

Threat: repudiation / log tampering (someone with write access to the audit file quietly
removes or rewrites what they did). Each test tampers with a real chain written by `Auditor`
and checks that `verify` names the first broken line.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from pingcalc.audit import GENESIS, Auditor, seal, verify

RECORDS = 1000


def write_chain(path: Path, count: int, **auditor_options: object) -> Auditor:
    """Write `count` records through a real Auditor (stdout captured, not printed)."""
    auditor = Auditor(path, stream=io.StringIO(), **auditor_options)  # type: ignore[arg-type]
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
    auditor.close()
    return auditor


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def chain_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """1,000 records written once and copied into each test (writing is the slow part)."""
    path = tmp_path_factory.mktemp("chain") / "audit.jsonl"
    write_chain(path, RECORDS)
    return path.read_bytes()


@pytest.fixture
def chain(tmp_path: Path, chain_bytes: bytes) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(chain_bytes)
    return path


def test_chain_of_1000_records_verifies(chain: Path) -> None:
    """An untouched chain of 1,000 records verifies, from genesis to the last hash."""
    result = verify([chain])
    lines = lines_of(chain)
    assert result.ok, result.describe()
    assert result.records == RECORDS == len(lines)
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert first["prev"] == GENESIS and first["seq"] == 0
    assert last["seq"] == RECORDS - 1
    assert result.last_hash == last["hash"]


def test_each_hash_is_sha256_of_the_record_bytes_without_it(chain: Path) -> None:
    """The documented format can be checked without pingcalc: hash = SHA-256(line minus hash)."""
    for raw in lines_of(chain)[:5]:
        record = json.loads(raw)
        digest = record.pop("hash")
        body = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode()
        assert hashlib.sha256(body).hexdigest() == digest


@pytest.mark.parametrize("line", [1, 500, RECORDS])
def test_editing_one_byte_is_detected_at_that_line(chain: Path, line: int) -> None:
    """Changing one character of a record (here a digit of its result) breaks its own hash."""
    lines = lines_of(chain)
    original = lines[line - 1]
    position = original.index(b'"result":"') + len(b'"result":"')
    digit = original[position : position + 1]
    lines[line - 1] = (
        original[:position] + (b"7" if digit != b"7" else b"8") + original[position + 1 :]
    )
    chain.write_bytes(b"".join(lines))
    result = verify([chain])
    assert not result.ok
    assert (result.file, result.line) == (chain, line)
    assert result.problem == "hash mismatch (record edited)"


def test_editing_whitespace_only_is_detected(chain: Path) -> None:
    """Even an edit that keeps the JSON meaning (an added space) changes the hashed bytes."""
    lines = lines_of(chain)
    lines[41] = lines[41].replace(b'"event":', b'"event": ', 1)
    chain.write_bytes(b"".join(lines))
    result = verify([chain])
    assert (result.ok, result.line, result.problem) == (
        False,
        42,
        "hash mismatch (record edited)",
    )


def test_resealing_an_edited_record_is_detected_at_the_next_line(chain: Path) -> None:
    """An editor who recomputes the edited record's own hash is caught by the next record's prev."""
    lines = lines_of(chain)
    record = json.loads(lines[299])
    record.pop("hash")
    record["token"] = "someone-else"
    lines[299] = seal(record)
    chain.write_bytes(b"".join(lines))
    result = verify([chain])
    assert not result.ok and result.line == 301
    assert "prev does not match line 300's hash" in (result.problem or "")


def test_deleting_a_line_is_detected_where_it_was(chain: Path) -> None:
    """Removing record 500 leaves line 500 pointing at a hash that is no longer there."""
    lines = lines_of(chain)
    del lines[499]
    chain.write_bytes(b"".join(lines))
    result = verify([chain])
    assert not result.ok and result.line == 500
    assert result.problem == (
        "prev does not match line 499's hash (line deleted, inserted or reordered)"
    )


def test_inserting_a_forged_record_is_detected(chain: Path) -> None:
    """A well-formed record slipped in after line 10 (prev chained correctly) breaks line 12."""
    lines = lines_of(chain)
    before = json.loads(lines[9])
    forged = seal(
        {
            "ts": before["ts"],
            "event": "token_revoked",
            "request_id": None,
            "client_ip": "cli",
            "token": "intruder",
            "outcome": "success",
            "reason": None,
            "seq": before["seq"] + 1,
            "prev": before["hash"],
        }
    )
    lines.insert(10, forged)
    chain.write_bytes(b"".join(lines))
    result = verify([chain])
    assert not result.ok and result.line == 12
    assert "prev does not match line 11's hash" in (result.problem or "")


def test_swapping_two_lines_is_detected_at_the_first(chain: Path) -> None:
    """Reordering records 300 and 301 breaks the chain at line 300."""
    lines = lines_of(chain)
    lines[299], lines[300] = lines[300], lines[299]
    chain.write_bytes(b"".join(lines))
    result = verify([chain])
    assert not result.ok and result.line == 300
    assert "prev does not match line 299's hash" in (result.problem or "")


def test_truncating_the_middle_is_detected_at_the_cut(chain: Path) -> None:
    """Cutting from the middle of line 400 to the middle of line 600 is found at line 400."""
    data = chain.read_bytes()
    lines = lines_of(chain)
    start = sum(len(raw) for raw in lines[:399]) + len(lines[399]) // 2
    end = sum(len(raw) for raw in lines[:599]) + len(lines[599]) // 3
    chain.write_bytes(data[:start] + data[end:])
    result = verify([chain])
    assert not result.ok and result.line == 400
    assert result.problem in {"not valid JSON (truncated?)", "hash mismatch (record edited)"}


def test_a_torn_last_line_is_reported_as_truncated(chain: Path) -> None:
    """A file cut in the middle of its last record (a crash, or a cut tail) does not verify."""
    data = chain.read_bytes()
    chain.write_bytes(data[:-40])
    result = verify([chain])
    assert not result.ok and result.line == RECORDS
    assert (result.problem or "").startswith("not valid JSON (truncated?)")


def test_a_replayed_record_is_detected(chain: Path) -> None:
    """Copying a record further down (a replay of an old, valid line) breaks the chain there."""
    lines = lines_of(chain)
    lines.insert(700, lines[100])
    chain.write_bytes(b"".join(lines))
    result = verify([chain])
    assert not result.ok and result.line == 701


def test_a_cut_head_is_reported_not_hidden(chain: Path) -> None:
    """Dropping the first records leaves a chain that starts above seq 0, which is reported."""
    lines = lines_of(chain)
    chain.write_bytes(b"".join(lines[10:]))
    result = verify([chain])
    assert result.ok  # the rest is consistent: a chain has no anchor before its first record
    assert result.first_seq == 10
    assert "seq 10" in result.describe()


def test_callers_cannot_forge_chain_fields(tmp_path: Path) -> None:
    """`prev`, `hash`, `seq` and `ts` passed by a caller are ignored, not written."""
    path = tmp_path / "audit.jsonl"
    auditor = Auditor(path, stream=io.StringIO())
    auditor.emit("ping", outcome="success", prev="f" * 64, hash="e" * 64, seq=99, ts="1970")
    auditor.close()
    record = json.loads(path.read_bytes())
    assert record["prev"] == GENESIS and record["seq"] == 0 and record["ts"] != "1970"
    assert record["hash"] != "e" * 64
    assert verify([path]).ok
