"""Scoring a person detector's boxes against reference boxes: recall and precision, overall and by group.

Pure and synchronous (``gaitwatch eval-detect`` feeds it; tests call it directly). Each frame's predicted boxes
are matched one-to-one to its reference boxes by maximum total IoU (Hungarian), and a pair counts only at IoU
>= the threshold. Reference boxes carry groups (their height band, their posture): recall of a group is the
share of its reference boxes matched. Precision of a group needs every predicted box attributed to a group:
a matched box belongs to its reference box's group; an unmatched (false) box to the height band of its own
height, and to the posture of the reference box it overlaps most (IoU > ``FALSE_BOX_MIN_IOU``; a false box
overlapping no reference person has no posture and counts only in the overall precision).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from gaitwatch.tracking.boxes import iou_matrix

FloatArray = NDArray[np.float64]

HEIGHT_BANDS = ("<75", "75-150", ">=150")
UPRIGHT, NON_UPRIGHT, UNKNOWN_POSTURE = "upright", "non_upright", "unknown"
POSTURES = (UPRIGHT, NON_UPRIGHT, UNKNOWN_POSTURE)
# A false box this close to a reference person is a poor box for that person (wrong size or shifted), so it
# counts against the precision of that person's posture.
FALSE_BOX_MIN_IOU = 0.1


def height_band(height_px: float) -> str:
    """The reference height band of a box ``height_px`` tall: far (<75), middle, near (>=150 px)."""
    if height_px < 75.0:
        return HEIGHT_BANDS[0]
    return HEIGHT_BANDS[1] if height_px < 150.0 else HEIGHT_BANDS[2]


def match(predicted: FloatArray, reference: FloatArray, iou_threshold: float) -> tuple[NDArray[np.intp], ...]:
    """One-to-one matches ``(predicted_rows, reference_rows)`` with IoU >= ``iou_threshold``, chosen to
    maximise the total IoU (so a loose box does not steal a person another box fits better)."""
    if not (0.0 < iou_threshold <= 1.0):
        raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
    if len(predicted) == 0 or len(reference) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    overlap = iou_matrix(predicted, reference)
    rows, cols = linear_sum_assignment(-overlap)
    keep = overlap[rows, cols] >= iou_threshold
    return rows[keep].astype(np.intp), cols[keep].astype(np.intp)


# COCO keypoint indices (17-point skeleton) used for posture.
_SHOULDERS, _HIPS, _KNEES, _ANKLES = (5, 6), (11, 12), (13, 14), (15, 16)


def posture_from_coco_keypoints(keypoints: Sequence[float] | NDArray[np.floating]) -> str:
    """``upright`` / ``non_upright`` / ``unknown`` from one COCO annotation's 17 keypoints (x, y, v triples).

    Upright = the trunk (mid-hip to mid-shoulder) within 30 degrees of vertical with the shoulders above the
    hips, the thighs (where knees are labelled) hanging down (vertical drop >= 60% of their length: a seated
    person's thighs are near horizontal), and the feet (where ankles are labelled) at least 0.8 trunk lengths
    below the hips (a standing person's are ~1.5; a crouching or floor-sitting person's sit near the hips).
    Without labelled shoulders and hips there is no trunk to judge: ``unknown``.
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
    if kp.shape[0] != 17:
        raise ValueError(f"COCO person keypoints must be 17 (x, y, v) triples; got {kp.shape[0]}")
    seen = kp[:, 2] > 0

    def mid(indices: tuple[int, int]) -> FloatArray | None:
        rows = [i for i in indices if seen[i]]
        return kp[rows, :2].mean(axis=0) if rows else None

    shoulders, hips = mid(_SHOULDERS), mid(_HIPS)
    if shoulders is None or hips is None:
        return UNKNOWN_POSTURE
    trunk = shoulders - hips  # image y grows downwards: upright trunks have trunk[1] < 0
    length = float(np.hypot(*trunk))
    if length <= 0.0 or -trunk[1] < math.cos(math.radians(30.0)) * length:
        return NON_UPRIGHT
    knees, ankles = mid(_KNEES), mid(_ANKLES)
    if knees is not None:
        thigh = knees - hips
        if thigh[1] < 0.6 * float(np.hypot(*thigh)):
            return NON_UPRIGHT
    if ankles is not None and ankles[1] - hips[1] < 0.8 * length:
        return NON_UPRIGHT
    return UPRIGHT


@dataclass(slots=True)
class _Counts:
    reference: int = 0
    matched: int = 0
    predicted: int = 0  # predicted boxes attributed to this group (matched or not)
    true_predicted: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "recall": self.matched / self.reference if self.reference else math.nan,
            "precision": self.true_predicted / self.predicted if self.predicted else math.nan,
            "n": self.reference,
        }


