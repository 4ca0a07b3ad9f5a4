"""Pose over time for tracked people: reuse each track's last aligned ROI instead of paying a second pass.

BlazePose is most accurate on an ROI centred on the hips and turned along the body axis (its "alignment"); from a
detector box that takes two model runs per person (box ROI, then the aligned ROI). In video the previous frame's
landmarks already give that alignment, which is how MediaPipe itself tracks a pose: one run per person per frame.
Here the last aligned ROI is shifted by the track box's motion since then, so a walker stays centred, and it is
dropped (back to the box and, if configured, the second pass) when it is stale, when the track moved a lot, or
when the model no longer sees a person in it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.blazepose import BlazePoseBackend, CropLandmarks
from gaitwatch.pose.keypoints import NUM_LANDMARKS
from gaitwatch.pose.roi import Roi
from gaitwatch.pose.types import Poses


class TrackPoseEstimator(Protocol):
    """What the pipeline calls: poses for tracked boxes at time ``t``, with per-track state."""

    @property
    def model_version(self) -> str: ...

    def estimate(
        self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64], t: float
    ) -> Poses: ...

    def prune(self, live_track_ids: Iterable[int]) -> None: ...


class StatelessPoseEstimator:
    """Any ``PoseBackend`` used frame by frame, with no memory of the previous pose."""

    def __init__(self, backend: PoseBackend) -> None:
        self._backend = backend

    @property
    def model_version(self) -> str:
        return self._backend.model_version

    def estimate(
        self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64], t: float
    ) -> Poses:
        return self._backend.estimate(image, track_ids, xyxy)

    def prune(self, live_track_ids: Iterable[int]) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RoiTrackingSettings:
    """``max_age_s``: the last aligned ROI is reused only if it is at most this old. Longer reuses it across
    skipped frames (cheaper), but a person who turned or bent meanwhile is framed worse.
    ``max_shift``: if the track's box centre moved more than this fraction of the ROI's side since the last
    pose, the ROI is rebuilt from the box (the person, or the box, jumped).
    ``min_presence``: a tracked ROI whose crop scores below this is retried from the box in the same frame,
    so losing the alignment costs one extra run, never a missed pose."""

    max_age_s: float = 0.5
    max_shift: float = 0.35
    min_presence: float = 0.5

    def __post_init__(self) -> None:
        if not (self.max_age_s > 0 and self.max_shift > 0 and 0 <= self.min_presence <= 1):
            raise ValueError(f"invalid RoiTrackingSettings: {self}")


@dataclass(frozen=True, slots=True)
class _LastPose:
    t: float
    roi: Roi
    box_centre: tuple[float, float]


class RoiTrackingPoseEstimator:
    """BlazePose with MediaPipe-style ROI tracking (see the module docstring). One instance per camera and
    inference thread: it owns per-track state and calls a backend that is not thread-safe."""

    def __init__(self, backend: BlazePoseBackend, settings: RoiTrackingSettings | None = None) -> None:
        self._backend = backend
        self._settings = settings or RoiTrackingSettings()
        self._last: dict[int, _LastPose] = {}
        self.tracked_runs = 0
        self.box_runs = 0

    @property
    def model_version(self) -> str:
        return self._backend.model_version

    def estimate(
        self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64], t: float
    ) -> Poses:
        n = int(track_ids.shape[0])
        if n == 0:
            return Poses.empty()
        keypoints = np.empty((n, NUM_LANDMARKS, 3), dtype=np.float32)
        world = np.empty((n, NUM_LANDMARKS, 3), dtype=np.float32)
        presence = np.empty(n, dtype=np.float32)
        for i in range(n):
            result = self._estimate_track(image, int(track_ids[i]), np.asarray(xyxy[i], dtype=np.float64), t)
            keypoints[i], world[i], presence[i] = result.keypoints, result.world, result.presence
        return Poses(np.asarray(track_ids, dtype=np.int64).copy(), keypoints, world, presence)

    def _estimate_track(
        self, image: NDArray[np.uint8], tid: int, box: NDArray[np.float64], t: float
    ) -> CropLandmarks:
        s = self._settings
        centre = (0.5 * float(box[0] + box[2]), 0.5 * float(box[1] + box[3]))
        last = self._last.get(tid)
        result: CropLandmarks | None = None
        if last is not None and 0.0 <= t - last.t <= s.max_age_s:
            dx, dy = centre[0] - last.box_centre[0], centre[1] - last.box_centre[1]
            if math.hypot(dx, dy) <= s.max_shift * last.roi.side:
                roi = Roi(last.roi.cx + dx, last.roi.cy + dy, last.roi.side, last.roi.angle)
                tracked = self._backend.run_roi(image, roi)
                self.tracked_runs += 1
                if tracked.presence >= s.min_presence:
                    result = tracked
        if result is None:
            result = self._backend.estimate_one(image, box)
            self.box_runs += 1
        if result.presence >= s.min_presence:
            self._last[tid] = _LastPose(
                t, result.alignment_roi(self._backend.settings.alignment_scale), centre
            )
        else:
            self._last.pop(tid, None)
        return result

    def prune(self, live_track_ids: Iterable[int]) -> None:
        live = set(live_track_ids)
        for tid in [tid for tid in self._last if tid not in live]:
            del self._last[tid]
