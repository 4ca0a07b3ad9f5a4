"""Contracts between the capture, detection and tracking stages.

Each contract is a frozen, slotted dataclass holding numpy arrays column-wise (one array per field), validated
in ``__post_init__`` so a malformed array fails where it is made, not three stages later.
Times are seconds from ``time.monotonic()`` (or a recording's own clock); never frame counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded image from one camera.

    ``t`` is the capture time in seconds on the pipeline's monotonic clock; ``seq`` counts frames decoded by
    this camera since start-up (gaps in ``seq`` seen by a consumer are frames it never got).
    ``image`` is BGR uint8, HxWx3, as OpenCV decodes it.
    """

    camera: str
    seq: int
    t: float
    image: NDArray[np.uint8]

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"Frame.image must be uint8 HxWx3 (BGR); got {self.image.dtype} {self.image.shape}")
        if not np.isfinite(self.t):
            raise ValueError(f"Frame.t must be finite; got {self.t}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _check_boxes(name: str, xyxy: FloatArray) -> None:
    if xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise ValueError(f"{name}.xyxy must have shape (N, 4); got {xyxy.shape}")
    if xyxy.dtype != np.float64:
        raise ValueError(f"{name}.xyxy must be float64; got {xyxy.dtype}")
    if not np.all(np.isfinite(xyxy)):
        raise ValueError(f"{name}.xyxy holds a non-finite coordinate")
    if np.any(xyxy[:, 2] < xyxy[:, 0]) or np.any(xyxy[:, 3] < xyxy[:, 1]):
        raise ValueError(f"{name}.xyxy holds a box with x2 < x1 or y2 < y1")


@dataclass(frozen=True, slots=True)
class Detections:
    """Person boxes found in one frame: ``xyxy`` (N, 4) pixels, ``score`` (N,) detector confidence in [0, 1].

    Boxes are in the full frame's pixel coordinates, whatever the detector resized internally.
    """

    xyxy: FloatArray
    score: FloatArray

    def __post_init__(self) -> None:
        _check_boxes("Detections", self.xyxy)
        if self.score.shape != (self.xyxy.shape[0],):
            raise ValueError(f"Detections.score must have shape ({self.xyxy.shape[0]},); got {self.score.shape}")

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), dtype=np.float64), np.zeros(0, dtype=np.float64))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def select(self, mask: NDArray[np.bool_]) -> Detections:
        return Detections(self.xyxy[mask], self.score[mask])


class TrackState(IntEnum):
    """Lifecycle of a track: born tentative, confirmed after enough hits, lost while coasting unseen."""

    TENTATIVE = 0
    CONFIRMED = 1
    LOST = 2


@dataclass(frozen=True, slots=True)
class Tracks:
    """The tracker's view after one frame, one row per live track.

    ``ids`` are per-tracker-instance counters (unique within a camera and boot; the daemon prefixes camera and
    boot id in payloads). ``xyxy`` is the filtered box; ``state`` holds ``TrackState`` values; ``age_s`` is
    the time since birth and ``since_update_s`` the time since the track was last matched to an observation.
    """

    ids: IntArray
    xyxy: FloatArray
    state: NDArray[np.int8]
    age_s: FloatArray
    since_update_s: FloatArray

    def __post_init__(self) -> None:
        _check_boxes("Tracks", self.xyxy)
        n = self.xyxy.shape[0]
        for name in ("ids", "state", "age_s", "since_update_s"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"Tracks.{name} must have shape ({n},); got {arr.shape}")

    @staticmethod
    def empty() -> Tracks:
        return Tracks(
            np.zeros(0, dtype=np.int64),
            np.zeros((0, 4), dtype=np.float64),
            np.zeros(0, dtype=np.int8),
            np.zeros(0, dtype=np.float64),
            np.zeros(0, dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def confirmed(self) -> Tracks:
        """The tracks worth spending pose inference on (confirmed and matched recently)."""
        mask = self.state == TrackState.CONFIRMED
        return Tracks(self.ids[mask], self.xyxy[mask], self.state[mask], self.age_s[mask], self.since_update_s[mask])
