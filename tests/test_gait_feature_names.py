"""Every feature name a gait window carries is declared once, in ``gaitwatch.gait.feature_names.Feature``.

Features travel as a plain mapping, so an undeclared or misspelled name fails nowhere else: the classifier or
the alert policy would silently read it as missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.gait.classifier import DEFAULT_RULES, GaitClassifier
from gaitwatch.gait.feature_names import Feature
from gaitwatch.gait.features import analyze_window
from gaitwatch.gait.model import MODEL_FEATURES
from gaitwatch.gait.offline.synthetic import PATTERNS, CameraView, generate_activity, generate_walk, sample_walker
from gaitwatch.gait.offline.training import sliding_windows
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.types import GaitWindow

DECLARED = {f.value for f in Feature}


def _produced(track: GaitWindow) -> set[str]:
    names: set[str] = set()
    for window in sliding_windows(track, GaitSettings(), 2.0):
        names |= set(analyze_window(window).features)
    return names


@pytest.mark.parametrize("fps", [7.0, 15.0, 30.0])
def test_every_feature_of_a_walking_window_is_declared(fps: float) -> None:
    rng = np.random.default_rng(11)
    produced: set[str] = set()
    for i, pattern in enumerate(PATTERNS):
        walk = generate_walk(sample_walker(pattern, rng, 16.0), fps=fps, duration_s=16.0, seed=i)
        produced |= _produced(GaitWindow(1, walk.t, walk.keypoints, walk.world))
    assert Feature.CADENCE_SPM in produced and Feature.STEP_TIME_CV in produced  # the walkers were analysed
    assert produced <= DECLARED, f"undeclared features: {sorted(produced - DECLARED)}"


def test_every_feature_of_sitting_standing_and_falling_is_declared() -> None:
    script = (
        ("stand", 9.0), ("sit_down", 1.5), ("sit", 9.0), ("stand_up", 1.5), ("stand", 3.0), ("fall", 0.8), ("lie", 9.0),
    )  # fmt: skip
    walk = generate_activity(script, CameraView(view_deg=90.0, distance_m=5.0), fps=15.0, seed=3)
    produced = _produced(GaitWindow(1, walk.t, walk.keypoints, walk.world))
    assert {Feature.DESCENT_T, Feature.SIT_TO_STAND_S} <= produced  # the transitions were seen
    assert produced <= DECLARED, f"undeclared features: {sorted(produced - DECLARED)}"


def test_what_the_classifiers_read_is_declared() -> None:
    assert set(MODEL_FEATURES) <= DECLARED
    assert {rule.feature for rule in DEFAULT_RULES} <= DECLARED
    shipped = GaitClassifier().model
    assert shipped is not None, "a gait model ships with the package"
    assert set(shipped.features) <= DECLARED
