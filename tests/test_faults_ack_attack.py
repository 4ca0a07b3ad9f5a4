"""A hostile client on the ack topic tries to suppress alerts by acknowledging them before they exist.

Alert ids are ``<host>:<boot_id>:<n>`` and the boot id is in the retained status, so before issue 14 any client
allowed to publish on the ack topic could pre-acknowledge the next ids: the real integrator received 39 of 100
alerts while the outbox showed everything delivered. Now an ack counts only for an alert already published and
only with that alert's ``ack_token``, a secret that appears nowhere but in the alert's own payload.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from test_faults_harness import Integrator, base_config, check_alerts, daemon, scrape, until_metric, write_config

pytestmark = pytest.mark.slow

ACK_TOPIC = "gaitwatch/v1/ward/pc1/ack"


async def _pre_ack(port: int, stop: asyncio.Event) -> int:
    """Learn the boot id from the retained status, then acknowledge every predictable id, in every form,
    over and over, until told to stop; returns how many ack messages were sent."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="attacker") as client:
        await client.subscribe("gaitwatch/v1/ward/pc1/status", qos=1)
        async for message in client.messages:
            status = json.loads(message.payload if isinstance(message.payload, bytes) else b"{}")
            break
        prefix = f"{status['host']}:{status['boot_id']}:"
        sent = 0
        while not stop.is_set():
            for n in range(1, 260):
                alert_id = f"{prefix}{n}"
                for payload in (
                    {"alert_id": alert_id},  # v1
                    {"schema": "gaitwatch.ack/2", "alert_id": alert_id, "ack_token": "guess"},
                    {"schema": "gaitwatch.ack/2", "alert_id": alert_id, "ack_token": ""},
                ):
                    await client.publish(ACK_TOPIC, json.dumps(payload).encode(), qos=1)
                    sent += 1
            await asyncio.sleep(0.05)
        return sent


async def test_pre_acknowledging_predicted_ids_suppresses_nothing(mosquitto: Any, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "daemon.toml",
        base_config(tmp_path, mosquitto.port, mqtt={"ack_topic": ACK_TOPIC, "ack_timeout_s": 3600.0}),
    )
    stop = asyncio.Event()
    async with daemon(config, tmp_path) as d, Integrator(mosquitto.port, client_id="nursecall") as integrator:
        await d.wait_ready()
        attacker = asyncio.create_task(_pre_ack(mosquitto.port, stop))
        try:
            await until_metric(d, 'gaitwatch_mqtt_acks_total{result="ignored"}', lambda v: v > 100, "the attack")
            await d.alerts(100, 0.01)
            await d.until(lambda: "done 100" in d.lines, "the end of the burst")
            assert len(d.stored) == 100
            await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "all 100 alerts")
        finally:
            stop.set()
            sent = await attacker
        # The gauge is refreshed after the drainer records the PUBACKs, which may come after the integrator has
        # the alerts: wait for it to count all 100 (a forged ack that counted would keep it below 100).
        await until_metric(d, "gaitwatch_outbox_unacked", lambda v: v == 100, "all 100 awaiting a real ack")
        metrics = await scrape(d.metrics_port)
        assert metrics['gaitwatch_mqtt_acks_total{result="acked"}'] == 0, "no forged ack was accepted"
        assert await d.stop() == 0
    check_alerts(integrator.alerts())
    assert sent > 300
