"""Gait metrics of one window: quality, activity, cadence and spectral features.

The pipeline for one window:
1. landmarks seen with low visibility become missing; everything is resampled onto a uniform grid, short gaps
   interpolated (``gaitwatch.gait.resample``);
2. the longest stretch where hips, knees and ankles are all seen is analysed (long gaps are never bridged);
3. signals are normalised by the person's own leg length (hip-knee-ankle), so metrics do not depend on the
   distance to the camera; the leg length itself is tracked linearly in time for walkers approaching it;
4. cadence comes from the ankle separation (left minus right ankle), which oscillates once per STRIDE (two
   steps) and, for a symmetric gait, holds only odd harmonics of the stride frequency: its dominant peak is
   the stride frequency without any step/stride ambiguity, and cadence = 2 x 60 x f_stride steps/min.
   Image and world (metric, view-independent) separations are combined, so frontal walkers work too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.activity import activity_features, current_state, posture_series
from gaitwatch.gait.events import detect_heel_strikes, step_metrics
from gaitwatch.gait.prepare import PreparedWindow, prepare_window
from gaitwatch.gait.settings import LEG_LENGTH_PER_HEIGHT, GaitSettings
from gaitwatch.gait.spectral import (
    Spectrum,
    autocorrelation,
    harmonic_amplitudes,
    peak_frequency,
    power_spectrum,
    spectral_entropy,
)
from gaitwatch.gait.types import ActivityState, GaitMetrics, GaitWindow
from gaitwatch.pose.keypoints import Landmark

# Frequency band limits in Hz (physical meaning in the comments where used).
_POSTURAL_HZ = 0.5  # below: drift, weight shifts, the walker's trend across the image
_FREEZE_LO_HZ, _FREEZE_HI_HZ = 3.0, 8.0  # Moore et al. 2008: trembling legs during freezing of gait
_MIN_HZ = 0.2  # lowest frequency counted in "total" gait-band power (below is trend)


def _near(spec: Spectrum, f0: float, half_width: float, harmonics: tuple[int, ...]) -> float:
    total = 0.0
    for k in harmonics:
        total += spec.band_power(k * f0 - half_width, k * f0 + half_width)
    return total


def analyze_window(window: GaitWindow, settings: GaitSettings | None = None) -> GaitMetrics:
    """Quality, activity state, cadence and spectral features of one window (see the module docstring).

    ``valid`` is True only for a walking window that is long, well seen and well covered enough; otherwise
    ``cadence_spm`` is None and ``features`` holds what could still be measured.
    """
    settings = settings or GaitSettings()
    t_start = float(window.t[0]) if window.t.shape[0] else 0.0
    t_end = float(window.t[-1]) if window.t.shape[0] else 0.0
    prepared, coverage, visibility = prepare_window(window, settings)
    quality = float(np.clip(coverage * visibility, 0.0, 1.0))
    base = {"coverage": coverage, "visibility": visibility}
    # Posture, transitions and falls come from the camera's own samples, whether or not the person walks.
    posture = posture_series(window, settings.min_visibility) if window.t.shape[0] >= 3 else None
    still = current_state(posture) if posture is not None else ActivityState.UNKNOWN
    if posture is not None:
        base.update(activity_features(posture))
    if prepared is None:
        return GaitMetrics(window.track_id, t_start, t_end, False, quality, still, None, base)
    feats = dict(base)
    feats["duration_s"] = prepared.duration_s
    feats["source_hz"] = prepared.source_hz
    long_enough = prepared.duration_s >= settings.min_duration_s - 0.5 / settings.resample_hz
    if not long_enough:
        return GaitMetrics(window.track_id, t_start, t_end, False, quality, still, None, feats)
    gait = stride_analysis(prepared, settings)
    feats.update(gait.features)
    walking = gait.walking
    state = ActivityState.WALKING if walking else still
    valid = (
        walking
        and coverage >= settings.min_coverage
        and quality >= settings.min_quality
        and gait.cadence_spm is not None
    )
    cadence = gait.cadence_spm if valid else None
    return GaitMetrics(window.track_id, t_start, t_end, valid, quality, state, cadence, feats)


@dataclass(frozen=True, slots=True)
class StrideAnalysis:
    """Outcome of the stride spectrum: cadence (None when no stepping rhythm), walking decision, features."""

    cadence_spm: float | None
    walking: bool
    features: dict[str, float]


def stride_analysis(w: PreparedWindow, settings: GaitSettings) -> StrideAnalysis:
    """Cadence and spectral features from the ankle separation and the ankles' motion about the pelvis."""
    rate = w.rate_hz
    nyq = w.nyquist_hz
    leg = w.leg_px[:, None]
    sep_img = (w.point(Landmark.LEFT_ANKLE) - w.point(Landmark.RIGHT_ANKLE)) / leg
    spectra = [power_spectrum(sep_img, rate, settings.freq_step_hz)]
    if w.has_world:
        sep_w = (w.world_point(Landmark.LEFT_ANKLE) - w.world_point(Landmark.RIGHT_ANKLE)) / w.leg_m
        spectra.append(power_spectrum(sep_w, rate, settings.freq_step_hz))
    hi_band = min(nyq, _FREEZE_HI_HZ)
    # Normalise each source to unit gait-band power before adding, so a noisy metric (world) and a precise but
    # view-dependent one (image) vote equally on where the stride peak is.
    combined = np.zeros_like(spectra[0].power)
    for s in spectra:
        tot = s.band_power(_MIN_HZ, hi_band)
        if tot > 0:
            combined += s.power / tot
    comb = Spectrum(spectra[0].freq, combined)
    lo = settings.cadence_min_spm / 120.0
    hi = min(settings.cadence_max_spm / 120.0, 0.95 * nyq)
    peak = peak_frequency(comb, lo, hi)
    feats: dict[str, float] = {}
    # Main-lobe half width of a Hann window is 2 / duration; this much around a peak is "the peak".
    half = 2.0 / max(w.duration_s, 1e-6)
    f_stride = peak[0] if peak is not None else float("nan")
    if peak is not None:
        amps = [np.sqrt(2.0 * _near(s, f_stride, half, (1,))) for s in spectra]
        swing = float(max(amps))
        harmonics = tuple(k for k in (1, 3, 5) if k * f_stride < hi_band)
        periodic = _near(comb, f_stride, half, harmonics) / max(comb.band_power(_MIN_HZ, hi_band), 1e-12)
    else:
        swing, periodic = 0.0, 0.0
    feats["swing_amp_ll"] = swing
    feats["periodicity"] = float(np.clip(periodic, 0.0, 1.0))
    feats["spectral_entropy"] = spectral_entropy(comb, _MIN_HZ, hi_band)

    # Progression: pelvis velocity in body heights per second from a straight-line fit (robust to bounce).
    body_h = w.leg_px / LEG_LENGTH_PER_HEIGHT
    pel = w.pelvis / body_h[:, None]
    tt = w.t - w.t[0]
    vel = np.polynomial.polynomial.polyfit(tt, pel, 1)[1]
    speed = float(np.hypot(vel[0], vel[1]))
    feats["speed_bh_s"] = speed

    walking = (
        peak is not None
        and swing >= settings.swing_min_ll
        and (speed >= settings.walk_speed_min_bh_s or feats["periodicity"] >= settings.periodicity_min)
    )
    cadence = 120.0 * f_stride if walking else None
    if walking:
        feats["cadence_spm"] = 120.0 * f_stride
        feats["stride_freq_hz"] = f_stride
        feats["step_length_ll"] = swing  # ankle separation amplitude ~ step length, in leg lengths
        feats["speed_from_steps_bh_s"] = swing * LEG_LENGTH_PER_HEIGHT * 2.0 * f_stride
        feats.update(_regularity(sep_img, rate, f_stride))
        events = detect_heel_strikes(w, f_stride, settings)
        if events is not None:
            feats.update(step_metrics(events, f_stride))
        feats.update(_trunk_features(w, f_stride, nyq))
        feats.update(_arm_features(w, f_stride, settings))
    feats.update(_band_features(w, settings, nyq))
    return StrideAnalysis(cadence, walking, feats)


