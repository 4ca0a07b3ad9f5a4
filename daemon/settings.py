"""The daemon's configuration: TOML read with ``tomllib``, validated by pydantic v2 models.

Every model forbids unknown keys, so a misspelled key is an error that names its path instead of a setting
that silently keeps its default. Every duration is in seconds and every size in physical units, so a config
survives a change of camera frame rate. ``load_settings`` turns every problem into a ``ConfigError`` whose
message names the file, the key path and the bad value; the CLI maps it to exit code 78 (EX_CONFIG).

The daemon's own keys (service, cameras, MQTT, metrics, outbox, and the few detector and pose keys no library
class has) are declared here. The knobs of the library's stages are declared once, in their library settings
dataclasses; the tables here only name the fields they expose (``gaitwatch.daemon.library_settings``).
"""

from __future__ import annotations

import difflib
import os
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from gaitwatch.daemon.library_settings import (
    BorrowingSection,
    ConfigSection,
    LibrarySettingsError,
    LibraryTable,
    borrow,
)
from gaitwatch.daemon.redact import redact_value
from gaitwatch.gait.bed_exit import ExitSettings
from gaitwatch.gait.floor import CalibrationError, FloorCalibration, calibrate_from_camera, calibrate_from_points
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.gait.zones import Zone, ZoneKind, ZoneMap
from gaitwatch.pose.blazepose import BlazePoseSettings, ModelVariant
from gaitwatch.pose.landmark_refinement import LandmarkRefinementSettings
from gaitwatch.pose.recovery import RecoverySettings
from gaitwatch.pose.schedule import ScheduleSettings
from gaitwatch.tracking.blazepose_detector import BlazePoseDetectorSettings
from gaitwatch.tracking.hog import HogSettings
from gaitwatch.tracking.nanodet import ModelVariant as NanodetModel
from gaitwatch.tracking.nanodet import NanodetSettings
from gaitwatch.tracking.onnx_detector import OnnxDetectorSettings
from gaitwatch.tracking.tracker import TrackerSettings

EX_CONFIG = 78
MAX_CONFIG_BYTES = 1024 * 1024

# Every number has a ceiling, so that whatever check-config accepts also runs: OpenCV takes timeouts as int
# milliseconds (2.1e6 s overflows), asyncio.timeout(inf) never fires, and a backoff of 1e10 s is a camera given
# up for good. The ceilings are far above any sensible value and documented with each key.
PositiveSeconds = Annotated[float, Field(gt=0.0, le=3600.0, description="seconds, > 0 and <= 3600")]
NetworkTimeout = Annotated[float, Field(gt=0.0, le=600.0, description="seconds, > 0 and <= 600")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class ServiceSettings(ConfigSection):
    """Who this daemon is and where it keeps its state."""

    site: str = Field(
        default="site", pattern=r"^[A-Za-z0-9_.-]+$", max_length=64, description="site id, used in MQTT topics"
    )
    host: str = Field(
        default_factory=lambda: _topic_safe(socket.gethostname())[:64],
        pattern=r"^[A-Za-z0-9_.-]+$",
        max_length=64,
        description="host id, used in MQTT topics and alert ids; defaults to the machine's hostname",
    )
    ward: str = Field(default="", max_length=128)
    state_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("STATE_DIRECTORY", "/var/lib/gaitwatch").split(":")[0]),
        description="where the alert outbox lives; systemd's StateDirectory= sets $STATE_DIRECTORY",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    inference_threads: int = Field(
        default=2,
        ge=1,
        le=16,
        description="cameras processed at once (track, pose, gait), each thread with its own pose interpreter; "
        "2 lets two cameras use both cores of a 2-core PC, 1 saves one interpreter's memory",
    )


PixelSize = Annotated[int, Field(ge=16, le=8192)]


