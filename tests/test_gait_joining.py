"""The gait stage analyses joined tracks: generated walkers with known identities, fed to the stage as the online
tracker would report them when it loses a person for a moment (a new track id after the break).

- One walker hidden for ~1 s: the tracker's second id continues the first one's gait id, and the windows go on
  at every hop instead of waiting a full window for the new id's buffer to fill.
- Two people crossing: the one walking away from where the other was lost is not joined to them, although it
  appears exactly where the lost one was heading (the backward extrapolation disagrees).
- Off (``join_max_gap_s = 0``): one gait id per online track, as before.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.offline.replay import replay
from gaitwatch.gait.offline.synthetic import SyntheticWalk, WalkerParams, generate_walk
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.gait.stage import GaitStage
from gaitwatch.gait.types import GaitResult
from gaitwatch.tracking.track_joiner import TrackJoiner

FPS = 10.0
MAX_AGE_S = 2.0  # the tracker's default: a lost track is held (coasting) this long after its last observation

# One tracked person's samples: online track id, times, keypoints (N, 33, 3), world (N, 33, 3).
Person = tuple[int, NDArray[np.float64], NDArray[np.float32], NDArray[np.float32]]


def _stage(**settings: float) -> GaitStage:
    return GaitStage(GaitSettings(**settings), GaitClassifier(), AlertPolicy(AlertPolicySettings()))


def _walk(seed: int = 3) -> SyntheticWalk:
    return generate_walk(WalkerParams(cadence_spm=105.0), fps=FPS, duration_s=24.0, seed=seed)


def _run(stage: GaitStage, people: list[Person]) -> list[GaitResult]:
    """Feed per-track samples (id, times, keypoints, world) frame by frame; a track is alive from its first
    sample until MAX_AGE_S after its last (the online tracker's coasting)."""
    times = np.unique(np.concatenate([t for _, t, _, _ in people]))
    windows: list[GaitResult] = []
    for now in times:
        ids, kps, worlds, alive = [], [], [], []
        for tid, t, kp, w in people:
            if t[0] <= now <= t[-1] + MAX_AGE_S:
                alive.append(tid)
            hit = np.flatnonzero(t == now)
            if hit.size:
                ids.append(tid)
                kps.append(kp[hit[0]])
                worlds.append(w[hit[0]])
        empty = np.zeros((0, 33, 3), np.float32)
        out = stage.update(
            float(now),
            np.array(ids, dtype=np.int64),
            np.array(kps, dtype=np.float32) if kps else empty,
            np.array(worlds, dtype=np.float32) if worlds else empty,
            alive,
        )
        windows.extend(out.windows)
    return windows


def _occluded(walk: SyntheticWalk, hidden: tuple[float, float]) -> list[Person]:
    """One person, tracked as id 1 before the hidden interval and as id 2 after it."""
    before = walk.t < hidden[0]
    after = walk.t >= hidden[1]
    return [
        (1, walk.t[before], walk.keypoints[before], walk.world[before]),
        (2, walk.t[after], walk.keypoints[after], walk.world[after]),
    ]


def test_a_walker_hidden_for_a_second_keeps_one_gait_id_and_windows_continue() -> None:
    walk = _walk()
    people = _occluded(walk, (9.0, 10.0))
    joined = _run(_stage(), people)
    unbroken = _run(_stage(), [(1, walk.t, walk.keypoints, walk.world)])
    assert {w.metrics.track_id for w in joined} == {1}, "one gait id across the break"
    ends = np.array([w.metrics.t_end for w in joined])
    # A window every hop from the first full window on, through the break: none while the person is hidden (1 s)
    # nor while the new id is being decided (join_velocity_window_s, 1 s), then on at every hop.
    assert np.all(np.diff(ends) <= 1.0 + 1.0 + 1.0 + 0.25), np.diff(ends)
    assert np.all(np.diff(ends)[1:] <= 1.0 + 0.25), np.diff(ends)
    assert len(joined) >= len(unbroken) - 2
    assert sum(w.metrics.valid for w in joined) >= sum(w.metrics.valid for w in unbroken) - 8
    # Without joining the second id must first fill a whole window: ~8 windows fewer, and two ids.
    separate = _run(_stage(join_max_gap_s=0.0), people)
    assert {w.metrics.track_id for w in separate} == {1, 2}
    assert len(separate) <= len(joined) - 6


def test_two_people_crossing_are_not_joined() -> None:
    # Person A walks right and is lost at 9 s behind person B, who walks left and whose track starts at 9.5 s
    # exactly where A was heading: forward extrapolation of A agrees, backward extrapolation of B does not.
    walk = _walk()
    a = walk.t < 9.0
    x_meet = float(np.interp(9.5, walk.t, walk.keypoints[:, 23, 0]))
    b_kp = walk.keypoints.copy()
    b_kp[..., 0] = 2.0 * x_meet - b_kp[..., 0]  # mirrored about the meeting point: walking left
    b_t = walk.t
    b = b_t >= 9.5
    people = [
        (1, walk.t[a], walk.keypoints[a], walk.world[a]),
        (2, b_t[b], b_kp[b], walk.world[b]),
    ]
    windows = _run(_stage(), people)
    assert {w.metrics.track_id for w in windows} == {1, 2}, "the crossing person keeps their own gait id"
    # The same second track walking on in A's direction instead is A, hidden for half a second: joined.
    same_way = [(1, walk.t[a], walk.keypoints[a], walk.world[a]), (2, walk.t[b], walk.keypoints[b], walk.world[b])]
    assert {w.metrics.track_id for w in _run(_stage(), same_way)} == {1}


def test_joiner_is_causal_and_one_to_one() -> None:
    # Boxes only: two people lost at the same moment, two new tracks each continuing one of them; each new
    # track is decided velocity_window_s after its first box, and each lost track is continued at most once.
    joiner = TrackJoiner()
    box = np.array([0.0, 0.0, 40.0, 100.0])
    speed = np.array([50.0, 0.0, 50.0, 0.0])
    offset = np.array([300.0, 0.0, 300.0, 0.0])
    decided: dict[float, list[tuple[int, int]]] = {}
    for k in range(60):
        t = k / FPS
        if t < 2.0:
            ids, boxes = [1, 2], [box + speed * t, box + offset - speed * t]
        elif t < 3.0:
            ids, boxes = [], []
        else:
            ids, boxes = [3, 4], [box + offset - speed * t, box + speed * t]
        alive = [i for i in (1, 2) if t <= 2.0 + MAX_AGE_S] + ([3, 4] if t >= 3.0 else [])
        joins = joiner.update(t, np.array(ids, dtype=np.int64), np.array(boxes).reshape(-1, 4), alive)
        if joins:
            decided[round(t, 3)] = [(j.online_id, j.joined_id) for j in joins]
            # A lost track that was continued feeds its identity no more, should the tracker find it again.
            assert joiner.joined_id(1) is None and joiner.joined_id(2) is None
    assert decided == {4.0: [(3, 2), (4, 1)]}
    assert joiner.joined_id(4) == 1 and joiner.joined_id(3) == 2


def test_a_recording_of_the_break_replays_to_the_same_joined_windows() -> None:
    # What the daemon saw live (the stage fed frame by frame) and what `gaitwatch replay` makes of the recording
    # of it (online ids, and when the tracker dropped each) are the same windows: the joiner lives in the stage.
    walk = _walk(seed=5)
    people = _occluded(walk, (9.0, 10.2))
    live = _run(_stage(), people)
    ids = np.concatenate([np.full(t.shape[0], tid, dtype=np.int64) for tid, t, _, _ in people])
    times = np.concatenate([t for _, t, _, _ in people])
    ended_ids = np.array([tid for tid, _, _, _ in people], dtype=np.int64)
    ended_t = np.array([t[-1] + MAX_AGE_S for _, t, _, _ in people])
    rec = Recording(
        ids,
        times,
        np.concatenate([kp for _, _, kp, _ in people]),
        np.concatenate([w for _, _, _, w in people]),
        {"fps": FPS},
        ended_ids[ended_t <= times.max()],
        ended_t[ended_t <= times.max()],
        float(times.max()),
    )
    offline = replay(rec, _stage())
    assert {w.metrics.track_id for w in live} == {1}
    assert list(offline.windows) == live
