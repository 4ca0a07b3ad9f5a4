"""Soak test: the real daemon for a long time, with its broker restarted now and then.

    .venv/bin/python bench/soak.py [--duration-s 1200] [--speed 3] [--broker-restart-s 120]
        [--alert-interval-s 2] [--warmup-s 120] [--model full-int8|full|lite] [--clip PATH]

Runs the real ``Service`` in this process: the shipped clip of walking people replayed as a live camera at
``--speed`` times real time (looping, frames dropped when the pipeline is slower, as with a real camera), the
real pipeline, outbox and MQTT client in ack mode, against a real mosquitto (with persistence) that is
restarted every ``--broker-restart-s``, alternately gracefully and with SIGKILL. A nurse-call integrator in
the same process (persistent QoS 1 session, acknowledging every alert) counts what arrives. Besides the
pipeline's own alerts, a technical ``test`` incident is started and ended every ``--alert-interval-s``
through ``Service.emit_technical_alert`` so that delivery is exercised throughout.

Every 30 s it prints RSS, open file descriptors, asyncio tasks, threads, outbox pending and event-loop lag;
at the end RSS after warm-up and at the end (growth in %), fd and task counts at both points, and alerts
generated (committed to the outbox) vs delivered (distinct alert ids the integrator received), then one line
``soak: duration_s=... rss_growth_pct=... fds=A->B tasks=A->B generated=G delivered=D broker_restarts=R``.
Exit 0 when generated == delivered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import aiomqtt

from gaitwatch.daemon.logs import configure_logging
from gaitwatch.daemon.payloads import ack_payload
from gaitwatch.daemon.service import Service
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.gait.types import AlertPhase
from gaitwatch.pose.blazepose import BlazePoseSettings, ModelVariant
from gaitwatch.tools.demo import shipped_clip
from gaitwatch.tools.local_broker import Mosquitto, MosquittoNotInstalledError

SAMPLE_EVERY_S = 30.0
HOST = "soak-pc"
# After the run, wait at most this long for the last alerts to be delivered and acknowledged.
DRAIN_S = 60.0


class Broker:
    """mosquitto with persistence on a free loopback port (``local_broker.Mosquitto``), restarted on the same
    port alternately gracefully (SIGTERM) and as a crash (SIGKILL)."""

    def __init__(self, workdir: Path) -> None:
        try:
            self.mosquitto = Mosquitto(workdir, persistence=True)
        except MosquittoNotInstalledError as exc:
            raise SystemExit(f"soak: {exc}") from None
        self.port = self.mosquitto.port
        self.restarts = 0

    async def start(self) -> None:
        await asyncio.to_thread(self.mosquitto.start)

    async def end(self, hard: bool) -> None:
        await asyncio.to_thread(self.mosquitto.kill if hard else self.mosquitto.stop)

    async def restart(self) -> None:
        await self.end(hard=self.restarts % 2 == 1)
        self.restarts += 1
        await self.start()


class Integrator:
    """Persistent-session subscriber that acknowledges every alert; survives broker restarts."""

    def __init__(self, port: int, ack_topic: str) -> None:
        self.port = port
        self.ack_topic = ack_topic
        self.ids: set[str] = set()
        self.copies = 0

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="soak-integrator", clean_session=False, timeout=5.0
                ) as client:
                    await client.subscribe(f"gaitwatch/v1/+/{HOST}/alert/#", qos=1)
                    async for message in client.messages:
                        payload = message.payload
                        alert = json.loads(payload if isinstance(payload, bytes | bytearray) else b"{}")
                        self.ids.add(alert["alert_id"])
                        self.copies += 1
                        await client.publish(self.ack_topic, ack_payload(alert), qos=1)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float
    rss_mb: float
    fds: int
    tasks: int
    threads: int


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def sample(t0: float) -> Sample:
    return Sample(
        t_s=time.monotonic() - t0,
        rss_mb=rss_mb(),
        fds=sum(1 for _ in Path("/proc/self/fd").iterdir()),
        tasks=len(asyncio.all_tasks()),
        threads=threading.active_count(),
    )


def lag_p99_ms(service: Service) -> float:
    """Upper bound of the histogram bucket holding the 99th percentile of event-loop lag."""
    buckets: list[tuple[float, float]] = []
    for family in service.metrics.event_loop_lag.collect():
        for s in family.samples:
            if s.name.endswith("_bucket"):
                buckets.append((float(s.labels["le"]), s.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return bound * 1000.0
    return float("nan")


async def drained(done: Callable[[], bool]) -> None:
    """Wait (at most DRAIN_S) until ``done()``: the integrator has everything stored so far."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            while not done():  # noqa: ASYNC110  (polls counters of two independent parties)
                await asyncio.sleep(0.2)


