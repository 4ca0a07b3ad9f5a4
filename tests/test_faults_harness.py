"""The fault-injection harness, shared by the ``test_faults_*`` files, and tests of the harness itself.

A fault test needs the real daemon in its own process (so it can be SIGKILLed) and bursts of alerts without
waiting for real abnormal gait. This file is both:

* a script: ``python tests/test_faults_harness.py --config FILE`` runs the real ``Service`` from a config file
  exactly as ``gaitwatch run`` does, prints ``ready`` once start-up succeeded, and obeys commands on stdin:
  ``alerts N [GAP_S]`` raises N technical alerts of type ``test`` (pairs of start/end of one incident) through
  ``Service.emit_technical_alert``, the documented way in for tools and tests, printing ``stored <alert_id>``
  once each is committed to the outbox and ``done N`` at the end; ``stop`` asks for a graceful stop. It ends
  with ``exit <code>``. Nothing in the daemon is faked: outbox, drainer, MQTT, cameras and models are real.
* helpers for the tests: ``DaemonProcess`` (a harness or ``gaitwatch run`` subprocess with captured logs and
  a private sd_notify socket), ``Integrator`` (a nurse-call integrator: persistent-session QoS 1 subscriber
  that survives broker restarts and, in ack mode, acknowledges every alert), ``write_config`` (TOML),
  ``scrape`` (the daemon's metrics endpoint).

No assertion here or in the fault tests is about time: every wait is for an event (a line, a message, a
metric), bounded by ``GUARD_S`` only so that a failure fails instead of hanging.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiomqtt
import jsonschema
import pytest

from gaitwatch.daemon.payloads import ack_payload, active_alert_entry, parse_ack

REPO = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).resolve()
ALERT_SCHEMA: dict[str, Any] = json.loads((REPO / "config" / "alert.schema.json").read_text())
# Upper bound on any single wait: a broken test fails after this instead of hanging CI.
GUARD_S = 45.0
ALERT_FILTER = "gaitwatch/v1/+/+/alert/#"


# -- the harness (runs in the daemon's process) -------------------------------------------------------------


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines to the event loop from a daemon thread (a blocked read must not hold up exit)."""

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="harness-stdin", daemon=True).start()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _harness(config: Path) -> int:
    from gaitwatch.daemon.logs import configure_logging
    from gaitwatch.daemon.service import Service
    from gaitwatch.daemon.settings import EX_CONFIG, ConfigError, load_settings
    from gaitwatch.gait.types import AlertPhase

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EX_CONFIG
    configure_logging(settings.service.log_level)
    service = Service(settings, config_path=config)
    run = asyncio.create_task(service.run())
    ready = asyncio.create_task(service.ready.wait())
    await asyncio.wait({run, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        return await run
    port = service.metrics_port
    _say(f"ready metrics_port={port if port is not None else 0}")
    commands: asyncio.Queue[str | None] = asyncio.Queue()
    _stdin_lines(asyncio.get_running_loop(), commands)

    async def obey() -> None:
        while True:
            line = await commands.get()
            if line is None or line.strip() == "stop":
                service.request_stop()
                return
            words = line.split()
            if words and words[0] == "alerts":
                count, gap = int(words[1]), float(words[2]) if len(words) > 2 else 0.0
                incident: str | None = None
                for i in range(count):
                    phase = AlertPhase.START if incident is None else AlertPhase.END
                    emitted = await service.emit_technical_alert(
                        "test", phase, incident_id=incident, priority="low", evidence={"n": float(i)}
                    )
                    incident = emitted.incident_id if phase is AlertPhase.START else None
                    if emitted.stored:
                        _say(f"stored {emitted.alert_id}")
                    elif emitted.held:
                        _say(f"held {emitted.alert_id}")
                    if gap:
                        await asyncio.sleep(gap)
                _say(f"done {count}")

    obeying = asyncio.create_task(obey())
    code = await run
    obeying.cancel()
    return code


def harness_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the real gaitwatch Service, plus test alerts on command")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    code = asyncio.run(_harness(args.config))
    _say(f"exit {code}")
    return code


# -- configuration --------------------------------------------------------------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config: Mapping[str, Any]) -> str:
    """A small TOML writer for test configs: tables, arrays of tables, and scalar values."""
    lines: list[str] = []

    def table(prefix: str, body: Mapping[str, Any], header: str) -> None:
        if header:
            lines.append(header)
        subtables: list[tuple[str, Any]] = []
        for key, value in body.items():
            if isinstance(value, Mapping) or (isinstance(value, list) and value and isinstance(value[0], dict)):
                subtables.append((key, value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, value in subtables:
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, list):
                for item in value:
                    table(name, item, f"[[{name}]]")
            else:
                table(name, value, f"[{name}]")

    table("", config, "")
    return "\n".join(lines) + "\n"


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    path.write_text(to_toml(config), encoding="utf-8")
    return path


def base_config(
    tmp: Path,
    broker_port: int,
    *,
    host: str = "pc1",
    camera: Mapping[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A daemon config for fault tests: one camera (a small generated looping clip unless given), fast
    reconnects, short timeouts, metrics on a free loopback port. ``sections`` are merged over it."""
    from videogen import write_numbered_video

    from gaitwatch.tools.local_broker import free_port

    if camera is None:
        clip = tmp / "clip.avi"
        if not clip.exists():
            write_numbered_video(clip, 14, 7.0)
        camera = {"id": "bay1", "source": str(clip), "loop": True, "fps": 7.0}
    config: dict[str, Any] = {
        "service": {
            "site": "ward",
            "host": host,
            "state_dir": str(tmp / f"state-{host}"),
            "log_level": "info",
        },
        "cameras": [dict(camera)],
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "timeout_s": 3.0,
            "keepalive_s": 5,
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
        },
        "metrics": {"enabled": True, "address": "127.0.0.1", "port": free_port()},
        # Cheap pipeline: the fault tests are about delivery, not pose quality.
        "pose": {"model": "lite"},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


# -- the daemon as a subprocess -------------------------------------------------------------------------------


@dataclass
class DaemonProcess:
    """A harness (or ``gaitwatch run``) subprocess: stdout lines parsed as they come, stderr (the daemon's
    log) to a file, and an AF_UNIX datagram socket standing in for systemd's notify socket."""

    config: Path
    workdir: Path
    cli: bool = False  # True: `python -m gaitwatch.tools.cli run`, no command channel
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    stored: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # outbox unavailable: held in memory, published directly
    lines: list[str] = field(default_factory=list)
    # A command line the daemon runs under (e.g. ``unshare ... sh -c '...; exec "$@"' sh``): its own mounts.
    wrap: Sequence[str] = ()
    notifications: list[str] = field(default_factory=list)
    metrics_port: int = 0
    _reader: asyncio.Task[None] | None = None
    _notify_task: asyncio.Task[None] | None = None
    _log: IO[bytes] | None = None
    _sock: socket.socket | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"daemon-{self.config.stem}.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def start(self, *extra_env: tuple[str, str]) -> None:
        notify = self.workdir / f"notify-{os.getpid()}-{id(self)}"
        with contextlib.suppress(FileNotFoundError):
            notify.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(notify))
        self._sock.setblocking(False)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify), **self.env, **dict(extra_env)}
        env.pop("JOURNAL_STREAM", None)
        if self.cli:
            args = ["-m", "gaitwatch.tools.cli", "run", "--config", str(self.config)]
        else:
            args = [str(HARNESS), "--config", str(self.config)]
        self._log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            *self.wrap,
            sys.executable,
            *args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self._reader = asyncio.create_task(self._read())
        self._notify_task = asyncio.create_task(self._receive_notifications())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            self.lines.append(line)
            if line.startswith("stored "):
                self.stored.append(line.split()[1])
            elif line.startswith("held "):
                self.held.append(line.split()[1])
            elif line.startswith("ready metrics_port="):
                self.metrics_port = int(line.split("=")[1])
            self._changed.set()
        self._changed.set()

    async def _receive_notifications(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self._sock, 4096)
            self.notifications.append(data.decode())
            self._changed.set()

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait for a condition on this process's output; fail (with its log) if it exits or times out."""
        try:
            async with asyncio.timeout(GUARD_S):
                while not predicate():
                    self._changed.clear()
                    exited = self.proc is not None and self.proc.returncode is not None
                    if exited and (self._reader is None or self._reader.done()):
                        assert self.proc is not None
                        pytest.fail(f"daemon exited ({self.proc.returncode}) before {what}:\n{self.log_text()[-4000:]}")
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"timed out waiting for {what}; daemon log:\n{self.log_text()[-4000:]}")

    async def wait_ready(self) -> None:
        if self.cli:
            await self.until(lambda: any("READY=1" in n for n in self.notifications), "READY=1")
        else:
            await self.until(lambda: any(line.startswith("ready") for line in self.lines), "ready")

    async def send(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()

    async def alerts(self, count: int, gap_s: float = 0.0) -> None:
        """Ask for ``count`` test alerts (returns at once; ``stored`` fills as they are committed)."""
        await self.send(f"alerts {count} {gap_s}")

    async def wait_exit(self) -> int:
        assert self.proc is not None
        try:
            async with asyncio.timeout(GUARD_S):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            pytest.fail(f"daemon did not exit; log:\n{self.log_text()[-4000:]}")
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._reader
        await asyncio.sleep(0.05)  # the last sd_notify datagrams
        return code

    async def stop(self) -> int:
        """Graceful stop: SIGTERM, as systemd does; returns the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit()

    async def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, no offline status (the broker publishes the Last Will)."""
        assert self.proc is not None
        self.proc.kill()
        await self.wait_exit()

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in (self._reader, self._notify_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@contextlib.asynccontextmanager
async def daemon(config: Path, workdir: Path, *, cli: bool = False, wrap: Sequence[str] = (), **env: str) -> Any:
    """A started daemon subprocess, killed at the end whatever happens."""
    process = DaemonProcess(config, workdir, cli=cli, env=dict(env), wrap=wrap)
    await process.start()
    try:
        yield process
    finally:
        await process.close()


# -- the integrator -------------------------------------------------------------------------------------------


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.payload)
        return loaded


class Integrator:
    """A nurse-call integrator: a persistent-session (clean_session=False) QoS 1 subscriber that reconnects
    after broker restarts and, with ``ack_topic``, acknowledges every alert copy it receives."""

    def __init__(
        self,
        port: int,
        filters: Sequence[str] = (ALERT_FILTER,),
        *,
        client_id: str = "nursecall",
        ack_topic: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_context: Any = None,
    ) -> None:
        self.port = port
        self.filters = tuple(filters)
        self.client_id = client_id
        self.ack_topic = ack_topic
        self.credentials = (username, password)
        self.tls_context = tls_context
        self.received: list[Received] = []
        self.connects = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Integrator:
        self._task = asyncio.create_task(self._run())
        await self.until(lambda: self.connects > 0, "the integrator to connect")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.client_id,
                    clean_session=False,
                    username=self.credentials[0],
                    password=self.credentials[1],
                    tls_context=self.tls_context,
                    timeout=5.0,
                ) as client:
                    for topic_filter in self.filters:
                        await client.subscribe(topic_filter, qos=1)
                    self.connects += 1
                    self._changed.set()
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
                        item = Received(str(message.topic), bytes(payload), bool(message.retain))
                        self.received.append(item)
                        self._changed.set()
                        ack_to = self.ack_topic_for(item.topic)
                        if ack_to is not None:
                            await client.publish(ack_to, ack_payload(item.json()), qos=1)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def ack_topic_for(self, topic: str) -> str | None:
        """Where an alert received on ``topic`` is acknowledged: ``ack_topic``, if any (None: not acked)."""
        return self.ack_topic if self.ack_topic and "/alert" in topic else None

    def alerts(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.received if "/alert" in r.topic]

    def alert_ids(self) -> set[str]:
        return {a["alert_id"] for a in self.alerts()}

    def on(self, topic_suffix: str) -> list[dict[str, Any]]:
        return [r.json() for r in self.received if r.topic.endswith(topic_suffix)]

    async def until(self, predicate: Callable[[], bool], what: str, timeout_s: float = GUARD_S) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"timed out waiting for {what} (received {len(self.received)} messages)")


