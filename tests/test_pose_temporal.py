"""Per-track temporal processing: swap repair on generated walking, smoothing that keeps gait, gap marking."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from gaitwatch.pose.keypoints import NUM_LANDMARKS, Landmark
from gaitwatch.pose.temporal import (
    ARM_PAIRS,
    LEG_PAIRS,
    SWAP_ARMS,
    SWAP_LEGS,
    PoseTemporalFilter,
    PoseTrackFilter,
    TemporalSettings,
    mirror_groups,
    torso_length,
)
from gaitwatch.pose.types import Poses

L = Landmark


@dataclass(frozen=True)
class Walk:
    """A generated walking person: times (M,), image landmarks (M, 33, 3) and world landmarks (M, 33, 3)."""

    t: NDArray[np.float64]
    keypoints: NDArray[np.float64]
    world: NDArray[np.float64]


def walk(
    *,
    view_deg: float,
    rate_hz: float,
    duration_s: float = 12.0,
    height_px: float = 220.0,
    stride_hz: float = 0.9,
    speed_mps: float = 1.1,
    noise_torso: float = 0.015,
    seed: int = 0,
) -> Walk:
    """A person 1.7 m tall walking along a line at ``view_deg`` to the image plane (0 = across the image,
    90 = towards the camera), seen with an orthographic camera at irregular times around ``rate_hz``.

    Legs swing +-25 degrees at the hip with knee flexion in swing, arms swing opposite to the legs; image
    positions get Gaussian jitter of ``noise_torso`` torso lengths, as a pose model's would.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * rate_hz)
    t = np.cumsum(rng.uniform(0.7, 1.3, n) / rate_hz)  # irregular sampling, like a pose-rate cap on a camera
    body_h = 1.7
    kp3 = np.zeros((n, NUM_LANDMARKS, 3))  # (forward, lateral, up) metres
    w = 2 * math.pi * stride_hz * t
    fwd = speed_mps * t
    bob = 0.02 * np.cos(2 * w)
    thigh, shank = 0.245 * body_h, 0.245 * body_h
    for side, sign, phase in (("LEFT", 1.0, 0.0), ("RIGHT", -1.0, math.pi)):
        hip = np.stack([fwd, np.full(n, sign * 0.09 * body_h), 0.52 * body_h + bob], axis=1)
        theta = np.radians(25.0) * np.sin(w + phase)
        knee_flex = np.radians(30.0) * np.clip(np.sin(w + phase + math.pi / 2), 0.0, None)
        knee = hip + thigh * np.stack([np.sin(theta), np.zeros(n), -np.cos(theta)], axis=1)
        ankle = knee + shank * np.stack([np.sin(theta - knee_flex), np.zeros(n), -np.cos(theta - knee_flex)], 1)
        shoulder = np.stack([fwd, np.full(n, sign * 0.11 * body_h), 0.82 * body_h + bob], axis=1)
        psi = -np.radians(20.0) * np.sin(w + phase)
        elbow = shoulder + 0.17 * body_h * np.stack([np.sin(psi), np.zeros(n), -np.cos(psi)], axis=1)
        wrist = elbow + 0.15 * body_h * np.stack([np.sin(psi + 0.3), np.zeros(n), -np.cos(psi + 0.3)], axis=1)
        kp3[:, Landmark[f"{side}_HIP"]] = hip
        kp3[:, Landmark[f"{side}_KNEE"]] = knee
        kp3[:, Landmark[f"{side}_ANKLE"]] = ankle
        kp3[:, Landmark[f"{side}_HEEL"]] = ankle + np.array([-0.04, 0.0, -0.03]) * body_h
        kp3[:, Landmark[f"{side}_FOOT_INDEX"]] = ankle + np.array([0.1, 0.0, -0.04]) * body_h
        kp3[:, Landmark[f"{side}_SHOULDER"]] = shoulder
        kp3[:, Landmark[f"{side}_ELBOW"]] = elbow
        kp3[:, Landmark[f"{side}_WRIST"]] = wrist
        for hand in ("PINKY", "INDEX", "THUMB"):
            kp3[:, Landmark[f"{side}_{hand}"]] = wrist + np.array([0.02, 0.0, -0.04]) * body_h
        kp3[:, Landmark[f"{side}_EYE"]] = np.stack([fwd + 0.06, np.full(n, sign * 0.03), 0.93 * body_h + bob], 1)
        kp3[:, Landmark[f"{side}_EYE_INNER"]] = kp3[:, Landmark[f"{side}_EYE"]] - np.array([0.0, sign * 0.01, 0.0])
        kp3[:, Landmark[f"{side}_EYE_OUTER"]] = kp3[:, Landmark[f"{side}_EYE"]] + np.array([-0.01, sign * 0.01, 0.0])
        kp3[:, Landmark[f"{side}_EAR"]] = np.stack([fwd, np.full(n, sign * 0.075), 0.92 * body_h + bob], 1)
    kp3[:, L.MOUTH_LEFT] = kp3[:, L.LEFT_EYE] + np.array([0.0, -0.01, -0.07])
    kp3[:, L.MOUTH_RIGHT] = kp3[:, L.RIGHT_EYE] + np.array([0.0, 0.01, -0.07])
    kp3[:, L.NOSE] = np.stack([fwd + 0.1, np.zeros(n), 0.9 * body_h + bob], axis=1)

    phi = math.radians(view_deg)
    px_per_m = height_px / body_h
    # Orthographic view: the image x axis mixes forward and lateral by the walking direction's angle.
    x_img = 100.0 + px_per_m * (kp3[..., 0] * math.cos(phi) - kp3[..., 1] * math.sin(phi))
    if view_deg >= 45.0:
        x_img = x_img - px_per_m * fwd[:, None] * math.cos(phi) + 300.0  # keep a person walking at us in view
    y_img = 400.0 - px_per_m * kp3[..., 2]
    keypoints = np.zeros((n, NUM_LANDMARKS, 3))
    keypoints[..., 0], keypoints[..., 1], keypoints[..., 2] = x_img, y_img, 0.95
    torso = 0.3 * height_px
    keypoints[..., :2] += rng.normal(0.0, noise_torso * torso, size=(n, NUM_LANDMARKS, 2))
    hip_mid = kp3[:, [L.LEFT_HIP, L.RIGHT_HIP]].mean(axis=1, keepdims=True)
    world = kp3 - hip_mid
    return Walk(t, keypoints, world)


