"""Kalman + Hungarian multi-person tracker for static ward cameras, with time in seconds.

The daemon drives one ``Tracker`` per camera with three calls, each carrying the frame's capture time ``t``
(seconds, non-decreasing):

* ``update(detections, t)`` on frames where the person detector ran: predict every track to ``t``, associate
  tracks and detections (rounds below), update the matched tracks, start new tracks from confident
  unmatched detections, and age the rest.
* ``predict(t)`` on frames without detection: coast every track to ``t``; no association.
* ``correct(ids, xyxy, t)`` with boxes whose identity is already known (derived from each track's pose
  keypoints between detector frames): a Kalman update of exactly those tracks.

Association of one detector frame, from the best motion-only trackers' ideas (re-implemented from the papers):

1. Confident detections (score >= ``high_score``) against CONFIRMED and LOST tracks on the IoU of the
   predicted box, grown for tracks unseen for a while (FastTracker, ``lost_box_growth_per_s``), ranked with
   BoostTrack's Mahalanobis similarity (``mahalanobis_weight``) and OC-SORT's direction-consistency term
   (``direction_weight``).
2. ByteTrack's second round: doubtful detections (``min_score`` <= score < ``high_score``), often a person
   partly hidden behind another, against the CONFIRMED and LOST tracks still unmatched (stricter gate
   ``low_iou_threshold``). They keep tracks alive and recover lost ones, but never start one. (ByteTrack
   offers them to followed tracks only; a person coming out from behind someone is often first seen as a
   doubtful box, and with the strict gate on the predicted box, letting it recover a lost track gained 0.2
   MOTA and 1 IDF1 point on MOT17, 0.5 of each on KITTI, and left MOT15 unchanged.)
3. OC-SORT's observation-centric recovery, off by default (``recovery_iou_threshold``): tracks still
   unmatched against confident detections left, on the IoU of the track's *last observed* box.
4. Tracks seen once (TENTATIVE ones, or with ``min_hits`` 1 new CONFIRMED and LOST ones: no velocity yet)
   against the confident detections left, on boxes buffered by how far a person may have walked since.
A matched box updates its filter with a measurement variance scaled by the detection's doubt (Hybrid-SORT's
confidence-aware update, NSA Kalman's ``(1 - score)`` scaling, floored at ``score_noise_floor``): confident
boxes pull the estimate close, doubtful boxes of partly hidden people nudge it.
When a LOST track is matched again, OC-SORT's observation-centric re-update rewinds its filter to the last
observation and replays the gap with virtual observations on the straight line between the two real ones, so
the velocity learnt while coasting blind does not throw the box off after the occlusion.

The Kalman state is BoT-SORT's x, y, w, h (see ``kalman.py``), prediction is dt-aware, there is no
camera-motion compensation (ward cameras do not move), and IDs are per-instance counters.

Lifecycle: a track is born from an unmatched confident detection, TENTATIVE until it has had ``min_hits``
observations (with ``min_hits`` 1 it is CONFIRMED at once), turns LOST when a detector frame does not match
it, returns to CONFIRMED when matched again, and is deleted once it has gone ``max_age_s`` seconds without an
observation. A TENTATIVE track that a detector frame does not match is deleted at once (with ``min_hits`` >= 2,
one-frame false positives never become tracks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from annotated_types import Interval
from numpy.typing import NDArray

from gaitwatch.tracking.assignment import assign
from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.kalman import BoxFilterBank, KalmanSettings
from gaitwatch.tracking.types import Detections, Tracks, TrackState

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Times closer than this (seconds) are the same instant: guards the age comparisons against float round-off
# when frame times are sums of 1/fps.
_TIME_EPS = 1e-6
# Prediction times kept per track for the re-update replay (a longer gap is replayed in fewer, longer steps).
_MAX_COAST_STEPS = 256
# 95 % point of the chi-square distribution with 4 degrees of freedom (cx, cy, w, h): the Mahalanobis gate.
_CHI2_4DOF_95 = 9.4877
# At most this many virtual observations when replaying a gap (see ``Tracker._replay_gap``).
_MAX_REPLAY_STEPS = 8


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """Knobs of the tracker; times in seconds so a configuration survives a change of frame rate.

    min_hits:
        Observations (detections or ``correct`` boxes) needed before a track is CONFIRMED, i.e. before the
        daemon spends pose inference on it. Higher suppresses flickering false detections but delays every
        new person by that many detector frames. 1 (the default: a confident detection, score >=
        ``new_track_score``, confirms its track at once; until its second observation the track is matched on
        buffered boxes, like a tentative one, since its velocity is unknown, and dropped if the next detector
        frame misses it) beat 2 on the online output (MOT15 MOTA / IDF1 / HOTA +1.1 / +0.7 / +0.8, MOT17
        +0.4 / +0.2 / +0.2, KITTI -1.5 / -0.5 / +0.1: KITTI-trk-0013's one-frame false tracks are reported).
        It was first rejected on one full-pipeline run of vtest.avi with the HOG detector (147 valid walking
        windows instead of 169); with NanoDet, over 8 record-and-replay runs (4 detector builds x vtest.avi and
        the demo clip) it gave 1191 valid walking windows against 1165, 42 abnormal windows against 66, one
        false abnormal-gait alert against one, and 126 gait ids with a valid window against 122: single runs
        vary by +-15% (any change to tracking changes which tracks exist). Kept as LOST instead of dropped,
        a newcomer missed by the next detector frame cost KITTI-trk-0013 MOTA 36.8 -> 28.3 online.
    max_age_s:
        How long a track coasts on its motion model without any observation before it is deleted. Raising it
        keeps IDs through longer occlusions (a person behind a pillar) but hands IDs over when another person
        walks into the coasting box, and keeps ghost boxes alive longer after someone leaves. On the online
        output 2 s beat 1.5 s (MOT17 IDF1 +0.3, HOTA +0.2, MOT15 MOTA +0.4; KITTI unchanged).
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
        delays people whose first detections are weak. 0.9 suits CNN detectors whose scores cluster near 1
        (on the MOTChallenge/KITTI data it cut false tracks without losing people); with HOG scores
        (``margin_to_score``) about 0.7 keeps recall.
    low_iou_threshold:
        IoU gate of the second (doubtful-detection) round; stricter than ``iou_threshold`` because a doubtful
        box far from the prediction is more likely clutter than the person.
    direction_weight:
        Weight of OC-SORT's direction-consistency term: the cost of a match grows by this much times the
        angle (as a fraction of 180 degrees) between the track's observed heading and the heading towards
        the detection. Helps two people crossing keep their IDs; 0 disables it. On the online output 0.3 beat
        OC-SORT's 0.2 (MOT17 IDF1 +0.3, HOTA +0.2, MOT15 HOTA +0.2) and 0.5 (MOT17 IDF1 -1.5).
    direction_horizon_s:
        How far back (seconds) the heading is measured between two of the track's observations. Longer is
        steadier against box jitter but slower to follow a turn.
    recovery_iou_threshold:
        IoU gate of OC-SORT's observation-centric recovery round (a lost track matched on the box where it was
        last seen); 0 turns the round off (the default). At 0.3 a person who steps out at the picture's edge
        and comes back where they left keeps their ID (the ``reentry`` scenario test), but on the public data
        the round handed lost tracks to other people passing their last-seen place: online MOT17-11 HOTA -2.9,
        MOT17 IDF1 -0.9, KITTI MOTA -1.0, MOT15 unchanged; 0.5 and stricter recover too little to matter.
    score_noise_floor:
        Confidence-aware Kalman updates: a detection's measurement variance is ``KalmanSettings.meas_std``
        squared times ``1 - score``, but never below this fraction (boxes from ``correct``, whose identity is
        certain, count as confident, i.e. with this fraction). Lower lets confident boxes steer the estimate
        almost alone (sharper boxes, but every jitter goes into the velocity); 1 disables the scaling. On the
        online output 0.3 beat 0.1 (MOT15 HOTA +0.4) and 1 (MOT17-11 HOTA +1.4, MOT17-05 +1.0).
    mahalanobis_weight:
        BoostTrack's Mahalanobis similarity in the first round: a pair's cost falls by this weight times
        ``max(0, 1 - d2 / 9.49)``, where ``d2`` is the squared Mahalanobis distance of the detection's centre and
        size from the track's prediction under the filter's own covariance (9.49: the 95 % point for 4 degrees
        of freedom). IoU alone prefers whichever predicted box a detection overlaps most, even a taller person's
        box around a smaller one; this term prefers the track whose motion and size explain the box, and trusts
        a coasting track's wider uncertainty. It only ranks candidates: the IoU gate is unchanged. Higher lets
        the motion model overrule the overlap more (0 disables it). On the online output 0.3 gained MOT15 HOTA
        +1.2 and IDF1 +1.6 (0.15 and 0.5 within 0.1 of it), MOT17 and KITTI within 0.3.
    lost_box_growth_per_s:
        FastTracker's enlarged boxes for unseen tracks: in the first round a track's predicted box is searched
        grown by this fraction of its width and height per second since its last observation (0.2: a person
        hidden for 1 s is looked for in a box 20 % larger), as its motion becomes less certain. Higher recovers
        people who stopped or turned while hidden, at the price of handing a long-lost track to a passer-by; 0
        disables it. On the online output (with ``mahalanobis_weight`` 0.3) 0.2 gained MOT17 HOTA +0.4 and
        IDF1 +0.5 and left MOT15 and KITTI unchanged; 0.3 gave back MOT17 (HOTA -0.1, IDF1 -0.2) for KITTI
        (IDF1 +0.7, HOTA +0.2).
    kalman:
        The motion and noise model (see ``KalmanSettings``).
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    min_hits: Annotated[int, Interval(ge=1, le=50)] = 1
    max_age_s: Annotated[float, Interval(gt=0.0, le=600.0)] = 2.0
    iou_threshold: Annotated[float, Interval(gt=0.0, le=1.0)] = 0.3
    high_score: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.6
    min_score: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.1
    new_track_score: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.9
    low_iou_threshold: float = 0.5
    direction_weight: float = 0.3
    direction_horizon_s: float = 0.1
    recovery_iou_threshold: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.0
    score_noise_floor: Annotated[float, Interval(gt=0.0, le=1.0)] = 0.3
    mahalanobis_weight: Annotated[float, Interval(ge=0.0, le=2.0)] = 0.3
    lost_box_growth_per_s: Annotated[float, Interval(ge=0.0, le=5.0)] = 0.2
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
        if not (0.0 <= self.recovery_iou_threshold <= 1.0):
            raise ValueError(
                f"TrackerSettings.recovery_iou_threshold must be in [0, 1] (0 = off); got {self.recovery_iou_threshold}"
            )
        for name in ("mahalanobis_weight", "lost_box_growth_per_s"):
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"TrackerSettings.{name} must be a finite number >= 0; got {value}")
        if not (0.0 < self.score_noise_floor <= 1.0):
            raise ValueError(f"TrackerSettings.score_noise_floor must be in (0, 1]; got {self.score_noise_floor}")


