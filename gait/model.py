"""A fitted gait classifier as plain numbers: a versioned JSON file, never a pickle.

Training uses scikit-learn pipelines (``gaitwatch.gait.offline.training``); what is saved is only their fitted
parameters (scaler means and scales, support vectors and dual coefficients, the sigmoid calibration, naive
Bayes means and variances), and inference is re-done here in numpy. Loading a model can therefore never run
code, and the file says which features, in which order, it expects. Tests check that this inference equals
scikit-learn's ``predict_proba`` on the same data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.feature_names import Feature

MODEL_FORMAT = "gaitwatch-gait-model"
MODEL_VERSION = 1
DEFAULT_MODEL_NAME = "default_gait_model.json"

# Features the learned models read: view- and frame-rate-robust ones (speed from steps rather than from pelvis
# displacement in the image; no freeze-band power, which a 7 fps camera cannot see). ``halt_s`` (feet still
# inside a walking window) is the freezing evidence a 7 fps camera can still see. Step-timing features are
# missing (imputed) below ``GaitSettings.min_frames_per_step``; ``source_hz`` tells the model so. Measures of
# the pose model's quality (jitter, repaired swaps) are deliberately not features: they say nothing about
# gait, and a model that reads them learns the generator's noise, not the walker's.
MODEL_FEATURES: tuple[str, ...] = (
    Feature.CADENCE_SPM,
    Feature.SPEED_FROM_STEPS_BH_S,
    Feature.STEP_LENGTH_LL,
    Feature.RHYTHM,
    Feature.HALT_S,
    Feature.STRIDE_REGULARITY,
    Feature.STEP_REGULARITY,
    Feature.HARMONIC_RATIO,
    Feature.ARM_SWING_LL,
    Feature.TRUNK_LEAN_DEG,
    Feature.STEP_TIME_CV,
    Feature.STEP_TIME_CV_WITHIN,
    Feature.STEP_TIME_CV_CORRECTED,
    Feature.EVENT_NOISE_CV,
    Feature.STRIDE_TIME_CV,
    Feature.STEP_ASYMMETRY,
    Feature.STEPS_REJECTED,
    Feature.SOURCE_HZ,
)


def feature_vector(features: Mapping[str, float], names: Sequence[str]) -> NDArray[np.float64]:
    """``features`` as a vector in ``names`` order, NaN where missing (imputed by the model)."""
    return np.array([float(features.get(n, np.nan)) for n in names], dtype=np.float64)


def _arr(x: Any, ndim: int) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim or not np.all(np.isfinite(a)):
        raise ValueError(f"model parameter must be a finite {ndim}-D array; got shape {a.shape}")
    return a


@dataclass(frozen=True, slots=True)
class SvmParams:
    """RBF SVM on standardised features with Platt (sigmoid) calibration:
    ``p = 1 / (1 + exp(a * f + b))`` with ``f = sum_i dual_i * exp(-gamma |sv_i - z|^2) + intercept``."""

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    support_vectors: NDArray[np.float64]
    dual_coef: NDArray[np.float64]
    intercept: float
    gamma: float
    sigmoid_a: float
    sigmoid_b: float

    def decision(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        z = (x - self.mean) / self.scale
        d2 = np.sum((z[:, None, :] - self.support_vectors[None, :, :]) ** 2, axis=2)
        f: NDArray[np.float64] = np.exp(-self.gamma * d2) @ self.dual_coef + self.intercept
        return f

    def proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(class 1) for rows of ``x`` (already imputed)."""
        p: NDArray[np.float64] = 1.0 / (
            1.0 + np.exp(np.clip(self.sigmoid_a * self.decision(x) + self.sigmoid_b, -50, 50))
        )
        return p

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "svm",
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "support_vectors": self.support_vectors.tolist(),
            "dual_coef": self.dual_coef.tolist(),
            "intercept": self.intercept,
            "gamma": self.gamma,
            "sigmoid_a": self.sigmoid_a,
            "sigmoid_b": self.sigmoid_b,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any], n_features: int) -> SvmParams:
        p = SvmParams(
            _arr(d["mean"], 1),
            _arr(d["scale"], 1),
            _arr(d["support_vectors"], 2),
            _arr(d["dual_coef"], 1),
            float(d["intercept"]),
            float(d["gamma"]),
            float(d["sigmoid_a"]),
            float(d["sigmoid_b"]),
        )
        if p.mean.shape != (n_features,) or p.scale.shape != (n_features,) or np.any(p.scale <= 0):
            raise ValueError("svm scaler does not match the feature list")
        if p.support_vectors.shape[1] != n_features or p.support_vectors.shape[0] != p.dual_coef.shape[0]:
            raise ValueError("svm support vectors do not match the feature list / dual coefficients")
        return p


