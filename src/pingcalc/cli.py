"""The `pingcalc` command: serve, token, calc, ping, audit, check.

Exit codes: 0 success, 1 a check or verification failed, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pingcalc.auth import TokenStore, TokenStoreError, create_token, read_records, revoke_token
from pingcalc.errors import PingcalcError
from pingcalc.settings import SCOPES, Settings, SettingsError, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

NO_TOKENS_HINT = "create one with: pingcalc token create NAME --scope ping --scope calculate"


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
    from pingcalc.logging import configure_logging
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
    _audit_cli("token_created", token=record.name, scopes=sorted(record.scopes))
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
    _audit_cli("token_revoked", token=record.name)
    print(f"revoked token {record.name!r}", file=sys.stderr)
    return EXIT_OK


def _audit_cli(event: str, **fields: Any) -> None:
    from pingcalc.audit import Auditor
    from pingcalc.logging import configure_logging

    configure_logging("info", stream=sys.stderr)
    Auditor().emit(event, outcome="success", client_ip="cli", **fields)


# --- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pingcalc",
        description="Hardened ping and calculate service. Settings come from PINGCALC_* "
        "variables, .env and /run/secrets; options here override them.",
    )
    parser.add_argument("--tokens-file", type=Path, help="tokens file (PINGCALC_TOKENS_FILE)")
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
    create.set_defaults(handler=cmd_token_create)
    token_sub.add_parser("list", help="list tokens (never secrets)").set_defaults(
        handler=cmd_token_list
    )
    revoke = token_sub.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    revoke.set_defaults(handler=cmd_token_revoke)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pingcalc` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SettingsError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except PingcalcError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
