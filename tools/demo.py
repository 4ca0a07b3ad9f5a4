"""``gaitwatch demo``: the daemon's real pipeline on a real clip of walking people, against a real local broker.

It starts mosquitto on a free loopback port (``local_broker``; no fallback: without the binary it fails, naming
the install command), subscribes to the daemon's own topics like a nurse-call integrator would, replays the clip
as fast as the machine allows through the same ``Service`` that ``gaitwatch run`` uses, with the daemon's default
MQTT settings (MQTT 5), prints what arrives and the MQTT version the broker saw each client connect with, and
ends with one summary line: ``demo: frames=F tracks=T gait_windows=W alerts=A mqtt_messages=M``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TextIO

from gaitwatch.daemon.logs import configure_logging
from gaitwatch.daemon.mqtt import subscription
from gaitwatch.daemon.pipeline import FrameResult
from gaitwatch.daemon.service import Service
from gaitwatch.daemon.settings import (
    CameraSettings,
    MetricsSettings,
    MqttSettings,
    PoseSettingsModel,
    ServiceSettings,
    Settings,
)
from gaitwatch.pose.blazepose import BlazePoseSettings, model_variant
from gaitwatch.tools.local_broker import BrokerStartError, Mosquitto, MosquittoNotInstalledError, local_broker
from gaitwatch.tools.render import VideoRenderer

# The shipped clip was captured at 7 fps and its container says so; other clips may need --fps.
SHIPPED_CLIP = "data/demo_walkers.mp4"
# After the pipeline ends, wait at most this long for the last QoS 0 gait messages to reach the subscriber.
DRAIN_WAIT_S = 5.0
# sysexits: the clip is missing; the broker the demo needs is not installed or does not start.
EX_NOINPUT = 66
EX_UNAVAILABLE = 69


@dataclass(frozen=True, slots=True)
class DemoOptions:
    video: Path | None = None
    fps: float | None = None
    render: Path | None = None
    model: str = BlazePoseSettings().model
    quiet: bool = False


@dataclass(slots=True)
class _Received:
    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


def shipped_clip() -> Path:
    return Path(str(resources.files("gaitwatch.tools").joinpath(SHIPPED_CLIP)))


def _describe(topic: str, payload: bytes) -> str:
    """One readable line per message: what an integrator would look at."""
    try:
        body = json.loads(payload)
    except ValueError:
        return f"{topic} ({len(payload)} bytes)"
    kind = topic.split("/")[4] if topic.count("/") >= 4 else topic
    if kind == "gait":
        cadence = body.get("cadence_spm")
        label = (body.get("classification") or {}).get("label", "-")
        shown = f"{cadence:.0f} spm" if isinstance(cadence, int | float) else "no cadence"
        return (
            f"gait   {body.get('subject')} state={body.get('state')} valid={body.get('valid')} "
            f"{shown} quality={body.get('quality')} label={label}"
        )
    if kind == "alert":
        return (
            f"ALERT  {body.get('type')} {body.get('phase')} subject={body.get('subject')} "
            f"priority={body.get('priority')} seq={body.get('seq')}"
        )
    if kind == "camera":
        return f"camera {body.get('camera')} {body.get('state')}"
    return f"{kind:6} {body.get('state', '')}"


async def _listen(
    host: str, port: int, topic: str, received: _Received, ready: asyncio.Event, out: TextIO | None
) -> None:
    async with subscription(host, port, topic, client_id="gaitwatch-demo-viewer") as messages:
        ready.set()
        async for msg_topic, payload in messages:
            received.total += 1
            kind = msg_topic.split("/")[4] if msg_topic.count("/") >= 4 else "other"
            received.by_kind[kind] = received.by_kind.get(kind, 0) + 1
            async with received.changed:
                received.changed.notify_all()
            if out is not None:
                out.write(_describe(msg_topic, payload) + "\n")
                out.flush()


async def _demo(options: DemoOptions, out: TextIO) -> int:
    video = options.video or shipped_clip()
    if not video.is_file():
        sys.stderr.write(f"gaitwatch demo: video {video} does not exist; pass --video PATH to a clip\n")
        return EX_NOINPUT
    try:
        async with local_broker() as broker:
            return await _demo_with_broker(options, video, broker, out)
    except (MosquittoNotInstalledError, BrokerStartError) as exc:  # only starting the broker raises these
        sys.stderr.write(f"gaitwatch demo: {exc}\n")
        return EX_UNAVAILABLE


async def _demo_with_broker(options: DemoOptions, video: Path, broker: Mosquitto, out: TextIO) -> int:
    renderer: VideoRenderer | None = None
    with tempfile.TemporaryDirectory(prefix="gaitwatch-demo-") as state_dir:
        settings = Settings(
            service=ServiceSettings(site="demo", host="demo-pc", state_dir=Path(state_dir), log_level="warning"),
            cameras=[CameraSettings(id="demo", source=str(video), playback="replay", fps=options.fps, zone="demo")],
            pose=PoseSettingsModel(model=model_variant(options.model)),
            # The daemon's defaults otherwise, MQTT 5 included: the demo runs the path a ward PC runs.
            mqtt=MqttSettings(host=broker.host, port=broker.port),
            metrics=MetricsSettings(enabled=False),
        )
        if not options.quiet:
            out.write(
                f"demo: clip {video}, mosquitto on {broker.host}:{broker.port}, "
                f"daemon configured for MQTT {settings.mqtt.protocol}\n"
            )
        received = _Received()
        subscribed = asyncio.Event()
        listener = asyncio.create_task(
            _listen(
                broker.host,
                broker.port,
                f"{settings.mqtt.topic_root}/#",
                received,
                subscribed,
                None if options.quiet else out,
            )
        )
        await asyncio.wait_for(subscribed.wait(), timeout=10.0)

        def on_result(result: FrameResult) -> None:
            nonlocal renderer
            if options.render is None:
                return
            if renderer is None:
                renderer = VideoRenderer(options.render, fps=options.fps or 7.0)
            renderer.add(result)

        service = Service(settings, stop_when_sources_end=True, on_result=on_result)
        try:
            code = await service.run()
        finally:
            if renderer is not None:
                renderer.close()
        # QoS 0 messages sent just before the end are still in flight: wait for them, boundedly.
        expected = service.counters.gait_windows
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_WAIT_S), received.changed:
                await received.changed.wait_for(lambda: received.by_kind.get("gait", 0) >= expected)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
    c = service.counters
    if not options.quiet:
        # What the broker logged, not what the clients were told: proof of the protocol actually spoken.
        seen = dict(broker.connections())
        spoken = ", ".join(f"{client} MQTT {version}" for client, version in seen.items()) or "no client"
        out.write(f"demo: the broker saw {spoken}\n")
        if options.render is not None:
            out.write(f"demo: annotated video written to {options.render}\n")
    out.write(
        f"demo: frames={c.frames} tracks={len(c.confirmed_tracks)} gait_windows={c.gait_windows} "
        f"alerts={c.alerts} mqtt_messages={received.total}\n"
    )
    out.flush()
    return code


def run_demo(options: DemoOptions, out: TextIO | None = None) -> int:
    configure_logging("warning")
    logging.getLogger("gaitwatch").setLevel(logging.WARNING)
    return asyncio.run(_demo(options, out or sys.stdout))
