"""The auditor: one record per event, to every sink, under the failure policy.

Stream sinks (stdout) take every record and never fail the caller. Durable sinks (the chained
file) decide the answer of `emit`: with ``on_failure="closed"`` an event whose record could not
be written durably returns False from the very first failure, so the caller can refuse the
action; the failure is reported once on the streams, every later event is marked
``"audit_file": "failed"`` there, and the first successful write after it is an
`audit_file_recovered` record saying how many events the file missed.

Checkpoints seal each durable sink's head, evolve its key and ship the checkpoint record to
the configured destinations (`shipping.py`) outside the lock, so a slow collector never holds
up an `emit`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pingcalc.audit.chain import CHECKPOINT_EVENT, CUT_EVENT, GENESIS_EVENT
from pingcalc.audit.errors import KeyNotSavedError
from pingcalc.audit.fields import FIXED_FIELDS, shape
from pingcalc.logs import utc_timestamp

FailurePolicy = Literal["closed", "open"]
Observer = Callable[[dict[str, Any]], None]
# Written only by the chained file sink itself (a caller's copy would break the chain's rules).
RESERVED_EVENTS = frozenset({GENESIS_EVENT, CHECKPOINT_EVENT, CUT_EVENT})
DEFAULT_CHECKPOINT_SECONDS = 60.0
# What a sink may raise when a record cannot be written durably.
# Whatever a durable sink raises is its failure (fail-closed), never the caller's 500: an
# unexpected kind (a ValueError from a strange file name) included.
SINK_ERRORS = (Exception,)


@runtime_checkable
class Sink(Protocol):
    """Takes every record and never raises. `line`, when given, is the record's exact JSON as
    a durable sink wrote it (the same bytes: printing it saves a second serialisation)."""

    name: str

    def write(self, record: dict[str, Any], line: str | None = None) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class DurableSink(Protocol):
    """A sink whose failure decides `emit`'s answer, with a chain to checkpoint. `write`
    returns the record's line as written; it raises OSError or AuditKeyError when not."""

    name: str
    notice: Callable[[dict[str, Any]], None]

    def write(self, record: dict[str, Any]) -> str: ...

    def checkpoint(self, min_interval: float = 0.0) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class Destination(Protocol):
    """Where checkpoints go besides the file; `send` is bounded in time and may raise."""

    name: str

    def send(self, record: dict[str, Any]) -> None: ...


class _Health:
    """A durable sink and what the auditor knows of it."""

    __slots__ = ("healthy", "last_error", "missed", "sink")

    def __init__(self, sink: DurableSink) -> None:
        self.sink = sink
        self.healthy = True
        self.last_error: str | None = None
        self.missed = 0  # events that reached the streams only while the sink was failing


