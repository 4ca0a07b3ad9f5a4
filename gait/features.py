"""Gait metrics of one window: quality, activity, cadence and spectral features.

The pipeline for one window:
1. landmarks seen with low visibility become missing; everything is resampled onto a uniform grid, short gaps
   interpolated (``gaitwatch.gait.resample``);
2. the longest stretch where hips, knees and ankles are all seen is analysed (long gaps are never bridged);
3. signals are normalised by the person's own leg length (hip-knee-ankle), so metrics do not depend on the
   distance to the camera; the leg length itself is tracked linearly in time for walkers approaching it;
4. the stride frequency is found where two spectra agree: the left-minus-right ankle separation oscillates
   once per STRIDE with only odd harmonics (no step/stride ambiguity, but a left/right label swap flips its
   sign), and the feet's distance apart peaks at every step (no swap changes it). With it, the pose model's
   left/right swaps are repaired on the camera's own samples (``gaitwatch.gait.swaps``) and the window is
   prepared again; cadence = 2 x 60 x f_stride steps/min. Image and world separations are combined;
5. walking needs a resolved stepping rhythm above the noise floor, a swing, progression (across the image or
   towards / away from the camera) and feet that do not stand still for most of the window; a valid window
   is also well seen (coverage, visibility, few repaired swaps, stride well above the pose jitter);
6. what the camera cannot measure is left out rather than guessed: step timing (variability, asymmetry,
   regularity) below ``min_frames_per_step`` frames per step or ``min_event_snr``, step length for walkers
   heading towards or away from a tilted camera (``max_heading_deg``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.signal import butter, sosfiltfilt

from gaitwatch.gait.activity import activity_features, current_state, posture_series
from gaitwatch.gait.events import detect_heel_strikes, step_metrics
from gaitwatch.gait.feature_names import Feature
from gaitwatch.gait.prepare import INDEX, PreparedWindow, prepare_window
from gaitwatch.gait.resample import longest_run
from gaitwatch.gait.settings import LEG_LENGTH_PER_HEIGHT, GaitSettings
from gaitwatch.gait.spectral import (
    Spectrum,
    autocorrelation,
    harmonic_amplitudes,
    peak_frequency,
    power_spectrum,
    spectral_entropy,
)
from gaitwatch.gait.swaps import repair_swaps
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
    base: dict[str, float] = {Feature.COVERAGE: coverage, Feature.VISIBILITY: visibility}
    # Posture, transitions and falls come from the camera's own samples, whether or not the person walks.
    posture = posture_series(window, settings.min_visibility) if window.t.shape[0] >= 3 else None
    still = current_state(posture) if posture is not None else ActivityState.UNKNOWN
    if posture is not None:
        base.update(activity_features(posture))
    if prepared is None:
        return GaitMetrics(window.track_id, t_start, t_end, False, quality, still, None, base)
    feats = dict(base)
    feats[Feature.DURATION_S] = prepared.duration_s
    feats[Feature.SOURCE_HZ] = prepared.source_hz
    long_enough = prepared.duration_s >= settings.min_duration_s - 0.5 / settings.resample_hz
    if not long_enough:
        return GaitMetrics(window.track_id, t_start, t_end, False, quality, still, None, feats)
    # Left/right label swaps are repaired on the camera's own samples before anything reads a side: the stride
    # frequency they need comes from signals a swap cannot change (see _joint_peak).
    spectra = stride_spectra(prepared, settings)
    first = _joint_peak(spectra.signed, spectra.magnitude, prepared, settings)
    repair = repair_swaps(window, first[0] if first is not None else None, settings.min_visibility)
    reused: StrideSpectra | None = spectra  # stride_analysis reads the same spectra unless the sides were repaired
    if repair.count:
        again = prepare_window(repair.window, settings)[0]
        if again is not None:
            prepared, reused = again, None
    feats[Feature.SWAP_FRACTION] = repair.foot_fraction
    gait = stride_analysis(prepared, settings, reused)
    feats.update(gait.features)
    walking = gait.walking
    state = ActivityState.WALKING if walking else still
    seen_well = (
        repair.foot_fraction <= settings.max_swap_fraction
        and feats.get(Feature.STRIDE_SNR, np.inf) >= settings.min_stride_snr  # unknown noise (no trunk seen): pass
        # steps that explain too little of the body's progression: legs or cadence misread (unmeasured: pass)
        and feats.get(Feature.STEP_PROGRESS, np.inf) >= settings.min_step_progress
    )
    valid = (
        walking
        and coverage >= settings.min_coverage
        and quality >= settings.min_quality
        and seen_well
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


def _separations(w: PreparedWindow) -> list[NDArray[np.float64]]:
    """Left-minus-right ankle separation in leg lengths: image (N, 2) and, when present, world (N, 3)."""
    out = [(w.point(Landmark.LEFT_ANKLE) - w.point(Landmark.RIGHT_ANKLE)) / w.leg_px[:, None]]
    if w.has_world:
        out.append((w.world_point(Landmark.LEFT_ANKLE) - w.world_point(Landmark.RIGHT_ANKLE)) / w.leg_m)
    return out


def _unit_band(spec: Spectrum, hi_band: float) -> NDArray[np.float64]:
    tot = spec.band_power(_MIN_HZ, hi_band)
    out: NDArray[np.float64] = spec.power / tot if tot > 0 else np.zeros_like(spec.power)
    return out


@dataclass(frozen=True, slots=True)
class StrideSpectra:
    """``stride_spectra``'s two spectra, and the power spectrum of each ankle separation they were made from
    (image, then world when present), which ``stride_analysis`` reads the stride amplitude from."""

    signed: Spectrum
    magnitude: Spectrum
    separations: tuple[Spectrum, ...]


def stride_spectra(w: PreparedWindow, settings: GaitSettings) -> StrideSpectra:
    """Two spectra on the stride-frequency axis, each source normalised to unit gait-band power and summed.

    signed: the left-minus-right ankle separation oscillates once per stride with only odd harmonics, so its
    peak is the stride frequency with no step/stride ambiguity; but a left/right label swap flips its sign.
    magnitude: the feet's distance apart, |separation|, peaks at every heel strike (twice per stride) and no
    label swap changes it; its spectrum is read at twice each stride frequency. Image and world (metric,
    view-independent) separations are both used, so frontal walkers work too.
    """
    seps = _separations(w)
    hi_band = min(w.nyquist_hz, _FREEZE_HI_HZ)
    rate = w.rate_hz
    signed = None
    magnitude = None
    freq = np.zeros(0)
    per_separation = []
    for sep in seps:
        s = power_spectrum(sep, rate, settings.freq_step_hz)
        per_separation.append(s)
        freq = s.freq
        mag = power_spectrum(np.linalg.norm(sep, axis=1), rate, settings.freq_step_hz)
        signed = _unit_band(s, hi_band) + (signed if signed is not None else 0.0)
        on_stride = np.zeros_like(mag.power)
        # The grid is k * df from 0, so twice frequency k is bin 2k; beyond the camera's Nyquist frequency
        # there is only interpolation, not signal.
        unit = _unit_band(mag, hi_band)
        half = unit[::2][: on_stride.shape[0]]
        on_stride[: half.shape[0]] = half
        on_stride[2.0 * mag.freq > 0.95 * w.nyquist_hz] = 0.0
        magnitude = on_stride + (magnitude if magnitude is not None else 0.0)
    if signed is None or magnitude is None:  # pragma: no cover - there is always an image separation
        raise ValueError("stride_spectra: no ankle separation")
    return StrideSpectra(Spectrum(freq, signed), Spectrum(freq, magnitude), tuple(per_separation))


def _joint_peak(
    signed: Spectrum, magnitude: Spectrum, w: PreparedWindow, settings: GaitSettings
) -> tuple[float, float] | None:
    """Stride frequency (Hz) and peak height where the signed and magnitude spectra (``stride_spectra``) agree
    best (their sum): label swaps smear the signed one, a limp's alternating step lengths put a stride line in the
    magnitude one, but they rarely fool both at once. None when there is no peak in the cadence band."""
    both = Spectrum(signed.freq, signed.power + magnitude.power)
    lo = settings.cadence_min_spm / 120.0
    hi = min(settings.cadence_max_spm / 120.0, 0.95 * w.nyquist_hz)
    return peak_frequency(both, lo, hi)


def stride_analysis(w: PreparedWindow, settings: GaitSettings, spectra: StrideSpectra | None = None) -> StrideAnalysis:
    """Cadence and spectral features from the ankle separation and the ankles' motion about the pelvis.
    ``spectra``: ``stride_spectra(w, settings)`` when the caller has it already (computed here otherwise)."""
    nyq = w.nyquist_hz
    sep_img = _separations(w)[0]
    hi_band = min(nyq, _FREEZE_HI_HZ)
    if spectra is None:
        spectra = stride_spectra(w, settings)
    comb, magnitude = spectra.signed, spectra.magnitude
    peak = _joint_peak(comb, magnitude, w, settings)
    feats: dict[str, float] = {}
    # Main-lobe half width of a Hann window is 2 / duration; this much around a peak is "the peak".
    half = 2.0 / max(w.duration_s, 1e-6)
    f_stride = peak[0] if peak is not None else float("nan")
    if peak is not None and peak[0] < settings.min_strides / max(w.duration_s, 1e-6):
        peak = None  # fewer than min_strides strides in the stretch: a trend or a shuffle, not a rhythm
    if peak is not None:
        amps = [np.sqrt(2.0 * _near(s, f_stride, half, (1,))) for s in spectra.separations]
        swing = float(max(amps))
        harmonics = tuple(k for k in (1, 3, 5) if k * f_stride < hi_band)
        periodic = _near(comb, f_stride, half, harmonics) / max(comb.band_power(_MIN_HZ, hi_band), 1e-12)
        # White noise alone puts the covered share of the band's width there: at 7 fps with an 8 s window the
        # stride line and its third harmonic cover 30 % of 0.2-3.5 Hz. Rhythm is what stands above that.
        covered = sum(
            max(0.0, min(k * f_stride + half, hi_band) - max(k * f_stride - half, _MIN_HZ)) for k in harmonics
        )
        floor = min(covered / max(hi_band - _MIN_HZ, 1e-9), 0.99)
        rhythm = (min(periodic, 1.0) - floor) / (1.0 - floor)
    else:
        swing, periodic, rhythm = 0.0, 0.0, 0.0
    feats[Feature.SWING_AMP_LL] = swing
    feats[Feature.PERIODICITY] = float(np.clip(periodic, 0.0, 1.0))
    feats[Feature.RHYTHM] = float(np.clip(rhythm, 0.0, 1.0))
    feats[Feature.SPECTRAL_ENTROPY] = spectral_entropy(comb, _MIN_HZ, hi_band)
    jitter = pose_jitter_bh(w)
    if np.isfinite(jitter):
        feats[Feature.POSE_JITTER_BH] = jitter
        # Stride amplitude over the noise of a separation (two landmarks' jitter, in leg lengths).
        noise_ll = np.sqrt(2.0) * jitter / LEG_LENGTH_PER_HEIGHT
        feats[Feature.STRIDE_SNR] = float(min(swing / noise_ll, 100.0)) if noise_ll > 0 else 100.0

    # Progression: pelvis velocity in body heights per second from a straight-line fit (robust to bounce).
    # The image velocity is divided by the body height once: dividing positions by a body height that changes
    # as the walker approaches or recedes would add a spurious velocity proportional to the image position.
    body_h = w.leg_px / LEG_LENGTH_PER_HEIGHT
    tt = w.t - w.t[0]
    vel = np.polynomial.polynomial.polyfit(tt, w.pelvis, 1)[1] / float(np.mean(body_h))
    speed = float(np.hypot(vel[0], vel[1]))
    feats[Feature.SPEED_BH_S] = speed
    # Walking towards or away from the camera barely moves the pelvis in the image, but the person grows or
    # shrinks: the relative rate of change of the leg length (1/s) is the speed over the distance.
    approach = float(abs(w.leg_px[-1] - w.leg_px[0]) / (max(w.duration_s, 1e-6) * np.mean(w.leg_px)))
    feats[Feature.APPROACH_RATE_PER_S] = approach
    span = _halt_span(w, f_stride) if peak is not None else None
    still = span[1] - span[0] if span is not None and span[1] - span[0] >= settings.min_halt_s else 0.0
    # A stop is freezing evidence only when the person steps both before and after it within the window (at
    # least one stride on each side): a stop at the window's edge is someone starting or ending a walk, which
    # healthy people do all the time (measured on vtest.avi: a walker who stopped to stand for 10 s read as two
    # "halts", one ending and one starting a walk).
    interior = (
        span is not None and span[0] - float(w.t[0]) >= 1.0 / f_stride and float(w.t[-1]) - span[1] >= 1.0 / f_stride
    )
    halt = still if interior else 0.0
    feats[Feature.HALT_S] = halt
    if span is not None and halt > 0:
        # When the stop happened (pipeline clock): windows overlapping the same stop agree on it, so the alert
        # policy can tell one episode seen by several windows from several episodes.
        feats[Feature.HALT_T] = 0.5 * (span[0] + span[1])

    walking = (
        peak is not None
        and swing >= settings.swing_min_ll
        and feats[Feature.RHYTHM] >= settings.periodicity_min
        and still <= settings.max_halt_fraction * w.duration_s
        and (speed >= settings.walk_speed_min_bh_s or approach >= settings.approach_rate_min_per_s)
    )
    cadence = 120.0 * f_stride if walking else None
    if walking:
        feats[Feature.CADENCE_SPM] = 120.0 * f_stride
        feats[Feature.STRIDE_FREQ_HZ] = f_stride
        # Steps of a walker heading towards or away from the camera are foreshortened by the camera's
        # unknown tilt, and a pose model's world depth barely helps (see the measurements above
        # gaitwatch.gait.offline.synthetic.realistic_noise): step length is only measured for walkers crossing the
        # view, i.e. whose pelvis moves mostly sideways in the image.
        heading = _heading_deg(vel, settings.walk_speed_min_bh_s)
        feats[Feature.HEADING_DEG] = heading
        if heading <= settings.max_heading_deg:
            feats[Feature.STEP_LENGTH_LL] = swing  # ankle separation amplitude ~ step length, in leg lengths
            feats[Feature.SPEED_FROM_STEPS_BH_S] = swing * LEG_LENGTH_PER_HEIGHT * 2.0 * f_stride
            feats[Feature.STEP_PROGRESS] = feats[Feature.SPEED_FROM_STEPS_BH_S] / max(speed, 1e-9)
        # Step-to-step timing (variability, asymmetry, autocorrelation regularity, the pelvis's harmonic
        # ratio) needs each heel strike placed to ~1-2 % of a step, or several stride harmonics below the
        # Nyquist frequency; with too few camera frames per step the pose noise decides instead.
        feats[Feature.FRAMES_PER_STEP] = w.source_hz / (2.0 * f_stride)
        if feats[Feature.FRAMES_PER_STEP] >= settings.min_frames_per_step:
            events = detect_heel_strikes(w, f_stride, settings)
            if events is not None:
                feats[Feature.EVENT_SNR] = float(min(events.snr, 1e4))
            if events is not None and events.snr >= settings.min_event_snr:
                feats.update(step_metrics(events, f_stride))
                feats.update(_regularity(sep_img, w.rate_hz, f_stride))
                feats.update(_harmonic_ratio(w, f_stride, nyq))
        feats.update(_trunk_lean(w))
        feats.update(_arm_features(w, f_stride, settings))
    feats.update(_band_features(w, settings, nyq))
    return StrideAnalysis(cadence, walking, feats)


def _heading_deg(vel: NDArray[np.float64], min_speed: float) -> float:
    """Angle (deg) between the image horizontal and the pelvis's image velocity ``vel`` (x, y; body heights
    per second): ~0 for a walker crossing the view, ~90 for one heading towards or away from a tilted camera.
    90 when the pelvis moves slower than ``min_speed`` (e.g. walking straight at an eye-level camera)."""
    if float(np.hypot(vel[0], vel[1])) < min_speed:
        return 90.0
    return float(np.degrees(np.arctan2(abs(vel[1]), abs(vel[0]))))


def pose_jitter_bh(w: PreparedWindow) -> float:
    """The pose model's landmark noise (standard deviation per image coordinate) in body heights.

    The torso vector (mid-hip to mid-shoulder) barely changes from one frame to the next (a trunk leans and
    sways slowly) whatever the legs do, so its frame-to-frame change between consecutive camera samples is
    almost all jitter. With per-landmark noise s, each end (a mean of two landmarks) has s / sqrt(2), the
    vector s, and its change between frames s sqrt(2): the change's robust spread (MAD) / sqrt(2) is s.
    Unlike the residual of any gait model, pathology (variable or asymmetric steps) does not raise it.
    NaN when fewer than 5 consecutive pairs of samples are seen."""
    i_ls, i_rs = INDEX[Landmark.LEFT_SHOULDER], INDEX[Landmark.RIGHT_SHOULDER]
    i_lh, i_rh = INDEX[Landmark.LEFT_HIP], INDEX[Landmark.RIGHT_HIP]
    xy = w.raw_xy
    torso = 0.5 * (xy[:, i_ls] + xy[:, i_rs]) - 0.5 * (xy[:, i_lh] + xy[:, i_rh])
    body = np.interp(w.raw_t, w.t, w.leg_px) / LEG_LENGTH_PER_HEIGHT
    dt = np.diff(w.raw_t)
    consecutive = dt < 1.5 * float(np.median(dt)) if dt.shape[0] else np.zeros(0, dtype=bool)
    step = (np.diff(torso, axis=0) / body[1:, None])[consecutive]
    step = step[np.all(np.isfinite(step), axis=1)]
    if step.shape[0] < 5:
        return float("nan")
    dev = np.abs(step - np.median(step, axis=0))
    return float(1.4826 * np.median(dev) / np.sqrt(2.0))


def halt_duration(w: PreparedWindow, f_stride: float, settings: GaitSettings) -> float:
    """The longest time (s) inside the window during which the feet stopped moving relative to each other,
    or 0 when it is shorter than ``settings.min_halt_s``.

    The left-minus-right ankle separation, low-passed just above the stride frequency, sweeps its whole range
    within every half stride while a person walks; during a freeze (or any stop) it holds still. Its extent
    over a sliding half stride (the length of the per-axis ranges, so a walker who turns and swings along
    another image axis still moves) therefore drops to near zero for the stop's duration minus half a stride;
    a run of extents below a quarter of the window's median, plus that half stride, is a halt. Image and
    world separations must both be still (a walker turning to face an eye-level camera barely swings in the
    image but fully in world depth). Jitter cannot make a halt (it only adds motion), and a bridged dropout
    is at most ~0.5 s of interpolation.
    """
    span = _halt_span(w, f_stride)
    if span is None:
        return 0.0
    halt = span[1] - span[0]
    return halt if halt >= settings.min_halt_s else 0.0


def _halt_span(w: PreparedWindow, f_stride: float) -> tuple[float, float] | None:
    """(start, end) times of the longest still stretch (see halt_duration), or None."""
    n_half = max(2, round(0.5 / f_stride * w.rate_hz))
    cutoff = min(1.5 * f_stride, 0.45 * w.source_hz, 0.45 * w.rate_hz)
    if w.t.shape[0] <= max(15, n_half + 2):
        return None
    sos = butter(2, cutoff, fs=w.rate_hz, output="sos")
    still: NDArray[np.bool_] | None = None
    for sep in _separations(w):
        smooth = sosfiltfilt(sos, sep - sep.mean(axis=0), axis=0)
        windows = np.lib.stride_tricks.sliding_window_view(smooth, n_half, axis=0)  # (N', C, n_half)
        extent = np.linalg.norm(windows.max(axis=2) - windows.min(axis=2), axis=1)
        quiet = extent < 0.25 * float(np.median(extent))
        still = quiet if still is None else still & quiet
    if still is None:
        return None
    start, stop = longest_run(still)
    if stop <= start:
        return None
    # Sliding window k covers samples k .. k + n_half - 1: the still stretch spans start .. stop - 2 + n_half.
    return float(w.t[start]), float(w.t[start]) + float((stop - start - 1 + n_half) / w.rate_hz)


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
        Feature.STRIDE_REGULARITY: stride_reg,
        Feature.STEP_REGULARITY: step_reg,
        Feature.STEP_SYMMETRY: float(np.clip(step_reg / stride_reg, -2.0, 2.0)) if abs(stride_reg) > 1e-3 else 0.0,
    }


def _harmonic_ratio(w: PreparedWindow, f_stride: float, nyq: float) -> dict[str, float]:
    """Harmonic ratio of the pelvis's vertical bounce (Menz et al. 2003: even over odd harmonics of the stride
    frequency; a steady, symmetric gait bounces twice per stride, so high is smooth)."""
    body_h = w.leg_px / LEG_LENGTH_PER_HEIGHT
    vert = w.pelvis[:, 1] / body_h
    n_harm = int(min(10, np.floor(0.95 * nyq / f_stride)))
    out: dict[str, float] = {}
    if n_harm >= 2:
        amps = harmonic_amplitudes(vert, w.rate_hz, f_stride, n_harm)
        odd = float(np.sum(amps[0::2]))
        even = float(np.sum(amps[1::2]))
        out[Feature.HARMONIC_RATIO] = float(min(even / odd, 20.0)) if odd > 1e-12 else 20.0
        out[Feature.BOUNCE_BH] = float(amps[1]) if amps.shape[0] > 1 else 0.0
    return out


def _trunk_lean(w: PreparedWindow) -> dict[str, float]:
    """Trunk lean: angle of the mid-hip to mid-shoulder line from the image vertical (median over the window)."""
    sh = 0.5 * (w.point(Landmark.LEFT_SHOULDER) + w.point(Landmark.RIGHT_SHOULDER))
    trunk = sh - w.pelvis
    return {
        Feature.TRUNK_LEAN_DEG: float(np.degrees(np.arctan2(np.median(np.abs(trunk[:, 0])), -np.median(trunk[:, 1]))))
    }


def _arm_features(w: PreparedWindow, f_stride: float, settings: GaitSettings) -> dict[str, float]:
    """Arm swing: amplitude of the wrists' separation at the stride frequency, in leg lengths."""
    sep = (w.point(Landmark.LEFT_WRIST) - w.point(Landmark.RIGHT_WRIST)) / w.leg_px[:, None]
    if not np.all(np.isfinite(sep)):
        return {}
    spec = power_spectrum(sep, w.rate_hz, settings.freq_step_hz)
    half = 2.0 / max(w.duration_s, 1e-6)
    return {Feature.ARM_SWING_LL: float(np.sqrt(2.0 * _near(spec, f_stride, half, (1,))))}


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
    out: dict[str, float] = {
        Feature.POWER_POSTURAL: spec.band_power(_MIN_HZ, _POSTURAL_HZ) / total,
        Feature.POWER_LOCOMOTOR: spec.band_power(_POSTURAL_HZ, _FREEZE_LO_HZ) / total,
        Feature.POWER_FREEZE: spec.band_power(_FREEZE_LO_HZ, hi) / total,
        Feature.FREEZE_BAND_HZ: max(0.0, hi - _FREEZE_LO_HZ),
    }
    acc = Spectrum(spec.freq, spec.power * (2 * np.pi * spec.freq) ** 4)
    loco = acc.band_power(_POSTURAL_HZ, _FREEZE_LO_HZ)
    if hi - _FREEZE_LO_HZ >= 1.0 and loco > 0:
        out[Feature.FREEZE_INDEX] = acc.band_power(_FREEZE_LO_HZ, hi) / loco
    else:
        out[Feature.FREEZE_INDEX] = 0.0
    return out
