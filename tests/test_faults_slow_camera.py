"""A camera the PC cannot keep up with: before issue 14 a 4K file processed 41 of ~250 frames in 36 s while the
camera still reported ``online`` and nothing warned. Now it is reported ``degraded`` (retained camera status,
a ``camera_degraded`` technical alert, a metric and STATUS) until processing keeps up again.

The slow camera is real: 4K frames (downscaling turned off for the test) with person detection on the whole
frame at every frame, which no PC runs at the 4 frames per second gait analysis needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import pytest
from test_faults_harness import Integrator, base_config, check_alerts, daemon, scrape, write_config
from videogen import numbered_frame

pytestmark = pytest.mark.slow


def _uhd_clip(path: Path, frames: int = 14, fps: float = 7.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (3840, 2160))
    for i in range(frames):
        writer.write(cv2.resize(numbered_frame(i), (3840, 2160), interpolation=cv2.INTER_NEAREST))
    writer.release()
    return path


async def test_a_camera_too_large_for_the_pc_is_reported_degraded(mosquitto: Any, tmp_path: Path) -> None:
    clip = _uhd_clip(tmp_path / "uhd.avi")
    camera = {
        "id": "bay1",
        "source": str(clip),
        "loop": True,
        "fps": 7.0,
        "max_frame_side_px": 7680,  # no downscaling: the point is a stream too large for the PC
        "degraded_after_s": 5.0,
    }
    # HOG on every whole 4K frame (seconds each): a load no 2-core PC keeps up with at 7 fps, whatever the
    # default detector costs (NanoDet's fixed 416 px input would make the frame cheaper than the test needs).
    detector = {"kind": "hog", "interval_s": 0.0, "full_frame_interval_s": 0.0}
    config = base_config(tmp_path, mosquitto.port, camera=camera, detector=detector)
    path = write_config(tmp_path / "daemon.toml", config)
    filters = ("gaitwatch/v1/+/+/alert/#", "gaitwatch/v1/+/+/camera/+/status")
    async with Integrator(mosquitto.port, filters) as integrator, daemon(path, tmp_path, cli=True) as d:
        await d.wait_ready()
        await integrator.until(
            lambda: any(a["type"] == "camera_degraded" for a in integrator.alerts()), "a camera_degraded alert"
        )
        await integrator.until(
            lambda: integrator.on("/camera/bay1/status")[-1]["state"] == "degraded", "the degraded camera status"
        )
        metrics = await scrape(config["metrics"]["port"])
        assert metrics['gaitwatch_camera_degraded{camera="bay1"}'] == 1
        await d.until(lambda: any("DEGRADED" in n for n in d.notifications), "DEGRADED in STATUS")
        assert await d.stop() == 0
    degraded = [a for a in integrator.alerts() if a["type"] == "camera_degraded"]
    check_alerts(degraded)
    assert [a["phase"] for a in degraded] == ["start", "end"], "raised once, ended at shutdown"
    assert degraded[0]["evidence"]["processed_fps"] < 4.0
