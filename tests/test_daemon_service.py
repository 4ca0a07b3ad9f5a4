"""The service's delivery bookkeeping, in-process against a real mosquitto: what is republished on
(re)connect, the retained active-alerts snapshot, integrator acks, outbox overflow and clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import jsonschema
import pytest
from test_faults_harness import ALERT_FILTER, GUARD_S, Integrator, base_config, check_alerts

from gaitwatch.daemon.payloads import ack_payload
from gaitwatch.daemon.service import Service
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.gait.types import AlertPhase
from gaitwatch.tools.local_broker import free_port

REPO = Path(__file__).resolve().parents[1]
STATUS_SCHEMA = json.loads((REPO / "config" / "status.schema.json").read_text())
BASE = "gaitwatch/v1/ward/pc1"


@contextlib.asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[Service]:
    service = Service(parse_settings(config))
    run = asyncio.create_task(service.run())
    ready = asyncio.create_task(service.ready.wait())
    await asyncio.wait({run, ready}, timeout=GUARD_S, return_when=asyncio.FIRST_COMPLETED)
    assert service.ready.is_set(), "the service did not start"
    try:
        yield service
    finally:
        service.request_stop()
        assert await asyncio.wait_for(run, GUARD_S) == 0


async def until(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(GUARD_S):
            while not predicate():  # noqa: ASYNC110  (polls state owned by other tasks)
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def retained(port: int, topic_filter: str) -> dict[str, dict[str, Any]]:
    """Every retained message under ``topic_filter`` now (a marker published afterwards ends the wait)."""
    marker = "test/retained-marker"
    found: dict[str, dict[str, Any]] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier="retained-probe", timeout=5.0) as client:
        await client.subscribe(topic_filter, qos=1)
        await client.subscribe(marker, qos=1)
        await client.publish(marker, b"end", qos=1)
        async with asyncio.timeout(GUARD_S):
            async for message in client.messages:
                if str(message.topic) == marker:
                    return found
                if message.retain and isinstance(message.payload, bytes) and message.payload:
                    found[str(message.topic)] = json.loads(message.payload)
    return found


def dead_camera() -> dict[str, Any]:
    return {
        "id": "door",
        "source": f"http://127.0.0.1:{free_port()}/stream.mjpg",
        "stale_after_s": 0.3,
        "open_timeout_s": 0.3,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 0.3,
    }


async def test_reconnect_republishes_host_and_camera_status_and_the_active_alerts(
    mosquitto: Any, tmp_path: Path
) -> None:
    """A broker restarted without persistence has forgotten every retained message: the daemon must put them
    all back (host online, each camera's status, the open incidents) as soon as it reconnects."""
    config = base_config(tmp_path, mosquitto.port, metrics={"enabled": False})
    config["cameras"].append(dead_camera())
    async with running(config) as service:
        test = await service.emit_technical_alert("test", priority="low")
        await until(lambda: len(service._incidents) == 2, "the door's camera_offline incident and the test one")
        mosquitto.restart()  # not persistent: every retained message is gone
        await until(lambda: service._transport is not None and service._transport.connected, "reconnect")

        async def republished() -> dict[str, dict[str, Any]]:
            return await retained(mosquitto.port, f"{BASE}/#")

        for _ in range(int(GUARD_S / 0.1)):
            got = await republished()
            active = got.get(f"{BASE}/active_alerts", {}).get("alerts", [])
            if len(got) == 4 and len(active) == 2:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"retained state not republished: {sorted(got)}")
        await service.emit_technical_alert("test", AlertPhase.END, incident_id=test.incident_id)
        await until(lambda: len(service._incidents) == 1, "the test incident to end")
    assert got[f"{BASE}/status"]["state"] == "online"
    assert got[f"{BASE}/camera/bay1/status"]["state"] == "online"
    assert got[f"{BASE}/camera/door/status"]["state"] == "offline"
    types = sorted(a["type"] for a in active)
    assert types == ["camera_offline", "test"]
    for topic, payload in got.items():
        jsonschema.validate(payload, STATUS_SCHEMA, cls=jsonschema.Draft202012Validator)
        assert payload["host"] == "pc1", topic
    final = await retained(mosquitto.port, f"{BASE}/#")
    assert final[f"{BASE}/status"]["state"] == "offline"
    assert final[f"{BASE}/active_alerts"]["alerts"] == [], "a clean stop ends every open incident"


