"""Sinks behind one interface: each sink's drainer works on its own delivery state, and alerts held in memory
while the disk fails reach every sink once, with each sink's delivery recorded when they are committed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from gaitwatch.daemon.alert_intake import AlertIntake, StoreResult
from gaitwatch.daemon.drainer import SinkDrainer
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.outbox import Outbox, OutboxRow, OutboxStorageError, SinkPolicy
from gaitwatch.daemon.sinks import AlertSink, DeliveryReport

T0 = 1_700_000_000.0


class ScriptedSink:
    """An ``AlertSink`` that takes everything while ``available``; ``refuse`` lists alert ids it refuses."""

    def __init__(self, name: str, *, available: bool = True, refuse: frozenset[str] = frozenset()) -> None:
        self._name = name
        self.is_available = available
        self.refuse = refuse
        self.got: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def available(self) -> bool:
        return self.is_available

    async def wait_available(self, timeout_s: float | None = None) -> bool:
        await asyncio.sleep(0)
        return self.is_available

    async def deliver(self, rows: Sequence[OutboxRow]) -> DeliveryReport:
        if not self.is_available:
            return DeliveryReport(error="down")
        delivered = [r.seq for r in rows if r.alert_id not in self.refuse]
        self.got += [r.alert_id for r in rows if r.alert_id not in self.refuse]
        return DeliveryReport(tuple(delivered), {r.seq: "refused" for r in rows if r.alert_id in self.refuse})

    async def close(self) -> None:
        return None


class FlakyOutbox(Outbox):
    """An outbox whose disk refuses writes while ``failing`` (as a full or locked disk does)."""

    failing = False

    def add(
        self, topic: str, payload: bytes, alert_id: str, *, now_wall: float | None = None, over_limit: bool = False
    ) -> int:
        if self.failing:
            raise OutboxStorageError(self.path, "disk full (scripted)")
        return super().add(topic, payload, alert_id, now_wall=now_wall, over_limit=over_limit)

    def add_many(self, items: Sequence[tuple[str, bytes, str, float]]) -> list[int]:
        if self.failing:
            raise OutboxStorageError(self.path, "disk full (scripted)")
        return super().add_many(items)


SINKS = [SinkPolicy("mqtt"), SinkPolicy("fhir")]


def test_scripted_sink_is_an_alert_sink() -> None:
    sink: AlertSink = ScriptedSink("x")  # mypy checks the protocol here
    assert sink.name == "x"


async def test_one_sink_down_does_not_hold_back_the_other(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 100, sinks=SINKS) as box:
        mqtt, fhir = ScriptedSink("mqtt"), ScriptedSink("fhir", available=False)
        seqs = [box.add("t", b"{}", f"a{i}", now_wall=T0) for i in range(3)]
        assert await SinkDrainer(box, mqtt).drain_once() == 3
        assert await SinkDrainer(box, fhir).drain_once() == 0
        assert mqtt.got == ["a0", "a1", "a2"] and box.pending_count(sink="fhir") == 3
        fhir.is_available = True
        assert await SinkDrainer(box, fhir).drain_once() == 3
        assert await SinkDrainer(box, mqtt).drain_once() == 0, "nothing is sent twice to the sink that had it"
        assert box.pending_count() == 0 and box.cleanup(0.0) == len(seqs)


async def test_a_drainer_stops_at_a_refusal_only_for_its_own_sink(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 100, sinks=SINKS) as box:
        for i in range(3):
            box.add("t", b"{}", f"a{i}", now_wall=T0)
        fhir = ScriptedSink("fhir", refuse=frozenset({"a1"}))
        assert await SinkDrainer(box, fhir).drain_once() == 2
        assert fhir.got == ["a0", "a2"] and box.pending_count(sink="fhir") == 0
        assert box.pending_count(sink="mqtt") == 3


async def test_held_alerts_reach_every_sink_once_and_commit_with_each_sinks_state(tmp_path: Path) -> None:
    availability: list[bool] = []

    async def on_availability(available: bool) -> None:
        availability.append(available)

    box = FlakyOutbox(tmp_path / "o.sqlite", 100, sinks=SINKS)
    mqtt, fhir = ScriptedSink("mqtt"), ScriptedSink("fhir", available=False)
    mqtt_drainer, fhir_drainer = SinkDrainer(box, mqtt), SinkDrainer(box, fhir)
    intake = AlertIntake(box, 10, DaemonMetrics(version="t", cameras=[]), on_availability, wall_clock=lambda: T0)
    intake.attach_sink(mqtt_drainer)
    intake.attach_sink(fhir_drainer)
    await intake.start()
    box.failing = True
    results = [await intake.store("t", b"{}", f"held-{i}") for i in range(3)]
    assert results == [StoreResult.HELD] * 3 and availability == [False]
    assert await intake.publish_held() == 3, "the available sink gets them at once"
    assert mqtt.got == ["held-0", "held-1", "held-2"] and fhir.got == []
    fhir.is_available = True
    assert await intake.publish_held() == 3, "the other sink when it is back; mqtt is not sent them again"
    assert mqtt.got == ["held-0", "held-1", "held-2"] and fhir.got == mqtt.got
    box.failing = False
    assert await intake.commit_held() and availability == [False, True]
    assert box.pending_count() == 0, "both deliveries were recorded at commit"
    assert await mqtt_drainer.drain_once() == 0 and await fhir_drainer.drain_once() == 0
    states = box.deliveries(1)
    assert [(s.sink, s.delivered_wall) for s in states] == [("fhir", T0), ("mqtt", T0)]
    box.close()


async def test_held_alerts_a_sink_never_got_are_left_to_its_drainer(tmp_path: Path) -> None:
    async def on_availability(available: bool) -> None:
        return None

    box = FlakyOutbox(tmp_path / "o.sqlite", 100, sinks=SINKS)
    mqtt, fhir = ScriptedSink("mqtt"), ScriptedSink("fhir", available=False)
    fhir_drainer = SinkDrainer(box, fhir)
    intake = AlertIntake(box, 10, DaemonMetrics(version="t", cameras=[]), on_availability)
    intake.attach_sink(SinkDrainer(box, mqtt))
    intake.attach_sink(fhir_drainer)
    await intake.start()
    box.failing = True
    await intake.store("t", b"{}", "held-0")
    await intake.publish_held()
    box.failing = False
    assert await intake.commit_held()
    assert box.pending_count(sink="mqtt") == 0 and box.pending_count(sink="fhir") == 1
    fhir.is_available = True
    assert await fhir_drainer.drain_once() == 1 and fhir.got == ["held-0"]
    box.close()
