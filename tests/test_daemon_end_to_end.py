"""End to end: the daemon's real pipeline (HOG, tracker, BlazePose, gait) on real walking people, publishing to a
real mosquitto broker on a free loopback port; and the `gaitwatch demo` command's contract."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import jsonschema
import pytest

from gaitwatch.daemon.mqtt import subscription
from gaitwatch.daemon.service import Service
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.tools.demo import shipped_clip

REPO = Path(__file__).resolve().parents[1]
# 22 s of the shipped clip at its real 7 fps: long enough for people to be tracked through full 8 s windows.
CUT_FRAMES = 154

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "walkers.avi"
    capture = cv2.VideoCapture(str(shipped_clip()))
    writer: cv2.VideoWriter | None = None
    for _ in range(CUT_FRAMES):
        ok, image = capture.read()
        assert ok, "the shipped demo clip is shorter than expected"
        if writer is None:
            size = (image.shape[1], image.shape[0])
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 7.0, size)
        writer.write(image)
    assert writer is not None
    writer.release()
    capture.release()
    return path


def _schema(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((REPO / "config" / name).read_text(encoding="utf-8"))
    return loaded


async def test_daemon_publishes_per_person_gait_metrics_to_mosquitto(
    short_clip: Path, mosquitto: object, tmp_path: Path
) -> None:
    port = mosquitto.port  # type: ignore[attr-defined]
    settings = parse_settings(
        {
            "service": {"site": "ward3", "host": "pc1", "state_dir": str(tmp_path / "state")},
            "cameras": [{"id": "bay1", "source": str(short_clip), "playback": "replay", "fps": 7.0}],
            "mqtt": {"host": "127.0.0.1", "port": port},
            "metrics": {"enabled": False},
        }
    )
    received: list[tuple[str, bytes]] = []
    async with subscription("127.0.0.1", port, "gaitwatch/v1/#", client_id="integrator") as messages:

        async def collect() -> None:
            async for item in messages:
                received.append(item)

        collector = asyncio.create_task(collect())
        service = Service(settings, stop_when_sources_end=True)
        assert await service.run() == 0
        await asyncio.sleep(1.0)  # last QoS 0 messages in flight on loopback
        collector.cancel()

    gait = [json.loads(p) for t, p in received if t == "gaitwatch/v1/ward3/pc1/gait/bay1"]
    assert service.counters.gait_windows >= 1
    assert len(gait) == service.counters.gait_windows
    gait_schema = _schema("gait.schema.json")
    for payload in gait:
        jsonschema.validate(payload, gait_schema)
    subjects = {p["subject"] for p in gait}
    assert len(subjects) >= 2, "several people walk through the clip"
    assert all(re.fullmatch(r"bay1:[0-9a-f]+:\d+", s) for s in subjects)
    walking = [p for p in gait if p["valid"]]
    assert walking, "some windows of people walking through the scene must be valid"
    # Healthy adults walk at 90-125 steps/min; the median over the clip's people must be in that range.
    cadences = sorted(p["cadence_spm"] for p in walking)
    assert 80 <= cadences[len(cadences) // 2] <= 130, cadences
    statuses = [json.loads(p)["state"] for t, p in received if t == "gaitwatch/v1/ward3/pc1/status"]
    assert statuses[0] == "online" and statuses[-1] == "offline"
    # No image or pixel data ever leaves the PC: every message is small JSON.
    assert all(len(p) < 16_384 for _, p in received)
    # The broker's own log: the integrator's side (the demo's viewer) speaks MQTT 5, like the daemon.
    assert dict(mosquitto.connections())["integrator"] == "5"  # type: ignore[attr-defined]


def test_demo_command_prints_the_summary_line(short_clip: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gaitwatch.tools.cli", "demo", "--video", str(short_clip), "--fps", "7", "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    match = re.fullmatch(
        r"demo: frames=(\d+) tracks=(\d+) gait_windows=(\d+) alerts=(\d+) mqtt_messages=(\d+)", lines[0]
    )
    assert match, lines[0]
    frames, tracks, windows, _alerts, messages = (int(g) for g in match.groups())
    assert frames == CUT_FRAMES
    assert tracks >= 3
    assert windows >= 1
    assert messages >= windows


def test_demo_with_a_missing_video_fails_clearly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gaitwatch.tools.cli", "demo", "--video", str(tmp_path / "none.mp4")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr
