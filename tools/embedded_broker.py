"""A small MQTT 3.1.1 broker in pure asyncio, for the demo on a machine without mosquitto.

It is enough for one daemon and a few local subscribers: CONNECT/CONNACK, PUBLISH at QoS 0 and 1 (QoS 2 from
clients is accepted and delivered at QoS 1), SUBSCRIBE/UNSUBSCRIBE with ``+``/``#`` wildcards, retained
messages, the Last Will on an unclean disconnect (socket lost, keepalive expired, protocol error, client id
taken over), PINGREQ and DISCONNECT. Every session is clean: nothing is stored for offline clients, there is
no retransmission, no authentication and no TLS. It listens on 127.0.0.1 by default and must never face a
network; production uses mosquitto (or any broker) and the same client code.

Usage::

    async with EmbeddedBroker() as broker:      # a free port on 127.0.0.1
        ... connect clients to broker.host, broker.port ...

A slow subscriber can never stall a publisher: writes are buffered without waiting, and a client whose
unsent data exceeds ``max_write_buffer_bytes`` is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

_LOG = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
_ACCEPTED, _BAD_PROTOCOL, _BAD_CLIENT_ID = 0, 1, 2
_SUBACK_FAILURE: Final = 0x80
_MAX_QOS: Final = 1  # highest QoS delivered to subscribers


class ProtocolError(Exception):
    """The client broke the protocol; the connection is closed (and its Will published)."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching: ``+`` matches one level, a final ``#`` any number (including none); filters that
    start with a wildcard do not match topics starting with ``$`` (broker-internal topics)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    parts = topic_filter.split("/")
    for i, part in enumerate(parts):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(parts) == len(levels)


def valid_filter(topic_filter: str) -> bool:
    """A non-empty filter whose ``+`` fill whole levels and whose only ``#`` is the whole last level."""
    if not topic_filter or "\0" in topic_filter:
        return False
    parts = topic_filter.split("/")
    for i, part in enumerate(parts):
        if "#" in part and (part != "#" or i != len(parts) - 1):
            return False
        if "+" in part and part != "+":
            return False
    return True


def _encode_length(n: int) -> bytes:
    out = bytearray()
    while True:
        digit, n = n % 128, n // 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + _encode_length(len(body)) + body


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