class Auditor:
    """Writes audit events to its sinks; reports whether audited actions may proceed."""

    def __init__(
        self,
        sinks: Sequence[Sink | DurableSink],
        *,
        on_failure: FailurePolicy = "closed",
        observer: Observer | None = None,
        checkpoint_to: Sequence[Destination] = (),
        checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
    ) -> None:
        self.on_failure = on_failure
        self.observer = observer
        self.checkpoint_seconds = checkpoint_seconds
        self._durable = [_Health(s) for s in sinks if isinstance(s, DurableSink)]
        self._streams = [s for s in sinks if not isinstance(s, DurableSink)]
        self._destinations = list(checkpoint_to)
        self._lock = threading.Lock()
        self._closed = False
        for health in self._durable:
            health.sink.notice = self._show

    # --- public ------------------------------------------------------------------------------

    @property
    def chained(self) -> bool:
        """Whether there is a durable sink (a chain to checkpoint)."""
        return bool(self._durable)

    @property
    def healthy(self) -> bool:
        """Whether every durable sink works."""
        return all(h.healthy for h in self._durable)

    @property
    def available(self) -> bool:
        """Whether audited actions may proceed: the sinks work, or the policy is fail-open."""
        return self.on_failure == "open" or self.healthy

    @property
    def last_error(self) -> str | None:
        return next((h.last_error for h in self._durable if h.last_error), None)

    @property
    def missed(self) -> int:
        return sum(h.missed for h in self._durable)

    def emit(self, event: str, **fields: Any) -> bool:
        """Record one event; False only if a durable sink failed and the policy is closed."""
        if event in RESERVED_EVENTS:
            raise ValueError(f"{event!r} is written by the audit file itself")
        record = shape(event, fields)
        written = True
        line: str | None = None
        if self._durable:
            with self._lock:
                for health in self._durable:
                    stored = self._write(health, record)
                    written = written and stored is not None
                    line = stored  # the last sink's chain fields are the ones in `record`
            if not written:
                line = None  # the record now carries the failure mark: render it afresh
        for sink in self._streams:
            sink.write(record, line)
        if self.observer is not None:
            try:  # noqa: SIM105 - cheaper than contextlib.suppress on every request
                self.observer(record)
            except Exception:  # noqa: S110  # nosec B110 - metrics must never break auditing
                pass
        return written or self.on_failure == "open"

    def probe(self) -> bool:
        """Retry failing durable sinks now (readiness); True when all of them work."""
        if not self.healthy:
            with self._lock:
                for health in self._durable:
                    if not health.healthy:
                        self._recover(health)
        return self.healthy

    def checkpoint(self, min_interval: float = 0.0) -> list[dict[str, Any]]:
        """Checkpoint every healthy chain, evolve its key, and ship the checkpoints."""
        anchored: list[dict[str, Any]] = []
        with self._lock:
            for health in self._durable:
                if not health.healthy:
                    continue  # probe() recovers it; its next checkpoint covers the gap
                try:
                    record = health.sink.checkpoint(min_interval)
                except KeyNotSavedError as exc:
                    anchored.append(exc.record)  # sealed and durable: it ships, and then
                    self._fail(health, exc)  # the sink is failed until the key is saved
                    continue
                except SINK_ERRORS as exc:
                    self._fail(health, exc)
                    continue
                if record is not None:
                    anchored.append(record)
        for record in anchored:
            self._ship(record)
        return anchored

    def close(self) -> None:
        """Checkpoint, flush every sink to disk, close them and erase the keys (shutdown)."""
        if self._closed:
            return
        self.checkpoint()
        with self._lock:
            self._closed = True
            for health in self._durable:
                health.sink.close()
        for sink in self._streams:
            sink.close()

    # --- durable sinks -----------------------------------------------------------------------

    def _write(self, health: _Health, record: dict[str, Any]) -> str | None:
        """The line written, or None when the sink failed (the record is marked so)."""
        if not health.healthy and not self._recover(health):
            health.missed += 1
            record["audit_file"] = "failed"
            return None
        try:
            return health.sink.write(record)
        except SINK_ERRORS as exc:
            self._fail(health, exc)
            health.missed += 1
            record["audit_file"] = "failed"
            return None

    def _fail(self, health: _Health, exc: Exception) -> None:
        error = _describe(exc)
        if health.healthy:
            failure = shape("audit_file_failed", {"outcome": "error", "reason": error})
            failure.update(file=health.sink.name, on_failure=self.on_failure)
            self._show(failure)
        health.healthy = False
        health.last_error = error

    def _recover(self, health: _Health) -> bool:
        """Try to write an `audit_file_recovered` record; on success the sink is healthy."""
        marker: dict[str, Any] = {"ts": utc_timestamp(), "event": "audit_file_recovered"}
        marker.update(dict.fromkeys(FIXED_FIELDS))
        marker.update(outcome="info", missed=health.missed, error=health.last_error)
        try:
            health.sink.write(marker)
        except SINK_ERRORS as exc:
            health.last_error = _describe(exc)
            return False
        health.healthy = True
        health.last_error = None
        health.missed = 0
        self._show(marker)
        return True

    # --- streams and destinations ------------------------------------------------------------

    def _show(self, record: dict[str, Any]) -> None:
        """A record for the streams only (a failure, a genesis, an unshipped checkpoint)."""
        for sink in self._streams:
            sink.write(record)

    def _ship(self, record: dict[str, Any]) -> None:
        for destination in self._destinations:
            try:
                destination.send(record)
            except Exception as exc:  # a failed shipment is reported, never raised
                failed = shape("audit_checkpoint_unshipped", {"outcome": "error"})
                failed.update(
                    reason=_describe(exc),
                    destination=destination.name,
                    checkpoint_seq=record.get("seq"),
                )
                self._show(failed)


def _describe(exc: BaseException) -> str:
    """`Kind: message: file`, for a failure record (never a key: errors do not carry one)."""
    if isinstance(exc, OSError):
        text = f"{type(exc).__name__}: {exc.strerror or exc}"
        return text + f": {exc.filename}" if exc.filename else text
    return f"{type(exc).__name__}: {exc}"
