"""TrajectoryBuffer: bounded in seconds whatever the frame rate, windows cut by time."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.gait.trajectory import TrajectoryBuffer
from gaitwatch.pose.keypoints import NUM_LANDMARKS


def _sample(value: float) -> tuple[np.ndarray, np.ndarray]:
    kp = np.full((NUM_LANDMARKS, 3), value, dtype=np.float32)
    return kp, -kp


@pytest.mark.parametrize("fps", [7.0, 30.0, 120.0])
def test_buffer_keeps_only_max_seconds_of_history(fps: float) -> None:
    buf = TrajectoryBuffer(max_seconds=4.0, track_id=3)
    n = int(20 * fps)
    for k in range(n):
        buf.append(k / fps, *_sample(k))
    times = buf.times()
    last = (n - 1) / fps
    assert times[-1] == pytest.approx(last)
    assert times[0] >= last - 4.0 - 1e-9
    assert times[0] - (last - 4.0) < 1.0 / fps + 1e-9  # nothing within the horizon was dropped
    assert len(buf) == times.shape[0]
    assert np.all(np.diff(times) > 0)


def test_window_returns_the_samples_in_time_range_in_order() -> None:
    buf = TrajectoryBuffer(max_seconds=10.0, track_id=7)
    for k in range(300):  # 300 samples > the initial ring capacity: exercises growth and wrap-around
        buf.append(0.1 * k, *_sample(k))
    win = buf.window(duration_s=2.0, end_t=29.0)
    assert win is not None
    assert win.track_id == 7
    np.testing.assert_allclose(win.t, 0.1 * np.arange(270, 291), atol=1e-9)
    np.testing.assert_allclose(win.keypoints[:, 0, 0], np.arange(270, 291))
    np.testing.assert_allclose(win.world[:, 5, 2], -np.arange(270, 291))
    # The window is a copy: later appends do not change it.
    for k in range(300, 400):
        buf.append(0.1 * k, *_sample(k))
    np.testing.assert_allclose(win.keypoints[:, 0, 0], np.arange(270, 291))


def test_window_none_when_fewer_than_two_samples() -> None:
    buf = TrajectoryBuffer(max_seconds=5.0)
    assert buf.window(8.0, 0.0) is None
    buf.append(1.0, *_sample(1))
    assert buf.window(8.0, 1.0) is None
    buf.append(1.5, *_sample(2))
    assert buf.window(0.1, 1.5) is None
    win = buf.window(8.0, 2.0)
    assert win is not None and win.t.shape == (2,)


def test_append_rejects_time_going_backwards_and_bad_shapes() -> None:
    buf = TrajectoryBuffer(max_seconds=5.0)
    buf.append(1.0, *_sample(1))
    with pytest.raises(ValueError):
        buf.append(1.0, *_sample(1))
    with pytest.raises(ValueError):
        buf.append(2.0, np.zeros((17, 3), np.float32), np.zeros((17, 3), np.float32))


def test_clear_forgets_everything() -> None:
    buf = TrajectoryBuffer(max_seconds=5.0)
    for k in range(10):
        buf.append(float(k) * 0.1, *_sample(k))
    buf.clear()
    assert len(buf) == 0 and buf.t_last is None
    buf.append(0.05, *_sample(0))  # earlier than before the clear: allowed (a new life)
    assert buf.t_first == pytest.approx(0.05)
