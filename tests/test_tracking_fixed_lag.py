"""Specification of the fixed-lag output: gaps filled and tracklets joined only where both sides' motion agrees.

Rows are ``frame, id, x1, y1, x2, y2``; people are 100 px tall boxes walking at constant velocity, so a correct
bridge reproduces the true boxes exactly and a wrong one is recognisable.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gaitwatch.tracking.fixed_lag import FixedLagSettings, fixed_lag_rows
from gaitwatch.tracking.track_joiner import TrackJoiner

FPS = 10.0
W, H = 40.0, 100.0


def walk(track_id: int, frames: range | list[int], x0: float, vx: float, y: float = 200.0) -> np.ndarray:
    """Rows of one person whose box centre is at ``x0 + vx * (frame - 1) / FPS`` (px, px/s)."""
    f = np.asarray(list(frames), dtype=np.float64)
    x = x0 + vx * (f - 1) / FPS
    top, bottom = np.full(len(f), y - H / 2), np.full(len(f), y + H / 2)
    rows: np.ndarray = np.column_stack([f, np.full(len(f), float(track_id)), x - W / 2, top, x + W / 2, bottom])
    return rows


def of_id(rows: np.ndarray, track_id: int) -> np.ndarray:
    mine: np.ndarray = rows[rows[:, 1] == track_id]
    return mine


def test_a_gap_on_a_straight_walk_is_filled_with_the_true_boxes() -> None:
    observed = np.vstack([walk(1, range(1, 11), 100, 80), walk(1, range(21, 31), 100, 80)])  # hidden 1 s
    out = fixed_lag_rows(observed, FPS)
    np.testing.assert_allclose(out, walk(1, range(1, 31), 100, 80))


def test_two_tracklets_of_one_walker_are_joined_under_the_first_id() -> None:
    observed = np.vstack([walk(1, range(1, 11), 100, 80), walk(5, range(31, 41), 100, 80)])  # 2 s apart
    out = fixed_lag_rows(observed, FPS)
    np.testing.assert_allclose(out, walk(1, range(1, 41), 100, 80))


def test_a_continuation_that_jumps_away_from_the_motion_is_not_bridged() -> None:
    # Walking right at 80 px/s, then "found again" 150 px behind where the walk would have led, walking left:
    # more likely another person than a straight walk, so the frames in between stay empty.
    before = walk(1, range(1, 11), 100, 80)
    after = walk(1, range(16, 26), 100 + 80 * 1.5 - 150, -80)
    out = fixed_lag_rows(np.vstack([before, after]), FPS)
    assert sorted(out[:, 0].astype(int).tolist()) == [*range(1, 11), *range(16, 26)]
    # Under two ids, the same pair of tracklets is not joined either.
    other = after.copy()
    other[:, 1] = 2
    np.testing.assert_allclose(fixed_lag_rows(np.vstack([before, other]), FPS)[:, 1].tolist().count(2), len(after))


def test_a_wrong_candidate_is_not_joined_and_keeps_its_id() -> None:
    a = walk(1, range(1, 11), 100, 80)
    # Two tracks start after a 1 s gap: b where a's walk leads, c right where a was last seen but walking back.
    b = walk(2, range(21, 31), 100, 80)
    c = walk(3, range(21, 31), 172 + 80 * 2.0, -80)
    assert c[0, 2] == pytest.approx(a[-1, 2])
    out = fixed_lag_rows(np.vstack([a, b, c]), FPS)
    np.testing.assert_allclose(of_id(out, 1), walk(1, range(1, 31), 100, 80))
    np.testing.assert_allclose(of_id(out, 3), c)
    assert set(out[:, 1].astype(int).tolist()) == {1, 3}


def test_two_people_crossing_while_hidden_are_joined_to_the_right_halves() -> None:
    # A walks right, B walks left on nearly the same line; both are unseen for 1.5 s while they pass each other,
    # and the tracker restarts both with new ids on the far side. Joining by position alone would swap them.
    a0, b0 = walk(1, range(1, 16), 100, 80), walk(2, range(1, 16), 420, -80, y=205.0)
    a1, b1 = walk(3, range(31, 46), 100, 80), walk(4, range(31, 46), 420, -80, y=205.0)
    out = fixed_lag_rows(np.vstack([a0, b0, a1, b1]), FPS)
    np.testing.assert_allclose(of_id(out, 1), walk(1, range(1, 46), 100, 80))
    np.testing.assert_allclose(of_id(out, 2), walk(2, range(1, 46), 420, -80, y=205.0))
    assert set(out[:, 1].astype(int).tolist()) == {1, 2}


def test_gaps_longer_than_max_gap_s_are_left_alone() -> None:
    observed = np.vstack([walk(1, range(1, 11), 100, 80), walk(2, range(41, 51), 100, 80)])  # 3.1 s apart
    out = fixed_lag_rows(observed, FPS, FixedLagSettings(max_gap_s=3.0))
    np.testing.assert_allclose(out, observed)
    longer = fixed_lag_rows(observed, FPS, FixedLagSettings(max_gap_s=3.5))
    np.testing.assert_allclose(longer, walk(1, range(1, 51), 100, 80))


def test_a_side_with_a_single_observation_has_no_velocity_and_is_not_bridged() -> None:
    # A slow walker (20 px/s): the boxes on both sides overlap, so a velocity of 0 would pass the test; but
    # a single box gives no velocity at all, and the gap stays empty.
    observed = np.vstack([walk(1, [1], 100, 20), walk(1, range(6, 16), 100, 20)])
    np.testing.assert_allclose(fixed_lag_rows(observed, FPS), observed)
    # The velocity window decides what counts as "one observation": 0.5 s before the gap holds one box here.
    sparse = np.vstack([walk(1, [1, 10], 100, 80), walk(1, range(16, 26), 100, 80)])
    narrow = fixed_lag_rows(sparse, FPS, FixedLagSettings(velocity_window_s=0.5))
    assert len(narrow) == len(sparse)
    wide = fixed_lag_rows(sparse, FPS, FixedLagSettings(velocity_window_s=1.0))
    assert sorted(wide[:, 0].astype(int).tolist()) == [1, *range(10, 26)]


def test_zero_max_gap_returns_the_rows_sorted_and_unchanged() -> None:
    observed = np.vstack([walk(2, range(1, 4), 300, 0), walk(1, [1, 5], 100, 80)])
    out = fixed_lag_rows(observed, FPS, FixedLagSettings(max_gap_s=0.0))
    np.testing.assert_array_equal(out, observed[np.lexsort((observed[:, 1], observed[:, 0]))])
    assert fixed_lag_rows(np.zeros((0, 6)), FPS).shape == (0, 6)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="more than one box"):
        fixed_lag_rows(np.vstack([walk(1, [1, 2], 100, 0), walk(1, [2], 100, 0)]), FPS)
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        fixed_lag_rows(np.zeros((3, 5)), FPS)
    with pytest.raises(ValueError, match="frame_rate"):
        fixed_lag_rows(walk(1, [1], 100, 0), 0.0)
    with pytest.raises(ValueError, match="max_gap_s"):
        FixedLagSettings(max_gap_s=-1.0)
    with pytest.raises(ValueError, match="min_overlap"):
        FixedLagSettings(min_overlap=1.0)


tracklet = st.tuples(
    st.integers(1, 60),  # first frame
    st.integers(1, 25),  # length
    st.floats(0.0, 600.0),  # start x
    st.floats(-150.0, 150.0),  # px/s
    st.sampled_from([150.0, 200.0, 260.0]),  # y
)


@settings(max_examples=150, deadline=None)
@given(st.lists(tracklet, min_size=1, max_size=8), st.integers(0, 40))
def test_every_observed_box_is_kept_and_no_id_has_two_boxes_on_a_frame(
    parts: list[tuple[int, int, float, float, float]], drop_seed: int
) -> None:
    rng = np.random.default_rng(drop_seed)
    rows = []
    for track_id, (first, length, x0, vx, y) in enumerate(parts, start=1):
        frames = [f for f in range(first, first + length) if rng.random() > 0.3] or [first]
        rows.append(walk(track_id, frames, x0, vx, y))
    observed = np.vstack(rows)
    out = fixed_lag_rows(observed, FPS)
    # Every observed box is still there, on its frame (possibly under the id of an earlier tracklet).
    key = {(int(r[0]), *np.round(r[2:], 6).tolist()) for r in out}
    assert all((int(r[0]), *np.round(r[2:], 6).tolist()) in key for r in observed)
    pairs = out[:, :2].astype(np.int64)
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    # Ids only ever merge into an existing one, and output is sorted by frame then id.
    assert set(out[:, 1].tolist()) <= set(observed[:, 1].tolist())
    assert np.all(np.diff(out[:, 0]) >= 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_the_causal_joiner_links_what_the_fixed_lag_pass_links(seed: int) -> None:
    # One rule, two moments: people walking at their own pace in both directions, each broken into tracklets by
    # short losses (a new id after each); the joiner, fed frame by frame as the online tracker reports them
    # (a track held 2 s after its last box), makes exactly the links the fixed-lag pass makes afterwards.
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    next_id = 1
    for person in range(3):
        vx = float(rng.choice([-1.0, 1.0]) * rng.uniform(30.0, 120.0))
        frame, x0, y = 1 + int(rng.integers(0, 20)), float(rng.uniform(100.0, 700.0)), 150.0 + 250.0 * person
        while frame < 150:
            length = int(rng.integers(12, 40))
            rows.append(walk(next_id, range(frame, frame + length), x0, vx, y))
            next_id += 1
            frame += length + int(rng.integers(2, 25))  # hidden 0.1-2.4 s
    observed = np.vstack(rows)
    observed[:, 2:] += rng.normal(0.0, 1.5, size=(len(observed), 4))
    out = fixed_lag_rows(observed, FPS)
    expected: dict[int, int] = {}
    for track_id in np.unique(observed[:, 1]):
        first = observed[observed[:, 1] == track_id][0]
        head = out[(out[:, 0] == first[0]) & np.all(out[:, 2:] == first[2:], axis=1), 1]
        expected[int(track_id)] = int(head[0])
    joiner = TrackJoiner()
    causal: dict[int, int] = {}
    last_frame = {int(i): int(observed[observed[:, 1] == i, 0].max()) for i in np.unique(observed[:, 1])}
    first_frame = {int(i): int(observed[observed[:, 1] == i, 0].min()) for i in np.unique(observed[:, 1])}
    for frame in range(1, int(observed[:, 0].max()) + 2 + int(4 * FPS)):
        now = observed[observed[:, 0] == frame]
        alive = [i for i in last_frame if first_frame[i] <= frame <= last_frame[i] + 2 * FPS]
        for join in joiner.update(frame / FPS, now[:, 1].astype(np.int64), now[:, 2:6], alive):
            causal[join.online_id] = join.joined_id
    assert any(track != head for track, head in expected.items()), "a scenario with links"
    assert {i: causal.get(i, i) for i in last_frame} == expected