class FloorCalibrationSettings(ConfigSection):
    """A camera's floor calibration (``gaitwatch.gait.floor``), made with ``gaitwatch calibrate``: either
    ``points``, >= 4 rows ``[x_px, y_px, X_m, Y_m]`` of floor marks (6-9 spread over the walking area: 4 fit
    exactly and cannot reveal a mistyped one), or the mounting: ``height_m``, ``tilt_deg`` (down from the
    horizontal) and ``fov_deg`` (across ``fov_axis``). ``image_size_px``: the size of the frames the pixels
    refer to (the daemon's frames, after ``max_frame_side_px``)."""

    image_size_px: tuple[PixelSize, PixelSize]
    points: list[tuple[float, float, float, float]] | None = Field(default=None, min_length=4, max_length=100)
    height_m: float | None = Field(default=None, gt=0.0, le=20.0)
    tilt_deg: float | None = Field(default=None, gt=-90.0, le=90.0)
    fov_deg: float | None = Field(default=None, gt=0.0, lt=180.0)
    fov_axis: Literal["horizontal", "vertical"] = "horizontal"
    max_error_m: float = Field(
        default=0.10,
        gt=0.0,
        le=1.0,
        description="a point further than this from the fit of all points is reported as a mistake; higher "
        "accepts sloppier marks (and their error in every speed), lower rejects tape-measure noise",
    )

    @model_validator(mode="after")
    def _valid(self) -> FloorCalibrationSettings:
        self.build()  # CalibrationError is a ValueError: pydantic reports it under this table's key path
        return self

    def build(self) -> FloorCalibration:
        """The calibration itself; raises CalibrationError naming what is missing, degenerate or inconsistent."""
        mounting = {"height_m": self.height_m, "tilt_deg": self.tilt_deg, "fov_deg": self.fov_deg}
        given = [k for k, v in mounting.items() if v is not None]
        if self.points is None and not given:
            raise CalibrationError("give either points = [[x_px, y_px, X_m, Y_m], ...] or height_m, tilt_deg, fov_deg")
        if self.points is not None and given:
            raise CalibrationError(f"give either points or the mounting ({', '.join(given)}), not both")
        w, h = self.image_size_px
        if self.points is not None:
            rows = [tuple(map(float, r)) for r in self.points]
            for n, (x, y, _, _) in enumerate(rows, start=1):
                if not (0.0 <= x <= w and 0.0 <= y <= h):
                    raise CalibrationError(f"point {n} ({x:g}, {y:g}) lies outside the {w}x{h} image")
            return calibrate_from_points([r[:2] for r in rows], [r[2:] for r in rows], max_error_m=self.max_error_m)
        if len(given) < len(mounting):
            missing = ", ".join(k for k in mounting if k not in given)
            raise CalibrationError(f"a mounting calibration needs height_m, tilt_deg and fov_deg; missing {missing}")
        assert self.height_m is not None and self.tilt_deg is not None and self.fov_deg is not None
        return calibrate_from_camera(
            height_m=self.height_m,
            tilt_deg=self.tilt_deg,
            fov_deg=self.fov_deg,
            image_size=(w, h),
            fov_axis=self.fov_axis,
        )


class ZoneSettings(ConfigSection):
    """A named area of the room (``gaitwatch.gait.zones``): ``polygon`` corners in order, in floor metres
    (``units = "m"``, the default on a calibrated camera) or image pixels (``"px"``, the default otherwise).
    Beds and chairs are placed at their ``surface_height_m`` (default 0.5 / 0.45 m). ``exit_alerts`` turns
    bed_exit / chair_rise on for this zone (on a ward: the beds of fall-risk patients); ``sensitivity`` says
    when a bed exit is called: "high" when the patient sits up, "medium" on the bed's edge, "low" when standing
    (earlier: more warning, more false alarms from patients who sit up and lie back)."""

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["bed", "chair", "door", "bathroom", "walkway"]
    polygon: list[tuple[float, float]] = Field(min_length=3, max_length=64)
    units: Literal["m", "px"] | None = None
    surface_height_m: float | None = Field(default=None, ge=0.0, le=2.0)
    exit_alerts: bool = True
    sensitivity: Literal["low", "medium", "high"] = "medium"

    def build(self, calibrated: bool) -> Zone:
        return Zone(
            self.name,
            ZoneKind(self.kind),
            np.asarray(self.polygon, dtype=np.float64),
            units=self.units or ("m" if calibrated else "px"),
            surface_height_m=self.surface_height_m,
            exit_alerts=self.exit_alerts,
            sensitivity=self.sensitivity,
        )


