"""Gait in metres: where a person stands on the floor, how fast they walk, how long their steps are.

Everything comes from the feet mapped to the floor (``gaitwatch.gait.floor``). The person's floor position is
the midpoint of the two feet: the pose model's left/right label swaps (5-25 % of frames at ward frame rates)
exchange the feet but leave their midpoint where it is, and over a stride it advances exactly as the body
does. The swinging foot is lifted a few centimetres and so lands on the floor map slightly further from the
camera; averaged over strides that is a constant offset, not a speed.

- speed_mps: the slope of a straight line fitted to the floor positions over the window (gross errors of the
  pose model, a foot put on the other foot's place or on a shadow, are dropped and the line refitted);
- distance_m: the sum of such fits' displacements over consecutive ~2 s pieces, so a walker who turns is
  counted along the path (a point-to-point path length would add the pose jitter to every sample);
- step_length_m: distance per step, speed x 60 / cadence (the cadence from the stride spectrum of
  ``gaitwatch.gait.features``): the mean step length of the window, whatever the walking direction;
  stride_length_m twice that. Individual footprints are not located: at 7-15 fps and with label swaps a
  single heel strike's position is far noisier than this average.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gaitwatch.gait.floor import FloorCalibration, foot_floor_points

# Feet further apart than this on the floor map are not one person's feet (a mislabelled landmark, or a
# foot projected from above the horizon); the sample is dropped. Long steps are ~0.9 m, wide stances ~0.4 m.
_MAX_FEET_APART_M = 1.5
_MIN_SPAN_S = 2.0  # a speed needs at least about two strides of floor positions
_MIN_SAMPLES = 8
_PIECE_S = 2.0  # pieces of the path for distance_m: long enough to average the jitter, short enough to turn
_LAST_S = 1.0  # the current floor position is the median of this last stretch
_OUTLIER_MAD = 3.0  # residuals beyond this many robust standard deviations are gross errors


@dataclass(frozen=True, slots=True)
class FloorGait:
    """One window's gait on the floor (metres, seconds); None where it could not be measured.

    ``floor_xy``: the person's latest floor position; ``speed_mps``: walking speed over the window;
    ``distance_m``: path walked in the window; ``step_length_m`` / ``stride_length_m``: mean step and stride
    length (need a cadence); ``samples``: floor positions used.
    """

    floor_xy: tuple[float, float] | None
    speed_mps: float | None
    distance_m: float | None
    step_length_m: float | None
    stride_length_m: float | None
    samples: int


def floor_positions(
    calibration: FloorCalibration, keypoints: ArrayLike, min_visibility: float = 0.5
) -> NDArray[np.float64]:
    """(M, 2) floor midpoint between the two feet per sample; NaN when a foot is unseen or the feet are
    implausibly far apart."""
    feet = foot_floor_points(calibration, keypoints, min_visibility)
    mid: NDArray[np.float64] = 0.5 * (feet[:, 0] + feet[:, 1])
    apart = np.linalg.norm(feet[:, 0] - feet[:, 1], axis=1)
    mid[~(apart <= _MAX_FEET_APART_M)] = np.nan
    return mid


def _robust_line(t: NDArray[np.float64], xy: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Velocity (2,) of a straight-line fit of ``xy`` (K, 2) over ``t`` (K,), refitted twice without samples
    whose residual exceeds ``_OUTLIER_MAD`` robust standard deviations; and the samples kept."""
    keep = np.ones(t.shape[0], dtype=bool)
    vel = np.zeros(2)
    for _ in range(3):
        tt = t[keep] - t[keep].mean()
        centre = xy[keep].mean(axis=0)
        vel = (tt @ (xy[keep] - centre)) / max(float(tt @ tt), 1e-12)
        resid = np.linalg.norm(xy - centre - np.outer(t - t[keep].mean(), vel), axis=1)
        # Residual norms of 2-D Gaussian noise: median ~1.18 sigma; the floor keeps exact data from dropping all.
        sigma = max(float(np.median(resid[keep])) / 1.18, 1e-3)
        new = resid <= _OUTLIER_MAD * sigma
        if np.count_nonzero(new) < _MIN_SAMPLES or np.array_equal(new, keep):
            break
        keep = new
    return vel, keep


def floor_gait(
    t: ArrayLike,
    keypoints: ArrayLike,
    calibration: FloorCalibration,
    *,
    cadence_spm: float | None = None,
    min_visibility: float = 0.5,
) -> FloorGait:
    """Floor position, speed, distance and step length of one person over one window (see the module
    docstring). ``t`` (M,) seconds, ``keypoints`` (M, 33, 3) image px + visibility; ``cadence_spm`` from the
    gait window when it is a valid walking window (else no step length)."""
    tt = np.asarray(t, dtype=np.float64)
    mid = floor_positions(calibration, keypoints, min_visibility)
    ok = np.all(np.isfinite(mid), axis=1)
    ts, xy = tt[ok], mid[ok]
    n = int(ts.shape[0])
    if n == 0:
        return FloorGait(None, None, None, None, None, 0)
    last = xy[ts >= ts[-1] - _LAST_S]
    here = np.median(last, axis=0)
    floor_xy = (float(here[0]), float(here[1]))
    if n < _MIN_SAMPLES or ts[-1] - ts[0] < _MIN_SPAN_S:
        return FloorGait(floor_xy, None, None, None, None, n)
    vel, _ = _robust_line(ts, xy)
    speed = float(np.hypot(vel[0], vel[1]))
    pieces = max(1, round(float(ts[-1] - ts[0]) / _PIECE_S))
    edges = np.linspace(ts[0], ts[-1], pieces + 1)
    distance = 0.0
    for a, b in itertools.pairwise(edges):
        sel = (ts >= a) & (ts <= b)
        if np.count_nonzero(sel) >= _MIN_SAMPLES // 2:
            v, _ = _robust_line(ts[sel], xy[sel])
            distance += float(np.hypot(v[0], v[1])) * float(b - a)
        else:  # too few samples in this piece: the window's own speed stands in for it
            distance += speed * float(b - a)
    step = speed * 60.0 / cadence_spm if cadence_spm is not None and cadence_spm > 0 else None
    return FloorGait(floor_xy, speed, distance, step, 2.0 * step if step is not None else None, n)
