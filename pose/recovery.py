"""Motion-verified recovery: people the detector missed, found by the pose model in regions that moved.

A person detector misses people (HOG: people close to the camera, bent over, half out of view), but a person
who comes into a fixed camera's view moves, and the search-region planner already knows where the image
changed since the last detection. A moving region that no detection and no posed track explains gets one pose
crop; when the pose model's presence score says the crop holds a person, the box spanned by the landmarks
becomes a detection for the tracker. Presence rejects crops of moving background (a door, a curtain, a
shadow), so the cost is bounded by a per-frame budget of crops and the gain is people, not false boxes.

Pure and synchronous: the caller runs the pose model (on its inference thread) between
``recovery_candidates`` and ``recovered_detections``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from annotated_types import Interval
from numpy.typing import NDArray

from gaitwatch.pose.roi import box_from_keypoints
from gaitwatch.pose.types import Poses
from gaitwatch.tracking.boxes import area, covered_share_matrix, iou_matrix
from gaitwatch.tracking.search_regions import merge_overlapping
from gaitwatch.tracking.types import Detections

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    """Knobs of motion-verified recovery.

    crops_per_frame:
        At most this many pose crops per detection (0 turns recovery off): the largest unexplained moving
        regions first. Each crop costs one pose-model call (~10-17 ms); a ward room rarely has more than one
        or two newcomers at once.
    min_height:
        Smallest moving region worth a crop, as a fraction of the frame's height. Below ~5% of the frame a
        person spans too few pixels for the pose model's landmarks (it was trained on people filling its
        256-pixel crop), and small blobs are mostly moving limbs of people already known, or noise.
    max_explained:
        A moving region counts as explained when a detection or a posed track covers more than this share of
        its area: the change that a known person's own movement made. Lower sends fewer crops to regions
        next to known people, but a newcomer who walks up beside someone is then skipped.
    join_margin:
        Moving blobs closer than this fraction of their height are joined into one region before cropping
        (one person's head, arms and legs change in separate blobs when the trunk stays still).
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    crops_per_frame: Annotated[int, Interval(ge=0, le=16)] = 2
    min_height: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.08
    max_explained: float = 0.5
    join_margin: float = 0.15

    def __post_init__(self) -> None:
        if not (0 <= self.crops_per_frame <= 16):
            raise ValueError(f"RecoverySettings.crops_per_frame must be in [0, 16]; got {self.crops_per_frame}")
        for name in ("min_height", "max_explained", "join_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"RecoverySettings.{name} must be in [0, 1]; got {value}")


def recovery_candidates(
    motion: FloatArray, explained: FloatArray, frame_height: int, settings: RecoverySettings
) -> FloatArray:
    """The moving regions (xyxy, frame pixels) to send to the pose model, largest first, at most
    ``settings.crops_per_frame``.

    ``motion``: the changed blobs since the last detection (N, 4); ``explained``: boxes of people already known
    this frame (detections and posed tracks, M, 4).
    """
    if settings.crops_per_frame == 0 or len(motion) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    boxes = np.asarray(motion, dtype=np.float64).reshape(-1, 4)
    pad = settings.join_margin * (boxes[:, 3] - boxes[:, 1])
    grown = boxes + np.stack([-pad, -pad, pad, pad], axis=1)
    # Grown boxes merge; shrink the merged box back by the margin of the blobs it holds (not exactly, but the
    # pose crop is 1.25x the box anyway and a slightly loose region costs nothing).
    regions = merge_overlapping(grown)
    regions = regions[(regions[:, 3] - regions[:, 1]) >= settings.min_height * frame_height]
    if len(regions) == 0:
        return regions
    known = np.asarray(explained, dtype=np.float64).reshape(-1, 4)
    if len(known):
        covered = _covered_share(regions, known)
        regions = regions[covered <= settings.max_explained]
    order = np.argsort(-area(regions), kind="stable")
    return np.ascontiguousarray(regions[order[: settings.crops_per_frame]])


def recovered_detections(
    poses: Poses, min_presence: float, min_visibility: float, known: FloatArray, duplicate_iou: float = 0.5
) -> Detections:
    """Detections from the recovery crops' poses: crops with presence >= ``min_presence`` whose landmarks give a
    box (``box_from_keypoints``), scored by presence, and not duplicates (IoU > ``duplicate_iou``) of a known
    person's box or of each other."""
    boxes: list[FloatArray] = []
    scores: list[float] = []
    for keypoints, presence in zip(poses.keypoints, poses.presence, strict=True):
        if float(presence) < min_presence:
            continue
        box = box_from_keypoints(keypoints, min_visibility)
        if box is None:
            continue
        previous = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        others = np.concatenate([np.asarray(known, dtype=np.float64).reshape(-1, 4), previous])
        if len(others) and float(iou_matrix(box[None, :], others).max()) > duplicate_iou:
            continue
        boxes.append(box)
        scores.append(float(presence))
    if not boxes:
        return Detections.empty()
    return Detections(np.asarray(boxes, dtype=np.float64), np.asarray(scores, dtype=np.float64))


def _covered_share(regions: FloatArray, known: FloatArray) -> FloatArray:
    """For each region, the largest share of its area that any one known box covers."""
    share: FloatArray = covered_share_matrix(regions, known).max(axis=1)
    return share


def duplicate_poses(
    keypoints: NDArray[np.floating], age_s: FloatArray, min_visibility: float = 0.5, tolerance: float = 0.1
) -> NDArray[np.bool_]:
    """Rows of ``keypoints`` (N, 33, 3) that pose the same person as a better row: their landmarks seen in both
    agree within ``tolerance`` x the better pose's height (median distance). The better pose sees more landmarks
    (its crop holds the whole body), then belongs to the older track (``age_s``: each row's track age).

    A detector box on part of a person (HOG finds an upper body) starts a second track whose crop holds the
    same person; the pose model then returns the same landmarks for both, fewer of them in the partial crop.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    n = kp.shape[0]
    duplicate = np.zeros(n, dtype=bool)
    seen = (kp[:, :, 2] >= min_visibility).sum(axis=1)
    order = np.lexsort((-np.asarray(age_s, dtype=np.float64), -seen))  # most landmarks first, then oldest
    for a_pos, a in enumerate(order):
        if duplicate[a]:
            continue
        seen_a = kp[a, :, 2] >= min_visibility
        if not seen_a.any():
            continue
        height = float(np.ptp(kp[a, seen_a, 1]))
        for b in order[a_pos + 1 :]:
            both = seen_a & (kp[b, :, 2] >= min_visibility)
            if duplicate[b] or int(both.sum()) < 6 or height <= 0.0:
                continue
            distance = np.median(np.hypot(*(kp[a, both, :2] - kp[b, both, :2]).T))
            if distance < tolerance * height:
                duplicate[b] = True
    return duplicate
