"""Specification of the dt-aware box Kalman filter."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.tracking.kalman import BoxKalman, KalmanSettings

BOX = np.array([100.0, 50.0, 140.0, 150.0])  # 40 x 100 px person


def test_prediction_composes_over_irregular_steps() -> None:
    one, two = BoxKalman(BOX, KalmanSettings()), BoxKalman(BOX, KalmanSettings())
    for k in range(5):  # give it a velocity first
        shift = np.array([8.0, 0.0, 8.0, 0.0]) * (k + 1)
        for f in (one, two):
            f.predict(0.1)
            f.update(BOX + shift)
    one.predict(0.3)
    two.predict(0.1)
    two.predict(0.2)
    np.testing.assert_allclose(one.state, two.state, rtol=1e-9)
    # Noise is scaled by the current height, which is unchanged by these predictions (vh ~ 0): equal P too.
    np.testing.assert_allclose(one.covariance, two.covariance, rtol=1e-6)


def test_learns_velocity_in_pixels_per_second_and_coasts() -> None:
    kf = BoxKalman(BOX, KalmanSettings())
    speed = 80.0  # px/s to the right
    dt = 0.1
    for k in range(1, 30):
        kf.predict(dt)
        kf.update(BOX + np.array([speed * dt * k, 0.0, speed * dt * k, 0.0]))
    assert kf.velocity[0] == pytest.approx(speed, rel=0.05)
    before = kf.xyxy.copy()
    kf.predict(0.5)  # half a second without observation (skipped frames)
    assert kf.xyxy[0] - before[0] == pytest.approx(0.5 * speed, rel=0.05)
    assert kf.xyxy[3] - kf.xyxy[1] == pytest.approx(100.0, rel=0.02)


def test_uncertainty_grows_while_coasting_and_zero_dt_is_a_no_op() -> None:
    kf = BoxKalman(BOX, KalmanSettings())
    p0 = kf.covariance
    kf.predict(0.0)
    np.testing.assert_array_equal(kf.covariance, p0)
    kf.predict(1.0)
    assert np.all(np.diag(kf.covariance) > np.diag(p0))


def test_box_never_inverts_while_coasting() -> None:
    kf = BoxKalman(BOX, KalmanSettings())
    for k in range(1, 10):  # shrinking fast
        kf.predict(0.1)
        kf.update(BOX + np.array([2.0, 4.0, -2.0, -4.0]) * k)
    kf.predict(10.0)
    box = kf.xyxy
    assert box[2] >= box[0] and box[3] >= box[1]


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="meas_std"):
        KalmanSettings(meas_std=0.0)
