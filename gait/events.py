"""Gait events (foot contacts) and the per-step clinical metrics built on them.

Heel strike happens when the feet are furthest apart along the walking direction: the leading foot lands while
the trailing one is still behind (double support). So the extrema of the left-minus-right ankle separation,
projected on its principal axis (the walking direction, whatever the camera's view), are the heel strikes:
maxima for one foot, minima for the other (Zeni et al. 2008 use the same geometry relative to the sacrum).
This works for side, oblique and (with world landmarks) frontal views, where "ankle minus pelvis along the
image x axis" (Stenum et al. 2021) only works side-on.

Timing precision is what step-time variability needs (a 2 % CV of a 0.55 s step is 11 ms): the camera's own
samples are interpolated with a cubic spline onto a 200 Hz grid (a linear resampling would put every extremum
on a camera frame, i.e. quantise it to 1/fps), low-passed, and each extremum is refined by a parabola.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline
from scipy.signal import butter, find_peaks, sosfiltfilt

from gaitwatch.gait.feature_names import Feature
from gaitwatch.gait.prepare import INDEX, PreparedWindow
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.spectral import power_spectrum
from gaitwatch.pose.keypoints import Landmark

_FINE_HZ = 200.0


@dataclass(frozen=True, slots=True)
class GaitEvents:
    """Heel strikes in one window: ``t`` (K,) times, increasing; ``left`` (K,) True for the pose model's left
    foot (a left/right swap by the model swaps them). ``source`` is "image" or "world"."""

    t: NDArray[np.float64]
    left: NDArray[np.bool_]
    source: str
    # Stride signal over the noise above the gait's harmonics in the foot signals the events came from (see
    # _snr); how far the event times can be trusted.
    snr: float = float("nan")

    @property
    def count(self) -> int:
        return int(self.t.shape[0])


def _foot_signals(
    w: PreparedWindow, source: str
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None:
    """Camera-sample times (K,) and each ankle's position relative to the pelvis, (K, 2) for the left and
    (K, 2 or 3) for the right foot... returned as (t, left, right) in leg lengths; samples with an unseen
    ankle or hip removed; None when too few remain."""
    la, ra = INDEX[Landmark.LEFT_ANKLE], INDEX[Landmark.RIGHT_ANKLE]
    lh, rh = INDEX[Landmark.LEFT_HIP], INDEX[Landmark.RIGHT_HIP]
    if source == "image":
        pts, scale = w.raw_xy, np.interp(w.raw_t, w.t, w.leg_px)[:, None]
    else:
        if not w.has_world:
            return None
        pts, scale = w.raw_world, np.full((w.raw_t.shape[0], 1), w.leg_m)
    pelvis = 0.5 * (pts[:, lh] + pts[:, rh])
    left = (pts[:, la] - pelvis) / scale
    right = (pts[:, ra] - pelvis) / scale
    ok = np.all(np.isfinite(left), axis=1) & np.all(np.isfinite(right), axis=1)
    if np.count_nonzero(ok) < 6:
        return None
    return w.raw_t[ok], left[ok], right[ok]


def _smooth(
    t_raw: NDArray[np.float64], x: NDArray[np.float64], fine_t: NDArray[np.float64], cutoff: float
) -> NDArray[np.float64]:
    """Columns of ``x`` (K, C): cubic spline through the camera samples onto the fine grid, low-passed (zero
    phase), linear trend removed."""
    fine = CubicSpline(t_raw, x, axis=0)(fine_t)
    sos = butter(2, cutoff, fs=_FINE_HZ, output="sos")
    fine = sosfiltfilt(sos, fine, axis=0)
    tt = fine_t - fine_t[0]
    trend = np.polynomial.polynomial.polyval(tt, np.polynomial.polynomial.polyfit(tt, fine, 1)).T
    out: NDArray[np.float64] = fine - trend
    return out


def _snr(x: NDArray[np.float64], rate_hz: float, f_stride: float, nyquist: float) -> float:
    """Power at the stride frequency and its first harmonics over the power well above them (noise)."""
    spec = power_spectrum(x, rate_hz, 0.01)
    signal = spec.band_power(0.5 * f_stride, 3.5 * f_stride)
    noise = spec.band_power(4.0 * f_stride, max(nyquist, 4.5 * f_stride))
    return signal / max(noise, 1e-12)


def detect_heel_strikes(w: PreparedWindow, f_stride: float, settings: GaitSettings) -> GaitEvents | None:
    """Heel strikes of each foot: maxima of the ankle's forward position relative to the pelvis (Zeni et al.
    2008), along the walking axis (principal axis of the left-minus-right separation, so any view works). Each
    foot's events depend on that leg alone, which keeps step-to-step variability intact. The forward sense
    comes from the shape of the signal: a foot moves forward fast (swing, ~40 % of the cycle) and back slowly
    (stance, ~60 %). Of the image and world sources, the one with the better stride signal-to-noise ratio is
    used."""
    cutoff = min(settings.lowpass_hz, 3.5 * f_stride, 0.45 * w.source_hz)
    best: tuple[float, str, NDArray[np.float64], NDArray[np.float64]] | None = None
    for source in ("image", "world"):
        sig = _foot_signals(w, source)
        if sig is None:
            continue
        t_raw, left, right = sig
        sep = left - right
        centred = sep - sep.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        feet = np.stack([left @ vt[0], right @ vt[0]], axis=1)
        grid = np.interp(w.t, t_raw, feet[:, 0] - feet[:, 1])
        snr = _snr(grid, w.rate_hz, f_stride, w.nyquist_hz)
        if best is None or snr > best[0]:
            best = (snr, source, t_raw, feet)
    if best is None:
        return None
    snr, source, t_raw, feet = best
    fine_t = np.arange(t_raw[0], t_raw[-1], 1.0 / _FINE_HZ)
    if fine_t.shape[0] < 10:
        return None
    smooth = _smooth(t_raw, feet, fine_t, cutoff)
    a_l, a_r = smooth[:, 0], smooth[:, 1]
    # Forward sense: velocity is large and positive for a short time (swing), small and negative for long.
    vel = np.gradient(np.concatenate([a_l, a_r]))
    skew = float(np.mean((vel - vel.mean()) ** 3))
    if skew < 0:
        a_l, a_r = -a_l, -a_r
    times: list[float] = []
    sides: list[bool] = []
    for is_left, x in ((True, a_l), (False, a_r)):
        spread = float(np.percentile(x, 95) - np.percentile(x, 5))
        if spread <= 0:
            continue
        peaks, _ = find_peaks(x, distance=max(1, int(0.6 / f_stride * _FINE_HZ)), prominence=0.3 * spread)
        times += [_refine(fine_t, x, int(i), True) for i in peaks]
        sides += [is_left] * peaks.shape[0]
    if not times:
        return None
    order = np.argsort(times)
    t_arr = np.asarray(times, dtype=np.float64)[order]
    s_arr = np.asarray(sides, dtype=bool)[order]
    keep_t, keep_s = _alternate(t_arr, s_arr)
    return GaitEvents(keep_t, keep_s, source, snr)


def _alternate(t: NDArray[np.float64], left: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Steps alternate feet: of two same-foot strikes in a row (the other foot's was missed), keep the first,
    so the missing step shows up as one over-long step that ``step_metrics`` rejects."""
    if t.shape[0] == 0:
        return t, left
    keep = np.concatenate(([True], left[1:] != left[:-1]))
    return t[keep], left[keep]