async def test_acks_are_recorded_and_invalid_ones_counted(mosquitto: Any, tmp_path: Path) -> None:
    ack_topic = f"{BASE}/ack"
    config = base_config(
        tmp_path, mosquitto.port, metrics={"enabled": False}, mqtt={"ack_topic": ack_topic, "ack_timeout_s": 30.0}
    )
    async with Integrator(mosquitto.port, ack_topic=ack_topic) as integrator, running(config) as service:
        ids = [(await service.emit_technical_alert("test")).alert_id for _ in range(5)]
        await integrator.until(lambda: integrator.alert_ids() >= set(ids), "5 alerts")
        acked = service.metrics.acks.labels(result="acked")
        await until(lambda: acked._value.get() == 5, "5 acks recorded")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="rogue", timeout=5.0) as rogue:
            await rogue.publish(ack_topic, b"not json", qos=1)
            # Another host's id, and a real id with the right token again (already acknowledged).
            first = next(a for a in integrator.alerts() if a["alert_id"] == ids[0])
            await rogue.publish(
                ack_topic, ack_payload({"alert_id": "other-host:boot:1", "ack_token": "x" * 22}, first), qos=1
            )
        invalid, ignored = (service.metrics.acks.labels(result=r) for r in ("invalid", "ignored"))
        await until(lambda: invalid._value.get() == 1 and ignored._value.get() == 2, "the bad acks counted")
        assert service._outbox is not None and service._outbox.unacked_count() == 0
    check_alerts(integrator.alerts())


async def test_full_outbox_raises_a_technical_alert_and_ends_it_when_there_is_room_again(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    broker = mosquitto_factory(start=False)
    config = base_config(tmp_path, broker.port, metrics={"enabled": False}, outbox={"max_rows": 100})
    async with running(config) as service:
        emitted = [await service.emit_technical_alert("test") for _ in range(103)]
        assert [e.stored for e in emitted] == [True] * 100 + [False] * 3
        assert service.metrics.outbox_full._value.get() == 3
        full = [i for i in service._incidents.active() if i.type == "outbox_full"]
        assert len(full) == 1, "one overflow incident, not one per refused alert"
        broker.start()
        async with Integrator(broker.port) as integrator:
            await integrator.until(
                lambda: any(a["type"] == "outbox_full" for a in integrator.alerts()), "the outbox_full alert"
            )
            await until(lambda: service.metrics.outbox_pending._value.get() == 0, "the outbox drained")
            after = await service.emit_technical_alert("test")
            assert after.stored
            await integrator.until(
                lambda: [a["phase"] for a in integrator.alerts() if a["type"] == "outbox_full"] == ["start", "end"],
                "the end of the overflow",
            )
    alerts = integrator.alerts()
    check_alerts(alerts)
    stored = {e.alert_id for e in emitted if e.stored} | {after.alert_id}
    assert stored <= {a["alert_id"] for a in alerts}
    overflow = next(a for a in alerts if a["type"] == "outbox_full")
    assert overflow["camera"] is None and overflow["priority"] == "high"


async def test_published_rows_are_cleaned_up_periodically(mosquitto: Any, tmp_path: Path) -> None:
    config = base_config(
        tmp_path,
        mosquitto.port,
        metrics={"enabled": False},
        outbox={"keep_published_s": 0.0, "cleanup_interval_s": 0.2},
    )
    async with Integrator(mosquitto.port, [ALERT_FILTER]) as integrator, running(config) as service:
        ids = [(await service.emit_technical_alert("test")).alert_id for _ in range(10)]
        await integrator.until(lambda: integrator.alert_ids() >= set(ids), "10 alerts")
        await until(lambda: service.metrics.outbox_cleaned._value.get() >= 10, "the clean-up")
        await until(lambda: service.metrics.outbox_rows._value.get() == 0, "the rows metric")
        assert service._outbox is not None and service._outbox.row_count() == 0
        # seq keeps growing after a clean-up: integrators can still order by it.
        more = await service.emit_technical_alert("test")
        await integrator.until(lambda: more.alert_id in integrator.alert_ids(), "one more alert")
    seqs = [a["seq"] for a in integrator.alerts()]
    assert seqs == sorted(seqs)
    assert next(a["seq"] for a in integrator.alerts() if a["alert_id"] == more.alert_id) == 11
