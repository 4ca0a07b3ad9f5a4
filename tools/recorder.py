"""Offline runs of the real pipeline over a video file: the keypoint recording it yields (never pixels), for
``gaitwatch record``, ``gaitwatch replay VIDEO`` and evaluations on real footage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
    ids: list[np.ndarray] = []
    times: list[np.ndarray] = []
    keypoints: list[np.ndarray] = []
    world: list[np.ndarray] = []
    index = 0
    try:
        while max_frames is None or index < max_frames:
            ok, image = capture.read()
            if not ok or image is None:
                break
            t = index / rate
            result = pipeline.process(Frame(camera, index, t, np.asarray(image, dtype=np.uint8)))
            index += 1
            poses = result.poses
            if len(poses):
                ids.append(poses.track_ids)
                times.append(np.full(len(poses), t))
                keypoints.append(poses.keypoints)
                world.append(poses.world)
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
    if not ids:
        empty = np.zeros((0, 33, 3), dtype=np.float32)
        return Recording(np.zeros(0, np.int64), np.zeros(0), empty, empty.copy(), meta)
    return Recording(
        np.concatenate(ids).astype(np.int64),
        np.concatenate(times),
        np.concatenate(keypoints).astype(np.float32),
        np.concatenate(world).astype(np.float32),
        meta,
    )
