"""The one env file an operator named, read only if no one else could have written it.

pingcalc used to read `.env` from whatever directory it ran in, so anyone who could write
that directory (a shared checkout, /tmp, a CI workspace) could point the tokens file at their
own, switch rate limiting off or open the ping policy (configuration tampering, T1562).
Settings now come from an env file only when one is named (`PINGCALC_ENV_FILE` or
`pingcalc --env-file`), and it must be a regular file owned by the user running pingcalc (or
root) that neither its group nor others may write. The checks run on the opened descriptor
(`fstat`), so the file checked is the file read even if the path is swapped meanwhile.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from dotenv import dotenv_values

from pingcalc.errors import PingcalcError

ENV_FILE_VARIABLE = "PINGCALC_ENV_FILE"
PREFIX = "PINGCALC_"
# A settings file is a few lines; a larger one is a mistake or an attempt to exhaust memory.
MAX_ENV_FILE_BYTES = 64 * 1024


class EnvFileError(PingcalcError):
    """The named env file is missing, unreadable or could have been written by someone else."""


def _refusal(path: Path, info: os.stat_result) -> str | None:
    """Why the file behind `info` must not be trusted, or None."""
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid not in (os.geteuid(), 0):
        return (
            f"is owned by uid {info.st_uid}, not by the user running pingcalc "
            f"(uid {os.geteuid()}) or root; chown it or name another file"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"is writable by its group or by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"chmod go-w {path}"
        )
    if info.st_size > MAX_ENV_FILE_BYTES:
        return f"is larger than {MAX_ENV_FILE_BYTES} bytes"
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of `path`, after checking its owner, mode and type on the open file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)  # a FIFO cannot block us
    except OSError as exc:
        raise EnvFileError(f"{ENV_FILE_VARIABLE}={path}: cannot open it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        problem = _refusal(path, os.fstat(handle.fileno()))
        if problem is not None:
            raise EnvFileError(f"refusing {ENV_FILE_VARIABLE}={path}: it {problem}")
        raw = handle.read(MAX_ENV_FILE_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvFileError(f"{ENV_FILE_VARIABLE}={path}: not UTF-8 text") from None
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def env_file_settings(path: Path, fields: Iterable[str]) -> dict[str, str]:
    """`PINGCALC_*` values of the env file for known `fields`, minus what the environment sets.

    The environment wins over the file (as with any dotenv file), so only names the process
    environment does not set are returned; names are case-insensitive like the environment's.
    """
    known = set(fields)
    in_environment = {name.upper() for name in os.environ}
    found: dict[str, str] = {}
    for name, value in read_env_file(path).items():
        upper = name.upper()
        field = upper.removeprefix(PREFIX).lower()
        if upper.startswith(PREFIX) and field in known and upper not in in_environment:
            found[field] = value
    return found
