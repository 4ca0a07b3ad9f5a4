"""The MQTT adapter and the outbox drainer against a real mosquitto on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
import jsonschema
import pytest
from pki import make_pki

from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.mqtt import (
    MqttConfig,
    MqttConfigError,
    MqttTransport,
    NotConnectedError,
    OutboxDrainer,
    PublishRejectedError,
    PublishTimeoutError,
    TlsConfig,
    backoff_delays,
)
from gaitwatch.daemon.outbox import Outbox
from gaitwatch.daemon.payloads import ClockMap, PublisherIdentity, Topics, ack_token_of, technical_alert_body
from gaitwatch.gait.types import AlertPhase


class Mosquitto(Protocol):
    """What these tests use of conftest's mosquitto handle."""

    host: str
    port: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def restart(self) -> None: ...


MosquittoFactory = Callable[..., Mosquitto]

GUARD_S = 15.0  # upper bound on any single wait, so a failure fails instead of hanging
TOPICS = Topics(site="test", host="h1")
IDENTITY = PublisherIdentity(site="test", host="h1", boot_id="b00t", software_version="0.1.0")
ALERT_SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "config" / "alert.schema.json").read_text())
PROTOCOLS = ["5", "3.1.1"]


def config(broker: Mosquitto, protocol: str = "5", **changes: Any) -> MqttConfig:
    fields: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "client_id": f"gaitwatch-h1-{protocol}",
        "protocol": protocol,
        "timeout_s": 5.0,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.5,
    }
    fields.update(changes)
    return MqttConfig(**fields)


def transport(cfg: MqttConfig, **kwargs: Any) -> MqttTransport:
    return MqttTransport(
        cfg,
        status_topic=TOPICS.status,
        online_payload=lambda: b'{"state":"online"}',
        offline_payload=lambda: b'{"state":"offline"}',
        **kwargs,
    )


def subscriber(broker: Mosquitto, name: str = "integrator", **kwargs: Any) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port, identifier=name, timeout=GUARD_S, **kwargs)


