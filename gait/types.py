"""Contracts of the gait stage: windows of one person's keypoints, the metrics computed on them, the
classifier's assessment and the alerts the policy raises. Times are seconds on the pipeline's clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class GaitWindow:
    """One track's keypoints over one analysis window, as sampled (irregular times allowed).

    ``t`` (M,) seconds, increasing; ``keypoints`` (M, 33, 3) image x, y pixels and visibility in [0, 1];
    ``world`` (M, 33, 3) metres (hip-centred).
    """

    track_id: int
    t: NDArray[np.float64]
    keypoints: NDArray[np.float32]
    world: NDArray[np.float32]

    def __post_init__(self) -> None:
        m = self.t.shape[0]
        if self.t.shape != (m,):
            raise ValueError(f"GaitWindow.t must be 1-D; got {self.t.shape}")
        if m > 1 and np.any(np.diff(self.t) <= 0):
            raise ValueError("GaitWindow.t must be strictly increasing")
        for name in ("keypoints", "world"):
            arr = getattr(self, name)
            if arr.ndim != 3 or arr.shape[0] != m or arr.shape[2] != 3:
                raise ValueError(f"GaitWindow.{name} must have shape ({m}, K, 3); got {arr.shape}")

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] - self.t[0]) if self.t.shape[0] > 1 else 0.0


class ActivityState(StrEnum):
    WALKING = "walking"
    STANDING = "standing"
    SITTING = "sitting"
    LYING = "lying"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class FloorReading:
    """Where one person is and how they walk in metres, from a camera's floor calibration and zones
    (``gaitwatch.gait.floor_stage``); None where the camera has no calibration or it could not be measured.

    ``floor_xy``: latest floor position (m, the calibration's frame); ``speed_mps``: walking speed over the
    window; ``step_length_m`` / ``stride_length_m``: mean step and stride (valid walking windows only);
    ``distance_m``: path walked in the window; ``zone`` / ``zone_kind``: the zone holding the person, if any."""

    floor_xy: tuple[float, float] | None = None
    speed_mps: float | None = None
    step_length_m: float | None = None
    stride_length_m: float | None = None
    distance_m: float | None = None
    zone: str | None = None
    zone_kind: str | None = None


@dataclass(frozen=True, slots=True)
class GaitMetrics:
    """What one window says about one person's gait.

    ``valid`` is False when the window is too short, too sparse or too poorly seen to trust; numbers that
    could not be computed are None. ``features`` holds the named numeric features the classifier reads (all
    finite).
    """

    track_id: int
    t_start: float
    t_end: float
    valid: bool
    quality: float
    state: ActivityState
    cadence_spm: float | None
    features: Mapping[str, float] = field(default_factory=dict)
    # In metres and zones: set by the camera's floor stage when it has a calibration or zones, else None.
    floor: FloorReading | None = None


class GaitLabel(StrEnum):
    NORMAL = "normal"
    ABNORMAL = "abnormal"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Assessment:
    """The classifier's verdict on one window: ``p_abnormal`` in [0, 1]; ``pattern`` names the kind of
    abnormality when there is one (e.g. "slow", "unsteady"), else ""."""

    track_id: int
    label: GaitLabel
    p_abnormal: float
    pattern: str = ""


@dataclass(frozen=True, slots=True)
class GaitResult:
    """One analysed window: what it measured and the classifier's verdict on it (one per track and hop)."""

    metrics: GaitMetrics
    assessment: Assessment


class AlertType(StrEnum):
    """The clinical alert types, named once here (when and why each is raised: ``gaitwatch.gait.alerts``, and
    ``gaitwatch.gait.bed_exit`` for zone alerts); payloads carry the value. Adding one touches three files: a
    member here, the rule that raises it, and its value and meaning in config/alert.schema.json (a test checks
    the schema lists exactly these)."""

    ABNORMAL_GAIT = "abnormal_gait"  # sustained abnormal gait: K of the person's last N counted windows
    FREEZING = "freezing"  # recurrent stops of the feet inside walking (freezing of gait)
    FALL = "fall"  # a rapid descent to lying, still lying fall_no_recovery_s later
    SLOW_SIT_TO_STAND = "slow_sit_to_stand"  # one-off: a sit-to-stand slower than slow_sit_to_stand_s
    # Zone alerts (``gaitwatch.gait.bed_exit``):
    BED_EXIT = "bed_exit"  # a patient who lay in a bed zone sits up, reaches the edge, stands, leaves
    CHAIR_RISE = "chair_rise"  # one-off measurement: someone seated in a chair zone stood up


class AlertPhase(StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True, slots=True)
class Alert:
    """A clinical alert about one tracked person, as raised by the alert policy.

    ``t_start`` is when the condition was first observed, ``t_observed`` the end of the window that produced
    this phase. ``evidence`` carries the metrics that justified it, so a nurse-call integrator can show them.
    """

    type: AlertType
    phase: AlertPhase
    track_id: int
    t_start: float
    t_observed: float
    confidence: float
    priority: str
    quality: float
    evidence: Mapping[str, float] = field(default_factory=dict)
    # The kind of abnormality behind an abnormal-gait alert ("slow", "shuffling", ...), else "".
    pattern: str = ""
    # The room zone the alert is about (a bed_exit's bed), else "" (the camera's own zone is used).
    zone: str = ""
