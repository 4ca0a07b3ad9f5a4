"""Heel strikes and per-step metrics against the generator's true step times."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.gait.events import GaitEvents, step_metrics
from gaitwatch.gait.features import analyze_window
from gaitwatch.gait.offline.synthetic import CameraView, SyntheticWalk, WalkerParams, generate_walk
from gaitwatch.gait.types import GaitWindow


def _measure(walk: SyntheticWalk, t0: float, t1: float) -> tuple[dict[str, float], dict[str, float]]:
    sel = (walk.t >= t0) & (walk.t <= t1)
    win = GaitWindow(1, walk.t[sel], walk.keypoints[sel], walk.world[sel])
    m = analyze_window(win)
    assert m.valid
    return dict(m.features), walk.truth(float(win.t[0]), float(win.t[-1]))


@pytest.mark.parametrize("fps", [15.0, 30.0])
@pytest.mark.parametrize("view_deg", [90.0, 45.0])
def test_step_time_cv_within_2_pp_median(fps: float, view_deg: float) -> None:
    errors = []
    for k, cv in enumerate([0.01, 0.02, 0.04, 0.06, 0.08, 0.12]):
        walk = generate_walk(
            WalkerParams(cadence_spm=95.0 + 5 * k, step_cv=cv),
            CameraView(view_deg=view_deg),
            fps=fps,
            duration_s=11.0,
            seed=40 + k,
        )
        feats, truth = _measure(walk, 1.5, 9.5)
        errors.append(100.0 * abs(feats["step_time_cv"] - truth["step_time_cv"]))
        assert abs(feats["cadence_events_spm"] - truth["cadence_spm"]) <= 2.0
    assert float(np.median(errors)) <= 2.0


def test_variability_ranks_subjects() -> None:
    # Unsteady walkers (CV 10 %) must measure well above steady ones (CV 1.5 %) at a ward camera's 15 fps.
    steady: list[float] = []
    unsteady: list[float] = []
    for seed in range(4):
        for cv, out in ((0.015, steady), (0.10, unsteady)):
            walk = generate_walk(WalkerParams(step_cv=cv), fps=15.0, duration_s=11.0, seed=seed)
            out.append(_measure(walk, 1.5, 9.5)[0]["step_time_cv_within"])
    assert max(steady) < min(unsteady)


def test_step_asymmetry_of_a_limp() -> None:
    walk = generate_walk(WalkerParams(cadence_spm=100.0, step_asymmetry=0.25), fps=30.0, duration_s=11.0, seed=9)
    feats, truth = _measure(walk, 1.5, 9.5)
    assert abs(feats["step_asymmetry"] - abs(truth["step_asymmetry"])) <= 0.05
    sym = generate_walk(WalkerParams(cadence_spm=100.0, step_asymmetry=0.0), fps=30.0, duration_s=11.0, seed=9)
    assert _measure(sym, 1.5, 9.5)[0]["step_asymmetry"] < 0.05


def test_step_metrics_reject_missed_events() -> None:
    # Heel strikes every 0.5 s, alternating feet, one (a right one) missed: that step is not averaged in.
    t = np.arange(0.0, 6.01, 0.5)
    left = np.arange(t.shape[0]) % 2 == 0
    keep = np.ones(t.shape[0], dtype=bool)
    keep[5] = False
    events = GaitEvents(t[keep], left[keep], "image")
    m = step_metrics(events, f_stride=1.0)
    assert m["step_time_mean_s"] == pytest.approx(0.5)
    assert m["step_time_cv"] == pytest.approx(0.0, abs=1e-9)
    assert m["steps_rejected"] == 1.0
    assert m["cadence_events_spm"] == pytest.approx(120.0)
