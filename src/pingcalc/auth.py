"""Bearer tokens: a file of SHA-256 hashes, names and scopes; secrets are shown once, never stored.

The tokens file is JSON: ``{"version": 1, "tokens": [{"name", "sha256", "scopes", "created"}]}``,
parsed by a pydantic model (`TokensFile`). It is written atomically (temporary file + rename)
with mode 0600, and a running server re-reads it when it changes (checked on each request by
``stat``) or on SIGHUP, so a revoked token stops working without a restart. A file that no
longer parses keeps the last good view, and says so once per change (log, audit, `/readyz`).
Writers (`create_token`, `revoke_token`) hold an exclusive lock on a sibling lock file for
their whole read-modify-write, so two at once cannot lose each other's change.

`parse_bearer` is the one reader of the `Authorization` header: the edge's penalty box and
authentication see the same credentials, whatever padding a client adds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError

from pingcalc.errors import PingcalcError
from pingcalc.filelock import lock_exclusive
from pingcalc.settings import SCOPES, Scope

# A recognisable prefix lets secret scanners find leaked tokens; 32 random bytes = 256 bits,
# far beyond guessing even without the per-IP throttle.
# A public prefix, not a secret.
TOKEN_PREFIX = "pc_"  # noqa: S105  # nosec B105
TOKEN_BYTES = 32
# Names appear in logs and audit records: keep them to a safe, short alphabet (log injection).
NAME_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
NAME_MAX = 64
# Longest credentials we even hash (after the scheme and padding are removed): a
# multi-megabyte header is refused cheaply. Our tokens are 46 characters.
MAX_PRESENTED_LENGTH = 256
FILE_MODE = 0o600
# How long a writer waits for another to finish its read-modify-write (each takes
# milliseconds) before it gives up with a clear error instead of hanging.
WRITER_LOCK_WAIT_SECONDS = 10.0
# What an operator with no tokens runs (the server, the CLI and `check` all say it).
CREATE_COMMAND = "pingcalc token create NAME --scope ping --scope calculate"
# Mode bits an existing tokens file keeps when rewritten: owner read/write, group read.
KEPT_MODE_BITS = 0o640
# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class TokenStoreError(PingcalcError):
    """The tokens file cannot be read, parsed or written."""


class Secret(SecretStr):
    """A token whose repr and str hide the value, so it cannot leak through logs or tracebacks."""

    def reveal(self) -> str:
        """The secret itself, for the one place that must print it."""
        return self.get_secret_value()

    def __str__(self) -> str:
        return repr(self)


def parse_bearer(header: str | None) -> str | None:
    """The credentials of an `Authorization` header: None when there is none, "" when it is
    not `Bearer <b64token>` (another scheme, empty, too long, or characters outside RFC 6750).

    Surrounding whitespace is removed before the length check, so padding cannot push a
    token past the edge's checks while authentication still accepts it.
    """
    if header is None:
        return None
    parts = header.split(None, 1)
    scheme = parts[0] if parts else ""
    credentials = parts[1].strip() if len(parts) == 2 else ""
    if (
        scheme.lower() != "bearer"
        or not credentials
        or len(credentials) > MAX_PRESENTED_LENGTH
        or not _B64TOKEN.fullmatch(credentials)
    ):
        return ""
    return credentials


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the server knows of a token: never the token itself."""

    name: str
    sha256: str
    scopes: frozenset[str]
    created: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "scopes": sorted(self.scopes),
            "created": self.created,
        }


def hash_token(token: str) -> str:
    """SHA-256 of a presented token, hex: the only form in which tokens are stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def validate_name(name: str) -> str:
    """Token names are short and safe to log."""
    if not name or len(name) > NAME_MAX or not set(name) <= NAME_ALPHABET:
        raise TokenStoreError(
            f"token name must be 1-{NAME_MAX} characters of letters, digits, '.', '_' or '-'"
        )
    return name


def validate_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Scopes must be known ones and at least one."""
    wanted = frozenset(scopes)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise TokenStoreError(
            f"unknown scope {sorted(unknown)[0]!r}; known scopes: {', '.join(SCOPES)}"
        )
    if not wanted:
        raise TokenStoreError(f"give at least one --scope ({', '.join(SCOPES)})")
    return wanted


_Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
_Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Name
    sha256: _Sha256
    scopes: Annotated[list[Scope], Field(min_length=1)]
    created: str


class TokensFile(BaseModel):
    """The tokens file's schema: a version and a list of named, hashed, scoped tokens."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    tokens: list[_TokenEntry] = Field(default_factory=list)


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "file"
    return f"{where}: {error['msg']}"


def read_records(path: Path) -> list[TokenRecord]:
    """Parse the tokens file; a missing or empty file is an empty store."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise TokenStoreError(f"cannot read tokens file {path}: {exc.strerror}") from None
    if not raw.strip():
        return []
    try:
        parsed = TokensFile.model_validate_json(raw)
    except ValidationError as exc:
        raise TokenStoreError(f"tokens file {path} is malformed: {_describe(exc)}") from None
    names = [entry.name for entry in parsed.tokens]
    if len(set(names)) != len(names):
        raise TokenStoreError(f"tokens file {path} is malformed: a token name appears twice")
    return [TokenRecord(e.name, e.sha256, frozenset(e.scopes), e.created) for e in parsed.tokens]


