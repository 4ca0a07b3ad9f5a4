"""Synthetic walkers with known gait: ground truth for tests, training data for the default classifier.

A walker is a kinematic skeleton driven by normative sagittal joint-angle curves over the gait cycle, placed
on a floor, seen by a pinhole camera, and degraded like a pose model's output (jitter, missed frames, occluded
far-side limbs, left/right swaps). Every step is timed explicitly, so heel strikes, cadence, step-time
variability and asymmetry are known exactly.

Sources of the numbers (approximate digitisations; shapes matter more than the last degree):
- Joint angles: Winter DA (2009) Biomechanics and Motor Control of Human Movement, 4th ed., normal-cadence
  sagittal hip / knee / ankle angles; Perry J & Burnfield JM (2010) Gait Analysis. Heel strike at 0 %, toe off
  at ~62 % of the cycle; knee loading-response peak ~18 deg at 15 %, swing peak ~60 deg at ~73 %.
- Segment lengths as fractions of body height: Winter (2009) anthropometric table (Drillis & Contini).
- Cadence / step length: healthy adults ~100-125 steps/min, step length ~0.41 x height, speed ~1.2-1.4 m/s
  (Bohannon & Andrews 2011; Hollman et al. 2011); step-time CV ~1-3 % in healthy adults, > 4-5 % in fallers
  and Parkinson's disease (Hausdorff 2005)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline

from gaitwatch.pose.keypoints import FACE, FOOT_PAIRS, KNEE_PAIRS, LEG_PAIRS, NUM_LANDMARKS, Landmark

# Normative sagittal joint angles (degrees) at 0, 5, ..., 100 % of the gait cycle from heel strike.
_CYCLE_PCT = np.arange(0.0, 101.0, 5.0)
# Hip flexion (+) / extension (-): ~30 deg at heel strike, peak extension ~-8 deg just before toe off.
_HIP_DEG = (30, 29, 27, 23, 19, 15, 11, 7, 3, -1, -5, -8, -6, 0, 8, 16, 23, 28, 31, 31, 30)
# Knee flexion: loading-response bump ~19 deg at 15 %, swing peak ~62 deg at 75 %.
_KNEE_DEG = (4, 10, 16, 19, 17, 13, 9, 6, 5, 6, 10, 19, 33, 48, 59, 62, 57, 44, 25, 9, 4)
# Ankle dorsiflexion (+) / plantarflexion (-): peak plantarflexion ~-17 deg just after toe off.
_ANKLE_DEG = (0, -4, -3, 1, 4, 6, 8, 9, 10, 10, 7, 0, -12, -17, -11, -5, -1, 1, 1, 0, 0)
_HIP_MEAN_DEG = 11.0  # centre about which the hip range is scaled for shorter / longer steps
TOE_OFF_FRACTION = 0.62  # of the cycle, where the curves above put toe off

# Segment lengths as fractions of body height (Winter 2009).
_THIGH = 0.245
_SHANK = 0.246
_ANKLE_HEIGHT = 0.039
_FOOT = 0.152
_HIP_WIDTH = 0.191
_SHOULDER_WIDTH = 0.259
_TRUNK = 0.288  # hip (0.530 H) to shoulder (0.818 H)
_UPPER_ARM = 0.186
_FOREARM = 0.146
_HAND = 0.108
_NECK_TO_NOSE = 0.110  # shoulder line (0.818 H) to nose (~0.93 H)
NORMAL_STEP_LENGTH_PER_HEIGHT = 0.41


@dataclass(frozen=True, slots=True)
class WalkerParams:
    """One walker's gait. Pathologies are expressed through these parameters.

    cadence_spm: mean steps per minute. step_cv: coefficient of variation of step times (0.02 = 2 %).
    step_asymmetry: (right step time - left step time) / mean step time, where the right step runs from a
        left heel strike to the next right heel strike (0 = symmetric; 0.2 = a pronounced limp).
    step_length_scale: step length relative to normal (0.41 x height); < 1 for shuffling or slow gait.
        Speed follows as step length x cadence.
    knee_swing_scale: swing-phase knee flexion relative to normal (shuffling / stiff knee < 1).
    arm_swing_scale: arm swing relative to normal (~30 deg range); Parkinsonian gait < 0.5.
    limp_range_scale: hip range of the right leg relative to the left (antalgic gait < 1).
    trunk_lean_deg: forward trunk lean; sway_m: lateral pelvis sway amplitude (unsteady gait > 0.04).
    freezes: (start_s, duration_s) episodes where progression stops and the legs tremble at ~3-8 Hz.
    activity: "walking" or "standing" (standing: upright, feet together, small postural sway).
    """

    cadence_spm: float = 110.0
    step_cv: float = 0.02
    step_asymmetry: float = 0.0
    height_m: float = 1.70
    step_length_scale: float = 1.0
    knee_swing_scale: float = 1.0
    arm_swing_scale: float = 1.0
    limp_range_scale: float = 1.0
    trunk_lean_deg: float = 3.0
    sway_m: float = 0.02
    freezes: tuple[tuple[float, float], ...] = ()
    freeze_tremor_hz: float = 5.5
    activity: str = "walking"

    @property
    def step_length_m(self) -> float:
        return NORMAL_STEP_LENGTH_PER_HEIGHT * self.height_m * self.step_length_scale

    @property
    def speed_m_s(self) -> float:
        return self.step_length_m * self.cadence_spm / 60.0 if self.activity == "walking" else 0.0


@dataclass(frozen=True, slots=True)
class CameraView:
    """A fixed pinhole camera watching the walker's straight path.

    view_deg: angle between the walking direction and the camera's optical axis: 90 = side view (walker
        crosses the image), 0 = walking straight towards the camera, 45 = oblique.
    distance_m: from the camera to the middle of the path; None picks the nearest distance that keeps the
        whole path in the image. height_m / tilt_deg: camera height and downward tilt (ward cameras sit high).
    """

    view_deg: float = 90.0
    distance_m: float | None = None
    height_m: float = 1.4
    tilt_deg: float = 5.0
    focal_px: float = 700.0
    width_px: int = 1280
    height_px: int = 720


@dataclass(frozen=True, slots=True)
class PoseNoise:
    """How a pose model degrades the truth.

    jitter: image keypoint noise, standard deviation as a fraction of the person's height in the image
        (BlazePose on a small crop: ~0.005-0.015). world_jitter_m: noise of world landmarks (depth x2).
    frame_drop: share of frames that yield no pose (detector miss, track lost for a moment, pipeline busy).
    drop_burst_s: mean duration of one dropout; 0 drops single frames independently. Real tracks lose poses
        in bursts (see ``realistic_noise``).
    landmark_drop: probability a landmark is reported with low visibility and a wild position.
    far_side_visibility: visibility the model reports for the self-occluded far-side limbs in a side view.
    swap: share of frames in which the pose model has exchanged the left and right labels of a leg (its
        foot, its knee, or both, in the proportions measured on real footage, see ``realistic_noise``).
    swap_s: mean duration of one such swap (at least one frame).
    limb_jitter: how much noisier hands and feet are than the trunk (multiplier of ``jitter``; elbows and
        knees get its square root). Small feet on small people are found far less precisely than hips.
    jitter_corr_s: correlation time of the jitter: a pose model's error on one person persists over
        neighbouring frames (the crop and the person's appearance change slowly), unlike white noise.
    world_depth: how much of the true depth (hip-relative, along the optical axis) the world landmarks keep.
    outlier: share of landmark samples with a gross error (3.5 jitter standard deviations), reported as
        visible, lasting about ``jitter_corr_s``.
    time_jitter_s: standard deviation of frame timestamps around the nominal frame clock.
    """

    jitter: float = 0.008
    world_jitter_m: float = 0.015
    frame_drop: float = 0.03
    landmark_drop: float = 0.01
    far_side_visibility: float = 0.7
    swap: float = 0.05
    time_jitter_s: float = 0.003
    drop_burst_s: float = 0.0
    swap_s: float = 0.1
    limb_jitter: float = 2.0
    jitter_corr_s: float = 0.1
    outlier: float = 0.02
    world_depth: float = 0.6


# What BlazePose full (with the pipeline's One-Euro filter) gave on the real pedestrians of PETS09-S2L1
# (vtest.avi at its true 7 fps, HOG detector + tracker, people 55-90 px tall; 25 tracks of >= 6 s), measured
# with the same statistics on generated walkers of known noise:
# - jitter: the frame-to-frame change of the torso vector (see gaitwatch.gait.features.pose_jitter_bh)
#   gave 0.0076 / 0.0090 / 0.0099 body heights (quartiles), which generated walkers reproduce with
#   ``jitter`` 0.006-0.008; bigger people are seen relatively more precisely, blurred ones less;
# - the feet are far noisier than the trunk: the residual of the ankle separation about its local stride
#   fit (gaitwatch.gait.swaps) was 0.112 leg lengths (median over 43 windows) against 0.056 for generated
#   walkers with trunk-level jitter on every landmark, while the hips' matched (0.024 vs 0.029);
#   ``limb_jitter`` 3 reproduced it (0.105; knees 0.053 against 0.064 real);
# - the errors are neither white nor Gaussian: those residuals correlate +0.16 between neighbouring frames
#   (white jitter gives -0.28 after the fit) and 7.5 % / 1.0 % of them exceed 3 / 5 robust standard
#   deviations (Gaussian: 1.7 % / 0.1 %); ``jitter_corr_s`` 0.3 s and 5-10 % of samples with held gross
#   errors (``outlier``) gave +0.12-0.15 and 4-5 % / 0.6 %;
# - world landmarks follow the image: the ankle separation's stride amplitude in world landmarks was
#   1.0-1.15 x the image one for every walking direction, also for people walking away from the camera,
#   whose image steps are foreshortened (23 tracks): the model's depth is compressed (``world_depth``);
# - frame drops: 12 % of frames (quartiles 5-18 %) within a track, missing in runs of 1 (25 %), 2 (65 %) or
#   4 (9 %) frames, i.e. bursts of ~0.3 s;
# - leg landmarks below 0.5 visibility: 2.8 % (quartiles 2.1-3.8 %);
# - left/right swaps: where the feet were clearly apart, 14 % of frames had the ankles' labels exchanged
#   (per track 5-24 %), in runs of 1 (75 %), 2 (17 %) or 3 (6 %) frames; of the swapped legs, 63 % had
#   knee and foot exchanged together, 25 % the foot alone, 12 % the knee alone.
# Not reproduced: those real walkers' step times vary with a median CV of 18 % (12 % robustly) where generated
# healthy walkers with all of the above read 6-8 %; neither motion blur (up to 80 ms) nor per-frame timing
# noise of the legs closed the gap. Hence gaitwatch.gait.settings.GaitSettings.min_frames_per_step: step
# timing is not measured from 7 fps cameras at all.
# The ranges below centre on these values and reach ~1.5x beyond them (a ward camera sees bigger people).
SWAP_GROUP_SHARES: tuple[tuple[str, float], ...] = (("leg", 0.63), ("foot", 0.25), ("knee", 0.12))


def realistic_noise(rng: np.random.Generator) -> PoseNoise:
    """A pose-noise level drawn over (and somewhat beyond) the range measured on real footage (see the
    comment above): training on the whole range (domain randomisation) keeps a classifier from reading the
    noise of one camera as gait."""
    return PoseNoise(
        jitter=float(rng.uniform(0.003, 0.010)),
        world_jitter_m=float(rng.uniform(0.008, 0.03)),
        frame_drop=float(rng.uniform(0.0, 0.15)),
        drop_burst_s=float(rng.uniform(0.0, 0.15)),
        landmark_drop=float(rng.uniform(0.0, 0.04)),
        far_side_visibility=float(rng.uniform(0.55, 0.9)),
        swap=float(rng.uniform(0.0, 0.25)),
        swap_s=float(rng.uniform(0.05, 0.25)),
        time_jitter_s=float(rng.uniform(0.0, 0.005)),
        limb_jitter=float(rng.uniform(1.0, 3.5)),
        jitter_corr_s=float(rng.uniform(0.0, 0.35)),
        outlier=float(rng.uniform(0.0, 0.1)),
        world_depth=float(rng.uniform(0.2, 1.0)),
    )


@dataclass(frozen=True, slots=True)
class SyntheticWalk:
    """Generated keypoints and their ground truth.

    ``t`` (M,), ``keypoints`` (M, 33, 3) image px + visibility, ``world`` (M, 33, 3) metres (hip-centred,
    camera-aligned: x right, y down, z along the optical axis). ``heel_strikes_left/right`` are true event
    times; ``toe_offs_left/right`` likewise; ``freezes`` the true freezing intervals (start, end).
    """

    t: NDArray[np.float64]
    keypoints: NDArray[np.float32]
    world: NDArray[np.float32]
    heel_strikes_left: NDArray[np.float64]
    heel_strikes_right: NDArray[np.float64]
    toe_offs_left: NDArray[np.float64]
    toe_offs_right: NDArray[np.float64]
    params: WalkerParams
    camera: CameraView
    freezes: tuple[tuple[float, float], ...] = field(default=())

    def _spans_freeze(self, a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.bool_]:
        out = np.zeros(a.shape[0], dtype=bool)
        for s, e in self.freezes:
            out |= (a < e) & (b > s)
        return out

    def truth(self, t_start: float, t_end: float) -> dict[str, float]:
        """Ground-truth gait measures over ``[t_start, t_end]`` from the steps lying wholly inside it:
        cadence_spm, step_time_mean_s, step_time_cv (fraction), stride_time_cv, step_asymmetry; NaN when fewer
        than 3 steps fit. Steps and strides spanning a freezing episode are not gait and are left out."""
        hs = np.sort(np.concatenate([self.heel_strikes_left, self.heel_strikes_right]))
        side = np.isin(hs, self.heel_strikes_right)  # True: the step ending here is a right step
        inside = (hs >= t_start) & (hs <= t_end)
        hs_in, side_in = hs[inside], side[inside]
        nan = float("nan")
        if hs_in.shape[0] < 4:
            return {
                "cadence_spm": nan,
                "step_time_mean_s": nan,
                "step_time_cv": nan,
                "stride_time_cv": nan,
                "step_asymmetry": nan,
            }
        steps = np.diff(hs_in)
        ends_right = side_in[1:]
        walking = ~self._spans_freeze(hs_in[:-1], hs_in[1:])
        steps, ends_right = steps[walking], ends_right[walking]
        if steps.shape[0] < 3:
            return self.truth(0.0, -1.0)
        strides = np.concatenate(
            [np.diff(x)[~self._spans_freeze(x[:-1], x[1:])] for x in (hs_in[~side_in], hs_in[side_in])]
        )
        mean = float(np.mean(steps))
        right = float(np.mean(steps[ends_right])) if np.any(ends_right) else nan
        left = float(np.mean(steps[~ends_right])) if np.any(~ends_right) else nan
        return {
            "cadence_spm": 60.0 / mean,
            "step_time_mean_s": mean,
            "step_time_cv": float(np.std(steps, ddof=1) / mean),
            "stride_time_cv": float(np.std(strides, ddof=1) / np.mean(strides)) if strides.size > 2 else nan,
            "step_asymmetry": (right - left) / mean,
        }


def _curve(values: tuple[int, ...]) -> CubicSpline:
    return CubicSpline(_CYCLE_PCT / 100.0, np.asarray(values, dtype=np.float64), bc_type="periodic")


def _step_schedule(
    params: WalkerParams, tau_end: float, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Heel-strike times on the gait clock, alternating sides, and whether each is a right heel strike.
    Starts before 0 so the walker is mid-stride when the recording starts."""
    mean_step = 60.0 / params.cadence_spm
    n = int(np.ceil((tau_end + 4.0) / (mean_step * 0.5))) + 4
    right = np.arange(n) % 2 == 1
    # Step k runs from heel strike k to k+1; it is a "right step" when it ends on a right heel strike.
    ends_right = np.roll(right, -1)
    base = np.where(ends_right, 1.0 + params.step_asymmetry / 2.0, 1.0 - params.step_asymmetry / 2.0)
    factors = np.clip(1.0 + params.step_cv * rng.standard_normal(n), 0.5, 1.5)
    steps = mean_step * base * factors
    start = -2.0 - rng.uniform(0.0, 2.0 * mean_step)
    hs = start + np.concatenate(([0.0], np.cumsum(steps[:-1])))
    return hs, right


def _gait_clock(t: NDArray[np.float64], freezes: tuple[tuple[float, float], ...]) -> NDArray[np.float64]:
    """Gait-clock time: real time minus the freezing time elapsed so far (the clock stops while frozen)."""
    tau = t.copy()
    for start, dur in freezes:
        tau -= np.clip(t - start, 0.0, dur)
    return tau


def _clock_to_time(tau: NDArray[np.float64], freezes: tuple[tuple[float, float], ...]) -> NDArray[np.float64]:
    """Inverse of the gait clock for event times (an event at a freeze's start happens at its start)."""
    t = tau.copy()
    for start, dur in sorted(freezes):
        clock_start = start - sum(d for s, d in freezes if s < start)
        t = np.where(tau > clock_start, t + dur, t)
    return t


def _rot_y(v: NDArray[np.float64], ang: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sagittal vectors (..., 2) = (forward, up) for angle from the downward vertical, flexion forward."""
    return np.stack([np.sin(ang) * v[..., 0], -np.cos(ang) * v[..., 0]], axis=-1)


def _leg_points(
    hip_deg: NDArray[np.float64], knee_deg: NDArray[np.float64], ankle_deg: NDArray[np.float64], h: float
) -> dict[str, NDArray[np.float64]]:
    """Knee, ankle, heel and toe positions (forward, up) relative to the hip joint, each (M, 2)."""
    th = np.deg2rad(hip_deg)
    shank = th - np.deg2rad(knee_deg)  # shank angle from the downward vertical
    knee = np.stack([np.sin(th), -np.cos(th)], axis=-1) * (_THIGH * h)
    ankle = knee + np.stack([np.sin(shank), -np.cos(shank)], axis=-1) * (_SHANK * h)
    foot_ang = shank + np.deg2rad(ankle_deg)  # toe-up angle of the sole from horizontal
    fwd = np.stack([np.cos(foot_ang), np.sin(foot_ang)], axis=-1)
    up = np.stack([-np.sin(foot_ang), np.cos(foot_ang)], axis=-1)
    sole = ankle - up * (_ANKLE_HEIGHT * h)
    heel = sole - fwd * (0.25 * _FOOT * h)
    toe = sole + fwd * (0.75 * _FOOT * h)
    return {"knee": knee, "ankle": ankle, "heel": heel, "toe": toe}


def body_points(
    params: WalkerParams, t: NDArray[np.float64], rng: np.random.Generator
) -> tuple[NDArray[np.float64], dict[str, NDArray[np.float64]]]:
    """The 33 landmarks in scene metres (M, 33, 3) (x along the path, y to the walker's left, z up) and the
    true events, for walking or standing at times ``t``."""
    h = params.height_m
    m = t.shape[0]
    hip_c, knee_c, ankle_c = _curve(_HIP_DEG), _curve(_KNEE_DEG), _curve(_ANKLE_DEG)
    events: dict[str, NDArray[np.float64]] = {}
    if params.activity == "walking":
        tau = _gait_clock(t, params.freezes)
        hs, right = _step_schedule(params, float(tau[-1]) if m else 0.0, rng)
        phase_l = np.interp(tau, hs[~right], np.arange(np.count_nonzero(~right), dtype=np.float64))
        phase_r = np.interp(tau, hs[right], np.arange(np.count_nonzero(right), dtype=np.float64))
        # Toe off of each cycle at TOE_OFF_FRACTION of that leg's own cycle.
        to_l = hs[~right][:-1] + TOE_OFF_FRACTION * np.diff(hs[~right])
        to_r = hs[right][:-1] + TOE_OFF_FRACTION * np.diff(hs[right])
        lo, hi = (float(t[0]), float(t[-1])) if m else (0.0, 0.0)
        for name, ev in (("hs_l", hs[~right]), ("hs_r", hs[right]), ("to_l", to_l), ("to_r", to_r)):
            ev_t = _clock_to_time(ev, params.freezes)
            events[name] = ev_t[(ev_t >= lo) & (ev_t <= hi)]
        progress = params.speed_m_s * tau
    else:
        phase_l = phase_r = np.zeros(m)
        for name in ("hs_l", "hs_r", "to_l", "to_r"):
            events[name] = np.zeros(0)
        progress = np.zeros(m)

    def leg(phase: NDArray[np.float64], range_scale: float, sign: float) -> dict[str, NDArray[np.float64]]:
        if params.activity != "walking":
            z = np.zeros(m)
            return _leg_points(z + 1.0, z + 3.0, z, h)
        frac = np.mod(phase, 1.0)
        scale = params.step_length_scale * range_scale
        hip = _HIP_MEAN_DEG + (hip_c(frac) - _HIP_MEAN_DEG) * scale
        knee = knee_c(frac)
        swing = frac > TOE_OFF_FRACTION - 0.07
        knee = np.where(swing, knee * params.knee_swing_scale + (1 - params.knee_swing_scale) * 8.0, knee)
        ankle = ankle_c(frac) * min(1.0, scale)
        for start, dur in params.freezes:
            # Trembling in place ("knees shaking"), the hallmark of freezing of gait (Moore et al. 2008).
            on = (t >= start) & (t < start + dur)
            trem = np.sin(2 * np.pi * params.freeze_tremor_hz * t) * on * sign
            hip = hip + 4.0 * trem
            knee = knee + 7.0 * trem
        return _leg_points(hip, knee, ankle, h)

    left = leg(phase_l, 1.0, 1.0)
    right_leg = leg(phase_r, params.limp_range_scale, -1.0)  # legs tremble in anti-phase when frozen

    # Pelvis height: the lower foot touches the floor (z = 0), which yields the natural step-frequency bounce.
    def reach(p: dict[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        return -np.minimum(p["heel"][:, 1], p["toe"][:, 1])

    pelvis_z = np.maximum(reach(left), reach(right_leg))
    sway_phase = 2 * np.pi * phase_l if params.activity == "walking" else 2 * np.pi * 0.25 * t
    sway = params.sway_m * np.sin(sway_phase)
    if params.activity != "walking":
        sway = sway + 0.005 * np.sin(2 * np.pi * 0.13 * t)  # quiet-standing postural sway (~5 mm)
    pelvis = np.stack([progress, sway, pelvis_z], axis=-1)

    pts = np.zeros((m, NUM_LANDMARKS, 3))
    half_hip = _HIP_WIDTH * h / 2
    for side, lg, hip_i, knee_i, ankle_i, heel_i, toe_i in (
        (
            1.0,
            left,
            Landmark.LEFT_HIP,
            Landmark.LEFT_KNEE,
            Landmark.LEFT_ANKLE,
            Landmark.LEFT_HEEL,
            Landmark.LEFT_FOOT_INDEX,
        ),
        (
            -1.0,
            right_leg,
            Landmark.RIGHT_HIP,
            Landmark.RIGHT_KNEE,
            Landmark.RIGHT_ANKLE,
            Landmark.RIGHT_HEEL,
            Landmark.RIGHT_FOOT_INDEX,
        ),
    ):
        hip_pos = pelvis + np.array([0.0, side * half_hip, 0.0])
        pts[:, hip_i] = hip_pos
        for idx, key in ((knee_i, "knee"), (ankle_i, "ankle"), (heel_i, "heel"), (toe_i, "toe")):
            pts[:, idx, 0] = hip_pos[:, 0] + lg[key][:, 0]
            pts[:, idx, 1] = hip_pos[:, 1]
            pts[:, idx, 2] = hip_pos[:, 2] + lg[key][:, 1]

    lean = np.deg2rad(params.trunk_lean_deg)
    trunk = np.array([np.sin(lean), 0.0, np.cos(lean)]) * _TRUNK * h
    neck = pelvis + trunk
    half_sh = _SHOULDER_WIDTH * h / 2
    # Arm swing opposes the same-side leg: the left arm goes forward with the right hip (~30 deg range).
    if params.activity == "walking":
        hip_r_dev = hip_c(np.mod(phase_r, 1.0)) - _HIP_MEAN_DEG
        hip_l_dev = hip_c(np.mod(phase_l, 1.0)) - _HIP_MEAN_DEG
    else:
        hip_r_dev = hip_l_dev = np.zeros(m)
    arm_gain = 0.8 * params.arm_swing_scale
    for side, dev, sh_i, el_i, wr_i, fingers in (
        (
            1.0,
            hip_r_dev,
            Landmark.LEFT_SHOULDER,
            Landmark.LEFT_ELBOW,
            Landmark.LEFT_WRIST,
            (Landmark.LEFT_PINKY, Landmark.LEFT_INDEX, Landmark.LEFT_THUMB),
        ),
        (
            -1.0,
            hip_l_dev,
            Landmark.RIGHT_SHOULDER,
            Landmark.RIGHT_ELBOW,
            Landmark.RIGHT_WRIST,
            (Landmark.RIGHT_PINKY, Landmark.RIGHT_INDEX, Landmark.RIGHT_THUMB),
        ),
    ):
        shoulder = neck + np.array([0.0, side * half_sh, 0.0])
        flex = np.deg2rad(arm_gain * dev)
        elbow_flex = np.deg2rad(15.0) + 0.5 * np.clip(flex, 0.0, None)
        upper = np.stack([np.sin(flex), np.zeros(m), -np.cos(flex)], axis=-1) * _UPPER_ARM * h
        fa = flex + elbow_flex
        fore = np.stack([np.sin(fa), np.zeros(m), -np.cos(fa)], axis=-1) * _FOREARM * h
        pts[:, sh_i] = shoulder
        pts[:, el_i] = shoulder + upper
        pts[:, wr_i] = shoulder + upper + fore
        hand_dir = fore / (_FOREARM * h)
        for k, f_i in enumerate(fingers):
            pts[:, f_i] = pts[:, wr_i] + hand_dir * _HAND * h * (0.7 + 0.1 * k) + np.array([0.0, side * 0.01 * k, 0])

    head = neck + np.array([0.04, 0.0, _NECK_TO_NOSE]) * h  # nose: in front of and above the shoulder line
    face = {
        Landmark.NOSE: (0.055, 0.0, 0.0),
        Landmark.LEFT_EYE_INNER: (0.045, 0.012, 0.025),
        Landmark.LEFT_EYE: (0.043, 0.032, 0.027),
        Landmark.LEFT_EYE_OUTER: (0.038, 0.048, 0.027),
        Landmark.RIGHT_EYE_INNER: (0.045, -0.012, 0.025),
        Landmark.RIGHT_EYE: (0.043, -0.032, 0.027),
        Landmark.RIGHT_EYE_OUTER: (0.038, -0.048, 0.027),
        Landmark.LEFT_EAR: (-0.03, 0.075, 0.015),
        Landmark.RIGHT_EAR: (-0.03, -0.075, 0.015),
        Landmark.MOUTH_LEFT: (0.045, 0.022, -0.04),
        Landmark.MOUTH_RIGHT: (0.045, -0.022, -0.04),
    }
    for idx, off in face.items():
        pts[:, idx] = head + np.array(off) * (h / 1.7)
    return pts, events


def _camera_pose(camera: CameraView, dist: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Camera centre at ``dist`` from the path's middle, and the world-to-camera rotation (rows: image right,
    image down, optical axis)."""
    v = np.deg2rad(camera.view_deg)
    look = np.array([-np.cos(v), np.sin(v), 0.0])  # horizontal viewing direction
    centre = -dist * look + np.array([0.0, 0.0, camera.height_m])
    tilt = np.deg2rad(camera.tilt_deg)
    fwd = np.cos(tilt) * look + np.array([0.0, 0.0, -np.sin(tilt)])
    right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    return centre, np.stack([right, down, fwd])


def _project(
    pts: NDArray[np.float64], camera: CameraView, dist: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Camera coordinates (M, 33, 3) and image u, v (M, 33) of scene points."""
    centre, rot = _camera_pose(camera, dist)
    cam = (pts - centre) @ rot.T
    depth = np.maximum(cam[..., 2], 0.3)
    u = camera.focal_px * cam[..., 0] / depth + camera.width_px / 2
    v = camera.focal_px * cam[..., 1] / depth + camera.height_px / 2
    return cam, u, v


def _auto_distance(pts: NDArray[np.float64], camera: CameraView) -> float:
    """The nearest distance (in 10 % steps from 3 m) at which every landmark stays inside the image with a
    5 % margin, so the whole walk is seen."""
    dist = 3.0
    for _ in range(40):
        cam, u, v = _project(pts, camera, dist)
        mx, my = 0.05 * camera.width_px, 0.05 * camera.height_px
        if (
            np.all(cam[..., 2] > 1.0)
            and np.all((u > mx) & (u < camera.width_px - mx))
            and np.all((v > my) & (v < camera.height_px - my))
        ):
            return dist
        dist *= 1.1
    return dist


def _mirror_index() -> NDArray[np.intp]:
    """For each landmark, the index of its left/right counterpart (itself for the nose)."""
    out = np.arange(NUM_LANDMARKS)
    for lm in Landmark:
        for a, b in (("LEFT_", "RIGHT_"), ("RIGHT_", "LEFT_")):
            if lm.name.startswith(a):
                out[lm] = Landmark[b + lm.name[len(a) :]]
    return out


_SWAP = _mirror_index()


def _group_mirror(pairs: tuple[tuple[Landmark, Landmark], ...]) -> NDArray[np.intp]:
    out = np.arange(NUM_LANDMARKS)
    for a, b in pairs:
        out[a], out[b] = b, a
    return out


_SWAP_GROUPS: dict[str, NDArray[np.intp]] = {
    "leg": _group_mirror(LEG_PAIRS),
    "foot": _group_mirror(FOOT_PAIRS),
    "knee": _group_mirror(KNEE_PAIRS),
}


_OUTLIER_SCALE = 3.5  # a gross error is this many jitter standard deviations (per coordinate)


def _coloured(
    rng: np.random.Generator, t: NDArray[np.float64], shape: tuple[int, ...], corr_s: float
) -> NDArray[np.float64]:
    """Unit-variance noise of ``shape`` (M, ...) along time ``t`` (M,), correlated over ``corr_s`` seconds
    (a first-order autoregression, correlation exp(-dt / corr_s) between samples dt apart); white when 0."""
    white = rng.normal(0.0, 1.0, shape)
    if corr_s <= 0 or shape[0] < 2:
        return white
    rho = np.exp(-np.diff(t) / corr_s)
    out = np.empty(shape)
    out[0] = white[0]
    for i in range(1, shape[0]):
        r = rho[i - 1]
        out[i] = r * out[i - 1] + np.sqrt(1.0 - r * r) * white[i]
    return out


def _gross_errors(
    rng: np.random.Generator, t: NDArray[np.float64], shape: tuple[int, int], share: float, hold_s: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Unit-scale offsets (M, K) for x and y: zero except on ``share`` of each landmark's samples, in runs
    lasting ``hold_s`` on average (at least one frame), during which one offset holds (a misplaced foot
    stays misplaced for a few frames)."""
    du = np.zeros(shape)
    dv = np.zeros(shape)
    if share <= 0 or shape[0] < 2:
        return du, dv
    frames = hold_s / float(np.median(np.diff(t)))
    for k in range(shape[1]):
        mask = _bursts(rng, shape[0], share, frames)
        if not np.any(mask):
            continue
        run = np.cumsum(np.concatenate(([mask[0]], mask[1:] & ~mask[:-1])))
        ox, oy = rng.normal(0.0, 1.0, (2, int(run[-1]) + 1))
        du[mask, k] = ox[run[mask]]
        dv[mask, k] = oy[run[mask]]
    return du, dv


def _limb_scale(distal: float) -> NDArray[np.float64]:
    """(33,) jitter multiplier per landmark: 1 for the head and trunk, ``distal`` for hands and feet, its
    square root for elbows and knees (half-way along the limb)."""
    out = np.ones(NUM_LANDMARKS)
    for lm in Landmark:
        name = lm.name
        if any(k in name for k in ("WRIST", "PINKY", "INDEX", "THUMB", "ANKLE", "HEEL", "FOOT")):
            out[lm] = distal
        elif "ELBOW" in name or "KNEE" in name:
            out[lm] = np.sqrt(distal)
    return out


def _bursts(rng: np.random.Generator, n: int, share: float, mean_frames: float) -> NDArray[np.bool_]:
    """(n,) True on about ``share`` of the frames, in runs of ``max(1, mean_frames)`` frames on average
    (run lengths uniform between 1 and twice the mean, so single-frame events when the mean is below 1)."""
    out = np.zeros(n, dtype=bool)
    mean = max(1.0, mean_frames)
    # Drawn whatever the share, so that one seed gives the same frames and noise with or without these events.
    lengths = np.maximum(1, np.rint(rng.uniform(0.5, 2.0 * mean - 0.5, n))).astype(np.intp)
    draws = rng.random(n)
    if share <= 0 or n == 0:
        return out
    # A run starts at a free frame with the probability that makes ``share`` of all frames busy.
    p_start = min(1.0, share / (mean * max(1.0 - share, 1e-3)))
    starts = draws < p_start
    i = 0
    while i < n:
        if starts[i]:
            out[i : i + lengths[i]] = True
            i += int(lengths[i]) + 1
        else:
            i += 1
    return out


def generate_walk(
    params: WalkerParams,
    camera: CameraView | None = None,
    noise: PoseNoise | None = None,
    *,
    fps: float = 30.0,
    duration_s: float = 12.0,
    seed: int = 0,
) -> SyntheticWalk:
    """Generate ``duration_s`` of one walker seen at ``fps`` (nominal; timestamps jitter, frames drop).

    The walker's path is centred in front of the camera; with ``camera.distance_m=None`` the whole path stays
    in the image. Deterministic for a given ``seed``.
    """
    camera = camera or CameraView()
    noise = noise or PoseNoise()
    rng = np.random.default_rng(seed)
    n = int(np.floor(duration_s * fps)) + 1
    t = np.arange(n) / fps + rng.normal(0.0, noise.time_jitter_s, n)
    t = np.sort(t)
    t = t[np.concatenate(([True], np.diff(t) > 1e-4))]
    pts, events = body_points(params, t, rng)
    # Centre the path on the scene origin (the camera looks at the middle of the walk).
    mid = 0.5 * (pts[:, :, 0].max() + pts[:, :, 0].min()) if params.activity == "walking" else 0.0
    pts[:, :, 0] -= mid
    dist = camera.distance_m if camera.distance_m is not None else _auto_distance(pts, camera)
    cam, u, v = _project(pts, camera, dist)

    # Visibility: the far-side limbs in a side view are self-occluded; the model reports them less visible.
    hip_mid_depth = 0.5 * (cam[:, Landmark.LEFT_HIP, 2] + cam[:, Landmark.RIGHT_HIP, 2])
    far = cam[..., 2] > hip_mid_depth[:, None] + 0.04 * params.height_m
    vis = np.where(far, noise.far_side_visibility, 0.95) + rng.normal(0.0, 0.03, u.shape)
    inside = (u >= 0) & (u < camera.width_px) & (v >= 0) & (v < camera.height_px)
    vis = np.where(inside, vis, 0.05)

    body_px = (v[:, Landmark.LEFT_HEEL] - v[:, Landmark.NOSE]).clip(10.0, None)[:, None] * 1.08
    sigma = noise.jitter * body_px * _limb_scale(noise.limb_jitter)[None, :] * np.where(far, 1.5, 1.0)
    u = u + _coloured(rng, t, u.shape, noise.jitter_corr_s) * sigma
    v = v + _coloured(rng, t, v.shape, noise.jitter_corr_s) * sigma
    # Confident gross errors (the model puts a foot on the other foot or on the shadow and still reports it
    # visible): visibility unchanged, so nothing downstream can mask them.
    du, dv = _gross_errors(rng, t, u.shape, noise.outlier, noise.jitter_corr_s)
    u = u + du * sigma * _OUTLIER_SCALE
    v = v + dv * sigma * _OUTLIER_SCALE
    dropped = rng.random(u.shape) < noise.landmark_drop
    u = np.where(dropped, u + rng.normal(0.0, 1.0, u.shape) * body_px * 0.2, u)
    v = np.where(dropped, v + rng.normal(0.0, 1.0, v.shape) * body_px * 0.2, v)
    vis = np.where(dropped, rng.uniform(0.0, 0.4, u.shape), vis)
    kp = np.stack([u, v, np.clip(vis, 0.0, 1.0)], axis=-1)

    hips = 0.5 * (cam[:, Landmark.LEFT_HIP] + cam[:, Landmark.RIGHT_HIP])
    world = cam - hips[:, None, :]
    # A pose model infers depth from one image: for small people it barely departs from its mean pose, so
    # the depth swing of the legs comes out compressed (world_depth 1: true depth, 0: flat).
    world[..., 2] *= noise.world_depth
    world = world + rng.normal(0.0, noise.world_jitter_m, world.shape) * np.array([1.0, 1.0, 2.0])

    fps_true = 1.0 / float(np.median(np.diff(t))) if t.shape[0] > 1 else fps
    for group, share in SWAP_GROUP_SHARES:
        swapped = _bursts(rng, t.shape[0], noise.swap * share, noise.swap_s * fps_true)
        idx = _SWAP_GROUPS[group]
        kp[swapped] = kp[swapped][:, idx]
        world[swapped] = world[swapped][:, idx]
    keep = ~_bursts(rng, t.shape[0], noise.frame_drop, noise.drop_burst_s * fps_true)
    keep[0] = keep[-1] = True
    return SyntheticWalk(
        t=t[keep],
        keypoints=kp[keep].astype(np.float32),
        world=world[keep].astype(np.float32),
        heel_strikes_left=events["hs_l"],
        heel_strikes_right=events["hs_r"],
        toe_offs_left=events["to_l"],
        toe_offs_right=events["to_r"],
        params=params,
        camera=camera,
        freezes=tuple((s, s + d) for s, d in params.freezes),
    )


# Gait patterns the generator can produce, and the label each carries ("normal" or "abnormal").
PATTERNS: tuple[str, ...] = ("normal", "slow", "shuffling", "asymmetric", "unsteady", "freezing")


def sample_walker(pattern: str, rng: np.random.Generator, duration_s: float = 12.0) -> WalkerParams:
    """Draw one subject's gait for ``pattern`` from published ranges (see the module docstring).

    normal: cadence ~N(103, 11) steps/min (78-130: strolling to brisk) with steps 0.65-1.2 x 0.41 height, and
    one in five brisk walkers at 118-140 steps/min with steps 0.85-1.2 x 0.41 height, i.e. ~0.6-2 m/s,
    step-time CV 1-3 %, symmetric. slow: 50-74 steps/min with short steps (~0.25-0.6 m/s;
    Studenski et al. 2011: < 0.6 m/s high risk, 0.6-1.0 intermediate, > 1.0 good; healthy adults asked to
    walk slowly step at ~70-85 steps/min, Tudor-Locke et al. 2018, so cadence alone separates only below).
    shuffling (Parkinsonian): short steps at a high cadence, stiff knees, little arm swing, stooped trunk.
    asymmetric (limp / antalgic): 15-35 % step-time asymmetry and a reduced hip range on one side.
    unsteady: step-time CV 7-15 % (fallers and PD > 4-5 %; Hausdorff 2005) with wide lateral sway.
    freezing: one or two 1.5-4 s freezing episodes inside an otherwise slightly shuffling gait.
    """
    height = float(np.clip(rng.normal(1.70, 0.09), 1.50, 1.95))
    if pattern == "normal":
        # Healthy people walk at 100-125 steps/min in the lab but amble at 80-100 when strolling (Tudor-Locke
        # et al. 2018 put 100 steps/min at the threshold of moderate intensity), with shorter steps: speeds
        # down to ~0.6 m/s, the lower end of Studenski's "intermediate" band, are not a pathology by
        # themselves.
        # One in five walks briskly, as people in a hurry do (Tudor-Locke et al. 2018: 130 steps/min marks
        # vigorous walking, within healthy adults' reach): faster steps and longer ones. Without them a healthy
        # brisk walker (real pedestrians at 130 steps/min and ~1.3 m/s) lay outside everything "normal" the
        # classifier had seen, and read as shuffling.
        brisk = rng.random() < 0.2
        cadence = rng.uniform(118.0, 140.0) if brisk else np.clip(rng.normal(103.0, 11.0), 78.0, 130.0)
        step_scale = np.clip(rng.normal(1.0, 0.1), 0.85, 1.2) if brisk else np.clip(rng.normal(0.9, 0.12), 0.65, 1.2)
        return WalkerParams(
            cadence_spm=float(cadence),
            step_cv=float(rng.uniform(0.01, 0.03)),
            step_asymmetry=float(np.clip(rng.normal(0.0, 0.02), -0.05, 0.05)),
            height_m=height,
            step_length_scale=float(step_scale),
            # Healthy people often barely swing their arms: hands in pockets, carrying a bag or a phone.
            arm_swing_scale=float(rng.uniform(0.1, 1.2)),
            trunk_lean_deg=float(rng.uniform(0.0, 6.0)),
            sway_m=float(rng.uniform(0.01, 0.03)),
        )
    if pattern == "slow":
        return WalkerParams(
            cadence_spm=float(rng.uniform(50.0, 74.0)),
            step_cv=float(rng.uniform(0.02, 0.05)),
            step_asymmetry=float(np.clip(rng.normal(0.0, 0.03), -0.08, 0.08)),
            height_m=height,
            step_length_scale=float(rng.uniform(0.45, 0.7)),
            arm_swing_scale=float(rng.uniform(0.5, 0.9)),
            trunk_lean_deg=float(rng.uniform(3.0, 12.0)),
            sway_m=float(rng.uniform(0.02, 0.04)),
        )
    if pattern == "shuffling":
        return WalkerParams(
            cadence_spm=float(rng.uniform(118.0, 150.0)),
            step_cv=float(rng.uniform(0.02, 0.05)),
            step_asymmetry=float(np.clip(rng.normal(0.0, 0.03), -0.08, 0.08)),
            height_m=height,
            step_length_scale=float(rng.uniform(0.3, 0.5)),
            knee_swing_scale=float(rng.uniform(0.4, 0.7)),
            arm_swing_scale=float(rng.uniform(0.1, 0.4)),
            trunk_lean_deg=float(rng.uniform(10.0, 20.0)),
            sway_m=float(rng.uniform(0.01, 0.03)),
        )
    if pattern == "asymmetric":
        sign = 1.0 if rng.random() < 0.5 else -1.0
        return WalkerParams(
            cadence_spm=float(np.clip(rng.normal(100.0, 8.0), 80.0, 120.0)),
            step_cv=float(rng.uniform(0.02, 0.04)),
            step_asymmetry=sign * float(rng.uniform(0.15, 0.35)),
            height_m=height,
            step_length_scale=float(rng.uniform(0.7, 0.95)),
            limp_range_scale=float(rng.uniform(0.55, 0.8)),
            arm_swing_scale=float(rng.uniform(0.6, 1.1)),
            trunk_lean_deg=float(rng.uniform(2.0, 10.0)),
            sway_m=float(rng.uniform(0.03, 0.06)),
        )
    if pattern == "unsteady":
        return WalkerParams(
            cadence_spm=float(np.clip(rng.normal(100.0, 10.0), 75.0, 125.0)),
            step_cv=float(rng.uniform(0.07, 0.15)),
            step_asymmetry=float(np.clip(rng.normal(0.0, 0.04), -0.1, 0.1)),
            height_m=height,
            step_length_scale=float(rng.uniform(0.65, 0.95)),
            arm_swing_scale=float(rng.uniform(0.6, 1.3)),
            trunk_lean_deg=float(rng.uniform(2.0, 10.0)),
            sway_m=float(rng.uniform(0.05, 0.09)),
        )
    if pattern == "freezing":
        n_freeze = 1 if rng.random() < 0.6 else 2
        starts = np.sort(rng.uniform(1.0, max(1.5, duration_s - 5.0), n_freeze))
        freezes = tuple((float(s + 4.5 * k), float(rng.uniform(1.5, 4.0))) for k, s in enumerate(starts))
        return WalkerParams(
            cadence_spm=float(rng.uniform(100.0, 130.0)),
            step_cv=float(rng.uniform(0.03, 0.06)),
            height_m=height,
            step_length_scale=float(rng.uniform(0.5, 0.8)),
            knee_swing_scale=float(rng.uniform(0.6, 0.9)),
            arm_swing_scale=float(rng.uniform(0.3, 0.7)),
            trunk_lean_deg=float(rng.uniform(6.0, 15.0)),
            freezes=freezes,
            freeze_tremor_hz=float(rng.uniform(4.0, 7.0)),
        )
    raise ValueError(f"unknown gait pattern {pattern!r}; expected one of {PATTERNS}")


# Postures for activity scripts: hip flexion, knee flexion (deg), body pitch (deg; 90 = lying horizontal).
_POSTURES: dict[str, tuple[float, float, float]] = {
    "stand": (1.0, 3.0, 0.0),
    "sit": (90.0, 90.0, 0.0),
    "lie": (0.0, 5.0, 90.0),
}
# Transitions: (from, to) posture of each scripted movement.
_TRANSITIONS: dict[str, tuple[str, str]] = {
    "sit_down": ("stand", "sit"),
    "stand_up": ("sit", "stand"),
    "fall": ("stand", "lie"),
    "get_up": ("lie", "stand"),
}


def generate_activity(
    script: tuple[tuple[str, float], ...],
    camera: CameraView | None = None,
    noise: PoseNoise | None = None,
    *,
    height_m: float = 1.70,
    fps: float = 15.0,
    seed: int = 0,
) -> SyntheticWalk:
    """A person who stands, sits, lies and moves between these, seen by a fixed camera (no walking).

    ``script`` is a sequence of (segment, seconds): postures "stand", "sit", "lie" held still (with small
    postural sway), or transitions "sit_down", "stand_up" (their seconds are the transition's duration: ~1.5 s
    is typical, > 3 s slow), "fall" (a fall is fast: ~0.6-1.0 s from standing to the floor) and "get_up".
    Joint angles and body pitch blend with a smooth step; the pelvis height keeps the feet (or, when lying,
    the body) on the floor. ``SyntheticWalk.meta`` semantics: no heel strikes; ``freezes`` holds the
    (start, end) of each scripted segment is not used; see ``activity_truth`` for the segment timeline.
    """
    camera = camera or CameraView(view_deg=90.0, distance_m=5.0)
    noise = noise or PoseNoise()
    rng = np.random.default_rng(seed)
    total = sum(d for _, d in script)
    n = int(np.floor(total * fps)) + 1
    t = np.sort(np.arange(n) / fps + rng.normal(0.0, noise.time_jitter_s, n))
    t = t[np.concatenate(([True], np.diff(t) > 1e-4))]
    hip = np.zeros(t.shape[0])
    knee = np.zeros(t.shape[0])
    pitch = np.zeros(t.shape[0])
    start = 0.0
    for name, dur in script:
        sel = (t >= start) & (t < start + dur) if start + dur < total else (t >= start)
        if name in _POSTURES:
            a = b = _POSTURES[name]
            s = np.zeros(np.count_nonzero(sel))
        elif name in _TRANSITIONS:
            a, b = (_POSTURES[p] for p in _TRANSITIONS[name])
            u = np.clip((t[sel] - start) / dur, 0.0, 1.0)
            s = u * u * (3.0 - 2.0 * u)  # smooth step: no velocity jumps at either end
        else:
            raise ValueError(f"unknown activity segment {name!r}")
        hip[sel] = a[0] + (b[0] - a[0]) * s
        knee[sel] = a[1] + (b[1] - a[1]) * s
        pitch[sel] = a[2] + (b[2] - a[2]) * s
        start += dur
    h = height_m
    legs = _leg_points(hip, knee, np.zeros_like(hip), h)
    pts = np.zeros((t.shape[0], NUM_LANDMARKS, 3))
    # Body frame: x forward, z up, origin at the pelvis; then pitch the whole body forward about the pelvis.
    body: dict[int, NDArray[np.float64]] = {}
    zeros = np.zeros(t.shape[0])
    for side, names in (
        (
            1.0,
            (
                Landmark.LEFT_HIP,
                Landmark.LEFT_KNEE,
                Landmark.LEFT_ANKLE,
                Landmark.LEFT_HEEL,
                Landmark.LEFT_FOOT_INDEX,
            ),
        ),
        (
            -1.0,
            (
                Landmark.RIGHT_HIP,
                Landmark.RIGHT_KNEE,
                Landmark.RIGHT_ANKLE,
                Landmark.RIGHT_HEEL,
                Landmark.RIGHT_FOOT_INDEX,
            ),
        ),
    ):
        y = zeros + side * _HIP_WIDTH * h / 2
        body[names[0]] = np.stack([zeros, y, zeros], axis=-1)
        for lm, key in zip(names[1:], ("knee", "ankle", "heel", "toe"), strict=True):
            body[lm] = np.stack([legs[key][:, 0], y, legs[key][:, 1]], axis=-1)
        sh = np.stack([zeros, zeros + side * _SHOULDER_WIDTH * h / 2, zeros + _TRUNK * h], axis=-1)
        arm = (
            (Landmark.LEFT_SHOULDER, Landmark.LEFT_ELBOW, Landmark.LEFT_WRIST)
            if side > 0
            else (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_ELBOW, Landmark.RIGHT_WRIST)
        )
        body[arm[0]] = sh
        body[arm[1]] = sh + np.array([0.0, 0.0, -_UPPER_ARM * h])
        body[arm[2]] = sh + np.array([0.05 * h, 0.0, -(_UPPER_ARM + 0.8 * _FOREARM) * h])
        fingers = (
            (Landmark.LEFT_PINKY, Landmark.LEFT_INDEX, Landmark.LEFT_THUMB)
            if side > 0
            else (Landmark.RIGHT_PINKY, Landmark.RIGHT_INDEX, Landmark.RIGHT_THUMB)
        )
        for f_i in fingers:
            body[f_i] = body[arm[2]] + np.array([0.03 * h, 0.0, -0.05 * h])
    head = np.array([0.04 * h, 0.0, (_TRUNK + _NECK_TO_NOSE) * h])
    for lm in FACE:
        lateral = 0.03 * h * (1 if "LEFT" in lm.name else -1 if "RIGHT" in lm.name else 0)
        body[lm] = np.broadcast_to(head + np.array([0.0, lateral, 0.0]), (t.shape[0], 3)).copy()
    th = np.deg2rad(pitch)
    c, s_ = np.cos(th), np.sin(th)
    for idx, p in body.items():
        # Pitch forward: up rotates towards forward (a person falling on their face / lying along x).
        pts[:, idx, 0] = c * p[:, 0] + s_ * p[:, 2]
        pts[:, idx, 1] = p[:, 1]
        pts[:, idx, 2] = -s_ * p[:, 0] + c * p[:, 2]
    # Pelvis height: lowest point on the floor, plus postural sway and a body thickness when lying.
    lowest = pts[:, :, 2].min(axis=1)
    pts[:, :, 2] += (-lowest + 0.08 * h * np.sin(th))[:, None]
    pts[:, :, 0] += 0.005 * np.sin(2 * np.pi * 0.2 * t)[:, None]
    centre, rot = _camera_pose(camera, camera.distance_m if camera.distance_m is not None else 5.0)
    cam = (pts - centre) @ rot.T
    depth = np.maximum(cam[..., 2], 0.3)
    u = camera.focal_px * cam[..., 0] / depth + camera.width_px / 2
    v = camera.focal_px * cam[..., 1] / depth + camera.height_px / 2
    body_px = camera.focal_px * h / float(np.median(depth))
    u = u + rng.normal(0.0, noise.jitter * body_px, u.shape)
    v = v + rng.normal(0.0, noise.jitter * body_px, v.shape)
    vis = np.clip(0.9 + rng.normal(0.0, 0.03, u.shape), 0.0, 1.0)
    kp = np.stack([u, v, vis], axis=-1)
    hips = 0.5 * (cam[:, Landmark.LEFT_HIP] + cam[:, Landmark.RIGHT_HIP])
    world = cam - hips[:, None, :] + rng.normal(0.0, noise.world_jitter_m, cam.shape)
    keep: NDArray[np.bool_] = np.asarray(rng.random(t.shape[0]) >= noise.frame_drop)
    keep[0] = keep[-1] = True
    empty = np.zeros(0)
    return SyntheticWalk(
        t=t[keep],
        keypoints=kp[keep].astype(np.float32),
        world=world[keep].astype(np.float32),
        heel_strikes_left=empty,
        heel_strikes_right=empty,
        toe_offs_left=empty,
        toe_offs_right=empty,
        params=WalkerParams(activity="standing", height_m=height_m),
        camera=camera,
    )


def script_times(script: tuple[tuple[str, float], ...]) -> list[tuple[str, float, float]]:
    """(segment, start, end) seconds of each segment of an activity script: the ground-truth timeline."""
    out = []
    start = 0.0
    for name, dur in script:
        out.append((name, start, start + dur))
        start += dur
    return out
