"""The MQTT side of the daemon: the only module that imports aiomqtt (2.x).

``MqttTransport`` owns one broker connection and keeps it up: it connects with a Last Will (the retained
"offline" host status), publishes the retained "online" status on every (re)connect, subscribes to the
configured topics, and reconnects after any failure with capped exponential backoff and jitter. The daemon
keeps running while the broker is down: alerts wait in the outbox, ``publish`` raises ``NotConnectedError``.
``close()`` publishes "offline" itself and disconnects cleanly (a clean DISCONNECT suppresses the Will).

``MqttSink`` is the broker as an ``AlertSink`` (``gaitwatch.daemon.sinks``), and ``OutboxDrainer`` its drainer:
it moves alerts from the outbox to the broker in ``seq`` order, QoS 1, and a row is marked published (its
``mqtt`` delivery) only after the broker's PUBACK. A PUBACK only says the broker took the message (and aiomqtt 2.x
reports success even for MQTT 5 "not authorized" acks, which this adapter detects and turns into
``PublishRejectedError``), so integrators must de-duplicate on ``alert_id`` and may close the loop with an
ack topic (``republish_after_s``).

Every network wait has a timeout (``MqttConfig.timeout_s``): aiomqtt bounds CONNACK, PUBACK, SUBACK and
DISCONNECT waits with it and paho's socket connect with ``connect_timeout``. The password is passed to the
client and nowhere else: it is excluded from ``repr`` and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gaitwatch.daemon.backoff import backoff_delays
from gaitwatch.daemon.drainer import SinkDrainer
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.outbox import MQTT_SINK, Outbox, OutboxRow
from gaitwatch.daemon.payloads import stamp_alert
from gaitwatch.daemon.sinks import DeliveryReport

__all__ = [
    "AlertTransport",
    "MqttConfig",
    "MqttConfigError",
    "MqttSink",
    "MqttTransport",
    "NotConnectedError",
    "OutboxDrainer",
    "PublishRejectedError",
    "PublishTimeoutError",
    "TlsConfig",
    "TransportError",
    "backoff_delays",
    "subscription",
    "tls_context",
]

_LOG = logging.getLogger(__name__)

# The message id of the last publish started in the current task (see _watch_pubacks).
_LAST_MID: contextvars.ContextVar[int | None] = contextvars.ContextVar("gaitwatch_mqtt_last_mid", default=None)


# Incoming (ack) messages: the largest packet we accept from the broker (MQTT 5) and the most we queue.
MAX_INCOMING_PACKET_BYTES: Final = 64 * 1024
MAX_QUEUED_INCOMING: Final = 1000


def _connect_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.MaximumPacketSize = MAX_INCOMING_PACKET_BYTES
    return properties


class TransportError(Exception):
    """A publish did not complete; the message may or may not have reached the broker."""


class NotConnectedError(TransportError):
    """No broker connection right now (the reconnect loop is working on it)."""


class PublishTimeoutError(TransportError):
    """The broker did not acknowledge within ``timeout_s``."""


class PublishRejectedError(TransportError):
    """The broker answered with an MQTT 5 failure reason code (e.g. 135 "Not authorized" from an ACL)."""

    def __init__(self, topic: str, reason_code: int, reason: str) -> None:
        super().__init__(f"broker rejected publish to {topic}: {reason} (reason code {reason_code})")
        self.reason_code = reason_code
        self.reason = reason


class MqttConfigError(ValueError):
    """The MQTT settings cannot work (unreadable TLS files, bad protocol); the message names the problem."""


class AlertTransport(Protocol):
    """What ``MqttSink`` and the service need from a message transport (the broker connection)."""

    @property
    def connected(self) -> bool: ...

    async def wait_connected(self, timeout_s: float | None = None) -> bool: ...

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS to the broker: ``ca_file`` verifies the broker (None = the system's CAs); ``cert_file`` and
    ``key_file`` authenticate this client (both or neither)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """Connection settings.

    ``keepalive_s``: how often the client pings an idle connection; shorter notices a dead link (and makes
    the broker publish the Will) sooner, at a few bytes per ping. ``timeout_s``: limit on every network
    wait; too short fails publishes on a slow link, too long delays noticing a stalled broker.
    ``reconnect_initial_s``/``reconnect_max_s``: backoff between connection attempts; a low ceiling
    reconnects sooner after a long outage but makes many daemons hammer a recovering broker.
    """

    host: str
    port: int
    client_id: str
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig | None = None
    keepalive_s: int = 30
    timeout_s: float = 10.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 60.0


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """The client's TLS context; ``MqttConfigError`` naming the file when a CA, certificate or key cannot be
    loaded (checked at start-up, so a typo in a path is a config error, not a reconnect loop)."""
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise MqttConfigError(f"mqtt.tls.ca_file {tls.ca_file}: cannot load CA certificates: {exc}") from exc
    if (tls.cert_file is None) != (tls.key_file is None):
        raise MqttConfigError("mqtt.tls: cert_file and key_file must be given together")
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise MqttConfigError(
                f"mqtt.tls: cannot load client certificate {tls.cert_file} / key {tls.key_file}: {exc}"
            ) from exc
    return ctx


def _describe(exc: BaseException, broker: str, *, was_connected: bool = False) -> str:
    """A one-line reason for a failed connection, for logs and technical alerts (never the password)."""
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        code = getattr(exc.rc, "value", exc.rc)
        # 4/5 are MQTT 3.1.1's CONNACK codes, 134/135 MQTT 5's, for bad credentials / not authorized.
        hint = " (check mqtt.username and mqtt.password_file)" if code in (4, 5, 134, 135) else ""
        return f"broker {broker} refused the connection: {exc}{hint}"
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        text += " (check mqtt.tls.ca_file against the broker's certificate)"
    return f"{'lost the connection to' if was_connected else 'cannot connect to'} {broker}: {text}"


def _retrieve_disconnect_error(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's "unexpected disconnection" error as seen. When a connection fails inside ``async with``
    (e.g. a timed-out publish right after CONNACK), aiomqtt 2.x leaves that error on a private future nobody
    awaits, and asyncio logs "Future exception was never retrieved" at ERROR level for a failure the
    reconnect loop has already handled and logged."""
    disconnected = getattr(client, "_disconnected", None)
    if isinstance(disconnected, asyncio.Future) and disconnected.done() and not disconnected.cancelled():
        disconnected.exception()