def write_records(path: Path, records: list[TokenRecord]) -> None:
    """Replace the tokens file atomically, mode 0600 from the first byte.

    An existing file keeps its owner, group and mode (never wider than 0640): root revoking a
    token in a file owned by the service's uid must not leave it unreadable to the service.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        before: os.stat_result | None = path.stat()
    except FileNotFoundError:
        before = None
    payload = json.dumps(
        {"version": 1, "tokens": [r.to_json() for r in records]}, indent=2, sort_keys=True
    )
    # mkstemp creates the file 0600, so the hashes are never readable by others, not even briefly.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tokens.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            if before is not None:
                # Only root (or the owner, for a group it is in) may do this; else ours it is.
                with contextlib.suppress(PermissionError):
                    os.fchown(handle.fileno(), before.st_uid, before.st_gid)
                _move_mtime_past(handle.fileno(), before)
        tmp.chmod(FILE_MODE if before is None else before.st_mode & KEPT_MODE_BITS)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _move_mtime_past(fd: int, before: os.stat_result) -> None:
    """Give the new file an mtime later than the one it replaces.

    Servers reload the file when its (inode, mtime, size) changes. A rename frees the old
    inode number for the next file, and a revoke-then-create can leave the size unchanged, so
    on a file system with coarse timestamps (or a clock stepped back) the mtime alone would
    have to tell, and might not: a revoked token would still be honoured (the stack's second
    attack pass). A whole second later is later at any timestamp granularity.
    """
    written = os.fstat(fd)
    if written.st_mtime_ns <= before.st_mtime_ns:
        os.utime(fd, ns=(written.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


@contextlib.contextmanager
def _writer_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive writer lock of the tokens file at `path`.

    The lock is on `.NAME.lock` beside it, not on the file itself: the file is replaced by
    rename, so a lock on it would guard an inode no later writer opens. Without it, a revoke
    racing a create could each read the old file and the last rename would win: a revoke that
    reported success, undone (found by the stack's attack pass).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise TokenStoreError(f"cannot lock tokens file {path}: {exc.strerror}") from None
    try:
        if not lock_exclusive(fd, WRITER_LOCK_WAIT_SECONDS):
            raise TokenStoreError(
                f"tokens file {path} is locked by another writer (retry, or see who holds "
                f"{lock_path})"
            )
        yield
    finally:
        os.close(fd)  # releases the lock


def create_token(path: Path, name: str, scopes: Iterable[str]) -> tuple[TokenRecord, Secret]:
    """Add a token to the file and return its record and the secret (shown once)."""
    validate_name(name)
    wanted = validate_scopes(scopes)
    with _writer_lock(path):
        records = read_records(path)
        if any(r.name == name for r in records):
            raise TokenStoreError(
                f"a token named {name!r} exists; revoke it first or pick a new name"
            )
        secret = Secret(TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES))
        record = TokenRecord(
            name=name,
            sha256=hash_token(secret.reveal()),
            scopes=wanted,
            created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        write_records(path, [*records, record])
    return record, secret


def revoke_token(path: Path, name: str) -> TokenRecord:
    """Remove a token by name; raises if there is none."""
    with _writer_lock(path):
        records = read_records(path)
        keep = [r for r in records if r.name != name]
        if len(keep) == len(records):
            raise TokenStoreError(f"no token named {name!r}")
        write_records(path, keep)
    return next(r for r in records if r.name == name)


ReloadObserver = Callable[[str], object]


class TokenStore:
    """The server's view of the tokens file, reloaded when the file changes."""

    def __init__(self, path: Path, *, on_reload_failed: ReloadObserver | None = None) -> None:
        self.path = path
        self._name = os.fspath(path)
        self.on_reload_failed = on_reload_failed
        # Why the file on disk is not the view in use (None when it is), for /readyz.
        self.reload_error: str | None = None
        self._lock = threading.Lock()
        self._by_hash: dict[str, TokenRecord] = {}
        self._signature: tuple[int, int, int] | None = None
        self.load()

    def __len__(self) -> int:
        return len(self._by_hash)

    def _stat_signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._name)  # noqa: PTH116 - every request: no pathlib on the way
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> None:
        """Read the file now (start-up and SIGHUP); raises TokenStoreError if it is broken."""
        with self._lock:
            signature = self._stat_signature()
            try:
                records = read_records(self.path)
            except TokenStoreError:
                # Remember the broken version: it is reported once, not on every request.
                self._signature = signature
                raise
            self._by_hash = {r.sha256: r for r in records}
            self._signature = signature
            self.reload_error = None

    def refresh(self, *, force: bool = False) -> None:
        """Reload if the file changed since the last read (or now, when `force`: SIGHUP);
        keep the old view if it is broken."""
        if not force and self._stat_signature() == self._signature:
            return
        try:
            self.load()
        except TokenStoreError as exc:
            # A half-written or corrupt file must not lock everyone out, nor let anyone in
            # (nor keep a revoked token working silently): keep the last good view, and say so
            # once per change of the file.
            self.reload_error = str(exc)
            if self.on_reload_failed is not None:
                self.on_reload_failed(self.reload_error)

    def authenticate(self, presented: str) -> TokenRecord | None:
        """The record for presented credentials (from `parse_bearer`), or None."""
        if not presented or len(presented) > MAX_PRESENTED_LENGTH:
            return None
        self.refresh()
        # Lookup by the SHA-256 of the presented value: the comparison happens on digests,
        # so response time does not depend on how many leading characters of a token match.
        return self._by_hash.get(hash_token(presented))
