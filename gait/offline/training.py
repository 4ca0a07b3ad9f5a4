"""Training and leave-subjects-out evaluation of the gait classifiers (scikit-learn pipelines).

Two binary models, as in the research this product comes from (FFT features + SVM / Bayes):
- ``svm``: StandardScaler + RBF SVC (class-balanced), with Platt-calibrated probabilities fitted on
  out-of-fold decision values grouped by subject (``CalibratedClassifierCV`` with ``ensemble=False``);
- ``gnb``: Gaussian naive Bayes.
Both are exported to plain parameters (``gaitwatch.gait.model``); a Gaussian naive Bayes over the abnormal
windows names the pattern. Missing features are imputed with training medians.

Evaluation always holds subjects out (StratifiedGroupKFold): windows of one person are strongly correlated,
and a classifier must work on people it has never seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.model import MODEL_FEATURES, GaitModel, NaiveBayesParams, SvmParams, feature_vector
from gaitwatch.gait.offline.replay import analyze_recording
from gaitwatch.gait.offline.synthetic import (
    PATTERNS,
    CameraView,
    PoseNoise,
    generate_walk,
    realistic_noise,
    sample_walker,
)
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.types import GaitMetrics, GaitWindow

ABNORMAL_PATTERNS: tuple[str, ...] = tuple(p for p in PATTERNS if p != "normal")
# Patterns whose only evidence is step timing (variability, asymmetry). Below
# ``GaitSettings.min_frames_per_step`` those features are not measured, so such a window looks exactly like a
# normal one: labelled "abnormal" it would only teach the classifier to call normal gait abnormal at low frame
# rates. Training and evaluation leave these windows out (the gait stage cannot see their abnormality).
TIMING_PATTERNS: frozenset[str] = frozenset({"asymmetric", "unsteady"})


@dataclass(frozen=True, slots=True)
class WindowSet:
    """Feature rows of valid walking windows: ``x`` (N, F) in ``MODEL_FEATURES`` order (NaN = missing),
    ``abnormal`` (N,) bool, ``pattern`` (N,) names, ``subject`` (N,) ids, ``truth`` named (N,) arrays of
    ground truth (NaN when unknown), ``cadence`` (N,) measured cadence and ``metrics`` the full rows."""

    x: NDArray[np.float64]
    abnormal: NDArray[np.bool_]
    pattern: NDArray[np.str_]
    subject: NDArray[np.int64]
    truth: dict[str, NDArray[np.float64]]
    metrics: tuple[GaitMetrics, ...]

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, slots=True)
class SubjectSpec:
    """One generated subject and how they are filmed (camera height in metres, downward tilt in degrees)."""

    subject: int
    pattern: str
    fps: float
    view_deg: float
    distance_scale: float
    noise: PoseNoise
    seed: int
    camera_height_m: float = 1.4
    tilt_deg: float = 5.0

    def camera(self) -> CameraView:
        return CameraView(view_deg=self.view_deg, height_m=self.camera_height_m, tilt_deg=self.tilt_deg)


def subject_specs(
    n_subjects: int,
    seed: int,
    fps_choices: Sequence[float] = (15.0, 30.0),
    abnormal_fraction: float = 0.5,
    view_range: tuple[float, float] = (20.0, 90.0),
) -> list[SubjectSpec]:
    """Subjects with a mix of patterns (half normal by default, the rest spread evenly over the abnormal
    patterns), frame rates, views (``view_range``, degrees between the walking direction and the optical axis:
    side-to-oblique 20-90 by default; 0 walks straight at the camera), cameras from eye level to high on a wall
    (1.2-8 m, looking 0-35 deg down), and pose noise over the range measured on real footage
    (``gaitwatch.gait.offline.synthetic.realistic_noise``: jitter, bursts of dropped frames, left/right swaps)."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n_subjects):
        if rng.random() < abnormal_fraction:
            pattern = ABNORMAL_PATTERNS[int(rng.integers(len(ABNORMAL_PATTERNS)))]
        else:
            pattern = "normal"
        specs.append(
            SubjectSpec(
                subject=i,
                pattern=pattern,
                fps=float(fps_choices[int(rng.integers(len(fps_choices)))]),
                view_deg=float(rng.uniform(view_range[0], view_range[1])),
                distance_scale=float(rng.uniform(1.0, 1.6)),
                noise=realistic_noise(rng),
                seed=int(rng.integers(2**31)),
                camera_height_m=float(rng.uniform(1.2, 8.0)),
                tilt_deg=float(rng.uniform(0.0, 35.0)),
            )
        )
    return specs


