"""Causal joining of an online tracker's tracks: one identity per person across a short loss, decided without lag.

When a person is lost for a moment (an occlusion, a run of detector misses) the online tracker coasts their track
for ``max_age_s`` and then gives them a new id when they are seen again. A consumer that accumulates history per
person (the gait stage: an 8 s window) would restart from nothing. This joiner continues the lost track's
identity with the new one when their motion agrees, by the fixed-lag output's own two-sided test
(``gaitwatch.tracking.fixed_lag``: ``edge_velocity`` and ``motion_agreement`` with the same ``FixedLagSettings``):
the lost track's last box carried forward over the gap must overlap the new track's first box, AND the new
track's first box carried backward must overlap the lost track's last box.

It differs from the fixed-lag pass only in when it decides, and it adds no lag to what the tracks carry:

- A track's start velocity is measured, as in the fixed-lag pass, over its first ``velocity_window_s`` of
  observations; so a new track is *pending* for that long after its first observation, and is then decided once:
  joined to the best agreeing lost track (one-to-one over the tracks decided on the same frame), or left alone.
  A consumer keeps feeding a pending track under its own id meanwhile; nothing it publishes waits for the
  decision (a gait window needs far more history than the decision takes).
- A lost track is one whose last observation precedes the new track's first, within ``max_gap_s``; it may still
  be coasting in the tracker. Once a track has a successor it is *superseded*: should the tracker find it again,
  its observations no longer count (two online tracks never feed one identity at the same time).
- Gaps are not filled: a consumer that interpolates short gaps itself (the gait stage does, up to its own
  ``max_gap_s``) sees the missing stretch as missing, which is what it was.

The joined identity is the online id of the chain's first track, as in the fixed-lag output; online ids are never
reused, so joined ids are unique too. Times are seconds, boxes x1, y1, x2, y2 in pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gaitwatch.tracking.assignment import assign
from gaitwatch.tracking.fixed_lag import FixedLagSettings, edge_velocity, motion_agreement

FloatArray = NDArray[np.float64]

# Times closer than this (seconds) are equal (frame times carry float round-off), as in the fixed-lag pass.
_TIME_EPS = 1e-6


@dataclass(slots=True)
class _Tracklet:
    """One online track as the joiner saw it: its box observations (a bounded tail, plus its first
    ``velocity_window_s`` while pending), its joined identity and its life cycle."""

    joined_id: int
    first_seen_t: float
    t: list[float] = field(default_factory=list)
    boxes: list[FloatArray] = field(default_factory=list)
    first_t: float | None = None  # first box observation
    pending: bool = True
    succeeded: bool = False  # a later track continues its identity
    dropped: bool = False  # the tracker no longer holds it


@dataclass(frozen=True, slots=True)
class Join:
    """A decision of this frame: online track ``online_id`` continues the identity ``joined_id`` (of the lost
    online track ``lost_id``); ``agreement`` is the weaker of the two extrapolation overlaps."""

    online_id: int
    joined_id: int
    lost_id: int
    agreement: float


class TrackJoiner:
    """Online ids -> joined ids, causally (see the module docstring). ``settings.max_gap_s == 0`` joins nothing
    (every online id is its own joined id)."""

    def __init__(self, settings: FixedLagSettings | None = None) -> None:
        self._s = settings if settings is not None else FixedLagSettings()
        self._tracks: dict[int, _Tracklet] = {}

    @property
    def settings(self) -> FixedLagSettings:
        return self._s

    def joined_id(self, online_id: int) -> int | None:
        """The identity ``online_id`` feeds, or None when a later track has taken its identity over (its
        observations no longer count). An id the joiner has not seen is its own."""
        track = self._tracks.get(online_id)
        if track is None:
            return online_id
        return None if track.succeeded else track.joined_id

    def may_be_continued(self, joined_id: int, t: float) -> bool:
        """Whether the identity ``joined_id`` can still be continued by a later track: its last online track
        was dropped by the tracker less than ``max_gap_s`` after its last observation, or a track that started
        within that gap is still pending."""
        return any(
            tr.joined_id == joined_id and tr.dropped and not tr.succeeded and self._retained(tr, t)
            for tr in self._tracks.values()
        )

    def update(self, t: float, ids: NDArray[np.int64], boxes: FloatArray, alive: Iterable[int]) -> tuple[Join, ...]:
        """One frame at ``t``: the boxes of the tracks observed (``boxes`` (N, 4); a row of NaN: posed but no
        box) and ``alive``, the ids the tracker still holds. Returns the joins decided on this frame."""
        s = self._s
        for online, box in zip(ids.tolist(), np.asarray(boxes, dtype=np.float64), strict=True):
            track = self._tracks.get(online)
            if track is None:
                track = self._tracks[online] = _Tracklet(joined_id=online, first_seen_t=t)
                if s.max_gap_s == 0.0:
                    track.pending = False
            if not np.all(np.isfinite(box)) or (track.t and t <= track.t[-1]):
                continue
            if track.first_t is None:
                track.first_t = t
            track.t.append(t)
            track.boxes.append(box)
            if not track.pending:
                # Only the last velocity_window_s of observations (and the one before it) give an end velocity.
                while len(track.t) > 2 and track.t[1] < t - s.velocity_window_s - _TIME_EPS:
                    del track.t[0], track.boxes[0]
        held = {int(i) for i in alive}
        for online, track in self._tracks.items():
            track.dropped = track.dropped or online not in held
        joins = self._decide(t)
        for online in [o for o, tr in self._tracks.items() if tr.dropped and not self._retained(tr, t)]:
            del self._tracks[online]
        return joins

    def _retained(self, track: _Tracklet, t: float) -> bool:
        """Still of use: held by the tracker, pending, or a lost track some pending or future track may join."""
        if not track.dropped or track.pending:
            return True
        if track.succeeded or not track.t:
            return False
        end = track.t[-1]
        if t - end <= self._s.max_gap_s + _TIME_EPS:
            return True
        return any(
            other.pending and other.first_t is not None and other.first_t <= end + self._s.max_gap_s + _TIME_EPS
            for other in self._tracks.values()
        )

    def _decide(self, t: float) -> tuple[Join, ...]:
        s = self._s
        due = [
            online
            for online, tr in self._tracks.items()
            if tr.pending and (tr.dropped or t - tr.first_seen_t >= s.velocity_window_s - _TIME_EPS)
        ]
        if not due:
            return ()
        # Start velocity of each due track over its first velocity_window_s of observations (fixed-lag's rule).
        starts: dict[int, tuple[float, FloatArray, FloatArray]] = {}
        for online in due:
            tr = self._tracks[online]
            tr.pending = False
            if len(tr.t) < 2 or tr.first_t is None:
                continue
            tt = np.asarray(tr.t)
            bb = np.asarray(tr.boxes)
            v, known = edge_velocity(tt, bb, np.array([0]), s.velocity_window_s, before=False)
            if known[0]:
                starts[online] = (tt[0], bb[0], v[0])
        # Lost tracks: last observed before a due track's first box, within max_gap_s; not already continued.
        lost: dict[int, tuple[float, FloatArray, FloatArray]] = {}
        for online, tr in self._tracks.items():
            if tr.pending or tr.succeeded or online in starts or len(tr.t) < 2:
                continue
            tt = np.asarray(tr.t)
            bb = np.asarray(tr.boxes)
            v, known = edge_velocity(tt, bb, np.array([len(tt) - 1]), s.velocity_window_s, before=True)
            if known[0]:
                lost[online] = (tt[-1], bb[-1], v[0])
        pairs = [
            (a, b)
            for b, (t0, _, _) in starts.items()
            for a, (t1, _, _) in lost.items()
            if t1 < t0 - _TIME_EPS and t0 - t1 <= s.max_gap_s + _TIME_EPS
        ]
        if not pairs:
            return ()
        a_ids = [a for a, _ in pairs]
        b_ids = [b for _, b in pairs]
        agree = motion_agreement(
            np.array([lost[a][1] for a in a_ids]),
            np.array([lost[a][2] for a in a_ids]),
            np.array([starts[b][1] for b in b_ids]),
            np.array([starts[b][2] for b in b_ids]),
            np.array([starts[b][0] - lost[a][0] for a, b in pairs]),
        )
        rows = sorted(set(a_ids))
        cols = sorted(set(b_ids))
        cost = np.full((len(rows), len(cols)), np.inf)
        for (a, b), value in zip(pairs, agree.tolist(), strict=True):
            if value > s.min_overlap:
                cost[rows.index(a), cols.index(b)] = 1.0 - value
        matches, _, _ = assign(cost, 1.0 - s.min_overlap)
        joins = []
        for r, c in matches:
            a, b = rows[r], cols[c]
            lost_track, new_track = self._tracks[a], self._tracks[b]
            lost_track.succeeded = True
            new_track.joined_id = lost_track.joined_id
            joins.append(Join(b, lost_track.joined_id, a, 1.0 - float(cost[r, c])))
        return tuple(sorted(joins, key=lambda j: j.online_id))
