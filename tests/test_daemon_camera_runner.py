"""One camera's loop on its own (a stand-in reader and pipeline, real worker threads): a frame that fails is
counted and logged once per distinct error, never ends the camera; a file's end does; the reader's counters
reach the metrics."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from gaitwatch.daemon.camera_runner import CameraRunner
from gaitwatch.daemon.counters import ServiceCounters
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.pipeline import CameraPipeline, FrameResult
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.daemon.sources import CameraStats
from gaitwatch.daemon.workers import WatchedWorkers
from gaitwatch.tracking.types import Frame


class FileSource:
    """Hands out ``frames`` frames, then says it finished (a file without ``loop``)."""

    def __init__(self, frames: int) -> None:
        self._left = frames
        self._seq = 0
        self._stats = CameraStats(connected=True, fps=7.0)

    @property
    def camera_id(self) -> str:
        return "bay1"

    @property
    def stats(self) -> CameraStats:
        return self._stats

    @property
    def finished(self) -> bool:
        return self._left == 0

    def start(self) -> None:
        pass

    def get(self, timeout_s: float) -> Frame | None:
        if self._left == 0:
            return None
        self._left -= 1
        self._seq += 1
        self._stats.decoded += 1
        return Frame("bay1", self._seq, self._seq / 7.0, np.zeros((4, 4, 3), np.uint8))

    def stop(self) -> None:
        pass


class BrokenPipeline:
    """Every frame fails in pose inference, with the same error except the third one."""

    def detection_due(self, t: float) -> bool:
        return False

    def process(self, frame: Frame, detected: Any = None) -> FrameResult:
        if frame.seq == 3:
            raise ValueError("a different failure")
        raise RuntimeError("model exploded")


async def test_failing_frames_are_counted_and_logged_once_per_error_and_the_end_of_a_file_ends_the_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = parse_settings(
        {
            "service": {"site": "ward", "host": "pc1", "state_dir": str(tmp_path / "state")},
            "cameras": [{"id": "bay1", "source": "rtsp://127.0.0.1:9/bay1"}],
        }
    )
    metrics, counters, workers = DaemonMetrics(version="test", cameras=["bay1"]), ServiceCounters(), WatchedWorkers(1)
    camera = CameraRunner(
        settings.cameras[0],
        FileSource(5),
        cast(CameraPipeline, BrokenPipeline()),
        metrics=metrics,
        counters=counters,
        workers=workers,
    )
    handled: list[FrameResult] = []

    async def handle(_: CameraRunner, result: FrameResult) -> None:
        handled.append(result)

    caplog.set_level(logging.INFO, logger="gaitwatch.daemon.service")
    try:
        await camera.run(asyncio.Event(), handle)  # returns once the file has ended
    finally:
        workers.shutdown()
    assert handled == [] and counters.frames == 0
    assert counters.frame_errors == 5, "every failed frame counted"
    failures = [r for r in caplog.records if "frame_failed" in r.getMessage()]
    assert [type(r.exc_info[1]).__name__ for r in failures if r.exc_info] == [
        "RuntimeError",
        "ValueError",
        "RuntimeError",
    ], "a repeated error is logged again only when another came between (or a minute later)"
    assert any("event=finished" in r.getMessage() for r in caplog.records)
    assert 'gaitwatch_frames_decoded_total{camera="bay1"} 5.0' in metrics.render().decode()
    assert workers.oldest_job_started() is None, "no job left running"
