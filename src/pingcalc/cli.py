"""The `pingcalc` command: serve, token, calc, ping, audit, check.

Exit codes (also in `pingcalc --help`): 0 success, 1 a check or verification failed or a ping
got no reply, 2 bad input or configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pingcalc import __version__
from pingcalc.auth import (
    CREATE_COMMAND,
    TokenStore,
    TokenStoreError,
    create_token,
    read_records,
    revoke_token,
)
from pingcalc.envfile import ENV_FILE_VARIABLE
from pingcalc.errors import PingcalcError
from pingcalc.settings import SCOPES, Settings, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

if TYPE_CHECKING:
    from pingcalc.ping import Destination, PingBackend, PingPlan, PingResult

NO_TOKENS_HINT = f"create one with: {CREATE_COMMAND}"

EXIT_CODES = """exit codes:
  0    success
  1    a check or an audit verification failed, or a ping got no reply
  2    bad input or configuration (the message on stderr names it)
  130  interrupted (Ctrl-C)"""


def _err(message: str) -> None:
    print(f"pingcalc: {message}", file=sys.stderr)


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "tokens_file", None):
        overrides["tokens_file"] = args.tokens_file
    return load_settings(**overrides)


# --- serve -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the HTTP server; refuse to start without tokens (fail closed)."""
    from pingcalc.logs import configure_logging
    from pingcalc.server import serve

    settings = _settings(args, host=args.host, port=args.port, workers=args.workers)
    configure_logging(settings.log_level)
    try:
        store = TokenStore(settings.tokens_file)
    except TokenStoreError as exc:
        _err(f"refusing to start: {exc}")
        return EXIT_USAGE
    if len(store) == 0:
        _err(
            f"refusing to start: no API tokens in {settings.tokens_file} "
            f"(PINGCALC_TOKENS_FILE); {NO_TOKENS_HINT}"
        )
        return EXIT_USAGE
    serve(settings)
    return EXIT_OK


# --- token -------------------------------------------------------------------------------