class MqttTransport:
    """One broker connection, kept up by a background task (``start()`` or ``async with``).

    ``online_payload``/``offline_payload`` build the retained host status (called at each connect, so the
    timestamp is fresh); the offline one is also the Last Will. ``on_connected`` runs after every
    (re)connect, e.g. to republish camera statuses and the active alerts. ``on_message`` receives messages
    of ``subscriptions`` (e.g. the integrator ack topic), one at a time.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        status_topic: str,
        online_payload: Callable[[], bytes],
        offline_payload: Callable[[], bytes],
        subscriptions: Sequence[str] = (),
        on_message: Callable[[str, bytes], Awaitable[None]] | None = None,
        on_connected: Callable[[], Awaitable[None]] | None = None,
        metrics: DaemonMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if config.protocol not in ("5", "3.1.1"):
            raise MqttConfigError(f"mqtt.protocol must be '5' or '3.1.1'; got {config.protocol!r}")
        self.config = config
        self._tls = tls_context(config.tls) if config.tls is not None else None
        self._status_topic = status_topic
        self._online_payload = online_payload
        self._offline_payload = offline_payload
        self._subscriptions = tuple(subscriptions)
        self._on_message = on_message
        self._on_connected = on_connected
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._client: aiomqtt.Client | None = None
        self._rejections: dict[int, ReasonCode] = {}
        self._up = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    # -- state -------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt failed or the connection dropped; None once connected."""
        return self._last_error

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until connected (True) or until ``timeout_s`` passed (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._up.wait()
        except TimeoutError:
            return False
        return True

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mqtt-connection")

    async def close(self) -> None:
        """Publish the retained "offline" status (if connected), disconnect cleanly and stop reconnecting."""
        self._closing.set()
        client = self._client
        if client is not None and self.connected:
            try:
                await client.publish(
                    self._status_topic,
                    self._offline_payload(),
                    qos=1,
                    retain=True,
                    timeout=self.config.timeout_s,
                )
            except aiomqtt.MqttError as exc:
                _LOG.warning("could not publish offline status", extra={"error": str(exc)})
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # The cancelled task sends DISCONNECT and waits for the socket to close (bounded by timeout_s).
            await asyncio.wait({task}, timeout=self.config.timeout_s + 1.0)

    async def __aenter__(self) -> MqttTransport:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- publishing --------------------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Publish and, for QoS 1, wait for the PUBACK (at most ``timeout_s``).

        Raises ``NotConnectedError`` while disconnected, ``PublishTimeoutError`` without a timely PUBACK
        (the message may still arrive: re-sending it duplicates, never loses), ``PublishRejectedError`` for
        an MQTT 5 failure reason code, ``TransportError`` for anything else.
        """
        client = self._client
        if client is None or not self.connected:
            self._count_failure("not_connected")
            raise NotConnectedError(f"not connected to {self.config.host}:{self.config.port}")
        _LAST_MID.set(None)
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=self.config.timeout_s)
        except aiomqtt.MqttCodeError as exc:
            self._count_failure("not_connected")
            raise NotConnectedError(f"publish to {topic} failed: {exc}") from exc
        except aiomqtt.MqttError as exc:
            # aiomqtt raises a bare MqttError only when its wait for the acknowledgement timed out.
            self._count_failure("timeout")
            raise PublishTimeoutError(f"no PUBACK for {topic} within {self.config.timeout_s} s") from exc
        mid = _LAST_MID.get()
        reason = self._rejections.pop(mid, None) if mid is not None else None
        if reason is not None:
            self._count_failure("rejected")
            raise PublishRejectedError(topic, int(reason.value), str(reason))

    def _count_failure(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.publish_failure(reason)

    # -- the connection loop -----------------------------------------------------------------------------

    def _new_client(self) -> aiomqtt.Client:
        cfg = self.config
        v5 = cfg.protocol == "5"
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password,
            identifier=cfg.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            # The outbox, not the broker session, is what keeps undelivered alerts: start clean.
            clean_session=None if v5 else True,
            will=aiomqtt.Will(self._status_topic, self._offline_payload(), qos=1, retain=True),
            keepalive=cfg.keepalive_s,
            timeout=cfg.timeout_s,
            tls_context=self._tls,
            # The only messages the daemon receives are integrator acks (a few hundred bytes). A hostile or
            # broken client must not make it buffer a 200 MB payload (MQTT 5: the broker does not forward
            # packets above this size to us) or an unbounded backlog (beyond this many waiting, aiomqtt drops).
            properties=_connect_properties() if v5 else None,
            max_queued_incoming_messages=MAX_QUEUED_INCOMING,
        )
        # aiomqtt warns beyond 10 concurrent publishes; the drainer alone may have max_in_flight (10) rows +
        # the status messages in flight, which is normal here, not a sign of a stuck broker.
        client.pending_calls_threshold = 100
        self._watch_pubacks(client)
        return client

    def _watch_pubacks(self, client: aiomqtt.Client) -> None:
        """Record MQTT 5 PUBACK failure reason codes per message id, which aiomqtt 2.x drops.

        paho's ``publish`` is wrapped to note the message id in a context variable of the calling task, and
        ``on_publish`` to keep failure codes by message id; ``publish`` above pairs the two.
        """
        inner: paho.Client = client._client
        original_publish = inner.publish
        original_on_publish: Any = inner.on_publish
        rejections = self._rejections
        rejections.clear()

        def publish(*args: Any, **kwargs: Any) -> paho.MQTTMessageInfo:
            info = original_publish(*args, **kwargs)
            _LAST_MID.set(info.mid)
            return info

        def on_publish(c: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
            if reason.is_failure:
                rejections[mid] = reason
            if original_on_publish is not None:
                original_on_publish(c, userdata, mid, reason, props)

        setattr(inner, "publish", publish)  # noqa: B010  (instance override of a method, on purpose)
        inner.on_publish = on_publish
        inner.connect_timeout = self.config.timeout_s

    async def _run(self) -> None:
        delays: Iterator[float] = self._backoff()
        while not self._closing.is_set():
            client = self._new_client()
            try:
                async with client:
                    self._client = client
                    await client.publish(
                        self._status_topic,
                        self._online_payload(),
                        qos=1,
                        retain=True,
                        timeout=self.config.timeout_s,
                    )
                    for topic in self._subscriptions:
                        await client.subscribe(topic, qos=1, timeout=self.config.timeout_s)
                    self._mark_up()
                    delays = self._backoff()
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                self._mark_down(exc, was_connected=self._up.is_set())
            except Exception as exc:
                # A bug or an unexpected library error must not end MQTT for the daemon's lifetime.
                _LOG.exception("unexpected error in the MQTT connection loop")
                self._mark_down(exc, was_connected=self._up.is_set())
            finally:
                self._client = None
                _retrieve_disconnect_error(client)
                if self._up.is_set():
                    self._up.clear()
                    if self._metrics is not None:
                        self._metrics.set_mqtt_connected(False)
            if self._closing.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(next(delays)):
                    await self._closing.wait()

    def _backoff(self) -> Iterator[float]:
        return backoff_delays(self.config.reconnect_initial_s, self.config.reconnect_max_s, self._rng)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Run the on-connect hook and deliver incoming messages until the connection drops."""
        hook = asyncio.create_task(self._run_hook(), name="mqtt-on-connected") if self._on_connected else None
        try:
            async for message in client.messages:
                if self._on_message is None:
                    continue
                payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
                try:
                    await self._on_message(str(message.topic), bytes(payload))
                except Exception:
                    _LOG.exception("MQTT message handler failed", extra={"topic": str(message.topic)})
        finally:
            if hook is not None:
                hook.cancel()
                await asyncio.wait({hook})

    async def _run_hook(self) -> None:
        assert self._on_connected is not None
        try:
            await self._on_connected()
        except Exception:
            _LOG.exception("on-connect hook failed")

    def _mark_up(self) -> None:
        self._last_error = None
        self._up.set()
        if self._metrics is not None:
            self._metrics.set_mqtt_connected(True)
        _LOG.info(
            "connected to MQTT broker",
            extra={"broker": f"{self.config.host}:{self.config.port}", "protocol": self.config.protocol},
        )

    def _mark_down(self, exc: BaseException, *, was_connected: bool = False) -> None:
        broker = f"{self.config.host}:{self.config.port}"
        reason = _describe(exc, broker, was_connected=was_connected)
        extra = {"broker": broker, "error": reason}
        if reason != self._last_error:
            # Each new reason is a warning; the same one repeated every backoff period only at debug level.
            _LOG.warning("MQTT connection failed or lost; retrying with backoff", extra=extra)
        else:
            _LOG.debug("MQTT connection still failing", extra=extra)
        self._last_error = reason


class MqttSink:
    """The MQTT broker as an ``AlertSink``: each row is completed with ``stamp_alert`` (``seq``, ``emitted_at``,
    ``delayed``) and published QoS 1 to its topic; the rows of one ``deliver`` call are published concurrently,
    started in ``seq`` order on one connection (which the broker keeps), and the acknowledged prefix is what
    counts as delivered. ``delayed_after_s``: a row sent later than this after it was stored carries
    ``delayed: true``.

    The connection belongs to the transport, which also carries status and gait messages: ``close`` leaves it
    to its owner (the service closes it after the last flush).
    """

    def __init__(
        self,
        transport: AlertTransport,
        *,
        delayed_after_s: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._delayed_after_s = delayed_after_s
        self._wall = wall_clock

    @property
    def name(self) -> str:
        return MQTT_SINK

    @property
    def available(self) -> bool:
        return self._transport.connected

    async def wait_available(self, timeout_s: float | None = None) -> bool:
        return await self._transport.wait_connected(timeout_s)

    async def deliver(self, rows: Sequence[OutboxRow]) -> DeliveryReport:
        """Publish ``rows`` (started in ``seq`` order); the acknowledged prefix is delivered. A transport
        failure ends the prefix (``error``); anything else is a bug and propagates."""
        results = await asyncio.gather(*(self._publish_row(row) for row in rows), return_exceptions=True)
        done: list[int] = []
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, TransportError):
                    raise result
                return DeliveryReport(delivered=tuple(done), error=str(result))
            done.append(row.seq)
        return DeliveryReport(delivered=tuple(done))

    async def _publish_row(self, row: OutboxRow) -> None:
        now = self._wall()
        delayed = now - row.created_wall > self._delayed_after_s
        payload = stamp_alert(row.payload, seq=row.seq, emitted_wall_s=now, delayed=delayed)
        await self._transport.publish(row.topic, payload, qos=1, retain=False)

    async def close(self) -> None:
        return None


class OutboxDrainer(SinkDrainer):
    """The MQTT sink's drainer: publishes outbox rows in ``seq`` order with QoS 1 and marks them published
    after the PUBACK.

    Up to ``max_in_flight`` rows are published at once (sent in ``seq`` order on one connection, which the
    broker keeps); only the unbroken prefix of acknowledged rows is marked, so after a failure everything
    from the first unacknowledged row is sent again: duplicates, never gaps. More in flight drains a backlog
    faster; fewer means fewer duplicates after a failure. ``delayed_after_s``: a row sent later than this
    after it was stored carries ``delayed: true``. ``republish_after_s`` (ack mode): re-send published rows
    that no integrator acknowledged within this time, with the same ``alert_id``.
    """

    def __init__(
        self,
        outbox: Outbox,
        transport: AlertTransport,
        *,
        max_in_flight: int = 10,
        idle_poll_s: float = 1.0,
        delayed_after_s: float = 5.0,
        republish_after_s: float | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        metrics: DaemonMetrics | None = None,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1; got {max_in_flight}")
        super().__init__(
            outbox,
            MqttSink(transport, delayed_after_s=delayed_after_s, wall_clock=wall_clock),
            max_batch=max_in_flight,
            idle_poll_s=idle_poll_s,
            republish_after_s=republish_after_s,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            metrics=metrics,
            wall_clock=wall_clock,
            rng=rng,
        )


@contextlib.asynccontextmanager
async def subscription(
    host: str, port: int, topic: str, *, client_id: str = "", timeout_s: float = 10.0
) -> AsyncIterator[AsyncIterator[tuple[str, bytes]]]:
    """Subscribe to ``topic`` (wildcards allowed) and yield an iterator of ``(topic, payload)``: what a
    nurse-call integrator sees, over MQTT 5 like the daemon. Used by the demo to show the daemon's own messages."""
    async with aiomqtt.Client(
        host, port, identifier=client_id, timeout=timeout_s, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.subscribe(topic, qos=1, timeout=timeout_s)

        async def messages() -> AsyncIterator[tuple[str, bytes]]:
            async for message in client.messages:
                payload = message.payload
                data = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
                yield str(message.topic), bytes(data)

        yield messages()
