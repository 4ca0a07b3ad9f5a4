"""Alert messages raised: clinical ones from the alert policy, technical ones from the daemon's own conditions
(and from tools), each recorded in the incident registry and handed to delivery.

A technical condition (camera offline or degraded, outbox unavailable, outbox full) is one incident while it
holds (``condition``). A full outbox is loud: the ``outbox_full`` alert gets into the outbox even though it is
full (that is the point of it), and ends as soon as the outbox takes an ordinary alert again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from gaitwatch.daemon.alert_intake import StoreResult
from gaitwatch.daemon.incidents import Incident, IncidentRegistry
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.outbox import OutboxFullError
from gaitwatch.daemon.payloads import AlertIds, ClockMap, PublisherIdentity, Topics, alert_body, technical_alert_body
from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.gait.types import Alert, AlertPhase

# The service's parts log under the service's name (see camera_runner).
log = logging.getLogger("gaitwatch.daemon.service")

# Hands one alert body to delivery; OutboxFullError when the outbox refuses it for being full.
Store = Callable[[str, bytes, str, bool], Awaitable[StoreResult]]


@dataclass(frozen=True, slots=True)
class EmittedAlert:
    """An alert message handed to delivery: its idempotency key, the incident it belongs to, and whether it
    was committed to the outbox (``stored``) or, the outbox being unavailable, held in memory (``held``: it
    is published directly and committed when the disk recovers)."""

    alert_id: str
    incident_id: str
    stored: bool
    held: bool = False


class Alerting:
    """Builds alert bodies (ids, identity, UTC times), records them as incidents, stores them.

    ``zone_of(camera)``: the camera's zone now (a reload may change it); ValueError for an unknown camera.
    ``store(topic, body, alert_id, over_limit)``: delivery's way into the outbox. ``identity`` is known once
    the models are loaded (``attach``); nothing is raised before."""

    def __init__(
        self,
        *,
        alert_ids: AlertIds,
        incidents: IncidentRegistry,
        topics: Topics,
        clock: ClockMap,
        metrics: DaemonMetrics,
        zone_of: Callable[[str], str],
        store: Store,
        outbox_max_rows: int,
    ) -> None:
        self._alert_ids = alert_ids
        self._incidents = incidents
        self._topics = topics
        self._clock = clock
        self._metrics = metrics
        self._zone_of = zone_of
        self._store_body = store
        self._max_rows = outbox_max_rows
        self._identity: PublisherIdentity | None = None

    def attach(self, identity: PublisherIdentity) -> None:
        self._identity = identity

    async def clinical(self, camera: str, alert: Alert) -> None:
        """An alert policy's alert about one track on ``camera``."""
        if self._identity is None:
            raise RuntimeError("the service has not started")
        # A zone alert names its room zone (the bed); the others the camera's configured zone.
        zone = alert.zone or self._zone_of(camera)
        alert_id = self._alert_ids.next()
        incident = self._incidents.clinical_id(camera, alert.track_id, alert.type, alert.phase)
        body = alert_body(
            alert,
            camera=camera,
            zone=zone,
            identity=self._identity,
            clock=self._clock,
            alert_id=alert_id,
            incident_id=incident,
        )
        self._metrics.alert_raised(alert.type, "clinical")
        message = Incident(
            incident_id=incident,
            alert_id=alert_id,
            phase=alert.phase,
            category="clinical",
            type=alert.type,
            priority=alert.priority,
            camera=camera,
            zone=zone,
            started_at=alert.t_start,
            observed_at=alert.t_observed,
            track_id=alert.track_id,
            pattern=alert.pattern,
        )
        await self._store(message, self._topics.alert(camera), body)

    async def technical(
        self,
        type_: str,
        phase: AlertPhase = AlertPhase.START,
        *,
        camera: str | None = None,
        incident_id: str | None = None,
        since: float | None = None,
        priority: str = "high",
        evidence: Mapping[str, float] | None = None,
    ) -> EmittedAlert:
        """A technical alert (see ``Service.emit_technical_alert``, which is this)."""
        if self._identity is None:
            raise RuntimeError("the service has not started")
        zone = self._zone_of(camera) if camera is not None else ""
        incident = incident_id or self._incidents.new_id()
        now = time.monotonic()
        started = now if since is None else since
        alert_id = self._alert_ids.next()
        body = technical_alert_body(
            type_,
            phase,
            camera=camera,
            identity=self._identity,
            clock=self._clock,
            t_start=started,
            t_observed=now,
            alert_id=alert_id,
            incident_id=incident,
            priority=priority,
            zone=zone,
            evidence=evidence,
        )
        self._metrics.alert_raised(type_, "technical")
        message = Incident(
            incident_id=incident,
            alert_id=alert_id,
            phase=phase,
            category="technical",
            type=str(type_),
            priority=priority,
            camera=camera,
            zone=zone,
            started_at=started,
            observed_at=now,
        )
        # The overflow alert must get in even when the outbox is full: that is the point of it.
        result = await self._store(
            message, self._topics.alert(camera), body, over_limit=type_ == TechnicalAlertType.OUTBOX_FULL
        )
        return EmittedAlert(alert_id, incident, result is StoreResult.STORED, result is StoreResult.HELD)

    async def condition(
        self,
        type_: TechnicalAlertType,
        holds: bool,
        *,
        camera: str | None = None,
        since: float | None = None,
        priority: str = "high",
        evidence: Mapping[str, float] | None = None,
    ) -> None:
        """Report whether a technical condition holds now: its incident starts or ends when that changes
        (``since``, ``priority`` and ``evidence`` describe the start)."""
        change = self._incidents.condition(type_, holds, camera)
        if change is None:
            return
        if change.phase is AlertPhase.START:
            await self.technical(
                type_,
                camera=camera,
                incident_id=change.incident_id,
                since=since,
                priority=priority,
                evidence=evidence,
            )
        else:
            await self.technical(type_, AlertPhase.END, camera=camera, incident_id=change.incident_id)

    async def end_open_incidents(self) -> None:
        """Shutdown, after the cameras' clinical alerts were ended: every technical condition ends (an
        overflow last), then whatever a tool left open through ``technical``."""
        conditions = self._incidents.open_conditions()
        overflow = [key for key in conditions if key[0] is TechnicalAlertType.OUTBOX_FULL]
        for type_, camera in [key for key in conditions if key not in overflow] + overflow:
            await self.condition(type_, False, camera=camera)
        for left in self._incidents.active():
            await self.technical(left.type, AlertPhase.END, camera=left.camera, incident_id=left.incident_id)

    async def _store(self, message: Incident, topic: str, body: bytes, *, over_limit: bool = False) -> StoreResult:
        # Recorded first, whether or not the outbox takes it: then the snapshot is where the incident shows.
        self._incidents.record(message)
        try:
            result = await self._store_body(topic, body, message.alert_id, over_limit)
        except OutboxFullError:
            await self.condition(TechnicalAlertType.OUTBOX_FULL, True, evidence={"max_rows": float(self._max_rows)})
            return StoreResult.LOST
        if result is StoreResult.STORED and not over_limit:
            # The outbox took an ordinary alert again: the overflow is over.
            await self.condition(TechnicalAlertType.OUTBOX_FULL, False)
        return result
