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
``stride_cv_mae_pp``.

With ``--synthetic`` it also checks the floor measures and zone alerts against known geometry, with the code of
``bench/floor_speed.py`` and ``bench/ward_scenes.py`` (``gaitwatch.gait.offline.floor_eval``,
``gaitwatch.gait.offline.ward_scenes``), at the same frame rates: ``--walkers W`` generated walkers (default N)
through four calibrated ward cameras give ``speed_median_ae_mps``, ``speed_p95_ae_mps`` and
``step_length_median_ae_m``; ``--scenes K`` bed exits and chair rises per frame rate (default 20) give
``bed_exit_sensitivity`` (``bed_exit`` raised >= 3 s before the patient stood), ``bed_exit_lead_s_median`` and
``chair_rise_median_ae_s``; ``--night-hours H`` of normal nights per frame rate (default 1) give
``bed_exit_false_per_8h``. 0 leaves a part out (its keys are null). Generated scenes only: see those modules.
Exit 0 on success, 1 on unreadable data.
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
from gaitwatch.gait.offline.floor_eval import evaluate_floor, summarise
from gaitwatch.gait.offline.labels import cohen_kappa, labelled_windows, read_labels
from gaitwatch.gait.offline.training import Evaluation, WindowSet, binary_summary, cross_validate
from gaitwatch.gait.offline.ward_scenes import evaluate_ward
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.tools.cmd_train_gait import add_data_arguments, load_training_data


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-gait`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "eval-gait",
        help="leave-subjects-out accuracy of the gait classifier, and cadence / variability errors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(p, "evaluate", seed=7, fps="15,30", views="20,90", views_note="side and oblique")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds over subjects (default 5)")
    p.add_argument("--hop", type=float, default=2.0, help="seconds between windows (default 2)")
    p.add_argument(
        "--model",
        default=None,
        help="evaluate this fixed model file ('default' = the shipped one) instead of cross-validating",
    )
    p.add_argument(
        "--walkers",
        type=int,
        default=None,
        metavar="W",
        help="for --synthetic: generated walkers for the speed and step-length errors in metres (default N)",
    )
    p.add_argument(
        "--scenes",
        type=int,
        default=20,
        metavar="K",
        help="for --synthetic: generated bed exits and chair rises per frame rate (default 20)",
    )
    p.add_argument(
        "--night-hours",
        type=float,
        default=1.0,
        metavar="H",
        help="for --synthetic: hours of generated normal nights per frame rate, for false bed exits (default 1)",
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


FLOOR_KEYS: tuple[str, ...] = ("speed_median_ae_mps", "speed_p95_ae_mps", "step_length_median_ae_m")
WARD_KEYS: tuple[str, ...] = (
    "bed_exit_sensitivity",
    "bed_exit_lead_s_median",
    "bed_exit_false_per_8h",
    "chair_rise_median_ae_s",
)


def floor_and_ward_figures(args: argparse.Namespace) -> dict[str, Any]:
    """Speed and step length in metres on generated walkers seen through calibrated ward cameras, and bed exits,
    normal nights and chair rises on generated ward scenes (the bench scripts' code), at ``args.fps``. Every key
    of ``FLOOR_KEYS`` and ``WARD_KEYS`` is present: None when its part was left out or measured nothing."""
    fps = tuple(float(f) for f in str(args.fps).split(","))
    walkers = args.synthetic if args.walkers is None else args.walkers
    out: dict[str, Any] = {}
    if walkers > 0:
        sys.stderr.write(f"eval-gait: {walkers} walkers through 4 calibrated ward cameras\n")
        floor = summarise(evaluate_floor(walkers, fps, args.seed))
        out["floor"] = {"walkers": walkers, **floor}
        out.update({k: floor.get(k) for k in FLOOR_KEYS})
    if args.scenes > 0 or args.night_hours > 0:
        sys.stderr.write(
            f"eval-gait: ward scenes ({args.scenes} bed exits and chair rises, {args.night_hours:g} h of nights "
            "per frame rate)\n"
        )
        ward = evaluate_ward(
            fps,
            bed_exits=args.scenes,
            night_hours=args.night_hours,
            chair_rises=args.scenes,
            seed=args.seed,
            night_stretch_min=min(20.0, 60.0 * args.night_hours),
        )
        out["ward"] = ward
        out.update({k: ward.get(k) for k in WARD_KEYS})
    for k in (*FLOOR_KEYS, *WARD_KEYS):
        v = out.get(k)
        out[k] = float(v) if v is not None and np.isfinite(v) else None
    for part in ("floor", "ward"):
        if part in out:
            out[part] = {k: (v if isinstance(v, int) or np.isfinite(v) else None) for k, v in out[part].items()}
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
    if args.synthetic:
        result.update(floor_and_ward_figures(args))
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
    if r.get("floor"):
        f = r["floor"]
        lines.append(
            f"floor ({f['walkers']} walkers x 4 ward cameras x 2 calibrations): speed error "
            f"median={_fmt(r['speed_median_ae_mps'])} p95={_fmt(r['speed_p95_ae_mps'])} m/s; "
            f"step length error median={_fmt(r['step_length_median_ae_m'])} m "
            f"(n={int(f.get('step_length_measured') or 0)} of {int(f.get('cases') or 0)})"
        )
    if r.get("ward"):
        w = r["ward"]
        if "bed_exits" in w:
            lines.append(
                f"bed exits (n={int(w['bed_exits'])}): sensitivity={_fmt(r['bed_exit_sensitivity'])} "
                f"(raised >= 3 s before standing), median lead={_fmt(r['bed_exit_lead_s_median'])} s"
            )
        if "night_hours" in w:
            lines.append(
                f"normal nights ({_fmt(w['night_hours'])} h): false bed_exit per 8 h={_fmt(r['bed_exit_false_per_8h'])}"
            )
        if "chair_rises" in w:
            lines.append(
                f"chair rises (n={int(w['chair_rises'])}): sit-to-stand time median AE="
                f"{_fmt(r['chair_rise_median_ae_s'])} s"
            )
    if "rater" in r:
        lines.append("rater: " + " ".join(f"{k}={_fmt(v)}" for k, v in r["rater"].items()))
    return "\n".join(lines) + "\n"
