"""``gaitwatch eval-gait``: leave-subjects-out evaluation of the gait classifier and of the gait measures.

Usage: ``gaitwatch eval-gait LABELS.csv [--kind svm|gnb] [--folds K] [--model default|PATH] [--json OUT]``
(LABELS.csv: one row per recording, or clinicians' episode labels as ``train-gait`` reads them, grouped by
recording; or
``--synthetic N [--fps F,...] [--views LO,HI]`` instead of LABELS.csv: generated subjects with pose noise over
the range measured on real footage, side and oblique views 20-90 deg by default). The classifier is trained
and tested K times with whole subjects held out (GroupKFold), so every prediction is for a person the model
never saw (``--model`` instead scores one fixed model). Prints accuracy, balanced accuracy, sensitivity,
specificity and the confusion matrix per window and per subject; the agreement of the rater
column with the labels and with the classifier (accuracy and Cohen's kappa, per recording) when the file has
one; and, where the labels carry ground truth, the errors of cadence (steps/min), step-time CV and stride-time
CV (percentage points), per window (generated data: truth over the window's own steps) or per recording
(median over its windows). JSON keys include ``balanced_accuracy``, ``cadence_mae_spm``,
``stride_cv_mae_pp``. Exit 0 on success, 1 on unreadable data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gaitwatch.gait.model import GaitModel
from gaitwatch.gait.offline.episodes import is_episode_file
from gaitwatch.gait.offline.labels import cohen_kappa, labelled_windows, read_labels
from gaitwatch.gait.offline.training import Evaluation, WindowSet, binary_summary, cross_validate
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.tools.cmd_train_gait import load_training_data


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-gait`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "eval-gait",
        help="leave-subjects-out accuracy of the gait classifier, and cadence / variability errors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("labels", type=Path, nargs="?", metavar="LABELS.csv", help="labels file of recordings")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="evaluate on N generated subjects")
    p.add_argument("--seed", type=int, default=7, help="seed for --synthetic (default 7)")
    p.add_argument("--fps", default="15,30", help="frame rates for --synthetic, comma-separated")
    p.add_argument(
        "--views",
        default="20,90",
        help="for --synthetic: range of walking directions to the optical axis, degrees (default 20,90: "
        "side and oblique)",
    )
    p.add_argument("--kind", choices=("svm", "gnb"), default="svm", help="binary model (default svm)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds over subjects (default 5)")
    p.add_argument("--hop", type=float, default=2.0, help="seconds between windows (default 2)")
    p.add_argument(
        "--model",
        default=None,
        help="evaluate this fixed model file ('default' = the shipped one) instead of cross-validating",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.set_defaults(func=run)


def measure_errors(data: WindowSet, cadence: np.ndarray, features: list[dict[str, float]]) -> dict[str, Any]:
    """Mean / median absolute errors of cadence (spm) and step / stride time CV (pp) against the truth."""
    out: dict[str, Any] = {}
    pairs = (
        ("cadence", cadence, data.truth.get("cadence_spm"), 1.0, "spm"),
        (
            "step_cv",
            np.array([f.get("step_time_cv", np.nan) for f in features]),
            data.truth.get("step_time_cv"),
            100.0,
            "pp",
        ),
        (
            "stride_cv",
            np.array([f.get("stride_time_cv", np.nan) for f in features]),
            data.truth.get("stride_time_cv"),
            100.0,
            "pp",
        ),
    )
    for name, measured, truth, scale, unit in pairs:
        if truth is None:
            continue
        err = np.abs(measured - truth) * scale
        err = err[np.isfinite(err)]
        if err.shape[0] == 0:
            continue
        out[f"{name}_mae_{unit}"] = float(np.mean(err))
        out[f"{name}_median_ae_{unit}"] = float(np.median(err))
        out[f"{name}_n"] = int(err.shape[0])
    return out


def run(args: argparse.Namespace) -> int:
    rows = None
    row_of: list[int] = []
    try:
        if args.synthetic or (args.labels is not None and is_episode_file(args.labels)):
            data, source = load_training_data(args, "eval-gait")
        else:
            if args.labels is None:
                raise ValueError("give LABELS.csv or --synthetic N")
            rows = read_labels(args.labels)
            data, row_of = labelled_windows(rows, GaitSettings(), hop_s=args.hop)
            source = {"data": str(args.labels), "recordings": len(rows)}
        if len(data) == 0:
            raise ValueError("no valid walking windows in the data")
        ev = _fixed_model(data, args.model) if args.model else cross_validate(data, args.kind, args.folds)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"gaitwatch eval-gait: {exc}\n")
        return 1
    how = {"model": args.model} if args.model else {"kind": args.kind, "folds": args.folds}
    result: dict[str, Any] = {**how, **source}
    result.update(ev.summary)
    cadence = np.array([m.cadence_spm if m.cadence_spm is not None else np.nan for m in data.metrics])
    feats = [dict(m.features) for m in data.metrics]
    if args.synthetic or rows is None:
        errors = measure_errors(data, cadence, feats)
    else:
        errors = _per_recording_errors(data, cadence, feats, row_of, rows)
        result.update(_rater_agreement(rows, row_of, ev.p_abnormal))
    result.update(errors)
    result["cadence_mae_spm"] = errors.get("cadence_mae_spm")
    result["step_cv_mae_pp"] = errors.get("step_cv_mae_pp")
    result["stride_cv_mae_pp"] = errors.get("stride_cv_mae_pp")
    sys.stdout.write(_report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def _per_recording_errors(
    data: WindowSet, cadence: np.ndarray, feats: list[dict[str, float]], row_of: list[int], rows: list[Any]
) -> dict[str, Any]:
    """Recording-level truth: compare the median of each recording's windows with it."""
    idx = np.asarray(row_of)
    out: dict[str, Any] = {}
    for name, key, scale, unit in (
        ("cadence", "cadence_spm", 1.0, "spm"),
        ("step_cv", "step_time_cv", 100.0, "pp"),
        ("stride_cv", "stride_time_cv", 100.0, "pp"),
    ):
        errs = []
        for i, row in enumerate(rows):
            if key not in row.truth:
                continue
            sel = idx == i
            vals = (
                cadence[sel]
                if key == "cadence_spm"
                else np.array([feats[j].get(key, np.nan) for j in np.flatnonzero(sel)])
            )
            vals = vals[np.isfinite(vals)]
            if vals.shape[0]:
                errs.append(abs(float(np.median(vals)) - row.truth[key]) * scale)
        if errs:
            out[f"{name}_mae_{unit}"] = float(np.mean(errs))
            out[f"{name}_median_ae_{unit}"] = float(np.median(errs))
            out[f"{name}_n"] = len(errs)
    return out