class CameraSettings(ConfigSection):
    """One camera: a video file, an RTSP/HTTP URL, or a V4L2 device (``/dev/video0`` or a bare index)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    source: str = Field(min_length=1, max_length=4096)
    zone: str = Field(default="", max_length=128)
    fps: float | None = Field(
        default=None,
        gt=0.0,
        le=240.0,
        description="override the frame rate the container or driver reports (real cameras misreport it)",
    )
    playback: Literal["live", "replay"] = Field(
        default="live",
        description="files only: 'live' plays at the frame rate like a camera, 'replay' as fast as possible "
        "without dropping frames",
    )
    loop: bool = Field(default=False, description="files only: start again at the end instead of finishing")
    open_timeout_s: NetworkTimeout = 10.0
    read_timeout_s: NetworkTimeout = 5.0
    reconnect_initial_s: NetworkTimeout = 1.0
    reconnect_max_s: PositiveSeconds = Field(30.0, description="longest wait between reconnect attempts (<= 1 h)")
    stale_after_s: PositiveSeconds = Field(
        default=20.0,
        description="a camera that delivered no frame for this long is reported offline (status topic and a "
        "camera_offline technical alert) until frames flow again; shorter reports outages sooner but turns a "
        "slow RTSP handshake or a brief network hiccup into an alert",
    )

    max_frame_side_px: int = Field(
        default=1920,
        ge=320,
        le=7680,
        description="frames whose longer side exceeds this are scaled down in the reader thread, before "
        "detection and pose: a 4K or 8K stream otherwise costs seconds per frame and gigabytes of memory for no "
        "better gait figures (pose runs on 256-px crops); lower saves CPU, but far people get fewer pixels",
    )
    min_processed_fps: float = Field(
        default=4.0,
        gt=0.0,
        le=60.0,
        description="a camera that delivers frames while the pipeline processes fewer than this many per "
        "second (or 80% of the camera's own rate, if that is lower) for degraded_after_s is reported "
        "'degraded' with a camera_degraded technical alert: cadence needs >= ~4 samples per second",
    )
    degraded_after_s: float = Field(
        default=30.0,
        ge=5.0,
        le=3600.0,
        description="how long processing must stay below min_processed_fps before the camera is degraded",
    )

    calibration: FloorCalibrationSettings | None = Field(
        default=None, description="floor calibration: gait speed and step length in metres, floor positions"
    )
    zones: list[ZoneSettings] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _backoff_order(self) -> CameraSettings:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self

    @model_validator(mode="after")
    def _zones_placeable(self) -> CameraSettings:
        # Zones are placed in the image now, so a metre zone on an uncalibrated camera, a zone beyond the
        # horizon or two zones of one name fail check-config rather than the running daemon.
        self.zone_map()
        return self

    def floor_calibration(self) -> FloorCalibration | None:
        return self.calibration.build() if self.calibration is not None else None

    def zone_map(self) -> ZoneMap | None:
        """The camera's zones placed in its image (None without zones); raises ZoneError naming the zone."""
        if not self.zones:
            return None
        cal = self.floor_calibration()
        size = self.calibration.image_size_px if self.calibration is not None else None
        return ZoneMap.build(tuple(z.build(cal is not None) for z in self.zones), cal, size)


# The tables below hold knobs of the library's stages. Each knob is declared once, in its library settings
# dataclass (type, default, configurable range as Annotated metadata, meaning and trade-off in the docstring);
# here a table only names the fields it exposes (gaitwatch.daemon.library_settings). A table that is one library
# class is a LibraryTable: its value is the library object itself. A table that feeds several (pose, detector)
# borrows each key.
HOG_TABLE: Final = LibraryTable(
    HogSettings, "upscale", "hit_threshold", "win_stride", "scale", "min_score", "nms_iou", "grayscale"
)
TRACKER_TABLE: Final = LibraryTable(
    TrackerSettings,
    "min_hits",
    "max_age_s",
    "iou_threshold",
    "min_score",
    "high_score",
    "new_track_score",
    "score_noise_floor",
    "recovery_iou_threshold",
    "mahalanobis_weight",
    "lost_box_growth_per_s",
    # The library default (0.9) suits CNN detectors, whose scores cluster near 1; HOG scores of real people
    # sit lower: on vtest.avi 0.9 kept 4.2 of ~5.8 people tracked on average, 0.7-0.75 kept 4.8.
    new_track_score=0.75,
)
GAIT_TABLE: Final = LibraryTable(GaitSettings, "window_s", "hop_s", "join_max_gap_s")
ALERTS_TABLE: Final = LibraryTable(
    AlertPolicySettings, "window_count", "k_start", "k_end", "cooldown_s", "update_interval_s", "min_confidence"
)
# Bed-exit and chair-rise timing, for every camera with zones (meaning and trade-offs: gait.bed_exit.ExitSettings).
EXITS_TABLE: Final = LibraryTable(
    ExitSettings, "in_bed_s", "confirm_s", "leave_s", "back_in_bed_s", "seated_s", "sts_series_s", "rise_settle_s"
)


