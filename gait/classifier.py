"""Normal / abnormal gait from one window's metrics.

``RuleClassifier`` is transparent: each rule is a clinical threshold on one view-robust feature, softened by a
logistic of the distance past it, and the window's ``p_abnormal`` is the strongest rule's. It needs no
training and explains itself (``pattern`` names the rule). ``GaitClassifier`` is the name the daemon uses; it
wraps a learned model (``gaitwatch.gait.model``) when one is available and falls back to the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gaitwatch.gait.feature_names import Feature
from gaitwatch.gait.model import GaitModel
from gaitwatch.gait.types import Assessment, GaitLabel, GaitMetrics


@dataclass(frozen=True, slots=True)
class Rule:
    """``pattern`` is flagged when ``feature`` is beyond ``threshold`` (below it when ``below``); ``scale`` is
    the distance past the threshold at which p reaches ~0.73 (one logistic unit): smaller is crisper."""

    pattern: str
    feature: str
    threshold: float
    scale: float
    below: bool

    def p(self, features: Mapping[str, float]) -> float | None:
        x = features.get(self.feature)
        if x is None or not np.isfinite(x):
            return None
        z = (self.threshold - x) / self.scale if self.below else (x - self.threshold) / self.scale
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))


# Thresholds. Features are in body-scale units (see gaitwatch.gait.features); 1 body height ~ 1.7 m, 1 leg
# length ~ 0.83 m for an average adult.
DEFAULT_RULES: tuple[Rule, ...] = (
    # Gait speed below ~0.6 m/s marks high risk of falls, hospitalisation and mortality (Studenski et al.
    # 2011, JAMA; 0.6-1.0 m/s is intermediate, where healthy people strolling also walk); 0.35 body
    # heights/s is ~0.6 m/s. Speed from steps (step length x cadence), measured only for walkers crossing
    # the view (GaitSettings.max_heading_deg).
    Rule("slow", Feature.SPEED_FROM_STEPS_BH_S, 0.35, 0.04, below=True),
    # Cadence below 70 steps/min is far under the healthy adult range (~100-125; Tudor-Locke et al. 2018).
    Rule("slow", Feature.CADENCE_SPM, 70.0, 4.0, below=True),
    # Shuffling: steps shorter than ~0.4 leg lengths (~0.33 m, under half the normal ~0.7 m step).
    Rule("shuffling", Feature.STEP_LENGTH_LL, 0.40, 0.04, below=True),
    # A cadence above ~150 steps/min while walking (not running) is festination.
    Rule("shuffling", Feature.CADENCE_SPM, 150.0, 4.0, below=False),
    # Step-time variability: CV > 5 % marks fallers / neurological gait (Hausdorff 2005; healthy ~1-3 %).
    # Measured within each foot's steps (a limp's two step times do not count as variability) and with the
    # heel-strike timing noise taken out (see gaitwatch.gait.events: a shuffler's short steps are timed to a
    # few percent only, which the plain CV would read as unsteadiness).
    Rule("unsteady", Feature.STEP_TIME_CV_CORRECTED, 0.055, 0.008, below=False),
    # Step-time asymmetry > 12 % of the mean step (limping; healthy < ~5 %, Patterson et al. 2010).
    Rule("asymmetric", Feature.STEP_ASYMMETRY_ABS, 0.12, 0.02, below=False),
    # Freezing: the feet stood still for over a second inside a walking window (``halt_s``). A broken rhythm
    # alone is not enough: pose noise at a low frame rate breaks it too.
    Rule("freezing", Feature.HALT_S, 1.0, 0.15, below=False),
)


class RuleClassifier:
    """Transparent thresholds (``DEFAULT_RULES``); ``p_abnormal`` is the strongest rule's probability."""

    def __init__(self, rules: tuple[Rule, ...] = DEFAULT_RULES) -> None:
        self.rules = rules

    def assess(self, metrics: GaitMetrics) -> Assessment:
        """UNKNOWN for invalid windows (p 0.5); otherwise NORMAL / ABNORMAL at p_abnormal 0.5."""
        if not metrics.valid:
            return Assessment(metrics.track_id, GaitLabel.UNKNOWN, 0.5, "")
        feats = derived_features(metrics.features)
        best_p, best_pattern = 0.0, ""
        for rule in self.rules:
            p = rule.p(feats)
            if p is not None and p > best_p:
                best_p, best_pattern = p, rule.pattern
        label = GaitLabel.ABNORMAL if best_p >= 0.5 else GaitLabel.NORMAL
        return Assessment(metrics.track_id, label, best_p, best_pattern if label == GaitLabel.ABNORMAL else "")


def derived_features(features: Mapping[str, float]) -> dict[str, float]:
    """Features computed from others for the rules (the absolute step asymmetry)."""
    out = dict(features)
    if Feature.STEP_ASYMMETRY in out:
        out[Feature.STEP_ASYMMETRY_ABS] = abs(out[Feature.STEP_ASYMMETRY])
    return out


class GaitClassifier:
    """The classifier the daemon calls: ``assess(metrics) -> Assessment``.

    With a learned model (by default the one shipped in ``gaitwatch.gait/models/``), ``p_abnormal`` is the
    model's calibrated probability and ``pattern`` its naive-Bayes pattern; without one (``use_default=False``
    and no ``model``, or no shipped file) the transparent rules decide.
    """

    def __init__(
        self,
        model: GaitModel | None = None,
        *,
        use_default: bool = True,
        rules: RuleClassifier | None = None,
    ) -> None:
        self.model = model if model is not None else (GaitModel.load_default() if use_default else None)
        self.rules = rules or RuleClassifier()

    def assess(self, metrics: GaitMetrics) -> Assessment:
        if self.model is None or not metrics.valid:
            return self.rules.assess(metrics)
        p = self.model.p_abnormal(metrics.features)
        if p >= self.model.threshold:
            return Assessment(metrics.track_id, GaitLabel.ABNORMAL, p, self.model.pattern_of(metrics.features))
        return Assessment(metrics.track_id, GaitLabel.NORMAL, p, "")