def _regularity(sep: NDArray[np.float64], rate: float, f_stride: float) -> dict[str, float]:
    """Autocorrelation regularity of the ankle separation (Moe-Nilssen & Helbostad 2004, adapted): at one
    stride lag a steady gait repeats itself (close to 1); at half a stride the separation flips sign, so minus
    the autocorrelation there is the step regularity; their ratio is the step symmetry."""
    centred = sep - sep.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    u = centred @ vt[0]
    ac = autocorrelation(u)
    lag = rate / f_stride
    idx = np.arange(ac.shape[0], dtype=np.float64)
    if lag >= ac.shape[0] - 1:
        return {}
    stride_reg = float(np.interp(lag, idx, ac))
    step_reg = float(-np.interp(lag / 2.0, idx, ac))
    return {
        "stride_regularity": stride_reg,
        "step_regularity": step_reg,
        "step_symmetry": float(np.clip(step_reg / stride_reg, -2.0, 2.0)) if abs(stride_reg) > 1e-3 else 0.0,
    }


def _trunk_features(w: PreparedWindow, f_stride: float, nyq: float) -> dict[str, float]:
    """Harmonic ratio of the pelvis's vertical bounce (Menz et al. 2003: even over odd harmonics of the stride
    frequency; a steady, symmetric gait bounces twice per stride, so high is smooth) and trunk lean."""
    body_h = w.leg_px / LEG_LENGTH_PER_HEIGHT
    vert = w.pelvis[:, 1] / body_h
    n_harm = int(min(10, np.floor(0.95 * nyq / f_stride)))
    out: dict[str, float] = {}
    if n_harm >= 2:
        amps = harmonic_amplitudes(vert, w.rate_hz, f_stride, n_harm)
        odd = float(np.sum(amps[0::2]))
        even = float(np.sum(amps[1::2]))
        out["harmonic_ratio"] = float(min(even / odd, 20.0)) if odd > 1e-12 else 20.0
        out["bounce_bh"] = float(amps[1]) if amps.shape[0] > 1 else 0.0
    sh = 0.5 * (w.point(Landmark.LEFT_SHOULDER) + w.point(Landmark.RIGHT_SHOULDER))
    trunk = sh - w.pelvis
    out["trunk_lean_deg"] = float(
        np.degrees(np.arctan2(np.median(np.abs(trunk[:, 0])), -np.median(trunk[:, 1])))
    )
    return out


