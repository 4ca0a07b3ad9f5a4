"""Two person detectors run on the same image, their boxes merged: each finds people the other misses."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import covered_share_matrix, iou_matrix, longer_side, nms
from gaitwatch.tracking.detector import PersonDetector
from gaitwatch.tracking.types import Detections


class UnionDetector:
    """``PersonDetector`` returning the union of several detectors' boxes after non-maximum suppression.

    HOG finds far, upright walkers cheaply; BlazePose finds near, seated, bent and lying people. A person both
    find is kept once: the better-scored box wins where two overlap by more than ``nms_iou`` (lower merges
    two people side by side into one; higher keeps both detectors' boxes of one person, which the tracker
    would birth as two tracks). A box lying ``contained`` (0.8) or more of its area inside a better-scored box of
    a whole-frame or fallback part is dropped too (a HOG window or a BlazePose find on part of a near person who
    is boxed whole). Thread-safe when every part is.

    ``whole_frame_parts`` run on whole frames only, not on the search regions scanned in between
    (``detect_region``): a detector whose cost per image is fixed (a network pass or several) costs as much on
    each small region as on a frame. On a search region at least ``fallback_min_height`` of the frame's height
    tall (one that may hold a near person: the planner grows a person's box by 0.35 of its height on each side,
    so 0.4 of the frame holds people from about a quarter of the frame up), ``fallback_parts`` run when ``parts``
    found nobody in it. A region is there because something moved or a tracked person is in it, so a tall region
    HOG finds nobody in is where a near seated, bent or lying person may be (a patient sitting still keeps their
    track through HOG's misses), while regions of walkers HOG finds and of far people cost no network pass.

    ``parallel_whole_frame``: on a whole frame, the ``whole_frame_parts`` run on a helper thread beside the caller,
    which runs ``parts`` meanwhile, whenever the helper is free (else the caller runs everything itself). The
    boxes are the same either way; the scan takes the time of its slower half instead of the sum when a core is
    free. A whole-frame scan with BlazePose is the longest job a camera's frame waits for (HOG ~64 ms and
    BlazePose ~90 ms of CPU on 768x576), and a frame that waits longer than the camera's jitter buffer drops the
    next one: with four cameras those scans, not the average load, were what dropped frames.
    """

    def __init__(
        self,
        parts: Sequence[PersonDetector],
        nms_iou: float = 0.4,
        whole_frame_parts: Sequence[PersonDetector] = (),
        fallback_parts: Sequence[PersonDetector] = (),
        contained: float = 0.8,
        fallback_min_height: float = 0.4,
        parallel_whole_frame: bool = False,
    ) -> None:
        if not parts:
            raise ValueError("UnionDetector needs at least one detector that also scans search regions")
        if not (0.0 < nms_iou <= 1.0):
            raise ValueError(f"UnionDetector.nms_iou must be in (0, 1]; got {nms_iou}")
        if not (0.0 < contained <= 1.0):
            raise ValueError(f"UnionDetector.contained must be in (0, 1]; got {contained}")
        if not (0.0 <= fallback_min_height <= 1.0):
            raise ValueError(f"UnionDetector.fallback_min_height must be in [0, 1]; got {fallback_min_height}")
        self.parts = list(parts)
        self.whole_frame_parts = list(whole_frame_parts)
        self.fallback_parts = list(fallback_parts)
        self.nms_iou = nms_iou
        self.contained = contained
        self.fallback_min_height = fallback_min_height
        # Named like the detection threads: its CPU is theirs (the bench's thread roles).
        self._helper = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="detection-whole-frame")
            if parallel_whole_frame and self.whole_frame_parts
            else None
        )
        self._helper_free = threading.Semaphore(1)

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        """All parts on a whole frame (or a still image)."""
        every = self.parts + self.whole_frame_parts
        if self._helper is None or not self._helper_free.acquire(blocking=False):
            return self._merged(every, image)
        future: Future[list[Detections]] | None = None
        try:
            future = self._helper.submit(_detect_all, self.whole_frame_parts, image)
            found = _detect_all(self.parts, image) + future.result()
        finally:
            if future is not None:
                future.exception()  # the helper is free again only once its part has finished (also after an error)
            self._helper_free.release()
        return self._merge(every, found)

    def detect_region(self, crop: NDArray[np.uint8], frame_height: int) -> Detections:
        """A search region's crop: ``parts``, then ``fallback_parts`` where a tall region holds nobody for them."""
        found = self._merged(self.parts, crop)
        if len(found) or not self.fallback_parts or crop.shape[0] < self.fallback_min_height * frame_height:
            return found
        return self._merged(self.fallback_parts, crop)

    def _merged(self, parts: list[PersonDetector], image: NDArray[np.uint8]) -> Detections:
        return self._merge(parts, _detect_all(parts, image))

    def _merge(self, parts: list[PersonDetector], found: list[Detections]) -> Detections:
        """One box per person from what each of ``parts`` found (``found``, in the same order)."""
        xyxy = np.concatenate([f.xyxy for f in found])
        score = np.concatenate([f.score for f in found])
        # Boxes of the whole-frame and fallback parts (the near-people detector) may hold a part-box of their person.
        near = np.concatenate([np.full(len(f), part not in self.parts) for part, f in zip(parts, found, strict=True)])
        kept = nms(xyxy, score, self.nms_iou)
        kept = kept[~_inside_a_better_box(xyxy[kept], score[kept], near[kept].astype(bool), self.contained)]
        return Detections(np.ascontiguousarray(xyxy[kept]), np.ascontiguousarray(score[kept]))