@dataclass(frozen=True, slots=True)
class NaiveBayesParams:
    """Gaussian naive Bayes: per-class feature means ``theta`` (C, F), variances ``var`` (C, F), ``prior``
    (C,)."""

    classes: tuple[str, ...]
    theta: NDArray[np.float64]
    var: NDArray[np.float64]
    prior: NDArray[np.float64]

    def proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, C) class probabilities for rows of ``x`` (already imputed)."""
        ll = -0.5 * np.sum(np.log(2.0 * np.pi * self.var)[None], axis=2) - 0.5 * np.sum(
            (x[:, None, :] - self.theta[None]) ** 2 / self.var[None], axis=2
        )
        ll = ll + np.log(self.prior)[None]
        ll -= ll.max(axis=1, keepdims=True)
        p = np.exp(ll)
        out: NDArray[np.float64] = p / p.sum(axis=1, keepdims=True)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "gnb",
            "classes": list(self.classes),
            "theta": self.theta.tolist(),
            "var": self.var.tolist(),
            "prior": self.prior.tolist(),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any], n_features: int) -> NaiveBayesParams:
        p = NaiveBayesParams(
            tuple(str(c) for c in d["classes"]), _arr(d["theta"], 2), _arr(d["var"], 2), _arr(d["prior"], 1)
        )
        c = len(p.classes)
        if p.theta.shape != (c, n_features) or p.var.shape != (c, n_features) or p.prior.shape != (c,):
            raise ValueError("naive Bayes parameters do not match the classes / feature list")
        if np.any(p.var <= 0) or np.any(p.prior <= 0):
            raise ValueError("naive Bayes variances and priors must be positive")
        return p


@dataclass(frozen=True, slots=True)
class GaitModel:
    """A loaded model: ``binary`` gives P(abnormal) (an SVM or a naive Bayes over "normal"/"abnormal"),
    ``pattern`` the kind of abnormality (naive Bayes over pattern names); missing features are replaced by
    ``impute`` (training medians). ``threshold``: P(abnormal) at which a window is called abnormal."""

    features: tuple[str, ...]
    impute: NDArray[np.float64]
    binary: SvmParams | NaiveBayesParams
    pattern: NaiveBayesParams | None
    threshold: float = 0.5
    info: Mapping[str, Any] = field(default_factory=dict)

    def _prepare(self, features: Mapping[str, float]) -> NDArray[np.float64]:
        x = feature_vector(features, self.features)
        return np.where(np.isfinite(x), x, self.impute)[None, :]

    def p_abnormal(self, features: Mapping[str, float]) -> float:
        x = self._prepare(features)
        if isinstance(self.binary, SvmParams):
            return float(self.binary.proba(x)[0])
        return float(self.binary.proba(x)[0, self.binary.classes.index("abnormal")])

    def pattern_of(self, features: Mapping[str, float]) -> str:
        if self.pattern is None:
            return ""
        p = self.pattern.proba(self._prepare(features))[0]
        return self.pattern.classes[int(np.argmax(p))]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "features": list(self.features),
            "impute": self.impute.tolist(),
            "binary": self.binary.to_json(),
            "pattern": self.pattern.to_json() if self.pattern is not None else None,
            "threshold": self.threshold,
            "info": dict(self.info),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> GaitModel:
        if d.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a gaitwatch gait model (format {d.get('format')!r})")
        if int(d.get("version", 0)) != MODEL_VERSION:
            raise ValueError(f"gait model version {d.get('version')} is not supported (expected {MODEL_VERSION})")
        features = tuple(str(f) for f in d["features"])
        n = len(features)
        impute = _arr(d["impute"], 1)
        if impute.shape != (n,):
            raise ValueError("impute vector does not match the feature list")
        b = d["binary"]
        binary: SvmParams | NaiveBayesParams
        if b.get("kind") == "svm":
            binary = SvmParams.from_json(b, n)
        elif b.get("kind") == "gnb":
            binary = NaiveBayesParams.from_json(b, n)
            if set(binary.classes) != {"normal", "abnormal"}:
                raise ValueError("binary naive Bayes classes must be normal/abnormal")
        else:
            raise ValueError(f"unknown binary model kind {b.get('kind')!r}")
        pat = d.get("pattern")
        pattern = NaiveBayesParams.from_json(pat, n) if pat else None
        threshold = float(d.get("threshold", 0.5))
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        return GaitModel(features, impute, binary, pattern, threshold, dict(d.get("info", {})))

    @staticmethod
    def load(path: Path) -> GaitModel:
        return GaitModel.from_json(json.loads(path.read_text(encoding="utf-8")))

    @staticmethod
    def load_default() -> GaitModel | None:
        """The model shipped in ``gaitwatch.gait/models/``, or None when the package has none."""
        ref = resources.files("gaitwatch.gait").joinpath("models", DEFAULT_MODEL_NAME)
        if not ref.is_file():
            return None
        return GaitModel.from_json(json.loads(ref.read_text(encoding="utf-8")))