class BlazePoseDetectorSettingsModel(BorrowingSection):
    """MediaPipe's BlazePose person detector, run on the whole image and on overlapping tiles (meaning and
    trade-off of each knob: ``gaitwatch.tracking.blazepose_detector.BlazePoseDetectorSettings``)."""

    min_score: float = borrow(BlazePoseDetectorSettings, "min_score")
    nms_iou: float = borrow(BlazePoseDetectorSettings, "nms_iou")
    tile_fraction: float = borrow(BlazePoseDetectorSettings, "tile_fraction")
    near_tile_fraction: float = borrow(BlazePoseDetectorSettings, "near_tile_fraction")
    tile_overlap: float = borrow(BlazePoseDetectorSettings, "tile_overlap")
    min_tile_px: int = borrow(BlazePoseDetectorSettings, "min_tile_px")
    model_path: Path | None = borrow(BlazePoseDetectorSettings, "model_path")
    # Each find is checked and boxed by the BlazePose landmark model (pose.model) on the detector's body-aligned
    # crop (``gaitwatch.pose.landmark_refinement``): fewer false people, tight boxes for seated and lying people,
    # one landmark pass per find.
    refine_with_landmarks: bool = True
    refine_min_presence: float = borrow(LandmarkRefinementSettings, "min_presence")


class NanodetSettingsModel(BorrowingSection):
    """The shipped NanoDet person detector (meaning and trade-off of each knob:
    ``gaitwatch.tracking.nanodet.NanodetSettings``)."""

    min_score: float = borrow(NanodetSettings, "min_score")
    nms_iou: float = borrow(NanodetSettings, "nms_iou")
    model: NanodetModel = borrow(NanodetSettings, "model")
    model_path: Path | None = borrow(NanodetSettings, "model_path")


class DetectorSettings(BorrowingSection):
    """Person detection, run on a frame once ``interval_s`` has passed since the last detection (with
    ``interval_s = N / fps`` that is every N frames). Between detections each track's box comes from its last
    pose, which is tighter than a detector box; a longer interval saves CPU but finds newcomers later."""

    # hog: OpenCV HOG (upright walkers). blazepose: MediaPipe's BlazePose person detector on the whole image and
    # tiles, each find checked by the pose landmark model (also seated, bent and lying people; ~5x HOG's CPU time
    # on a whole 768x576 frame). hog+blazepose: HOG on every scan and BlazePose, in coarse tiles for near people,
    # beside it. nanodet+blazepose (default): NanoDet (COCO-trained CNN, shipped, int8) on the whole frame at every
    # detection and BlazePose on whole-frame scans; a person both find is one box (``FrameWideUnion``): it sees
    # seated and bent people HOG misses (shared photos: 0.77 of them against 0.46) at HOG's CPU cost. nanodet:
    # NanoDet alone (misses most lying people). Figures: README.
    kind: Literal["hog", "onnx", "blazepose", "hog+blazepose", "nanodet", "nanodet+blazepose"] = "nanodet+blazepose"
    # hog+blazepose: BlazePose on whole-frame scans (every full_frame_interval_s) and, in one pass, on the search
    # regions at least 0.4 of the frame tall that HOG finds nobody in (a near seated or lying patient keeps their
    # track; walkers HOG finds and far people cost nothing more), or on "all" scans, every search region included.
    blazepose_scans: Literal["whole_frame", "all"] = "whole_frame"
    interval_s: float = Field(0.5, ge=0.0, le=10.0)
    # Between full-frame scans only the regions that changed since the last detection and those around tracked
    # people are searched (``gaitwatch.tracking.search_regions``); 0 = always the whole frame. Unset: 2 s for HOG
    # (its cost grows with the area scanned) and 0 for ONNX (a fixed-size network input costs a whole pass per
    # region, so regions would cost more than the frame).
    full_frame_interval_s: float | None = Field(None, ge=0.0, le=600.0)
    # Motion-verified recovery (``gaitwatch.pose.recovery``): at each detection, up to this many moving regions
    # that no detection or posed track explains get one pose crop; a crop the pose model finds a person in
    # becomes a detection (box from the landmarks). 0 = off.
    recovery_crops_per_frame: int = borrow(RecoverySettings, "crops_per_frame")
    recovery_min_height: float = borrow(
        RecoverySettings, "min_height", description="smallest moving region cropped, share of frame height"
    )
    hog: Annotated[HogSettings, HOG_TABLE] = Field(default_factory=HOG_TABLE.default)
    blazepose: BlazePoseDetectorSettingsModel = BlazePoseDetectorSettingsModel()
    nanodet: NanodetSettingsModel = NanodetSettingsModel()
    onnx_model: Path | None = borrow(
        OnnxDetectorSettings, "model_path", default=None, description="person-detector .onnx file (kind = 'onnx')"
    )
    onnx_min_score: float = borrow(OnnxDetectorSettings, "min_score")
    onnx_person_class: int = borrow(OnnxDetectorSettings, "person_class")
    onnx_nms_iou: float = borrow(OnnxDetectorSettings, "nms_iou")

    @model_validator(mode="after")
    def _onnx_needs_model(self) -> DetectorSettings:
        if self.kind == "onnx" and self.onnx_model is None:
            raise ValueError("kind = 'onnx' needs onnx_model = path to a person-detector .onnx file")
        if self.kind == "nanodet+blazepose" and self.blazepose_scans != "whole_frame":
            raise ValueError(
                "blazepose_scans = 'all' applies to kind = 'hog+blazepose'; with 'nanodet+blazepose' BlazePose runs on "
                "whole-frame scans (full_frame_interval_s) and NanoDet on every detection"
            )
        return self


