"""The periodic checkpoint driver, started in the application's lifespan.

A checkpoint is an `audit_checkpoint` record sealed into the chain with the key of the epoch
it closes (``chain``, ``key_id``, ``records`` and the chain fields ``seq, epoch, prev, mac``);
then the key evolves and the old one is overwritten, and the record is shipped to the
destinations of `shipping.py`. Records before a checkpoint cannot be re-sealed by someone who
steals a later key, and a cut tail or a deleted file shows against the last checkpoint that
left the host. `Auditor.close` checkpoints once more at shutdown.
"""

from __future__ import annotations

import asyncio

from pingcalc.audit.auditor import Auditor
from pingcalc.logs import get_logger

log = get_logger("pingcalc.audit")


async def run_checkpoints(auditor: Auditor, interval: float | None = None) -> None:
    """Every `interval` seconds (default: the auditor's), checkpoint in a worker thread.

    The fsyncs, the state file and a slow collector stay off the event loop. Another worker
    process that checkpointed in the last half interval makes this one skip (one checkpoint
    per interval, not one per worker), though it still follows the evolved key. Runs until
    cancelled; returns at once when there is no chain to anchor.
    """
    if not auditor.chained:
        return
    seconds = auditor.checkpoint_seconds if interval is None else interval
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(auditor.checkpoint, seconds / 2)
        except Exception:  # one failed checkpoint must not end all later ones silently
            log.exception("audit_checkpoint_failed")
