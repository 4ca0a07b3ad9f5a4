"""Kalman + Hungarian multi-person tracker for static ward cameras, with time in seconds.

The daemon drives one ``Tracker`` per camera with three calls, each carrying the frame's capture time ``t``
(seconds, non-decreasing):

* ``update(detections, t)`` on frames where the person detector ran: predict every track to ``t``, associate
  tracks and detections (rounds below), update the matched tracks, start tentative tracks from confident
  unmatched detections, and age the rest.
* ``predict(t)`` on frames without detection: coast every track to ``t``; no association.
* ``correct(ids, xyxy, t)`` with boxes whose identity is already known (derived from each track's pose
  keypoints between detector frames): a Kalman update of exactly those tracks.

Association of one detector frame, from the best motion-only trackers' ideas (re-implemented from the papers):

1. Confident detections (score >= ``high_score``) against CONFIRMED and LOST tracks on the IoU of the
   predicted box, plus OC-SORT's direction-consistency term (``direction_weight``).
2. ByteTrack's second round: doubtful detections (``min_score`` <= score < ``high_score``), often a person
   partly hidden behind another, against the CONFIRMED tracks still unmatched (stricter gate
   ``low_iou_threshold``). They keep tracks alive but never start one.
3. OC-SORT's observation-centric recovery: tracks still unmatched against confident detections left, on the
   IoU of the track's *last observed* box (a track that coasted off in a wrong direction is found again
   where it was last seen).
4. TENTATIVE tracks against the confident detections left.
When a LOST track is matched again, OC-SORT's observation-centric re-update rewinds its filter to the last
observation and replays the gap with virtual observations on the straight line between the two real ones, so
the velocity learnt while coasting blind does not throw the box off after the occlusion.

The Kalman state is BoT-SORT's x, y, w, h (see ``kalman.py``), prediction is dt-aware, there is no camera-motion
compensation (ward cameras do not move), and IDs are per-instance counters.

Lifecycle: a track is born TENTATIVE from an unmatched confident detection, becomes CONFIRMED after
``min_hits`` observations, turns LOST when a detector frame does not match it, returns to CONFIRMED when
matched again, and is deleted once it has gone ``max_age_s`` seconds without an observation. A TENTATIVE
track that a detector frame does not match is deleted at once (one-frame false positives never become tracks).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gaitwatch.tracking.assignment import assign
from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.kalman import BoxKalman, KalmanSettings
from gaitwatch.tracking.types import Detections, Tracks, TrackState

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Times closer than this (seconds) are the same instant: guards the age comparisons against float round-off
# when frame times are sums of 1/fps.
_TIME_EPS = 1e-6
# Observations kept per track for the direction estimate and the re-update replay.
_HISTORY = 64


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """Knobs of the tracker; times in seconds so a configuration survives a change of frame rate.

    min_hits:
        Observations (detections or ``correct`` boxes) needed before a track is CONFIRMED, i.e. before the
        daemon spends pose inference on it. Higher suppresses flickering false detections but delays every
        new person by that many detector frames.
    max_age_s:
        How long a track coasts on its motion model without any observation before it is deleted. Raising it
        keeps IDs through longer occlusions (a person behind a pillar) but hands IDs over when another person
        walks into the coasting box, and keeps ghost boxes alive longer after someone leaves.
    iou_threshold:
        Minimum IoU between a track box and a confident detection for them to be matched (SORT uses 0.3).
        Lower matches fast or jumpy people across larger displacements but allows ID swaps between people
        close together; higher breaks tracks when the detector's box jitters.
    high_score:
        Detections at or above this score are confident: matched first, and allowed to start tracks. The
        scale is the detector's (HOG: ``margin_to_score``). Higher keeps false positives out of the first
        round at the price of treating more real people as doubtful.
    min_score:
        Detections below this are ignored altogether. Between ``min_score`` and ``high_score`` they may only
        extend existing tracks (ByteTrack's second round). Lower rescues more occluded people but lets clutter
        continue a track that should have ended.
    new_track_score:
        Minimum score of an unmatched detection to start a new track. Higher births fewer false tracks but
        delays people whose first detections are weak.
    low_iou_threshold:
        IoU gate of the second (doubtful-detection) round; stricter than ``iou_threshold`` because a doubtful
        box far from the prediction is more likely clutter than the person.
    direction_weight:
        Weight of OC-SORT's direction-consistency term: the cost of a match grows by this much times the
        angle (as a fraction of 180 degrees) between the track's observed heading and the heading towards
        the detection. Helps two people crossing keep their IDs; 0 disables it.
    direction_horizon_s:
        How far back (seconds) the heading is measured between two of the track's observations. Longer is
        steadier against box jitter but slower to follow a turn.
    kalman:
        The motion and noise model (see ``KalmanSettings``).
    """

    min_hits: int = 3
    max_age_s: float = 1.0
    iou_threshold: float = 0.3
    high_score: float = 0.6
    min_score: float = 0.1
    new_track_score: float = 0.7
    low_iou_threshold: float = 0.5
    direction_weight: float = 0.2
    direction_horizon_s: float = 0.1
    kalman: KalmanSettings = field(default_factory=KalmanSettings)

    def __post_init__(self) -> None:
        if self.min_hits < 1:
            raise ValueError(f"TrackerSettings.min_hits must be >= 1; got {self.min_hits}")
        if not (self.max_age_s >= 0.0 and math.isfinite(self.max_age_s)):
            raise ValueError(f"TrackerSettings.max_age_s must be a finite number >= 0; got {self.max_age_s}")
        for name in ("iou_threshold", "low_iou_threshold"):
            value = getattr(self, name)
            if not (0.0 < value <= 1.0):
                raise ValueError(f"TrackerSettings.{name} must be in (0, 1]; got {value}")
        for name in ("high_score", "min_score", "new_track_score"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"TrackerSettings.{name} must be in [0, 1]; got {value}")
        if self.min_score > self.high_score:
            raise ValueError(
                f"TrackerSettings.min_score ({self.min_score}) must not exceed high_score ({self.high_score})"
            )
        if self.direction_weight < 0.0 or self.direction_horizon_s < 0.0:
            raise ValueError("TrackerSettings.direction_weight and direction_horizon_s must be >= 0")


class _Track:
    """One person's private tracker state (mutable; never handed out — ``Tracks`` is the public view)."""

    __slots__ = (
        "birth_t",
        "coast_times",
        "filter",
        "hits",
        "id",
        "last_obs_snapshot",
        "last_obs_t",
        "observations",
        "state",
        "t",
    )

    def __init__(self, track_id: int, xyxy: FloatArray, t: float, settings: TrackerSettings) -> None:
        self.id = track_id
        self.filter = BoxKalman(xyxy, settings.kalman)
        self.t = t  # time the filter's estimate refers to
        self.birth_t = t
        self.last_obs_t = t
        self.observations: deque[tuple[float, FloatArray]] = deque([(t, xyxy.copy())], maxlen=_HISTORY)
        self.last_obs_snapshot = self.filter.snapshot()
        self.coast_times: list[float] = []  # times the filter was advanced to since the last observation
        self.hits = 1
        self.state = TrackState.CONFIRMED if settings.min_hits <= 1 else TrackState.TENTATIVE

    @property
    def last_obs_xyxy(self) -> FloatArray:
        return self.observations[-1][1]

    def predict_to(self, t: float) -> None:
        if t - self.t <= 0.0:
            return
        self.filter.predict(t - self.t)
        self.t = t
        if len(self.coast_times) < 4 * _HISTORY:
            self.coast_times.append(t)

    def heading(self, horizon_s: float) -> FloatArray | None:
        """Unit vector of the centre's motion between an observation ``horizon_s`` ago and the last one."""
        last_t, last = self.observations[-1]
        for obs_t, obs in reversed(self.observations):
            if last_t - obs_t >= horizon_s - _TIME_EPS and obs_t < last_t:
                step = _centre(last) - _centre(obs)
                norm = float(np.hypot(step[0], step[1]))
                # Below 2 % of the height the "motion" is detector jitter, not a heading.
                if norm < 0.02 * max(last[3] - last[1], 1.0):
                    return None
                out: FloatArray = step / norm
                return out
        return None

    def observe(self, xyxy: FloatArray, t: float, min_hits: int, re_update: bool) -> None:
        """Fuse an observation at ``t`` (the filter is already at ``t``)."""
        if re_update and self.coast_times:
            self._replay_gap(xyxy, t)
        self.filter.update(xyxy)
        self.last_obs_t = t
        self.observations.append((t, xyxy.copy()))
        self.last_obs_snapshot = self.filter.snapshot()
        self.coast_times = []
        self.hits += 1
        if self.state == TrackState.LOST or self.hits >= min_hits:
            self.state = TrackState.CONFIRMED

    def _replay_gap(self, xyxy: FloatArray, t: float) -> None:
        """OC-SORT's observation-centric re-update: re-run the unobserved gap on a straight-line path."""
        t0 = self.last_obs_t
        span = t - t0
        if span <= _TIME_EPS:
            return
        start = self.last_obs_xyxy
        self.filter.restore(self.last_obs_snapshot)
        previous = t0
        for ti in self.coast_times:
            if ti >= t - _TIME_EPS:
                break
            self.filter.predict(ti - previous)
            self.filter.update(start + (xyxy - start) * ((ti - t0) / span))
            previous = ti
        self.filter.predict(t - previous)


def _centre(xyxy: FloatArray) -> FloatArray:
    return np.array([0.5 * (xyxy[0] + xyxy[2]), 0.5 * (xyxy[1] + xyxy[3])])


class Tracker:
    """Multi-person tracker for one camera. Not thread-safe; one instance per camera.

    IDs count from 1 per instance (no class-level counter), so two cameras or a restart never share a
    counter; the daemon makes them globally unique by prefixing camera and boot id.
    """

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings if settings is not None else TrackerSettings()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._t = -math.inf

    @property
    def time(self) -> float:
        """Time of the last call (``-inf`` before the first)."""
        return self._t

    def update(self, detections: Detections, t: float) -> Tracks:
        """Advance to ``t`` and associate this detector frame's ``detections`` with the tracks."""
        self._advance(t)
        s = self.settings
        xyxy, score = detections.xyxy, detections.score
        high = np.flatnonzero(score >= s.high_score)
        low = np.flatnonzero((score >= s.min_score) & (score < s.high_score))
        tracks = self._tracks
        active = [i for i, tr in enumerate(tracks) if tr.state != TrackState.TENTATIVE]
        tentative = [i for i, tr in enumerate(tracks) if tr.state == TrackState.TENTATIVE]
        predicted = self._boxes(tracks)
        matched: list[tuple[int, int]] = []

        # 1. confident detections vs confirmed + lost tracks: IoU of the prediction + heading consistency.
        #    The heading term only ranks candidates; the gate stays on IoU alone.
        overlap = iou_matrix(predicted[active], xyxy[high])
        cost = 1.0 - overlap
        if s.direction_weight > 0.0 and cost.size:
            cost = cost + s.direction_weight * self._direction_cost([tracks[i] for i in active], xyxy[high])
        pairs, rest_t, rest_d = self._solve(cost, active, high, math.inf, overlap, s.iou_threshold)
        matched += pairs
        # 2. doubtful detections vs tracks that were being followed (not lost): ByteTrack's second round
        followed = [i for i in rest_t if tracks[i].state == TrackState.CONFIRMED]
        cost = 1.0 - iou_matrix(predicted[followed], xyxy[low])
        pairs, _, _ = self._solve(cost, followed, low, 1.0 - s.low_iou_threshold)
        matched += pairs
        taken = {ti for ti, _ in pairs}
        rest_t = [i for i in rest_t if i not in taken]
        # 3. recovery on the last observed box (OC-SORT's OCR)
        last_boxes = np.array([tracks[i].last_obs_xyxy for i in rest_t]).reshape(-1, 4)
        cost = 1.0 - iou_matrix(last_boxes, xyxy[rest_d])
        pairs, _, rest_d = self._solve(cost, rest_t, rest_d, 1.0 - s.iou_threshold)
        matched += pairs
        # 4. tentative tracks vs the confident detections left
        cost = 1.0 - iou_matrix(predicted[tentative], xyxy[rest_d])
        pairs, _, rest_d = self._solve(cost, tentative, rest_d, 1.0 - s.iou_threshold)
        matched += pairs

        hit = set()
        for ti, di in matched:
            track = tracks[ti]
            track.observe(xyxy[di], t, s.min_hits, re_update=track.state == TrackState.LOST)
            hit.add(ti)
        survivors: list[_Track] = []
        for index, track in enumerate(tracks):
            if index not in hit:
                if track.state == TrackState.TENTATIVE:
                    continue  # never confirmed and not seen again: a flicker, drop it now
                track.state = TrackState.LOST
            survivors.append(track)
        self._tracks = survivors
        for di in rest_d:
            if score[di] >= s.new_track_score:
                self._tracks.append(_Track(self._next_id, xyxy[di].copy(), t, s))
                self._next_id += 1
        self._expire(t)
        return self._view(t)

    def predict(self, t: float) -> Tracks:
        """Coast every track to ``t`` (a frame without detection); only age-based deaths happen."""
        self._advance(t)
        self._expire(t)
        return self._view(t)

    def correct(self, ids: IntArray, xyxy: FloatArray, t: float) -> Tracks:
        """Kalman-update tracks ``ids`` with boxes ``xyxy`` (N, 4) observed at ``t``; unknown ids are ignored.

        Each box counts as a hit (it can confirm a tentative track and revives a LOST one). Use it for boxes
        whose identity is certain, e.g. derived from a track's own pose keypoints.
        """
        if ids.shape != (xyxy.shape[0],) or xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"correct() needs ids (N,) and xyxy (N, 4); got {ids.shape} and {xyxy.shape}")
        if not np.all(np.isfinite(xyxy)):
            raise ValueError("correct() got a non-finite box coordinate")
        self._advance(t)
        by_id = {track.id: track for track in self._tracks}
        for track_id, box in zip(ids.tolist(), xyxy, strict=True):
            track = by_id.get(int(track_id))
            if track is not None:
                re_update = track.state == TrackState.LOST
                track.observe(np.asarray(box, dtype=np.float64), t, self.settings.min_hits, re_update)
        self._expire(t)
        return self._view(t)

    def _direction_cost(self, tracks: list[_Track], det_xyxy: FloatArray) -> FloatArray:
        """Angle (fraction of 180 degrees) between each track's heading and its direction to each detection."""
        out = np.zeros((len(tracks), det_xyxy.shape[0]))
        if not tracks or det_xyxy.shape[0] == 0:
            return out
        centres = np.stack(
            [0.5 * (det_xyxy[:, 0] + det_xyxy[:, 2]), 0.5 * (det_xyxy[:, 1] + det_xyxy[:, 3])], 1
        )
        for row, track in enumerate(tracks):
            heading = track.heading(self.settings.direction_horizon_s)
            if heading is None:
                continue
            step = centres - _centre(track.last_obs_xyxy)
            norm = np.hypot(step[:, 0], step[:, 1])
            cos = np.divide(step @ heading, norm, out=np.ones_like(norm), where=norm > 1e-6)
            out[row] = np.arccos(np.clip(cos, -1.0, 1.0)) / math.pi
        return out

    @staticmethod
    def _solve(
        cost: FloatArray,
        rows: list[int],
        cols: IntArray | list[int],
        max_cost: float,
        overlap: FloatArray | None = None,
        min_overlap: float = 0.0,
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """Assign on ``cost`` (sub-matrix of tracks ``rows`` x detections ``cols``), gated after solving.

        Returns matched (track index, detection index) pairs and the unmatched track and detection indices.
        With ``overlap`` given, pairs whose IoU is below ``min_overlap`` are also rejected after solving.
        """
        col_arr = np.asarray(cols, dtype=np.int64)
        matches, _, _ = assign(cost, max_cost)
        if overlap is not None and len(matches):
            matches = matches[overlap[matches[:, 0], matches[:, 1]] >= min_overlap]
        used_rows = set(matches[:, 0].tolist())
        used_cols = set(matches[:, 1].tolist())
        pairs = [(rows[int(r)], int(col_arr[c])) for r, c in matches]
        free_rows = [rows[r] for r in range(len(rows)) if r not in used_rows]
        free_cols = [int(col_arr[c]) for c in range(len(col_arr)) if c not in used_cols]
        return pairs, free_rows, free_cols

    def _advance(self, t: float) -> None:
        if not math.isfinite(t):
            raise ValueError(f"tracker time must be finite; got {t}")
        if t < self._t - _TIME_EPS:
            raise ValueError(f"tracker time went backwards: {t} < {self._t}")
        self._t = max(self._t, t)
        for track in self._tracks:
            track.predict_to(t)

    def _expire(self, t: float) -> None:
        limit = self.settings.max_age_s + _TIME_EPS
        self._tracks = [track for track in self._tracks if t - track.last_obs_t <= limit]

    @staticmethod
    def _boxes(tracks: list[_Track]) -> FloatArray:
        if not tracks:
            return np.zeros((0, 4), dtype=np.float64)
        return np.stack([track.filter.xyxy for track in tracks])

    def _view(self, t: float) -> Tracks:
        tracks = self._tracks
        if not tracks:
            return Tracks.empty()
        return Tracks(
            ids=np.array([track.id for track in tracks], dtype=np.int64),
            xyxy=self._boxes(tracks),
            state=np.array([int(track.state) for track in tracks], dtype=np.int8),
            age_s=np.array([t - track.birth_t for track in tracks], dtype=np.float64),
            since_update_s=np.array([t - track.last_obs_t for track in tracks], dtype=np.float64),
        )
