"""Open incidents, kept as typed records: the source of the retained active-alerts snapshot and of the
daemon's technical conditions.

An incident is one condition from its ``start`` to its ``end`` phase: a track's abnormal gait, a camera's
outage, a full outbox. Every alert message carries its incident's id (``incident_id``), so integrators can
group the phases; the registry gives those ids out and remembers which incidents are open. It records each
message from the values the message was built from (never by parsing the serialised payload back), and the
snapshot it renders holds exactly what ``payloads.active_alert_entry`` would read from that payload.

Pure bookkeeping, no I/O and no event loop: the service records, a publisher renders ``snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gaitwatch.daemon.payloads import AlertIds, Category, ClockMap, subject_id
from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.gait.types import AlertPhase

# A technical condition is one incident per (type, camera); camera None: about the host (outbox).
ConditionKey = tuple[TechnicalAlertType, str | None]


@dataclass(frozen=True, slots=True)
class Incident:
    """One alert message's view of its incident: the latest message of an open incident is what the
    active-alerts snapshot shows. Times are ``time.monotonic()`` seconds (rendered in UTC by the registry's
    clock); ``track_id`` is set for a clinical incident about one tracked person, None for a technical one."""

    incident_id: str
    alert_id: str  # the latest message's (an integrator looks the alert up by it)
    phase: AlertPhase
    category: Category
    type: str
    priority: str
    camera: str | None
    zone: str
    started_at: float  # when the condition began (the first message's start, kept across updates)
    observed_at: float  # the end of what the latest message observed
    track_id: int | None = None
    pattern: str = ""


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A technical condition just started or ended: emit this phase of this incident."""

    phase: AlertPhase
    incident_id: str


class IncidentRegistry:
    """Incident ids, the open incidents, and which technical conditions hold (see the module docstring).

    ``on_change`` is called after every recorded message (the snapshot publisher wakes up on it)."""

    def __init__(self, host: str, boot_id: str, clock: ClockMap, on_change: Callable[[], None] = lambda: None) -> None:
        self._boot_id = boot_id
        self._clock = clock
        self._on_change = on_change
        # An "i" after the boot id keeps incident ids apart from alert ids, which count from 1 too.
        self._ids = AlertIds(host=host, boot_id=f"{boot_id}i")
        self._tracks: dict[tuple[str, int, str], str] = {}  # (camera, track, type) -> open clinical incident
        self._conditions: dict[ConditionKey, str] = {}  # claimed before any await (see ``condition``)
        self._open: dict[str, Incident] = {}  # by incident id, in the order they started

    def new_id(self) -> str:
        return self._ids.next()

    def clinical_id(self, camera: str, track_id: int, type_: str, phase: AlertPhase) -> str:
        """The incident id for a clinical alert's phase: a ``start`` (or a phase of an incident never
        started in this run) opens a new one; the ``end`` closes it."""
        key = (camera, track_id, type_)
        if phase is AlertPhase.START or key not in self._tracks:
            self._tracks[key] = self.new_id()
        incident = self._tracks[key]
        if phase is AlertPhase.END:
            del self._tracks[key]
        return incident

    def record(self, message: Incident) -> None:
        """An alert message was raised (whether or not the outbox took it: when it could not, the snapshot is
        the only place the incident still shows). An ``end`` closes the incident; any other phase opens or
        updates it, keeping when it started."""
        if message.phase is AlertPhase.END:
            self._open.pop(message.incident_id, None)
        else:
            previous = self._open.get(message.incident_id)
            if previous is not None:
                message = replace(message, started_at=previous.started_at)
            self._open[message.incident_id] = message
        self._on_change()

    def condition(self, type_: TechnicalAlertType, holds: bool, camera: str | None = None) -> ConditionChange | None:
        """A technical condition is one incident while it holds: it starts the first time ``holds`` is seen
        and ends the first time it is not; None while nothing changes. The caller emits the change; the id is
        claimed here, before the caller awaits anything, because the on-connect hook and the health loop may
        report the same condition concurrently."""
        key = (type_, camera)
        open_id = self._conditions.get(key)
        if holds and open_id is None:
            self._conditions[key] = incident = self.new_id()
            return ConditionChange(AlertPhase.START, incident)
        if not holds and open_id is not None:
            del self._conditions[key]
            return ConditionChange(AlertPhase.END, open_id)
        return None

    def open_conditions(self) -> list[ConditionKey]:
        """The conditions that hold now, in the order they started."""
        return list(self._conditions)

    def active(self) -> list[Incident]:
        """The open incidents (each as its latest message), in the order they started."""
        return list(self._open.values())

    def __len__(self) -> int:
        return len(self._open)

    def snapshot(self) -> list[dict[str, Any]]:
        """The active-alerts snapshot's entries (``payloads.active_alerts_payload`` orders and wraps them)."""
        return [self._entry(i) for i in self._open.values()]

    def _subject(self, i: Incident) -> str | None:
        return None if i.track_id is None or i.camera is None else subject_id(i.camera, self._boot_id, i.track_id)

    def _entry(self, i: Incident) -> dict[str, Any]:
        # The keys and values of ``payloads.active_alert_entry`` for the same message (a test holds them equal).
        return {
            "alert_id": i.alert_id,
            "incident_id": i.incident_id,
            "phase": str(i.phase),
            "category": i.category,
            "type": str(i.type),
            "pattern": i.pattern,
            "priority": i.priority,
            "camera": i.camera,
            "zone": i.zone,
            "subject": self._subject(i),
            "observed_start": self._clock.utc(i.started_at),
            "observed_end": self._clock.utc(i.observed_at),
        }
