"""Sealing keys: the initial key files, and the key that evolves one way at each checkpoint.

`pingcalc audit keygen` writes the same random 256-bit initial key k0 to two files: one for
the service (`PINGCALC_AUDIT_KEY_FILE`, a read-only secret) and one the operator keeps offline
to verify. The service never seals with k0 after its first start: it keeps the current key
k_e in a state file beside the audit file (`.FILE.key`, replaced atomically) and evolves it
at every checkpoint::

    k_{e+1} = HMAC-SHA256(k_e, EVOLVE_DOMAIN)

HMAC is one-way in its key, so whoever steals k_e can compute every later key but no earlier
one: records sealed before the last checkpoint cannot be re-sealed (journald's Forward Secure
Sealing, with a hash chain instead of its seekable scheme).

Erasure, as far as Python allows: the key lives in one `bytearray` that is overwritten in
place when it evolves and zeroed on close; `hmac.digest` reads it through the buffer protocol
without copying it into an immutable object. Transient copies made while a key file is parsed
are freed, not wiped; the state file's old blocks are freed by the filesystem, not wiped
(docs/audit.md says what that means for backups and snapshots).
"""

from __future__ import annotations

import binascii
import contextlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pingcalc.audit.errors import AuditKeyError, KeyFileExistsError

KEY_BYTES = 32
KEY_FILE_MODE = 0o600
# Domain separation: evolving the key, naming it and sealing records never share an input.
EVOLVE_DOMAIN = b"pingcalc-audit-v1 evolve"
KEY_ID_DOMAIN = b"pingcalc-audit-v1 key-id"
INITIAL_KIND = "pingcalc-audit-initial-key"
STATE_KIND = "pingcalc-audit-key-state"
FORMAT_VERSION = 1
# Key files are two short lines; anything larger is not one (and is not read into memory).
MAX_KEY_FILE_BYTES = 4096


def key_id_of(key: bytes | bytearray) -> str:
    """A public name for an initial key (16 hex digits); it reveals nothing about the key."""
    return hmac.digest(key, KEY_ID_DOMAIN, "sha256")[:8].hex()


class EvolvingKey:
    """The sealing key of one epoch; `advance_to` overwrites it with a later epoch's key."""

    __slots__ = ("_key", "epoch", "key_id")

    def __init__(self, key: bytearray, epoch: int, key_id: str) -> None:
        if len(key) != KEY_BYTES:
            raise AuditKeyError(f"a sealing key has {KEY_BYTES} bytes, not {len(key)}")
        self._key = key
        self.epoch = epoch
        self.key_id = key_id

    @classmethod
    def initial(cls, key: bytearray) -> EvolvingKey:
        """k0, epoch 0."""
        return cls(key, 0, key_id_of(key))

    def mac(self, message: bytes) -> str:
        """HMAC-SHA256 of `message` under this epoch's key, in hex."""
        return hmac.digest(self._key, message, "sha256").hex()

    def matches(self, message: bytes, mac: str) -> bool:
        """Whether `mac` is this key's HMAC of `message` (constant time)."""
        return hmac.compare_digest(self.mac(message), mac)

    def advance_to(self, epoch: int) -> None:
        """Evolve to `epoch`, overwriting each earlier key in place; never goes back."""
        while self.epoch < epoch:
            self._key[:] = hmac.digest(self._key, EVOLVE_DOMAIN, "sha256")
            self.epoch += 1

    def copy(self) -> EvolvingKey:
        """An independent key at the same epoch (the verifier walks several chains)."""
        return EvolvingKey(bytearray(self._key), self.epoch, self.key_id)

    def erase(self) -> None:
        """Zero the key; it cannot seal anything afterwards."""
        self._key[:] = bytes(KEY_BYTES)

    def hex(self) -> bytes:
        """The key in hex, for the state file (a short-lived copy)."""
        return binascii.hexlify(self._key)

    def __repr__(self) -> str:
        return f"EvolvingKey(epoch={self.epoch}, key_id={self.key_id!r})"


# --- key files -------------------------------------------------------------------------------


def _render(header: dict[str, Any], key: EvolvingKey) -> bytes:
    # Line 1: public facts (readable without touching the secret); line 2: the key in hex.
    return json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n" + key.hex() + b"\n"


