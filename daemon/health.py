"""The daemon's health, as others see it: each camera's retained status (and its offline/degraded incident),
systemd's STATUS line and watchdog pings, and the outbox clean-up that keeps its figures current.

The watchdog pings only while the event loop runs (this task), every inference and detection job finishes
within ``inference_stuck_s``, and alerts are not being lost; otherwise systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from gaitwatch.daemon.alerting import Alerting
from gaitwatch.daemon.camera_health import CameraState
from gaitwatch.daemon.camera_runner import CameraRunner
from gaitwatch.daemon.delivery import Delivery
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.outbox import Outbox, OutboxError
from gaitwatch.daemon.payloads import CameraStatusState, PublisherIdentity, Topics, camera_status_payload
from gaitwatch.daemon.sdnotify import SystemdNotifier, watchdog_interval_s
from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.daemon.workers import WatchedWorkers

# The service's parts log under the service's name (see camera_runner).
log = logging.getLogger("gaitwatch.daemon.service")

# Camera health is checked this often, or four times per the shortest stale_after_s if that is shorter, so
# an outage is reported at most a quarter of its threshold late.
CAMERA_STATUS_PERIOD_S = 2.0
WATCHDOG_CHECK_S = 0.5

# What integrators see of a camera's state: a file that reached its end is simply offline to them.
PUBLISHED_CAMERA_STATE: Mapping[CameraState, CameraStatusState] = {
    CameraState.ONLINE: "online",
    CameraState.DEGRADED: "degraded",
    CameraState.OFFLINE: "offline",
    CameraState.FINISHED: "offline",
}


class ServiceMetrics(DaemonMetrics):
    """The daemon's metrics, plus the outbox backlog as last measured (the drainer and the clean-up report it
    through ``set_outbox``) for the STATUS line: kept here because a prometheus gauge cannot be read back
    through prometheus_client's public API."""

    outbox_pending_count: int = 0

    def set_outbox(self, pending: int, oldest_age_s: float, pending_by_sink: Mapping[str, int] | None = None) -> None:
        super().set_outbox(pending, oldest_age_s, pending_by_sink)
        self.outbox_pending_count = pending


class BrokerLink(Protocol):
    """The broker connection as STATUS shows it (``mqtt.MqttTransport``)."""

    @property
    def connected(self) -> bool: ...

    @property
    def last_error(self) -> str | None: ...


class DrainerState(Protocol):
    """Why alerts are not getting through a connected broker (``OutboxDrainer.last_error``)."""

    @property
    def last_error(self) -> str | None: ...


class OutboxStorage(Protocol):
    """Whether the outbox commits alerts (``alert_intake.AlertIntake``)."""

    @property
    def available(self) -> bool: ...

    @property
    def held(self) -> int: ...

    @property
    def losing(self) -> bool: ...

    @property
    def last_error(self) -> str | None: ...


def status_line(
    cameras: Sequence[tuple[str, CameraState | None]],
    *,
    broker: BrokerLink | None,
    alerts_failing: str | None,
    storage: OutboxStorage | None,
    outbox_pending: int,
) -> str:
    """systemd's STATUS= (shown by ``systemctl status``): cameras, broker and outbox in one line. The
    broker's last error is the first thing to look at when alerts do not arrive. ``cameras``: (id, state)."""
    online = [cam for cam, state in cameras if state in (CameraState.ONLINE, CameraState.DEGRADED)]
    head = f"cameras {len(online)}/{len(cameras)} online"
    offline = [cam for cam, state in cameras if state is CameraState.OFFLINE]
    if offline:
        head += f" (offline: {', '.join(offline)})"
    degraded = [cam for cam, state in cameras if state is CameraState.DEGRADED]
    if degraded:
        head += f" (DEGRADED, too slow to analyse gait: {', '.join(degraded)})"
    parts = [head]
    if broker is not None:
        if broker.connected:
            parts.append(f"mqtt connected; alerts failing: {alerts_failing}" if alerts_failing else "mqtt connected")
        else:
            parts.append(f"mqtt down: {broker.last_error or 'connecting'}")
    if storage is not None and not storage.available:
        parts.append(f"OUTBOX UNAVAILABLE ({storage.last_error or 'disk error'}): {storage.held} alerts held in memory")
    parts.append(f"outbox pending {outbox_pending}")
    return "; ".join(parts)


