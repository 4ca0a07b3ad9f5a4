"""Offline runs of the real pipeline over a video file (``VideoRun``: the daemon's own per-camera pipeline, built
by its assembly): the keypoint recording it yields (never pixels), for ``gaitwatch record``, ``gaitwatch replay
VIDEO`` and evaluations on real footage, and the crops it poses, for ``gaitwatch distill`` (``pipeline_run``).

A recording holds exactly what the pipeline fed its gait stage (each frame's poses, when the tracker dropped a
recorded track, when the input stopped), so replaying it through a fresh ``GaitStage`` gives the windows and
alerts the pipeline produced live."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.pipeline import FrameResult
from gaitwatch.daemon.settings import Settings
from gaitwatch.daemon.sources import FALLBACK_FPS
from gaitwatch.gait.recording import Recording
from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.offline.distill import PipelineFrame, PipelineRun, VideoInfo
from gaitwatch.pose.pool import PoseBackendPool
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


class VideoRun:
    """The daemon's per-camera pipeline (``build_camera_pipeline`` from ``settings``: detector and its cadence,
    tracker, pose schedule, gait stage) over a video file, frame by frame at media time index / fps. ``fps``
    overrides the container's frame rate; ``pose`` replaces the configured pose model (distillation runs the
    pipeline with its teacher). Raises VideoReadError when the video cannot be opened."""

    def __init__(
        self, video: Path, settings: Settings, *, fps: float | None = None, pose: PoseBackend | None = None
    ) -> None:
        if not video.is_file():
            raise VideoReadError(f"video {video} does not exist")
        self.video = video
        self._capture = cv2.VideoCapture(str(video))
        if not self._capture.isOpened():
            raise VideoReadError(f"OpenCV cannot open {video}")
        self.rate = video_frame_rate(self._capture, fps)
        shared = SharedModels(settings, inference_threads=1)  # one pipeline on this one thread
        if pose is not None:
            shared.pose = PoseBackendPool(lambda: pose, 1)
        self.pose_version = shared.pose.model_version
        self.camera = settings.cameras[0].id
        self.pipeline = build_camera_pipeline(self.camera, settings, shared)
        self.frames = 0  # frames processed

    def results(self, first: int = 0, stop: int | None = None) -> Iterator[FrameResult]:
        """Process frames ``first`` up to ``stop`` (exclusive; None: to the end) and release the video. Frames
        before ``first`` are decoded and skipped: seeking is unreliable in many codecs."""
        index = -1
        try:
            while stop is None or index + 1 < stop:
                ok, image = self._capture.read()
                if not ok or image is None:
                    break
                index += 1
                if index < first:
                    continue
                frame = Frame(self.camera, index, index / self.rate, np.asarray(image, dtype=np.uint8))
                result = self.pipeline.process(frame)
                self.frames += 1
                yield result
        finally:
            self._capture.release()


def pipeline_run(settings: Settings) -> PipelineRun:
    """``gaitwatch.pose.offline.distill.collect``'s way of driving the daemon's pipeline built from ``settings``
    (with the teacher as its pose model) over part of a video."""

    def run(info: VideoInfo, pose: PoseBackend, first: int, stop: int) -> Iterator[PipelineFrame]:
        video = VideoRun(Path(info.path), settings, fps=info.fps, pose=pose)
        for result in video.results(first, stop):
            yield PipelineFrame(result.frame.seq, result.frame.t, result.frame.image, result.tracks.xyxy)

    return run


def record_video(
    video: Path,
    settings: Settings,
    *,
    fps: float | None = None,
    on_result: Callable[[FrameResult], None] | None = None,
    max_frames: int | None = None,
) -> Recording:
    """Run the daemon's pipeline over every frame of ``video`` (media time = index / fps) and record what its
    gait stage was fed (see ``PipelineRecorder``). ``fps`` overrides the container's frame rate."""
    return record(VideoRun(video, settings, fps=fps), on_result=on_result, max_frames=max_frames)


def record(
    run: VideoRun, *, on_result: Callable[[FrameResult], None] | None = None, max_frames: int | None = None
) -> Recording:
    """``run``'s frames (up to ``max_frames``) through its pipeline, recorded (see ``record_video``)."""
    recorder = PipelineRecorder()
    for result in run.results(stop=max_frames):
        recorder.add(result)
        if on_result is not None:
            on_result(result)
    if run.frames == 0:
        raise VideoReadError(f"OpenCV could not decode any frame of {run.video}")
    meta = {
        "camera": run.camera,
        "fps": run.rate,
        "source": run.video.name,
        "frames": run.frames,
        "pose": run.pose_version,
    }
    return recorder.recording(meta)
