"""``gaitwatch distill``: train a fast site-specific pose student from BlazePose on the site's own video.

Usage: ``gaitwatch distill VIDEO... --out DIR [--json OUT] [--resume | --fresh] [--recollect] [--fps F]
[--config TOML] [--epochs N] [--split auto|time|video] [--val-fraction 0.3] [--threads T] ...``

1. Runs the daemon's own camera pipeline (built from ``--config`` when given, else the defaults: its detector
   and cadence, tracker, pose schedule) with the BlazePose teacher as its pose model over every VIDEO, keeping
   every crop the pipeline posed, caching the crops and teacher targets in ``DIR/data.npz`` (reused on
   the next run unless ``--recollect``; collection needs no torch).
2. Splits by video (several videos) or by time (one video: the last ``--val-fraction`` of it is held out).
3. Trains on the CPU with a progress bar, checkpointing every epoch to ``DIR/checkpoint.pt``; ``--resume``
   continues an interrupted run, ``--fresh`` discards the checkpoint.
4. Exports ``DIR/student.onnx`` (+ ``student.pt``) and ``DIR/student.json`` (keypoints, input size, teacher,
   data used, validation figures), measures agreement with the teacher on the held-out part and the speed
   per crop of student and teacher, and writes those figures to ``--json OUT``.

The trained student is then selected in the daemon's config with ``pose.backend = "student"`` and
``pose.student_dir = DIR``. Training needs torch (``pip install torch==2.13.0``, the CPU build).
Exit codes: 0 done; 1 a failure named on stderr (unreadable video, no people, mismatched checkpoint,
no torch).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from gaitwatch.daemon.settings import ConfigError, Settings
from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings, PoseModelError
from gaitwatch.pose.offline.distill import (
    CACHE_FILE,
    CHECKPOINT_FILE,
    CollectSettings,
    DistillData,
    DistillError,
    TrainSettings,
    agreement,
    collect,
    evaluate_export,
    export,
    measure_speed,
    split,
    torch_predict,
    train,
    video_info,
)
from gaitwatch.pose.student import StudentSpec, StudentUnavailableError, require_torch
from gaitwatch.pose.student_backend import METADATA_FILE, StudentModelError

# Crops timed for the speed figures (the bench's minimum is 100).
SPEED_CROPS = 150

# Network sizes (StudentSpec widths, blocks, decoder width). Measured on one core here: "small" 0.77 M
# parameters, ~1 ms of inference per crop, ~8 ms per training sample; "base" 1.73 M, ~2.3 ms, ~15 ms. On the
# held-out part of vtest.avi after 20 epochs, base agreed with the teacher at PCK@0.1 0.852 (ankles 0.769),
# small at 0.802 (0.736).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "small": {"widths": (16, 24, 48, 96), "blocks": (2, 3, 4), "decoder_width": 32},
    "base": {"widths": (16, 32, 64, 160), "blocks": (2, 4, 6), "decoder_width": 64},
}
DEFAULT_MODEL = "base"

# Validation figures during training every this many epochs (each pass costs a few seconds of CPU).
VALIDATE_EVERY = 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``distill`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "distill",
        help="train a fast pose student from BlazePose on your own unlabelled video (needs torch)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t = TrainSettings()
    p.add_argument("videos", type=Path, nargs="+", metavar="VIDEO", help="unlabelled video files of the site")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="student, cache and checkpoint go here")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the figures as JSON here")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue the run checkpointed in DIR")
    resume.add_argument("--fresh", action="store_true", help="discard DIR's checkpoint and train afresh")
    p.add_argument("--recollect", action="store_true", help="re-run the teacher even if DIR has its targets")
    p.add_argument("--collect-only", action="store_true", help="stop after caching the teacher targets")
    p.add_argument("--fps", type=float, default=None, help="the cameras' true frame rate if containers misreport")
    p.add_argument("--config", type=Path, default=None, help="daemon config: use its detector and tracker")
    p.add_argument("--teacher", choices=("full", "lite"), default="full", help="BlazePose teacher (default full)")
    p.add_argument("--split", choices=("auto", "time", "video"), default="auto", help="how to hold out data")
    p.add_argument("--val-fraction", type=float, default=0.3, help="held-out share (default 0.3)")
    p.add_argument("--input", default="128x96", metavar="HxW", help="student crop size (default 128x96)")
    p.add_argument(
        "--model",
        choices=sorted(MODEL_PRESETS),
        default=DEFAULT_MODEL,
        help=f"student network size (default {DEFAULT_MODEL}; small trains ~2x faster, agrees less)",
    )
    p.add_argument("--epochs", type=int, default=t.epochs, help=f"training epochs (default {t.epochs})")
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument("--learning-rate", type=float, default=t.learning_rate)
    p.add_argument("--alpha", type=float, default=t.alpha, help="FPD teacher/ground-truth balance")
    p.add_argument("--threads", type=int, default=t.threads, help="torch threads (default 1: see docs)")
    p.add_argument("--seed", type=int, default=t.seed)
    p.set_defaults(func=run_distill)


def _fail(message: str) -> int:
    sys.stderr.write(f"gaitwatch distill: {message}\n")
    return 1


class ProgressBar:
    """Progress on stderr: a redrawn bar on a terminal; in a log, a line per epoch and per 10% collected."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._started: dict[str, float] = {}
        self._last_tenth: dict[str, int] = {}
        self._last_call = time.monotonic()

    def __call__(self, stage: str, done: int, total: int, note: str) -> None:
        now = time.monotonic()
        # A stage began when the previous event happened (its first report comes some work later).
        start = self._started.setdefault(stage, self._last_call)
        self._last_call = now
        frac = done / total if total else 1.0
        eta = (now - start) * (1.0 - frac) / frac if frac > 0 else math.nan
        if stage == "epoch":
            self._stream.write(("\r\x1b[K" if self._tty else "") + f"epoch {done}/{total}: {note}\n")
        elif self._tty:
            filled = int(30 * frac)
            self._stream.write(
                f"\r\x1b[K{stage} [{'#' * filled}{'.' * (30 - filled)}] {100 * frac:5.1f}% "
                f"{done}/{total} eta {eta / 60:.1f} min {note}"
            )
            if done >= total:
                self._stream.write("\n")
        else:
            tenth = int(10 * frac)
            if tenth > self._last_tenth.get(stage, -1) and stage == "collect":
                self._last_tenth[stage] = tenth
                self._stream.write(f"{stage}: {100 * frac:.0f}% ({done}/{total}) eta {eta / 60:.1f} min {note}\n")
        self._stream.flush()


