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


def test_block_filter_equals_filterpy_on_the_full_matrices() -> None:
    """The decoupled filter is the textbook 8-state Kalman filter: compare with filterpy step by step."""
    from filterpy.kalman import KalmanFilter

    s = KalmanSettings()
    ours = BoxKalman(BOX, s)
    ref = KalmanFilter(dim_x=8, dim_z=4)
    ref.x = ours.state.reshape(8, 1)
    ref.P = ours.covariance
    ref.H = np.hstack([np.eye(4), np.zeros((4, 4))])
    rng = np.random.default_rng(7)
    t_obs = np.cumsum(rng.uniform(0.02, 0.4, size=25))  # irregular frame gaps
    previous = 0.0
    for k, t in enumerate(t_obs):
        dt = t - previous
        previous = t
        h = ours.state[3]
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        q_p = np.array([s.pos_noise] * 2 + [s.size_noise] * 2) ** 2 * h**2
        q_v = np.array([s.vel_noise] * 2 + [s.size_vel_noise] * 2) ** 2 * h**2
        Q = np.zeros((8, 8))
        Q[:4, :4] = np.diag(q_p * dt + q_v * dt**3 / 3)
        Q[:4, 4:] = Q[4:, :4] = np.diag(q_v * dt**2 / 2)
        Q[4:, 4:] = np.diag(q_v * dt)
        ours.predict(dt)
        ref.predict(F=F, Q=Q)
        z = BOX + np.array([50.0 * t, 5.0 * np.sin(t), 50.0 * t + 2.0 * k, 5.0 * np.sin(t)]) + rng.normal(0, 2, 4)
        ours.update(z)
        w, hh = z[2] - z[0], z[3] - z[1]
        ref.update(np.array([[z[0] + w / 2], [z[1] + hh / 2], [w], [hh]]), R=np.eye(4) * (s.meas_std * hh) ** 2)
        np.testing.assert_allclose(ours.state, ref.x[:, 0], rtol=1e-9, atol=1e-7)
        np.testing.assert_allclose(ours.covariance, ref.P, rtol=1e-7, atol=1e-7)
