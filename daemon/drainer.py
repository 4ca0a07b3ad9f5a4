"""One drainer per sink: moves that sink's pending outbox rows to it, in ``seq`` order, and records the outcome.

Each configured sink (``gaitwatch.daemon.sinks.AlertSink``) gets its own ``SinkDrainer`` task, so a FHIR
server that is down delays FHIR deliveries only, never MQTT's, and vice versa. A row is marked delivered to a
sink only after the sink reports that its receiver took it; after a failure everything from the first
undelivered row is offered again (duplicates, never gaps). While a sink is unavailable (no broker
connection) the drainer waits for it rather than backing off; a sink that is available but failing (a broker
rejecting publishes, a FHIR server answering 503) is retried with capped exponential backoff and jitter, and
the failed row's ``deliveries`` state records the attempt, the error and the time of the next try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator

from gaitwatch.daemon.backoff import backoff_delays
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.outbox import Outbox, OutboxError, OutboxRow
from gaitwatch.daemon.sinks import AlertSink

__all__ = ["SinkDrainer"]

_LOG = logging.getLogger(__name__)


class SinkDrainer:
    """Delivers one sink's outbox rows (see the module docstring).

    ``max_batch`` rows are offered to the sink at once (MQTT publishes them concurrently on one connection):
    more drains a backlog faster, fewer means fewer duplicates after a failure. ``republish_after_s`` (ack
    mode): rows the sink delivered that no integrator acknowledged within this time are offered again, with
    the same ``alert_id``. ``metrics``: outbox gauges are refreshed after every pass; with
    ``count_published`` the delivered rows also count in ``gaitwatch_outbox_published_total`` (the MQTT
    sink's; its name predates other sinks).
    """

    def __init__(
        self,
        outbox: Outbox,
        sink: AlertSink,
        *,
        max_batch: int = 10,
        idle_poll_s: float = 1.0,
        republish_after_s: float | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        metrics: DaemonMetrics | None = None,
        count_published: bool = True,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        self._outbox = outbox
        self._sink = sink
        self._max_batch = max_batch
        self._idle_poll_s = idle_poll_s
        self._republish_after_s = republish_after_s
        self._retry = (retry_initial_s, retry_max_s)
        self._metrics = metrics
        self.count_published = count_published
        self._wall = wall_clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._last_error: str | None = None
        self._failed_seq: int | None = None

    @property
    def sink(self) -> AlertSink:
        return self._sink

    @property
    def last_error(self) -> str | None:
        """Why the last delivery or outbox access failed; None once a pass went through."""
        return self._last_error

    def notify(self) -> None:
        """Something was added to the outbox: drain now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Ask ``run`` to return once the pass under way is finished (its delivered rows marked), so that a
        shutdown neither waits for the next poll nor re-sends rows whose delivery was already confirmed."""
        self._stopping = True
        self._stop_event.set()
        self._wake.set()

    async def run(self) -> None:
        """Drain until ``stop()``; survives sink outages and storage errors (logged, retried with backoff)."""
        delays: Iterator[float] | None = None
        while not self._stopping:
            self._wake.clear()
            if not self._available():
                # Waiting for the sink (not a backoff sleep) resumes as soon as it is back.
                await self._update_metrics()
                await self._sink.wait_available(self._idle_poll_s)
                continue
            try:
                sent, failed = await self._drain_pass()
            except Exception:
                # A bug must not stop alert delivery for the daemon's lifetime: log it, back off, retry.
                _LOG.exception("unexpected error while draining the outbox", extra={"sink": self._sink.name})
                sent, failed = 0, True
            await self._update_metrics()
            if failed and self._available():
                # Available but failing (rejected, timing out, 5xx): back off so a broken receiver is not hammered.
                delays = delays or backoff_delays(*self._retry, self._rng)
                delay = next(delays)
                await self._record_failure(delay)
                await self._sleep(delay)
                continue
            if failed:
                continue
            delays = None
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_poll_s):
                        await self._wake.wait()

    async def _record_failure(self, delay_s: float) -> None:
        """Note the failed try and the time of the next one on the row that failed (for whoever looks)."""
        seq, error = self._failed_seq, self._last_error
        if seq is None or error is None:
            return
        with contextlib.suppress(OutboxError):
            await asyncio.to_thread(
                self._outbox.mark_failed, seq, error, sink=self._sink.name, retry_wall=self._wall() + delay_s
            )

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by ``stop()`` (not by new alerts: a backoff must not shrink in a burst)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()

    def _available(self) -> bool:
        # A method, not the property inline: the state changes across awaits, which type narrowing ignores.
        return self._sink.available

    async def drain_once(self) -> int:
        """Deliver what is pending now until done or the first failure; returns rows delivered. For a last
        flush at shutdown (wrap it in a timeout)."""
        sent, _ = await self._drain_pass()
        await self._update_metrics()
        return sent

    async def _drain_pass(self) -> tuple[int, bool]:
        sent = 0
        name = self._sink.name
        self._failed_seq = None
        try:
            while True:
                rows = await asyncio.to_thread(self._outbox.pending, self._max_batch, sink=name)
                republishing = False
                if not rows and self._republish_after_s is not None:
                    cutoff = self._wall() - self._republish_after_s
                    rows = await asyncio.to_thread(self._outbox.unacked, cutoff, self._max_batch, sink=name)
                    republishing = True
                if not rows:
                    self._last_error = None
                    return sent, False
                report = await self._sink.deliver(rows)
                now = self._wall()
                if report.delivered:
                    # A re-sent row's delivery time moves on, so it is re-sent again only after another
                    # republish_after_s without an ack.
                    await asyncio.to_thread(
                        self._outbox.mark_published_many, list(report.delivered), sink=name, now_wall=now
                    )
                    sent += len(report.delivered)
                    self._count(len(report.delivered), republishing)
                if report.rejected:
                    await asyncio.to_thread(self._outbox.mark_rejected_many, report.rejected, sink=name, now_wall=now)
                    for seq, reason in report.rejected.items():
                        row = next(r for r in rows if r.seq == seq)
                        _LOG.error(
                            "alert refused for good by a sink; not retried there, still delivered by the others",
                            extra={"sink": name, "seq": seq, "alert_id": row.alert_id, "error": reason},
                        )
                if report.finished() < len(rows):
                    failed: OutboxRow = rows[report.finished()]
                    self._failed_seq = failed.seq
                    self._log_error(
                        "alert not delivered yet; will retry", report.error or "not delivered", seq=failed.seq
                    )
                    return sent, True
                self._last_error = None
        except OutboxError as exc:
            self._log_error("outbox error while draining", str(exc))
            return sent, True

    def _count(self, n: int, republishing: bool) -> None:
        if self._metrics is None or not self.count_published:
            return
        self._metrics.outbox_published.inc(n)
        if republishing:
            self._metrics.outbox_republished.inc(n)

    async def _update_metrics(self) -> None:
        if self._metrics is None:
            return
        try:
            stats = await asyncio.to_thread(self._outbox.stats, self._wall())
        except OutboxError as exc:
            self._log_error("cannot read outbox size", str(exc))
            return
        self._metrics.set_outbox(stats.pending, stats.oldest_pending_age_s, stats.pending_by_sink)
        self._metrics.set_outbox_rows(stats.rows, stats.unacked)

    def _log_error(self, message: str, error: str, **extra: object) -> None:
        extra = {"sink": self._sink.name, "error": error, **extra}
        if error != self._last_error:
            _LOG.warning(message, extra=extra)
            self._last_error = error
        else:
            _LOG.debug(message, extra=extra)
