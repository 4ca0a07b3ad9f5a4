"""Robustness of the gait stage to real pose-model output: healthy walkers seen the way BlazePose saw the real
pedestrians of PETS09-S2L1 (7 fps, high camera, noisy feet, left/right swaps, bursts of lost frames) must give
correct cadence and no alert; swaps are repaired; stops are timed; freezing needs recurrent stops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.features import analyze_window
from gaitwatch.gait.offline.replay import analyze_recording
from gaitwatch.gait.offline.synthetic import (
    CameraView,
    PoseNoise,
    SyntheticWalk,
    WalkerParams,
    generate_walk,
    realistic_noise,
    sample_walker,
)
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.gait.swaps import repair_swaps
from gaitwatch.gait.types import ActivityState, AlertType, Assessment, GaitLabel, GaitMetrics, GaitWindow
from gaitwatch.pose.keypoints import Landmark

# The medians measured on the real recording (see the comment above gaitwatch.gait.offline.synthetic.realistic_noise).
REAL_LIKE = PoseNoise(
    jitter=0.0075,
    limb_jitter=3.0,
    jitter_corr_s=0.3,
    outlier=0.07,
    swap=0.14,
    swap_s=0.15,
    frame_drop=0.12,
    drop_burst_s=0.25,
    landmark_drop=0.03,
    world_depth=0.4,
)
# A camera high on a wall looking down, as over the PETS09 campus.
HIGH_CAMERA_M, HIGH_TILT_DEG = 8.0, 35.0
# Research-use footage, read in place and never copied into the repository (nor any recording of it).
VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest.avi"


def _healthy_crowd(fps: float, noise: PoseNoise | None, n: int, seed: int) -> tuple[Recording, list[SyntheticWalk]]:
    """``n`` healthy walkers, one track each, walking in every direction past a high camera."""
    rng = np.random.default_rng(seed)
    ids, ts, kps, worlds, walks = [], [], [], [], []
    for i in range(n):
        params = sample_walker("normal", rng, 25.0)
        camera = CameraView(view_deg=float(rng.uniform(0.0, 90.0)), height_m=HIGH_CAMERA_M, tilt_deg=HIGH_TILT_DEG)
        walk = generate_walk(
            params,
            camera,
            noise if noise is not None else realistic_noise(rng),
            fps=fps,
            duration_s=25.0,
            seed=seed + i,
        )
        ids.append(np.full(walk.t.shape[0], i + 1))
        ts.append(walk.t + 100.0 * i)  # one after the other, as tracks of one camera
        kps.append(walk.keypoints)
        worlds.append(walk.world)
        walks.append(walk)
    rec = Recording(np.concatenate(ids), np.concatenate(ts), np.concatenate(kps), np.concatenate(worlds), {"fps": fps})
    return rec, walks


@pytest.mark.parametrize(("fps", "noise"), [(7.0, REAL_LIKE), (15.0, None)])
def test_healthy_walkers_with_real_pose_noise_raise_no_alert(fps: float, noise: PoseNoise | None) -> None:
    # 7 fps with the noise measured on real footage; 15 fps with noise drawn over the whole realistic range.
    rec, walks = _healthy_crowd(fps, noise, n=8, seed=int(fps) * 100)
    result = analyze_recording(rec)
    assert result.alerts == ()
    valid = [w.metrics for w in result.windows if w.metrics.valid]
    assert len(valid) >= 40
    errors = []
    for m in valid:
        walk = walks[m.track_id - 1]
        offset = 100.0 * (m.track_id - 1)
        truth = walk.truth(m.t_start - offset, m.t_end - offset)["cadence_spm"]
        assert m.cadence_spm is not None and m.state == ActivityState.WALKING
        errors.append(abs(m.cadence_spm - truth))
    # No step/stride (half or double frequency) confusion despite the swaps: cadence stays put.
    assert float(np.median(errors)) <= 2.0
    assert float(np.mean(np.asarray(errors) <= 6.0)) >= 0.9


@pytest.mark.parametrize(("fps", "noise"), [(7.0, REAL_LIKE), (15.0, None)])
def test_brisk_healthy_walkers_are_normal(fps: float, noise: PoseNoise | None) -> None:
    # People in a hurry step at 128-140 steps/min, and a pose model reads their steps shorter than they are (a
    # real brisk pedestrian of vtest.avi: 0.44-0.56 leg lengths at 130 steps/min, pelvis at 0.7-0.8 body
    # heights/s). A model that had never seen a healthy 130 steps/min called them shufflers (a shuffler steps
    # as fast, with steps under half a leg length).
    rng = np.random.default_rng(int(fps) * 7)
    verdicts = []
    for i in range(6):
        params = WalkerParams(
            cadence_spm=float(rng.uniform(128.0, 140.0)), step_length_scale=float(rng.uniform(0.75, 0.9))
        )
        camera = CameraView(view_deg=float(rng.uniform(60.0, 90.0)), height_m=HIGH_CAMERA_M, tilt_deg=HIGH_TILT_DEG)
        walk = generate_walk(
            params, camera, noise if noise is not None else realistic_noise(rng), fps=fps, duration_s=12.0, seed=i
        )
        sel = (walk.t >= 2.0) & (walk.t <= 10.0)
        m = analyze_window(GaitWindow(i, walk.t[sel], walk.keypoints[sel], walk.world[sel]))
        if m.valid:
            verdicts.append(GaitClassifier().assess(m).label)
    assert len(verdicts) >= 4
    assert all(label == GaitLabel.NORMAL for label in verdicts)


@pytest.mark.parametrize("fps", [7.0, 15.0])
def test_leg_swaps_are_repaired_and_clean_labels_kept(fps: float) -> None:
    params = WalkerParams(cadence_spm=105.0)
    clean = generate_walk(params, noise=PoseNoise(swap=0.0), fps=fps, duration_s=20.0, seed=3)
    swapped = generate_walk(params, noise=PoseNoise(swap=0.15, swap_s=0.15), fps=fps, duration_s=20.0, seed=3)
    assert np.array_equal(clean.t, swapped.t)  # same frames, only the labels differ
    f_stride = params.cadence_spm / 120.0
    la, ra = Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE

    def wrong(kp: NDArray[np.float32]) -> NDArray[np.bool_]:
        # Samples where the feet are clearly apart and the left ankle sits where the clean right one is.
        sep = clean.keypoints[:, la, :2] - clean.keypoints[:, ra, :2]
        apart = np.linalg.norm(sep, axis=1) > 0.5 * np.percentile(np.linalg.norm(sep, axis=1), 90)
        moved = np.linalg.norm(kp[:, la, :2] - clean.keypoints[:, la, :2], axis=1)
        to_other = np.linalg.norm(kp[:, la, :2] - clean.keypoints[:, ra, :2], axis=1)
        out: NDArray[np.bool_] = apart & (to_other < moved)
        return out

    before = int(np.count_nonzero(wrong(swapped.keypoints)))
    assert before >= 10
    win = GaitWindow(1, swapped.t, swapped.keypoints, swapped.world)
    after = int(np.count_nonzero(wrong(repair_swaps(win, f_stride, 0.5).window.keypoints)))
    assert after <= 0.2 * before
    # Correct labels are left alone.
    untouched = repair_swaps(GaitWindow(1, clean.t, clean.keypoints, clean.world), f_stride, 0.5)
    assert untouched.foot_fraction <= 0.02


@pytest.mark.parametrize("fps", [7.0, 30.0])
def test_a_stop_is_timed_and_dropped_frames_are_not_stops(fps: float) -> None:
    freeze = WalkerParams(cadence_spm=110.0, freezes=((4.0, 2.5),))
    walk = generate_walk(freeze, noise=PoseNoise(swap=0.0, frame_drop=0.0), fps=fps, duration_s=12.0, seed=5)
    sel = (walk.t >= 1.0) & (walk.t <= 9.5)
    m = analyze_window(GaitWindow(1, walk.t[sel], walk.keypoints[sel], walk.world[sel]))
    assert m.features["halt_s"] == pytest.approx(2.5, abs=0.6)
    assert m.features["halt_t"] == pytest.approx(5.25, abs=0.6)
    # Bursts of lost frames at 7 fps are bridged by interpolation but never make a stop.
    steady = generate_walk(WalkerParams(cadence_spm=110.0), noise=REAL_LIKE, fps=fps, duration_s=12.0, seed=6)
    sel = (steady.t >= 1.0) & (steady.t <= 9.5)
    m = analyze_window(GaitWindow(1, steady.t[sel], steady.keypoints[sel], steady.world[sel]))
    assert m.features.get("halt_s", 0.0) == 0.0


def _freezing_window(t_end: float, halt_t: float) -> tuple[GaitMetrics, Assessment]:
    m = GaitMetrics(1, t_end - 8.0, t_end, True, 0.9, ActivityState.WALKING, 100.0, {"halt_s": 1.6, "halt_t": halt_t})
    return m, Assessment(1, GaitLabel.ABNORMAL, 0.9, "freezing")


def test_freezing_alert_needs_recurrent_stops_and_one_stop_raises_nothing() -> None:
    policy = AlertPolicy(AlertPolicySettings())
    # One stop at t=20 s seen by every window overlapping it: a pause, not a freezing alert, and not an
    # abnormal-gait alert either (its windows speak for freezing only).
    out = []
    for t_end in np.arange(22.0, 29.0, 1.0):
        out += policy.update(*_freezing_window(float(t_end), 20.0 + 0.05 * (t_end - 22.0)))
    assert out == []
    # A second, distinct stop later: freezing recurs, the alert starts.
    for t_end in np.arange(42.0, 45.0, 1.0):
        out += policy.update(*_freezing_window(float(t_end), 40.0))
    assert [(a.type, a.phase.value) for a in out] == [(AlertType.FREEZING, "start")]
    assert AlertType.ABNORMAL_GAIT not in policy.active(1)


def test_freezing_pattern_without_a_stop_never_counts_as_freezing() -> None:
    policy = AlertPolicy(AlertPolicySettings())
    out = []
    for k in range(10):
        m = GaitMetrics(1, 10.0 + k, 18.0 + k, True, 0.9, ActivityState.WALKING, 100.0, {"halt_s": 0.0})
        out += policy.update(m, Assessment(1, GaitLabel.ABNORMAL, 0.9, "freezing"))
    assert AlertType.FREEZING not in {a.type for a in out}


def test_settings_reject_bad_robustness_knobs() -> None:
    with pytest.raises(ValueError):
        GaitSettings(max_swap_fraction=1.5)
    with pytest.raises(ValueError):
        GaitSettings(min_event_snr=-1.0)
    with pytest.raises(ValueError):
        AlertPolicySettings(freezing_min_episodes=0)
    # NaN compares false with everything: a check written "< 0" let it through, and every window after it was
    # silently valid (or never); inf windows never fill.
    for knob in ("min_step_progress", "min_event_snr", "min_strides", "min_stride_snr"):
        with pytest.raises(ValueError, match=knob):
            GaitSettings(**{knob: float("nan")})
    with pytest.raises(ValueError, match="window_s"):
        GaitSettings(window_s=float("inf"))


@pytest.mark.slow
@pytest.mark.skipif(not VTEST.is_file(), reason=f"needs the PETS09-S2L1 footage at {VTEST}")
def test_real_pedestrians_of_pets09_walk_normally() -> None:
    """The first 400 frames (57 s at the footage's true 7 fps) through the real pipeline (HOG, tracker,
    BlazePose, temporal filter): healthy pedestrians, so no alert, and a plausible cadence. About 40 s."""
    from gaitwatch.tools.cmd_record import offline_settings
    from gaitwatch.tools.recorder import record_video

    rec = record_video(VTEST, offline_settings(None, VTEST), fps=7.0, max_frames=400)
    result = analyze_recording(rec)
    assert [a for a in result.alerts if a.type in (AlertType.ABNORMAL_GAIT, AlertType.FREEZING, "fall")] == []
    cadence = np.array([w.metrics.cadence_spm for w in result.windows if w.metrics.valid], dtype=float)
    assert cadence.shape[0] >= 40
    assert float(np.mean((cadence >= 80.0) & (cadence <= 130.0))) >= 0.8


@pytest.mark.parametrize("fps", [7.0, 30.0])
def test_a_stop_at_the_window_edge_is_starting_or_ending_a_walk_not_a_freeze(fps: float) -> None:
    # Someone walks, stops for 6 s (e.g. to talk), then walks on: windows that see only the end of the walk or
    # only its restart carry no freezing evidence; the stop must be bracketed by steps to count.
    stop = WalkerParams(cadence_spm=110.0, freezes=((6.0, 6.0),))
    walk = generate_walk(stop, noise=PoseNoise(swap=0.0, frame_drop=0.0), fps=fps, duration_s=20.0, seed=7)
    for start, end in ((2.0, 10.5), (9.0, 17.5)):
        sel = (walk.t >= start) & (walk.t <= end)
        m = analyze_window(GaitWindow(1, walk.t[sel], walk.keypoints[sel], walk.world[sel]))
        assert m.features.get("halt_s", 0.0) == 0.0, (start, end)
