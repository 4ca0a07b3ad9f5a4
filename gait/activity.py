"""Posture over a window (standing / sitting / lying), sit-to-stand transitions and falls.

Per camera sample, from body geometry:
- lying: the trunk (mid-hip to mid-shoulder) is more than 60 deg from vertical in the image;
- sitting: the thighs are far from vertical: with world landmarks (camera-aligned, y down) the vertical share
  of the thigh vector is below 0.55 (view-independent); without them, the hips are less than 0.7 leg lengths
  above the ankles in the image;
- standing (upright) otherwise.
A fall is a rapid descent (the shoulders drop by >= 0.35 body heights within ``fall_descent_s``) that ends
lying; the alert policy then waits for ``no recovery`` before alerting. A sit-to-stand is a run of sitting
samples followed by standing ones; its duration runs from the hips leaving the seated level to their reaching
the standing one (where their vertical velocity is 10 % of its peak, see ``_rise_time``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.settings import LEG_LENGTH_PER_HEIGHT
from gaitwatch.gait.types import ActivityState, GaitWindow
from gaitwatch.pose.keypoints import Landmark

UNKNOWN, STANDING, SITTING, LYING = 0, 1, 2, 3
_STATE = {
    UNKNOWN: ActivityState.UNKNOWN,
    STANDING: ActivityState.STANDING,
    SITTING: ActivityState.SITTING,
    LYING: ActivityState.LYING,
}

_LYING_TILT_DEG = 60.0
_SITTING_THIGH_VERTICAL = 0.55
_SITTING_HIP_HEIGHT_LL = 0.7
_FALL_DROP_BH = 0.35  # a person sitting down drops ~0.25-0.3 H, a fall to the floor ~0.6-0.7 H
_SMOOTH_S = 0.25  # half-width of the posture mode filter
_FALL_DESCENT_S = 1.5  # falls reach the floor in < ~1 s (Wu 2000: 0.5-0.9 s); sitting down takes ~1.5-3 s
# Sit-to-stand timing (see _rise_time): the move is bracketed at 10 % / 90 % of the way between the two levels,
# and begins and ends where the hips' vertical velocity (slope over +-0.25 s) is 10 % of its peak.
_RISE_BRACKET = 0.1
_RISE_SLOPE_HALF_S = 0.25
_RISE_ONSET_OF_PEAK = 0.1
# A posture counts once held this long (shorter runs are flicker).
_MIN_RUN_S = 0.5
# A sit-to-stand rises from a settled seat. On vtest.avi two pedestrians crossing, posed on one crop, read
# "sitting" for 0.86 s and then "standing": a 3-3.7 s "slow sit-to-stand" alert on a walker. A person who sat down
# stays seated longer than that; 1.5 s keeps the 30 s seated clip, every generated rise and a quick sit-and-rise.
_SEATED_BEFORE_RISE_S = 1.5


@dataclass(frozen=True, slots=True)
class PostureSeries:
    """Per camera sample: ``t`` (M,), ``state`` (M,) codes (UNKNOWN/STANDING/SITTING/LYING), ``shoulder_y``
    and ``hip_y`` (M,) image heights in body heights (down positive; NaN when unseen)."""

    t: NDArray[np.float64]
    state: NDArray[np.int8]
    shoulder_y: NDArray[np.float64]
    hip_y: NDArray[np.float64]


def _mid(kp: NDArray[np.float64], a: Landmark, b: Landmark) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 0.5 * (kp[:, a, :2] + kp[:, b, :2])
    return out


def posture_series(window: GaitWindow, min_visibility: float = 0.5) -> PostureSeries | None:
    """Posture of every sample of ``window`` whose hips, knees, ankles and shoulders are seen."""
    kp = window.keypoints.astype(np.float64)
    need = (
        Landmark.LEFT_HIP,
        Landmark.RIGHT_HIP,
        Landmark.LEFT_KNEE,
        Landmark.RIGHT_KNEE,
        Landmark.LEFT_ANKLE,
        Landmark.RIGHT_ANKLE,
        Landmark.LEFT_SHOULDER,
        Landmark.RIGHT_SHOULDER,
    )
    seen = np.all(kp[:, need, 2] >= min_visibility, axis=1)
    if np.count_nonzero(seen) < 3:
        return None
    hip = _mid(kp, Landmark.LEFT_HIP, Landmark.RIGHT_HIP)
    sh = _mid(kp, Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER)
    knee = _mid(kp, Landmark.LEFT_KNEE, Landmark.RIGHT_KNEE)
    ankle = _mid(kp, Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE)
    thigh_px = np.linalg.norm(knee - hip, axis=1)
    shank_px = np.linalg.norm(ankle - knee, axis=1)
    # Leg length from the less foreshortened segment (a sitting person's thigh may point at the camera).
    leg_px = float(np.percentile(2.0 * np.maximum(thigh_px, shank_px)[seen], 90))
    if not leg_px > 0:
        return None
    trunk = sh - hip
    tilt = np.degrees(np.arctan2(np.abs(trunk[:, 0]), -trunk[:, 1]))
    world = window.world.astype(np.float64)
    if np.any(world != 0.0):
        wt = 0.5 * (world[:, Landmark.LEFT_KNEE] + world[:, Landmark.RIGHT_KNEE]) - 0.5 * (
            world[:, Landmark.LEFT_HIP] + world[:, Landmark.RIGHT_HIP]
        )
        sitting = np.abs(wt[:, 1]) / np.maximum(np.linalg.norm(wt, axis=1), 1e-6) < _SITTING_THIGH_VERTICAL
    else:
        sitting = (ankle[:, 1] - hip[:, 1]) / leg_px < _SITTING_HIP_HEIGHT_LL
    state = np.full(kp.shape[0], STANDING, dtype=np.int8)
    state[sitting] = SITTING
    state[tilt > _LYING_TILT_DEG] = LYING
    state[~seen] = UNKNOWN
    state = _mode_filter(window.t, state, _SMOOTH_S)
    body_px = leg_px / LEG_LENGTH_PER_HEIGHT
    shoulder_y = np.where(seen, sh[:, 1] / body_px, np.nan)
    hip_y = np.where(seen, hip[:, 1] / body_px, np.nan)
    return PostureSeries(window.t, state, shoulder_y, hip_y)


def _mode_filter(t: NDArray[np.float64], state: NDArray[np.int8], half_s: float) -> NDArray[np.int8]:
    """Each known sample takes the most common known state within +-``half_s`` (single-frame flickers of a
    noisy pose would otherwise split a posture into short runs and hide its transitions)."""
    out = state.copy()
    lo = np.searchsorted(t, t - half_s, side="left")
    hi = np.searchsorted(t, t + half_s, side="right")
    for i in range(t.shape[0]):
        if state[i] == UNKNOWN:
            continue
        counts = np.bincount(state[lo[i] : hi[i]], minlength=4)
        counts[UNKNOWN] = 0
        out[i] = int(np.argmax(counts))
    return out


def current_state(p: PostureSeries, last_s: float = 1.0) -> ActivityState:
    """The most common known posture over the last ``last_s`` seconds of the series."""
    sel = (p.t >= p.t[-1] - last_s) & (p.state != UNKNOWN)
    if not np.any(sel):
        return ActivityState.UNKNOWN
    counts = np.bincount(p.state[sel], minlength=4)
    return _STATE[int(np.argmax(counts))]


def activity_features(p: PostureSeries) -> dict[str, float]:
    """Posture shares at the end of the window, the latest fall-like descent and sit-to-stand transition.

    Keys: ``lying_end``, ``sitting_end`` (share of the last second); when found, ``descent_t`` (time the
    shoulders finished a >= 0.35 body-height drop taking <= 1.5 s and ending lying), ``descent_drop_bh``;
    ``sit_to_stand_s`` and ``sit_to_stand_t`` (duration and end time of the latest sit-to-stand), likewise
    ``stand_to_sit_s`` / ``stand_to_sit_t``.
    """
    out: dict[str, float] = {}
    end = (p.t >= p.t[-1] - 1.0) & (p.state != UNKNOWN)
    n_end = max(int(np.count_nonzero(end)), 1)
    out["lying_end"] = float(np.count_nonzero(end & (p.state == LYING))) / n_end
    out["sitting_end"] = float(np.count_nonzero(end & (p.state == SITTING))) / n_end
    fall = _first_descent(p)
    if fall is not None:
        out["descent_t"], out["descent_drop_bh"] = fall
    for name, before, after, settled in (
        ("sit_to_stand", SITTING, STANDING, _SEATED_BEFORE_RISE_S),
        ("stand_to_sit", STANDING, SITTING, _MIN_RUN_S),
    ):
        tr = _latest_transition(p, before, after, settled)
        if tr is not None:
            out[f"{name}_t"], out[f"{name}_s"] = tr
    return out


def _first_descent(p: PostureSeries) -> tuple[float, float] | None:
    """The first lying sample reached by a fast enough, deep enough drop of the shoulders: (time, drop).
    As windows slide, the same fall keeps the same time, so the policy recognises it as one event."""
    ok = np.isfinite(p.shoulder_y)
    t, y, st = p.t[ok], p.shoulder_y[ok], p.state[ok]
    for i in range(t.shape[0]):
        if st[i] != LYING:
            continue
        back = (t >= t[i] - _FALL_DESCENT_S) & (t <= t[i])
        drop = float(y[i] - np.min(y[back]))
        start = int(np.flatnonzero(back)[np.argmin(y[back])])
        if drop >= _FALL_DROP_BH and st[start] in (STANDING, SITTING):
            return float(t[i]), drop
    return None


def _latest_transition(p: PostureSeries, before: int, after: int, min_before_s: float) -> tuple[float, float] | None:
    """End time and duration of the latest change from ``before`` to ``after`` posture: a ``before`` run of at
    least ``min_before_s`` seconds, then an ``after`` run of at least ``_MIN_RUN_S``."""
    ok = p.state != UNKNOWN
    t, st, hy = p.t[ok], p.state[ok], p.hip_y[ok]
    if t.shape[0] < 4:
        return None
    result = None
    i = 0
    while i < t.shape[0]:
        j = i
        while j + 1 < t.shape[0] and st[j + 1] == st[i]:
            j += 1
        # Run [i, j] of one state: a long enough "before" run, then (maybe after a short other run) "after".
        if st[i] == before and t[j] - t[i] >= min_before_s:
            k = j + 1
            while k < t.shape[0] and st[k] not in (before, after):
                k += 1
            if k < t.shape[0] and st[k] == after:
                m = k
                while m + 1 < t.shape[0] and st[m + 1] == after:
                    m += 1
                if t[m] - t[k] >= _MIN_RUN_S:
                    dur = _rise_time(t[i : m + 1], hy[i : m + 1], j - i + 1, m - k + 1)
                    result = (float(t[k]), dur)
        i = j + 1
    return result


def _rise_time(t: NDArray[np.float64], y: NDArray[np.float64], n_before: int, n_after: int) -> float:
    """Duration of the hips' move between the two postures, from the signal itself (no assumed speed profile).

    The hip height is expressed as the fraction of the way from the median level of the run before (0) to that
    of the run after (1), after a 0.2 s running median. The move is first bracketed by displacement: the last
    sample at most 10 % of the way before the first half-way sample, and the first sample at least 90 % of the
    way after it (a pause part-way up stays inside). Its ends are then where the hips' vertical velocity (a
    least-squares slope over +-0.25 s, at least two frame intervals) falls below 10 % of its peak inside that
    bracket, searching outwards and interpolating between samples: a common definition of movement onset and
    end in motion studies, and one that neither a constant-speed nor a smooth (slow-start, slow-end) rise
    biases much. Measured on 1-D rises of 1.2-4 s with 0.8 % of body height jitter at 7, 15 and 30 fps
    (median error): +0.3-0.4 s for a constant-speed rise (the slope's window blurs its instantaneous start),
    -0.1 to +0.0 s for smooth-step and cosine rises, -0.3 to -0.4 s for a minimum-jerk rise (its first and last
    tenths move the hips < 1 %), +0.1 to +0.2 s with a pause part-way up. The old rule (20-80 % rise time / 0.6,
    exact only at constant speed) read smooth rises ~0.8 s short.
    """
    a = float(np.nanmedian(y[:n_before]))
    b = float(np.nanmedian(y[-n_after:]))
    if abs(b - a) < 1e-6:
        return 0.0
    ys = np.array([np.nanmedian(y[(t >= ti - 0.1) & (t <= ti + 0.1)]) for ti in t])
    frac = (ys - a) / (b - a)
    # The rise crosses half-way after the last seated sample still below it: a stray first sample already at the
    # standing level (a pose glitch at the window's start) must not be taken for the rise.
    seated = np.flatnonzero(frac[:n_before] < 0.5)
    start = int(seated[-1]) if seated.shape[0] else 0
    half = start + np.flatnonzero(frac[start:] >= 0.5)
    if half.shape[0] == 0:
        return 0.0
    i50 = int(half[0])
    lo = np.flatnonzero(frac[:i50] <= _RISE_BRACKET)
    i_lo = int(lo[-1]) if lo.shape[0] else 0
    hi = np.flatnonzero(frac[i50:] >= 1.0 - _RISE_BRACKET)
    i_hi = i50 + int(hi[0]) if hi.shape[0] else t.shape[0] - 1
    # At least two frame intervals each side: a 7 fps slope over +-0.25 s would rest on three samples.
    half_s = max(_RISE_SLOPE_HALF_S, 2.0 * float(np.median(np.diff(t))))
    v = _slope(t, frac, half_s)
    inside = v[i_lo : i_hi + 1]
    if not np.any(np.isfinite(inside)):
        return float(t[i_hi] - t[i_lo])
    thr = _RISE_ONSET_OF_PEAK * float(np.nanmax(inside))
    i = i_lo
    while i > 0 and not v[i] < thr:
        i -= 1
    t0 = _crossing(t, v, i, i + 1, thr) if v[i] < thr and i < t.shape[0] - 1 else float(t[i])
    j = i_hi
    while j < t.shape[0] - 1 and not v[j] < thr:
        j += 1
    t1 = _crossing(t, v, j, j - 1, thr) if v[j] < thr and j > 0 else float(t[j])
    return float(max(t1 - t0, 0.0))


def _slope(t: NDArray[np.float64], y: NDArray[np.float64], half_s: float) -> NDArray[np.float64]:
    """Least-squares slope of ``y`` over +-``half_s`` around each sample (NaN with fewer than 3 samples)."""
    v = np.full(t.shape[0], np.nan)
    lo = np.searchsorted(t, t - half_s, side="left")
    hi = np.searchsorted(t, t + half_s, side="right")
    for k in range(t.shape[0]):
        tt, yy = t[lo[k] : hi[k]], y[lo[k] : hi[k]]
        ok = np.isfinite(yy)
        if np.count_nonzero(ok) < 3:
            continue
        d = tt[ok] - tt[ok].mean()
        den = float(d @ d)
        if den > 0:
            v[k] = float(d @ (yy[ok] - yy[ok].mean())) / den
    return v


def _crossing(t: NDArray[np.float64], v: NDArray[np.float64], below: int, above: int, thr: float) -> float:
    """Time between samples ``below`` (v < thr) and ``above`` (v >= thr) where v reaches thr, interpolated."""
    if not np.isfinite(v[above]) or v[above] == v[below]:
        return float(t[below])
    w = float(np.clip((thr - v[below]) / (v[above] - v[below]), 0.0, 1.0))
    return float(t[below] + w * (t[above] - t[below]))