class _Track:
    """One person's private bookkeeping (mutable; never handed out — ``Tracks`` is the public view).

    The track's Kalman filter is the row of the tracker's ``BoxFilterBank`` at the track's list position.
    """

    __slots__ = (
        "birth_t",
        "coast_times",
        "heading",
        "hits",
        "id",
        "last_obs_t",
        "last_obs_xyxy",
        "recent",
        "state",
        "t",
    )

    def __init__(self, track_id: int, xyxy: FloatArray, t: float, min_hits: int) -> None:
        self.id = track_id
        self.t = t  # time the filter's estimate refers to
        self.birth_t = t
        self.last_obs_t = t
        self.last_obs_xyxy = xyxy.copy()
        # Recent observations (time, centre) to measure the heading over ``direction_horizon_s``.
        # Plain floats, not arrays: this runs for every matched track on every frame, where numpy's per-call
        # overhead on 2-vectors cost more than the arithmetic.
        x1, y1, x2, y2 = xyxy.tolist()
        self.recent: list[tuple[float, float, float]] = [(t, 0.5 * (x1 + x2), 0.5 * (y1 + y2))]
        self.heading: tuple[float, float] | None = None  # unit vector of the observed motion, None while unknown
        self.coast_times: list[float] = []  # times the filter was advanced to since the last observation
        self.hits = 1
        self.state = TrackState.CONFIRMED if min_hits <= 1 else TrackState.TENTATIVE

    def record(self, xyxy: FloatArray, t: float, min_hits: int, horizon_s: float) -> None:
        """Bookkeeping of an observation at ``t`` (the filter update itself is done by the tracker)."""
        self.last_obs_t = t
        self.last_obs_xyxy = xyxy.copy()
        self.coast_times = []
        self.hits += 1
        if self.state == TrackState.LOST or self.hits >= min_hits:
            self.state = TrackState.CONFIRMED
        x1, y1, x2, y2 = xyxy.tolist()
        cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
        self.recent.append((t, cx, cy))
        # Keep just enough history: the newest observation at least ``horizon_s`` older than this one.
        while len(self.recent) > 2 and t - self.recent[1][0] >= horizon_s - _TIME_EPS:
            self.recent.pop(0)
        then, ox, oy = self.recent[0]
        self.heading = None
        if t - then >= horizon_s - _TIME_EPS and then < t:
            dx, dy = cx - ox, cy - oy
            norm = math.hypot(dx, dy)
            # Below 2 % of the height the "motion" is detector jitter, not a heading.
            if norm >= 0.02 * max(y2 - y1, 1.0):
                self.heading = (dx / norm, dy / norm)