class _Reader:
    """Cursor over a packet body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.body):
            raise ProtocolError("packet shorter than its fields")
        chunk = self.body[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def string(self) -> str:
        try:
            return self.take(self.u16()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string is not UTF-8") from exc

    def rest(self) -> bytes:
        chunk = self.body[self.pos :]
        self.pos = len(self.body)
        return chunk

    @property
    def done(self) -> bool:
        return self.pos >= len(self.body)


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: bytes
    qos: int


@dataclass(eq=False)
class _Session:
    client_id: str
    writer: asyncio.StreamWriter
    keepalive_s: float
    will: _Message | None
    will_retain: bool
    subscriptions: dict[str, int] = field(default_factory=dict)
    next_packet_id: int = 1
    clean_disconnect: bool = False

    def packet_id(self) -> int:
        pid = self.next_packet_id
        self.next_packet_id = pid % 0xFFFF + 1
        return pid


class EmbeddedBroker:
    """An in-process MQTT 3.1.1 broker (see the module docstring for what it does and does not do).

    ``max_packet_bytes`` bounds the memory one client can make the broker allocate; ``connect_timeout_s`` is
    how long a new socket may stay silent before its CONNECT.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_packet_bytes: int = 1 << 20,
        max_write_buffer_bytes: int = 4 << 20,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.max_packet_bytes = max_packet_bytes
        self.max_write_buffer_bytes = max_write_buffer_bytes
        self.connect_timeout_s = connect_timeout_s
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, _Message] = {}
        # Every open connection's handler task and writer, so stop() can close them all.
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._stopping = False

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the broker is not started")
        return self._port

    async def start(self) -> None:
        self._stopping = False
        self._server = await asyncio.start_server(self._on_connection, self.host, self._requested_port)
        self._port = int(self._server.sockets[0].getsockname()[1])
        _LOG.info("embedded MQTT broker listening", extra={"address": f"{self.host}:{self._port}"})

    async def stop(self) -> None:
        """Close the listener and every connection (no Wills: the broker itself is going away)."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        # Closing a connection ends its handler's read with EOF; cancel only a handler that ignores that.
        for writer in list(self._connections.values()):
            writer.close()
        if self._connections:
            _, stragglers = await asyncio.wait(list(self._connections), timeout=5.0)
            for task in stragglers:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5.0)
            self._server = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- connections -------------------------------------------------------------------------------------

    async def _read_packet(self, reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
        first = (await reader.readexactly(1))[0]
        length, multiplier = 0, 1
        for _ in range(4):
            digit = (await reader.readexactly(1))[0]
            length += (digit & 0x7F) * multiplier
            if not digit & 0x80:
                break
            multiplier *= 128
        else:
            raise ProtocolError("malformed remaining length")
        if length > self.max_packet_bytes:
            raise ProtocolError(f"packet of {length} bytes exceeds max_packet_bytes={self.max_packet_bytes}")
        return first >> 4, first & 0x0F, await reader.readexactly(length)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        session: _Session | None = None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                kind, _flags, body = await self._read_packet(reader)
            if kind != CONNECT:
                raise ProtocolError("first packet is not CONNECT")
            session = self._connect(body, writer)
            if session is None:
                return
            while not self._stopping:
                # The spec allows one and a half keepalive periods of silence before a client counts as gone.
                limit = session.keepalive_s * 1.5 if session.keepalive_s > 0 else None
                async with asyncio.timeout(limit):
                    kind, flags, body = await self._read_packet(reader)
                if not self._dispatch(session, kind, flags, body):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ProtocolError) as exc:
            _LOG.debug(
                "MQTT client connection ended",
                extra={"client": session.client_id if session else "-", "reason": repr(exc)},
            )
        finally:
            self._connections.pop(task, None)
            if session is not None:
                self._end_session(session)
            writer.close()

    def _connect(self, body: bytes, writer: asyncio.StreamWriter) -> _Session | None:
        r = _Reader(body)
        name, level = r.string(), r.u8()
        if name != "MQTT" or level != 4:
            self._write(writer, _packet(CONNACK, 0, bytes([0, _BAD_PROTOCOL])))
            return None
        flags = r.u8()
        if flags & 0x01:
            raise ProtocolError("reserved CONNECT flag set")
        keepalive = r.u16()
        client_id = r.string()
        will: _Message | None = None
        will_retain = False
        if flags & 0x04:
            will_topic = r.string()
            will_payload = r.take(r.u16())
            will = _Message(will_topic, will_payload, min((flags >> 3) & 0x03, _MAX_QOS))
            will_retain = bool(flags & 0x20)
        if flags & 0x80:
            r.string()  # username: accepted, not checked (loopback demo broker)
        if flags & 0x40:
            r.take(r.u16())  # password: likewise
        clean = bool(flags & 0x02)
        if not client_id:
            if not clean:
                self._write(writer, _packet(CONNACK, 0, bytes([0, _BAD_CLIENT_ID])))
                return None
            client_id = "auto-" + secrets.token_hex(6)
        old = self._sessions.get(client_id)
        if old is not None:
            # Take-over (3.1.4-2): the older connection is closed; its handler publishes its Will.
            old.writer.close()
        session = _Session(client_id, writer, float(keepalive), will, will_retain)
        self._sessions[client_id] = session
        self._write(writer, _packet(CONNACK, 0, bytes([0, _ACCEPTED])))
        return session

    def _end_session(self, session: _Session) -> None:
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]
        if not session.clean_disconnect and session.will is not None and not self._stopping:
            self._route(session.will, retain=session.will_retain)

    def _dispatch(self, session: _Session, kind: int, flags: int, body: bytes) -> bool:
        """Handle one packet; False ends the connection cleanly (DISCONNECT)."""
        if kind == PUBLISH:
            self._on_publish(session, flags, body)
        elif kind == SUBSCRIBE:
            self._on_subscribe(session, flags, body)
        elif kind == UNSUBSCRIBE:
            r = _Reader(body)
            pid = r.u16()
            while not r.done:
                session.subscriptions.pop(r.string(), None)
            self._write(session.writer, _packet(UNSUBACK, 0, struct.pack("!H", pid)))
        elif kind == PINGREQ:
            self._write(session.writer, _packet(PINGRESP, 0, b""))
        elif kind == PUBREL:
            self._write(session.writer, _packet(PUBCOMP, 0, body[:2]))
        elif kind in (PUBACK, PUBREC, PUBCOMP):
            pass  # acknowledgements of our deliveries: clean sessions keep no in-flight state
        elif kind == DISCONNECT:
            session.clean_disconnect = True
            return False
        else:
            raise ProtocolError(f"unexpected packet type {kind}")
        return True

    def _on_publish(self, session: _Session, flags: int, body: bytes) -> None:
        qos, retain = (flags >> 1) & 0x03, bool(flags & 0x01)
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        r = _Reader(body)
        topic = r.string()
        if not topic or "+" in topic or "#" in topic:
            raise ProtocolError(f"invalid PUBLISH topic {topic!r}")
        pid = r.u16() if qos else 0
        message = _Message(topic, r.rest(), min(qos, _MAX_QOS))
        self._route(message, retain=retain)
        if qos == 1:
            self._write(session.writer, _packet(PUBACK, 0, struct.pack("!H", pid)))
        elif qos == 2:
            self._write(session.writer, _packet(PUBREC, 0, struct.pack("!H", pid)))

    def _route(self, message: _Message, *, retain: bool) -> None:
        if retain:
            if message.payload:
                self._retained[message.topic] = message
            else:
                self._retained.pop(message.topic, None)  # an empty retained message clears the topic
        for session in list(self._sessions.values()):
            granted = [q for f, q in session.subscriptions.items() if topic_matches(f, message.topic)]
            if granted:
                # One copy per client, at the highest QoS among its matching subscriptions.
                self._deliver(session, message, min(message.qos, max(granted)), retain=False)

    def _deliver(self, session: _Session, message: _Message, qos: int, *, retain: bool) -> None:
        header = _string(message.topic) + (struct.pack("!H", session.packet_id()) if qos else b"")
        self._write(session.writer, _packet(PUBLISH, (qos << 1) | int(retain), header + message.payload))

    def _on_subscribe(self, session: _Session, flags: int, body: bytes) -> None:
        if flags != 0x02:
            raise ProtocolError("SUBSCRIBE with wrong fixed-header flags")
        r = _Reader(body)
        pid = r.u16()
        codes = bytearray()
        added: list[tuple[str, int]] = []
        while not r.done:
            topic_filter, requested = r.string(), r.u8() & 0x03
            if not valid_filter(topic_filter) or requested == 3:
                codes.append(_SUBACK_FAILURE)
                continue
            granted = min(requested, _MAX_QOS)
            session.subscriptions[topic_filter] = granted
            codes.append(granted)
            added.append((topic_filter, granted))
        if not codes:
            raise ProtocolError("SUBSCRIBE without topic filters")
        self._write(session.writer, _packet(SUBACK, 0, struct.pack("!H", pid) + bytes(codes)))
        for topic_filter, granted in added:
            for message in list(self._retained.values()):
                if topic_matches(topic_filter, message.topic):
                    self._deliver(session, message, min(message.qos, granted), retain=True)

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.is_closing():
            return
        writer.write(data)
        if writer.transport.get_write_buffer_size() > self.max_write_buffer_bytes:
            _LOG.warning("disconnecting an MQTT client that does not read its messages")
            writer.transport.abort()