async def next_message(c: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(GUARD_S):
        return await anext(aiter(c.messages))


async def until(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(GUARD_S):
            while not predicate():  # noqa: ASYNC110  (polls state owned by other tasks and processes)
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def alert(i: int) -> bytes:
    return technical_alert_body(
        "camera_offline",
        AlertPhase.START,
        camera="bay1",
        identity=IDENTITY,
        clock=ClockMap(0.0),
        t_start=1.7e9,
        t_observed=1.7e9 + i,
        alert_id=f"h1:b00t:{i}",
        incident_id=f"h1:b00t:{i}",
    )


def test_backoff_delays_double_up_to_the_cap_with_jitter() -> None:
    delays = backoff_delays(0.5, 8.0, random.Random(1))
    got = [next(delays) for _ in range(10)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert all(c / 2 <= d <= c for d, c in zip(got, ceilings, strict=True))
    assert len(set(got)) == 10  # jittered: many daemons do not retry in lock-step
    again = backoff_delays(0.5, 8.0, random.Random(1))
    assert [next(again) for _ in range(10)] == got  # deterministic given the generator
    with pytest.raises(ValueError):
        next(backoff_delays(0.0, 1.0))
    with pytest.raises(ValueError):
        next(backoff_delays(2.0, 1.0))


# -- the transport -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_retained_online_status_on_connect_and_offline_on_close(mosquitto: Mosquitto, protocol: str) -> None:
    metrics = DaemonMetrics(version="t", cameras=[])
    t = transport(config(mosquitto, protocol), metrics=metrics)
    async with t:
        assert await t.wait_connected(GUARD_S)
        assert metrics.mqtt_connected._value.get() == 1
        await t.publish("gw/test/gait", b"g", qos=0)
        async with subscriber(mosquitto) as late:
            await late.subscribe(TOPICS.status, qos=1)
            m = await next_message(late)
            assert m.payload == b'{"state":"online"}' and m.retain
    assert not t.connected
    async with subscriber(mosquitto, "later") as later:
        await later.subscribe(TOPICS.status, qos=1)
        m = await next_message(later)
        assert m.payload == b'{"state":"offline"}' and m.retain


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_last_will_marks_a_killed_daemon_offline(mosquitto: Mosquitto, protocol: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from gaitwatch.daemon.mqtt import MqttConfig, MqttTransport
        async def main():
            cfg = MqttConfig("127.0.0.1", {mosquitto.port}, "victim", protocol={protocol!r}, timeout_s=5.0)
            t = MqttTransport(cfg, status_topic={TOPICS.status!r}, online_payload=lambda: b"online",
                              offline_payload=lambda: b"will")
            t.start()
            await t.wait_connected(15.0)
            print("up", flush=True)
            await asyncio.sleep(3600)
        asyncio.run(main())
        """
    )

    async def scenario() -> list[bytes]:
        async with subscriber(mosquitto) as sub:
            await sub.subscribe(TOPICS.status, qos=1)
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=subprocess.PIPE)
            assert proc.stdout is not None
            async with asyncio.timeout(GUARD_S):
                assert (await proc.stdout.readline()).strip() == b"up"
            first = (await next_message(sub)).payload
            proc.send_signal(signal.SIGKILL)  # no clean DISCONNECT: the broker must publish the Will
            await proc.wait()
            second = (await next_message(sub)).payload
        assert isinstance(first, bytes) and isinstance(second, bytes)
        return [first, second]

    assert asyncio.run(scenario()) == [b"online", b"will"]


async def test_broker_absent_publish_fails_fast_and_the_transport_connects_later(
    mosquitto_factory: MosquittoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(start=False)
    metrics = DaemonMetrics(version="t", cameras=[])
    async with transport(config(broker), metrics=metrics) as t:
        assert not await t.wait_connected(0.3)
        with pytest.raises(NotConnectedError):
            await t.publish("x", b"y", qos=1)
        await until(lambda: t.last_error is not None, "a connection error")
        assert "refused" in (t.last_error or "").lower()
        assert metrics.publish_failures.labels(reason="not_connected")._value.get() == 1
        broker.start()
        assert await t.wait_connected(GUARD_S)
        assert t.last_error is None
        await t.publish("x", b"y", qos=1)
    # Retrying every backoff period logs the same failure once as a warning, not once per attempt.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "gaitwatch.daemon.mqtt"]
    assert len(warnings) == 1


async def test_reconnect_reruns_the_hook_and_keeps_subscriptions(mosquitto: Mosquitto) -> None:
    hooks: list[int] = []
    inbox: list[tuple[str, bytes]] = []

    async def on_connected() -> None:
        hooks.append(len(hooks))

    async def on_message(topic: str, payload: bytes) -> None:
        inbox.append((topic, payload))

    ack_topic = "nursecall/acks"
    cfg = config(mosquitto, "5")
    async with transport(cfg, subscriptions=[ack_topic], on_message=on_message, on_connected=on_connected) as t:
        await until(lambda: len(hooks) == 1, "the on-connect hook")
        async with subscriber(mosquitto, "nursecall") as nc:
            await nc.publish(ack_topic, b"h1:b00t:1", qos=1)
        await until(lambda: inbox == [(ack_topic, b"h1:b00t:1")], "the ack message")
        mosquitto.restart()
        await until(lambda: len(hooks) == 2 and t.connected, "the hook after reconnecting")
        async with subscriber(mosquitto, "nursecall") as nc:
            await nc.publish(ack_topic, b"h1:b00t:2", qos=1)
        await until(lambda: len(inbox) == 2, "an ack after reconnecting")


async def test_transport_survives_a_broker_crash_and_restart_on_the_same_port(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker = mosquitto_factory(persistence=True)
    async with transport(config(broker)) as t:
        assert await t.wait_connected(GUARD_S)
        broker.kill()  # SIGKILL: no goodbye
        await until(lambda: not t.connected, "the transport to notice the crash")
        with pytest.raises(NotConnectedError):
            await t.publish("x", b"y", qos=1)
        broker.start()
        assert await t.wait_connected(GUARD_S)
        await t.publish("x", b"y", qos=1)


async def test_wrong_password_is_a_clear_error_and_the_password_is_never_logged(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    passwd = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin:/usr/sbin")
    if passwd is None:
        pytest.fail("mosquitto_passwd (part of the mosquitto package) is needed to make a password file")
    pwfile = tmp_path / "passwords"
    subprocess.run([passwd, "-b", "-c", str(pwfile), "gaitwatch", "right-horse-battery"], check=True)  # noqa: ASYNC221
    broker = mosquitto_factory(extra_config=f"allow_anonymous false\npassword_file {pwfile}")
    caplog.set_level(logging.DEBUG)
    for protocol in PROTOCOLS:
        bad = config(broker, protocol, username="gaitwatch", password="s3cret-WRONG-pw")
        assert "s3cret-WRONG-pw" not in repr(bad)
        async with transport(bad) as t:
            await until(lambda t=t: t.last_error is not None, "the refusal")  # type: ignore[misc]
            assert not t.connected
            error = (t.last_error or "").lower()
            assert "refused" in error and ("not authori" in error or "password" in error), error
        good = config(broker, protocol, username="gaitwatch", password="right-horse-battery")
        async with transport(good) as t:
            assert await t.wait_connected(GUARD_S)
    assert "s3cret-WRONG-pw" not in caplog.text and "right-horse-battery" not in caplog.text


async def test_acl_denial_is_detected_with_mqtt5_and_the_alert_stays_in_the_outbox(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite {TOPICS.status}\ntopic read #\n")
    broker = mosquitto_factory(extra_config=f"acl_file {acl}")
    box = Outbox(tmp_path / "outbox.sqlite", 10)
    box.add(TOPICS.alert("bay1"), alert(1), "h1:b00t:1")
    async with transport(config(broker, "5")) as t:
        assert await t.wait_connected(GUARD_S)
        with pytest.raises(PublishRejectedError) as err:
            await t.publish(TOPICS.alert("bay1"), b"x", qos=1)
        assert err.value.reason_code == 135  # Not authorized
        assert await OutboxDrainer(box, t).drain_once() == 0
        assert box.pending_count() == 1  # nothing lost: retried until an admin fixes the ACL
    # MQTT 3.1.1 has no reason codes: the broker acknowledges and drops. Only an ack topic catches this.
    async with transport(config(broker, "3.1.1")) as t:
        assert await t.wait_connected(GUARD_S)
        await t.publish(TOPICS.alert("bay1"), b"x", qos=1)
    box.close()


async def test_tls_with_client_certificate(mosquitto_factory: MosquittoFactory, tmp_path: Path) -> None:
    make_pki(tmp_path, "good")
    make_pki(tmp_path, "other")
    broker = mosquitto_factory(
        extra_config="\n".join(
            [
                f"cafile {tmp_path / 'good-ca.crt'}",
                f"certfile {tmp_path / 'good-server.crt'}",
                f"keyfile {tmp_path / 'good-server.key'}",
                "require_certificate true",
            ]
        )
    )
    good = TlsConfig(tmp_path / "good-ca.crt", tmp_path / "good-client.crt", tmp_path / "good-client.key")
    async with transport(config(broker, tls=good)) as t:
        assert await t.wait_connected(GUARD_S)
        await t.publish("x", b"over tls", qos=1)
    wrong_ca = TlsConfig(tmp_path / "other-ca.crt", tmp_path / "good-client.crt", tmp_path / "good-client.key")
    async with transport(config(broker, tls=wrong_ca)) as t:
        await until(lambda: t.last_error is not None, "the TLS failure")
        assert not t.connected
        assert "certificate verify failed" in (t.last_error or ""), t.last_error
    with pytest.raises(MqttConfigError, match=r"missing-ca\.crt"):
        transport(config(broker, tls=TlsConfig(tmp_path / "missing-ca.crt")))
    with pytest.raises(MqttConfigError, match="together"):
        transport(config(broker, tls=TlsConfig(tmp_path / "good-ca.crt", tmp_path / "good-client.crt")))


# -- the drainer ---------------------------------------------------------------------------------------------


async def test_drainer_survives_a_missing_broker_and_delivers_everything_in_order(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=True)
    # The integrator has a persistent session (clean_session=False): it gets what was sent while it was away.
    async with subscriber(broker, clean_session=False) as sub:
        await sub.subscribe(f"{TOPICS.base}/alert/#", qos=1)
    broker.stop()

    box = Outbox(tmp_path / "outbox.sqlite", 1000)
    metrics = DaemonMetrics(version="t", cameras=[])
    now = time.time()
    async with transport(config(broker), metrics=metrics) as t:
        drainer = OutboxDrainer(box, t, metrics=metrics, idle_poll_s=0.05)
        task = asyncio.create_task(drainer.run())
        for i in range(40):
            # Half stored an hour ago (so late when sent), half "in the future" (so never late).
            created = now - 3600 if i < 20 else now + 3600
            box.add(TOPICS.alert("bay1"), alert(i), f"h1:b00t:{i}", now_wall=created)
            drainer.notify()
        await until(lambda: metrics.outbox_pending._value.get() == 40, "the pending metric")
        assert not t.connected and box.pending_count() == 40  # kept, not dropped
        broker.start()
        async with subscriber(broker, clean_session=False) as sub:
            got = [json.loads((await next_message(sub)).payload) for _ in range(40)]
        await until(lambda: box.pending_count() == 0, "the outbox to drain")
        await until(lambda: metrics.outbox_pending._value.get() == 0, "the pending metric to drop")
        task.cancel()
    for msg in got:
        jsonschema.validate(msg, ALERT_SCHEMA)
    assert [m["alert_id"] for m in got] == [f"h1:b00t:{i}" for i in range(40)]
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 40
    assert [m["delayed"] for m in got] == [True] * 20 + [False] * 20
    assert metrics.outbox_published._value.get() == 40
    box.close()


async def test_ack_mode_republishes_unacknowledged_alerts_with_the_same_id(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    t0 = 1_800_000_000.0
    wall = [t0]
    box = Outbox(tmp_path / "outbox.sqlite", 100, ack_required=True)
    bodies = [alert(i) for i in range(3)]
    for i, body in enumerate(bodies):
        box.add(TOPICS.alert("bay1"), body, f"h1:b00t:{i}", now_wall=t0)
    tokens = [ack_token_of(body) or "" for body in bodies]
    async with subscriber(mosquitto) as sub, transport(config(mosquitto)) as t:
        await sub.subscribe(f"{TOPICS.base}/alert/#", qos=1)
        assert await t.wait_connected(GUARD_S)
        drainer = OutboxDrainer(box, t, republish_after_s=30.0, wall_clock=lambda: wall[0])
        assert await drainer.drain_once() == 3
        assert await drainer.drain_once() == 0  # published, not yet due for a re-send
        wall[0] = t0 + 31
        assert await drainer.drain_once() == 3  # nobody acknowledged: send again
        assert box.mark_acked("h1:b00t:0", tokens[0]) and box.mark_acked("h1:b00t:1", tokens[1])
        wall[0] = t0 + 62
        assert await drainer.drain_once() == 1
        got = [json.loads((await next_message(sub)).payload) for _ in range(7)]
    ids = [m["alert_id"] for m in got]
    assert ids == ["h1:b00t:0", "h1:b00t:1", "h1:b00t:2"] * 2 + ["h1:b00t:2"]
    assert [m["delayed"] for m in got] == [False] * 3 + [True] * 4
    assert len({m["seq"] for m in got}) == 3  # a re-sent alert keeps its seq
    box.close()


class ScriptedTransport:
    """An AlertTransport whose n-th publish calls fail on request: tests the drainer's bookkeeping only."""

    def __init__(self, failing_calls: set[int]) -> None:
        self.failing_calls = failing_calls
        self.calls = 0
        self.delivered: list[tuple[str, dict[str, Any]]] = []

    @property
    def connected(self) -> bool:
        return True

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        return True

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        assert qos == 1 and not retain
        call, self.calls = self.calls, self.calls + 1
        await asyncio.sleep(0)  # let the batch's other publishes start, as on a real connection
        if call in self.failing_calls:
            raise PublishTimeoutError("scripted")
        self.delivered.append((topic, json.loads(payload)))


async def test_drainer_marks_only_the_acknowledged_prefix_so_retries_never_skip(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite", 100)
    seqs = [box.add(TOPICS.alert("bay1"), alert(i), f"h1:b00t:{i}") for i in range(5)]
    scripted = ScriptedTransport(failing_calls={2})
    drainer = OutboxDrainer(box, scripted, max_in_flight=5)
    assert await drainer.drain_once() == 2  # rows 0 and 1; row 2 failed; 3 and 4 arrived but are not marked
    assert [r.seq for r in box.pending(10)] == seqs[2:]
    assert await drainer.drain_once() == 3
    assert box.pending_count() == 0
    assert [m["seq"] for _, m in scripted.delivered] == [seqs[0], seqs[1], seqs[3], seqs[4], *seqs[2:]]
    assert all(topic == TOPICS.alert("bay1") for topic, _ in scripted.delivered)
    box.close()


async def test_an_oversized_message_on_the_ack_topic_never_reaches_the_daemon(mosquitto: Mosquitto) -> None:
    """MQTT 5: the daemon announces a 64 KiB maximum packet size, so the broker drops a 2 MB "ack" for it
    instead of making the daemon buffer it (and every further one like it); the next message still arrives,
    and it arrives after the big one would have (same publisher, same topic, QoS 1: in order)."""
    inbox: list[bytes] = []

    async def on_message(topic: str, payload: bytes) -> None:
        inbox.append(payload)

    ack_topic = "nursecall/acks"
    async with transport(config(mosquitto, "5"), subscriptions=[ack_topic], on_message=on_message) as t:
        await until(lambda: t.connected, "the connection")
        async with subscriber(mosquitto, "hostile") as hostile:
            await hostile.publish(ack_topic, b"[" * (2 * 1024 * 1024), qos=1)
            await hostile.publish(ack_topic, b"small", qos=1)
        await until(lambda: b"small" in inbox, "the small message")
        assert inbox == [b"small"], [len(m) for m in inbox]
