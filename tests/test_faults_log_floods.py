"""Log floods: what a broken peer or a long outage can make the daemon write, once per event, for hours.

Before issue 14: a camera offline while the broker was down was logged on every health pass (every 1-2 s),
and each malformed integrator ack logged a WARNING (1,000 acks -> 1,000 lines). Now a camera's state is
logged once per change, and invalid acks at most once a minute while a metric counts every one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from test_faults_harness import base_config, daemon, scrape, until_metric, write_config

from gaitwatch.tools.local_broker import free_port

pytestmark = pytest.mark.slow

ACK_TOPIC = "gaitwatch/v1/ward/pc1/ack"
LAG_SAMPLES = "gaitwatch_event_loop_lag_seconds_count"


async def test_a_camera_offline_while_the_broker_is_down_is_logged_once(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens there
    camera = {"id": "door", "source": dead, "stale_after_s": 0.5, "open_timeout_s": 0.5, "reconnect_max_s": 1.0}
    config = base_config(tmp_path, free_port(), camera=camera)  # no broker on that port either
    path = write_config(tmp_path / "daemon.toml", config)
    async with daemon(path, tmp_path) as d:
        await d.wait_ready()
        await d.until(lambda: "camera=door event=offline" in d.log_text(), "the camera to go offline")
        # 4 lag samples a second: 12 more is 3 s, some 24 health passes at this stale_after_s.
        start = (await scrape(d.metrics_port))[LAG_SAMPLES]
        await until_metric(d, LAG_SAMPLES, lambda v: v >= start + 12, "3 s of health passes")
        assert d.log_text().count("camera=door event=offline") == 1, d.log_text()[-3000:]
        assert await d.stop() == 0


async def test_a_flood_of_invalid_acks_is_counted_not_logged_line_by_line(mosquitto: Any, tmp_path: Path) -> None:
    config = base_config(tmp_path, mosquitto.port, mqtt={"ack_topic": ACK_TOPIC})
    path = write_config(tmp_path / "daemon.toml", config)
    async with daemon(path, tmp_path) as d:
        await d.wait_ready()
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hostile") as client:
            for i in range(1000):
                await client.publish(ACK_TOPIC, f"not json {i}".encode(), qos=1)
        await until_metric(
            d, 'gaitwatch_mqtt_acks_total{result="invalid"}', lambda v: v >= 500, "500 invalid acks counted"
        )
        assert d.log_text().count("invalid ack") <= 2, "at most one line per minute"
        assert d.log_text().count("invalid ack") >= 1, "the first one is logged"
        assert await d.stop() == 0
