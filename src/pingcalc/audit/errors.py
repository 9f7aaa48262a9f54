"""The errors the audit package raises.

    AuditError(PingcalcError)
     ├── AuditKeyError         a key file or the evolved key state is missing, unreadable,
     │                         malformed, or belongs to another initial key
     └── KeyFileExistsError    `audit keygen` refuses to overwrite a key file

A failing audit *file* is not an exception to the caller: `Auditor.emit` returns False
(fail-closed) and the failure is reported on stdout. These errors reach the command line
(exit 2) and the sink's failure record.
"""

from __future__ import annotations

from pingcalc.errors import PingcalcError


class AuditError(PingcalcError):
    """Base of the audit package's errors."""


class AuditKeyError(AuditError):
    """The sealing key cannot be used; the message names the file and never shows the key."""


class KeyFileExistsError(AuditError):
    """A key file already exists; keys are never overwritten (the old one may be in use)."""
