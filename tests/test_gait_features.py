"""Window analysis on synthetic walkers with known cadence (ground truth from the generator's step times)."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.gait.feature_names import Feature
from gaitwatch.gait.features import analyze_window
from gaitwatch.gait.offline.synthetic import CameraView, PoseNoise, SyntheticWalk, WalkerParams, generate_walk
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.types import ActivityState, GaitWindow
from gaitwatch.pose.keypoints import LEG_PAIRS, Landmark


def _window(walk: SyntheticWalk, t0: float, t1: float) -> GaitWindow:
    sel = (walk.t >= t0) & (walk.t <= t1)
    return GaitWindow(5, walk.t[sel], walk.keypoints[sel], walk.world[sel])


@pytest.mark.parametrize("fps", [7.0, 15.0, 30.0])
@pytest.mark.parametrize("cadence", [80.0, 90.0, 100.0, 110.0, 120.0, 130.0])
def test_cadence_within_2_spm_side_view(fps: float, cadence: float) -> None:
    walk = generate_walk(WalkerParams(cadence_spm=cadence), fps=fps, duration_s=10.0, seed=int(cadence))
    win = _window(walk, 1.0, 9.0)
    m = analyze_window(win, GaitSettings())
    truth = walk.truth(float(win.t[0]), float(win.t[-1]))["cadence_spm"]
    assert m.valid and m.state == ActivityState.WALKING
    assert m.cadence_spm is not None
    assert abs(m.cadence_spm - truth) <= 2.0
    assert 0.5 < m.quality <= 1.0
    assert all(np.isfinite(v) for v in m.features.values())


@pytest.mark.parametrize("view_deg", [0.0, 45.0])
def test_cadence_frontal_and_oblique_views(view_deg: float) -> None:
    walk = generate_walk(
        WalkerParams(cadence_spm=105.0), CameraView(view_deg=view_deg), fps=15.0, duration_s=10.0, seed=3
    )
    win = _window(walk, 1.0, 9.0)
    m = analyze_window(win)
    truth = walk.truth(float(win.t[0]), float(win.t[-1]))["cadence_spm"]
    assert m.valid and m.cadence_spm is not None
    assert abs(m.cadence_spm - truth) <= 2.0


@pytest.mark.parametrize("fps", [7.0, 30.0])
def test_standing_person_is_not_walking(fps: float) -> None:
    walk = generate_walk(WalkerParams(activity="standing"), fps=fps, duration_s=10.0, seed=1)
    m = analyze_window(_window(walk, 0.0, 10.0))
    assert not m.valid
    assert m.cadence_spm is None
    assert m.state == ActivityState.STANDING
    assert m.quality > 0.5  # well seen: it is the standing, not the view, that makes it invalid


def test_long_gap_makes_window_invalid() -> None:
    walk = generate_walk(WalkerParams(), fps=30.0, duration_s=10.0, seed=2, noise=PoseNoise(frame_drop=0.0))
    keep = (walk.t < 4.0) | (walk.t > 5.5)  # 1.5 s without any pose: neither side holds 5 s
    win = GaitWindow(1, walk.t[keep], walk.keypoints[keep], walk.world[keep])
    m = analyze_window(_window_from(win, 1.0, 9.0))
    assert not m.valid and m.cadence_spm is None


def _window_from(win: GaitWindow, t0: float, t1: float) -> GaitWindow:
    sel = (win.t >= t0) & (win.t <= t1)
    return GaitWindow(win.track_id, win.t[sel], win.keypoints[sel], win.world[sel])


def test_short_or_poorly_seen_window_is_invalid() -> None:
    walk = generate_walk(WalkerParams(), fps=30.0, duration_s=10.0, seed=4)
    short = analyze_window(_window(walk, 1.0, 4.0))
    assert not short.valid and short.cadence_spm is None
    dim = _window(walk, 1.0, 9.0)
    kp = dim.keypoints.copy()
    kp[:, :, 2] = 0.2  # the pose model barely sees anyone
    m = analyze_window(GaitWindow(dim.track_id, dim.t, kp, dim.world))
    assert not m.valid and m.quality < 0.35


def test_cadence_is_rate_independent_when_frames_are_irregular() -> None:
    # Timestamps jitter by 15 ms and 6 % of frames are dropped: the uniform resampling absorbs both.
    noise = PoseNoise(time_jitter_s=0.015, frame_drop=0.06)
    walk = generate_walk(WalkerParams(cadence_spm=118.0), noise=noise, fps=15.0, duration_s=10.0, seed=5)
    win = _window(walk, 1.0, 9.0)
    m = analyze_window(win)
    truth = walk.truth(float(win.t[0]), float(win.t[-1]))["cadence_spm"]
    assert m.valid and m.cadence_spm is not None and abs(m.cadence_spm - truth) <= 2.0


def test_steps_that_cannot_carry_the_body_make_the_window_invalid() -> None:
    # The legs seen at 0.3 of their real swing (a small, blurred walker) while the pelvis crosses the view
    # at full speed: the steps explain a third of the progression, so cadence and step length are not trusted.
    walk = generate_walk(WalkerParams(cadence_spm=105.0), fps=15.0, duration_s=10.0, seed=6)
    win = _window(walk, 1.0, 9.0)
    seen = analyze_window(win)
    assert seen.valid and 0.7 <= seen.features[Feature.STEP_PROGRESS] <= 1.4
    kp = win.keypoints.copy()
    pelvis_x = kp[:, [Landmark.LEFT_HIP, Landmark.RIGHT_HIP], 0].mean(axis=1, keepdims=True)
    legs = [landmark for pair in LEG_PAIRS for landmark in pair]  # knees, ankles, heels, toes
    kp[:, legs, 0] = pelvis_x + 0.3 * (kp[:, legs, 0] - pelvis_x)
    world = win.world.copy()  # the pose model's 3-D landmarks (hip-centred metres) misread the same way
    world[:, legs, 0] *= 0.3
    world[:, legs, 2] *= 0.3
    misread = GaitWindow(win.track_id, win.t, kp, world)
    m = analyze_window(misread)
    assert m.features[Feature.STEP_PROGRESS] < 0.5
    assert not m.valid and m.cadence_spm is None
    # The check is what rejects it: switched off, the same window passes as walking.
    assert analyze_window(misread, GaitSettings(min_step_progress=0.0)).valid