class Tracker:
    """Multi-person tracker for one camera. Not thread-safe; one instance per camera.

    IDs count from 1 per instance (no class-level counter), so two cameras or a restart never share a
    counter; the daemon makes them globally unique by prefixing camera and boot id.
    """

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings if settings is not None else TrackerSettings()
        self._tracks: list[_Track] = []
        self._bank = BoxFilterBank(self.settings.kalman)
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
        tracks = self._tracks
        # Tracks seen once have no velocity yet: they are matched in round 4 only, on buffered boxes (with
        # min_hits = 1 such a track is already CONFIRMED).
        seen_once = np.array([tr.hits == 1 for tr in tracks], dtype=bool)
        active = np.flatnonzero(~seen_once)
        young = np.flatnonzero(seen_once)
        predicted = self._bank.xyxy()
        high = np.flatnonzero(score >= s.high_score)
        low = np.flatnonzero((score >= s.min_score) & (score < s.high_score))
        matched: list[tuple[int, int]] = []

        # 1. confident detections vs confirmed + lost tracks: IoU of the prediction + heading consistency.
        #    The heading term only ranks candidates; the gate stays on IoU alone.
        #    A lost track's box is searched in a region growing with the time it has been unseen (FastTracker);
        #    BoostTrack's Mahalanobis similarity ranks candidates by the filter's own uncertainty.
        searched = predicted[active]
        if s.lost_box_growth_per_s > 0.0 and len(active):
            unseen = np.array([t - tracks[i].last_obs_t for i in active.tolist()])
            half = (0.5 * s.lost_box_growth_per_s * unseen)[:, None] * (searched[:, 2:] - searched[:, :2])
            searched = searched + np.concatenate([-half, half], axis=1)
        overlap = iou_matrix(searched, xyxy[high])
        cost = 1.0 - overlap
        if s.mahalanobis_weight > 0.0 and cost.size:
            cost -= s.mahalanobis_weight * self._mahalanobis_similarity(active, xyxy[high])
        if s.direction_weight > 0.0 and cost.size:
            cost = cost + s.direction_weight * self._direction_cost(active, xyxy[high])
        pairs, rest_t, rest_d = _solve(cost, active, high, math.inf, overlap, s.iou_threshold)
        matched += pairs
        # 2. doubtful detections vs the confirmed and lost tracks left: ByteTrack's second round (rest_t holds
        #    no track seen once: a doubtful box never continues a track that may itself be a false detection)
        pairs = []
        if len(rest_t) and len(low):
            cost = 1.0 - iou_matrix(predicted[rest_t], xyxy[low])
            pairs, _, _ = _solve(cost, rest_t, low, 1.0 - s.low_iou_threshold)
            matched += pairs
        # 3. recovery on the last observed box (OC-SORT's OCR), when enabled
        if s.recovery_iou_threshold > 0.0 and len(rest_t) and len(rest_d):
            taken = np.array([ti for ti, _ in pairs], dtype=np.int64)
            rest_t = rest_t[~np.isin(rest_t, taken)]
            last_boxes = np.array([tracks[i].last_obs_xyxy for i in rest_t]).reshape(-1, 4)
            cost = 1.0 - iou_matrix(last_boxes, xyxy[rest_d])
            pairs, _, rest_d = _solve(cost, rest_t, rest_d, 1.0 - s.recovery_iou_threshold)
            matched += pairs
        # 4. tracks seen once vs the confident detections left. Their velocity is still unknown, so both boxes
        #    are buffered by how far a person may have walked since the last observation (init_vel_std):
        #    with the detector running every few frames a new walker would otherwise never get a second hit.
        if len(young) and len(rest_d):
            margin = np.array(
                [
                    s.kalman.init_vel_std
                    * (tracks[i].last_obs_xyxy[3] - tracks[i].last_obs_xyxy[1])
                    * (t - tracks[i].last_obs_t)
                    for i in young
                ]
            )
            cost = 1.0 - _buffered_iou(predicted[young], xyxy[rest_d], margin)
            pairs, _, rest_d = _solve(cost, young, rest_d, 1.0 - s.iou_threshold)
            matched += pairs

        if matched:
            rows = np.array([ti for ti, _ in matched], dtype=np.int64)
            used = [di for _, di in matched]
            self._observe(rows, xyxy[used], t, score[used])
        hit = np.zeros(len(tracks), dtype=bool)
        hit[[ti for ti, _ in matched]] = True
        keep = np.ones(len(tracks), dtype=bool)
        for index, track in enumerate(tracks):
            if hit[index]:
                continue
            if track.state == TrackState.TENTATIVE or track.hits == 1:
                # Never confirmed, or seen once, and not seen again: a flicker, dropped now (with min_hits 1 it
                # was reported once). Kept, a track seen once would be matched on boxes buffered by ever longer
                # walks, and flickering false detections would chain into tracks: with min_hits 1, dropping gained
                # KITTI MOTA +1.2 (KITTI-trk-0013 +2.8) for IDF1 -0.7, HOTA -0.1 on the online output.
                keep[index] = False
            else:
                track.state = TrackState.LOST
        self._keep(keep)
        born = [int(di) for di in rest_d if score[di] >= s.new_track_score]
        if born:
            self._bank.add(xyxy[born])
            for di in born:
                self._tracks.append(_Track(self._next_id, xyxy[di].copy(), t, s.min_hits))
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
        row_of = {track.id: row for row, track in enumerate(self._tracks)}
        rows, boxes = [], []
        for track_id, box in zip(ids.tolist(), xyxy, strict=True):
            row = row_of.get(int(track_id))
            if row is not None and row not in rows:
                rows.append(row)
                boxes.append(np.asarray(box, dtype=np.float64))
        if rows:
            self._observe(np.array(rows, dtype=np.int64), np.array(boxes), t, np.ones(len(rows)))
        self._expire(t)
        return self._view(t)

    def _observe(self, rows: IntArray, xyxy: FloatArray, t: float, score: FloatArray) -> None:
        """Fuse boxes ``xyxy`` (K, 4) with scores ``score`` (K,) seen at ``t`` into the tracks at ``rows``."""
        s = self.settings
        for row, box in zip(rows.tolist(), xyxy, strict=True):
            track = self._tracks[row]
            if track.state == TrackState.LOST and track.coast_times:
                self._replay_gap(row, box, t)
        self._bank.update(rows, xyxy, np.clip(1.0 - score, s.score_noise_floor, 1.0))
        self._bank.checkpoint(rows)
        for row, box in zip(rows.tolist(), xyxy, strict=True):
            self._tracks[row].record(box, t, s.min_hits, s.direction_horizon_s)

    def _replay_gap(self, row: int, xyxy: FloatArray, t: float) -> None:
        """OC-SORT's observation-centric re-update: re-run the unobserved gap on a straight-line path.

        The filter goes back to its state at the last observation and is predicted and updated again at the
        times it coasted through, with virtual boxes interpolated between the last and the new observation;
        it ends predicted to ``t``, ready for the real update.
        """
        track = self._tracks[row]
        t0 = track.last_obs_t
        span = t - t0
        if span <= _TIME_EPS:
            return
        start = track.last_obs_xyxy
        bank = self._bank
        bank.rewind(row)
        one = np.array([row], dtype=np.int64)
        previous = t0
        times = [ti for ti in track.coast_times if ti < t - _TIME_EPS]
        if len(times) > _MAX_REPLAY_STEPS:
            # A long gap at a high frame rate is replayed at evenly spread times: the straight path is the same
            # and the replay (one predict and update per step) stays a small share of a frame's work.
            step = len(times) / _MAX_REPLAY_STEPS
            times = [times[int((k + 1) * step) - 1] for k in range(_MAX_REPLAY_STEPS)]
        for ti in times:
            bank.predict(np.array([ti - previous]), one)
            bank.update(one, (start + (xyxy - start) * ((ti - t0) / span)).reshape(1, 4))
            previous = ti
        bank.predict(np.array([t - previous]), one)

    def _mahalanobis_similarity(self, rows: IntArray, det_xyxy: FloatArray) -> FloatArray:
        """BoostTrack's Mahalanobis similarity of tracks ``rows`` to detections: ``max(0, 1 - d2 / chi2)``.

        ``d2`` is the squared Mahalanobis distance of a detection's (cx, cy, w, h) from the track's prediction
        (``BoxFilterBank.mahalanobis_sq``) and ``chi2`` its 95 % point with 4 degrees of freedom: 1 for a box
        where the filter expects it, 0 beyond what the filter would expect once in twenty.
        """
        d2 = self._bank.mahalanobis_sq(rows, det_xyxy)
        out: FloatArray = np.maximum(1.0 - d2 * (1.0 / _CHI2_4DOF_95), 0.0)
        return out

    def _direction_cost(self, rows: IntArray, det_xyxy: FloatArray) -> FloatArray:
        """Angle (fraction of 180 degrees) between each track's heading and its bearing to each detection."""
        out = np.zeros((len(rows), det_xyxy.shape[0]))
        tracks = self._tracks
        known = [k for k, row in enumerate(rows.tolist()) if tracks[row].heading is not None]
        if not known or det_xyxy.shape[0] == 0:
            return out
        # Per track: heading (unit vector) and the centre of its last observation, built as one (4, K) array, and
        # plain per-axis arithmetic rather than (K, M, 2) stacks: on these small matrices numpy's per-call
        # overhead is the cost.
        hx, hy, ox, oy = np.array(
            [(*tracks[row].heading, *tracks[row].recent[-1][1:]) for row in rows[known].tolist()]
        ).T
        dx = 0.5 * (det_xyxy[:, 0] + det_xyxy[:, 2]) - ox[:, None]  # (K, M)
        dy = 0.5 * (det_xyxy[:, 1] + det_xyxy[:, 3]) - oy[:, None]
        norm = np.hypot(dx, dy)
        dot = dx * hx[:, None] + dy * hy[:, None]
        cos = np.divide(dot, norm, out=np.ones_like(norm), where=norm > 1e-6)
        out[known] = np.arccos(np.minimum(np.maximum(cos, -1.0), 1.0)) * (1.0 / math.pi)
        return out

    def _advance(self, t: float) -> None:
        if not math.isfinite(t):
            raise ValueError(f"tracker time must be finite; got {t}")
        if t < self._t - _TIME_EPS:
            raise ValueError(f"tracker time went backwards: {t} < {self._t}")
        self._t = max(self._t, t)
        if not self._tracks:
            return
        dt = np.array([t - track.t for track in self._tracks])
        if not np.any(dt > 0.0):
            return
        self._bank.predict(dt)
        for track, step in zip(self._tracks, dt.tolist(), strict=True):
            if step > 0.0:
                track.t = t
                if len(track.coast_times) < _MAX_COAST_STEPS:
                    track.coast_times.append(t)

    def _keep(self, mask: NDArray[np.bool_]) -> None:
        if mask.all():
            return
        self._tracks = [track for track, keep in zip(self._tracks, mask.tolist(), strict=True) if keep]
        self._bank.keep(mask)

    def _expire(self, t: float) -> None:
        limit = self.settings.max_age_s + _TIME_EPS
        self._keep(np.array([t - track.last_obs_t <= limit for track in self._tracks], dtype=bool))

    def _view(self, t: float) -> Tracks:
        tracks = self._tracks
        if not tracks:
            return Tracks.empty()
        return Tracks(
            ids=np.array([track.id for track in tracks], dtype=np.int64),
            xyxy=self._bank.xyxy(),
            state=np.array([int(track.state) for track in tracks], dtype=np.int8),
            age_s=np.array([t - track.birth_t for track in tracks], dtype=np.float64),
            since_update_s=np.array([t - track.last_obs_t for track in tracks], dtype=np.float64),
        )


