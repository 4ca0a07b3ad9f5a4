"""Several ward PCs: two daemons with different host ids on one broker, and the shipped mosquitto bridge
(config/mosquitto-bridge.conf) carrying a ward broker's gaitwatch/# to a central broker and integrator acks
back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_faults_harness import (
    Integrator,
    base_config,
    check_alerts,
    daemon,
    first_seen_in_order,
    until_metric,
    write_config,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BRIDGE = REPO / "config" / "mosquitto-bridge.conf"


async def test_two_daemons_with_different_host_ids_share_one_broker(mosquitto: Any, tmp_path: Path) -> None:
    configs = {
        host: write_config(tmp_path / f"{host}.toml", base_config(tmp_path, mosquitto.port, host=host))
        for host in ("pc1", "pc2")
    }
    filters = ["gaitwatch/v1/+/+/alert/#", "gaitwatch/v1/+/+/status"]
    async with (
        Integrator(mosquitto.port, filters) as integrator,
        daemon(configs["pc1"], tmp_path) as pc1,
        daemon(configs["pc2"], tmp_path) as pc2,
    ):
        await pc1.wait_ready()
        await pc2.wait_ready()
        await pc1.alerts(20)
        await pc2.alerts(20)
        await integrator.until(
            lambda: integrator.alert_ids() >= set(pc1.stored) | set(pc2.stored) and len(pc1.stored) == 20,
            "40 alerts from two hosts",
        )
        await pc1.kill()  # one PC dies: only its status goes offline (its own Last Will)

        def last_state(host: str) -> str | None:
            states = [s["state"] for s in integrator.on(f"/{host}/status")]
            return states[-1] if states else None

        await integrator.until(lambda: last_state("pc1") == "offline", "pc1's Last Will")
        assert last_state("pc2") == "online"
        assert await pc2.stop() == 0
    alerts = integrator.alerts()
    check_alerts(alerts)
    for host, d in (("pc1", pc1), ("pc2", pc2)):
        mine = [a for a in alerts if a["host"] == host]
        assert {a["alert_id"] for a in mine} >= set(d.stored)
        assert all(a["alert_id"].startswith(f"{host}:") for a in mine)
        received = [r for r in integrator.received if r.json().get("host") == host and "/alert" in r.topic]
        assert all(r.topic.startswith(f"gaitwatch/v1/ward/{host}/alert") for r in received)
        # seq is per host: each PC numbers its own alerts from 1, in order.
        order = first_seen_in_order(mine)
        assert order == sorted(order) and order[0] == 1


def bridge_config(central_port: int) -> str:
    text = BRIDGE.read_text()
    assert re.search(r"^address \S+$", text, flags=re.MULTILINE), "the example must name the central broker"
    return re.sub(r"^address \S+$", f"address 127.0.0.1:{central_port}", text, flags=re.MULTILINE)


async def test_bridge_config_forwards_a_ward_to_the_central_broker_and_acks_back(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    central = mosquitto_factory()
    ward = mosquitto_factory(extra_config=bridge_config(central.port))
    ack_topic = "gaitwatch/v1/ward/pc1/ack"
    mqtt = {"ack_topic": ack_topic, "ack_timeout_s": 30.0}
    path = write_config(tmp_path / "pc1.toml", base_config(tmp_path, ward.port, mqtt=mqtt))
    filters = ["gaitwatch/v1/+/+/alert/#", "gaitwatch/v1/+/+/status", "gaitwatch/v1/+/+/camera/+/status"]
    async with (
        Integrator(central.port, filters, ack_topic=ack_topic) as integrator,
        daemon(path, tmp_path) as d,
    ):
        await d.wait_ready()
        await integrator.until(lambda: bool(integrator.on("/pc1/status")), "the host status at the centre")
        await d.alerts(20)
        await integrator.until(lambda: integrator.alert_ids() >= set(d.stored) and len(d.stored) == 20, "20 alerts")
        # The integrator's acks travel back over the bridge: nothing stays unacknowledged.
        await until_metric(d, "gaitwatch_outbox_unacked", lambda v: v == 0, "acks from the centre")
        await until_metric(d, 'gaitwatch_mqtt_acks_total{result="acked"}', lambda v: v >= 20, "20 acks")
        assert await d.stop() == 0
        await integrator.until(lambda: integrator.on("/pc1/status")[-1]["state"] == "offline", "offline")
    check_alerts(integrator.alerts())
    assert integrator.on("/camera/bay1/status"), "retained camera status crossed the bridge"
    assert "max_queued_messages" in BRIDGE.read_text() and "cleansession false" in BRIDGE.read_text()
