"""The exported model equals scikit-learn's pipelines, loads only its own JSON format, and ships by
default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gaitwatch.gait.model import MODEL_FEATURES, GaitModel, SvmParams
from gaitwatch.gait.offline.training import WindowSet, fit_model


def _random_set(seed: int = 0, n_subjects: int = 30, per_subject: int = 6) -> WindowSet:
    """Two Gaussian classes in feature space, with some missing values, grouped by subject."""
    rng = np.random.default_rng(seed)
    rows, ab, pat, subj = [], [], [], []
    f = len(MODEL_FEATURES)
    for s in range(n_subjects):
        abnormal = s % 2 == 1
        centre = rng.normal(0.0, 1.0, f) * 0.3 + (1.0 if abnormal else 0.0)
        for _ in range(per_subject):
            rows.append(centre + rng.normal(0.0, 0.5, f))
            ab.append(abnormal)
            pat.append(("slow", "unsteady")[s % 4 // 2] if abnormal else "normal")
            subj.append(s)
    x = np.array(rows)
    x[rng.random(x.shape) < 0.05] = np.nan
    return WindowSet(x, np.array(ab), np.array(pat), np.array(subj, dtype=np.int64), {}, ())


def test_exported_svm_equals_sklearn_calibrated_pipeline() -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    data = _random_set()
    model = fit_model(data, kind="svm", c=3.0, seed=0)
    assert isinstance(model.binary, SvmParams)
    # The same pipeline fitted by scikit-learn directly, on the same imputed data and splits.
    x = np.where(np.isfinite(data.x), data.x, model.impute[None, :])
    y = data.abnormal.astype(int)
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "svm",
                SVC(kernel="rbf", C=3.0, gamma=1.0 / x.shape[1], class_weight="balanced", random_state=0),
            ),
        ]
    )
    splits = list(StratifiedGroupKFold(n_splits=5).split(x, y, data.subject))
    ref = CalibratedClassifierCV(pipe, method="sigmoid", cv=splits, ensemble=False).fit(x, y)
    ours = np.array([model.p_abnormal(dict(zip(MODEL_FEATURES, row, strict=True))) for row in data.x])
    np.testing.assert_allclose(ours, ref.predict_proba(x)[:, 1], atol=1e-9)


def test_exported_naive_bayes_equals_sklearn() -> None:
    from sklearn.naive_bayes import GaussianNB

    data = _random_set(seed=1)
    model = fit_model(data, kind="gnb")
    x = np.where(np.isfinite(data.x), data.x, model.impute[None, :])
    ref = GaussianNB().fit(x, np.where(data.abnormal, "abnormal", "normal"))
    col = list(ref.classes_).index("abnormal")
    ours = np.array([model.p_abnormal(dict(zip(MODEL_FEATURES, row, strict=True))) for row in data.x])
    np.testing.assert_allclose(ours, ref.predict_proba(x)[:, col], atol=1e-9)
    assert model.pattern is not None and set(model.pattern.classes) == {"slow", "unsteady"}


def test_json_round_trip_and_missing_features_imputed(tmp_path: Path) -> None:
    model = fit_model(_random_set(seed=2), kind="svm")
    path = tmp_path / "m.json"
    model.save(path)
    loaded = GaitModel.load(path)
    feats = {name: 0.3 for name in MODEL_FEATURES[:5]}  # the rest missing
    assert loaded.p_abnormal(feats) == pytest.approx(model.p_abnormal(feats), abs=1e-12)
    assert loaded.features == MODEL_FEATURES
    assert json.loads(path.read_text())["version"] == 1


def test_loader_refuses_other_formats_and_versions(tmp_path: Path) -> None:
    good = fit_model(_random_set(seed=3), kind="gnb").to_json()
    for change in ({"format": "pickle"}, {"version": 99}, {"features": ["a", "b"]}):
        bad = dict(good, **change)
        with pytest.raises(ValueError):
            GaitModel.from_json(bad)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04\x95\x00\x00\x00")  # a pickle header: never unpickled, just rejected
    with pytest.raises(ValueError):
        GaitModel.load(pickled)


def test_default_model_is_shipped_and_versioned() -> None:
    model = GaitModel.load_default()
    assert model is not None
    assert model.features == MODEL_FEATURES
    assert isinstance(model.binary, SvmParams)
    assert model.info["data"] == "synthetic" and model.info["subjects"] >= 200
