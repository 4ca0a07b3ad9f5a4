"""Gait speed and step length in metres checked against known geometry: generated walkers
(``gaitwatch.gait.offline.synthetic``) seen by ward cameras of known height, tilt and view, calibrated the way
an admin would (floor points measured to +-2 cm, image points clicked to the pixel) or from the mounting.

The generator's scene has the floor at z = 0, the walk along +x centred on the origin, and a camera at
``distance_m`` from the path's middle (``synthetic._camera_pose``); ``scene_camera`` rebuilds that camera as a
``PinholeCamera`` so the same floor can be calibrated. Truth: the walker's speed and mean step length are
parameters of the generator (``WalkerParams.speed_m_s``, ``step_length_m``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.features import analyze_window
from gaitwatch.gait.floor import (
    CalibrationError,
    FloorCalibration,
    PinholeCamera,
    calibrate_from_camera,
    calibrate_from_points,
)
from gaitwatch.gait.floor_gait import floor_gait
from gaitwatch.gait.offline.synthetic import CameraView, generate_walk, realistic_noise, sample_walker
from gaitwatch.gait.types import GaitWindow

# Ward cameras: (name, view_deg, height_m, tilt_deg). Side and oblique views at wall height, a ceiling-high
# corner camera looking steeply down, and one watching walkers come towards it.
EVAL_CAMERAS: tuple[tuple[str, float, float, float], ...] = (
    ("side_wall", 90.0, 2.2, 15.0),
    ("oblique_wall", 45.0, 2.4, 22.0),
    ("ceiling_corner", 60.0, 2.9, 38.0),
    ("towards", 15.0, 2.5, 25.0),
)
# Gait patterns with a constant walking speed (freezing walkers stop, so their speed truth is not one number).
EVAL_PATTERNS: tuple[str, ...] = ("normal", "slow", "shuffling", "asymmetric", "unsteady")
_FOCAL_PX = 700.0
_SIZE = (1280, 720)


def scene_camera(view: CameraView, distance_m: float) -> PinholeCamera:
    """The generator's camera for ``view`` at ``distance_m`` as a PinholeCamera in the scene frame."""
    v = np.deg2rad(view.view_deg)
    look = np.array([-np.cos(v), np.sin(v), 0.0])
    centre = -distance_m * look + np.array([0.0, 0.0, view.height_m])
    look_deg = float(np.degrees(np.arctan2(look[1], look[0])))
    return PinholeCamera.looking(centre, look_deg, view.tilt_deg, view.focal_px, (view.width_px, view.height_px))


def aim_distance(view: CameraView) -> float:
    """Camera distance from the path's middle at which the optical axis meets the floor there (at least 3 m):
    the walker crosses the middle of the image and leaves it at the sides, as on a ward, where nobody walks
    the whole 8 s window inside one camera's view."""
    return max(3.0, view.height_m / float(np.tan(np.deg2rad(view.tilt_deg))))


def point_calibration(
    camera: PinholeCamera, size: tuple[int, int], rng: np.random.Generator, floor_error_m: float = 0.02
) -> FloorCalibration:
    """Calibrate ``camera`` from up to 9 floor marks of a 1 m grid around the path that it sees well (not in
    the top fifth of the image, where a pixel spans decimetres), floor coordinates measured with a uniform
    error of +-``floor_error_m`` and image points clicked to the nearest pixel."""
    grid = np.array([[x, y] for x in np.arange(-4.0, 4.5, 1.0) for y in (-1.5, 0.0, 1.5)])
    uv = camera.project(np.c_[grid, np.zeros(len(grid))])
    w, h = size
    seen = np.all(np.isfinite(uv), axis=1) & (uv[:, 0] > 20) & (uv[:, 0] < w - 20)
    seen &= (uv[:, 1] > 0.2 * h) & (uv[:, 1] < h - 20)
    idx = np.flatnonzero(seen)
    if idx.shape[0] > 9:
        # As an admin would: marks spread over the view (greedy farthest points in the image).
        chosen = [int(idx[np.argmax(uv[idx, 1])])]
        while len(chosen) < 9:
            d = np.min(np.linalg.norm(uv[idx][:, None] - uv[chosen][None], axis=-1), axis=1)
            chosen.append(int(idx[np.argmax(d)]))
        idx = np.array(chosen)
    floor = grid[idx] + rng.uniform(-floor_error_m, floor_error_m, (idx.shape[0], 2))
    return calibrate_from_points(np.round(uv[idx]), floor)


