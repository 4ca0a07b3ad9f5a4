"""Pose scheduling: confirmed tracks only, per-track rate cap, slower polling of still people, crop budget."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.pose.schedule import PoseScheduler, ScheduleSettings
from gaitwatch.tracking.types import Tracks, TrackState


def _tracks(ids: list[int], boxes: list[list[float]], states: list[TrackState] | None = None) -> Tracks:
    n = len(ids)
    st = states if states is not None else [TrackState.CONFIRMED] * n
    return Tracks(
        np.array(ids, dtype=np.int64),
        np.array(boxes, dtype=np.float64).reshape(n, 4),
        np.array([int(s) for s in st], dtype=np.int8),
        np.zeros(n),
        np.zeros(n),
    )


def _box_at(x: float, height: float = 170.0) -> list[float]:
    return [x, 100.0, x + 0.4 * height, 100.0 + height]


def test_only_confirmed_tracks_are_posed() -> None:
    sched = PoseScheduler()
    tracks = _tracks(
        [1, 2, 3],
        [_box_at(0), _box_at(200), _box_at(400)],
        [TrackState.TENTATIVE, TrackState.CONFIRMED, TrackState.LOST],
    )
    assert sched.select(0.0, tracks).tolist() == [False, True, False]


def test_walking_track_is_capped_at_max_rate_and_still_track_polled_slowly() -> None:
    settings = ScheduleSettings(max_rate_hz=10.0, stationary_rate_hz=2.0)
    sched = PoseScheduler(settings)
    fps, duration = 30.0, 6.0
    walker_speed = 1.2 * 170.0 / 1.7  # 1.2 m/s for a 1.7 m person 170 px tall: 120 px/s
    posed = {1: 0, 2: 0}
    rng = np.random.default_rng(0)
    for k in range(int(fps * duration)):
        t = k / fps
        jitter = rng.normal(0.0, 1.0, size=2)  # detector jitter on the still person, pixels
        tracks = _tracks([1, 2], [_box_at(50 + walker_speed * t), _box_at(600 + jitter[0])])
        due = sched.select(t, tracks)
        for tid, d in zip((1, 2), due, strict=True):
            posed[tid] += int(d)
    # After the first second (speed estimate settled), rates match the settings within a pose or two.
    assert posed[1] == pytest.approx(10.0 * duration, abs=8)
    assert posed[2] == pytest.approx(2.0 * duration, abs=3)
    assert sched.is_moving(1) and not sched.is_moving(2)


def test_a_walker_who_slows_down_keeps_the_full_rate_until_still() -> None:
    """A slow walker's box moves at ~0.1 body heights per second, below the speed that starts full-rate posing:
    once moving, they keep every pose until they are clearly still (hysteresis), so their gait windows have no
    gaps; a person who stops is polled slowly again."""
    settings = ScheduleSettings(max_rate_hz=15.0, stationary_rate_hz=3.0, moving_speed=0.15, still_speed=0.07)
    sched = PoseScheduler(settings)
    fps, height = 7.0, 170.0
    x, k = 50.0, 0
    posed_slow = 0
    for speed_bh_s, seconds in ((0.5, 2.0), (0.1, 6.0), (0.0, 3.0)):
        for _ in range(int(seconds * fps)):
            t = k / fps
            due = bool(sched.select(t, _tracks([1], [_box_at(x, height)]))[0])
            if speed_bh_s == 0.1 and t >= 3.0:  # the smoothed speed settled on the slow pace
                posed_slow += int(due)
            x += speed_bh_s * height / fps
            k += 1
        if speed_bh_s == 0.1:
            assert sched.is_moving(1)
    assert posed_slow == int(5.0 * fps)  # every frame of the slow walk's last 5 s
    assert not sched.is_moving(1)
    # Without hysteresis the same slow walker is polled at the stationary rate.
    plain = PoseScheduler(ScheduleSettings(moving_speed=0.15, still_speed=0.15))
    x = 50.0
    for k in range(int(8 * fps)):
        plain.select(k / fps, _tracks([1], [_box_at(x, height)]))
        x += (0.5 if k < 2 * fps else 0.1) * height / fps
    assert not plain.is_moving(1)


def test_still_speed_above_moving_speed_is_refused() -> None:
    with pytest.raises(ValueError, match="still_speed"):
        ScheduleSettings(moving_speed=0.1, still_speed=0.2)


def test_standing_up_switches_to_full_rate() -> None:
    """A seated person standing up barely moves the box centre but changes its height."""
    sched = PoseScheduler(ScheduleSettings(max_rate_hz=15.0, stationary_rate_hz=2.0))
    fps = 15.0
    for k in range(45):  # 3 s seated
        sched.select(k / fps, _tracks([4], [[300.0, 200.0, 370.0, 320.0]]))
    assert not sched.is_moving(4)
    posed = 0
    for k in range(45, 60):  # 1 s rising: box grows upwards from 120 to 170 px
        h = 120.0 + 50.0 * (k - 45) / 15.0
        posed += int(sched.select(k / fps, _tracks([4], [[300.0, 320.0 - h, 370.0, 320.0]]))[0])
    assert sched.is_moving(4)
    assert posed >= 8  # most of the rising second is posed at full rate


def test_crop_budget_serves_the_most_overdue_first_and_everyone_eventually() -> None:
    sched = PoseScheduler(ScheduleSettings(max_rate_hz=30.0, stationary_rate_hz=30.0, max_crops_per_frame=2))
    ids = [1, 2, 3, 4, 5]
    tracks = _tracks(ids, [_box_at(100.0 * i) for i in range(5)])
    served: list[int] = []
    for k in range(5):
        due = sched.select(k / 30.0, tracks)
        assert int(due.sum()) <= 2
        served += [ids[i] for i in np.flatnonzero(due)]
    assert set(served) == set(ids)
    # Never-posed tracks come first, in row order; then the longest-waiting.
    assert served[:2] == [1, 2] and served[2:4] == [3, 4]


def test_prune_forgets_tracks() -> None:
    sched = PoseScheduler()
    sched.select(0.0, _tracks([1, 2], [_box_at(0), _box_at(300)]))
    sched.prune(np.array([2], dtype=np.int64))
    # Track 1 is new again: posed at once even though it was posed a moment ago.
    assert sched.select(0.01, _tracks([1, 2], [_box_at(0), _box_at(300)])).tolist() == [True, False]


def test_a_track_whose_crops_hold_nobody_slows_down_until_a_person_is_found_again() -> None:
    """A detector false positive (a coat on a stand) costs a full crop each time; after ``empty_after`` empty
    crops it is posed at ``empty_rate_hz`` only, and full rate returns with the first crop that holds a person."""
    settings = ScheduleSettings(max_rate_hz=10.0, stationary_rate_hz=10.0, empty_after=3, empty_rate_hz=1.0)
    sched = PoseScheduler(settings)
    fps = 10.0
    posed: list[float] = []
    for k in range(60):  # 6 s at 10 fps; crops are empty until t = 4 s
        t = k / fps
        tracks = _tracks([7], [_box_at(100.0)])
        due = sched.select(t, tracks)
        if due[0]:
            posed.append(t)
            sched.record_presence(tracks.ids[due], np.array([t >= 4.0]))
    empty_phase = [t for t in posed if t < 4.0]
    # Three empty crops at full rate (0.0, 0.1, 0.2), then about one per second (the scheduler's 10% timestamp
    # tolerance lets 0.9 s pass for 1 s): 1.1, 2.1, 3.1.
    assert empty_phase == pytest.approx([0.0, 0.1, 0.2, 1.1, 2.1, 3.1])
    # The next slow crop (4.1 s, a second after 3.1 s) finds the person: every frame from then on.
    assert [t for t in posed if t >= 4.0] == pytest.approx([4.1 + 0.1 * i for i in range(19)])


def test_empty_backoff_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="empty_after"):
        ScheduleSettings(empty_after=0)
    with pytest.raises(ValueError, match="empty_rate_hz"):
        ScheduleSettings(empty_rate_hz=0.0)
