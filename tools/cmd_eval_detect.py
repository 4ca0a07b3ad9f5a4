"""``gaitwatch eval-detect``: how many people the detection stage finds, and how many of its boxes are people.

Usage:
  ``gaitwatch eval-detect ANNOTATIONS.json IMAGES_DIR [options]`` (COCO person boxes; keypoints optional)
  ``gaitwatch eval-detect --video VIDEO --reference DET.txt [--fps F] [--min-score S] [options]`` (MOT det or gt
  text: ``frame,id,x,y,w,h,score,...`` with frames counted from 1)

Options: ``--detector KIND|default`` (any ``[detector] kind``; default: ``default``), ``--config FILE`` (a
daemon config: its detector, tracker and pose settings; the built-in defaults otherwise), ``--rotate 0|90`` (turn
every image 90 degrees clockwise first: a stand-in for people lying down), ``--postures FILE``, ``--frames N``,
``--json OUT``.

A kind (``hog``, ``blazepose``, ``hog+blazepose``, ``nanodet``, ``nanodet+blazepose``, ``onnx``) runs that person
detector on every whole image or frame (``onnx`` needs ``[detector] onnx_model`` in ``--config``). ``default`` is
the shipped configuration as the daemon runs it: on a video the real camera pipeline (detector on its schedule and
search regions, tracker, pose on each confirmed track, presence verification, motion-verified recovery), scored on
the boxes it reports as people, i.e. the confirmed tracks whose latest pose crop held a person; on still images (no
motion, no tracks) the configured detector's boxes that a pose crop verifies (presence >= ``[pose] min_presence``).

Boxes are matched one-to-one to the reference (maximum total IoU); reported at IoU 0.5 and 0.3: recall,
precision, by reference box height (``<75``, ``75-150``, ``>=150`` px) and by posture (``upright`` /
``non_upright``: from ``--postures`` (CSV ``dataset,image,annotation_id,posture``; ``annotation_id`` is the COCO
annotation id) where a label exists, else from the annotation's keypoints, else ``unknown``), and milliseconds
per image or frame (wall time of the detection stage as evaluated, on this machine, one thread).
``--json OUT`` writes ``recall``, ``precision``, ``ms_per_frame``, ``by_height``, ``by_posture`` (each
``{name: {"recall", "precision", "n"}}``) at IoU 0.5, and the same for both thresholds under ``"iou"``.
Exit codes: 0 done, 1 unreadable data (named on stderr), 2 bad arguments, 78 bad config.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline, build_detector
from gaitwatch.daemon.settings import ConfigError, DetectorSettings, Settings, load_settings, parse_settings
from gaitwatch.tracking.offline.detection_eval import (
    NON_UPRIGHT,
    UNKNOWN_POSTURE,
    UPRIGHT,
    DetectionScore,
    posture_from_coco_keypoints,
    rotate_boxes_90,
    score_all,
)
from gaitwatch.tracking.types import Frame

IOU_THRESHOLDS = (0.5, 0.3)
EXIT_DATA, EXIT_USAGE, EXIT_CONFIG = 1, 2, 78
FloatArray = NDArray[np.float64]


class EvalDataError(RuntimeError):
    """Unreadable or inconsistent evaluation data; the message names the file and what to do."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-detect`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "eval-detect",
        help="recall and precision of the person detection stage against reference boxes (COCO or MOT)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("annotations", type=Path, nargs="?", metavar="ANNOTATIONS.json", help="COCO annotations")
    p.add_argument("images", type=Path, nargs="?", metavar="IMAGES_DIR", help="folder of the annotated images")
    p.add_argument("--video", type=Path, help="video to run (instead of COCO images)")
    p.add_argument("--reference", type=Path, help="MOT det/gt text file of the video's reference boxes")
    p.add_argument("--fps", type=float, default=None, help="the footage's true frame rate (default: container's)")
    p.add_argument("--min-score", type=float, default=0.5, help="reference rows scored below this are ignored")
    p.add_argument(
        "--detector",
        choices=(*get_args(DetectorSettings.model_fields["kind"].annotation), "default"),
        default="default",
    )
    p.add_argument("--config", type=Path, default=None, help="daemon config whose detection/pose settings to use")
    p.add_argument("--rotate", type=int, choices=(0, 90), default=0, help="turn images 90 degrees clockwise first")
    p.add_argument("--postures", type=Path, default=None, help="CSV dataset,image,annotation_id,posture")
    p.add_argument("--frames", type=int, default=None, help="only the first N frames or images")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the figures as JSON")
    p.set_defaults(func=run)


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(f"eval-detect: {line}\n")


