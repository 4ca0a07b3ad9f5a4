"""Plain SORT (Bewley et al., "Simple Online and Realtime Tracking", ICIP 2016) re-implemented from the paper.

The baseline that ``gaitwatch eval-mot --tracker sort`` runs, to validate the evaluator against SORT's
published figures and to measure the default tracker's gain. Written from the paper's description (no code
from the GPL reference implementation):

* State ``[u, v, s, r, u', v', s']``: box centre, area and aspect ratio (w/h), with constant velocity for the
  centre and the area; the aspect ratio is constant. One prediction per frame (frame-based, not seconds: this
  is the reference, deliberately unchanged).
* Association: IoU between detections and predicted boxes, Hungarian assignment, pairs below IoU 0.3 rejected.
* A track is reported once it has ``min_hits`` consecutive matches (or during the first ``min_hits`` frames of
  the sequence), only on frames where it was matched, and deleted after ``max_age`` frames without a match.
* Noise: the configuration SORT was published with (measurement noise 1 px^2 on the centre and 10 on
  area/aspect; large initial uncertainty on the unobserved velocities; small process noise on velocities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from filterpy.kalman import KalmanFilter
from numpy.typing import NDArray

from gaitwatch.tracking.assignment import assign
from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.types import Detections, Tracks, TrackState

FloatArray = NDArray[np.float64]

_F = np.eye(7)
_F[0, 4] = _F[1, 5] = _F[2, 6] = 1.0  # one frame of constant velocity for u, v, s
_H = np.eye(4, 7)
_R = np.diag([1.0, 1.0, 10.0, 10.0])
_P0 = np.diag([10.0, 10.0, 10.0, 10.0, 1e4, 1e4, 1e4])
_Q = np.diag([1.0, 1.0, 1.0, 1.0, 1e-2, 1e-2, 1e-4])


def _to_z(xyxy: FloatArray) -> FloatArray:
    w, h = xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]
    return np.array([[xyxy[0] + w / 2.0], [xyxy[1] + h / 2.0], [w * h], [w / h if h > 0 else 0.0]])


def _to_xyxy(x: FloatArray) -> FloatArray:
    area, ratio = float(x[2, 0]), float(x[3, 0])
    w = math.sqrt(area * ratio) if area > 0 and ratio > 0 else float("nan")
    h = area / w if w and math.isfinite(w) else float("nan")
    u, v = float(x[0, 0]), float(x[1, 0])
    return np.array([u - w / 2.0, v - h / 2.0, u + w / 2.0, v + h / 2.0])


@dataclass(frozen=True, slots=True)
class SortSettings:
    """SORT's published configuration; frames, not seconds (it is the unmodified reference).

    max_age: frames a track survives without a match. min_hits: consecutive matches before it is reported.
    iou_threshold: minimum IoU of an accepted match.
    """

    max_age: int = 1
    min_hits: int = 3
    iou_threshold: float = 0.3


class _SortTrack:
    __slots__ = ("birth_t", "filter", "hit_streak", "id", "last_t", "since_update")

    def __init__(self, track_id: int, xyxy: FloatArray, t: float) -> None:
        kf = KalmanFilter(dim_x=7, dim_z=4)
        kf.F, kf.H, kf.R, kf.P, kf.Q = _F.copy(), _H.copy(), _R.copy(), _P0.copy(), _Q.copy()
        kf.x[:4] = _to_z(xyxy)
        self.filter = kf
        self.id = track_id
        self.since_update = 0  # frames since the last match
        self.hit_streak = 0  # consecutive matched frames
        self.birth_t = t
        self.last_t = t

    def predict(self) -> FloatArray:
        x = self.filter.x
        if x[6, 0] + x[2, 0] <= 0:  # the area would become negative: stop shrinking
            x[6, 0] = 0.0
        self.filter.predict()
        if self.since_update > 0:
            self.hit_streak = 0
        self.since_update += 1
        return _to_xyxy(self.filter.x)

    def update(self, xyxy: FloatArray, t: float) -> None:
        self.since_update = 0
        self.hit_streak += 1
        self.last_t = t
        self.filter.update(_to_z(xyxy))


class SortTracker:
    """Frame-by-frame SORT with the ``update(detections, t) -> Tracks`` call of ``Tracker``.

    Every call is one frame (``t`` is only used for the ages reported). Returned rows: every live track;
    ``state`` is CONFIRMED for the tracks SORT would report on this frame, LOST for unmatched ones and
    TENTATIVE for matched ones still short of ``min_hits``. Detection scores are not used (as in SORT).
    """

    def __init__(self, settings: SortSettings | None = None) -> None:
        self.settings = settings if settings is not None else SortSettings()
        self._tracks: list[_SortTrack] = []
        self._frames = 0
        self._next_id = 1

    def update(self, detections: Detections, t: float) -> Tracks:
        s = self.settings
        self._frames += 1
        predicted = [track.predict() for track in self._tracks]
        alive = [i for i, box in enumerate(predicted) if np.all(np.isfinite(box))]
        self._tracks = [self._tracks[i] for i in alive]
        boxes = np.array([predicted[i] for i in alive]).reshape(-1, 4)
        cost = 1.0 - iou_matrix(detections.xyxy, boxes)
        matches, unmatched_dets, _ = assign(cost, 1.0 - s.iou_threshold)
        for di, ti in matches:
            self._tracks[ti].update(detections.xyxy[di], t)
        for di in unmatched_dets:
            self._tracks.append(_SortTrack(self._next_id, detections.xyxy[di], t))
            self._next_id += 1
        self._tracks = [track for track in self._tracks if track.since_update <= s.max_age]
        return self._view(t)

    def _view(self, t: float) -> Tracks:
        s = self.settings
        ids, boxes, states, ages, since = [], [], [], [], []
        for track in self._tracks:
            box = _to_xyxy(track.filter.x)
            if not np.all(np.isfinite(box)):
                continue
            if track.since_update > 0:
                state = TrackState.LOST
            elif track.hit_streak >= s.min_hits or self._frames <= s.min_hits:
                state = TrackState.CONFIRMED
            else:
                state = TrackState.TENTATIVE
            ids.append(track.id)
            # Tracks contract: x2 >= x1; a degenerate prediction is reported as a point, never inverted.
            boxes.append(np.concatenate([np.minimum(box[:2], box[2:]), np.maximum(box[:2], box[2:])]))
            states.append(int(state))
            ages.append(t - track.birth_t)
            since.append(0.0 if track.since_update == 0 else max(t - track.last_t, 1e-9))
        if not ids:
            return Tracks.empty()
        return Tracks(
            ids=np.array(ids, dtype=np.int64),
            xyxy=np.array(boxes, dtype=np.float64),
            state=np.array(states, dtype=np.int8),
            age_s=np.array(ages, dtype=np.float64),
            since_update_s=np.array(since, dtype=np.float64),
        )