async def soak(args: argparse.Namespace) -> int:
    configure_logging("warning")
    workdir = Path(tempfile.mkdtemp(prefix="gaitwatch-soak-"))
    broker = Broker(workdir)
    await broker.start()
    ack_topic = f"gaitwatch/v1/soak/{HOST}/ack"
    settings = parse_settings(
        {
            "service": {"site": "soak", "host": HOST, "state_dir": str(workdir / "state"), "log_level": "warning"},
            "cameras": [
                {
                    "id": "bay1",
                    "source": str(args.clip),
                    "playback": "live",
                    "loop": True,
                    # Playing the 7 fps clip at speed x 7 fps: a faster camera than the footage, media time
                    # compressed accordingly (gait timing is off; operations are what is soaked).
                    "fps": 7.0 * args.speed,
                }
            ],
            "pose": {"model": args.model},
            "mqtt": {
                "port": broker.port,
                "ack_topic": ack_topic,
                "ack_timeout_s": 10.0,
                "timeout_s": 5.0,
                "reconnect_initial_s": 0.2,
                "reconnect_max_s": 2.0,
            },
            "metrics": {"enabled": False},
        }
    )
    integrator = Integrator(broker.port, ack_topic)
    listening = asyncio.create_task(integrator.run())
    service = Service(settings)
    running = asyncio.create_task(service.run())
    await asyncio.wait({running, asyncio.create_task(service.ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        return running.result()
    t0 = time.monotonic()
    samples = [sample(t0)]
    warm: Sample | None = None
    print(f"soak: {args.duration_s:.0f} s, clip {args.clip} at {args.speed}x, pose {args.model}, broker :{broker.port}")
    print(f"{'t_s':>7} {'rss_mb':>8} {'fds':>5} {'tasks':>6} {'threads':>8} {'pending':>8} {'lag_p99_ms':>11}")
    next_alert = next_sample = 0.0
    next_restart = args.broker_restart_s
    incident: str | None = None
    while (now := time.monotonic() - t0) < args.duration_s:
        if now >= next_alert:
            phase = AlertPhase.START if incident is None else AlertPhase.END
            emitted = await service.emit_technical_alert("test", phase, incident_id=incident, priority="low")
            incident = emitted.incident_id if phase is AlertPhase.START else None
            next_alert = now + args.alert_interval_s
        if now >= next_restart:
            await broker.restart()
            next_restart = now + args.broker_restart_s
        if now >= next_sample:
            s = sample(t0)
            samples.append(s)
            if warm is None and s.t_s >= args.warmup_s:
                warm = s
            pending = service.metrics.outbox_pending_count
            print(
                f"{s.t_s:7.0f} {s.rss_mb:8.1f} {s.fds:5d} {s.tasks:6d} {s.threads:8d} {pending:8.0f} "
                f"{lag_p99_ms(service):11.1f}",
                flush=True,
            )
            next_sample = now + SAMPLE_EVERY_S
        await asyncio.sleep(0.1)
    end = sample(t0)
    warm = warm or samples[min(1, len(samples) - 1)]
    if incident is not None:
        await service.emit_technical_alert("test", AlertPhase.END, incident_id=incident, priority="low")
    # Let everything stored so far be delivered and acknowledged, then stop (which may add end phases).
    await drained(lambda: service.counters.alerts_stored <= len(integrator.ids))
    service.request_stop()
    code = await running
    generated = service.counters.alerts_stored
    await drained(lambda: generated <= len(integrator.ids))
    listening.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listening
    await broker.end(hard=False)
    shutil.rmtree(workdir, ignore_errors=True)
    delivered = len(integrator.ids)
    growth = 100.0 * (end.rss_mb - warm.rss_mb) / warm.rss_mb
    c = service.counters
    print(
        f"after warm-up (t={warm.t_s:.0f} s): rss {warm.rss_mb:.1f} MB, fds {warm.fds}, tasks {warm.tasks}, "
        f"threads {warm.threads}; at the end: rss {end.rss_mb:.1f} MB ({growth:+.1f}%), fds {end.fds}, "
        f"tasks {end.tasks}, threads {end.threads}"
    )
    print(
        f"frames {c.frames}, gait windows {c.gait_windows}, alerts generated {generated} (stored), delivered "
        f"{delivered} distinct ({integrator.copies} copies), broker restarts {broker.restarts}, "
        f"event-loop lag p99 <= {lag_p99_ms(service):.0f} ms, service exit {code}"
    )
    print(
        f"soak: duration_s={end.t_s:.0f} rss_growth_pct={growth:.1f} fds={warm.fds}->{end.fds} "
        f"tasks={warm.tasks}->{end.tasks} generated={generated} delivered={delivered} "
        f"broker_restarts={broker.restarts}"
    )
    return 0 if generated == delivered and code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=1200.0, help="how long to run (default 20 min)")
    parser.add_argument("--speed", type=float, default=3.0, help="camera speed as a multiple of real time")
    parser.add_argument("--broker-restart-s", type=float, default=120.0, help="restart the broker this often")
    parser.add_argument("--alert-interval-s", type=float, default=2.0, help="a test alert this often")
    parser.add_argument("--warmup-s", type=float, default=120.0, help="RSS growth is measured from here")
    parser.add_argument("--model", choices=get_args(ModelVariant), default=BlazePoseSettings().model, help="pose model")
    parser.add_argument("--clip", type=Path, default=None, help="video to replay (default: the shipped clip)")
    args = parser.parse_args(argv)
    args.clip = args.clip or shipped_clip()
    if args.warmup_s >= args.duration_s:
        parser.error("--warmup-s must be shorter than --duration-s")
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
