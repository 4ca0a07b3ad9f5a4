"""What leaves the daemon, and the acks that come back: alerts into the outbox (``AlertIntake``: committed
before any network I/O, or held in memory while the disk refuses them), QoS 0 gait telemetry, retained
statuses, the retained active-alerts snapshot, integrator acks (ack mode), and the last flush at shutdown.

Before start-up has opened the outbox and the broker connection (``attach``), and whenever the broker is
down, nothing is published: what is retained is republished on (re)connect, telemetry is superseded by the
next window, alerts wait in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from gaitwatch.daemon.alert_intake import AlertIntake, StoreResult
from gaitwatch.daemon.counters import ServiceCounters
from gaitwatch.daemon.incidents import IncidentRegistry
from gaitwatch.daemon.logs import LogThrottle
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.mqtt import AlertTransport, MqttConfig, MqttTransport, OutboxDrainer, TransportError
from gaitwatch.daemon.outbox import Outbox, OutboxError, OutboxFullError
from gaitwatch.daemon.payloads import (
    ACTIVE_ALERTS_DELIVERY,
    CAMERA_STATUS_DELIVERY,
    GAIT_DELIVERY,
    AckClaim,
    AckError,
    ClockMap,
    PublisherIdentity,
    Topics,
    active_alerts_payload,
    gait_payload,
    host_status_payload,
    parse_ack,
)
from gaitwatch.gait.types import GaitResult

# The service's parts log under the service's name (see camera_runner).
log = logging.getLogger("gaitwatch.daemon.service")

# The retained active-alerts snapshot is republished at most this often during an alert burst.
ACTIVE_ALERTS_MIN_INTERVAL_S = 0.5
# Integrator acks are recorded in batches of at most this many ids (one fsync per batch), and at most this
# many wait to be recorded.
ACK_BATCH = 500
ACK_BACKLOG = 10_000
# At shutdown, one bounded attempt to deliver what is still in the outbox (the rest waits for the next start).
SHUTDOWN_FLUSH_S = 5.0
# Invalid acks and a full ack backlog are logged at most once per this many seconds (the metric counts all).
ACK_LOG_INTERVAL_S = 60.0


class Drainer(Protocol):
    """What delivery needs of the outbox drainer (``mqtt.OutboxDrainer``)."""

    async def drain_once(self) -> int: ...


class Delivery:
    """The daemon's outgoing side (see the module docstring); ``ack_topic`` None: no ack mode.
    ``active_changed``: set whenever the open incidents change (the registry's ``on_change``)."""

    def __init__(
        self,
        *,
        topics: Topics,
        clock: ClockMap,
        incidents: IncidentRegistry,
        metrics: DaemonMetrics,
        counters: ServiceCounters,
        ack_topic: str | None,
        active_changed: asyncio.Event,
        throttle: LogThrottle | None = None,
    ) -> None:
        self._topics = topics
        self._clock = clock
        self._incidents = incidents
        self._metrics = metrics
        self._counters = counters
        self._ack_topic = ack_topic
        self._throttle = throttle or LogThrottle(ACK_LOG_INTERVAL_S)
        # Set by the incident registry on every change: the snapshot is due again.
        self.active_changed = active_changed
        # Bounded: acks arriving faster than the disk records them are counted and dropped, not buffered
        # without limit (a dropped ack only means the alert is re-sent after mqtt.ack_timeout_s).
        self._acks: asyncio.Queue[AckClaim] = asyncio.Queue(maxsize=ACK_BACKLOG)
        self._outbox: Outbox | None = None
        self._intake: AlertIntake | None = None
        self._transport: AlertTransport | None = None
        self._drainer: Drainer | None = None
        self._identity: PublisherIdentity | None = None

    def attach(
        self,
        outbox: Outbox,
        intake: AlertIntake,
        identity: PublisherIdentity,
        *,
        transport: AlertTransport | None,
        drainer: Drainer | None,
    ) -> None:
        self._outbox = outbox
        self._intake = intake
        self._identity = identity
        self._transport = transport
        self._drainer = drainer

    # -- alerts ----------------------------------------------------------------------------------------------

    async def store(self, topic: str, body: bytes, alert_id: str, over_limit: bool = False) -> StoreResult:
        """Hand an alert to delivery before any network I/O: committed to the outbox (the drainer publishes
        it) or, when the disk refuses it, held in memory and published directly (``AlertIntake``). A full
        outbox is logged and counted here, and raised (``OutboxFullError``) for the caller's incident."""
        if self._intake is None:
            raise RuntimeError("the service has not started")
        self._counters.alerts += 1
        try:
            result = await self._intake.store(topic, body, alert_id, over_limit=over_limit)
        except OutboxFullError as exc:
            self._metrics.outbox_overflow()
            log.error("outbox full: alert not stored alert_id=%s error=%s", alert_id, exc)
            raise
        if result is StoreResult.STORED:
            self._counters.alerts_stored += 1
        elif result is StoreResult.HELD:
            self._counters.alerts_held += 1
        return result

    async def flush(self, timeout_s: float = SHUTDOWN_FLUSH_S) -> None:
        """Shutdown: held alerts committed (or published) if possible, then one bounded attempt to publish
        what the outbox still holds."""
        if self._intake is not None:
            await self._intake.flush()
        transport = self._transport
        if self._drainer is None or transport is None or not transport.connected:
            return
        with contextlib.suppress(TimeoutError, TransportError, OutboxError):
            async with asyncio.timeout(timeout_s):
                sent = await self._drainer.drain_once()
                log.info("flushed outbox rows=%d", sent)

    # -- telemetry and retained state ------------------------------------------------------------------------

    async def gait(self, camera: str, result: GaitResult) -> None:
        """One gait window's metrics and assessment, as QoS 0 telemetry."""
        if self._identity is None:
            raise RuntimeError("the service has not started")
        self._counters.gait_windows += 1
        payload = gait_payload(
            result.metrics, result.assessment, camera=camera, identity=self._identity, clock=self._clock
        )
        await self.telemetry(self._topics.gait(camera), payload)

    async def telemetry(self, topic: str, payload: bytes) -> None:
        """QoS 0 telemetry: sent when connected, else counted and dropped (the next window supersedes it)."""
        transport = self._transport
        if transport is None:
            return
        if not transport.connected:
            self._metrics.publish_failure("not_connected")
            return
        try:
            await transport.publish(topic, payload, qos=GAIT_DELIVERY.qos, retain=GAIT_DELIVERY.retain)
        except TransportError as exc:
            log.debug("gait publish failed topic=%s error=%s", topic, exc)

    async def publish_status(self, topic: str, payload: bytes) -> bool:
        """Publish a retained status; False when it could not be sent now (it is sent on reconnect)."""
        transport = self._transport
        if transport is None:
            return True  # MQTT off: nothing to send, the state is still tracked
        if not transport.connected:
            return False
        try:
            await transport.publish(
                topic, payload, qos=CAMERA_STATUS_DELIVERY.qos, retain=CAMERA_STATUS_DELIVERY.retain
            )
        except TransportError:
            return False
        return True

    async def active_alerts_loop(self) -> None:
        """Republish the snapshot whenever the open incidents change."""
        while True:
            await self.active_changed.wait()
            await self.publish_active_alerts()
            # A burst of alerts becomes a few snapshots, not one per alert.
            await asyncio.sleep(ACTIVE_ALERTS_MIN_INTERVAL_S)

    async def publish_active_alerts(self) -> None:
        transport = self._transport
        if transport is None or self._identity is None or not transport.connected:
            return  # republished on (re)connect
        self.active_changed.clear()
        payload = active_alerts_payload(self._incidents.snapshot(), self._identity, time.time())
        try:
            await transport.publish(
                self._topics.active_alerts,
                payload,
                qos=ACTIVE_ALERTS_DELIVERY.qos,
                retain=ACTIVE_ALERTS_DELIVERY.retain,
            )
        except TransportError as exc:
            self.active_changed.set()  # try again
            log.debug("active alerts publish failed error=%s", exc)

    # -- integrator acks -------------------------------------------------------------------------------------

    async def on_message(self, topic: str, payload: bytes) -> None:
        """Integrator acks (the only subscription): parsed here, recorded in batches by ``ack_loop``."""
        if topic != self._ack_topic:
            return
        try:
            claims = parse_ack(payload)
        except AckError as exc:
            self._metrics.ack_received("invalid")
            # A broken or hostile client can send these by the thousand: the metric counts every one.
            self._throttle.log(
                log, logging.WARNING, "ack", "ignoring an invalid ack message topic=%s error=%s", topic, exc
            )
            return
        for claim in claims:
            try:
                self._acks.put_nowait(claim)
            except asyncio.QueueFull:
                self._metrics.ack_received("ignored")
                self._throttle.log(log, logging.WARNING, "ack-backlog", "ack backlog full; dropping acks")

    async def ack_loop(self) -> None:
        while True:
            first = await self._acks.get()
            await self.record_acks(first)

    async def record_acks(self, first: AckClaim | None = None) -> None:
        """Record a batch of waiting acks in the outbox (an ack counts only for a published alert with its
        own token; the rest are counted as ignored)."""
        claims: list[AckClaim] = [] if first is None else [first]
        while not self._acks.empty() and len(claims) < ACK_BATCH:
            claims.append(self._acks.get_nowait())
        if not claims or self._outbox is None:
            return
        try:
            acked = await asyncio.to_thread(self._outbox.mark_acked_many, [(c.alert_id, c.ack_token) for c in claims])
        except OutboxError as exc:
            log.error("cannot record acks error=%s", exc)
            return
        self._metrics.ack_received("acked", acked)
        self._metrics.ack_received("ignored", len(claims) - acked)


def broker_link(
    config: MqttConfig,
    *,
    ack_topic: str | None,
    ack_timeout_s: float,
    topics: Topics,
    identity: PublisherIdentity,
    outbox: Outbox,
    metrics: DaemonMetrics,
    delivery: Delivery,
    on_connected: Callable[[], Awaitable[None]],
) -> tuple[MqttTransport, OutboxDrainer]:
    """The broker connection (its Last Will says "offline"; in ack mode it subscribes to the ack topic) and
    the drainer that publishes the outbox through it (re-sending what no integrator acknowledged in time).
    Neither is started."""
    transport = MqttTransport(
        config,
        status_topic=topics.status,
        online_payload=lambda: host_status_payload("online", identity, time.time()),
        offline_payload=lambda: host_status_payload("offline", identity, time.time()),
        subscriptions=(ack_topic,) if ack_topic else (),
        on_message=delivery.on_message if ack_topic else None,
        on_connected=on_connected,
        metrics=metrics,
    )
    drainer = OutboxDrainer(outbox, transport, metrics=metrics, republish_after_s=ack_timeout_s if ack_topic else None)
    return transport, drainer
