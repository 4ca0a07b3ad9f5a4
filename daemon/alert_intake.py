"""Where every alert enters delivery: the outbox when the disk works, a bounded memory hold when it does not.

Normal case: ``store`` commits the alert to the outbox (fsync'ed) and wakes every sink's drainer, which
deliver it. When the outbox cannot commit (disk full, database locked by another process, I/O error), the
alert is not dropped: it is held in memory (``HeldAlerts``), delivered directly to each sink as soon as that
sink is available (MQTT: the broker is connected), and committed once the disk recovers, with each sink's
delivery recorded (so no sink sends it again). ``on_availability`` tells the
service when the outbox becomes unavailable and when it is back, so that it raises and ends an
``outbox_unavailable`` technical alert (which travels the same way), shows it in STATUS and metrics.

Ordering: while anything is held, new alerts queue behind it (see ``held_alerts``), so the outbox receives
alerts in the order they were raised and the ``seq`` published from memory is the one committed later.

An alert is lost only when the outbox is unavailable AND ``outbox.memory_rows`` alerts are already held; that
is counted (``gaitwatch_alerts_lost_total``), logged at CRITICAL, and stops the watchdog pings (``losing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from enum import StrEnum

from gaitwatch.daemon.backoff import backoff_delays
from gaitwatch.daemon.drainer import SinkDrainer
from gaitwatch.daemon.held_alerts import HeldAlert, HeldAlerts
from gaitwatch.daemon.logs import LogThrottle
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.mqtt import AlertTransport, MqttSink
from gaitwatch.daemon.outbox import Outbox, OutboxError, OutboxFullError

log = logging.getLogger(__name__)

# Retrying the disk: soon at first (a lock held for a few seconds), then every 10 s at most (a full disk
# needs an admin; retrying faster only burns fsyncs).
COMMIT_RETRY_INITIAL_S = 0.5
COMMIT_RETRY_MAX_S = 10.0
# Held alerts committed per transaction once the disk is back (one fsync and a few WAL pages per batch).
COMMIT_BATCH = 500
# Held alerts offered to a sink per ``deliver`` call (MQTT: published concurrently), as the drainers do.
DELIVER_BATCH = 10
# Storage errors and losses repeat once per alert: one line per key per this many seconds.
LOG_INTERVAL_S = 30.0


class StoreResult(StrEnum):
    STORED = "stored"  # committed to the outbox
    HELD = "held"  # outbox unavailable: held in memory, published directly, committed later
    LOST = "lost"  # outbox unavailable and the memory hold full


class AlertIntake:
    """The service's single way to hand an alert to delivery (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        memory_rows: int,
        metrics: DaemonMetrics,
        on_availability: Callable[[bool], Awaitable[None]],
        *,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = outbox
        self._held = HeldAlerts(memory_rows)
        self._metrics = metrics
        self._on_availability = on_availability
        self._wall = wall_clock
        self._rng = rng or random.Random()
        self._drainers: list[SinkDrainer] = []
        self._available = True
        self._last_error: str | None = None
        self._wake = asyncio.Event()
        self._throttle = LogThrottle(LOG_INTERVAL_S)

    def attach(self, transport: AlertTransport | None, drainer: SinkDrainer | None) -> None:
        """The MQTT sink: its drainer (or, without one, the bare transport for held alerts)."""
        if drainer is not None:
            self.attach_sink(drainer)
        elif transport is not None:
            self.attach_sink(SinkDrainer(self._outbox, MqttSink(transport), metrics=self._metrics))

    def attach_sink(self, drainer: SinkDrainer) -> None:
        """One more sink (its drainer): woken by new alerts, given held alerts directly. Every sink the outbox
        owes alerts to must be attached, or held alerts would never be delivered to it."""
        if any(d.sink.name == drainer.sink.name for d in self._drainers):
            raise ValueError(f"sink {drainer.sink.name!r} is attached twice")
        self._drainers.append(drainer)

    async def start(self) -> None:
        """Learn the outbox's last ``seq`` (held alerts continue the sequence from there)."""
        self._held.committed_up_to(await asyncio.to_thread(self._outbox.last_seq))

    # -- what the service sees -------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False from the first alert the outbox refused until every held alert is committed."""
        return self._available

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def losing(self) -> bool:
        """The outbox is unavailable and the memory hold is full: new alerts are being lost."""
        return not self._available and self._held.full

    @property
    def last_error(self) -> str | None:
        """Why the outbox last refused an alert (None while it works)."""
        return self._last_error

    # -- storing ---------------------------------------------------------------------------------------------

    async def store(self, topic: str, body: bytes, alert_id: str, *, over_limit: bool = False) -> StoreResult:
        """Commit (or hold) one alert. ``OutboxFullError`` propagates: a full outbox is the caller's loud
        overflow case (the disk works; undelivered alerts fill it)."""
        if len(self._held):
            return await self._hold(topic, body, alert_id)
        try:
            seq = await asyncio.to_thread(self._outbox.add, topic, body, alert_id, over_limit=over_limit)
        except OutboxFullError:
            raise
        except OutboxError as exc:
            self._last_error = str(exc)
            self._throttle.log(
                log,
                logging.CRITICAL,
                "store",
                "outbox cannot commit alerts; holding them in memory and publishing directly",
                extra={"alert_id": alert_id, "error": str(exc)},
            )
            return await self._hold(topic, body, alert_id)
        self._held.committed_up_to(seq)
        self._notify_drainers()
        return StoreResult.STORED

    async def _hold(self, topic: str, body: bytes, alert_id: str) -> StoreResult:
        held = self._held.hold(topic, body, alert_id, self._wall())
        if held is None:
            self._metrics.alerts_lost.inc()
            self._throttle.log(
                log,
                logging.CRITICAL,
                "lost",
                "ALERT LOST: the outbox is unavailable and outbox.memory_rows alerts are already held",
                extra={"alert_id": alert_id, "held": len(self._held)},
            )
            return StoreResult.LOST
        self._update_metrics()
        self._wake.set()
        if self._available:
            self._available = False
            self._update_metrics()
            await self._on_availability(False)
        return StoreResult.HELD

    # -- the background task ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver held alerts to available sinks and commit them once the disk takes writes again."""
        delays: Iterator[float] | None = None
        while True:
            if not len(self._held):
                delays = None
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.publish_held()
            if await self.commit_held():
                delays = None
                continue
            delays = delays or backoff_delays(COMMIT_RETRY_INITIAL_S, COMMIT_RETRY_MAX_S, self._rng)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next(delays)):
                    # A reconnect or a new alert wakes it early (to publish); the disk retry keeps its pace.
                    await self._wake.wait()

    async def publish_held(self) -> int:
        """Deliver every held alert to each available sink that has not taken it yet (in order, stopping a
        sink at its first failure); returns how many deliveries succeeded, over all sinks."""
        sent = 0
        for drainer in self._drainers:
            sent += await self._deliver_held(drainer)
        return sent

    async def _deliver_held(self, drainer: SinkDrainer) -> int:
        sink = drainer.sink
        sent = 0
        while sink.available and (todo := self._held.unfinished(sink.name)[:DELIVER_BATCH]):
            try:
                report = await sink.deliver([h.row() for h in todo])
            except Exception:
                log.exception("held alerts: delivery failed unexpectedly sink=%s", sink.name)
                break
            now = self._wall()
            by_seq = {h.seq: h for h in todo}
            for seq in report.delivered:
                by_seq[seq].delivered[sink.name] = now
            for seq, reason in report.rejected.items():
                by_seq[seq].rejected[sink.name] = reason
                log.error(
                    "held alert refused for good by a sink; still delivered by the others",
                    extra={"sink": sink.name, "alert_id": by_seq[seq].alert_id, "error": reason},
                )
            sent += len(report.delivered)
            if drainer.count_published:
                self._metrics.outbox_published.inc(len(report.delivered))
            if report.finished() < len(todo):
                log.debug("held alert not delivered yet sink=%s error=%s", sink.name, report.error)
                break
        return sent

    async def commit_held(self) -> bool:
        """Commit held alerts in order, in batches (one transaction each); True once none is left (the
        outbox is available again)."""
        while batch := self._held.first(COMMIT_BATCH):
            try:
                await asyncio.to_thread(self._commit, batch)
            except OutboxFullError:
                # The disk works but undelivered alerts fill the outbox. What some sink has not taken yet stays
                # held until there is room; what every sink took is delivered, so only its audit copy is given up.
                if not batch[0].finished_by_all(self._sink_names()):
                    return False
                log.error("outbox full: not keeping the audit copy of a delivered alert alert_id=%s", batch[0].alert_id)
                batch = batch[:1]
            except OutboxError as exc:
                self._last_error = str(exc)
                return False
            self._held.pop_first(len(batch))
            self._update_metrics()
        if not self._available:
            self._available = True
            self._last_error = None
            self._update_metrics()
            log.warning("outbox available again; every held alert is committed")
            await self._on_availability(True)
        self._notify_drainers()
        return True

    def _sink_names(self) -> list[str]:
        return [d.sink.name for d in self._drainers]

    def _notify_drainers(self) -> None:
        for drainer in self._drainers:
            drainer.notify()

    def _commit(self, batch: list[HeldAlert]) -> None:
        seqs = self._outbox.add_many([(h.topic, h.body, h.alert_id, h.created_wall) for h in batch])
        for held, seq in zip(batch, seqs, strict=True):
            if seq != held.seq:
                # Only if something else wrote to the outbox meanwhile; integrators de-duplicate on alert_id.
                log.warning(
                    "held alert stored with another seq alert_id=%s held=%d stored=%d", held.alert_id, held.seq, seq
                )
        self._held.committed_up_to(max(seqs))
        for sink in self._sink_names():
            delivered = [(seq, h.delivered[sink]) for h, seq in zip(batch, seqs, strict=True) if sink in h.delivered]
            if delivered:
                # The earliest delivery time of the batch: in ack mode an unacknowledged one is re-sent no later.
                when = min(w for _, w in delivered)
                self._outbox.mark_published_many([seq for seq, _ in delivered], sink=sink, now_wall=when)
            rejected = {seq: h.rejected[sink] for h, seq in zip(batch, seqs, strict=True) if sink in h.rejected}
            if rejected:
                self._outbox.mark_rejected_many(rejected, sink=sink)

    def wake(self) -> None:
        """A sink became available (the broker (re)connected): deliver what is held now."""
        self._wake.set()

    async def flush(self) -> None:
        """Shutdown: one attempt to deliver and commit what is held; report what would be lost."""
        if not len(self._held):
            return
        await self.publish_held()
        await self.commit_held()
        for sink in self._sink_names():
            missed = len(self._held.unfinished(sink))
            if missed:
                log.critical(
                    "stopping with alerts neither committed nor delivered: they are lost for this sink",
                    extra={"count": missed, "sink": sink},
                )

    def _update_metrics(self) -> None:
        self._metrics.set_held(len(self._held), available=self._available)
