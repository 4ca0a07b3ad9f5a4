"""The names of a gait window's features (``GaitMetrics.features``), declared once.

Features travel as a plain ``{name: value}`` mapping (into the classifier, the alert policy, the MQTT/FHIR
payloads and the model files), so a misspelled name would not fail: it would just read as "missing". Every
producer and consumer names them through ``Feature``; ``tests/test_gait_feature_names.py`` checks that
everything ``analyze_window`` produces is declared here. ``Feature`` is a ``StrEnum``, so a member is its own
string: payloads and model files are unchanged. Units are in the names (``_bh``: body heights, ``_ll``: leg
lengths, ``_s``, ``_hz``, ``_spm``: steps per minute, ``_deg``).
"""

from __future__ import annotations

from enum import StrEnum


class Feature(StrEnum):
    # Window quality (gaitwatch.gait.prepare)
    COVERAGE = "coverage"
    VISIBILITY = "visibility"
    DURATION_S = "duration_s"
    SOURCE_HZ = "source_hz"
    SWAP_FRACTION = "swap_fraction"
    POSE_JITTER_BH = "pose_jitter_bh"
    # Posture and transitions (gaitwatch.gait.activity)
    LYING_END = "lying_end"
    SITTING_END = "sitting_end"
    DESCENT_T = "descent_t"
    DESCENT_DROP_BH = "descent_drop_bh"
    SIT_TO_STAND_S = "sit_to_stand_s"
    SIT_TO_STAND_T = "sit_to_stand_t"
    STAND_TO_SIT_S = "stand_to_sit_s"
    STAND_TO_SIT_T = "stand_to_sit_t"
    # Rhythm and spectrum (gaitwatch.gait.features)
    CADENCE_SPM = "cadence_spm"
    STRIDE_FREQ_HZ = "stride_freq_hz"
    FRAMES_PER_STEP = "frames_per_step"
    SWING_AMP_LL = "swing_amp_ll"
    PERIODICITY = "periodicity"
    RHYTHM = "rhythm"
    SPECTRAL_ENTROPY = "spectral_entropy"
    STRIDE_SNR = "stride_snr"
    HEADING_DEG = "heading_deg"
    STEP_LENGTH_LL = "step_length_ll"
    SPEED_BH_S = "speed_bh_s"
    SPEED_FROM_STEPS_BH_S = "speed_from_steps_bh_s"
    STEP_PROGRESS = "step_progress"
    APPROACH_RATE_PER_S = "approach_rate_per_s"
    HALT_S = "halt_s"
    HALT_T = "halt_t"
    STRIDE_REGULARITY = "stride_regularity"
    STEP_REGULARITY = "step_regularity"
    STEP_SYMMETRY = "step_symmetry"
    HARMONIC_RATIO = "harmonic_ratio"
    BOUNCE_BH = "bounce_bh"
    TRUNK_LEAN_DEG = "trunk_lean_deg"
    ARM_SWING_LL = "arm_swing_ll"
    POWER_POSTURAL = "power_postural"
    POWER_LOCOMOTOR = "power_locomotor"
    POWER_FREEZE = "power_freeze"
    FREEZE_BAND_HZ = "freeze_band_hz"
    FREEZE_INDEX = "freeze_index"
    # Step events (gaitwatch.gait.events)
    EVENT_SNR = "event_snr"
    EVENT_NOISE_CV = "event_noise_cv"
    STEPS = "steps"
    STEPS_REJECTED = "steps_rejected"
    STEP_TIME_MEAN_S = "step_time_mean_s"
    CADENCE_EVENTS_SPM = "cadence_events_spm"
    STEP_TIME_CV = "step_time_cv"
    STEP_TIME_CV_WITHIN = "step_time_cv_within"
    STEP_TIME_CV_CORRECTED = "step_time_cv_corrected"
    STRIDE_TIME_CV = "stride_time_cv"
    STEP_ASYMMETRY = "step_asymmetry"
    # Derived for the rule classifier (gaitwatch.gait.classifier.derived_features)
    STEP_ASYMMETRY_ABS = "step_asymmetry_abs"
