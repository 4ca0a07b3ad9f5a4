"""Two person detectors run on the same image, their boxes merged: each finds people the other misses."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import nms
from gaitwatch.tracking.detector import PersonDetector
from gaitwatch.tracking.types import Detections


class UnionDetector:
    """``PersonDetector`` returning the union of several detectors' boxes after non-maximum suppression.

    HOG finds far, upright walkers cheaply; BlazePose finds near, seated, bent and lying people. A person both
    find is kept once: the better-scored box wins where two overlap by more than ``nms_iou`` (lower merges
    two people side by side into one; higher keeps both detectors' boxes of one person, which the tracker
    would birth as two tracks). Thread-safe when every part is.
    """

    def __init__(self, parts: list[PersonDetector], nms_iou: float = 0.4) -> None:
        if not parts:
            raise ValueError("UnionDetector needs at least one detector")
        if not (0.0 < nms_iou <= 1.0):
            raise ValueError(f"UnionDetector.nms_iou must be in (0, 1]; got {nms_iou}")
        self.parts = list(parts)
        self.nms_iou = nms_iou

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        found = [part.detect(image) for part in self.parts]
        xyxy = np.concatenate([f.xyxy for f in found])
        score = np.concatenate([f.score for f in found])
        kept = nms(xyxy, score, self.nms_iou)
        return Detections(np.ascontiguousarray(xyxy[kept]), np.ascontiguousarray(score[kept]))
