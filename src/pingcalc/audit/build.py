"""The one place that turns settings into an Auditor (the server's and the CLI's)."""

from __future__ import annotations

from typing import TextIO

from pingcalc.audit.auditor import Auditor, DurableSink, Observer, Sink
from pingcalc.audit.chained_file import ChainedFileSink
from pingcalc.audit.shipping import destination
from pingcalc.audit.stdout import StdoutSink
from pingcalc.settings import Settings


def build_auditor(
    settings: Settings, *, stream: TextIO | None = None, observer: Observer | None = None
) -> Auditor:
    """Stdout (or `stream`: the CLI passes stderr), the chained file when configured, and the
    checkpoint destinations."""
    stdout = StdoutSink(stream)
    sinks: list[Sink | DurableSink] = [stdout]
    if settings.audit_file is not None:
        sinks.append(
            ChainedFileSink(
                settings.audit_file, settings.audit_key_file, max_bytes=settings.audit_max_bytes
            )
        )
    return Auditor(
        sinks,
        on_failure=settings.audit_on_failure,
        observer=observer,
        checkpoint_to=[destination(text, stdout) for text in settings.audit_checkpoint_to],
        checkpoint_seconds=settings.audit_checkpoint_seconds,
    )
