"""The embedded demo broker, exercised with real aiomqtt (paho) clients and hand-written packets."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from gaitwatch.daemon.mqtt import MqttConfig, MqttTransport, OutboxDrainer
from gaitwatch.daemon.outbox import Outbox
from gaitwatch.tools.embedded_broker import EmbeddedBroker, topic_matches, valid_filter

# Upper bound on any single wait, so a broken broker fails the test instead of hanging it.
GUARD_S = 10.0


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as b:
        yield b


def client(b: EmbeddedBroker, name: str, **kwargs: object) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", b.port, identifier=name, timeout=GUARD_S, **kwargs)  # type: ignore[arg-type]


async def next_message(c: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(GUARD_S):
        return await anext(aiter(c.messages))


async def messages_until(c: aiomqtt.Client, marker_topic: str) -> list[aiomqtt.Message]:
    """Every message up to (excluding) the first on ``marker_topic``: one connection keeps order, so a
    message that is not before the marker was never sent."""
    got: list[aiomqtt.Message] = []
    while True:
        m = await next_message(c)
        if str(m.topic) == marker_topic:
            return got
        got.append(m)


# -- raw protocol helpers ----------------------------------------------------------------------------------


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    n, length = len(body), bytearray()
    while True:
        n, digit = divmod(n, 128)
        length.append(digit | (0x80 if n else 0))
        if not n:
            return bytes([first]) + bytes(length) + body


def connect_packet(
    client_id: str, *, keepalive: int = 60, will: tuple[str, bytes] | None = None, level: int = 4
) -> bytes:
    flags = 0x02
    payload = _s(client_id)
    if will is not None:
        flags |= 0x04 | 0x08 | 0x20  # will, QoS 1, retained
        payload += _s(will[0]) + struct.pack("!H", len(will[1])) + will[1]
    return _packet(0x10, _s("MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive) + payload)


async def raw_connect(b: EmbeddedBroker, packet: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
    writer.write(packet)
    await writer.drain()
    async with asyncio.timeout(GUARD_S):
        connack = await reader.readexactly(4)
    return reader, writer, connack


# -- tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/x/c", True),
        ("a/#", "a", True),  # '#' also matches the parent level
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+", "a", True),
        ("+/+", "a/b", True),
        ("a/b", "a/b/c", False),
        ("#", "$SYS/broker", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
        ("a//b", "a//b", True),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("topic_filter", "ok"), [("a/#", True), ("#", True), ("+/x", True), ("a#", False), ("a/#/b", False),
                             ("a+", False), ("", False)]
)  # fmt: skip
def test_filter_validation(topic_filter: str, ok: bool) -> None:
    assert valid_filter(topic_filter) is ok


async def test_publish_subscribe_with_wildcards_and_qos(broker: EmbeddedBroker) -> None:
    async with client(broker, "sub") as sub, client(broker, "pub") as pub:
        await sub.subscribe("gw/+/alert/#", qos=1)
        await sub.subscribe("gw/h1/gait/+", qos=0)
        await pub.publish("gw/h1/alert/bay1", b"a1", qos=1)  # returns only after the broker's PUBACK
        await pub.publish("gw/h1/alert", b"a-host", qos=1)
        await pub.publish("gw/h1/gait/bay1", b"g1", qos=1)
        await pub.publish("gw/h1/status", b"not subscribed", qos=0)
        await pub.publish("gw/h2/alert/bay9", b"a2", qos=0)
        await sub.subscribe("end")
        await pub.publish("end", b"marker")
        got = await messages_until(sub, "end")
    assert [(str(m.topic), m.payload, m.qos) for m in got] == [
        ("gw/h1/alert/bay1", b"a1", 1),
        ("gw/h1/alert", b"a-host", 1),
        ("gw/h1/gait/bay1", b"g1", 0),  # subscription QoS 0 caps delivery
        ("gw/h2/alert/bay9", b"a2", 0),  # publish QoS 0 caps delivery
    ]
    assert not any(m.retain for m in got)


async def test_retained_messages_reach_late_subscribers_and_can_be_cleared(broker: EmbeddedBroker) -> None:
    async with client(broker, "pub") as pub:
        await pub.publish("gw/h1/status", b"online", qos=1, retain=True)
        await pub.publish("gw/h1/camera/bay1/status", b"cam", qos=0, retain=True)
        await pub.publish("gw/h1/temp", b"gone", qos=1, retain=True)
        await pub.publish("gw/h1/temp", b"", qos=1, retain=True)  # empty retained payload clears the topic
        async with client(broker, "late") as late:
            await late.subscribe("gw/#", qos=1)
            await late.subscribe("end")
            await pub.publish("end", b"marker")
            got = await messages_until(late, "end")
    assert sorted((str(m.topic), m.payload, m.retain) for m in got) == [
        ("gw/h1/camera/bay1/status", b"cam", True),
        ("gw/h1/status", b"online", True),
    ]


async def test_unsubscribe_stops_delivery(broker: EmbeddedBroker) -> None:
    async with client(broker, "sub") as sub, client(broker, "pub") as pub:
        await sub.subscribe("x/#")
        await sub.subscribe("end")
        await sub.unsubscribe("x/#")
        await pub.publish("x/1", b"should not arrive", qos=1)
        await pub.publish("end", b"marker", qos=1)
        assert await messages_until(sub, "end") == []


async def test_will_is_published_when_a_client_vanishes(broker: EmbeddedBroker) -> None:
    async with client(broker, "watcher") as watcher:
        await watcher.subscribe("gw/+/status", qos=1)
        _, writer, connack = await raw_connect(
            broker, connect_packet("daemon", will=("gw/h1/status", b'{"state":"offline"}'))
        )
        assert connack == b"\x20\x02\x00\x00"
        writer.transport.abort()  # no DISCONNECT: like a kill -9 or a pulled cable
        m = await next_message(watcher)
        assert (str(m.topic), m.payload, m.qos) == ("gw/h1/status", b'{"state":"offline"}', 1)
    async with client(broker, "late") as late:  # the Will was retained
        await late.subscribe("gw/+/status")
        m = await next_message(late)
        assert m.payload == b'{"state":"offline"}' and m.retain


async def test_no_will_after_a_clean_disconnect(broker: EmbeddedBroker) -> None:
    async with client(broker, "watcher") as watcher:
        await watcher.subscribe("#")
        async with client(broker, "daemon", will=aiomqtt.Will("gw/h1/status", b"offline", 1, True)) as d:
            await d.publish("gw/h1/status", b"online", qos=1, retain=True)
        async with client(broker, "pub") as pub:
            await pub.publish("end", b"marker", qos=1)
        got = await messages_until(watcher, "end")
    assert [m.payload for m in got] == [b"online"]


async def test_keepalive_expiry_publishes_the_will(broker: EmbeddedBroker) -> None:
    async with client(broker, "watcher") as watcher:
        await watcher.subscribe("gw/#")
        _, writer, _ = await raw_connect(broker, connect_packet("silent", keepalive=1, will=("gw/h1/status", b"x")))
        m = await next_message(watcher)  # after 1.5 keepalive periods of silence
        assert m.payload == b"x"
        writer.close()


async def test_ping_and_protocol_level(broker: EmbeddedBroker) -> None:
    reader, writer, connack = await raw_connect(broker, connect_packet("pinger"))
    assert connack[3] == 0
    writer.write(b"\xc0\x00")  # PINGREQ
    async with asyncio.timeout(GUARD_S):
        assert await reader.readexactly(2) == b"\xd0\x00"  # PINGRESP
    writer.write(b"\xe0\x00")  # DISCONNECT
    writer.close()
    _, writer, connack = await raw_connect(broker, connect_packet("old", level=3))
    assert connack == b"\x20\x02\x00\x01"  # unacceptable protocol version
    writer.close()


async def test_client_id_takeover_closes_the_old_connection_and_fires_its_will(
    broker: EmbeddedBroker,
) -> None:
    async with client(broker, "watcher") as watcher:
        await watcher.subscribe("gw/#")
        _, first, _ = await raw_connect(broker, connect_packet("dup", will=("gw/dup", b"old one gone")))
        _, second, connack = await raw_connect(broker, connect_packet("dup"))
        assert connack[3] == 0
        m = await next_message(watcher)
        assert m.payload == b"old one gone"
        first.close()
        second.close()


async def test_transport_and_drainer_work_against_the_embedded_broker(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The demo path: the daemon's own MQTT code over MQTT 3.1.1 to the embedded broker."""
    box = Outbox(tmp_path / "outbox.sqlite", 100)
    for i in range(12):
        box.add("gw/h1/alert/bay1", json.dumps({"n": i}).encode(), f"id-{i}")
    config = MqttConfig("127.0.0.1", broker.port, "gaitwatch-h1", protocol="3.1.1", timeout_s=GUARD_S)
    async with client(broker, "integrator") as sub:
        await sub.subscribe("gw/#", qos=1)
        transport = MqttTransport(
            config,
            status_topic="gw/h1/status",
            online_payload=lambda: b"online",
            offline_payload=lambda: b"offline",
        )
        async with transport:
            drainer = OutboxDrainer(box, transport)
            task = asyncio.create_task(drainer.run())
            got = [await next_message(sub) for _ in range(13)]
            # Subscribers may see a message before the publisher has its PUBACK and marked the row.
            async with asyncio.timeout(GUARD_S):
                while box.pending_count():  # noqa: ASYNC110  (state written by the drainer's thread)
                    await asyncio.sleep(0.02)
            task.cancel()
        assert (await next_message(sub)).payload == b"offline"
    assert got[0].payload == b"online"
    assert [json.loads(m.payload)["n"] for m in got[1:]] == list(range(12))
    box.close()


async def test_stop_with_connected_clients(tmp_path: Path) -> None:
    b = EmbeddedBroker()
    await b.start()
    _, writer, _ = await raw_connect(b, connect_packet("lingering", will=("w", b"no")))
    await b.stop()  # returns although a client is still connected
    writer.close()
