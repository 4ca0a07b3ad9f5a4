"""``gaitwatch eval-pose``: accuracy of the pose stage on annotated photos, with ground-truth boxes as tracks.

Usage: ``gaitwatch eval-pose ANNOTATIONS IMAGES [--backend full|lite] [--second-pass auto|on|off]
[--roi-scale S] [--json OUT]``. ANNOTATIONS is a COCO-format keypoint json (COCO, CrowdPose, PoseTrack18) or
an MPII-format json; IMAGES the folder the json's file names are relative to. COCO-format sets report PCK at
0.05 and 0.1 of the box's longer side; MPII-format sets report PCKh@0.5. Exit codes: 0 done, 1 unreadable
data or model (named on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings, PoseModelError
from gaitwatch.pose.evaluation import (
    JOINT_GROUPS,
    KeypointDataset,
    PckResult,
    load_keypoint_dataset,
    pck,
    predict_dataset,
)

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
    p.add_argument("annotations", type=Path, metavar="ANNOTATIONS", help="COCO-format or MPII-format json")
    p.add_argument(
        "images", type=Path, metavar="IMAGES", help="folder the json's image file names start from"
    )
    p.add_argument(
        "--backend", choices=("full", "lite"), default="full", help="BlazePose model (default full)"
    )
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
    p.add_argument(
        "--roi-scale", type=float, default=None, help="crop side / box's longer side (default 1.25)"
    )
    p.add_argument(
        "--model-path", type=Path, default=None, help="a .tflite to use instead of the shipped one"
    )
    p.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="also write the figures as JSON here"
    )
    p.set_defaults(func=run_eval_pose)


def run_eval_pose(args: argparse.Namespace) -> int:
    """Entry point of ``eval-pose``; returns the process exit code."""
    try:
        dataset = load_keypoint_dataset(args.annotations, args.images)
    except ValueError as exc:
        sys.stderr.write(f"gaitwatch eval-pose: {exc}\n")
        return 1
    settings_kw: dict[str, Any] = {
        "model": args.backend,
        "second_pass": args.second_pass,
        "lying_hypotheses": not args.no_lying_hypotheses,
    }
    if args.roi_scale is not None:
        settings_kw["roi_scale"] = args.roi_scale
    if args.model_path is not None:
        settings_kw["model_path"] = args.model_path
    try:
        backend = BlazePoseBackend(BlazePoseSettings(**settings_kw))
    except (PoseModelError, ValueError) as exc:
        sys.stderr.write(f"gaitwatch eval-pose: {exc}\n")
        return 1
    try:
        report, text = evaluate(dataset, backend)
    except FileNotFoundError as exc:
        sys.stderr.write(f"gaitwatch eval-pose: {exc}\n")
        return 1
    sys.stdout.write(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def evaluate(dataset: KeypointDataset, backend: BlazePoseBackend) -> tuple[dict[str, Any], str]:
    """Run ``backend`` on every annotated person; returns the JSON report and a human-readable table."""
    crops = 0
    seconds = 0.0

    def predictor(path: Path, boxes: NDArray[np.float64]) -> NDArray[np.float32]:
        nonlocal crops, seconds
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read image {path} (is IMAGES the folder the json refers to?)")
        start = time.perf_counter()
        poses = backend.estimate(
            np.asarray(image, dtype=np.uint8), np.arange(len(boxes), dtype=np.int64), boxes
        )
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
        "second_pass": backend.settings.uses_second_pass,
        "roi_scale": backend.settings.roi_scale,
        "lying_hypotheses": backend.settings.lying_hypotheses,
        "people": first.people,
        "ms_per_person": round(1000.0 * seconds / crops, 2) if crops else None,
    }
    report.update({key: r.as_dict() for key, r in results.items()})
    return report, _table(dataset, backend, results, report)


def _table(
    dataset: KeypointDataset, backend: BlazePoseBackend, results: dict[str, PckResult], report: dict[str, Any]
) -> str:
    keys = list(results)
    rows = ["overall", *JOINT_GROUPS, *dataset.joint_names]
    width = max(len(r) for r in rows) + 2
    lines = [
        f"eval-pose {dataset.name}: {report['people']} people, backend={backend.name} "
        f"second_pass={'on' if report['second_pass'] else 'off'} roi_scale={report['roi_scale']:g} "
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