def _parse_input(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"--input must look like 128x96 (height x width); got {text!r}") from exc
    return h, w


def _pipeline_settings(args: argparse.Namespace) -> Settings:
    """The daemon settings the collection pipeline is built from: the site's config when given, else defaults."""
    from gaitwatch.tools.cmd_record import offline_settings

    return offline_settings(args.config, Path(args.videos[0]))


def _cached(path: Path, videos: list[Path], spec: StudentSpec, fps: float | None) -> DistillData | None:
    if not path.is_file():
        return None
    try:
        data = DistillData.load(path)
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"gaitwatch distill: ignoring unreadable cache {path} ({exc})\n")
        return None
    wanted = [video_info(v, fps) for v in videos]
    if list(data.videos) != wanted or data.spec_geometry != (
        spec.input_height,
        spec.input_width,
        spec.roi_scale,
    ):
        sys.stderr.write(f"gaitwatch distill: {path} was collected from other videos or crops; collecting again\n")
        return None
    return data


def run_distill(args: argparse.Namespace) -> int:
    """Entry point of ``distill``; returns the process exit code."""
    # The pipeline (and scipy with it) is imported here: the command module itself loads without them.
    from gaitwatch.tools.recorder import VideoReadError, pipeline_run

    try:
        h, w = _parse_input(args.input)
        spec = StudentSpec(input_height=h, input_width=w, **MODEL_PRESETS[args.model])
        train_settings = TrainSettings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            alpha=args.alpha,
            threads=args.threads,
            seed=args.seed,
        )
    except ValueError as exc:
        return _fail(str(exc))
    if not args.collect_only:
        try:
            require_torch()  # fail before minutes of collection, not after
        except StudentUnavailableError as exc:
            return _fail(str(exc))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT_FILE
    if checkpoint.is_file() and not (args.resume or args.fresh or args.collect_only):
        return _fail(f"{checkpoint} exists: pass --resume to continue that run or --fresh to start over")
    progress = ProgressBar(sys.stderr)
    began = time.perf_counter()
    try:
        pipeline_settings = _pipeline_settings(args)
        collect_settings = CollectSettings(fps=args.fps)
        teacher = BlazePoseBackend(BlazePoseSettings(model=args.teacher))
        cache = out / CACHE_FILE
        data = None if args.recollect else _cached(cache, list(args.videos), spec, args.fps)
        collect_minutes = 0.0
        if data is None:
            data = collect(args.videos, spec, teacher, pipeline_run(pipeline_settings), collect_settings, progress)
            data.save(cache)
            collect_minutes = (time.perf_counter() - began) / 60.0
        parts = split(data, args.val_fraction, args.split)
        sys.stdout.write(
            f"data: {len(data)} crops ({int(data.person.sum())} with a person) "
            f"from {len(data.videos)} video(s); "
            f"train {len(parts.train)}, validation {len(parts.val)} ({parts.description})\n"
        )
        if args.collect_only:
            return 0
        if args.fresh and checkpoint.is_file():
            checkpoint.unlink()

        val_crops = data.subset(parts.val).nominal_crops(spec)

        def evaluate(net: Any) -> dict[str, float]:
            agree = agreement(data, parts.val, spec, torch_predict(net, val_crops, spec))
            r = agree.all[0.1]
            return {"val_pck_0.1": r.overall, "val_ankles_0.1": r.groups["ankles"]}

        result = train(
            data,
            parts.train,
            spec,
            train_settings,
            checkpoint,
            args.resume,
            evaluate,
            progress,
            evaluate_every=VALIDATE_EVERY,
        )
        metadata: dict[str, Any] = {
            "teacher": {
                "name": teacher.name,
                "model_version": teacher.model_version,
                "second_pass": teacher.settings.uses_second_pass,
                "roi_scale": teacher.settings.roi_scale,
                "model_file": teacher.model_path.name,
            },
            "data": {
                "videos": [{"path": v.path, "bytes": v.size, "frames": v.frames, "fps": v.fps} for v in data.videos],
                "crops": len(data),
                "people": int(data.person.sum()),
                "split": parts.kind,
                "split_description": parts.description,
                "val_fraction": args.val_fraction,
                "train_crops": len(parts.train),
                "val_crops": len(parts.val),
                "detector": pipeline_settings.detector.kind,
                "detect_interval_s": pipeline_settings.detector.interval_s,
                "provenance": "trained on the frames of the videos above; the weights inherit their terms of use",
            },
            "training": {
                "epochs": result.epochs,
                "minutes": round(result.minutes, 2),
                "settings": asdict(train_settings),
                "history": result.history,
                "loss": "FPD: alpha * MSE(student, teacher heatmaps) + (1 - alpha) * MSE(student, labels); "
                "no labels on unlabelled video, so the teacher term alone",
            },
        }
        metadata_path = export(result.net, spec, out, metadata)
        agree = evaluate_export(out, data, parts.val)
        person_rows = parts.val[data.presence[parts.val] >= 0.5]
        if len(person_rows) == 0:
            person_rows = parts.train[data.presence[parts.train] >= 0.5]
        frame = _first_frame(Path(data.videos[0].path))
        rng = np.random.default_rng(0)
        boxes = data.box[rng.choice(person_rows, size=min(SPEED_CROPS, len(person_rows)), replace=False)]
        student_ms, teacher_ms = measure_speed(out, teacher, frame, boxes)
    except (
        ConfigError,
        DistillError,
        PoseModelError,
        StudentModelError,
        StudentUnavailableError,
        VideoReadError,
        ValueError,
        OSError,
    ) as exc:
        return _fail(str(exc))
    report = _report(agree.as_dict(), student_ms, teacher_ms, result.minutes, collect_minutes, out)
    meta = json.loads(metadata_path.read_text(encoding="utf-8"))
    meta["validation"] = report
    metadata_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(_table(report))
    return 0


