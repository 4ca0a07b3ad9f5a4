"""Alerts raised and recorded as incidents, with delivery replaced by a list (no outbox, no broker): technical
alerts and conditions, the outbox-overflow incident, what shutdown ends, and what the snapshot shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gaitwatch.daemon.alert_intake import StoreResult
from gaitwatch.daemon.alerting import Alerting
from gaitwatch.daemon.incidents import IncidentRegistry
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.outbox import OutboxFullError
from gaitwatch.daemon.payloads import AlertIds, ClockMap, PublisherIdentity, Topics
from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.gait.types import Alert, AlertPhase

IDENTITY = PublisherIdentity(site="ward", host="pc1", boot_id="b00t", software_version="test")
ZONES = {"bay1": "beds 1-4", "door": ""}


class FakeDelivery:
    """Takes every alert (or refuses ordinary ones while ``full``, as a full outbox does)."""

    def __init__(self) -> None:
        self.full = False
        self.stored: list[tuple[str, dict[str, Any], bool]] = []  # topic, body, over_limit

    async def store(self, topic: str, body: bytes, alert_id: str, over_limit: bool = False) -> StoreResult:
        if self.full and not over_limit:
            raise OutboxFullError(Path("outbox.sqlite3"), 100, alert_id)
        message = json.loads(body)
        assert message["alert_id"] == alert_id
        self.stored.append((topic, message, over_limit))
        return StoreResult.STORED

    def phases(self, type_: str) -> list[str]:
        return [m["phase"] for _, m, _ in self.stored if m["type"] == type_]


def gait_alert(phase: AlertPhase, **changes: Any) -> Alert:
    """An abnormal-gait alert about track 7 (keywords from a mapping: the type is the one the policy raises,
    whatever type names it)."""
    fields: dict[str, Any] = {
        "type": "abnormal_gait",
        "phase": phase,
        "track_id": 7,
        "t_start": 10.0,
        "t_observed": 10.0,
        "confidence": 0.9,
        "priority": "medium",
        "quality": 0.8,
        "pattern": "slow",
    }
    return Alert(**(fields | changes))


def zone_of(camera: str) -> str:
    if camera not in ZONES:
        raise ValueError(f"unknown camera {camera!r}")
    return ZONES[camera]


def alerting(delivery: FakeDelivery) -> tuple[Alerting, IncidentRegistry]:
    incidents = IncidentRegistry("pc1", "b00t", ClockMap.capture())
    raised = Alerting(
        alert_ids=AlertIds(host="pc1", boot_id="b00t"),
        incidents=incidents,
        topics=Topics(site="ward", host="pc1"),
        clock=ClockMap.capture(),
        metrics=DaemonMetrics(version="test", cameras=list(ZONES)),
        zone_of=zone_of,
        store=delivery.store,
        outbox_max_rows=100,
    )
    raised.attach(IDENTITY)
    return raised, incidents


async def test_nothing_is_raised_before_start_up_attached_the_identity() -> None:
    incidents = IncidentRegistry("pc1", "b00t", ClockMap.capture())
    raised = Alerting(
        alert_ids=AlertIds(host="pc1", boot_id="b00t"),
        incidents=incidents,
        topics=Topics(site="ward", host="pc1"),
        clock=ClockMap.capture(),
        metrics=DaemonMetrics(version="test", cameras=list(ZONES)),
        zone_of=zone_of,
        store=FakeDelivery().store,
        outbox_max_rows=100,
    )
    with pytest.raises(RuntimeError, match="not started"):
        await raised.technical("test")


async def test_a_technical_incident_from_start_to_end() -> None:
    delivery = FakeDelivery()
    raised, incidents = alerting(delivery)
    start = await raised.technical("test", camera="bay1", priority="low")
    assert start.stored and not start.held
    (topic, body, over_limit) = delivery.stored[0]
    assert topic == "gaitwatch/v1/ward/pc1/alert/bay1" and not over_limit
    assert (body["incident_id"], body["zone"], body["category"]) == (start.incident_id, "beds 1-4", "technical")
    (open_,) = incidents.active()
    assert (open_.incident_id, open_.alert_id, open_.type) == (start.incident_id, start.alert_id, "test")
    end = await raised.technical("test", AlertPhase.END, camera="bay1", incident_id=start.incident_id)
    assert end.incident_id == start.incident_id and end.alert_id != start.alert_id
    assert len(incidents) == 0
    with pytest.raises(ValueError, match="unknown camera"):
        await raised.technical("test", camera="nowhere")
    assert len(delivery.stored) == 2, "an unknown camera raises before anything is stored"


async def test_a_clinical_alert_carries_its_track_and_zone() -> None:
    delivery = FakeDelivery()
    raised, incidents = alerting(delivery)
    await raised.clinical("bay1", gait_alert(AlertPhase.START, t_observed=20.0, evidence={"cadence_spm": 60.0}))
    (_, body, _) = delivery.stored[0]
    assert (body["subject"], body["pattern"], body["zone"]) == ("bay1:b00t:7", "slow", "beds 1-4")
    assert incidents.snapshot()[0]["subject"] == "bay1:b00t:7"
    await raised.clinical("bay1", gait_alert(AlertPhase.END, t_observed=30.0))
    assert delivery.stored[1][1]["incident_id"] == body["incident_id"] and len(incidents) == 0


async def test_a_condition_raises_one_start_and_one_end() -> None:
    delivery = FakeDelivery()
    raised, incidents = alerting(delivery)
    for _ in range(3):
        await raised.condition(
            TechnicalAlertType.CAMERA_OFFLINE, True, camera="door", since=5.0, evidence={"stale_after_s": 20.0}
        )
    assert delivery.phases("camera_offline") == ["start"]
    assert delivery.stored[0][1]["evidence"] == {"stale_after_s": 20.0}
    assert [i.type for i in incidents.active()] == ["camera_offline"]
    await raised.condition(TechnicalAlertType.CAMERA_OFFLINE, False, camera="door")
    await raised.condition(TechnicalAlertType.CAMERA_OFFLINE, False, camera="door")
    assert delivery.phases("camera_offline") == ["start", "end"]
    assert len({m["incident_id"] for _, m, _ in delivery.stored}) == 1
    assert len(incidents) == 0


async def test_a_full_outbox_is_one_incident_that_gets_in_and_ends_when_alerts_fit_again() -> None:
    delivery = FakeDelivery()
    raised, incidents = alerting(delivery)
    delivery.full = True
    refused = [await raised.technical("test") for _ in range(3)]
    assert not any(r.stored for r in refused)
    assert delivery.phases("outbox_full") == ["start"], "one overflow incident, not one per refused alert"
    (topic, overflow, over_limit) = delivery.stored[0]
    assert over_limit, "the overflow alert is stored although the outbox is full"
    assert topic == "gaitwatch/v1/ward/pc1/alert" and overflow["camera"] is None
    assert overflow["evidence"] == {"max_rows": 100.0}
    assert sorted(i.type for i in incidents.active()) == ["outbox_full", "test", "test", "test"], (
        "refused alerts still show in the snapshot"
    )
    delivery.full = False
    after = await raised.technical("test")
    assert after.stored
    assert delivery.phases("outbox_full") == ["start", "end"]
    assert delivery.stored[-1][2], "the end of the overflow travels over the limit too"


async def test_shutdown_ends_every_open_incident_conditions_first_then_what_tools_left_open() -> None:
    delivery = FakeDelivery()
    raised, incidents = alerting(delivery)
    delivery.full = True
    await raised.technical("test")  # refused: opens the overflow incident first
    await raised.condition(TechnicalAlertType.CAMERA_OFFLINE, True, camera="door")  # refused too
    assert sorted(i.type for i in incidents.active()) == ["camera_offline", "outbox_full", "test"]
    delivery.full = False
    delivery.stored.clear()
    await raised.end_open_incidents()
    ended = [(m["type"], m["phase"]) for _, m, _ in delivery.stored]
    assert ended == [
        ("camera_offline", "end"),
        ("outbox_full", "end"),
        ("test", "end"),
    ]
    assert len(incidents) == 0 and incidents.open_conditions() == []
