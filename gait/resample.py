"""Uniform resampling of irregularly timed samples, with short gaps interpolated and long gaps left missing.

Frame times from a camera are irregular (jitter, dropped frames, pose skipped when the pipeline is busy),
while spectra and filters need a uniform grid. Linear interpolation across a short gap is harmless for gait (a
step lasts ~0.5 s); across a long one it would invent motion, so those grid points stay NaN and the caller
decides (analyse the longest clean stretch, or call the window invalid)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class UniformSeries:
    """Samples on a uniform time grid: ``t`` (N,) seconds, ``values`` (N, C) with NaN where unobserved."""

    t: NDArray[np.float64]
    values: NDArray[np.float64]
    rate_hz: float

    def __post_init__(self) -> None:
        if self.t.ndim != 1 or self.values.ndim != 2 or self.values.shape[0] != self.t.shape[0]:
            raise ValueError(f"UniformSeries shapes mismatch: t {self.t.shape}, values {self.values.shape}")

    @property
    def observed(self) -> NDArray[np.bool_]:
        """(N,) True where every channel is observed."""
        ok: NDArray[np.bool_] = np.all(np.isfinite(self.values), axis=1)
        return ok


def effective_max_gap(t: NDArray[np.float64], max_gap_s: float, gap_intervals: float) -> float:
    """The longest interval bridged by interpolation: ``max_gap_s``, but never less than ``gap_intervals``
    median frame intervals (a 7 fps camera's normal 0.14 s frame interval is not a gap)."""
    if t.shape[0] < 2:
        return max_gap_s
    return max(max_gap_s, gap_intervals * float(np.median(np.diff(t))))


def uniform_grid(t_start: float, t_end: float, rate_hz: float) -> NDArray[np.float64]:
    """Grid ``t_start, t_start + 1/rate_hz, ...`` up to and including ``t_end`` (within rounding)."""
    n = int(np.floor((t_end - t_start) * rate_hz + 1e-9)) + 1
    return t_start + np.arange(max(n, 0), dtype=np.float64) / rate_hz


def resample_uniform(
    t: NDArray[np.float64],
    values: NDArray[np.float64],
    rate_hz: float,
    max_gap_s: float,
    t_start: float | None = None,
    t_end: float | None = None,
) -> UniformSeries:
    """Resample ``values`` (M, C) observed at strictly increasing times ``t`` (M,) onto a uniform grid.

    NaN entries of ``values`` are missing observations of that channel only. A grid point is interpolated
    linearly between the channel's two neighbouring observations when they are at most ``max_gap_s`` apart
    (or coincides with an observation); otherwise, and outside the observed span, it is NaN.
    The grid runs from ``t_start`` (default ``t[0]``) to ``t_end`` (default ``t[-1]``).
    """
    if t.ndim != 1 or values.ndim != 2 or values.shape[0] != t.shape[0]:
        raise ValueError(f"resample_uniform: t (M,) and values (M, C) expected; got {t.shape}, {values.shape}")
    if not rate_hz > 0 or not max_gap_s >= 0:
        raise ValueError("resample_uniform: rate_hz must be > 0 and max_gap_s >= 0")
    if t.shape[0] > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("resample_uniform: t must be strictly increasing")
    if t.shape[0] == 0:
        grid = np.zeros(0) if t_start is None or t_end is None else uniform_grid(t_start, t_end, rate_hz)
        return UniformSeries(grid, np.full((grid.shape[0], values.shape[1]), np.nan), rate_hz)
    t0 = float(t[0]) if t_start is None else t_start
    t1 = float(t[-1]) if t_end is None else t_end
    grid = uniform_grid(t0, t1, rate_hz)
    out = np.full((grid.shape[0], values.shape[1]), np.nan, dtype=np.float64)
    finite = np.isfinite(values)
    # Channels usually share their missing pattern (x, y, z of one landmark): interpolate each distinct
    # pattern's gap mask once.
    patterns: dict[bytes, NDArray[np.bool_]] = {}
    tol = 1e-9
    for c in range(values.shape[1]):
        ok = finite[:, c]
        key = np.packbits(ok).tobytes()
        if key not in patterns:
            patterns[key] = _bridged(t[ok], grid, max_gap_s, tol)
        good = patterns[key]
        if not np.any(good):
            continue
        out[good, c] = np.interp(grid[good], t[ok], values[ok, c])
    return UniformSeries(grid, out, rate_hz)


def _bridged(tf: NDArray[np.float64], grid: NDArray[np.float64], max_gap_s: float, tol: float) -> NDArray[np.bool_]:
    """(N,) True where a grid point lies on an observation or between two at most ``max_gap_s`` apart."""
    if tf.shape[0] == 0:
        return np.zeros(grid.shape[0], dtype=bool)
    j = np.searchsorted(tf, grid, side="right")  # tf[j-1] <= g < tf[j]
    inside = (j > 0) & (j < tf.shape[0])
    jl = np.clip(j - 1, 0, tf.shape[0] - 1)
    jr = np.clip(j, 0, tf.shape[0] - 1)
    on_sample = (j > 0) & (np.abs(grid - tf[jl]) <= tol)
    short = inside & (tf[jr] - tf[jl] <= max_gap_s + tol)
    bridged: NDArray[np.bool_] = on_sample | short
    return bridged


def longest_run(mask: NDArray[np.bool_]) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of True in ``mask`` (stop exclusive); ``(0, 0)`` when none."""
    if mask.shape[0] == 0 or not np.any(mask):
        return 0, 0
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


def fill_gaps(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Linearly fill NaN runs of a 1-D uniform series from their finite neighbours (edges held constant).
    For spectra only, after the caller has checked that what is filled is short."""
    ok = np.isfinite(x)
    if np.all(ok) or not np.any(ok):
        return x.copy()
    idx = np.arange(x.shape[0], dtype=np.float64)
    return np.interp(idx, idx[ok], x[ok])