def _first_frame(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]]:
    cap = cv2.VideoCapture(str(path))
    ok, image = cap.read()
    cap.release()
    if not ok:
        raise DistillError(f"cannot read a frame of {path}")
    return np.asarray(image, dtype=np.uint8)


def _report(
    agree: dict[str, Any],
    student_ms: float,
    teacher_ms: float,
    train_minutes: float,
    collect_minutes: float,
    out: Path,
) -> dict[str, Any]:
    p1, p05 = agree["pck_0.1"], agree["pck_0.05"]
    return {
        "pck_0.1_overall": p1["overall"],
        "pck_0.1_ankles": p1["ankles"],
        "pck_0.05_overall": p05["overall"],
        "pck_0.05_ankles": p05["ankles"],
        "student_ms": round(student_ms, 3),
        "teacher_ms": round(teacher_ms, 3),
        "speedup": round(teacher_ms / student_ms, 2) if student_ms > 0 else None,
        "train_minutes": round(train_minutes, 2),
        "collect_minutes": round(collect_minutes, 2),
        "student_dir": str(out.resolve()),
        "metadata": str((out / METADATA_FILE).resolve()),
        "agreement": agree,
    }


def _table(report: dict[str, Any]) -> str:
    agree = report["agreement"]
    lines = [
        f"student vs teacher on {agree['people']} held-out people (PCK of the box's longer side):",
        f"{'':18}{'PCK@0.05':>10}{'PCK@0.1':>10}",
    ]
    joints = list(agree["pck_0.1"]["per_joint"])
    for row in ["overall", "ankles", "knees", "hips", "wrists", *joints]:
        cells = []
        for key in ("pck_0.05", "pck_0.1"):
            r = agree[key]
            v = r.get(row, r["per_joint"].get(row)) if row not in r["per_joint"] else r["per_joint"][row]
            cells.append(("—" if v is None else f"{v:.3f}").rjust(10))
        lines.append(row.ljust(18) + "".join(cells))
    lines.append(
        f"distill: pck_0.1_overall={report['pck_0.1_overall']} pck_0.1_ankles={report['pck_0.1_ankles']} "
        f"student_ms={report['student_ms']} teacher_ms={report['teacher_ms']} "
        f"train_minutes={report['train_minutes']}"
    )
    return "\n".join(lines) + "\n"
