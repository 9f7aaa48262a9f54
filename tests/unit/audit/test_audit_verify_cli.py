"""`pingcalc audit keygen` and `pingcalc audit verify`: exit 0 only for an intact, anchored
trail; `FILE:LINE: reason` otherwise; 2 for input that cannot be read.

Threat: TM-24 (repudiation); an operator or a scheduled job must be able to prove the trail
intact, a tampered trail must fail loudly with the file and line to look at, and the key
files must be private and never overwritten.
"""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from pingcalc.audit import Auditor, ChainedFileSink, StdoutSink, rotated_paths
from pingcalc.audit.keys import state_path
from pingcalc.audit.shipping import destination
from pingcalc.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tests_support import AuditKeys, run_pingcalc


def write(
    path: Path, keys: AuditKeys, count: int, max_bytes: int = 10 * 1024 * 1024
) -> tuple[list[Path], Path]:
    """`count` records and a checkpoint; the files and a log holding the shipped checkpoint."""
    log = io.StringIO()
    auditor = Auditor(
        [StdoutSink(io.StringIO()), ChainedFileSink(path, keys.service, max_bytes=max_bytes)],
        checkpoint_to=[destination("stdout", StdoutSink(log))],
    )
    for index in range(count):
        auditor.emit("calculation", token="calc", outcome="success", expression=str(index))
    auditor.close()
    saved = path.with_name("container.log")
    saved.write_text('{"event":"access"}\n' + log.getvalue())
    return [*rotated_paths(path), path], saved


def verify_cli(*args: str | Path) -> list[str]:
    return ["audit", "verify", *map(str, args)]


def test_verify_exits_0_for_an_intact_anchored_trail(
    tmp_path: Path, audit_keys: AuditKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """An untouched set of rotated files, in any order, with its log: exit 0 and a summary."""
    files, log = write(tmp_path / "audit.jsonl", audit_keys, 100, max_bytes=4096)
    argv = verify_cli("--key", audit_keys.verify, "--checkpoints", log, *reversed(files))
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert f"intact: 102 records in {len(files)} file(s)" in out
    assert "1 shipped checkpoint(s) found in the files" in out


def test_verify_exits_1_and_names_the_broken_line(
    tmp_path: Path, audit_keys: AuditKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deleted record gives exit 1 and `FILE:LINE: what is wrong`."""
    (path,), _ = write(tmp_path / "audit.jsonl", audit_keys, 20)
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[6]
    path.write_bytes(b"".join(lines))
    assert main(verify_cli("--key", audit_keys.verify, path)) == EXIT_FAILED
    assert capsys.readouterr().out.strip() == (
        f"{path}:7: prev does not match line 6's mac (line deleted, inserted or reordered)"
    )


def test_verify_json_is_one_object_for_scripts(
    tmp_path: Path, audit_keys: AuditKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json` prints the verdict, the chains and the problem as one JSON object."""
    (path,), log = write(tmp_path / "audit.jsonl", audit_keys, 5)
    assert main(verify_cli("--json", "--key", audit_keys.verify, "--checkpoints", log, path)) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["ok"] is True and verdict["problem"] is None
    assert verdict["records"] == 7 and verdict["checkpoints"]["matched"] == 1
    (chain,) = verdict["chains"]
    assert chain["anchored_seq"] == chain["last_seq"] == 6 and chain["unanchored_records"] == 0
    drop = path.read_bytes().splitlines(keepends=True)[:-2]
    path.write_bytes(b"".join(drop))
    argv = verify_cli("--json", "--key", audit_keys.verify, "--checkpoints", log, path)
    assert main(argv) == EXIT_FAILED
    problem = json.loads(capsys.readouterr().out)["problem"]
    assert (problem["file"], problem["line"]) == (str(path), 6)
    assert "cut tail" in problem["reason"]


@pytest.mark.parametrize("which", ["audit file", "checkpoint log", "key"])
def test_verify_exits_2_for_unreadable_input(
    tmp_path: Path, audit_keys: AuditKeys, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    """A missing file, log or key is a usage error (2), not a verdict on the chain."""
    (path,), _ = write(tmp_path / "audit.jsonl", audit_keys, 3)
    missing = tmp_path / "missing"
    argv = {
        "audit file": verify_cli("--key", audit_keys.verify, path, missing),
        "checkpoint log": verify_cli("--key", audit_keys.verify, "--checkpoints", missing, path),
        "key": verify_cli("--key", missing, path),
    }[which]
    assert main(argv) == EXIT_USAGE
    assert f"cannot read {missing}" in capsys.readouterr().err


def test_verify_refuses_the_evolved_state_as_key(
    tmp_path: Path, audit_keys: AuditKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """The service's evolved key cannot check earlier epochs: verify says to use the offline
    initial key instead of reporting the trail broken."""
    (path,), _ = write(tmp_path / "audit.jsonl", audit_keys, 3)
    assert main(verify_cli("--key", state_path(path), path)) == EXIT_USAGE
    assert "not the initial key" in capsys.readouterr().err


def test_verify_console_script_reports_an_edit(tmp_path: Path, audit_keys: AuditKeys) -> None:
    """The installed `pingcalc` command gives the same verdict from a shell or a cron job."""
    (path,), _ = write(tmp_path / "audit.jsonl", audit_keys, 10)
    command = verify_cli("--key", audit_keys.verify, path)
    intact = run_pingcalc(*command)
    assert intact.returncode == 0, intact.stderr
    path.write_bytes(path.read_bytes().replace(b'"expression":"4"', b'"expression":"5"'))
    broken = run_pingcalc(*command)
    assert broken.returncode == 1
    assert broken.stdout.strip() == f"{path}:6: seal mismatch: the record was edited, or " + (
        "sealed without the key of epoch 0"
    )


def test_keygen_writes_two_private_files_and_prints_only_the_key_id(tmp_path: Path) -> None:
    """keygen: two 0600 files holding the same new key; stdout has the key id, never the key."""
    service, offline = tmp_path / "service.key", tmp_path / "offline.key"
    run = run_pingcalc(
        "audit", "keygen", "--service-key", str(service), "--verify-key", str(offline)
    )
    assert run.returncode == 0, run.stderr
    for path in (service, offline):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert service.read_bytes() == offline.read_bytes()
    header, key = service.read_text().splitlines()
    assert len(bytes.fromhex(key)) == 32
    assert run.stdout.strip() == json.loads(header)["key_id"]
    assert key not in run.stdout + run.stderr


@pytest.mark.parametrize("existing", ["service", "verify"])
def test_keygen_refuses_to_overwrite_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], existing: str
) -> None:
    """An existing key file (maybe in use) is never overwritten, and no new file is left."""
    service, offline = tmp_path / "service.key", tmp_path / "offline.key"
    kept = service if existing == "service" else offline
    kept.write_text("the key in use\n")
    argv = ["audit", "keygen", "--service-key", str(service), "--verify-key", str(offline)]
    assert main(argv) == EXIT_USAGE
    assert "never overwritten" in capsys.readouterr().err
    assert kept.read_text() == "the key in use\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name]