class Health:
    """Camera statuses, STATUS, watchdog and clean-up for one daemon run (parts known after start-up come
    through ``attach``)."""

    def __init__(
        self,
        *,
        topics: Topics,
        metrics: ServiceMetrics,
        notifier: SystemdNotifier,
        delivery: Delivery,
        alerting: Alerting,
        outbox_memory_rows: int,
    ) -> None:
        self._topics = topics
        self._metrics = metrics
        self._notifier = notifier
        self._delivery = delivery
        self._alerting = alerting
        self._memory_rows = outbox_memory_rows
        self._cameras: Sequence[CameraRunner] = ()
        self._identity: PublisherIdentity | None = None
        self._broker: BrokerLink | None = None
        self._drainer: DrainerState | None = None
        self._storage: OutboxStorage | None = None
        # The STATUS line last sent (None: send the next one whatever it says).
        self.status_text: str | None = None

    def attach(
        self,
        cameras: Sequence[CameraRunner],
        identity: PublisherIdentity,
        *,
        storage: OutboxStorage,
        broker: BrokerLink | None,
        drainer: DrainerState | None,
    ) -> None:
        self._cameras = cameras
        self._identity = identity
        self._storage = storage
        self._broker = broker
        self._drainer = drainer

    # -- cameras ---------------------------------------------------------------------------------------------

    async def loop(self) -> None:
        stale = min((c.settings.stale_after_s for c in self._cameras), default=CAMERA_STATUS_PERIOD_S * 4)
        period = max(0.05, min(CAMERA_STATUS_PERIOD_S, stale / 4))
        while True:
            await self.publish_camera_statuses()
            self.update_status_line()
            await asyncio.sleep(period)

    def republish_camera_statuses(self) -> None:
        """After a (re)connect: the next pass publishes every camera's status again (the broker may have
        lost its retained messages, and changes made while disconnected were not sent)."""
        for camera in self._cameras:
            camera.published_state = None

    async def publish_camera_statuses(self) -> None:
        """Judge every camera now; publish the retained status of each whose state changed, and start or end
        its offline and degraded incidents."""
        if self._identity is None:
            raise RuntimeError("the service has not started")
        now = time.monotonic()
        for camera in self._cameras:
            judged = camera.assess(now)
            state = judged.state
            if state != camera.published_state:
                payload = camera_status_payload(
                    PUBLISHED_CAMERA_STATE[state],
                    camera.id,
                    self._identity,
                    time.time(),
                    camera.frame_age_s(now),
                    zone=camera.settings.zone,
                )
                if await self._delivery.publish_status(self._topics.camera_status(camera.id), payload):
                    camera.published_state = state
            for condition in camera.conditions(judged, now):
                await self._alerting.condition(
                    condition.type,
                    condition.holds,
                    camera=camera.id,
                    since=condition.since,
                    priority=condition.priority,
                    evidence=condition.evidence,
                )

    # -- the outbox's disk -----------------------------------------------------------------------------------

    async def outbox_availability(self, available: bool) -> None:
        """``AlertIntake``'s report that the outbox stopped committing alerts (disk full, locked, I/O errors),
        or is back: an ``outbox_unavailable`` incident for the integrators (it travels like every alert: held
        and published directly while the disk is down), and the STATUS line at once."""
        await self._alerting.condition(
            TechnicalAlertType.OUTBOX_UNAVAILABLE, not available, evidence={"memory_rows": float(self._memory_rows)}
        )
        self.update_status_line()

    # -- systemd ---------------------------------------------------------------------------------------------

    def update_status_line(self) -> None:
        """Send STATUS= when it changed."""
        text = status_line(
            [(c.id, c.state) for c in self._cameras],
            broker=self._broker,
            alerts_failing=self._drainer.last_error if self._drainer is not None else None,
            storage=self._storage,
            outbox_pending=self._metrics.outbox_pending_count,
        )
        if text != self.status_text:
            self.status_text = text
            self._notifier.status(text)

    async def watchdog_loop(self, workers: WatchedWorkers, inference_stuck_s: float) -> None:
        interval = watchdog_interval_s()
        period = min(WATCHDOG_CHECK_S, interval) if interval else WATCHDOG_CHECK_S
        last_ping = float("-inf")
        stuck_logged = False
        losing_logged = False
        while True:
            now = time.monotonic()
            started = workers.oldest_job_started()
            inference_alive = started is None or now - started < inference_stuck_s
            # Alerts being lost (outbox unavailable and the memory hold full): a restart makes the failure
            # visible to systemd and fleet monitoring, and reopens the database (a stale lock, a remounted
            # disk); it cannot lose more than is being lost already.
            losing = self._storage is not None and self._storage.losing
            if losing and not losing_logged:
                log.critical("alerts are being lost (outbox unavailable, memory hold full); withholding watchdog pings")
            losing_logged = losing
            if interval and inference_alive and not losing and now - last_ping >= interval:
                self._notifier.watchdog()
                last_ping = now
            if not inference_alive and not stuck_logged:
                assert started is not None
                log.error(
                    "inference thread stuck (pose or detection) for %.0f s; withholding watchdog pings", now - started
                )
            stuck_logged = not inference_alive
            await asyncio.sleep(period)

    # -- the outbox ------------------------------------------------------------------------------------------

    async def cleanup_loop(self, outbox: Outbox, keep_published_s: float, interval_s: float) -> None:
        """Delete delivered rows older than ``keep_published_s`` every ``interval_s``; refresh the outbox
        figures (metrics, and the backlog STATUS shows) each time."""
        while True:
            try:
                deleted = await asyncio.to_thread(outbox.cleanup, keep_published_s)
                stats = await asyncio.to_thread(outbox.stats, time.time())
            except OutboxError as exc:
                log.error("outbox clean-up failed error=%s", exc)
            else:
                self._metrics.outbox_cleaned.inc(deleted)
                self._metrics.set_outbox(stats.pending, stats.oldest_pending_age_s, stats.pending_by_sink)
                self._metrics.set_outbox_rows(stats.rows, stats.unacked)
                if deleted:
                    log.info("outbox clean-up deleted=%d rows=%d", deleted, stats.rows)
            await asyncio.sleep(interval_s)