def _refine(t: NDArray[np.float64], x: NDArray[np.float64], i: int, is_max: bool) -> float:
    """Sub-sample extremum time from a parabola through the three samples around it."""
    if i <= 0 or i >= x.shape[0] - 1:
        return float(t[i])
    a, b, c = x[i - 1], x[i], x[i + 1]
    denom = a - 2 * b + c
    if denom == 0 or (denom > 0) == is_max:
        return float(t[i])
    delta = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return float(t[i] + delta * (t[1] - t[0]))


def _timing_noise(
    steps: NDArray[np.float64],
    ok: NDArray[np.bool_],
    ends_left: NDArray[np.bool_],
    left_steps: NDArray[np.float64],
    right_steps: NDArray[np.float64],
    pooled: float,
    mean: float,
) -> dict[str, float]:
    """Event timing noise and the step-time CV corrected for it.

    Each step is the difference of two heel-strike times, so an error e_k in event k enters step k with + and
    step k-1 with -: consecutive steps then covary by -var(e), while true step times barely correlate from one
    step to the next. Minus the lag-1 autocovariance of the steps (deviations from each foot's own mean, so a
    limp's alternation does not count) estimates var(e), and var(steps) - 2 var(e) the true variance.
    ``event_noise_cv``: e's standard deviation over the mean step; ``step_time_cv_corrected``. Noisy with ~12
    steps per window; reported only with at least 6 consecutive pairs."""
    dev = np.where(ends_left, steps - np.mean(left_steps), steps - np.mean(right_steps))
    pairs = ok[1:] & ok[:-1]
    if np.count_nonzero(pairs) < 6:
        return {}
    cov1 = float(np.mean(dev[1:][pairs] * dev[:-1][pairs]))
    noise_var = max(-cov1, 0.0)
    return {
        Feature.EVENT_NOISE_CV: float(np.sqrt(noise_var) / mean),
        Feature.STEP_TIME_CV_CORRECTED: float(np.sqrt(max(pooled - 2.0 * noise_var, 0.0)) / mean),
    }


