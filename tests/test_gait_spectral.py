"""The FFT core of the gait features (``gaitwatch.gait.spectral``) on signals whose spectrum is known exactly:
pure sinusoids between bins, sums of harmonics, a tone beside a band, white noise."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.gait.spectral import (
    autocorrelation,
    harmonic_amplitudes,
    peak_frequency,
    power_spectrum,
    spectral_entropy,
)

RATE_HZ = 30.0
T = np.arange(int(8.0 * RATE_HZ)) / RATE_HZ  # one 8 s gait window


@pytest.mark.parametrize("f_hz", [0.55, 0.873, 0.9, 1.0, 1.234, 1.61])
def test_a_pure_sinusoid_between_bins_is_placed_to_a_fraction_of_a_bin(f_hz: float) -> None:
    # An 8 s window resolves 0.125 Hz; zero padding to 0.005 Hz and the log-parabola put the peak within
    # 0.0005 Hz of the truth: 0.06 steps/min of cadence for a stride signal (120 x stride frequency).
    x = 2.0 * np.sin(2 * np.pi * f_hz * T + 0.3) + 0.7  # an offset and any phase do not matter
    peak = peak_frequency(power_spectrum(x, RATE_HZ, 0.005), 0.3, 3.0)
    assert peak is not None
    assert abs(peak[0] - f_hz) < 5e-4
    assert abs(120.0 * peak[0] - 120.0 * f_hz) < 0.06


def test_power_sums_to_the_variance_and_the_grid_is_as_fine_as_asked() -> None:
    # Parseval, Hann-corrected: a sinusoid of amplitude A carries A^2 / 2, whatever the zero padding.
    x = 1.5 * np.sin(2 * np.pi * 1.1 * T)
    for step in (0.125, 0.01, 0.005):
        spec = power_spectrum(x, RATE_HZ, step)
        assert spec.df <= step
        assert spec.freq[0] == 0.0 and spec.freq[-1] == pytest.approx(RATE_HZ / 2)
        assert float(spec.power.sum()) == pytest.approx(1.5**2 / 2, rel=0.01)
    # Channels add: two identical channels hold twice the power.
    two = power_spectrum(np.stack([x, x], axis=1), RATE_HZ, 0.005)
    assert float(two.power.sum()) == pytest.approx(2 * float(power_spectrum(x, RATE_HZ, 0.005).power.sum()))


def test_a_linear_trend_is_removed_so_it_does_not_hide_the_rhythm() -> None:
    # A walker crossing the image adds a ramp far larger than the stride swing.
    x = np.sin(2 * np.pi * 0.9 * T) + 5.0 * T
    detrended = peak_frequency(power_spectrum(x, RATE_HZ, 0.005), 0.3, 3.0)
    assert detrended is not None and abs(detrended[0] - 0.9) < 5e-4
    raw = peak_frequency(power_spectrum(x, RATE_HZ, 0.005, detrend=False), 0.3, 3.0)
    assert raw is not None and abs(raw[0] - 0.9) > 10 * abs(detrended[0] - 0.9)  # the ramp's leakage pulls it


def test_a_strong_tone_outside_the_band_does_not_win_at_the_band_edge() -> None:
    # The 0.3 Hz tone is 9x the power of the 1.2 Hz one; its skirt is highest at the band's lower edge, but a
    # maximum on the edge that is not a local maximum is leakage, not a periodicity inside the band.
    x = 3.0 * np.sin(2 * np.pi * 0.3 * T) + np.sin(2 * np.pi * 1.2 * T)
    peak = peak_frequency(power_spectrum(x, RATE_HZ, 0.005), 0.5, 3.0)
    assert peak is not None and abs(peak[0] - 1.2) < 1e-3


def test_too_short_a_signal_has_no_spectrum() -> None:
    spec = power_spectrum(np.ones(3), RATE_HZ, 0.005)
    assert spec.power.shape == (1,) and peak_frequency(spec, 0.3, 3.0) is None


def test_harmonic_amplitudes_of_a_known_sum_of_harmonics() -> None:
    # Whole cycles in the window: the Hann-weighted DFT at exact harmonics returns each amplitude.
    f0 = 1.0
    x = np.sin(2 * np.pi * f0 * T) + 0.5 * np.sin(2 * np.pi * 2 * f0 * T + 1.0) + 0.25 * np.cos(2 * np.pi * 3 * f0 * T)
    amps = harmonic_amplitudes(x, RATE_HZ, f0, 5)
    np.testing.assert_allclose(amps, [1.0, 0.5, 0.25, 0.0, 0.0], atol=1e-4)
    # Harmonics at or above Nyquist are not measured (0), never aliased back.
    assert harmonic_amplitudes(np.sin(2 * np.pi * 4.0 * T[:80]), 10.0, 4.0, 3)[1:].tolist() == [0.0, 0.0]


def test_spectral_entropy_tells_a_tone_from_white_noise() -> None:
    tone = power_spectrum(np.sin(2 * np.pi * 1.0 * T), RATE_HZ, 0.005)
    white = np.asarray(np.random.default_rng(0).normal(size=T.shape[0]), dtype=np.float64)
    noise = power_spectrum(white, RATE_HZ, 0.005)
    h_tone, h_noise = spectral_entropy(tone, 0.5, 3.0), spectral_entropy(noise, 0.5, 3.0)
    assert 0.0 <= h_tone < 0.75 < 0.9 < h_noise <= 1.0
    # On the unpadded grid the tone's main lobe is three bins wide: lower entropy (the docstring's figures).
    assert spectral_entropy(power_spectrum(np.sin(2 * np.pi * 1.0 * T), RATE_HZ, 0.125), 0.5, 3.0) < 0.35
    assert spectral_entropy(tone, 10.0, 11.0) <= 1.0  # empty of power: treated as no structure


def test_autocorrelation_of_a_sinusoid_peaks_at_its_period() -> None:
    ac = autocorrelation(np.sin(2 * np.pi * 1.0 * T))  # period 30 samples
    assert ac[0] == 1.0
    assert ac[30] == pytest.approx(1.0, abs=1e-9) and ac[15] == pytest.approx(-1.0, abs=1e-9)
    assert not np.any(autocorrelation(np.zeros(20)))
