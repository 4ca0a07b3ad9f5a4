"""OpenCV's built-in HOG + linear-SVM people detector (Dalal & Triggs 2005) behind ``PersonDetector``.

No weights to download and no extra dependency, so it is the default; it misses seated and lying people and
fires on some upright objects, which the pose stage's presence score rejects downstream. Sites with a CNN
person detector use ``OnnxPersonDetector`` instead.

Needs an OpenCV build that still has ``cv2.HOGDescriptor``: OpenCV 5 moved it out of the main wheel, so the
project depends on ``opencv-contrib-python-headless``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import cv2
import numpy as np
from annotated_types import Interval, MultipleOf
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import nms
from gaitwatch.tracking.types import Detections

# The default people detector scores a 64x128 window (the INRIA training window), in which the person stands
# centred with a margin around them; 64x128 is therefore also the smallest person box (before upscaling) it
# can report.
_WINDOW = (64, 128)
# Slope of the logistic that turns an SVM margin into a score (see ``margin_to_score``).
_MARGIN_GAIN = 2.0


def margin_to_score(margin: NDArray[np.float64]) -> NDArray[np.float64]:
    """Map the SVM margin (signed distance to the hyperplane) to a score in [0, 1].

    ``score = 1 / (1 + exp(-2 * margin))``: margin 0 (OpenCV's own decision boundary) maps to 0.5,
    +0.5 to 0.73, +1 to 0.88, +1.5 to 0.95 and -0.5 to 0.27. It is monotonic, so thresholds on the score are
    thresholds on the margin. On vtest.avi (PETS09-S2L1, every 5th frame, against Faster R-CNN boxes at
    IoU 0.5) the default settings with pyramid step 1.2 gave recall/precision 0.82/0.68 at score >= 0.5,
    0.80/0.79 at >= 0.62 and 0.77/0.90 at >= 0.73: scores around 0.6-0.7 split confident from doubtful HOG
    detections. A convenience scale, not a calibrated probability.
    """
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-_MARGIN_GAIN * margin))
    return out


@dataclass(frozen=True, slots=True)
class HogSettings:
    """Knobs of the HOG people detector; the defaults suit 768x576 ward/overview cameras.

    upscale:
        Factor the frame is enlarged by before detection. The detector window is 64x128 with the person
        ~100 px tall inside it, so at 1.0 nobody shorter than ~100 px is found; 1.3 reaches ~75 px tall
        people. Cost grows with the square (1.3 costs ~1.8x of 1.0). Lower it where people look large.
    hit_threshold:
        SVM margin below which OpenCV drops a window. Lowering it below 0 returns doubtful windows (score
        < 0.5) that a ByteTrack-style second association round can still use, at more false positives.
    win_stride:
        Step in pixels (of the upscaled image) between tested windows; a multiple of 8. 8 is the finest
        useful step; 16 is ~3-4x faster but misses people between grid positions.
    scale:
        Pyramid factor between tested person sizes. 1.05 finds every size but costs ~3x of 1.2. On vtest.avi
        (recall per frame against Faster R-CNN boxes, IoU > 0.4, and time per detection, one thread):
        1.2 0.871 / 99 ms, 1.25 0.857 / 70 ms, 1.3 0.848 / 64 ms, 1.35 0.841 / 62 ms; 1.25 is the knee, and
        through the whole pipeline it posed as many people as 1.2 (trackers and pose boxes fill the gap).
    min_score:
        Detections below this score (``margin_to_score``) are dropped before NMS. 0.5 = margin 0 keeps
        everything OpenCV reports; raising it trades recall for precision.
    nms_iou:
        IoU above which a weaker overlapping window is suppressed. Lower merges people walking side by side;
        higher leaves duplicate boxes on one person (which the tracker then births as a second track).
    box_shrink_x, box_shrink_y:
        Fraction of the window's width / height removed on each side to turn the 64x128 detection window
        (which holds the person with a margin) into a tight person box like a CNN detector or a pose crop
        expects.
    grayscale:
        Compute the gradients on the grey image instead of on each colour channel (OpenCV keeps the strongest
        channel's gradient per pixel). On vtest.avi (every 5th frame, against Faster R-CNN boxes at IoU 0.5)
        grey takes 0.88x the time of colour at the same recall (0.823) but lower precision (0.640 vs 0.671);
        through the whole pipeline the false boxes cost in pose crops what grey saved in HOG (CPU per frame
        1.01x of colour, `bench/levers.py`), so colour stays the default.
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    upscale: Annotated[float, Interval(ge=0.25, le=4.0)] = 1.3
    hit_threshold: Annotated[float, Interval(ge=-10.0, le=10.0)] = 0.0
    win_stride: Annotated[int, Interval(ge=8, le=64), MultipleOf(8)] = 8
    scale: Annotated[float, Interval(gt=1.0, le=2.0)] = 1.25
    min_score: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.5
    nms_iou: Annotated[float, Interval(gt=0.0, le=1.0)] = 0.3
    box_shrink_x: float = 0.18
    box_shrink_y: float = 0.1
    grayscale: bool = False

    def __post_init__(self) -> None:
        if not (0.25 <= self.upscale <= 4.0):
            raise ValueError(f"HogSettings.upscale must be in [0.25, 4]; got {self.upscale}")
        if self.win_stride <= 0 or self.win_stride % 8 != 0:
            raise ValueError(f"HogSettings.win_stride must be a positive multiple of 8; got {self.win_stride}")
        if not (1.0 < self.scale <= 2.0):
            raise ValueError(f"HogSettings.scale must be in (1, 2]; got {self.scale}")
        if not (0.0 <= self.min_score <= 1.0):
            raise ValueError(f"HogSettings.min_score must be in [0, 1]; got {self.min_score}")
        if not (0.0 < self.nms_iou <= 1.0):
            raise ValueError(f"HogSettings.nms_iou must be in (0, 1]; got {self.nms_iou}")
        for name in ("box_shrink_x", "box_shrink_y"):
            value = getattr(self, name)
            if not (0.0 <= value < 0.5):
                raise ValueError(f"HogSettings.{name} must be in [0, 0.5); got {value}")
        if not math.isfinite(self.hit_threshold):
            raise ValueError(f"HogSettings.hit_threshold must be finite; got {self.hit_threshold}")

    def smallest_window(self) -> tuple[int, int]:
        """Width and height in frame pixels of the smallest window tested (64x128 before upscaling): no region
        smaller than this can hold a person the detector finds."""
        return math.ceil(_WINDOW[0] / self.upscale), math.ceil(_WINDOW[1] / self.upscale)


class HogPersonDetector:
    """``PersonDetector`` using ``cv2.HOGDescriptor_getDefaultPeopleDetector`` (upright, walking people).

    Safe to call from several threads at once: ``detectMultiScale`` is a const method that keeps its working
    buffers per call, and ``detect`` keeps no state of its own. OpenCV parallelises each call over
    ``cv2.setNumThreads`` threads, which the daemon sets deliberately.
    """

    def __init__(self, settings: HogSettings | None = None) -> None:
        self.settings = settings if settings is not None else HogSettings()
        if not hasattr(cv2, "HOGDescriptor"):
            raise RuntimeError(
                "this OpenCV build has no HOGDescriptor (OpenCV 5 moved it to the contrib wheel); "
                "install opencv-contrib-python-headless instead of opencv-python-headless"
            )
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"HOG detector expects a BGR uint8 HxWx3 image; got {image.dtype} {image.shape}")
        s = self.settings
        height, width = image.shape[:2]
        work = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8) if s.grayscale else image
        if s.upscale != 1.0:
            work = np.asarray(
                cv2.resize(work, None, fx=s.upscale, fy=s.upscale, interpolation=cv2.INTER_LINEAR), dtype=np.uint8
            )
        if work.shape[0] < _WINDOW[1] or work.shape[1] < _WINDOW[0]:
            return Detections.empty()
        rects, margins = self._hog.detectMultiScale(
            work,
            hitThreshold=s.hit_threshold,
            winStride=(s.win_stride, s.win_stride),
            padding=(0, 0),
            scale=s.scale,
            groupThreshold=0,  # raw windows: our NMS keeps each window's own margin as its score
        )
        rect = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / s.upscale
        score = margin_to_score(np.asarray(margins, dtype=np.float64).reshape(-1))
        keep = score >= s.min_score
        rect, score = rect[keep], score[keep]
        if rect.shape[0] == 0:
            return Detections.empty()
        x, y, w, h = rect[:, 0], rect[:, 1], rect[:, 2], rect[:, 3]
        xyxy = np.stack(
            [
                x + s.box_shrink_x * w,
                y + s.box_shrink_y * h,
                x + (1.0 - s.box_shrink_x) * w,
                y + (1.0 - s.box_shrink_y) * h,
            ],
            axis=1,
        )
        # The pyramid can place a window partly outside the frame at the border; clip to the frame.
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, float(width))
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, float(height))
        kept = nms(xyxy, score, s.nms_iou)
        return Detections(np.ascontiguousarray(xyxy[kept]), np.ascontiguousarray(score[kept]))