def detector_settings(config: Path | None, detector: str) -> Settings:
    """The config's (or default) settings with the detector kind ``detector`` (``default``: as configured)."""
    if config is not None:
        settings = load_settings(config)
    else:
        settings = parse_settings({"cameras": [{"id": "eval", "source": "eval"}]}, "<defaults>")
    if detector == "default":
        return settings
    data: dict[str, Any] = settings.model_dump()
    data["detector"]["kind"] = detector
    try:
        return parse_settings(data, f"--detector {detector}")
    except ConfigError as exc:
        raise ConfigError(
            f"--detector {detector} cannot be built with these settings: {exc}"
            + ("\n(kind 'onnx' needs [detector] onnx_model in --config)" if detector == "onnx" else "")
        ) from None


# -- reference data ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One image or frame with its reference boxes (xyxy pixels) and one posture label per box."""

    name: str
    image: NDArray[np.uint8]
    boxes: FloatArray
    postures: tuple[str, ...]


def read_mot_reference(path: Path, min_score: float) -> dict[int, FloatArray]:
    """Reference boxes (xyxy) by 0-based frame index from MOT text (frames counted from 1, score column 7)."""
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as exc:
        raise EvalDataError(f"cannot read reference {path}: {exc}; MOT text frame,id,x,y,w,h,score expected") from None
    if rows.shape[0] and rows.shape[1] < 7:
        raise EvalDataError(f"reference {path} has {rows.shape[1]} columns; MOT text needs frame,id,x,y,w,h,score")
    rows = rows[rows[:, 6] >= min_score] if rows.shape[0] else rows
    boxes = np.c_[rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
    frames = rows[:, 0].astype(np.int64) - 1
    return {int(f): boxes[frames == f] for f in np.unique(frames)}


def read_posture_labels(path: Path) -> dict[tuple[str, int], str]:
    """``(image, annotation_id) -> posture`` from a CSV with columns dataset,image,annotation_id,posture (ids
    are unique only within a dataset, so the image file name is part of the key)."""
    labels: dict[tuple[str, int], str] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"image", "annotation_id", "posture"} - set(reader.fieldnames or ())
            if missing:
                raise EvalDataError(f"posture file {path} lacks column(s) {sorted(missing)}")
            for row in reader:
                posture = row["posture"].strip()
                if posture not in (UPRIGHT, NON_UPRIGHT):
                    raise EvalDataError(
                        f"posture file {path}: annotation {row['annotation_id']} has posture {posture!r}; "
                        f"use {UPRIGHT!r} or {NON_UPRIGHT!r}"
                    )
                labels[(row["image"].strip(), int(row["annotation_id"]))] = posture
    except OSError as exc:
        raise EvalDataError(f"cannot read posture file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise EvalDataError(f"posture file {path}: {exc}") from None
    return labels


def coco_samples(annotations: Path, images: Path, labels: dict[tuple[str, int], str], rotate: int) -> Iterator[Sample]:
    """The COCO images holding at least one person (crowd regions and other classes ignored)."""
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
        people_ids = {int(c["id"]) for c in data.get("categories", []) if c.get("name") == "person"} or {1}
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in data["annotations"]:
            if int(ann.get("category_id", 1)) in people_ids and not ann.get("iscrowd", 0):
                by_image.setdefault(int(ann["image_id"]), []).append(ann)
        files = {int(img["id"]): str(img["file_name"]) for img in data["images"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvalDataError(
            f"cannot read COCO annotations {annotations}: {exc!r}; need 'images' and 'annotations' lists"
        ) from None
    for image_id in sorted(by_image):
        if image_id not in files:
            raise EvalDataError(f"{annotations}: annotations of image id {image_id}, which 'images' does not list")
        path = images / files[image_id]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise EvalDataError(f"cannot read image {path} (named in {annotations}); is IMAGES_DIR right?")
        anns = by_image[image_id]
        x, y, w, h = (np.array([float(a["bbox"][k]) for a in anns]) for k in range(4))
        boxes = np.stack([x, y, x + w, y + h], axis=1)
        postures = tuple(_posture(a, labels.get((files[image_id], int(a.get("id", -1))))) for a in anns)
        if rotate == 90:
            boxes = rotate_boxes_90(boxes, image.shape[0])
            image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
        yield Sample(files[image_id], np.ascontiguousarray(image, dtype=np.uint8), boxes, postures)


def _posture(annotation: dict[str, Any], label: str | None) -> str:
    if label is not None:
        return label
    keypoints = annotation.get("keypoints")
    if keypoints and len(keypoints) == 51:
        return posture_from_coco_keypoints(keypoints)
    return UNKNOWN_POSTURE


# -- detection as evaluated ------------------------------------------------------------------------------------


def _verified_detector(settings: Settings) -> Callable[[NDArray[np.uint8]], FloatArray]:
    """Still images, ``default``: the configured detector's boxes whose pose crop holds a person."""
    shared = SharedModels(settings, inference_threads=1)
    min_presence = settings.pose.min_presence

    def detect(image: NDArray[np.uint8]) -> FloatArray:
        found = shared.detector.detect(image)
        if not len(found):
            return found.xyxy
        poses = shared.pose.estimate(image, np.arange(len(found), dtype=np.int64), found.xyxy)
        keep: FloatArray = found.xyxy[poses.presence >= min_presence]
        return keep

    return detect


def _plain_detector(settings: Settings) -> Callable[[NDArray[np.uint8]], FloatArray]:
    cv2.setNumThreads(1)  # as in the daemon (SharedModels): one core per stage
    detector = build_detector(settings)
    return lambda image: detector.detect(image).xyxy


def evaluate_images(
    samples: Iterator[Sample], detect: Callable[[NDArray[np.uint8]], FloatArray], limit: int | None
) -> tuple[dict[float, DetectionScore], float, int]:
    scores = score_all(IOU_THRESHOLDS)
    seconds, count = 0.0, 0
    for sample in samples:
        if limit is not None and count >= limit:
            break
        started = time.perf_counter()
        predicted = detect(sample.image)
        seconds += time.perf_counter() - started
        count += 1
        for score in scores.values():
            score.add(predicted, sample.boxes, sample.postures)
    return scores, seconds, count


@dataclass(slots=True)
class RecoveryTally:
    """``default`` on a video: pose crops sent to unexplained moving regions, and the people they found."""

    crops: int = 0
    people: int = 0


def evaluate_video(
    video: Path, reference: dict[int, FloatArray], settings: Settings, detector: str, fps: float | None, **kw: Any
) -> tuple[dict[float, DetectionScore], float, int]:
    """Every frame of ``video`` scored against ``reference`` (frames without reference rows count as empty).
    Keyword arguments: ``rotate`` (0 or 90), ``limit`` (frames or None), ``recovery`` (a ``RecoveryTally`` that
    ``default`` adds its recovery counts to)."""
    rotate: int = kw["rotate"]
    limit: int | None = kw["limit"]
    recovery: RecoveryTally = kw.get("recovery", RecoveryTally())
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise EvalDataError(f"cannot open video {video}; is the path right and the codec installed?")
    rate = fps if fps is not None else float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    if not (math.isfinite(rate) and rate > 0.0):
        raise EvalDataError(f"{video} does not state its frame rate; pass --fps")
    pipeline = None
    plain: Callable[[NDArray[np.uint8]], FloatArray] | None = None
    if detector == "default":
        pipeline = build_camera_pipeline("eval", settings, SharedModels(settings, inference_threads=1))
    else:
        plain = _plain_detector(settings)
    scores = score_all(IOU_THRESHOLDS)
    seconds, seq = 0.0, 0
    try:
        while limit is None or seq < limit:
            ok, image = capture.read()
            if not ok:
                break
            truth = reference.get(seq, np.zeros((0, 4)))
            if rotate == 90:
                truth = rotate_boxes_90(truth, image.shape[0])
                image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
            pixels: NDArray[np.uint8] = np.ascontiguousarray(image, dtype=np.uint8)
            started = time.perf_counter()
            if pipeline is not None:
                result = pipeline.process(Frame("eval", seq, seq / rate, pixels))
                predicted = result.tracks.xyxy[np.isin(result.tracks.ids, result.people_ids)]
                recovery.crops += result.recovery_crops
                recovery.people += result.recovered
            else:
                assert plain is not None
                predicted = plain(pixels)
            seconds += time.perf_counter() - started
            for score in scores.values():
                score.add(predicted, truth)
            seq += 1
    finally:
        capture.release()
    if seq == 0:
        raise EvalDataError(f"no frame could be read from {video}")
    return scores, seconds, seq


# -- report ----------------------------------------------------------------------------------------------------


def _finite(value: object) -> object:
    """JSON has no NaN: empty groups report null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) and math.isfinite(value) else "  -  "


def report(scores: dict[float, DetectionScore], ms_per_frame: float, frames: int) -> dict[str, Any]:
    per_iou = {f"{iou:g}": score.as_dict() for iou, score in scores.items()}
    main = per_iou[f"{IOU_THRESHOLDS[0]:g}"]
    _out(f"{frames} frames/images, {ms_per_frame:.1f} ms each")
    _out(f"{'group':22s} {'n':>6s}  " + "  ".join(f"R@{k:4s} P@{k:4s}" for k in per_iou))
    groups: list[tuple[str, str, str | None]] = [("all", "", None)]
    groups += [(f"height {name}", "by_height", name) for name in main["by_height"]]
    groups += [(f"posture {name}", "by_posture", name) for name in main["by_posture"]]
    for label, key, name in groups:
        cells = []
        n = main["n"]
        for figures in per_iou.values():
            row = figures if name is None else figures[key][name]
            n = row["n"]
            cells.append(f"{_fmt(row['recall']):>6s} {_fmt(row['precision']):>6s}")
        _out(f"{label:22s} {n:6d}  " + "  ".join(cells))
    return {
        "recall": main["recall"],
        "precision": main["precision"],
        "ms_per_frame": ms_per_frame,
        "by_height": main["by_height"],
        "by_posture": main["by_posture"],
        "frames": frames,
        "iou": per_iou,
    }


def run(args: argparse.Namespace) -> int:
    video_mode = args.video is not None
    if video_mode and (args.annotations is not None or args.reference is None):
        _err("--video needs --reference DET.txt and no ANNOTATIONS.json/IMAGES_DIR")
        return EXIT_USAGE
    if not video_mode and (args.annotations is None or args.images is None):
        _err("give ANNOTATIONS.json IMAGES_DIR (COCO), or --video VIDEO --reference DET.txt")
        return EXIT_USAGE
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        _err(f"--fps must be a positive number of frames per second; got {args.fps}")
        return EXIT_USAGE
    if args.frames is not None and args.frames < 1:
        _err(f"--frames must be >= 1; got {args.frames}")
        return EXIT_USAGE
    try:
        settings = detector_settings(args.config, args.detector)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    recovery = RecoveryTally()
    try:
        if video_mode:
            if args.postures is not None:
                _err("--postures applies to COCO annotations only; MOT references carry no annotation ids")
                return EXIT_USAGE
            reference = read_mot_reference(args.reference, args.min_score)
            scores, seconds, frames = evaluate_video(
                args.video,
                reference,
                settings,
                args.detector,
                args.fps,
                rotate=args.rotate,
                limit=args.frames,
                recovery=recovery,
            )
        else:
            labels = read_posture_labels(args.postures) if args.postures is not None else {}
            detect = _verified_detector(settings) if args.detector == "default" else _plain_detector(settings)
            samples = coco_samples(args.annotations, args.images, labels, args.rotate)
            scores, seconds, frames = evaluate_images(samples, detect, args.frames)
            if frames == 0:
                raise EvalDataError(f"{args.annotations} holds no image with a person annotation")
    except EvalDataError as exc:
        _err(str(exc))
        return EXIT_DATA
    _out(f"detector={args.detector} rotate={args.rotate}")
    payload = report(scores, 1000.0 * seconds / frames, frames)
    if video_mode and args.detector == "default":
        _out(
            f"motion-verified recovery: {recovery.crops / frames:.2f} pose crops per frame, "
            f"{recovery.people} detections recovered"
        )
        payload["recovery_crops_per_frame"] = recovery.crops / frames
        payload["recovered_detections"] = recovery.people
    payload["_settings"] = {"detector": args.detector, "rotate": args.rotate, "iou": list(IOU_THRESHOLDS)}
    if args.json is not None:
        args.json.write_text(json.dumps(_finite(payload), indent=2) + "\n", encoding="utf-8")
    return 0