@dataclass(frozen=True, slots=True)
class FloorCase:
    """One generated walker seen by one camera: truth and measurement (NaN when not measured)."""

    camera: str
    fps: float
    pattern: str
    calibration: str
    true_speed: float
    speed: float
    true_step: float
    step: float


def evaluate_floor(
    n_walkers: int, fps_list: tuple[float, ...], seed: int, *, duration_s: float = 8.0
) -> list[FloorCase]:
    """Every walker through every camera at every frame rate, with a point calibration (+-2 cm floor marks)
    and a mounting calibration (height +-3 cm, tilt +-1 deg off the truth); nothing tuned per camera."""
    rng = np.random.default_rng(seed)
    out: list[FloorCase] = []
    for i in range(n_walkers):
        pattern = EVAL_PATTERNS[i % len(EVAL_PATTERNS)]
        params = sample_walker(pattern, rng, duration_s)
        for name, view_deg, height, tilt in EVAL_CAMERAS:
            view = CameraView(view_deg=view_deg, height_m=height, tilt_deg=tilt, focal_px=_FOCAL_PX)
            dist = aim_distance(view)
            view = CameraView(view_deg=view_deg, distance_m=dist, height_m=height, tilt_deg=tilt, focal_px=_FOCAL_PX)
            camera = scene_camera(view, dist)
            calibrations: list[tuple[str, FloorCalibration]] = []
            with contextlib.suppress(CalibrationError):  # too few floor marks in view: mounting only
                calibrations.append(("points", point_calibration(camera, _SIZE, rng)))
            fov = float(np.degrees(2.0 * np.arctan(_SIZE[0] / 2.0 / _FOCAL_PX)))
            calibrations.append(
                (
                    "mounting",
                    calibrate_from_camera(
                        height_m=height + float(rng.uniform(-0.03, 0.03)),
                        tilt_deg=tilt + float(rng.uniform(-1.0, 1.0)),
                        fov_deg=fov,
                        image_size=_SIZE,
                    ),
                )
            )
            for fps in fps_list:
                walk = generate_walk(
                    params, view, realistic_noise(rng), fps=fps, duration_s=duration_s, seed=int(rng.integers(1 << 31))
                )
                metrics = analyze_window(GaitWindow(i, walk.t, walk.keypoints, walk.world))
                for kind, cal in calibrations:
                    g = floor_gait(walk.t, walk.keypoints, cal, cadence_spm=metrics.cadence_spm)
                    out.append(
                        FloorCase(
                            name,
                            fps,
                            pattern,
                            kind,
                            params.speed_m_s,
                            g.speed_mps if g.speed_mps is not None else float("nan"),
                            params.step_length_m,
                            g.step_length_m if g.step_length_m is not None else float("nan"),
                        )
                    )
    return out


def summarise(cases: list[FloorCase]) -> dict[str, float]:
    """Signed error mean and sd, absolute error median and 95th percentile, for speed (m/s) and step length
    (m), and how many cases had each measured."""
    speed = np.array([c.speed - c.true_speed for c in cases])
    step = np.array([c.step - c.true_step for c in cases])
    out: dict[str, float] = {"cases": float(len(cases))}
    for name, err in (("speed", speed), ("step_length", step)):
        unit = "mps" if name == "speed" else "m"
        e = err[np.isfinite(err)]
        out[f"{name}_measured"] = float(e.shape[0])
        if e.shape[0] == 0:
            continue
        out[f"{name}_error_mean_{unit}"] = float(np.mean(e))
        out[f"{name}_error_sd_{unit}"] = float(np.std(e, ddof=1)) if e.shape[0] > 1 else 0.0
        out[f"{name}_median_ae_{unit}"] = float(np.median(np.abs(e)))
        out[f"{name}_p95_ae_{unit}"] = float(np.percentile(np.abs(e), 95))
    return out


def error_table(cases: list[FloorCase]) -> dict[str, dict[str, float]]:
    """``summarise`` overall and per camera, per frame rate and per calibration kind."""
    table = {"all": summarise(cases)}
    for key in ("camera", "fps", "calibration"):
        for value in sorted({getattr(c, key) for c in cases}, key=str):
            table[f"{key}={value}"] = summarise([c for c in cases if getattr(c, key) == value])
    return table


def as_array(cases: list[FloorCase]) -> NDArray[np.float64]:
    """(K, 4) true speed, measured speed, true step, measured step (for plots)."""
    return np.array([[c.true_speed, c.speed, c.true_step, c.step] for c in cases])