def _arm_features(w: PreparedWindow, f_stride: float, settings: GaitSettings) -> dict[str, float]:
    """Arm swing: amplitude of the wrists' separation at the stride frequency, in leg lengths."""
    sep = (w.point(Landmark.LEFT_WRIST) - w.point(Landmark.RIGHT_WRIST)) / w.leg_px[:, None]
    if not np.all(np.isfinite(sep)):
        return {}
    spec = power_spectrum(sep, w.rate_hz, settings.freq_step_hz)
    half = 2.0 / max(w.duration_s, 1e-6)
    return {"arm_swing_ll": float(np.sqrt(2.0 * _near(spec, f_stride, half, (1,))))}


def _band_features(w: PreparedWindow, settings: GaitSettings, nyq: float) -> dict[str, float]:
    """Band powers of the ankles' motion about the pelvis, and the freeze index.

    The freeze index (Moore et al. 2008) is the power of leg ACCELERATION in the freeze band (3-8 Hz) over the
    locomotor band (0.5-3 Hz); the position spectrum is weighted by (2 pi f)^4 to become an acceleration
    spectrum. The freeze band is capped at the camera's Nyquist frequency: at 7 fps only 3-3.5 Hz remains, so
    the index is reported as 0 with ``freeze_band_hz`` telling how much band there was.
    """
    leg = w.leg_px[:, None]
    rel = np.concatenate(
        [
            (w.point(Landmark.LEFT_ANKLE) - w.pelvis) / leg,
            (w.point(Landmark.RIGHT_ANKLE) - w.pelvis) / leg,
        ],
        axis=1,
    )
    spec = power_spectrum(rel, w.rate_hz, settings.freq_step_hz)
    hi = min(_FREEZE_HI_HZ, nyq)
    total = max(spec.band_power(_MIN_HZ, hi), 1e-12)
    out = {
        "power_postural": spec.band_power(_MIN_HZ, _POSTURAL_HZ) / total,
        "power_locomotor": spec.band_power(_POSTURAL_HZ, _FREEZE_LO_HZ) / total,
        "power_freeze": spec.band_power(_FREEZE_LO_HZ, hi) / total,
        "freeze_band_hz": max(0.0, hi - _FREEZE_LO_HZ),
    }
    acc = Spectrum(spec.freq, spec.power * (2 * np.pi * spec.freq) ** 4)
    loco = acc.band_power(_POSTURAL_HZ, _FREEZE_LO_HZ)
    if hi - _FREEZE_LO_HZ >= 1.0 and loco > 0:
        out["freeze_index"] = acc.band_power(_FREEZE_LO_HZ, hi) / loco
    else:
        out["freeze_index"] = 0.0
    return out
