"""Offline runs of the real pipeline over a video file: the keypoint recording it yields (never pixels), for
``gaitwatch record``, ``gaitwatch replay VIDEO`` and evaluations on real footage.

A recording holds exactly what the pipeline fed its gait stage (each frame's poses, when the tracker dropped a
recorded track, when the input stopped), so replaying it through a fresh ``GaitStage`` gives the windows and
alerts the pipeline produced live."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.pipeline import FrameResult
from gaitwatch.daemon.settings import Settings
from gaitwatch.daemon.sources import FALLBACK_FPS
from gaitwatch.gait.recording import Recording
from gaitwatch.tracking.types import Frame


class VideoReadError(Exception):
    """The video cannot be opened or decoded."""


def video_frame_rate(capture: cv2.VideoCapture, override: float | None) -> float:
    if override is not None:
        return override
    reported = float(capture.get(cv2.CAP_PROP_FPS))
    return reported if np.isfinite(reported) and 1.0 <= reported <= 240.0 else FALLBACK_FPS


class PipelineRecorder:
    """Collects, frame by frame, what a ``CameraPipeline`` fed its gait stage: every posed person's keypoints
    (the smoothed ones gait analysis reads), and the frame at which the tracker dropped a recorded track."""

    def __init__(self) -> None:
        self._ids: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._keypoints: list[np.ndarray] = []
        self._world: list[np.ndarray] = []
        self._ended_ids: list[int] = []
        self._ended_t: list[float] = []
        # Recorded tracks the tracker still holds, in the order they were first posed.
        self._open: dict[int, None] = {}
        self._t_last: float | None = None

    def add(self, result: FrameResult) -> None:
        t = result.frame.t
        held = {int(i) for i in result.tracks.ids}
        for tid in [tid for tid in self._open if tid not in held]:
            del self._open[tid]
            self._ended_ids.append(tid)
            self._ended_t.append(t)
        poses = result.poses
        if len(poses):
            self._ids.append(poses.track_ids)
            self._times.append(np.full(len(poses), t))
            self._keypoints.append(poses.keypoints)
            self._world.append(poses.world)
            self._open.update((int(i), None) for i in poses.track_ids)
        self._t_last = t

    def recording(self, meta: Mapping[str, Any]) -> Recording:
        """Everything added so far; the input stopped at the last frame added."""
        if not self._ids:
            empty = np.zeros((0, 33, 3), dtype=np.float32)
            ids, times, keypoints, world = np.zeros(0, np.int64), np.zeros(0), empty, empty.copy()
        else:
            ids = np.concatenate(self._ids).astype(np.int64)
            times = np.concatenate(self._times)
            keypoints = np.concatenate(self._keypoints).astype(np.float32)
            world = np.concatenate(self._world).astype(np.float32)
        return Recording(
            ids,
            times,
            keypoints,
            world,
            dict(meta),
            np.asarray(self._ended_ids, dtype=np.int64),
            np.asarray(self._ended_t, dtype=np.float64),
            self._t_last,
        )


def record_video(
    video: Path,
    settings: Settings,
    *,
    fps: float | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
    max_frames: int | None = None,
) -> Recording:
    """Run detector, tracker and pose over every frame of ``video`` (media time = index / fps) and collect each
    tracked person's smoothed keypoints. ``fps`` overrides the container's frame rate."""
    if not video.is_file():
        raise VideoReadError(f"video {video} does not exist")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise VideoReadError(f"OpenCV cannot open {video}")
    rate = video_frame_rate(capture, fps)
    shared = SharedModels(settings, inference_threads=1)  # one pipeline on this one thread
    camera = settings.cameras[0].id
    pipeline = build_camera_pipeline(camera, settings, shared)
    recorder = PipelineRecorder()
    index = 0
    try:
        while max_frames is None or index < max_frames:
            ok, image = capture.read()
            if not ok or image is None:
                break
            t = index / rate
            result = pipeline.process(Frame(camera, index, t, np.asarray(image, dtype=np.uint8)))
            index += 1
            recorder.add(result)
            if on_result is not None:
                on_result(result)
    finally:
        capture.release()
    if index == 0:
        raise VideoReadError(f"OpenCV could not decode any frame of {video}")
    meta = {
        "camera": camera,
        "fps": rate,
        "source": video.name,
        "frames": index,
        "pose": shared.pose.model_version,
    }
    return recorder.recording(meta)
