"""Contracts of the pose stage: keypoints of tracked people, column-wise numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.keypoints import NUM_LANDMARKS


@dataclass(frozen=True, slots=True)
class Poses:
    """BlazePose landmarks for some tracked people in one frame.

    ``keypoints`` (N, 33, 3): x and y in pixels of the full frame, then per-landmark visibility in [0, 1].
    ``world`` (N, 33, 3): metres, origin between the hips, from the model's world landmarks (x right, y down,
    z towards the camera as the model defines them). ``presence`` (N,): the model's probability that the crop
    holds a person; the pipeline drops rows below its configured floor before anything downstream sees them.
    """

    track_ids: NDArray[np.int64]
    keypoints: NDArray[np.float32]
    world: NDArray[np.float32]
    presence: NDArray[np.float32]

    def __post_init__(self) -> None:
        n = self.track_ids.shape[0]
        if self.track_ids.shape != (n,):
            raise ValueError(f"Poses.track_ids must be 1-D; got {self.track_ids.shape}")
        for name in ("keypoints", "world"):
            arr = getattr(self, name)
            if arr.shape != (n, NUM_LANDMARKS, 3):
                raise ValueError(f"Poses.{name} must have shape ({n}, {NUM_LANDMARKS}, 3); got {arr.shape}")
            if arr.dtype != np.float32:
                raise ValueError(f"Poses.{name} must be float32; got {arr.dtype}")
        if self.presence.shape != (n,):
            raise ValueError(f"Poses.presence must have shape ({n},); got {self.presence.shape}")

    @staticmethod
    def empty() -> Poses:
        return Poses(
            np.zeros(0, dtype=np.int64),
            np.zeros((0, NUM_LANDMARKS, 3), dtype=np.float32),
            np.zeros((0, NUM_LANDMARKS, 3), dtype=np.float32),
            np.zeros(0, dtype=np.float32),
        )

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    def select(self, mask: NDArray[np.bool_]) -> Poses:
        return Poses(self.track_ids[mask], self.keypoints[mask], self.world[mask], self.presence[mask])
