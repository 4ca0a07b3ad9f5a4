"""Uniform resampling: exact on linear signals, short gaps bridged, long gaps left missing."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.gait.resample import effective_max_gap, fill_gaps, longest_run, resample_uniform


def test_irregular_times_resampled_exactly_for_linear_signal() -> None:
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.02, 0.06, 200))
    values = np.stack([3.0 * t + 1.0, -t], axis=1)
    series = resample_uniform(t, values, rate_hz=25.0, max_gap_s=0.12)
    assert np.allclose(np.diff(series.t), 0.04)
    assert series.t[0] == t[0] and series.t[-1] <= t[-1]
    assert np.all(series.observed)
    np.testing.assert_allclose(series.values[:, 0], 3.0 * series.t + 1.0, atol=1e-9)
    np.testing.assert_allclose(series.values[:, 1], -series.t, atol=1e-9)


def test_long_gap_marked_missing_short_gap_interpolated() -> None:
    t = np.concatenate([np.arange(0.0, 1.0, 0.1), np.arange(1.1, 2.0, 0.1), np.arange(2.5, 3.01, 0.1)])
    # 0.9 -> 1.1 is a 0.2 s gap (long for 0.12 s), 1.9 -> 2.5 a 0.6 s gap; a 0.1 s step is not a gap.
    values = np.sin(t)[:, None]
    series = resample_uniform(t, values, rate_hz=100.0, max_gap_s=0.12)
    ok = series.observed
    assert np.all(ok[(series.t > 0.0) & (series.t < 0.9)])
    assert not np.any(ok[(series.t > 0.91) & (series.t < 1.09)])
    assert not np.any(ok[(series.t > 1.91) & (series.t < 2.49)])
    assert np.all(ok[(series.t >= 2.5) & (series.t <= 2.99)])
    # With a 0.25 s tolerance the first gap is bridged, the second is not.
    wide = resample_uniform(t, values, rate_hz=100.0, max_gap_s=0.25).observed
    assert np.all(wide[(series.t > 0.91) & (series.t < 1.09)])
    assert not np.any(wide[(series.t > 1.91) & (series.t < 2.49)])


def test_missing_channel_values_are_per_channel() -> None:
    t = np.arange(0.0, 2.0, 0.1)
    values = np.stack([t, t], axis=1)
    values[8:14, 1] = np.nan  # channel 1 unseen for 0.6 s
    series = resample_uniform(t, values, rate_hz=20.0, max_gap_s=0.12)
    assert np.all(np.isfinite(series.values[:, 0]))
    assert np.any(np.isnan(series.values[:, 1]))
    assert not np.all(series.observed)


def test_effective_gap_never_below_the_camera_frame_interval() -> None:
    t7 = np.arange(0.0, 5.0, 1.0 / 7.0)
    assert effective_max_gap(t7, 0.12, 3.5) == pytest.approx(3.5 / 7.0)
    t30 = np.arange(0.0, 5.0, 1.0 / 30.0)
    assert effective_max_gap(t30, 0.12, 3.5) == pytest.approx(0.12)


def test_longest_run_and_fill() -> None:
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 1], dtype=bool)
    assert longest_run(mask) == (3, 6)
    assert longest_run(np.zeros(4, dtype=bool)) == (0, 0)
    x = np.array([0.0, np.nan, np.nan, 3.0])
    np.testing.assert_allclose(fill_gaps(x), [0.0, 1.0, 2.0, 3.0])


def test_rejects_non_increasing_times() -> None:
    with pytest.raises(ValueError):
        resample_uniform(np.array([0.0, 0.0, 1.0]), np.zeros((3, 1)), 10.0, 0.1)