def sliding_windows(track: GaitWindow, settings: GaitSettings, hop_s: float | None = None) -> Iterator[GaitWindow]:
    """Windows of ``window_s`` every ``hop_s`` (default ``settings.hop_s``) over one track's samples, on a grid
    from its first sample: for looking at a signal. Training and evaluation cut windows with the daemon's own
    gait stage instead (``synthetic_windows``, ``gaitwatch.gait.offline.labels``)."""
    hop = hop_s or settings.hop_s
    if track.t.shape[0] < 3:
        return
    end = float(track.t[0]) + settings.window_s
    while end <= float(track.t[-1]) + 1e-9:
        sel = (track.t >= end - settings.window_s) & (track.t <= end)
        if np.count_nonzero(sel) >= 3:
            yield GaitWindow(track.track_id, track.t[sel], track.keypoints[sel], track.world[sel])
        end += hop


def synthetic_windows(
    specs: Sequence[SubjectSpec],
    settings: GaitSettings | None = None,
    duration_s: float = 20.0,
    hop_s: float = 2.0,
    progress: Callable[[int], None] | None = None,
) -> WindowSet:
    """Generate each subject's walk, cut windows every ``hop_s`` as the daemon's gait stage does (a replay of
    the walk), keep the valid ones with their truth (except windows of ``TIMING_PATTERNS`` subjects where step
    timing could not be measured)."""
    settings = replace(settings or GaitSettings(), hop_s=hop_s)
    rows: list[tuple[GaitMetrics, bool, str, int, dict[str, float]]] = []
    for spec in specs:
        rng = np.random.default_rng(spec.seed)
        params = sample_walker(spec.pattern, rng, duration_s)
        walk = generate_walk(
            params,
            spec.camera(),
            spec.noise,
            fps=spec.fps,
            duration_s=duration_s,
            seed=spec.seed,
        )
        rec = Recording.single(GaitWindow(spec.subject, walk.t, walk.keypoints, walk.world))
        for result in analyze_recording(rec, settings).windows:
            m = result.metrics
            if m.valid and not (spec.pattern in TIMING_PATTERNS and not timing_measured(m)):
                truth = walk.truth(m.t_start, m.t_end)  # the window's first and last samples
                rows.append((m, spec.pattern != "normal", spec.pattern, spec.subject, truth))
        if progress is not None:
            progress(1)
    return window_set(rows)


def timing_measured(m: GaitMetrics) -> bool:
    """Whether the window's step-timing features were measured (enough camera frames per step)."""
    return "step_time_cv" in m.features or "stride_regularity" in m.features


def window_set(rows: Sequence[tuple[GaitMetrics, bool, str, int, dict[str, float]]]) -> WindowSet:
    """Assemble rows of (metrics, abnormal, pattern, subject, truth) into arrays."""
    keys = sorted({k for r in rows for k in r[4]})
    return WindowSet(
        x=np.array([feature_vector(r[0].features, MODEL_FEATURES) for r in rows]).reshape(
            len(rows), len(MODEL_FEATURES)
        ),
        abnormal=np.array([r[1] for r in rows], dtype=bool),
        pattern=np.array([r[2] for r in rows], dtype=np.str_),
        subject=np.array([r[3] for r in rows], dtype=np.int64),
        truth={k: np.array([r[4].get(k, np.nan) for r in rows], dtype=np.float64) for k in keys},
        metrics=tuple(r[0] for r in rows),
    )