class PoseSettingsModel(BorrowingSection):
    """BlazePose landmarks on each confirmed track's crop (``gaitwatch.pose.blazepose.BlazePoseSettings``) and
    how often each track is posed (``gaitwatch.pose.schedule.ScheduleSettings``)."""

    model: ModelVariant = borrow(BlazePoseSettings, "model")
    model_path: Path | None = borrow(
        BlazePoseSettings, "model_path", description="use this .tflite instead of the shipped model"
    )
    num_threads: int = borrow(BlazePoseSettings, "num_threads")
    roi_scale: float = borrow(BlazePoseSettings, "roi_scale")
    second_pass: Literal["auto", "on", "off"] = borrow(BlazePoseSettings, "second_pass")
    backend: Literal["blazepose", "student"] = Field(
        "blazepose",
        description="blazepose: the shipped BlazePose model (`model` picks full/lite); student: a pose student "
        "distilled for this site with `gaitwatch distill` (runs with onnxruntime)",
    )
    student_dir: Path | None = Field(None, description="directory `gaitwatch distill --out` wrote")
    min_presence: Fraction = Field(0.5, description="crops the model scores below this are not people")
    max_rate_hz: float = borrow(ScheduleSettings, "max_rate_hz")
    stationary_rate_hz: float = borrow(ScheduleSettings, "stationary_rate_hz")

    @model_validator(mode="after")
    def _student_needs_dir(self) -> PoseSettingsModel:
        if self.backend == "student" and self.student_dir is None:
            raise ValueError("backend = 'student' needs student_dir = the directory `gaitwatch distill --out` wrote")
        return self