async def create_session(port: int, client_id: str = "nursecall", **kwargs: Any) -> None:
    """Connect once with a persistent session and subscribe, so the broker queues alerts for the integrator
    while it (or the broker) is away."""
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=client_id, clean_session=False, timeout=5.0, **kwargs
    ) as client:
        await client.subscribe(ALERT_FILTER, qos=1)


def check_alerts(alerts: Sequence[Mapping[str, Any]]) -> None:
    for alert in alerts:
        jsonschema.validate(alert, ALERT_SCHEMA)


def first_seen_in_order(alerts: Sequence[Mapping[str, Any]]) -> list[int]:
    """The seq of each alert's first copy, in arrival order (later duplicates are dropped)."""
    seen: set[str] = set()
    seqs: list[int] = []
    for alert in alerts:
        if alert["alert_id"] not in seen:
            seen.add(alert["alert_id"])
            seqs.append(int(alert["seq"]))
    return seqs


# -- metrics, TLS -----------------------------------------------------------------------------------------------


async def scrape(port: int) -> dict[str, float]:
    """The daemon's metrics as ``{'name{label="v"}': value}`` (label-less names without braces)."""
    from prometheus_client.parser import text_string_to_metric_families

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: bytes = response.read()
        return body.decode()

    text = await asyncio.to_thread(fetch)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