@dataclass(slots=True)
class DetectionScore:
    """Running tally at one IoU threshold; ``add`` one frame (or image) at a time."""

    iou_threshold: float
    overall: _Counts = field(default_factory=_Counts)
    by_height: dict[str, _Counts] = field(default_factory=lambda: {band: _Counts() for band in HEIGHT_BANDS})
    by_posture: dict[str, _Counts] = field(default_factory=dict)

    def add(self, predicted: FloatArray, reference: FloatArray, postures: Sequence[str] | None = None) -> None:
        """Score one frame: ``predicted`` and ``reference`` boxes (N, 4 xyxy pixels) and, optionally, one posture
        label per reference box."""
        predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, 4)
        reference = np.asarray(reference, dtype=np.float64).reshape(-1, 4)
        if postures is not None and len(postures) != len(reference):
            raise ValueError(f"{len(postures)} posture labels for {len(reference)} reference boxes")
        p_rows, r_rows = match(predicted, reference, self.iou_threshold)
        matched_ref = np.zeros(len(reference), dtype=bool)
        matched_ref[r_rows] = True
        matched_pred = np.zeros(len(predicted), dtype=bool)
        matched_pred[p_rows] = True
        ref_of_pred = np.full(len(predicted), -1, dtype=np.intp)
        ref_of_pred[p_rows] = r_rows

        self.overall.reference += len(reference)
        self.overall.matched += int(matched_ref.sum())
        self.overall.predicted += len(predicted)
        self.overall.true_predicted += int(matched_pred.sum())

        ref_bands = [height_band(h) for h in reference[:, 3] - reference[:, 1]]
        for i, band in enumerate(ref_bands):
            self.by_height[band].reference += 1
            self.by_height[band].matched += int(matched_ref[i])
        for j in range(len(predicted)):
            band = ref_bands[ref_of_pred[j]] if matched_pred[j] else height_band(predicted[j, 3] - predicted[j, 1])
            self.by_height[band].predicted += 1
            self.by_height[band].true_predicted += int(matched_pred[j])

        if postures is None:
            return
        for i, posture in enumerate(postures):
            counts = self.by_posture.setdefault(posture, _Counts())
            counts.reference += 1
            counts.matched += int(matched_ref[i])
        overlap = iou_matrix(predicted, reference) if len(predicted) and len(reference) else None
        for j in range(len(predicted)):
            if matched_pred[j]:
                owner = int(ref_of_pred[j])
            elif overlap is not None and float(overlap[j].max()) > FALSE_BOX_MIN_IOU:
                owner = int(np.argmax(overlap[j]))
            else:
                continue
            counts = self.by_posture.setdefault(postures[owner], _Counts())
            counts.predicted += 1
            counts.true_predicted += int(matched_pred[j])

    @property
    def recall(self) -> float:
        return float(self.overall.as_dict()["recall"])

    @property
    def precision(self) -> float:
        return float(self.overall.as_dict()["precision"])

    def as_dict(self) -> dict[str, Any]:
        """``recall``, ``precision``, ``n`` (reference boxes), ``predicted`` and ``by_height`` / ``by_posture``
        (each ``{name: {"recall", "precision", "n"}}``; NaN where a group has no boxes)."""
        return {
            "recall": self.recall,
            "precision": self.precision,
            "n": self.overall.reference,
            "predicted": self.overall.predicted,
            "by_height": {name: c.as_dict() for name, c in self.by_height.items()},
            "by_posture": {name: c.as_dict() for name, c in sorted(self.by_posture.items())},
        }


def score_all(thresholds: Iterable[float]) -> dict[float, DetectionScore]:
    """One tally per IoU threshold."""
    return {float(t): DetectionScore(float(t)) for t in thresholds}


def rotate_boxes_90(xyxy: FloatArray, image_height: int) -> FloatArray:
    """Boxes of an image turned 90 degrees clockwise (``cv2.ROTATE_90_CLOCKWISE``): a point (x, y) of an image
    ``image_height`` tall goes to (image_height - y, x) in continuous pixel coordinates."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.stack([image_height - b[:, 3], b[:, 0], image_height - b[:, 1], b[:, 2]], axis=1)
