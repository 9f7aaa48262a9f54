"""Create the stack's secret directories with the owners and modes the containers need.

Run by deploy/stack/stack.sh inside a throw-away container of the local base image (root,
no network), because the files must belong to the services' uids and an operator in the
`docker` group cannot chown on the host. Idempotent: what exists is kept, what is missing is
made. Standard library only; prints no secret, only `tokens=N` (the tokens file's count) and
`edge_certificate=changed|same` (a running edge must then reload it).

    /s/pingcalc/  uid 10001, 0700  mounted read-only at /run/secrets in every replica
        pingcalc_tokens               the tokens file (hashes and scopes)
        pingcalc_rate_limit_storage   unix://pingcalc:<password>@/run/redis/redis.sock?db=0&...
    /s/redis/     uid 10003, 0700    mounted read-only at /run/secrets/redis
        users.acl                     ACL users with SHA-256 password hashes, default off
        probe.password                the health check's password (PING only)
    /s/edge/      uid 10002, 0700    mounted read-only at /run/secrets/edge
        server.pem                    certificate chain + key, from /tls (host-generated)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path("/s")
TLS = Path("/tls")
APP, EDGE, REDIS = (10001, 10001), (10002, 10002), (10003, 10003)
# 256-bit passwords: Redis checks them at network speed, so only length stops guessing.
PASSWORD_BYTES = 32
# Redis listens on a Unix socket only (redis.conf), on the volume compose.yaml shares.
REDIS_SOCKET = "/run/redis/redis.sock"
# A Redis that accepts but never answers must not hang requests: 1 s timeouts.
REDIS_OPTIONS = "socket_timeout=1&socket_connect_timeout=1"


def write(path: Path, data: str, owner: tuple[int, int]) -> None:
    """Replace `path` atomically, mode 0600 from the first byte, owned by `owner`."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data)
    os.chown(tmp, *owner)
    os.replace(tmp, path)


def directory(name: str, owner: tuple[int, int]) -> Path:
    path = ROOT / name
    path.mkdir(mode=0o700, exist_ok=True)
    os.chown(path, *owner)
    path.chmod(0o700)
    return path

# What pingcalc may do in Redis: its own keys only (`pingcalc:`), the limiters' scripts and
# the commands they call, PING for readiness; nothing else (no FLUSHALL, CONFIG, KEYS, DEL,
# other keys). The same rules as deploy/kubernetes/redis-secrets.sh (tests/policy).
APP_RULES = (
    "~pingcalc:* -@all +ping +evalsha +script|load +time +get +set"
    " +zadd +zcard +zremrangebyscore +zrem +expire"
)

def acl_user(name: str, password: str, rules: str) -> str:
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"user {name} on #{digest} {rules}\n"


def redis_credentials(app: Path, redis: Path) -> None:
    """The pingcalc and probe users: the ACL file gets hashes, each client its password."""
    acl, probe, uri = redis / "users.acl", redis / "probe.password", app / "pingcalc_rate_limit_storage"
    if acl.exists() and probe.exists() and uri.exists():
        # A stack made when Redis listened on TCP: the same password, the socket's address.
        old = urlsplit(uri.read_text().strip())
        if old.scheme != "unix" and old.password:
            write(uri, storage_uri(old.password), APP)
        return
    app_password = secrets.token_hex(PASSWORD_BYTES)
    probe_password = secrets.token_hex(PASSWORD_BYTES)
    users = (
        "user default off\n"
        + acl_user("pingcalc", app_password, APP_RULES)
        + acl_user("probe", probe_password, "-@all +ping")
    )
    write(acl, users, REDIS)
    write(probe, probe_password + "\n", REDIS)
    write(uri, storage_uri(app_password), APP)


def storage_uri(app_password: str) -> str:
    """pingcalc's PINGCALC_RATE_LIMIT_STORAGE: the pingcalc user over the socket."""
    return f"unix://pingcalc:{app_password}@{REDIS_SOCKET}?db=0&{REDIS_OPTIONS}\n"


def edge_certificate(edge: Path) -> bool:
    """HAProxy reads one file: the certificate (chain) followed by its key. True if it changed."""
    pem = (TLS / "server.crt").read_text() + (TLS / "server.key").read_text()
    target = edge / "server.pem"
    if target.exists() and target.read_text() == pem:
        return False
    write(target, pem, EDGE)
    return True


def tokens_count(app: Path) -> int:
    path = app / "pingcalc_tokens"
    if not path.exists():
        write(path, json.dumps({"version": 1, "tokens": []}) + "\n", APP)
        return 0
    return len(json.loads(path.read_text() or "{}").get("tokens", []))


def main() -> int:
    os.umask(0o077)
    app = directory("pingcalc", APP)
    redis = directory("redis", REDIS)
    edge = directory("edge", EDGE)
    redis_credentials(app, redis)
    changed = edge_certificate(edge)
    print(f"tokens={tokens_count(app)}")
    print(f"edge_certificate={'changed' if changed else 'same'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