def cmd_token_create(args: argparse.Namespace) -> int:
    """Create a token and print it once."""
    settings = _settings(args)
    if args.if_none and read_records(settings.tokens_file):
        print(f"{settings.tokens_file} already has tokens; none created", file=sys.stderr)
        return EXIT_OK
    record, secret = create_token(settings.tokens_file, args.name, args.scope or [])
    # The secret goes out first: whatever happens next, it must not be lost.
    print(secret.reveal(), flush=True)
    _audit_cli(
        settings,
        "token_created",
        show=args.show_audit,
        token=record.name,
        scopes=sorted(record.scopes),
    )
    print(
        f"created token {record.name!r} with scopes {', '.join(sorted(record.scopes))} in "
        f"{settings.tokens_file}; it is shown only this once",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    """List token names, scopes and creation times; never secrets or hashes."""
    settings = _settings(args)
    records = read_records(settings.tokens_file)
    if args.json:
        rows = [{"name": r.name, "scopes": sorted(r.scopes), "created": r.created} for r in records]
        print(json.dumps(rows))
        return EXIT_OK
    if not records:
        print(f"no tokens in {settings.tokens_file}; {NO_TOKENS_HINT}", file=sys.stderr)
        return EXIT_OK
    width = max(len(r.name) for r in records)
    for record in records:
        print(f"{record.name:<{width}}  {','.join(sorted(record.scopes)):<24}  {record.created}")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    """Remove a token; a running server stops accepting it at its next request."""
    settings = _settings(args)
    record = revoke_token(settings.tokens_file, args.name)
    _audit_cli(settings, "token_revoked", show=args.show_audit, token=record.name)
    print(f"revoked token {record.name!r}", file=sys.stderr)
    return EXIT_OK


def _audit_cli(settings: Settings, event: str, *, show: bool, **fields: Any) -> None:
    import io

    from pingcalc.audit import build_auditor

    # The record always reaches the audit file when one is configured. Its JSON copy goes to
    # stderr (never stdout: `token create` prints the secret there) only when asked or when
    # stderr is not a terminal (a script's or a service manager's log keeps it); a person at a
    # terminal sees the one-line summary instead.
    to_stderr = show or not sys.stderr.isatty()
    auditor = build_auditor(settings, stream=sys.stderr if to_stderr else io.StringIO())
    auditor.emit(event, outcome="success", client_ip="cli", uid=os.getuid(), **fields)
    auditor.close()
    if not auditor.healthy:
        _err(f"the audit file {settings.audit_file} could not be written: {auditor.last_error}")


# --- audit -------------------------------------------------------------------------------


def cmd_audit_keygen(args: argparse.Namespace) -> int:
    """Write a new initial audit key to two files (0600); print only its key id."""
    from pingcalc.audit import keygen

    key_id = keygen(args.service_key, args.verify_key)
    print(key_id)
    print(
        f"wrote audit key {key_id} to {args.service_key} and {args.verify_key} (mode 0600). "
        f"Give {args.service_key} to the service as PINGCALC_AUDIT_KEY_FILE and remove it after "
        f"the first start; keep {args.verify_key} offline: it verifies every record, and it "
        "could forge any (docs/audit.md, key ceremony)",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check audit files against the initial key and the shipped checkpoints."""
    import json

    from pingcalc.audit import AuditKeyError, order_files, verify

    paths: list[Path] = args.files
    try:
        result = verify(paths, args.key, args.checkpoints or [])
    except (OSError, AuditKeyError) as exc:
        message = (
            f"cannot read {exc.filename}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
        )
        if args.json:
            print(json.dumps({"ok": False, "error": message}))
        _err(message)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result.to_json()))
    elif result.ok:
        print(f"{', '.join(str(p) for p in order_files(paths))}: {result.describe()}")
    else:
        print(result.describe())
    return EXIT_OK if result.ok else EXIT_FAILED


# --- calc --------------------------------------------------------------------------------


def cmd_calc(args: argparse.Namespace) -> int:
    """Evaluate one expression with the server's engine and limits; exit 2 if rejected."""
    from pingcalc.calc import Bounds, CalcError, evaluate

    bounds = Bounds.from_mapping(_settings(args).model_dump(), prefix="calc_")
    try:
        result = evaluate(args.expression, bounds)
    except CalcError as exc:
        if args.json:
            error = {"message": exc.message, "position": exc.position}
            print(json.dumps({"expression": args.expression, "error": error}))
        _err(str(exc))
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"expression": args.expression, "result": result}))
    else:
        print(result)
    return EXIT_OK


# --- ping --------------------------------------------------------------------------------


def cmd_ping(args: argparse.Namespace) -> int:
    """Ping an address or a host name with the server's engine and policy, live.

    Exit 0 if any echo was answered, 1 if none was or the lookup or the backend failed,
    2 for a refused target, an unknown name or a bad option (via `main`).
    """
    import asyncio

    from pingcalc.ping import (
        BackendUnavailableError,
        FamilyUnavailableError,
        PingPlan,
        ResolverBusyError,
        ResolverFailedError,
        ResolverTimeoutError,
        TargetPolicy,
        resolve_target,
        select_backend,
        select_resolver,
    )
    from pingcalc.ping.selection import operator_fix

    settings = _settings(args)
    # Refused plans, targets and unknown names raise PingcalcError: main() prints, exits 2.
    plan = PingPlan.from_settings(settings, count=args.count, family=args.family)
    policy = TargetPolicy(settings.ping_allow, settings.ping_deny)
    resolver = select_resolver(
        settings.ping_resolver,
        timeout=settings.ping_resolve_timeout_seconds,
        max_in_flight=settings.ping_max_lookups,
    )
    try:
        destination = asyncio.run(
            resolve_target(args.target, policy=policy, resolver=resolver, family=plan.family)
        )
        backend, reason = select_backend(
            args.backend or settings.ping_backend,
            ping_path=str(settings.ping_binary) if settings.ping_binary else None,
        )
        status = backend.status()
        if not status.available:  # say so before the PING line, not after it
            raise BackendUnavailableError(f"no ping backend is available: {status.reason}")
        print(f"backend: {backend.name} ({reason})", file=sys.stderr, flush=True)
        output = "json-lines" if args.json_lines else "json" if args.json else "text"
        result = asyncio.run(_ping_live(plan, backend, destination, output))
    except (
        BackendUnavailableError,
        ResolverTimeoutError,
        ResolverFailedError,
        ResolverBusyError,
    ) as exc:
        _err(str(exc))
        if isinstance(exc, BackendUnavailableError) and not isinstance(exc, FamilyUnavailableError):
            _err(f"fix: {operator_fix()}")
        return EXIT_FAILED
    return EXIT_OK if result.received else EXIT_FAILED


