"""Signal preparation for one gait window: visibility masking, uniform resampling with gap handling, the
longest well-seen stretch, and the person's own body scale (leg length) along it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.resample import effective_max_gap, fill_gaps, longest_run, resample_uniform
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.types import GaitWindow
from gaitwatch.pose.keypoints import Landmark

# Landmarks read by the analysis, and their positions in the compact arrays below.
USED: tuple[Landmark, ...] = (
    Landmark.LEFT_HIP,
    Landmark.RIGHT_HIP,
    Landmark.LEFT_KNEE,
    Landmark.RIGHT_KNEE,
    Landmark.LEFT_ANKLE,
    Landmark.RIGHT_ANKLE,
    Landmark.LEFT_HEEL,
    Landmark.RIGHT_HEEL,
    Landmark.LEFT_FOOT_INDEX,
    Landmark.RIGHT_FOOT_INDEX,
    Landmark.LEFT_SHOULDER,
    Landmark.RIGHT_SHOULDER,
    Landmark.LEFT_WRIST,
    Landmark.RIGHT_WRIST,
    Landmark.NOSE,
)
INDEX: dict[Landmark, int] = {lm: i for i, lm in enumerate(USED)}
_I = INDEX
# Hips, knees and ankles must be seen for a sample to count towards coverage and analysis.
CORE: tuple[Landmark, ...] = USED[:6]


@dataclass(frozen=True, slots=True)
class PreparedWindow:
    """A window resampled and cut to its longest well-seen stretch (exposed for events, plots and tests).

    ``xy`` (N, U, 2) image px and ``world`` (N, U, 3) metres of the ``USED`` landmarks on the uniform grid
    ``t`` (N,); ``leg_px`` (N,) leg length in px along the grid; ``leg_m`` leg length from world landmarks
    (NaN when the backend gives none); ``source_hz`` the camera's median frame rate.
    """

    t: NDArray[np.float64]
    xy: NDArray[np.float64]
    world: NDArray[np.float64]
    leg_px: NDArray[np.float64]
    leg_m: float
    rate_hz: float
    source_hz: float
    coverage: float
    visibility: float
    # The camera's own samples inside the stretch (NaN where unseen), for sub-frame event timing.
    raw_t: NDArray[np.float64]
    raw_xy: NDArray[np.float64]
    raw_world: NDArray[np.float64]

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] - self.t[0]) if self.t.shape[0] > 1 else 0.0

    @property
    def has_world(self) -> bool:
        return bool(np.isfinite(self.leg_m))

    def point(self, lm: Landmark) -> NDArray[np.float64]:
        return self.xy[:, _I[lm]]

    def world_point(self, lm: Landmark) -> NDArray[np.float64]:
        return self.world[:, _I[lm]]

    @property
    def pelvis(self) -> NDArray[np.float64]:
        return 0.5 * (self.point(Landmark.LEFT_HIP) + self.point(Landmark.RIGHT_HIP))

    @property
    def nyquist_hz(self) -> float:
        """The highest frequency the camera actually sampled (resampling adds none)."""
        return 0.5 * min(self.source_hz, self.rate_hz)


def prepare_window(window: GaitWindow, settings: GaitSettings) -> tuple[PreparedWindow | None, float, float]:
    """Resample and cut ``window``. Returns (prepared or None when nothing usable, coverage, visibility)."""
    t = window.t
    m = t.shape[0]
    if m < 3:
        return None, 0.0, 0.0
    idx = np.asarray(USED, dtype=np.intp)
    kp = window.keypoints[:, idx].astype(np.float64)
    seen = kp[..., 2] >= settings.min_visibility
    xy = np.where(seen[..., None], kp[..., :2], np.nan)
    world = window.world[:, idx].astype(np.float64)
    world_given = bool(np.any(world != 0.0))
    world = np.where(seen[..., None] & world_given, world, np.nan)
    u = len(USED)
    values = np.concatenate([xy.reshape(m, 2 * u), world.reshape(m, 3 * u)], axis=1)
    max_gap = effective_max_gap(t, settings.max_gap_s, settings.gap_intervals)
    series = resample_uniform(t, values, settings.resample_hz, max_gap)
    n = series.t.shape[0]
    grid_xy = series.values[:, : 2 * u].reshape(n, u, 2)
    grid_world = series.values[:, 2 * u :].reshape(n, u, 3)
    core = np.asarray([_I[lm] for lm in CORE])
    core_ok = np.all(np.isfinite(grid_xy[:, core]), axis=(1, 2))
    coverage = float(np.mean(core_ok)) if n else 0.0
    visibility = float(np.mean(kp[:, : len(CORE), 2]))
    start, stop = longest_run(core_ok)
    if stop - start < 4:
        return None, coverage, visibility
    seg_xy = grid_xy[start:stop]
    seg_world = grid_world[start:stop]
    # Landmarks outside the core may have short holes inside the stretch; fill them for spectra only.
    for j in range(u):
        for c in range(2):
            seg_xy[:, j, c] = fill_gaps(seg_xy[:, j, c])
        for c in range(3):
            seg_world[:, j, c] = fill_gaps(seg_world[:, j, c])
    seg_t = series.t[start:stop]
    leg = _leg_length_px(seg_xy, seg_t)
    leg_m = float("nan")
    if np.all(np.isfinite(seg_world[:, core])):
        legs_w = [
            np.linalg.norm(seg_world[:, _I[h]] - seg_world[:, _I[k]], axis=1)
            + np.linalg.norm(seg_world[:, _I[k]] - seg_world[:, _I[a]], axis=1)
            for h, k, a in _LEGS
        ]
        leg_m = float(np.percentile(np.maximum(*legs_w), 90))
        if not leg_m > 0.05:
            leg_m = float("nan")
    source_hz = 1.0 / float(np.median(np.diff(t)))
    raw = (t >= seg_t[0] - 1e-9) & (t <= seg_t[-1] + 1e-9)
    return (
        PreparedWindow(
            seg_t,
            seg_xy,
            seg_world,
            leg,
            leg_m,
            settings.resample_hz,
            source_hz,
            coverage,
            visibility,
            t[raw],
            xy[raw],
            world[raw],
        ),
        coverage,
        visibility,
    )


_LEGS = (
    (Landmark.LEFT_HIP, Landmark.LEFT_KNEE, Landmark.LEFT_ANKLE),
    (Landmark.RIGHT_HIP, Landmark.RIGHT_KNEE, Landmark.RIGHT_ANKLE),
)


def _leg_length_px(xy: NDArray[np.float64], t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Leg length (hip-knee + knee-ankle, px) along the grid.

    A flexed or foreshortened leg looks shorter, so the per-frame maximum over both legs is fitted linearly in
    time (a walker approaching the camera grows steadily) and lifted to the 90th percentile of the ratio, i.e.
    to the leg's length when nearly straight and side-on.
    """
    legs = [
        np.linalg.norm(xy[:, _I[h]] - xy[:, _I[k]], axis=1) + np.linalg.norm(xy[:, _I[k]] - xy[:, _I[a]], axis=1)
        for h, k, a in _LEGS
    ]
    per_frame = np.maximum(legs[0], legs[1])
    coef = np.polynomial.polynomial.polyfit(t - t[0], per_frame, 1)
    fit = np.polynomial.polynomial.polyval(t - t[0], coef)
    if np.any(fit <= 0.2 * np.median(per_frame)):
        fit = np.full_like(per_frame, np.median(per_frame))
    lift = float(np.percentile(per_frame / fit, 90))
    leg: NDArray[np.float64] = np.maximum(fit * lift, 1e-6)
    return leg
