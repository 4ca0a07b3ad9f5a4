"""Person boxes from the BlazePose landmark model on the detector's own body-aligned crop, MediaPipe's two-stage way.

MediaPipe Pose runs its person detector once and then the landmark model on an ROI centred on the detector's
hip keypoint, turned along its body axis and sized from its body circle. We do the same for every person the
BlazePose person detector finds: the landmark model's presence score rejects what is not a person (posters,
coats, two people taken as one), and its landmarks give a tight box whatever the posture. The detector's own
box is only a rectangle around the body circle, which for a seated person reaches above the head and short of
the feet; on the shared photos the landmark box raised the recall at IoU 0.5 of seated, crouching and lying
people from 0.38 to 0.54 (full model) and cut the boxes reported from 51 to 35 (``bench/detect_photos.py``).
Cost: one landmark pass per detected person (about 11 ms with the full model, 9 ms with the lite one).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from annotated_types import Interval
from numpy.typing import NDArray

from gaitwatch.pose.blazepose import BlazePoseBackend
from gaitwatch.pose.roi import DEFAULT_ROI_SCALE, Roi, box_from_keypoints
from gaitwatch.tracking.blazepose_detector import BlazePosePersonDetector, BodyAxisDetections
from gaitwatch.tracking.boxes import nms
from gaitwatch.tracking.types import Detections


@dataclass(frozen=True, slots=True)
class LandmarkRefinementSettings:
    """Knobs of :class:`LandmarkRefinedDetector`.

    min_presence:
        Landmark presence a detected person needs to be kept. The pose stage drops crops below its own
        ``pose.min_presence`` (0.5) anyway, so keeping people below it only costs tracks that never get a pose.
    roi_scale:
        Side of the aligned crop in diameters of the detector's body circle; MediaPipe's 1.25.
    nms_iou:
        Two refined boxes overlapping more than this are one person found twice (in two tiles, or as its
        upper body and its whole body); the better-scored one stays.
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    min_presence: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.5
    roi_scale: float = DEFAULT_ROI_SCALE
    nms_iou: float = 0.5

    def __post_init__(self) -> None:
        if not (0.0 <= self.min_presence <= 1.0):
            raise ValueError(f"LandmarkRefinementSettings.min_presence must be in [0, 1]; got {self.min_presence}")
        if not (math.isfinite(self.roi_scale) and 0.5 <= self.roi_scale <= 4.0):
            raise ValueError(f"LandmarkRefinementSettings.roi_scale must be in [0.5, 4]; got {self.roi_scale}")
        if not (0.0 < self.nms_iou <= 1.0):
            raise ValueError(f"LandmarkRefinementSettings.nms_iou must be in (0, 1]; got {self.nms_iou}")


def aligned_roi(found: BodyAxisDetections, index: int, scale: float) -> Roi:
    """The crop MediaPipe's landmark model expects for detection ``index``: centred on the hips, turned upright
    along the body axis, side ``2 * radius * scale``."""
    cx, cy = (float(v) for v in found.hip_centre[index])
    side = max(2.0 * float(found.radius[index]) * scale, 1.0)
    return Roi(cx=cx, cy=cy, side=side, angle=float(found.angle[index]))


class LandmarkRefinedDetector:
    """``PersonDetector``: the BlazePose person detector, each find verified and boxed by the landmark model.

    Thread-safe: the detector is, and each calling thread gets its own landmark backend from ``make_backend``
    (a LiteRT interpreter is not thread-safe). The last call's body axes are not kept; use
    :meth:`detect_with_axis` for them.
    """

    def __init__(
        self,
        detector: BlazePosePersonDetector,
        make_backend: Callable[[], BlazePoseBackend],
        settings: LandmarkRefinementSettings | None = None,
    ) -> None:
        self.detector = detector
        self.settings = settings if settings is not None else LandmarkRefinementSettings()
        self._make_backend = make_backend
        self._local = threading.local()
        self._backend()  # a bad model file fails at start-up, not on the first frame

    def _backend(self) -> BlazePoseBackend:
        backend: BlazePoseBackend | None = getattr(self._local, "backend", None)
        if backend is None:
            backend = self._make_backend()
            self._local.backend = backend
        return backend

    def detect_with_axis(self, image: NDArray[np.uint8]) -> BodyAxisDetections:
        """People kept by the landmark model, with landmark boxes scored by presence; axes, hips and radii are the
        detector's."""
        found = self.detector.detect_with_axis(image)
        s = self.settings
        height, width = image.shape[:2]
        backend = self._backend()
        keep: list[int] = []
        boxes: list[NDArray[np.float64]] = []
        presences: list[float] = []
        for i in range(len(found.detections)):
            landmarks = backend.run_roi(image, aligned_roi(found, i, s.roi_scale))
            if landmarks.presence < s.min_presence:
                continue
            box = box_from_keypoints(landmarks.keypoints.astype(np.float64))
            keep.append(i)
            boxes.append(box if box is not None else found.detections.xyxy[i])
            presences.append(landmarks.presence)
        if not keep:
            return BodyAxisDetections(Detections.empty(), np.zeros(0), np.zeros((0, 2)), np.zeros(0))
        xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, float(width))
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, float(height))
        idx = np.asarray(keep, dtype=np.int64)
        # Scored by presence, like the pipeline's motion-recovered people: the landmark model has the last word on
        # whether this is a person, and the tracker's score thresholds then mean the same for both sources.
        score = np.asarray(presences, dtype=np.float64)
        kept = nms(xyxy, score, s.nms_iou)
        rows = idx[kept]
        return BodyAxisDetections(
            detections=Detections(np.ascontiguousarray(xyxy[kept]), np.ascontiguousarray(score[kept])),
            angle=np.ascontiguousarray(found.angle[rows]),
            hip_centre=np.ascontiguousarray(found.hip_centre[rows]),
            radius=np.ascontiguousarray(found.radius[rows]),
        )

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        return self.detect_with_axis(image).detections