async def _ping_live(
    plan: PingPlan, backend: PingBackend, destination: Destination, output: str
) -> PingResult:
    """Print each reply or timeout as it happens (flushed), then the summary; the result."""
    import contextlib
    import json

    from pingcalc.ping import PingResult, Reply

    address = destination.address
    where = f"{address} (IPv{address.version})"
    if destination.name is not None:
        where = f"{destination.name} ({address}, IPv{address.version})"
    if output == "text":
        print(f"PING {where}: {plan.echoes.count} echo requests", flush=True)
    result: PingResult | None = None
    async with contextlib.aclosing(plan.stream(backend, destination)) as events:
        async for item in events:
            if isinstance(item, PingResult):
                result = item
            elif output == "json-lines":
                print(json.dumps(item.to_dict()), flush=True)
            elif output == "text":
                detail = f"time={item.rtt_ms:.3f} ms" if isinstance(item, Reply) else "timeout"
                print(f"  seq={item.seq} {detail}", flush=True)
    if result is None:  # every stream ends with its result; a backend bug otherwise
        raise RuntimeError("the ping stream ended without a result")
    if output != "text":
        print(json.dumps(result.to_dict()), flush=True)
        return result
    print(
        f"--- {where}: {result.sent} sent, {result.received} received, "
        f"{result.loss_percent:g}% loss"
    )
    if result.rtt is not None:
        rtt = result.rtt
        stats = f"{rtt.min:.3f}/{rtt.avg:.3f}/{rtt.max:.3f}/{rtt.stddev:.3f}"
        print(f"rtt min/avg/max/stddev = {stats} ms", flush=True)
    return result