def _rater_agreement(rows: list[Any], row_of: list[int], p: np.ndarray) -> dict[str, Any]:
    """Per recording: the rater against the labels and against the classifier (mean p_abnormal >= 0.5)."""
    idx = np.asarray(row_of)
    truth, rater, model = [], [], []
    for i, row in enumerate(rows):
        sel = idx == i
        if not row.rater_label or not np.any(sel):
            continue
        truth.append(row.label)
        rater.append(row.rater_label)
        model.append("abnormal" if float(np.mean(p[sel])) >= 0.5 else "normal")
    if not rater:
        return {}
    t, r, m = np.array(truth), np.array(rater), np.array(model)
    return {
        "rater": {
            "n": len(rater),
            "rater_vs_label_accuracy": float(np.mean(r == t)),
            "rater_vs_label_kappa": cohen_kappa(rater, truth),
            "model_vs_label_accuracy": float(np.mean(m == t)),
            "model_vs_rater_accuracy": float(np.mean(m == r)),
            "model_vs_rater_kappa": cohen_kappa(model, rater),
        }
    }


def _fixed_model(data: WindowSet, model_arg: str) -> Evaluation:
    """Predictions of one fixed model (the shipped default or a file) on every window."""
    model = GaitModel.load_default() if model_arg == "default" else GaitModel.load(Path(model_arg))
    if model is None:
        raise ValueError("this installation ships no default gait model")
    p = np.array([model.p_abnormal(dict(m.features)) for m in data.metrics])
    predicted = p >= model.threshold
    summary = binary_summary(data.abnormal, predicted)
    groups = np.unique(data.subject)
    subj_truth = np.array([bool(data.abnormal[data.subject == g][0]) for g in groups])
    subj_pred = np.array([float(np.mean(p[data.subject == g])) >= model.threshold for g in groups])
    summary["subjects"] = binary_summary(subj_truth, subj_pred)
    return Evaluation(p, predicted, summary)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _report(r: dict[str, Any]) -> str:
    how = f"model {r['model']}" if "model" in r else f"{r['kind']}, {r['folds']}-fold leave-subjects-out"
    lines = [
        f"eval-gait ({how}) on {r.get('data')}",
        f"windows: n={r['n']} accuracy={_fmt(r['accuracy'])} "
        f"balanced_accuracy={_fmt(r['balanced_accuracy'])} sensitivity={_fmt(r['sensitivity'])} "
        f"specificity={_fmt(r['specificity'])}",
        f"  confusion [[TN FP] [FN TP]] = {r['confusion_matrix']}",
    ]
    s = r.get("subjects")
    if s:
        lines.append(
            f"subjects: n={s['n']} accuracy={_fmt(s['accuracy'])} "
            f"balanced_accuracy={_fmt(s['balanced_accuracy'])} sensitivity={_fmt(s['sensitivity'])} "
            f"specificity={_fmt(s['specificity'])}"
        )
    for key in ("cadence", "step_cv", "stride_cv"):
        unit = "spm" if key == "cadence" else "pp"
        if r.get(f"{key}_mae_{unit}") is not None:  # None: no ground truth (e.g. clinicians' episode labels)
            lines.append(
                f"{key} error: MAE={_fmt(r[f'{key}_mae_{unit}'])} "
                f"median={_fmt(r[f'{key}_median_ae_{unit}'])} {unit} (n={r[f'{key}_n']})"
            )
    if "rater" in r:
        lines.append("rater: " + " ".join(f"{k}={_fmt(v)}" for k, v in r["rater"].items()))
    return "\n".join(lines) + "\n"