def _buffered_iou(tracks_xyxy: FloatArray, det_xyxy: FloatArray, margin: FloatArray) -> FloatArray:
    """IoU after growing each track box and each detection by the track's ``margin`` (px) on every side."""
    if tracks_xyxy.shape[0] == 0 or det_xyxy.shape[0] == 0:
        return np.zeros((tracks_xyxy.shape[0], det_xyxy.shape[0]))
    grow = np.array([-1.0, -1.0, 1.0, 1.0])
    a = tracks_xyxy + margin[:, None] * grow  # (N, 4)
    b = det_xyxy[None, :, :] + margin[:, None, None] * grow  # (N, M, 4): each pair buffered by its track's margin
    ix = np.clip(np.minimum(a[:, None, 2], b[..., 2]) - np.maximum(a[:, None, 0], b[..., 0]), 0.0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[..., 3]) - np.maximum(a[:, None, 1], b[..., 1]), 0.0, None)
    inter = ix * iy
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)
    return out


def _solve(
    cost: FloatArray,
    rows: IntArray,
    cols: IntArray,
    max_cost: float,
    overlap: FloatArray | None = None,
    min_overlap: float = 0.0,
) -> tuple[list[tuple[int, int]], IntArray, IntArray]:
    """Assign on ``cost`` (tracks ``rows`` x detections ``cols``), gated after solving.

    Returns matched (track index, detection index) pairs and the unmatched track and detection indices.
    With ``overlap`` given, pairs whose IoU is below ``min_overlap`` are also rejected after solving.
    """
    if cost.size == 0:
        return [], rows, cols
    matches, _, _ = assign(cost, max_cost)
    if overlap is not None and len(matches):
        matches = matches[overlap[matches[:, 0], matches[:, 1]] >= min_overlap]
    row_used = np.zeros(len(rows), dtype=bool)
    row_used[matches[:, 0]] = True
    col_used = np.zeros(len(cols), dtype=bool)
    col_used[matches[:, 1]] = True
    pairs = list(zip(rows[matches[:, 0]].tolist(), cols[matches[:, 1]].tolist(), strict=True))
    return pairs, rows[~row_used], cols[~col_used]