# --- check -------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Self-audit the configuration and environment; exit 1 if any check fails."""
    from pingcalc.check import run_checks

    findings = run_checks(_settings(args))
    failed = sum(f.level == "fail" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    if args.json:
        rows = [
            {"level": f.level, "check": f.check, "message": f.message, "fix": f.fix}
            for f in findings
        ]
        print(json.dumps({"findings": rows, "failed": failed, "warnings": warnings}))
        return EXIT_FAILED if failed else EXIT_OK
    for finding in findings:
        print(finding.render())
    print(f"{failed} failed, {warnings} warnings")
    return EXIT_FAILED if failed else EXIT_OK


# --- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pingcalc",
        description="Hardened ping and calculate service. Settings come from PINGCALC_* "
        "variables, an explicit env file (--env-file / PINGCALC_ENV_FILE; never ./.env) and "
        "/run/secrets; options here override them.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pingcalc {__version__}")
    parser.add_argument("--tokens-file", type=Path, help="tokens file (PINGCALC_TOKENS_FILE)")
    parser.add_argument(
        "--env-file",
        type=Path,
        help=f"read settings from this file ({ENV_FILE_VARIABLE}); it must be owned by you "
        "or root and not writable by group or others",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP server (127.0.0.1:8080 by default)")
    serve.add_argument("--host", help="bind address (PINGCALC_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PINGCALC_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (PINGCALC_WORKERS)")
    serve.set_defaults(handler=cmd_serve)

    token = sub.add_parser("token", help="create, list and revoke API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("name", help="a name for the token (letters, digits, . _ -)")
    create.add_argument(
        "--scope", action="append", choices=SCOPES, help="a scope to grant (repeatable)"
    )
    create.add_argument(
        "--if-none", action="store_true", help="only if the tokens file has no token yet"
    )
    show_audit = (
        "also print the audit record (JSON) on stderr; it is printed anyway when stderr is "
        "not a terminal, and always written to PINGCALC_AUDIT_FILE when set"
    )
    create.add_argument("--show-audit", action="store_true", help=show_audit)
    create.set_defaults(handler=cmd_token_create)
    listing = token_sub.add_parser("list", help="list tokens (never secrets)")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(handler=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    revoke.add_argument("--show-audit", action="store_true", help=show_audit)
    revoke.set_defaults(handler=cmd_token_revoke)

    calc = sub.add_parser(
        "calc",
        help="evaluate an arithmetic expression with the server's engine",
        epilog="An expression starting with '-' goes after '--': pingcalc calc -- '-2**2'",
    )
    calc.add_argument("expression", help="for example '2*(3+4)' (quote it for the shell)")
    calc.add_argument(
        "--json", action="store_true", help='print {"expression", "result"} (or "error")'
    )
    calc.set_defaults(handler=cmd_calc)

    ping = sub.add_parser(
        "ping",
        help="ping an address or host name with the server's engine and policy",
        description="Send ICMP echoes with the server's engine: the same target rules, name "
        "lookup, policy, count bound and deadline as POST /api/v1/ping. A host name is "
        "resolved once (PINGCALC_PING_RESOLVER, default the system resolver) and refused if "
        "any of its addresses is refused. Each reply or timeout is printed as it happens.",
        epilog="Output: text by default; --json prints only the final result (the API's JSON); "
        '--json-lines prints one JSON object per echo as it happens ({"event": "reply", "seq": '
        'N, "rtt_ms": T} or {"event": "timeout", "seq": N}), then the final result. '
        "Exit status: 0 if any echo was answered; 1 if none was, or the lookup timed out or "
        "failed, or no backend can ping; 2 for a refused target, an unknown name or a bad option.",
    )
    ping.add_argument(
        "target",
        help="an IPv4 dotted-quad, an IPv6 address, or a host name (IDNA allowed)",
    )
    ping.add_argument("--count", type=int, help="echo requests, 1-5 (PINGCALC_PING_DEFAULT_COUNT)")
    ping.add_argument(
        "--family",
        type=int,
        choices=(4, 6),
        help="resolve the name to IPv4 or IPv6 only (default: IPv4 if the name has one)",
    )
    ping.add_argument(
        "--backend",
        choices=("auto", "datagram", "subprocess"),
        help="how to send the echoes (PINGCALC_PING_BACKEND, default auto)",
    )
    output = ping.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print only the final result as JSON")
    output.add_argument(
        "--json-lines",
        action="store_true",
        help="print one JSON line per echo as it happens, then the final result",
    )
    ping.set_defaults(handler=cmd_ping)

    check = sub.add_parser("check", help="self-audit of the configuration and environment")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.set_defaults(handler=cmd_check)

    audit = sub.add_parser("audit", help="work with the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    keygen = audit_sub.add_parser(
        "keygen", help="create the initial audit key: one file for the service, one offline"
    )
    keygen.add_argument(
        "--service-key", type=Path, required=True, metavar="FILE",
        help="for the service (PINGCALC_AUDIT_KEY_FILE); never overwritten",
    )  # fmt: skip
    keygen.add_argument(
        "--verify-key", type=Path, required=True, metavar="FILE2",
        help="the copy the operator keeps offline for `audit verify --key`",
    )  # fmt: skip
    keygen.set_defaults(handler=cmd_audit_keygen)
    audit_verify = audit_sub.add_parser(
        "verify",
        help="check audit files: seals, chain, epochs, shipped checkpoints (exit 0 only intact)",
    )
    audit_verify.add_argument(
        "--key", type=Path, required=True, metavar="FILE2",
        help="the initial key kept offline (from audit keygen --verify-key)",
    )  # fmt: skip
    audit_verify.add_argument(
        "--checkpoints", type=Path, action="append", metavar="LOG",
        help="a JSON-lines log holding the shipped checkpoints, e.g. the saved container log "
        "(repeatable); without it a cut tail cannot be seen",
    )  # fmt: skip
    audit_verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    audit_verify.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="FILE.1 FILE.2 ... FILE, any order"
    )
    audit_verify.set_defaults(handler=cmd_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pingcalc` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.env_file is not None:
        # Through the environment, so `serve --workers N` processes read the same file.
        os.environ[ENV_FILE_VARIABLE] = str(args.env_file)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except PingcalcError as exc:  # SettingsError included: bad configuration is bad input
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