class TlsSettings(ConfigSection):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class MqttSettings(ConfigSection):
    """The broker that nurse-call integrators subscribe to."""

    enabled: bool = True
    host: str = Field(
        default="127.0.0.1", min_length=1, max_length=253, pattern=r"^[^\s/@]+$", description="broker host name or IP"
    )
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    topic_root: str = Field(default="gaitwatch/v1", pattern=r"^[A-Za-z0-9_./-]+$", max_length=256)
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    username: str | None = Field(default=None, min_length=1, max_length=256)
    password_file: Path | None = Field(
        default=None,
        description="file holding the password; a bare name is looked up in $CREDENTIALS_DIRECTORY "
        "(systemd LoadCredential=)",
    )
    tls: TlsSettings | None = None
    timeout_s: NetworkTimeout = Field(default=10.0, description="limit on every network wait (<= 600 s)")
    reconnect_initial_s: NetworkTimeout = 1.0
    reconnect_max_s: PositiveSeconds = Field(60.0, description="longest wait between reconnect attempts (<= 1 h)")
    ack_topic: str | None = Field(
        default=None,
        pattern=r"^[^#+\x00]+$",
        max_length=256,
        description="integrator acknowledgement topic (no wildcards); when set, an alert counts as delivered "
        "only once an integrator acknowledged its alert_id there, and unacknowledged alerts are re-sent",
    )
    ack_timeout_s: Annotated[float, Field(gt=0.0, le=86400.0)] = Field(
        default=60.0,
        description="ack mode: re-send an alert (same alert_id) when no acknowledgement came within this "
        "long; shorter recovers a lost alert sooner, at the cost of more duplicates from slow integrators",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttSettings:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self


class MetricsSettings(ConfigSection):
    """Prometheus endpoint. Bound to loopback unless you say otherwise: it must not face the ward network
    by accident."""

    enabled: bool = True
    address: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    port: int = Field(default=9810, ge=0, le=65535)


class OutboxSettings(ConfigSection):
    """The SQLite alert outbox in ``service.state_dir``."""

    max_rows: int = Field(
        default=100_000, ge=100, le=10_000_000, description="alerts kept undelivered before loud overflow (<= 1e7)"
    )
    memory_rows: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description="alerts held in memory (~1 kB each) while the outbox cannot commit them (disk full, "
        "database locked): they are published directly and committed once the disk recovers",
    )
    keep_published_s: float = Field(
        default=7 * 86400.0,
        ge=0.0,
        le=366 * 86400.0,
        description="delivered alerts are deleted after this long (kept for audits; <= 366 days)",
    )
    cleanup_interval_s: Annotated[float, Field(gt=0.0, le=86400.0)] = Field(
        default=3600.0, description="how often delivered alerts older than keep_published_s are deleted"
    )


class FhirSettings(ConfigSection):
    """A FHIR R4 server that receives every alert as a ``DetectedIssue`` (through the outbox, like MQTT: retried
    until it takes it) and walking windows as ``Observation`` resources (best effort); see
    ``gaitwatch.daemon.fhir_sink``. Off by default."""

    enabled: bool = False
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s?#]+$",
        max_length=2048,
        description="the server's FHIR base URL (resources are POSTed to <base_url>/DetectedIssue and "
        "<base_url>/Observation); required when enabled",
    )
    timeout_s: NetworkTimeout = Field(default=10.0, description="limit on each request (<= 600 s)")
    token_file: Path | None = Field(
        default=None,
        description="file holding a bearer token for the Authorization header; a bare name is looked up in "
        "$CREDENTIALS_DIRECTORY (systemd LoadCredential=)",
    )
    ca_file: Path | None = Field(default=None, description="CA that signed an https server (default: the system's)")
    namespace: str = Field(
        default="urn:gaitwatch",
        pattern=r"^[^\s|,$]+$",
        max_length=256,
        description="prefix of the identifier and code systems (urn:gaitwatch:alert-id, ...:track, ...)",
    )
    gait_observations: bool = Field(default=True, description="also send walking windows as Observations")
    retry_initial_s: NetworkTimeout = Field(default=1.0, description="first wait before retrying a failed alert")
    retry_max_s: PositiveSeconds = Field(
        default=60.0,
        description="longest wait between retries (<= 1 h); lower delivers sooner after an outage, at the cost "
        "of more requests to a server that is struggling",
    )

    @model_validator(mode="after")
    def _base_url_when_enabled(self) -> FhirSettings:
        if self.enabled and self.base_url is None:
            raise ValueError("base_url is required when enabled = true")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be >= retry_initial_s")
        return self


# Each detector scores on its own scale, and the tracker's confidence thresholds are written against it: where a
# kind's scale differs from HOG's (TRACKER_TABLE's defaults), these are its defaults for the keys [tracker] leaves
# out. NanoDet's scores are quality scores (predicted IoU), lower than HOG's for the same people; on vtest.avi
# through the whole pipeline high_score / new_track_score 0.45 / 0.5 and 0.5 / 0.6 gave the same recall and
# precision (0.869 / 0.889 and 0.868 / 0.890), HOG's 0.6 / 0.75 lost a tenth of the people (recall 0.792).
_NANODET_TRACKER_SCORES: Final[dict[str, float]] = {"high_score": 0.45, "new_track_score": 0.5}
TRACKER_SCORES_BY_DETECTOR: Final[dict[str, dict[str, float]]] = {
    "nanodet": _NANODET_TRACKER_SCORES,
    "nanodet+blazepose": _NANODET_TRACKER_SCORES,
}