def step_metrics(events: GaitEvents, f_stride: float) -> dict[str, float]:
    """Clinical step metrics from heel strikes: step time mean (s) and CV (fraction), the CV within each
    foot's steps, stride time CV, step-time asymmetry (|mean of one foot's steps - the other's| / mean step),
    cadence from events (steps/min) and the number of steps used. Steps outside 0.4-1.8 x the spectral step
    period are missed or spurious events and are left out (``steps_rejected`` counts them). Empty when fewer
    than 4 steps remain."""
    if events.count < 5:
        return {}
    steps = np.diff(events.t)
    ends_left = events.left[1:]
    expected = 0.5 / f_stride
    ok = (steps > 0.4 * expected) & (steps < 1.8 * expected)
    if np.count_nonzero(ok) < 4:
        return {}
    st = steps[ok]
    mean = float(np.mean(st))
    out: dict[str, float] = {
        Feature.STEP_TIME_MEAN_S: mean,
        Feature.STEP_TIME_CV: float(np.std(st, ddof=1) / mean),
        Feature.CADENCE_EVENTS_SPM: 60.0 / mean,
        Feature.STEPS: float(st.shape[0]),
        Feature.STEPS_REJECTED: float(np.count_nonzero(~ok)),
    }
    left_steps, right_steps = steps[ok & ends_left], steps[ok & ~ends_left]
    if left_steps.shape[0] >= 2 and right_steps.shape[0] >= 2:
        out[Feature.STEP_ASYMMETRY] = float(abs(np.mean(left_steps) - np.mean(right_steps)) / mean)
        # Variability within each foot's steps: a limp (two different step times) inflates the plain CV but
        # not this one, which isolates step-to-step unsteadiness.
        pooled = (np.sum((left_steps - left_steps.mean()) ** 2) + np.sum((right_steps - right_steps.mean()) ** 2)) / (
            left_steps.shape[0] + right_steps.shape[0] - 2
        )
        out[Feature.STEP_TIME_CV_WITHIN] = float(np.sqrt(pooled) / mean)
        out.update(_timing_noise(steps, ok, ends_left, left_steps, right_steps, pooled, mean))
    strides = np.concatenate([np.diff(events.t[events.left]), np.diff(events.t[~events.left])])
    strides = strides[(strides > 0.5 / f_stride) & (strides < 1.6 / f_stride)]
    if strides.shape[0] >= 3:
        out[Feature.STRIDE_TIME_CV] = float(np.std(strides, ddof=1) / np.mean(strides))
    return out
