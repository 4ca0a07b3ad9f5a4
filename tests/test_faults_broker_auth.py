"""Fault injection at the broker's door: a wrong password, an ACL that denies the alert topics (MQTT 5, and
MQTT 3.1.1 where the broker silently drops), and TLS against a broker whose certificate the configured CA
did not sign. Each must give a clear error (log and systemd STATUS line) and lose nothing: once the admin
fixes the cause, every alert stored meanwhile arrives.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pki import make_pki
from test_faults_harness import (
    Integrator,
    base_config,
    check_alerts,
    daemon,
    scrape,
    until_metric,
    write_config,
)

pytestmark = pytest.mark.slow

ACK_TOPIC = "gaitwatch/v1/ward/pc1/ack"
BASE = "gaitwatch/v1/ward/pc1"


def passwords(path: Path, users: dict[str, str]) -> Path:
    exe = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin:/usr/sbin")
    if exe is None:
        pytest.fail("mosquitto_passwd (part of the mosquitto package) is needed to make a password file")
    for i, (user, password) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([exe, "-b", *create, str(path), user, password], check=True, capture_output=True)
    return path


async def test_wrong_password_is_a_clear_error_and_alerts_wait_for_the_fix(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    pwfile = passwords(tmp_path / "passwd", {"gaitwatch": "right-horse-battery", "nursecall": "nc-pw-1"})
    broker = mosquitto_factory(extra_config=f"allow_anonymous false\npassword_file {pwfile}")
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret-WRONG-pw\n")
    mqtt = {"username": "gaitwatch", "password_file": str(secret)}
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, broker.port, mqtt=mqtt))
    async with Integrator(broker.port, username="nursecall", password="nc-pw-1") as integrator:
        async with daemon(config, tmp_path) as d:
            await d.wait_ready()
            await d.alerts(20)
            await d.until(lambda: "done 20" in d.lines, "20 alerts stored")
            hint = "check mqtt.username and mqtt.password_file"
            await d.until(lambda: hint in d.log_text(), "a log line naming the cause")
            await d.until(lambda: any("mqtt down" in n and "refused" in n for n in d.notifications), "the STATUS line")
            assert await d.stop() == 0
        assert not integrator.alerts()
        for text in (d.log_text(), "\n".join(d.notifications)):
            assert "s3cret-WRONG-pw" not in text and "right-horse-battery" not in text
        secret.write_text("right-horse-battery\n")  # the admin fixes the credential
        async with daemon(config, tmp_path) as fixed:
            await fixed.wait_ready()
            await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "the 20 stored alerts")
            assert await fixed.stop() == 0
    check_alerts(integrator.alerts())
    assert len(d.stored) == 20
    assert "right-horse-battery" not in fixed.log_text()


def acl(path: Path, *, alerts_allowed: bool) -> Path:
    lines = [
        f"topic readwrite {BASE}/status",
        f"topic readwrite {BASE}/camera/#",
        f"topic readwrite {BASE}/active_alerts",
        f"topic readwrite {ACK_TOPIC}",
        "topic read gaitwatch/v1/#",
    ]
    if alerts_allowed:
        lines += [f"topic write {BASE}/alert", f"topic write {BASE}/alert/#"]
    path.write_text("\n".join(lines) + "\n")
    return path


def reload_broker(broker: Any) -> None:
    """SIGHUP: mosquitto re-reads its ACL file (how an admin applies a fix without dropping clients)."""
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGHUP)


async def test_acl_denial_with_mqtt5_is_named_and_the_alerts_arrive_after_the_fix(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    acl_file = acl(tmp_path / "acl", alerts_allowed=False)
    broker = mosquitto_factory(extra_config=f"acl_file {acl_file}")
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, broker.port))
    async with Integrator(broker.port) as integrator, daemon(config, tmp_path) as d:
        await d.wait_ready()
        await d.alerts(20)
        await d.until(lambda: "done 20" in d.lines, "20 alerts stored")
        await d.until(lambda: "Not authorized" in d.log_text(), "the broker's refusal in the log")
        await d.until(lambda: any("alerts failing" in n for n in d.notifications), "the STATUS line")
        assert (await scrape(d.metrics_port))["gaitwatch_outbox_pending"] == 20
        acl(acl_file, alerts_allowed=True)
        reload_broker(broker)
        await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "the 20 stored alerts")
        assert await d.stop() == 0
    check_alerts(integrator.alerts())


async def test_acl_drop_with_mqtt311_is_caught_by_ack_mode(mosquitto_factory: Any, tmp_path: Path) -> None:
    """MQTT 3.1.1 has no reason codes: the broker acknowledges a denied publish and drops it. Only the
    integrator's ack can tell; without it the alert is re-sent until the ACL is fixed."""
    acl_file = acl(tmp_path / "acl", alerts_allowed=False)
    broker = mosquitto_factory(extra_config=f"acl_file {acl_file}")
    mqtt = {"protocol": "3.1.1", "ack_topic": ACK_TOPIC, "ack_timeout_s": 1.0}
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, broker.port, mqtt=mqtt))
    async with Integrator(broker.port, ack_topic=ACK_TOPIC) as integrator, daemon(config, tmp_path) as d:
        await d.wait_ready()
        await d.alerts(20)
        await d.until(lambda: "done 20" in d.lines, "20 alerts stored")
        await until_metric(d, "gaitwatch_outbox_republished_total", lambda v: v >= 20, "a round of re-sends")
        assert not integrator.alerts(), "the broker dropped them although it acknowledged them"
        assert (await scrape(d.metrics_port))["gaitwatch_outbox_unacked"] == 20
        acl(acl_file, alerts_allowed=True)
        reload_broker(broker)
        await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "the 20 stored alerts")
        await until_metric(d, "gaitwatch_outbox_unacked", lambda v: v == 0, "every alert acknowledged")
        assert await d.stop() == 0
    check_alerts(integrator.alerts())


async def test_tls_with_a_ca_that_did_not_sign_the_broker_is_named_and_nothing_is_lost(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    make_pki(tmp_path, "good")
    make_pki(tmp_path, "other")
    tls_listener = "\n".join(
        [
            f"cafile {tmp_path / 'good-ca.crt'}",
            f"certfile {tmp_path / 'good-server.crt'}",
            f"keyfile {tmp_path / 'good-server.key'}",
        ]
    )
    broker = mosquitto_factory(extra_config=tls_listener)
    wrong = base_config(tmp_path, broker.port, mqtt={"tls": {"ca_file": str(tmp_path / "other-ca.crt")}})
    config = write_config(tmp_path / "daemon.toml", wrong)
    context = ssl.create_default_context(cafile=str(tmp_path / "good-ca.crt"))
    async with Integrator(broker.port, tls_context=context) as integrator:
        async with daemon(config, tmp_path) as d:
            await d.wait_ready()
            await d.alerts(10)
            await d.until(lambda: "done 10" in d.lines, "10 alerts stored")
            await d.until(lambda: "check mqtt.tls.ca_file" in d.log_text(), "a log line naming the cause")
            await d.until(lambda: any("certificate verify failed" in n for n in d.notifications), "the STATUS line")
            assert await d.stop() == 0
        write_config(
            config,
            base_config(tmp_path, broker.port, mqtt={"tls": {"ca_file": str(tmp_path / "good-ca.crt")}}),
        )
        async with daemon(config, tmp_path) as fixed:
            await fixed.wait_ready()
            await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "the 10 stored alerts")
            assert await fixed.stop() == 0
        await asyncio.sleep(0)
    check_alerts(integrator.alerts())