def _read(path: Path, kind: str) -> tuple[dict[str, Any], bytearray]:
    """The header and key of a key file of `kind`. OSError when it cannot be read."""
    with path.open("rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_KEY_FILE_BYTES:
            raise AuditKeyError(f"{path} is not a pingcalc audit key file (too large)")
        buffer = bytearray(size)
        handle.readinto(buffer)
    try:
        header_end = buffer.find(b"\n")
        header = _header(path, bytes(buffer[: max(header_end, 0)]), kind)
        digits = buffer[header_end + 1 :].strip()
        try:
            raw = binascii.unhexlify(digits)
        except (binascii.Error, ValueError):
            raise AuditKeyError(f"{path}: the key line is not hex") from None
        finally:
            digits[:] = bytes(len(digits))
        key = bytearray(raw)
        del raw
        if len(key) != KEY_BYTES:
            raise AuditKeyError(f"{path}: the key has {len(key)} bytes, not {KEY_BYTES}")
        return header, key
    finally:
        buffer[:] = bytes(len(buffer))


def _header(path: Path, line: bytes, kind: str) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION:
        raise AuditKeyError(f"{path} is not a pingcalc audit key file (version {FORMAT_VERSION})")
    if header.get("kind") != kind:
        found = header.get("kind")
        if kind == INITIAL_KIND and found == STATE_KIND:
            raise AuditKeyError(
                f"{path} is the service's evolved key state, not the initial key: it cannot "
                "check records sealed before its epoch; use the key kept offline"
            )
        raise AuditKeyError(f"{path} holds a {found!r}, not a {kind!r}")
    return header


def read_initial_key(path: Path) -> EvolvingKey:
    """k0 from a file written by `keygen` (the service's copy or the offline one)."""
    header, key = _read(path, INITIAL_KIND)
    initial = EvolvingKey.initial(key)
    if header.get("key_id") != initial.key_id:
        initial.erase()
        raise AuditKeyError(f"{path}: the key does not match its key id (file damaged?)")
    return initial


def read_key_id(path: Path) -> str:
    """The key id in an initial key file's header, without reading the key."""
    with path.open("rb") as handle:
        line = handle.readline(MAX_KEY_FILE_BYTES)
    return str(_header(path, line, INITIAL_KIND).get("key_id"))


def keygen(service_path: Path, verify_path: Path) -> str:
    """Write a new random initial key to both files (0600, never overwritten); its key id."""
    if service_path.absolute() == verify_path.absolute():
        raise AuditKeyError("the service key and the verify key must be two different files")
    for path in (service_path, verify_path):
        if path.exists() or path.is_symlink():
            raise KeyFileExistsError(f"{path} exists; a key file is never overwritten")
    key = EvolvingKey.initial(bytearray(secrets.token_bytes(KEY_BYTES)))
    header = {"kind": INITIAL_KIND, "version": FORMAT_VERSION, "key_id": key.key_id}
    data = bytearray(_render(header, key))
    try:
        _write_new(service_path, data)
        try:
            _write_new(verify_path, data)
        except BaseException:
            service_path.unlink()
            raise
    finally:
        data[:] = bytes(len(data))
        key.erase()
    return key.key_id


def _write_new(path: Path, data: bytearray) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileExistsError(f"{path} exists; a key file is never overwritten") from None
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the evolving key state beside the audit file ---------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyState:
    """The public part of the state file: which key, which epoch, which chain, when."""

    key_id: str
    epoch: int
    chain: str | None = None
    # Unix time of the last checkpoint, so several workers do not each checkpoint.
    checkpointed: float | None = None


def state_path(audit_file: Path) -> Path:
    """`.FILE.key` beside `FILE`: outside `FILE*` globs, in the writable audit directory."""
    return audit_file.with_name(f".{audit_file.name}.key")


def _state_from(path: Path, header: dict[str, Any]) -> KeyState:
    epoch, chain, when = header.get("epoch"), header.get("chain"), header.get("checkpointed")
    if type(epoch) is not int or epoch < 0 or not isinstance(header.get("key_id"), str):
        raise AuditKeyError(f"{path}: the key state has no valid epoch or key id")
    return KeyState(
        str(header["key_id"]),
        epoch,
        chain if isinstance(chain, str) else None,
        float(when) if isinstance(when, int | float) else None,
    )


def read_state(path: Path) -> tuple[KeyState, EvolvingKey]:
    """The state and its key. FileNotFoundError when there is none yet."""
    header, key = _read(path, STATE_KIND)
    state = _state_from(path, header)
    return state, EvolvingKey(key, state.epoch, state.key_id)


def read_state_header(path: Path) -> KeyState:
    """The state's public part, without reading the key (for `pingcalc check`, other workers)."""
    with path.open("rb") as handle:
        line = handle.readline(MAX_KEY_FILE_BYTES)
    return _state_from(path, _header(path, line, STATE_KIND))


def write_state(path: Path, state: KeyState, key: EvolvingKey) -> None:
    """Replace the state file atomically and durably (new file, fsync, rename, fsync dir)."""
    header = {
        "kind": STATE_KIND,
        "version": FORMAT_VERSION,
        "key_id": state.key_id,
        "epoch": key.epoch,
        "chain": state.chain,
        "checkpointed": state.checkpointed,
    }
    data = bytearray(_render(header, key))
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, KEY_FILE_MODE)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        Path(temporary).replace(path)
        _fsync_directory(path.parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise
    finally:
        data[:] = bytes(len(data))


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_sealing_key(
    audit_file: Path, initial_key_file: Path | None
) -> tuple[KeyState, EvolvingKey]:
    """The current key of `audit_file`'s chain: from its state file, or created from k0.

    Refuses a state that belongs to another initial key than `initial_key_file` (when that file
    is still there), and a missing state when k0 is gone (nothing could recreate it honestly).
    """
    path = state_path(audit_file)
    try:
        state, key = read_state(path)
    except FileNotFoundError:
        pass
    else:
        if initial_key_file is not None:
            with contextlib.suppress(FileNotFoundError):
                expected = read_key_id(initial_key_file)
                if expected != state.key_id:
                    key.erase()
                    raise AuditKeyError(
                        f"the key state {path} belongs to key id {state.key_id}, but "
                        f"{initial_key_file} has key id {expected}: a new key needs a new audit "
                        "file (move the old files and the state away)"
                    )
        return state, key
    if initial_key_file is None:
        raise AuditKeyError(f"no key state at {path} and no PINGCALC_AUDIT_KEY_FILE to create it")
    try:
        key = read_initial_key(initial_key_file)
    except FileNotFoundError:
        raise AuditKeyError(
            f"no key state at {path}, and the initial key {initial_key_file} is gone: records "
            "cannot be sealed (restore the state, or start a new trail with a new key)"
        ) from None
    state = KeyState(key.key_id, 0)
    write_state(path, state, key)
    return state, key