def inject_swaps(
    keypoints: NDArray[np.float64], bit: int, rate: float, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Swap a limb group's left/right labels in runs of 1-5 frames covering about ``rate`` of the frames."""
    rng = np.random.default_rng(seed)
    n = keypoints.shape[0]
    swapped = np.zeros(n, dtype=bool)
    i = 3  # leave the first frames clean: a track's very first pose has nothing to be compared with
    while i < n:
        i += int(rng.geometric(rate / 3.0))
        run = int(rng.integers(1, 6))
        swapped[i : i + run] = True
        i += run + 1
    out = keypoints.copy()
    for k in np.flatnonzero(swapped):
        out[k] = mirror_groups(keypoints[k], bit)
    return out, swapped


def separation(keypoints: NDArray[np.float64], pairs: tuple[tuple[Landmark, Landmark], ...]) -> NDArray[np.float64]:
    """RMS left-right distance of a group per frame in torso lengths (how far a swap moves its points)."""
    d = np.stack([np.sum((keypoints[:, a, :2] - keypoints[:, b, :2]) ** 2, axis=-1) for a, b in pairs])
    torso = np.array([torso_length(k) for k in keypoints])
    return np.asarray(np.sqrt(d.mean(axis=0)) / torso, dtype=np.float64)


def run_filter(w: Walk, keypoints: NDArray[np.float64], settings: TemporalSettings | None = None) -> NDArray[np.uint8]:
    filt = PoseTrackFilter(settings)
    flags = np.zeros(len(w.t), dtype=np.uint8)
    for k in range(len(w.t)):
        _, _, _, flags[k] = filt.update(float(w.t[k]), keypoints[k], w.world[k])
    return flags


SCENARIOS = [
    pytest.param(0.0, 30.0, id="side-30Hz"),
    pytest.param(0.0, 12.0, id="side-12Hz"),
    pytest.param(30.0, 20.0, id="oblique-20Hz"),
    pytest.param(90.0, 15.0, id="frontal-15Hz"),
]


@pytest.mark.parametrize(("view_deg", "rate_hz"), SCENARIOS)
def test_swap_repair_creates_no_swaps_on_clean_walking(view_deg: float, rate_hz: float) -> None:
    for seed in range(3):
        w = walk(view_deg=view_deg, rate_hz=rate_hz, seed=seed)
        flags = run_filter(w, w.keypoints)
        assert int(np.count_nonzero(flags)) == 0


# A swap matters only where the two sides are apart: exchanging the labels of two ankles that are passing
# each other moves no point. Frames whose sides are closer than this (torso lengths) are not scored.
_MIN_SEPARATION = 0.1


@pytest.mark.parametrize(("view_deg", "rate_hz"), SCENARIOS)
@pytest.mark.parametrize(("bit", "pairs"), [(SWAP_LEGS, LEG_PAIRS), (SWAP_ARMS, ARM_PAIRS)], ids=["legs", "arms"])
def test_swap_repair_removes_injected_swaps(
    view_deg: float, rate_hz: float, bit: int, pairs: tuple[tuple[Landmark, Landmark], ...]
) -> None:
    injected_total = repaired_total = created_total = 0
    for seed in range(3):
        w = walk(view_deg=view_deg, rate_hz=rate_hz, seed=seed)
        corrupted, injected = inject_swaps(w.keypoints, bit, rate=0.15, seed=seed + 10)
        flags = run_filter(w, corrupted)
        fixed = (flags & bit) != 0
        scored = separation(w.keypoints, pairs) >= _MIN_SEPARATION
        injected_total += int((injected & scored).sum())
        repaired_total += int((fixed & injected & scored).sum())
        created_total += int((fixed & ~injected & scored).sum())
    assert injected_total > 40
    assert repaired_total >= 0.95 * injected_total
    assert created_total <= 0.02 * injected_total


def test_swap_repair_stays_off_when_poses_are_too_sparse_to_predict() -> None:
    """Below ~10 Hz a swing leg moves too far between poses: repair must not guess (it would invent swaps)."""
    w = walk(view_deg=0.0, rate_hz=6.0, seed=1)
    corrupted, _ = inject_swaps(w.keypoints, SWAP_LEGS, rate=0.15, seed=3)
    assert int(np.count_nonzero(run_filter(w, corrupted))) == 0
    assert int(np.count_nonzero(run_filter(w, w.keypoints))) == 0


def test_swap_repair_moves_world_landmarks_and_visibility_with_their_label() -> None:
    w = walk(view_deg=90.0, rate_hz=15.0, noise_torso=0.0)
    corrupted = w.keypoints.copy()
    corrupted[:, L.LEFT_ANKLE, 2] = 0.9
    corrupted[:, L.RIGHT_ANKLE, 2] = 0.3  # mark the right ankle by its visibility
    world = w.world.copy()
    k = 20
    corrupted[k] = mirror_groups(corrupted[k], SWAP_LEGS)
    world[k] = mirror_groups(world[k], SWAP_LEGS)
    filt = PoseTrackFilter(TemporalSettings(min_cutoff_hz=1000.0))  # no smoothing: compare exact values
    for i in range(k + 1):
        kp, wd, _, flags = filt.update(float(w.t[i]), corrupted[i], world[i])
    assert flags == SWAP_LEGS
    assert kp[L.LEFT_ANKLE, 2] == pytest.approx(0.9) and kp[L.RIGHT_ANKLE, 2] == pytest.approx(0.3)
    np.testing.assert_allclose(kp[L.LEFT_ANKLE, :2], w.keypoints[k, L.LEFT_ANKLE, :2], atol=0.05)
    np.testing.assert_allclose(wd[L.LEFT_ANKLE], w.world[k, L.LEFT_ANKLE], atol=1e-3)


def _fit_amplitude(t: NDArray[np.float64], x: NDArray[np.float64], f_hz: float) -> float:
    a = np.stack([np.sin(2 * np.pi * f_hz * t), np.cos(2 * np.pi * f_hz * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(a, x, rcond=None)
    return float(np.hypot(coef[0], coef[1]))


@pytest.mark.parametrize("rate_hz", [12.0, 15.0, 30.0])
@pytest.mark.parametrize("amplitude_torso", [0.1, 0.5])
def test_smoothing_keeps_a_2hz_swing_within_5_percent(rate_hz: float, amplitude_torso: float) -> None:
    """A 2 Hz oscillation of gait size (0.1-0.5 torso lengths) keeps >= 95% of its amplitude."""
    rng = np.random.default_rng(4)
    t = np.cumsum(rng.uniform(0.8, 1.2, int(10 * rate_hz)) / rate_hz)
    base = walk(view_deg=0.0, rate_hz=rate_hz, noise_torso=0.0).keypoints[0]
    torso = torso_length(base)
    filt = PoseTrackFilter()
    out_x, out_w = [], []
    signal = amplitude_torso * torso * np.sin(2 * np.pi * 2.0 * t)
    world_signal = 0.05 * np.sin(2 * np.pi * 2.0 * t)  # 5 cm world swing
    for k in range(len(t)):
        kp = base.copy()
        kp[:, 0] += signal[k]
        wd = np.zeros((NUM_LANDMARKS, 3))
        wd[:, 2] = world_signal[k]
        out_kp, out_wd, _, _ = filt.update(float(t[k]), kp, wd)
        out_x.append(out_kp[L.LEFT_ANKLE, 0] - base[L.LEFT_ANKLE, 0])
        out_w.append(out_wd[0, 2])
    steady = t > 2.0  # after the filter's start-up
    got = _fit_amplitude(t[steady], np.array(out_x)[steady], 2.0)
    assert got == pytest.approx(amplitude_torso * torso, rel=0.05)
    assert _fit_amplitude(t[steady], np.array(out_w)[steady], 2.0) == pytest.approx(0.05, rel=0.05)


def test_smoothing_reduces_jitter_of_a_still_person() -> None:
    w = walk(view_deg=0.0, rate_hz=15.0, speed_mps=0.0, stride_hz=0.0, noise_torso=0.02, seed=5)
    filt = PoseTrackFilter()
    truth = walk(view_deg=0.0, rate_hz=15.0, speed_mps=0.0, stride_hz=0.0, noise_torso=0.0, seed=5).keypoints
    err_raw, err_out = [], []
    for k in range(len(w.t)):
        kp, _, _, _ = filt.update(float(w.t[k]), w.keypoints[k], w.world[k])
        if w.t[k] > 2.0:
            err_raw.append(np.abs(w.keypoints[k, :, :2] - truth[k, :, :2]).mean())
            err_out.append(np.abs(kp[:, :2] - truth[k, :, :2]).mean())
    # Gentle by design (gait amplitude comes first): measured 0.84 of the raw error at 15 Hz.
    assert np.mean(err_out) < 0.9 * np.mean(err_raw)


def test_gap_marking_and_restart_after_a_long_pause() -> None:
    w = walk(view_deg=0.0, rate_hz=15.0, noise_torso=0.0)
    settings = TemporalSettings(max_gap_s=0.5)
    filt = PoseTemporalFilter(settings)
    ids = np.array([7], dtype=np.int64)
    gaps = []
    times = list(w.t[:10]) + list(w.t[10:20] + 0.8)  # a 0.8 s hole after the 10th sample
    for k, t in enumerate(times):
        poses = Poses(
            ids,
            w.keypoints[k : k + 1].astype(np.float32),
            w.world[k : k + 1].astype(np.float32),
            np.ones(1, dtype=np.float32),
        )
        out = filt.update(float(t), poses)
        gaps.append(bool(out.gap_before[0]))
        if k == 10:
            # After a gap the output restarts at the observation instead of gliding from stale state.
            np.testing.assert_allclose(out.poses.keypoints[0], w.keypoints[10], atol=1e-3)
    assert gaps[0] and gaps[10]
    assert sum(gaps) == 2
    filt.prune([])
    assert len(filt) == 0


def test_tracks_are_filtered_independently() -> None:
    a = walk(view_deg=0.0, rate_hz=15.0, seed=1)
    b = walk(view_deg=90.0, rate_hz=15.0, seed=2)
    joint = PoseTemporalFilter()
    alone = PoseTrackFilter()
    for k in range(40):
        t = float(a.t[k])
        poses = Poses(
            np.array([1, 2], dtype=np.int64),
            np.stack([a.keypoints[k], b.keypoints[k]]).astype(np.float32),
            np.stack([a.world[k], b.world[k]]).astype(np.float32),
            np.ones(2, dtype=np.float32),
        )
        out = joint.update(t, poses)
        kp_alone, _, _, _ = alone.update(t, a.keypoints[k].astype(np.float32), a.world[k].astype(np.float32))
        np.testing.assert_allclose(out.poses.keypoints[0], kp_alone, atol=1e-4)
    assert np.array_equal(out.poses.track_ids, [1, 2])


def test_pairs_are_left_right_mirrors() -> None:
    for left, right in (*LEG_PAIRS, *ARM_PAIRS):
        assert left.name.replace("LEFT", "RIGHT") == right.name
