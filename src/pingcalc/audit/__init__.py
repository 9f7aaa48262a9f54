"""The audit trail: who did what, from where, with which outcome.

    fields.py        the record's shape: fixed and reserved fields, redaction, `clip`
    auditor.py       Auditor: every record to every sink, under the fail-closed/open policy
    stdout.py        StdoutSink: records as `"log": "audit"` JSON lines
    chained_file.py  ChainedFileSink: sealed appends, rotation, locking, torn-write rollback
    chain.py         the sealed line format the writer and the verifier share
    keys.py          key files, keygen, and the key that evolves one way per checkpoint
    checkpoint.py    run_checkpoints: the periodic driver for the app's lifespan
    shipping.py      checkpoint destinations: stdout, syslog, HTTP collector
    verify.py        verify: files against the initial key and the shipped checkpoints
    build.py         build_auditor(settings): the one wiring of all of the above
    errors.py        the package's errors

The format, the key ceremony and the limits are in docs/audit.md.
"""

from __future__ import annotations

from pingcalc.audit.auditor import Auditor, DurableSink, Sink
from pingcalc.audit.build import build_auditor
from pingcalc.audit.chain import GENESIS, order_files, rotated_paths
from pingcalc.audit.chained_file import ChainedFileSink
from pingcalc.audit.checkpoint import run_checkpoints
from pingcalc.audit.errors import AuditError, AuditKeyError, KeyFileExistsError
from pingcalc.audit.fields import CHAIN_FIELDS, FIXED_FIELDS, RESERVED_FIELDS, clip
from pingcalc.audit.keys import keygen
from pingcalc.audit.stdout import StdoutSink
from pingcalc.audit.verify import VerifyResult, verify

__all__ = [
    "CHAIN_FIELDS",
    "FIXED_FIELDS",
    "GENESIS",
    "RESERVED_FIELDS",
    "AuditError",
    "AuditKeyError",
    "Auditor",
    "ChainedFileSink",
    "DurableSink",
    "KeyFileExistsError",
    "Sink",
    "StdoutSink",
    "VerifyResult",
    "build_auditor",
    "clip",
    "keygen",
    "order_files",
    "rotated_paths",
    "run_checkpoints",
    "verify",
]
