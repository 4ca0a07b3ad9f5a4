"""Where in a frame the person detector needs to look: the whole frame now and then, in between only where the
image changed since the last detection and around the people already tracked.

A fixed ward camera sees mostly still furniture. Everybody who is already tracked keeps their box from pose
between detections, and a newcomer must move to come into view, so between full-frame scans the detector only
needs the regions that changed since its previous run plus the tracks' own surroundings. On vtest.avi those
regions cover about a third of the frame and the detector's cost per scan falls to ~0.3x of a full frame (HOG's
coarse pyramid levels shrink with the crop too). A periodic full-frame scan still finds people who never moved
since the camera started, and a frame that changed almost everywhere (lights switched on, the camera bumped) is
scanned whole.

Motion is the absolute difference of two downscaled grey frames, so noise and compression artefacts of single
pixels do not count; it is never stored beyond the one previous frame and never leaves the process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import area, nms
from gaitwatch.tracking.detector import PersonDetector, RegionAwareDetector
from gaitwatch.tracking.types import Detections

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SearchRegionSettings:
    """Knobs of ``SearchRegionPlanner``.

    full_frame_interval_s:
        The detector scans the whole frame at least this often; 0 scans the whole frame every time (no
        regions). Raising it saves CPU but finds a person the detector missed while they stood still (or who
        was in view before the camera started) later.
    motion_threshold:
        Grey-level change (0-255, after downscaling) that counts as motion. Lower finds slow, low-contrast
        movement but lets sensor noise and flicker open regions for nothing.
    min_motion_px:
        Smallest changed blob, in pixels of the downscaled motion image (``motion_width`` wide), that opens a
        region. A person the detector can find covers well over a hundred of them; a few changed pixels are
        noise.
    motion_width:
        Width the frame is downscaled to before differencing (aspect kept). Coarser is cheaper and ignores
        pixel noise; a person must still cover a few pixels of it.
    margin:
        Each changed blob and each track box is grown on every side by this fraction of its height (at least
        of ``min_region_h``): a walking person's change covers their body but the detector needs the margin
        around them that its window was trained with, and a person moving only their arms changes less than
        their whole body.
    min_region_w, min_region_h:
        Smallest region in frame pixels: below the detector's smallest person window nothing can be found.
    max_area_fraction:
        When the regions together cover more than this share of the frame, the whole frame is scanned instead
        (one pass is cheaper than many overlapping crops, and a global change such as a light switched on
        hides nothing then).
    """

    full_frame_interval_s: float = 2.0
    motion_threshold: int = 20
    min_motion_px: int = 6
    motion_width: int = 192
    margin: float = 0.35
    min_region_w: int = 64
    min_region_h: int = 128
    max_area_fraction: float = 0.6

    def __post_init__(self) -> None:
        if not (math.isfinite(self.full_frame_interval_s) and self.full_frame_interval_s >= 0.0):
            raise ValueError(
                f"SearchRegionSettings.full_frame_interval_s must be >= 0 seconds; got {self.full_frame_interval_s}"
            )
        if not (1 <= self.motion_threshold <= 255):
            raise ValueError(f"SearchRegionSettings.motion_threshold must be in [1, 255]; got {self.motion_threshold}")
        if self.min_motion_px < 1 or self.motion_width < 16:
            raise ValueError(
                "SearchRegionSettings.min_motion_px must be >= 1 and motion_width >= 16; "
                f"got {self.min_motion_px} and {self.motion_width}"
            )
        if not (0.0 <= self.margin <= 2.0):
            raise ValueError(f"SearchRegionSettings.margin must be in [0, 2]; got {self.margin}")
        if self.min_region_w < 1 or self.min_region_h < 1:
            raise ValueError(
                f"SearchRegionSettings.min_region_w/h must be >= 1; got {self.min_region_w}x{self.min_region_h}"
            )
        if not (0.0 < self.max_area_fraction <= 1.0):
            raise ValueError(f"SearchRegionSettings.max_area_fraction must be in (0, 1]; got {self.max_area_fraction}")


def merge_overlapping(boxes: FloatArray) -> FloatArray:
    """Replace every group of overlapping (or touching) boxes by their common bounding box, until no two boxes
    of the result overlap: the detector then never scans a pixel twice, and a person on the seam of two
    regions lies whole inside the merged one."""
    merged = [row.copy() for row in boxes]
    changed = True
    while changed:
        changed = False
        out: list[FloatArray] = []
        for box in merged:
            for kept in out:
                if box[0] <= kept[2] and kept[0] <= box[2] and box[1] <= kept[3] and kept[1] <= box[3]:
                    kept[:2] = np.minimum(kept[:2], box[:2])
                    kept[2:] = np.maximum(kept[2:], box[2:])
                    changed = True
                    break
            else:
                out.append(box)
        merged = out
    return np.asarray(merged, dtype=np.float64).reshape(-1, 4)


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """One detection's plan: ``regions`` to scan (None = the whole frame) and ``motion``, the changed blobs
    since the previous planned frame (N, 4 xyxy frame pixels, before any margin)."""

    regions: FloatArray | None
    motion: FloatArray


class SearchRegionPlanner:
    """Per camera: decides, for each frame the detector runs on, whether to scan it whole or which regions.

    Holds the previous detection frame (downscaled grey) and the time of the last full-frame scan, so one
    planner serves one camera, and its frames must come in time order from one thread at a time.

    ``phase`` (a fraction of ``full_frame_interval_s``, in [0, 1)) staggers this camera's whole-frame scans against
    the other cameras': the second scan comes ``phase`` of an interval early, and every later one an interval after
    the previous. Cameras started together (every daemon start) would otherwise all scan whole frames on the same
    frames, each scan several times a search-region pass, and their frames would queue behind them at once: on
    the 4-camera bench the aligned scans, not the CPU (1.5 of 2 cores used), made frames drop.
    """

    def __init__(self, settings: SearchRegionSettings | None = None, phase: float = 0.0) -> None:
        if not 0.0 <= phase < 1.0:
            raise ValueError(f"SearchRegionPlanner phase must be in [0, 1) of the full-frame interval; got {phase}")
        self.settings = settings if settings is not None else SearchRegionSettings()
        self._phase = phase
        self._previous: NDArray[np.uint8] | None = None
        self._last_full_t: float | None = None

    def plan(self, t: float, image: NDArray[np.uint8], track_boxes: FloatArray) -> FloatArray | None:
        """Regions (xyxy, frame pixels, non-overlapping) to run the detector on, or None for the whole frame.

        ``t``: the frame's time in seconds; ``track_boxes``: the boxes of the people tracked so far (N, 4).
        """
        return self.plan_with_motion(t, image, track_boxes, keep_motion=False).regions

    def plan_with_motion(
        self, t: float, image: NDArray[np.uint8], track_boxes: FloatArray, *, keep_motion: bool = True
    ) -> SearchPlan:
        """``plan``, and the changed blobs it found (also on whole-frame scans, whenever a previous frame of the
        same size exists), for callers that look at moving regions themselves (motion-verified recovery).
        ``keep_motion=False`` keeps no reference frame when every scan is whole (no motion is wanted then)."""
        s = self.settings
        no_motion = np.zeros((0, 4), dtype=np.float64)
        if s.full_frame_interval_s == 0.0 and not keep_motion:
            return SearchPlan(None, no_motion)  # every scan whole: no reference frame to keep
        height, width = image.shape[:2]
        grey = self._downscaled_grey(image)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            self._last_full_t = t - self._phase * s.full_frame_interval_s
            return SearchPlan(None, no_motion)
        motion = self._motion_boxes(previous, grey, width / grey.shape[1], height / grey.shape[0])
        if (
            s.full_frame_interval_s == 0.0
            or self._last_full_t is None
            or t - self._last_full_t >= s.full_frame_interval_s
            or t < self._last_full_t  # the clock went back (a replay restarted): start over
        ):
            self._last_full_t = t
            return SearchPlan(None, motion)
        regions = self._grow(np.concatenate([motion, track_boxes.reshape(-1, 4)]), width, height)
        if float(np.sum(area(regions))) > s.max_area_fraction * width * height:
            self._last_full_t = t
            return SearchPlan(None, motion)
        return SearchPlan(regions, motion)

    def _downscaled_grey(self, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        height, width = image.shape[:2]
        work_w = min(self.settings.motion_width, width)
        work_h = max(1, round(height * work_w / width))
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        # INTER_AREA averages each block of pixels: sensor noise and codec ringing cancel out.
        return np.asarray(cv2.resize(grey, (work_w, work_h), interpolation=cv2.INTER_AREA), dtype=np.uint8)

    def _motion_boxes(
        self, previous: NDArray[np.uint8], current: NDArray[np.uint8], sx: float, sy: float
    ) -> FloatArray:
        s = self.settings
        changed = (cv2.absdiff(previous, current) > s.motion_threshold).astype(np.uint8)
        # Join the blobs of one person's limbs before counting them.
        joined = cv2.dilate(changed, np.ones((3, 3), dtype=np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        blobs = stats[1:count]
        blobs = blobs[blobs[:, cv2.CC_STAT_AREA] >= s.min_motion_px]
        x = blobs[:, cv2.CC_STAT_LEFT].astype(np.float64)
        y = blobs[:, cv2.CC_STAT_TOP].astype(np.float64)
        w = blobs[:, cv2.CC_STAT_WIDTH].astype(np.float64)
        h = blobs[:, cv2.CC_STAT_HEIGHT].astype(np.float64)
        return np.stack([x * sx, y * sy, (x + w) * sx, (y + h) * sy], axis=1).reshape(-1, 4)

    def _grow(self, boxes: FloatArray, width: int, height: int) -> FloatArray:
        """Grow each box by the margin, to at least the detector's smallest window, clip to the frame, merge."""
        s = self.settings
        if boxes.shape[0] == 0:
            return boxes
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2.0, (boxes[:, 1] + boxes[:, 3]) / 2.0
        pad = s.margin * np.maximum(boxes[:, 3] - boxes[:, 1], s.min_region_h)
        half_w = np.maximum((boxes[:, 2] - boxes[:, 0]) / 2.0 + pad, s.min_region_w / 2.0)
        half_h = np.maximum((boxes[:, 3] - boxes[:, 1]) / 2.0 + pad, s.min_region_h / 2.0)
        grown = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        grown[:, [0, 2]] = np.clip(grown[:, [0, 2]], 0.0, float(width))
        grown[:, [1, 3]] = np.clip(grown[:, [1, 3]], 0.0, float(height))
        return merge_overlapping(np.round(grown))


def detect_in_regions(
    detector: PersonDetector, image: NDArray[np.uint8], regions: FloatArray, nms_iou: float
) -> Detections:
    """Run ``detector`` on each region's crop and return the people in frame coordinates.

    Regions do not overlap (``merge_overlapping``), but a person on the seam of two touching regions can be
    found partly in both: ``nms_iou`` suppresses the weaker of two such boxes. A ``RegionAwareDetector`` scans
    each region with its ``detect_region``.
    """
    boxes: list[FloatArray] = []
    scores: list[FloatArray] = []
    for x0, y0, x1, y1 in regions.astype(np.int64):
        if x1 <= x0 or y1 <= y0:
            continue
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        if isinstance(detector, RegionAwareDetector):
            found = detector.detect_region(crop, image.shape[0])
        else:
            found = detector.detect(crop)
        if len(found.score):
            boxes.append(found.xyxy + np.array([x0, y0, x0, y0], dtype=np.float64))
            scores.append(found.score)
    if not boxes:
        return Detections.empty()
    xyxy, score = np.concatenate(boxes), np.concatenate(scores)
    kept = nms(xyxy, score, nms_iou)
    return Detections(np.ascontiguousarray(xyxy[kept]), np.ascontiguousarray(score[kept]))