def _impute(x: NDArray[np.float64], medians: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(np.isfinite(x), x, medians[None, :])


def fit_model(
    data: WindowSet, kind: str = "svm", c: float = 3.0, seed: int = 0, info: dict[str, Any] | None = None
) -> GaitModel:
    """Fit the binary model (``svm`` or ``gnb``) and the pattern naive Bayes on ``data``; export parameters.

    ``c``: SVM regularisation; larger fits the training subjects more closely (risking over-fitting to the
    generator), smaller gives a smoother boundary.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if len(data) < 10 or np.all(data.abnormal) or not np.any(data.abnormal):
        raise ValueError("training needs at least 10 windows of both normal and abnormal gait")
    medians = np.nanmedian(data.x, axis=0)
    medians = np.where(np.isfinite(medians), medians, 0.0)
    x = _impute(data.x, medians)
    y = data.abnormal.astype(np.int64)
    binary: SvmParams | NaiveBayesParams
    if kind == "svm":
        gamma = 1.0 / x.shape[1]  # sklearn's "scale" on standardised features, fixed so it can be exported
        pipe = Pipeline(
            [
                ("scale", StandardScaler()),
                ("svm", SVC(kernel="rbf", C=c, gamma=gamma, class_weight="balanced", random_state=seed)),
            ]
        )
        # Each calibration fold must train on both classes: no more folds than subjects of the rarer class.
        n_folds = min(5, len(np.unique(data.subject[y == 1])), len(np.unique(data.subject[y == 0])))
        if n_folds < 2:
            raise ValueError("calibration needs at least 2 normal and 2 abnormal subjects")
        splits = list(StratifiedGroupKFold(n_splits=n_folds).split(x, y, data.subject))
        cal = CalibratedClassifierCV(pipe, method="sigmoid", cv=splits, ensemble=False)
        cal.fit(x, y)
        fitted = cal.calibrated_classifiers_[0]
        est, sig = fitted.estimator, fitted.calibrators[0]
        scaler, svc = est.named_steps["scale"], est.named_steps["svm"]
        binary = SvmParams(
            mean=np.asarray(scaler.mean_, dtype=np.float64),
            scale=np.asarray(scaler.scale_, dtype=np.float64),
            support_vectors=np.asarray(svc.support_vectors_, dtype=np.float64),
            dual_coef=np.asarray(svc.dual_coef_[0], dtype=np.float64),
            intercept=float(svc.intercept_[0]),
            gamma=gamma,
            sigmoid_a=float(sig.a_),
            sigmoid_b=float(sig.b_),
        )
    elif kind == "gnb":
        nb = GaussianNB().fit(x, np.where(data.abnormal, "abnormal", "normal"))
        binary = _nb_params(nb)
    else:
        raise ValueError(f"unknown model kind {kind!r}; expected 'svm' or 'gnb'")
    pattern = None
    ab = data.abnormal
    if len(np.unique(data.pattern[ab])) >= 2:
        pattern = _nb_params(GaussianNB().fit(x[ab], data.pattern[ab]))
    meta = {"kind": kind, "windows": len(data), "subjects": len(np.unique(data.subject))}
    meta.update(info or {})
    return GaitModel(MODEL_FEATURES, medians, binary, pattern, 0.5, meta)


def _nb_params(nb: Any) -> NaiveBayesParams:
    return NaiveBayesParams(
        classes=tuple(str(c) for c in nb.classes_),
        theta=np.asarray(nb.theta_, dtype=np.float64),
        var=np.asarray(nb.var_, dtype=np.float64),
        prior=np.asarray(nb.class_prior_, dtype=np.float64),
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Leave-subjects-out results: per-window ``p_abnormal`` (out of fold) and the summary figures."""

    p_abnormal: NDArray[np.float64]
    predicted: NDArray[np.bool_]
    summary: dict[str, Any]


def binary_summary(truth: NDArray[np.bool_], predicted: NDArray[np.bool_]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, sensitivity, specificity and the confusion matrix (rows truth
    normal/abnormal, columns predicted normal/abnormal)."""
    tp = int(np.count_nonzero(truth & predicted))
    tn = int(np.count_nonzero(~truth & ~predicted))
    fp = int(np.count_nonzero(~truth & predicted))
    fn = int(np.count_nonzero(truth & ~predicted))
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    n = tp + tn + fp + fn
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else float("nan"),
        "balanced_accuracy": float(np.nanmean([sens, spec])),
        "sensitivity": sens,
        "specificity": spec,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def cross_validate(data: WindowSet, kind: str = "svm", n_splits: int = 5, seed: int = 0) -> Evaluation:
    """Out-of-fold predictions with whole subjects held out (StratifiedGroupKFold), window- and subject-level
    figures (a subject is called abnormal when the mean of its windows' p_abnormal is >= 0.5)."""
    from sklearn.model_selection import StratifiedGroupKFold

    p = np.full(len(data), np.nan)
    groups = np.unique(data.subject)
    ab_subjects = len(np.unique(data.subject[data.abnormal]))
    n_folds = min(n_splits, ab_subjects, len(groups) - ab_subjects)
    if n_folds < 2:
        raise ValueError("cross-validation needs at least 2 normal and 2 abnormal subjects")
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for train, test in folds.split(data.x, data.abnormal, data.subject):
        sub = WindowSet(
            data.x[train],
            data.abnormal[train],
            data.pattern[train],
            data.subject[train],
            {k: v[train] for k, v in data.truth.items()},
            (),
        )
        model = fit_model(sub, kind=kind, seed=seed)
        p[test] = [model.p_abnormal(dict(zip(MODEL_FEATURES, row, strict=True))) for row in data.x[test]]
    predicted = p >= 0.5
    summary = binary_summary(data.abnormal, predicted)
    subj_truth = np.array([bool(data.abnormal[data.subject == g][0]) for g in groups])
    subj_pred = np.array([float(np.mean(p[data.subject == g])) >= 0.5 for g in groups])
    summary["subjects"] = binary_summary(subj_truth, subj_pred)
    return Evaluation(p, predicted, summary)