class FrameWideUnion(UnionDetector):
    """A ``UnionDetector`` (``BetweenScansDetector``) whose ``parts`` look at the whole frame on every detection:
    NanoDet, whose one pass over a whole 768x576 frame costs ~40 ms and finds far walkers too. The
    ``whole_frame_parts`` (BlazePose for near, bent and lying people) still run on the planner's whole-frame scans
    only; no fallback parts (NanoDet sees seated people itself).

    The parts' boxes come first. A whole-frame part's box that overlaps a part's box by more than ``nms_iou`` or
    lies ``contained`` or more inside it is the same person: the two boxes are fused, their score-weighted mean
    (NanoDet's box fits the whole person as COCO boxes it; BlazePose's landmark box is the crop the pose model
    finds the person in), with the better of the two scores (both detectors saw someone there: a seated patient
    NanoDet scores 0.37 and BlazePose 0.9 can start a track). Any other whole-frame-part box adds a person the
    parts missed.

    A whole-frame-part box that also holds another person of the parts (``_holds_another_person``: one standing
    behind or beside the matched one) spans both: it lends its score but not its geometry. Averaged in, it dragged
    the matched person's box towards the other one, and the tracker gave that box to the other person's track (on
    vtest two walkers crossing, one in front of the other, lost the hidden one's track for 2 s).
    """

    def detect_between_scans(self, image: NDArray[np.uint8]) -> Detections:
        return self._merged(self.parts, image)

    def _merge(self, parts: list[PersonDetector], found: list[Detections]) -> Detections:
        first = [f for part, f in zip(parts, found, strict=True) if part in self.parts]
        extra = [f for part, f in zip(parts, found, strict=True) if part not in self.parts]
        primary = super()._merge(self.parts, first)
        if not extra:
            return primary
        added = super()._merge([p for p in parts if p not in self.parts], extra)
        xyxy, score = primary.xyxy.copy(), primary.score.copy()
        overlap = iou_matrix(added.xyxy, primary.xyxy)
        same = (overlap > self.nms_iou) | (covered_share_matrix(added.xyxy, primary.xyxy) >= self.contained)
        for row in np.flatnonzero(same.any(axis=1)):
            match = int(np.argmax(np.where(same[row], overlap[row], -1.0)))
            if not _holds_another_person(added.xyxy[row], primary.xyxy, same[row], match, self.contained):
                weights = np.array([primary.score[match], added.score[row]])
                xyxy[match] = weights @ np.stack([primary.xyxy[match], added.xyxy[row]]) / max(weights.sum(), 1e-9)
            score[match] = max(score[match], added.score[row])
        new = ~same.any(axis=1)
        return Detections(
            np.concatenate([xyxy, added.xyxy[new]]).reshape(-1, 4), np.concatenate([score, added.score[new]])
        )


# A part's box inside a whole-frame part's find is a second person, not a part (head, hand, torso) of the matched
# one, when its longer side is at least this share of the find's. Both people of a pair one find spans measure
# 0.56-0.81 on vtest; the part boxes NanoDet puts on a close-up person's limbs 0.10-0.16 on the shared photos.
SECOND_PERSON_MIN_SIDE = 0.5


def _holds_another_person(
    find: NDArray[np.float64], boxes: NDArray[np.float64], same: NDArray[np.bool_], match: int, contained: float
) -> bool:
    """Whether the whole-frame part's box ``find`` holds a person of ``boxes`` (the parts' boxes) besides
    ``boxes[match]``, the one it is fused with: a box it is the same as (``same``) or that lies ``contained`` or more
    inside it, neither nested in the matched box nor around it (a part-box of that person), and person-sized
    (``SECOND_PERSON_MIN_SIDE``)."""
    others = same | (covered_share_matrix(boxes, find[None])[:, 0] >= contained)
    others[match] = False
    matched = boxes[match][None]
    inside, around = covered_share_matrix(boxes, matched)[:, 0], covered_share_matrix(matched, boxes)[0]
    nested = np.maximum(inside, around) >= contained
    others &= ~nested
    others &= longer_side(boxes) >= SECOND_PERSON_MIN_SIDE * float(longer_side(find[None])[0])
    return bool(others.any())


def _detect_all(parts: Sequence[PersonDetector], image: NDArray[np.uint8]) -> list[Detections]:
    return [part.detect(image) for part in parts]


def _inside_a_better_box(
    xyxy: NDArray[np.float64], score: NDArray[np.float64], container: NDArray[np.bool_], contained: float
) -> NDArray[np.bool_]:
    """Boxes lying ``contained`` or more of their area inside a better-scored ``container`` box (one of the near-
    people detector's): a HOG window on a near person's head and shoulders, a BlazePose find on their legs, inside
    the box of the whole person. NMS keeps them (their IoU with the whole box is small) and the tracker would
    birth a second track on the same person. HOG's boxes are no containers: a far walker overlapping a loose HOG
    box stays."""
    n = len(score)
    if n < 2:
        return np.zeros(n, dtype=bool)
    inside = (covered_share_matrix(xyxy, xyxy) >= contained) & (score[None, :] > score[:, None]) & container[None, :]
    dropped: NDArray[np.bool_] = np.asarray(inside.any(axis=1), dtype=bool)
    return dropped