async def until_metric(d: DaemonProcess, name: str, predicate: Callable[[float], bool], what: str) -> float:
    """Poll the daemon's metrics endpoint until ``predicate(value of name)``; returns the value."""
    try:
        async with asyncio.timeout(GUARD_S):
            while True:
                if d.proc is not None and d.proc.returncode is not None:
                    pytest.fail(f"daemon exited before {what}:\n{d.log_text()[-4000:]}")
                value = (await scrape(d.metrics_port)).get(name)
                if value is not None and predicate(value):
                    return value
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}; daemon log:\n{d.log_text()[-4000:]}")


def histogram_quantile(metrics: Mapping[str, float], name: str, q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of a label-less histogram (conservative)."""
    buckets = sorted(
        (float(key.split('le="')[1].rstrip('"}')), value)
        for key, value in metrics.items()
        if key.startswith(f"{name}_bucket{{")
    )
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def test_toml_writer_round_trips_a_daemon_config(tmp_path: Path) -> None:
    from gaitwatch.daemon.settings import load_settings

    config = base_config(tmp_path, 1883, mqtt={"ack_topic": "gaitwatch/v1/ward/pc1/ack"})
    settings = load_settings(write_config(tmp_path / "d.toml", config))
    assert settings.cameras[0].id == "bay1" and settings.cameras[0].loop
    assert settings.mqtt.ack_topic == "gaitwatch/v1/ward/pc1/ack"
    assert settings.pose.model == "lite"


def test_ack_payloads_round_trip_and_the_active_entry_keeps_identity() -> None:
    a1, a2 = {"alert_id": "h:b:1", "ack_token": "t1" * 11}, {"alert_id": "h:b:2", "ack_token": "t2" * 11}
    claims = parse_ack(ack_payload(a1, a2, a1))
    assert [(c.alert_id, c.ack_token) for c in claims] == [("h:b:1", "t1" * 11), ("h:b:2", "t2" * 11)]
    body = json.dumps({"schema": "gaitwatch.alert/1", "alert_id": "a", "incident_id": "i", "phase": "start"})
    entry = active_alert_entry(body.encode())
    assert entry["alert_id"] == "a" and entry["incident_id"] == "i" and entry["subject"] is None


def test_histogram_quantile_reads_bucket_bounds() -> None:
    metrics = {
        'lag_bucket{le="0.01"}': 90.0,
        'lag_bucket{le="0.05"}': 99.0,
        'lag_bucket{le="0.1"}': 100.0,
        'lag_bucket{le="+Inf"}': 100.0,
    }
    assert histogram_quantile(metrics, "lag", 0.9) == 0.01
    assert histogram_quantile(metrics, "lag", 0.99) == 0.05
    assert histogram_quantile(metrics, "lag", 1.0) == 0.1


if __name__ == "__main__":
    sys.exit(harness_main())
