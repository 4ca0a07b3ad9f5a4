"""Constant-velocity Kalman filter of one person box in continuous time (seconds).

State ``[cx, cy, w, h, vcx, vcy, vw, vh]``: box centre, width and height in pixels and their rates in pixels
per second (BoT-SORT's x, y, w, h state; unlike SORT's area/aspect state, width and height each get their own
velocity, so a person walking towards the camera does not distort the box). The transition ``F`` and process
noise ``Q`` are built from the elapsed time ``dt`` at every prediction, so skipped or irregular frames coast
correctly: two predictions of ``dt/2`` equal one of ``dt``.

All noise terms scale with the box height, the one length every camera shares with the person: a person 60 px
tall moving 0.5 heights per second moves 30 px/s, one 300 px tall 150 px/s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from filterpy.kalman import KalmanFilter
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh

FloatArray = NDArray[np.float64]

_H = np.hstack([np.eye(4), np.zeros((4, 4))])  # we observe cx, cy, w, h; velocities are hidden
# Boxes smaller than this (pixels) are treated as this size when scaling noise, so a degenerate box does not
# make the filter infinitely confident.
_MIN_SIZE_PX = 2.0


@dataclass(frozen=True, slots=True)
class KalmanSettings:
    """Noise model of the box filter, in box heights (h) and seconds.

    meas_std:
        Standard deviation of a detector's box edges around the true box, as a fraction of its height (0.05 =
        5 %). Larger trusts detections less: smoother boxes that lag a person who turns or stops.
    pos_noise:
        Random-walk diffusion of the centre not explained by velocity, in h per sqrt(second): a person sways,
        bends, or is partly occluded. Larger follows jumps faster but lets a coasting box wander (and its IoU
        gate open less reliably after an occlusion).
    vel_noise:
        How fast the centre's velocity may change: std of the velocity change over one second, in h/s per
        sqrt(second) (continuous white-noise acceleration). Walking starts and stops in about a second at
        ~0.8 h/s, hence ~0.5-1. Larger reacts to turns faster; smaller coasts straighter through occlusions.
    size_noise:
        Random-walk diffusion of width and height, in h per sqrt(second) (arms swinging, sitting down).
    size_vel_noise:
        Rate-of-change noise for width/height in h/s per sqrt(second) (walking towards/away from the camera).
    init_vel_std:
        Prior std of a new track's velocity, in h/s: how fast a person who just appeared may be moving.
    """

    meas_std: float = 0.05
    pos_noise: float = 0.1
    vel_noise: float = 0.5
    size_noise: float = 0.05
    size_vel_noise: float = 0.1
    init_vel_std: float = 1.0

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not (value > 0.0 and np.isfinite(value)):
                raise ValueError(f"KalmanSettings.{name} must be a positive finite number; got {value}")


class BoxKalman:
    """One track's filter. Mutable by design (it is the tracker's private state, not a contract)."""

    __slots__ = ("_kf", "_settings")

    def __init__(self, xyxy: FloatArray, settings: KalmanSettings) -> None:
        """Start a filter at box ``xyxy`` (shape (4,)) with unknown velocity."""
        self._settings = settings
        kf = KalmanFilter(dim_x=8, dim_z=4)
        z = xyxy_to_cxcywh(xyxy.reshape(1, 4))[0]
        kf.x = np.concatenate([z, np.zeros(4)]).reshape(8, 1)
        kf.H = _H.copy()
        h = max(float(z[3]), _MIN_SIZE_PX)
        # Position prior: two measurement stds (one detection); velocity prior: how fast people move.
        pos_std = 2.0 * settings.meas_std * h
        vel_std = settings.init_vel_std * h
        size_vel_std = 0.1 * vel_std  # people rarely change size fast: they seldom run at the camera
        kf.P = np.diag([pos_std**2] * 4 + [vel_std**2] * 2 + [size_vel_std**2] * 2)
        self._kf = kf

    @property
    def xyxy(self) -> FloatArray:
        """The current box estimate as (4,) xyxy pixels."""
        box: FloatArray = cxcywh_to_xyxy(self._kf.x[:4, 0].reshape(1, 4))[0]
        return box

    @property
    def velocity(self) -> FloatArray:
        """Centre velocity (vcx, vcy) in pixels per second."""
        return np.asarray(self._kf.x[4:6, 0], dtype=np.float64)

    @property
    def state(self) -> FloatArray:
        """A copy of the 8-vector state (for inspection and tests)."""
        return np.asarray(self._kf.x[:, 0], dtype=np.float64).copy()

    @property
    def covariance(self) -> FloatArray:
        """A copy of the 8x8 state covariance."""
        return np.asarray(self._kf.P, dtype=np.float64).copy()

    def snapshot(self) -> tuple[FloatArray, FloatArray]:
        """Copy of (state, covariance), e.g. to re-run the filter from an earlier observation."""
        return self._kf.x.copy(), self._kf.P.copy()

    def restore(self, snapshot: tuple[FloatArray, FloatArray]) -> None:
        """Return to a state saved with :meth:`snapshot`."""
        self._kf.x = snapshot[0].copy()
        self._kf.P = snapshot[1].copy()

    def predict(self, dt: float) -> None:
        """Advance the estimate by ``dt`` seconds (no-op for ``dt <= 0``)."""
        if dt <= 0.0:
            return
        s = self._settings
        x = self._kf.x
        # A box cannot shrink through zero: if coasting would do that, the size velocity was noise; stop it.
        for size, rate in ((2, 6), (3, 7)):
            if x[size, 0] + dt * x[rate, 0] < _MIN_SIZE_PX:
                x[rate, 0] = 0.0
        h = max(float(x[3, 0]), _MIN_SIZE_PX)
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        # Continuous white-noise acceleration (velocity diffuses with spectral density q_v) plus a direct
        # random walk of the position (q_p); exact for any dt, so irregular frame gaps compose consistently.
        q_pv = np.array([(s.pos_noise * h) ** 2] * 2 + [(s.size_noise * h) ** 2] * 2)
        q_vv = np.array([(s.vel_noise * h) ** 2] * 2 + [(s.size_vel_noise * h) ** 2] * 2)
        Q = np.zeros((8, 8))
        Q[:4, :4] = np.diag(q_pv * dt + q_vv * dt**3 / 3.0)
        Q[:4, 4:] = np.diag(q_vv * dt**2 / 2.0)
        Q[4:, :4] = Q[:4, 4:]
        Q[4:, 4:] = np.diag(q_vv * dt)
        self._kf.predict(F=F, Q=Q)

    def update(self, xyxy: FloatArray) -> None:
        """Fuse an observed box ``xyxy`` (shape (4,)) taken at the filter's current time."""
        z = xyxy_to_cxcywh(xyxy.reshape(1, 4))[0]
        h = max(float(z[3]), _MIN_SIZE_PX)
        R = np.eye(4) * (self._settings.meas_std * h) ** 2
        self._kf.update(z.reshape(4, 1), R=R)
