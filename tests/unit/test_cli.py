"""The `pingcalc` command as scripts and people use it: version, JSON output, exit codes, and
what `token create` prints where (the secret alone on stdout; TM-02)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest

from pingcalc import __version__
from pingcalc.cli import build_parser
from tests_support import PINGCALC, AuditKeys, file_records, process_env, run_pingcalc

README = Path(__file__).resolve().parents[2] / "README.md"


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env = {"PINGCALC_TOKENS_FILE": str(tmp_path / "tokens.json"), **env}
    return run_pingcalc(*args, env=env, cwd=tmp_path)


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    """`pingcalc --version` answers like any CLI."""
    done = _cli(tmp_path, "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"pingcalc {__version__}")


def test_help_documents_the_exit_codes(tmp_path: Path) -> None:
    """`--help` ends with every exit code the command uses."""
    text = _cli(tmp_path, "--help").stdout
    for code in ("0 ", "1 ", "2 ", "130"):
        assert re.search(rf"^\s+{code}", text, re.MULTILINE), code


def test_calc_json_for_results_and_rejections(tmp_path: Path) -> None:
    """`calc --json` prints one JSON document either way; the exit code still tells which."""
    ok = _cli(tmp_path, "calc", "--json", "2*(3+4)")
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"expression": "2*(3+4)", "result": 14}
    bad = _cli(tmp_path, "calc", "--json", "(1).__class__")
    assert bad.returncode == 2
    error = json.loads(bad.stdout)["error"]
    assert error["position"] == 5 and "__class__" in error["message"]


def test_token_list_and_check_json(tmp_path: Path) -> None:
    """`token list --json` lists names, scopes and times (never hashes); `check --json` the
    findings with the same exit code as the text report."""
    assert _cli(tmp_path, "token", "create", "ci", "--scope", "ping").returncode == 0
    listed = _cli(tmp_path, "token", "list", "--json")
    [row] = json.loads(listed.stdout)
    assert set(row) == {"name", "scopes", "created"} and row["scopes"] == ["ping"]
    text, as_json = _cli(tmp_path, "check"), _cli(tmp_path, "check", "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == text.returncode
    assert report["failed"] == sum(f["level"] == "fail" for f in report["findings"])
    assert {f["check"] for f in report["findings"]} >= {"bind", "tokens", "ping-backend"}


def test_token_create_keeps_the_audit_line_off_a_terminal(
    tmp_path: Path, audit_keys: AuditKeys
) -> None:
    """At a terminal, stdout is the secret and stderr one human line; the audit record still
    reaches the audit file. With `--show-audit` (or a non-terminal stderr) it is shown."""
    audit = tmp_path / "audit.jsonl"
    master, slave = pty.openpty()
    env = process_env()
    env |= {"PINGCALC_TOKENS_FILE": str(tmp_path / "tokens.json"), **audit_keys.env(audit)}
    try:
        done = subprocess.run(
            [PINGCALC, "token", "create", "ops", "--scope", "calculate"],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        os.close(slave)
        terminal = os.read(master, 65536).decode()
    finally:
        os.close(master)
    secret = done.stdout.strip()
    assert done.returncode == 0 and secret.startswith("pc_") and "\n" not in secret
    assert "created token 'ops'" in terminal and "token_created" not in terminal
    assert secret not in terminal
    [record] = [r for r in file_records(audit) if r.get("event") == "token_created"]
    assert record["token"] == "ops"
    shown = _cli(tmp_path, "token", "create", "ops2", "--scope", "ping", "--show-audit")
    assert '"event":"token_created"' in shown.stderr and shown.stdout.startswith("pc_")


def _readme_commands() -> list[list[str]]:
    """Every `pingcalc ...` command in the README's code (blocks and `inline`), as argv."""
    text = README.read_text(encoding="utf-8")
    code = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    code += re.findall(r"`([^`\n]*pingcalc [^`\n]*)`", text)
    found = []
    for snippet in code:
        for match in re.finditer(r"(?:\.venv/bin/)?\bpingcalc((?: [^\n#|)\\]+)+)", snippet):
            argv, optional = [], 0
            for word in match.group(1).split():
                # `[--opt X]` is optional (left out); `<...>` or `...` ends the command.
                optional += word.count("[")
                if optional:
                    optional -= word.count("]")
                    continue
                if word.startswith("<") or word == "...":
                    break
                argv.append(word.strip("\"'"))
            if argv and not argv[0].endswith(":"):  # "the pingcalc CLI", not a command
                found.append(argv)
    # A whole command: a subcommand, or --version/--help (not a lone option named in prose).
    return [a for a in found if set(a) & (_COMMANDS | {"--version", "--help"})]


_COMMANDS = {"serve", "token", "calc", "ping", "check", "audit"}


def test_every_pingcalc_command_in_the_readme_exists() -> None:
    """A newcomer copying a `pingcalc ...` line from the README gets a command the CLI knows."""
    commands = _readme_commands()
    assert len(commands) >= 8, commands
    parser = build_parser()
    for argv in commands:
        filled = ["x" if w in {"NAME", "FILE", "FILE..."} else w for w in argv if w != "--if-none"]
        if filled[-1] in {"--scope", "--tokens-file", "--env-file"}:
            filled.append("ping")
        if not any(w.startswith("-") for w in filled) and len(filled) <= 2:
            filled.append("--help")  # prose naming a command ("`pingcalc calc` accepts ...")
        try:
            parser.parse_args(filled)
        except SystemExit as exc:  # argparse's way of refusing, and of --help/--version
            if exc.code != 0:
                pytest.fail(f"README names `pingcalc {' '.join(argv)}`: exit {exc.code}")