class Settings(ConfigSection):
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    # One reader thread and pipeline each: a 2-core PC runs 2-4 in real time; 32 is a typo guard, not a target.
    cameras: list[CameraSettings] = Field(min_length=1, max_length=32)
    detector: DetectorSettings = DetectorSettings()
    tracker: Annotated[TrackerSettings, TRACKER_TABLE] = Field(default_factory=TRACKER_TABLE.default)
    pose: PoseSettingsModel = PoseSettingsModel()
    gait: Annotated[GaitSettings, GAIT_TABLE] = Field(default_factory=GAIT_TABLE.default)
    alerts: Annotated[AlertPolicySettings, ALERTS_TABLE] = Field(default_factory=ALERTS_TABLE.default)
    exits: Annotated[ExitSettings, EXITS_TABLE] = Field(default_factory=EXITS_TABLE.default)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    fhir: FhirSettings = Field(default_factory=FhirSettings)

    @model_validator(mode="before")
    @classmethod
    def _tracker_scores_for_detector(cls, data: Any) -> Any:
        """The detector kind's tracker score defaults (``TRACKER_SCORES_BY_DETECTOR``) for keys [tracker] leaves out."""
        if not isinstance(data, dict):
            return data
        detector = data.get("detector")
        default_kind = DetectorSettings.model_fields["kind"].default
        kind = (
            detector.get("kind", default_kind)
            if isinstance(detector, dict)
            else getattr(detector, "kind", default_kind)
        )
        defaults = TRACKER_SCORES_BY_DETECTOR.get(kind) if isinstance(kind, str) else None
        tracker = data.get("tracker", {})
        if defaults is None or not isinstance(tracker, dict):
            return data  # an already built TrackerSettings (a copy, a test) keeps its own values
        return {**data, "tracker": {**defaults, **tracker}}

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraSettings]) -> list[CameraSettings]:
        ids = [c.id for c in cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(dupes)}")
        return cameras


class ConfigError(Exception):
    """A configuration problem; its message is meant for the admin who wrote the file."""


def _topic_safe(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in name)
    return safe or "host"


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed beside the offending one, to suggest a spelling."""
    model: Any = Settings
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        field = model.model_fields.get(item) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        # A library table validates against the model generated from its dataclass.
        tables = [m.model for m in field.metadata if isinstance(m, LibraryTable)]
        candidates = [*tables, ann, *(inner or ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def describe_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        loc = tuple(item["loc"])
        path = _key_path(loc)
        # Redacted: this message goes to the journal (check-config runs as ExecStartPre=), and a misplaced
        # `password = "..."` or a camera URL with credentials must not be echoed there.
        value = redact_value(item.get("input"), str(loc[-1]) if loc else None)
        refusal = item.get("ctx", {}).get("error")
        if isinstance(refusal, LibrarySettingsError):
            # Its message names the keys and values (the input here is the whole table).
            lines.append(f"  {path}.{refusal.key}: {refusal}" if refusal.key else f"  {path}: {refusal}")
        elif item["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _known_keys(loc), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            lines.append(f"  {path}: unknown key{suggestion}; value {value!r}")
        elif item["type"] == "missing":
            lines.append(f"  {path}: required key is missing")
        else:
            lines.append(f"  {path}: {item['msg']}; got {value!r}")
    return "\n".join(lines)


def parse_settings(data: dict[str, Any], source: str = "<config>") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(source, exc)) from None


def load_settings(path: Path) -> Settings:
    """Read and validate a TOML config file; every failure is a ``ConfigError`` naming the problem."""
    try:
        with path.open("rb") as handle:
            # Bounded read: a config is a few kB; a huge file (a log or a device named by mistake) must not take
            # the PC's memory before it is found to be wrong.
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass --config with the path of your TOML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; is it the right file? "
            "A gaitwatch config is a few kB of TOML"
        )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse_settings(data, str(path))


def read_secret(path: Path) -> str:
    """Read a secret (e.g. the MQTT password) from a file; a bare file name is looked up in
    ``$CREDENTIALS_DIRECTORY`` first, where systemd's ``LoadCredential=`` puts it. The value is never
    logged."""
    candidates = [path]
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and not path.is_absolute() and len(path.parts) == 1:
        candidates.insert(0, Path(cred_dir) / path)
    for candidate in candidates:
        try:
            return candidate.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"mqtt.password_file: cannot read {candidate}: {exc.strerror}") from None
    raise ConfigError(
        f"mqtt.password_file: {path} not found"
        + (f" (also looked in $CREDENTIALS_DIRECTORY={cred_dir})" if cred_dir else "")
    )
