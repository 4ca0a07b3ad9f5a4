"""Fault injection on the delivery path: the real daemon (a subprocess) against a real mosquitto on a free
loopback port, with the broker or the daemon killed mid-burst, or the broker absent at start-up.

"Nothing lost" is checked on what an integrator actually receives: every alert id the daemon reported as
committed to its outbox arrives (duplicates allowed, de-duplicated on ``alert_id``), and the outbox ``seq``
numbers seen form an unbroken run from 1, so not even an alert the daemon could not report before it died
went missing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

import pytest
from test_faults_harness import (
    Integrator,
    base_config,
    check_alerts,
    create_session,
    daemon,
    first_seen_in_order,
    scrape,
    until_metric,
    write_config,
)

pytestmark = pytest.mark.slow

ACK_TOPIC = "gaitwatch/v1/ward/pc1/ack"


class Broker(Protocol):
    port: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...


def seqs_are_unbroken(alerts: list[dict[str, Any]]) -> bool:
    seqs = {int(a["seq"]) for a in alerts}
    return seqs == set(range(1, max(seqs) + 1))


async def test_broker_sigkill_and_restart_during_a_burst_of_200_alerts_loses_none(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    """Ack mode closes the loop the broker's PUBACK cannot: a SIGKILLed broker may have acknowledged alerts it
    had not yet saved for the subscriber; without an ack they are sent again, with the same alert_id."""
    broker: Broker = mosquitto_factory(persistence=True)
    config = write_config(
        tmp_path / "daemon.toml",
        base_config(tmp_path, broker.port, mqtt={"ack_topic": ACK_TOPIC, "ack_timeout_s": 2.0}),
    )
    async with (
        Integrator(broker.port, ack_topic=ACK_TOPIC) as integrator,
        daemon(config, tmp_path) as d,
    ):
        await d.wait_ready()
        await d.alerts(200, 0.01)
        await d.until(lambda: len(d.stored) >= 60, "60 alerts stored")
        await asyncio.to_thread(broker.kill)
        await d.until(lambda: len(d.stored) >= 130, "130 alerts stored (broker down)")
        await asyncio.to_thread(broker.start)
        await d.until(lambda: "done 200" in d.lines, "the end of the burst")
        assert len(d.stored) == 200, "the outbox took every alert"
        await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "all 200 alert ids")
        # Every alert acknowledged: nothing left to deliver or to re-send.
        await until_metric(d, "gaitwatch_outbox_unacked", lambda v: v == 0, "every alert acknowledged")
        metrics = await scrape(d.metrics_port)
        assert await d.stop() == 0
    alerts = integrator.alerts()
    check_alerts(alerts)
    assert {a["alert_id"] for a in alerts} == set(d.stored)
    assert seqs_are_unbroken(alerts)
    assert integrator.connects >= 2, "the integrator itself lived through the broker crash"
    print(
        f"broker kill: {len(alerts)} copies of 200 alerts received, "
        f"{metrics['gaitwatch_outbox_republished_total']:.0f} re-sent for want of an ack"
    )


async def test_daemon_sigkill_mid_burst_then_restart_redelivers_in_seq_order(mosquitto: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, mosquitto.port))
    async with Integrator(mosquitto.port, filters=["gaitwatch/v1/+/+/alert/#", "gaitwatch/v1/+/+/status"]) as i:
        async with daemon(config, tmp_path) as first:
            await first.wait_ready()
            await first.alerts(200, 0.005)
            await first.until(lambda: len(first.stored) >= 80, "80 alerts stored")
            await first.kill()  # SIGKILL mid-burst: no flush, no goodbye
        assert 80 <= len(first.stored) < 200
        await i.until(lambda: any(s["state"] == "offline" for s in i.on("/status")), "the Last Will")
        async with daemon(config, tmp_path) as second:
            await second.wait_ready()
            await second.alerts(20)
            await second.until(lambda: "done 20" in second.lines, "the second burst")
            expected = set(first.stored) | set(second.stored)
            await i.until(lambda: i.alert_ids() >= expected, "every stored alert")
            assert await second.stop() == 0
    alerts = i.alerts()
    check_alerts(alerts)
    assert seqs_are_unbroken(alerts), "no alert committed by the killed daemon is missing"
    order = first_seen_in_order(alerts)
    assert order == sorted(order), "first copies arrive in seq order"
    boots = {a["alert_id"].split(":")[1] for a in alerts}
    assert len(boots) == 2, "alert ids of the two runs differ (new boot id), seq keeps growing"
    states = [s["state"] for s in i.on("/status")]
    assert states[-1] == "offline" and "online" in states


async def test_broker_absent_at_start_the_daemon_is_ready_and_delivers_once_it_appears(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    broker: Broker = mosquitto_factory(persistence=True)
    await create_session(broker.port, "nursecall-absent")
    await asyncio.to_thread(broker.stop)
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, broker.port))
    async with daemon(config, tmp_path) as d:
        await d.wait_ready()  # READY does not wait for the broker: the outbox covers its absence
        assert any("READY=1" in n for n in d.notifications)
        await d.alerts(50)
        await d.until(lambda: "done 50" in d.lines, "50 alerts")
        await until_metric(d, "gaitwatch_outbox_pending", lambda v: v == 50, "50 alerts pending")
        assert (await scrape(d.metrics_port))["gaitwatch_mqtt_connected"] == 0
        await d.until(lambda: any("mqtt down" in n for n in d.notifications), "STATUS naming the broker")
        await asyncio.to_thread(broker.start)
        async with Integrator(broker.port, client_id="nursecall-absent") as integrator:
            await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "all 50 alerts")
            assert await d.stop() == 0
    alerts = integrator.alerts()
    check_alerts(alerts)
    assert len(d.stored) == 50 and {a["alert_id"] for a in alerts} == set(d.stored)
    order = first_seen_in_order(alerts)
    assert order == sorted(order)
