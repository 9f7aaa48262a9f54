"""The errors the audit package raises.

    AuditError(PingcalcError)
     ├── AuditKeyError         a key file or the evolved key state is missing, unreadable,
     │                         malformed, or belongs to another initial key
     └── KeyFileExistsError    `audit keygen` refuses to overwrite a key file

    KeyNotSavedError(OSError)  a checkpoint was written but the evolved key was not saved:
                               a sink failure like any other I/O error (fail-closed)

A failing audit *file* is not an exception to the caller: `Auditor.emit` returns False
(fail-closed) and the failure is reported on stdout. These errors reach the command line
(exit 2) and the sink's failure record.
"""

from __future__ import annotations

from typing import Any

from pingcalc.errors import PingcalcError


class AuditError(PingcalcError):
    """Base of the audit package's errors."""


class AuditKeyError(AuditError):
    """The sealing key cannot be used; the message names the file and never shows the key."""


class KeyFileExistsError(AuditError):
    """A key file already exists; keys are never overwritten (the old one may be in use)."""


class KeyNotSavedError(OSError):
    """A checkpoint was sealed and written, but the evolved key could not be saved."""

    def __init__(self, record: dict[str, Any], cause: OSError) -> None:
        super().__init__(cause.errno, f"the evolved audit key could not be saved: {cause.strerror}")
        self.filename = cause.filename
        self.record = record
