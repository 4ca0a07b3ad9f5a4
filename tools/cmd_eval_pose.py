"""``gaitwatch eval-pose``: accuracy of the pose stage on annotated photos, with ground-truth boxes as tracks.

Usage: ``gaitwatch eval-pose ANNOTATIONS IMAGES [--backend full|lite|student] [--student DIR]
[--second-pass auto|on|off] [--roi-scale S] [--json OUT]``. ANNOTATIONS is a COCO-format keypoint json (COCO,
CrowdPose, PoseTrack18) or an MPII-format json; IMAGES the folder the json's file names are relative to.
COCO-format sets report PCK at 0.05 and 0.1 of the box's longer side; MPII-format sets report PCKh@0.5.

Teacher agreement: ``gaitwatch eval-pose --agreement VIDEO... --student DIR [--from 0.7] [--fps F]`` runs the
real pipeline (detector, tracker, BlazePose full as the teacher) over the part of each video from ``--from``
(a fraction of its duration) to its end, and reports PCK of the student against the teacher at 0.05 and 0.1 of
the tracked box's longer side, per joint. Use it on video the student was not trained on (``distill`` holds
out the last 30% of a single video by default, which ``--from 0.7`` selects).

Exit codes: 0 done, 1 unreadable data or model (named on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, get_args

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings, ModelVariant, PoseModelError
from gaitwatch.pose.offline.evaluation import (
    JOINT_GROUPS,
    KeypointDataset,
    PckResult,
    load_keypoint_dataset,
    pck,
    predict_dataset,
)
from gaitwatch.pose.student_backend import StudentBackend, StudentModelError, StudentSettings

COCO_THRESHOLDS = (0.05, 0.1)
MPII_THRESHOLD = 0.5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-pose`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "eval-pose",
        help="pose accuracy (PCK, PCKh) on COCO- or MPII-format images, ground-truth boxes as tracks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("annotations", type=Path, nargs="?", metavar="ANNOTATIONS", help="COCO-format or MPII-format json")
    p.add_argument(
        "images", type=Path, nargs="?", metavar="IMAGES", help="folder the json's image file names start from"
    )
    p.add_argument(
        "--backend",
        choices=(*get_args(ModelVariant), "student"),
        default=None,
        help="a BlazePose model (full-int8 is the daemon's default) or a distilled student (default full-int8; "
        "student with --student)",
    )
    p.add_argument(
        "--student",
        type=Path,
        default=None,
        metavar="DIR",
        help="student directory (gaitwatch distill --out)",
    )
    p.add_argument(
        "--agreement",
        type=Path,
        nargs="+",
        default=None,
        metavar="VIDEO",
        help="instead of annotations: agreement of the student with the BlazePose teacher on these videos",
    )
    p.add_argument(
        "--from",
        dest="start_fraction",
        type=float,
        default=0.7,
        help="agreement: start at this fraction of each video's duration (default 0.7: the held-out part)",
    )
    p.add_argument("--fps", type=float, default=None, help="agreement: the videos' true frame rate")
    p.add_argument(
        "--second-pass",
        choices=("auto", "on", "off"),
        default="auto",
        help="aligned second pass (auto: on for full, off for lite, as measured)",
    )
    p.add_argument(
        "--no-lying-hypotheses",
        action="store_true",
        help="do not also try +-90 degree crops for boxes wider than tall",
    )
    p.add_argument("--roi-scale", type=float, default=None, help="crop side / box's longer side (default 1.25)")
    p.add_argument("--model-path", type=Path, default=None, help="a .tflite to use instead of the shipped one")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the figures as JSON here")
    p.set_defaults(func=run_eval_pose)


def run_eval_pose(args: argparse.Namespace) -> int:
    """Entry point of ``eval-pose``; returns the process exit code."""
    backend_kind = args.backend or ("student" if args.student is not None else BlazePoseSettings().model)
    if backend_kind == "student" and args.student is None:
        sys.stderr.write("gaitwatch eval-pose: --backend student needs --student DIR\n")
        return 2
    if args.agreement is not None:
        if backend_kind != "student":
            sys.stderr.write("gaitwatch eval-pose: --agreement compares a student: give --student DIR\n")
            return 2
        return _run_agreement(args)
    if args.annotations is None or args.images is None:
        sys.stderr.write("gaitwatch eval-pose: give ANNOTATIONS and IMAGES (or --agreement VIDEO...)\n")
        return 2
    try:
        dataset = load_keypoint_dataset(args.annotations, args.images)
    except ValueError as exc:
        sys.stderr.write(f"gaitwatch eval-pose: {exc}\n")
        return 1
    if backend_kind == "student":
        try:
            backend: PoseBackend = StudentBackend(StudentSettings(args.student))
        except (StudentModelError, ValueError) as exc:
            sys.stderr.write(f"gaitwatch eval-pose: {exc}\n")
            return 1
        return _evaluate_and_write(dataset, backend, args.json)
    settings_kw: dict[str, Any] = {
        "model": backend_kind,
        "second_pass": args.second_pass,
        "lying_hypotheses": not args.no_lying_hypotheses,
    }
    if args.roi_scale is not None:
        settings_kw["roi_scale"] = args.roi_scale
    if args.model_path is not None:
        settings_kw["model_path"] = args.model_path
    try:
        blazepose = BlazePoseBackend(BlazePoseSettings(**settings_kw))
    except (PoseModelError, ValueError) as exc:
        sys.stderr.write(f"gaitwatch eval-pose: {exc}\n")
        return 1
    return _evaluate_and_write(dataset, blazepose, args.json)


def _evaluate_and_write(dataset: KeypointDataset, backend: PoseBackend, json_out: Path | None) -> int:
    try:
        report, text = evaluate(dataset, backend)
    except FileNotFoundError as exc:
        sys.stderr.write(f"gaitwatch eval-pose: {exc}\n")
        return 1
    sys.stdout.write(text)
    _write_json(json_out, report)
    return 0


def _write_json(path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _run_agreement(args: argparse.Namespace) -> int:
    """Student vs BlazePose full on the given part of each video (see the module docstring)."""
    from gaitwatch.pose.offline.distill import CollectSettings, DistillError, agreement, collect
    from gaitwatch.tools.cmd_record import offline_settings
    from gaitwatch.tools.recorder import VideoReadError, pipeline_run

    try:
        student = StudentBackend(StudentSettings(args.student))
        teacher = BlazePoseBackend(BlazePoseSettings(model="full"))
        settings = CollectSettings(fps=args.fps, start_fraction=args.start_fraction, background_per_s=0.0)
        # The crops the daemon's default pipeline would pose (its detector, cadence and tracker).
        run = pipeline_run(offline_settings(None, args.agreement[0]))
        data = collect(args.agreement, student.spec, teacher, run, settings)
        rows = np.arange(len(data), dtype=np.int64)
        result = agreement(data, rows, student.spec, student.run_crops(data.nominal_crops(student.spec)))
    except (StudentModelError, PoseModelError, DistillError, VideoReadError, ValueError) as exc:
        sys.stderr.write(f"gaitwatch eval-pose: {exc}\n")
        return 1
    report: dict[str, Any] = {
        "dataset": "agreement",
        "videos": [str(v) for v in args.agreement],
        "from": args.start_fraction,
        "backend": student.name,
        "model_version": student.model_version,
        "teacher": teacher.name,
        "teacher_version": teacher.model_version,
        **result.as_dict(),
    }
    lines = [
        f"eval-pose agreement: student {student.model_version} vs {teacher.name} on {result.people} people "
        f"(from {args.start_fraction:g} of each video; PCK of the box's longer side)",
        "".ljust(20) + "".join(k.rjust(10) for k in ("pck_0.05", "pck_0.1")),
    ]
    joints = list(result.all[0.1].per_joint)
    for row in ["overall", *JOINT_GROUPS, *joints]:
        cells = []
        for t in (0.05, 0.1):
            r = result.all[t]
            v = r.overall if row == "overall" else r.groups.get(row, r.per_joint.get(row, float("nan")))
            cells.append(("—" if not np.isfinite(v) else f"{v:.3f}").rjust(10))
        lines.append(row.ljust(20) + "".join(cells))
    sys.stdout.write("\n".join(lines) + "\n")
    _write_json(args.json, report)
    return 0


def evaluate(dataset: KeypointDataset, backend: PoseBackend) -> tuple[dict[str, Any], str]:
    """Run ``backend`` on every annotated person; returns the JSON report and a human-readable table."""
    crops = 0
    seconds = 0.0

    def predictor(path: Path, boxes: NDArray[np.float64]) -> NDArray[np.float32]:
        nonlocal crops, seconds
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read image {path} (is IMAGES the folder the json refers to?)")
        start = time.perf_counter()
        poses = backend.estimate(np.asarray(image, dtype=np.uint8), np.arange(len(boxes), dtype=np.int64), boxes)
        seconds += time.perf_counter() - start
        crops += len(boxes)
        return poses.keypoints

    predicted = predict_dataset(dataset, predictor)
    if dataset.norm_kind == "head":
        results = {f"pckh_{MPII_THRESHOLD:g}": pck(dataset, predicted, MPII_THRESHOLD)}
    else:
        results = {f"pck_{t:g}": pck(dataset, predicted, t) for t in COCO_THRESHOLDS}
    first = next(iter(results.values()))
    report: dict[str, Any] = {
        "dataset": str(dataset.name),
        "backend": backend.name,
        "model_version": backend.model_version,
    }
    if isinstance(backend, BlazePoseBackend):
        report["second_pass"] = backend.settings.uses_second_pass
        report["roi_scale"] = backend.settings.roi_scale
        report["lying_hypotheses"] = backend.settings.lying_hypotheses
    elif isinstance(backend, StudentBackend):
        report["second_pass"] = False
        report["roi_scale"] = backend.spec.roi_scale
        report["lying_hypotheses"] = False
        report["student_dir"] = str(backend.settings.model_dir)
    report["people"] = first.people
    report["ms_per_person"] = round(1000.0 * seconds / crops, 2) if crops else None
    report.update({key: r.as_dict() for key, r in results.items()})
    return report, _table(dataset, backend, results, report)


def _table(
    dataset: KeypointDataset, backend: PoseBackend, results: dict[str, PckResult], report: dict[str, Any]
) -> str:
    keys = list(results)
    rows = ["overall", *JOINT_GROUPS, *dataset.joint_names]
    width = max(len(r) for r in rows) + 2
    lines = [
        f"eval-pose {dataset.name}: {report['people']} people, backend={backend.name} "
        f"second_pass={'on' if report.get('second_pass') else 'off'} "
        f"roi_scale={report.get('roi_scale', 0):g} "
        f"({report['ms_per_person']} ms/person)",
        "".ljust(width) + "".join(k.rjust(10) for k in keys),
    ]
    for row in rows:
        cells = []
        for k in keys:
            r = results[k]
            v = r.overall if row == "overall" else r.groups.get(row, r.per_joint.get(row, float("nan")))
            cells.append(("—" if not np.isfinite(v) else f"{v:.3f}").rjust(10))
        lines.append(row.ljust(width) + "".join(cells))
    return "\n".join(lines) + "\n"
