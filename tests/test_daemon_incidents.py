"""The incident registry on its own (no broker, no service): incident ids, the open incidents behind the
retained active-alerts snapshot, and technical conditions as one incident while they hold. The snapshot must
say exactly what ``payloads.active_alert_entry`` reads back from the same alert's payload: the registry never
parses payloads, so this is where the two are held equal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from gaitwatch.daemon.incidents import ConditionChange, Incident, IncidentRegistry
from gaitwatch.daemon.payloads import (
    ClockMap,
    PublisherIdentity,
    active_alert_entry,
    active_alerts_payload,
    alert_body,
    technical_alert_body,
)
from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.gait.types import Alert, AlertPhase

REPO = Path(__file__).resolve().parents[1]
STATUS_SCHEMA = json.loads((REPO / "config" / "status.schema.json").read_text())
CLOCK = ClockMap(offset_s=1_780_000_000.0)
IDENTITY = PublisherIdentity(site="ward", host="pc1", boot_id="b00t", software_version="test", ward="4B")

OFFLINE = TechnicalAlertType.CAMERA_OFFLINE


def registry(changes: list[int] | None = None) -> IncidentRegistry:
    if changes is None:
        return IncidentRegistry("pc1", "b00t", CLOCK)
    return IncidentRegistry("pc1", "b00t", CLOCK, on_change=lambda: changes.append(1))


def technical(incident: str, alert: str, phase: AlertPhase, *, started: float = 10.0, at: float = 12.0) -> Incident:
    return Incident(
        incident_id=incident,
        alert_id=alert,
        phase=phase,
        category="technical",
        type=OFFLINE,
        priority="high",
        camera="bay1",
        zone="beds 1-4",
        started_at=started,
        observed_at=at,
    )


def test_clinical_ids_follow_start_update_end_per_track_and_type() -> None:
    r = registry()
    first = r.clinical_id("bay1", 7, "abnormal_gait", AlertPhase.START)
    assert r.clinical_id("bay1", 7, "abnormal_gait", AlertPhase.UPDATE) == first
    other = r.clinical_id("bay1", 8, "abnormal_gait", AlertPhase.START)
    assert other != first, "another track is another incident"
    assert r.clinical_id("bay1", 7, "abnormal_gait", AlertPhase.END) == first
    again = r.clinical_id("bay1", 7, "abnormal_gait", AlertPhase.START)
    assert again not in (first, other), "a new start after the end is a new incident"
    assert first.startswith("pc1:b00ti:"), "incident ids are apart from alert ids (pc1:b00t:<n>)"
    orphan = r.clinical_id("door", 1, "abnormal_gait", AlertPhase.UPDATE)
    assert orphan not in (first, other, again), "an update of an incident never started here gets its own id"


def test_record_opens_updates_and_ends_an_incident_keeping_its_start() -> None:
    changes: list[int] = []
    r = registry(changes)
    r.record(technical("i1", "a1", AlertPhase.START, started=10.0, at=10.0))
    r.record(technical("i1", "a2", AlertPhase.UPDATE, started=11.0, at=15.0))
    assert len(r) == 1
    (open_,) = r.active()
    assert (open_.alert_id, open_.phase, open_.started_at, open_.observed_at) == ("a2", AlertPhase.UPDATE, 10.0, 15.0)
    (entry,) = r.snapshot()
    assert entry["alert_id"] == "a2"
    assert entry["observed_start"] == CLOCK.utc(10.0), "the snapshot keeps when the incident started"
    assert entry["observed_end"] == CLOCK.utc(15.0)
    r.record(technical("i1", "a3", AlertPhase.END))
    assert len(r) == 0 and r.snapshot() == []
    r.record(technical("gone", "a4", AlertPhase.END))
    assert len(r) == 0, "the end of an incident that is not open changes nothing"
    assert len(changes) == 4, "every recorded message wakes the snapshot publisher"


def test_snapshot_entries_equal_what_active_alert_entry_reads_from_the_payloads() -> None:
    r = registry()
    # Keywords from a mapping: the alert type is the one the policy raises, whatever type names it.
    fields: dict[str, Any] = {
        "type": "abnormal_gait",
        "phase": AlertPhase.START,
        "track_id": 7,
        "t_start": 100.25,
        "t_observed": 112.5,
        "confidence": 0.9,
        "priority": "medium",
        "quality": 0.8,
        "evidence": {"cadence_spm": 61.0},
        "pattern": "shuffling",
    }
    alert = Alert(**fields)
    clinical_id = r.clinical_id("bay1", 7, alert.type, alert.phase)
    clinical = alert_body(
        alert,
        camera="bay1",
        zone="beds 1-4",
        identity=IDENTITY,
        clock=CLOCK,
        alert_id="pc1:b00t:1",
        incident_id=clinical_id,
    )
    r.record(
        Incident(
            incident_id=clinical_id,
            alert_id="pc1:b00t:1",
            phase=alert.phase,
            category="clinical",
            type=alert.type,
            priority=alert.priority,
            camera="bay1",
            zone="beds 1-4",
            started_at=alert.t_start,
            observed_at=alert.t_observed,
            track_id=alert.track_id,
            pattern=alert.pattern,
        )
    )
    host = technical_alert_body(
        TechnicalAlertType.OUTBOX_FULL,
        AlertPhase.START,
        camera=None,
        identity=IDENTITY,
        clock=CLOCK,
        t_start=90.0,
        t_observed=90.5,
        alert_id="pc1:b00t:2",
        incident_id="pc1:b00ti:9",
        evidence={"max_rows": 100.0},
    )
    r.record(
        Incident(
            incident_id="pc1:b00ti:9",
            alert_id="pc1:b00t:2",
            phase=AlertPhase.START,
            category="technical",
            type=TechnicalAlertType.OUTBOX_FULL,
            priority="high",
            camera=None,
            zone="",
            started_at=90.0,
            observed_at=90.5,
        )
    )
    assert r.snapshot() == [active_alert_entry(clinical), active_alert_entry(host)]
    # Serialised, the enum type is the plain string integrators match on.
    payload = json.loads(active_alerts_payload(r.snapshot(), IDENTITY, 1_780_000_200.0))
    jsonschema.validate(payload, STATUS_SCHEMA, cls=jsonschema.Draft202012Validator)
    assert [a["type"] for a in payload["alerts"]] == ["outbox_full", "abnormal_gait"], "ordered by start"
    assert payload["alerts"][1]["subject"] == "bay1:b00t:7"


def test_a_condition_is_one_incident_while_it_holds() -> None:
    r = registry()
    start = r.condition(OFFLINE, True, "bay1")
    assert start is not None and start.phase is AlertPhase.START
    assert r.condition(OFFLINE, True, "bay1") is None, "still offline: no new incident"
    door = r.condition(OFFLINE, True, "door")
    assert door is not None and door.incident_id != start.incident_id, "one incident per camera"
    host = r.condition(TechnicalAlertType.OUTBOX_UNAVAILABLE, True)
    assert host is not None
    assert r.open_conditions() == [(OFFLINE, "bay1"), (OFFLINE, "door"), (TechnicalAlertType.OUTBOX_UNAVAILABLE, None)]
    assert r.condition(OFFLINE, False, "bay1") == ConditionChange(AlertPhase.END, start.incident_id)
    assert r.condition(OFFLINE, False, "bay1") is None, "ended once"
    assert r.condition(TechnicalAlertType.CAMERA_DEGRADED, False, "bay1") is None, "never held: nothing to end"
    again = r.condition(OFFLINE, True, "bay1")
    assert again is not None and again.incident_id != start.incident_id, "a new outage is a new incident"
