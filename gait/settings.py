"""Knobs of the gait stage, all in physical units (seconds, hertz, body heights, leg lengths), never frame
counts, so one configuration survives a change of camera frame rate. The daemon's [gait] and [alerts] tables
are these classes (gaitwatch.daemon.library_settings)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from annotated_types import Interval

# Winter (2009), Biomechanics and Motor Control of Human Movement, segment lengths as fractions of body
# height H: thigh (greater trochanter to knee) 0.245 H, shank (knee to ankle) 0.246 H. Hip-to-ankle leg length
# 0.491 H is what pose keypoints measure, so body height in pixels is estimated as leg length / 0.491.
LEG_LENGTH_PER_HEIGHT = 0.491


@dataclass(frozen=True, slots=True)
class GaitSettings:
    """How windows of one person's keypoints are prepared and analysed.

    window_s: analysis window. Frequency resolution of a plain FFT is 1/window_s; peak interpolation recovers
        much finer cadence, but a window must still hold several strides (>= 5 s): longer windows give
        steadier cadence and variability estimates but react later to a change and need the person in view
        longer.
    hop_s: how often a window is analysed. Shorter hops give more (overlapping, correlated) windows and
        cost CPU.
    min_duration_s: the shortest contiguous, well-seen stretch analysed; below it the window is invalid.
    resample_hz: uniform grid the irregular frame times are resampled onto. Above the camera rate it only
        interpolates (harmless); the usable bandwidth is always the camera's own Nyquist frequency.
    max_gap_s: gaps between observations up to this long are linearly interpolated; longer ones are missing.
        A camera's own frame interval is never a gap (at 7 fps frames are 0.14 s apart), see gap_intervals.
    gap_intervals: a gap is also tolerated up to this many median frame intervals. 3.5 bridges up to two
        consecutive frames without a pose (or without one landmark), which pose models produce all the time;
        lower values split windows at every flicker (2.5 lost a quarter of 15 fps windows of generated walkers
        with 2 % dropped frames), higher ones interpolate across a whole step at 7 fps.
    min_visibility: landmarks the pose model sees with less visibility are treated as missing. Higher rejects
        more hallucinated (occluded) limbs but loses more windows.
    min_coverage: fraction of the window that must have the hips, knees and ankles seen.
    min_quality: windows whose quality score (mean visibility x coverage) is below this are invalid.
    lowpass_hz: low-pass cut-off for kinematic signals (events, amplitudes); gait content lies below ~6 Hz
        (Stenum et al. 2021) and pose jitter above it. Spectral features use the unfiltered signal.
    cadence_min_spm / cadence_max_spm: band searched for the cadence peak. Widening it admits shuffling or
        running but also more chances to lock onto noise or a harmonic.
    freq_step_hz: spectral grid spacing after zero padding (before parabolic interpolation): finer costs a
        longer FFT, coarser relies more on interpolation.
    swing_min_ll: smallest oscillation amplitude of the ankle separation (leg lengths) counted as stepping.
        Normal walking is ~0.6-0.8; shuffling ~0.25; pose jitter on a standing person < 0.05.
    walk_speed_min_bh_s: pelvis speed (body heights per second) across the image that shows progression.
        Normal adult walking is ~0.75 bh/s (1.3 m/s); a very slow patient ~0.15 bh/s. Lower admits slower
        walkers but also people shifting or turning on the spot.
    approach_rate_min_per_s: the other sign of progression, for walking towards or away from the camera: the
        person's relative change of size per second (speed / distance; 0.75 bh/s at 10 body heights is
        0.075/s). Lower admits more distant frontal walkers but also a standing person's leaning.
    periodicity_min: the stride's rhythm (``rhythm`` feature: the share of the separation's gait-band power
        in the stride line and its odd harmonics, above what white noise would put there, 0-1) needed to call
        stepping. Lower accepts irregular stepping (and noise); higher loses very unsteady walkers.
    min_strides: a stride frequency is accepted only if the stretch holds at least this many strides: below
        ~2 the line is not resolved from the trend (the Hann main lobe is 2 / duration wide) and the "rhythm"
        of a person shifting their weight looks perfect. 2.5 strides of a 65 steps/min walker take 4.6 s.
    max_halt_fraction: a window whose feet stand still (``halt_s``) for more than this share of it is not a
        walking window (a stop, or standing), even if it holds some steps. Freezing episodes inside walking
        stay below it in 8 s windows of the generator (1.5-4 s).
    max_swap_fraction: windows where the left/right labels had to be exchanged back in more than this share
        of the samples are invalid: the pose model cannot tell the legs apart there, and side-dependent
        measures (asymmetry, per-foot steps) would be guesses. Measured: 0-8 % on real 7 fps footage of 60-90
        px pedestrians (p90), 0 on clean generated data.
    min_step_progress: for a walker crossing the view (step length measured), the share of the pelvis's
        progression that the steps explain (``step_progress``: step length x cadence over pelvis speed) below
        which the window is invalid. A body cannot travel much faster than its steps carry it, so a window
        below it has its legs or its cadence wrong (too small or blurred legs, a cadence locked onto half the
        stride rate), and every gait measure from it would be a guess. Measured: 5th percentile 0.71-1.0 for
        every pattern of the generator (shuffling included, 7 fps); real 7 fps pedestrians of vtest.avi 0.50-0.61
        (p5); the real windows under 0.5 read 45-64 steps/min for a pelvis moving at 0.4-0.55 body heights/s
        and were called abnormal. Higher rejects more small or far walkers; 0 turns the check off.
    min_event_snr: step-timing measures are also left out when the foot signals' stride power over their
        power above the gait's harmonics (``event_snr``) is below this. Measured on generated walkers with
        pose noise over the real range, at 15 and 30 fps: median step-time CV error 37 pp below 10, 2.5-7
        pp at 10-30, 2-4 pp at 30-100, 1-3 pp above. Higher keeps variability only where it is precise but
        measures it for fewer (smaller, blurrier) people.
    max_heading_deg: step length (and the speed from it) is measured only when the pelvis moves within this
        angle of the image horizontal, i.e. for walkers crossing the view. Towards or away from a tilted
        camera steps are foreshortened by its unknown tilt (sin 35 deg = 0.57 for a camera looking 35 deg
        down), and a single-image pose model's depth does not recover them. A tilted camera also squeezes
        the image heading: with 35 deg of tilt a walker 30 deg off the image plane moves 18 deg off the
        image horizontal and keeps 0.91 of his step length; 45 deg off the plane shows as 30 deg and keeps
        0.82. 25 deg keeps steps within ~10 %. Higher measures more walkers but reads foreshortened steps
        as short ones (real 7 fps walkers heading away from a high camera read as shuffling at 45 deg).
    min_halt_s: the shortest stop of the feet reported as a halt (``halt_s``, the freezing evidence).
        Freezing episodes last from about a second to tens of seconds; shorter stills are hesitations, a
        slow step, or interpolation over dropped frames at a low frame rate (real 7 fps walkers showed
        0.6-0.9 s). Lower catches brief freezes and more false ones.
    min_frames_per_step: step-timing measures (step and stride time CV, step asymmetry, autocorrelation
        regularity, events) are computed only when the camera takes at least this many frames per step.
        Measured on generated walkers with pose noise as on real footage: at 7 fps (3.8 frames per step)
        a true 2 % step-time CV read 6 % (median error 4.3 pp, more than separates healthy from unsteady
        gait), at 15 fps (8 per step) 1.5 pp; real 7 fps pedestrians read 18 %. Lower reports variability
        from slower cameras, at the price of calling healthy walkers unsteady.
    min_stride_snr: the stride's swing over the noise of one separation (``stride_snr``: swing amplitude /
        (sqrt(2) x landmark jitter), both in leg lengths). Below it a window is invalid: too poorly seen for
        step timing to mean anything. Higher rejects more small or blurred people.
    join_max_gap_s: the gait stage analyses joined tracks (``gaitwatch.tracking.track_joiner``): a track the
        online tracker started within this many seconds after another one's last pose continues that one's
        trajectory (same gait id, its window keeps filling) when their motion agrees both ways, by the fixed-lag
        output's test. 0 turns joining off (one gait id per online track). Longer mends longer occlusions but
        gives a wrong join more room; a join never delays a window (it is decided within
        ``join_velocity_window_s`` of the new track's first pose, long before it could have a window of its own).
        vtest.avi through the full pipeline at 7 fps: off 152 valid walking windows of 339, 27 gait ids with a
        window; 1.5 s 157 of 369, 25 ids; 3 s 160 of 376, 24 ids (11 joins); 5 and 10 s as 3 s.
    join_velocity_window_s: how much pose history before and after a break measures the velocities that are
        extrapolated across it (the fixed-lag ``velocity_window_s``): shorter follows a turn just before the
        break but is thrown by box jitter; longer is steadier but stale after a change of direction. It is also
        how long a new track waits for its decision. vtest.avi: 0.5 s 161 valid walking windows, 1 s 160, 2 s 159.
    join_min_overlap: IoU each extrapolated box must exceed with the box at the other end of the break (the
        fixed-lag ``min_overlap``). Higher rejects more wrong joins and more real ones of people who slowed
        down or turned while hidden.
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs. Annotated_types, not
    # pydantic: plain PEP 593 metadata that pydantic reads natively, so the library imports no validation
    # framework and stays as light in a notebook as in the daemon.
    window_s: Annotated[float, Interval(ge=5.0, le=60.0)] = 8.0
    hop_s: Annotated[float, Interval(gt=0.0, le=60.0)] = 1.0
    min_duration_s: float = 5.0
    resample_hz: float = 30.0
    max_gap_s: float = 0.12
    gap_intervals: float = 3.5
    min_visibility: float = 0.5
    min_coverage: float = 0.6
    min_quality: float = 0.35
    lowpass_hz: float = 6.0
    cadence_min_spm: float = 30.0
    cadence_max_spm: float = 180.0
    freq_step_hz: float = 0.005
    swing_min_ll: float = 0.12
    walk_speed_min_bh_s: float = 0.1
    periodicity_min: float = 0.3
    approach_rate_min_per_s: float = 0.03
    min_strides: float = 2.5
    max_halt_fraction: float = 0.5
    max_swap_fraction: float = 0.35
    min_stride_snr: float = 3.0
    min_frames_per_step: float = 6.0
    min_event_snr: float = 30.0
    min_step_progress: float = 0.5
    max_heading_deg: float = 25.0
    min_halt_s: float = 1.0
    join_max_gap_s: Annotated[float, Interval(ge=0.0, le=10.0)] = 3.0
    join_velocity_window_s: Annotated[float, Interval(gt=0.0, le=5.0)] = 1.0
    join_min_overlap: Annotated[float, Interval(ge=0.0, lt=1.0)] = 0.0

    def __post_init__(self) -> None:
        for name in ("window_s", "hop_s", "min_duration_s", "resample_hz", "max_gap_s", "lowpass_hz"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"GaitSettings.{name} must be > 0; got {getattr(self, name)}")
        if self.min_duration_s > self.window_s:
            raise ValueError("GaitSettings.min_duration_s must not exceed window_s")
        for name in (
            "min_strides",
            "min_stride_snr",
            "approach_rate_min_per_s",
            "min_frames_per_step",
            "min_event_snr",
            "min_step_progress",
        ):
            if not getattr(self, name) >= 0:  # written so that NaN fails too
                raise ValueError(f"GaitSettings.{name} must be >= 0; got {getattr(self, name)}")
        if not 0 < self.cadence_min_spm < self.cadence_max_spm:
            raise ValueError("GaitSettings.cadence_min_spm must be in (0, cadence_max_spm)")
        for name in (
            "min_visibility",
            "min_coverage",
            "min_quality",
            "periodicity_min",
            "max_halt_fraction",
            "max_swap_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"GaitSettings.{name} must be in [0, 1]; got {getattr(self, name)}")

    @property
    def buffer_s(self) -> float:
        """How many seconds a per-track TrajectoryBuffer must keep to serve one window plus one hop."""
        return self.window_s + self.hop_s


@dataclass(frozen=True, slots=True)
class AlertPolicySettings:
    """When sustained abnormal gait becomes an alert, and when it ends.

    window_count (N) / k_start (K) / k_end: an alert starts when at least K of the last N valid windows are
        abnormal and ends when at most k_end of them are (hysteresis: k_end < K stops an alert flapping on and
        off around the threshold). Larger N and K mean fewer false alarms but later alerts.
    cooldown_s: after an alert of a type ends, the same type does not start again for the same person for this
        long (one nurse call per episode rather than one per flicker).
    update_interval_s: an active alert re-publishes at most this often with fresh evidence (phase "update").
    min_quality: windows below this quality are not counted at all (neither normal nor abnormal).
    min_confidence: an abnormal window counts only if the classifier's p_abnormal is at least this.
    freezing_window_count / freezing_k_start / freezing_k_end: the same K-of-N for windows classified as
        freezing (shorter: an episode lasts seconds, so 2 of 3 windows).
    freezing_min_episodes / freezing_recurrence_s: a freezing alert also needs this many distinct stops
        (``halt_t`` more than 2 s apart) within this many seconds. One stop is what anyone does when pausing
        or turning on the spot; freezing recurs. 1 alerts on the first freeze, and on every pause.
    freezing_min_halt_s: a freezing window counts only if the feet stood still this long inside it (the
        ``halt_s`` feature). Shorter catches brief freezes but also hesitations; a healthy walker's longest
        "halt" at 7 fps with real pose noise was < 0.7 s in 90 % of windows (PETS09-S2L1).
    fall_no_recovery_s: a rapid descent to lying becomes a fall alert when the person is still lying this long
        after it; shorter alerts sooner but also for someone lying down quickly on purpose and getting up.
    slow_sit_to_stand_s: a sit-to-stand whose hip rise (see ``gaitwatch.gait.activity``) takes longer than
        this raises a one-off alert (START and END together). The time runs from the hips leaving the seated
        level to their reaching the standing one: generated ward-scene rises (pelvis moving on a smooth step)
        read within ~0.2 s of their scripted time at 15-30 fps; rises of the activity generator (joint angles on
        a smooth step: the hips reach standing height before the knees straighten) scripted at 2.5 s read
        ~2.1 s, at 6 s ~3.5-4 s, and those of 3-3.5 s and more alert.
    fall_priority: priority of fall alerts (a fall needs a nurse now; abnormal gait does not).
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    window_count: Annotated[int, Interval(ge=1, le=100)] = 5
    k_start: Annotated[int, Interval(ge=1, le=100)] = 4
    k_end: Annotated[int, Interval(ge=0, le=100)] = 1
    cooldown_s: Annotated[float, Interval(ge=0.0, le=86400.0)] = 120.0
    update_interval_s: Annotated[float, Interval(gt=0.0, le=86400.0)] = 30.0
    min_quality: float = 0.35
    min_confidence: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.5
    priority: str = "medium"
    freezing_window_count: int = 3
    freezing_k_start: int = 2
    freezing_k_end: int = 0
    freezing_min_halt_s: float = 1.0
    freezing_min_episodes: int = 2
    freezing_recurrence_s: float = 120.0
    fall_no_recovery_s: float = 5.0
    slow_sit_to_stand_s: float = 2.5
    fall_priority: str = "high"

    def __post_init__(self) -> None:
        if self.window_count < 1:
            raise ValueError("AlertPolicySettings.window_count must be >= 1")
        if not 0 <= self.k_end < self.k_start <= self.window_count:
            raise ValueError(
                "AlertPolicySettings needs 0 <= k_end < k_start <= window_count (hysteresis); got "
                f"k_end={self.k_end}, k_start={self.k_start}, window_count={self.window_count}"
            )
        if self.cooldown_s < 0 or self.update_interval_s <= 0:
            raise ValueError("AlertPolicySettings.cooldown_s must be >= 0 and update_interval_s > 0")
        if not 0 <= self.freezing_k_end < self.freezing_k_start <= self.freezing_window_count:
            raise ValueError("AlertPolicySettings: need 0 <= freezing_k_end < freezing_k_start <= window count")
        if self.freezing_min_episodes < 1 or self.freezing_recurrence_s <= 0:
            raise ValueError("AlertPolicySettings: freezing_min_episodes >= 1 and freezing_recurrence_s > 0")
        if self.fall_no_recovery_s < 0 or self.slow_sit_to_stand_s <= 0:
            raise ValueError("AlertPolicySettings: fall_no_recovery_s >= 0 and slow_sit_to_stand_s > 0 needed")
