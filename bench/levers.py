"""The performance levers of the pipeline, each measured on and off against the default in one process.

Usage: ``python bench/levers.py [VIDEO] [--frames N] [--fps F] [--reference DETS] [--only NAME,...]`` (default
../shared/data/video/vtest.avi, its first 280 frames at its real 7 fps, and its Faster R-CNN detections). Frames are
decoded once and fed to a fresh pipeline per variant, so every variant sees the same images; CPU time is the
process's own (time.process_time), so other load on the machine inflates all variants alike and the ratios against
the default stay meaningful. "covered" is the share of the reference detector's people (MOT det rows scored >= 0.5)
that a posed track's box overlaps (IoU > 0.4) in the same frame: what a cheaper setting loses. Ends with one line
per lever: ``lever: NAME cpu_ratio=X people_ratio=Y covered=Z``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.types import Frame

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "detect every frame": {"detector": {"interval_s": 0.0}},
    "detect every 0.25 s": {"detector": {"interval_s": 0.25}},
    "no lower pose rate when still": {"pose": {"stationary_rate_hz": 15.0}},
    "lite model": {"pose": {"model": "lite"}},
    "second pass always": {"pose": {"second_pass": "on"}},
    "second pass off": {"pose": {"second_pass": "off"}},
    "HOG at upscale 1.0": {"detector": {"hog": {"upscale": 1.0}}},
    "HOG pyramid step 1.2": {"detector": {"hog": {"scale": 1.2}}},
    "whole frame at every detection": {"detector": {"full_frame_interval_s": 0.0}},
    "whole frame every 1 s": {"detector": {"full_frame_interval_s": 1.0}},
    "HOG on the grey image": {"detector": {"hog": {"grayscale": True}}},
    "no recovery crops": {"detector": {"recovery_crops_per_frame": 0}},
    "one recovery crop": {"detector": {"recovery_crops_per_frame": 1}},
}
REFERENCE_MIN_SCORE = 0.5
COVERED_IOU = 0.4


def read_reference(path: Path | None) -> dict[int, np.ndarray]:
    """Reference person boxes (xyxy) by 0-based frame index, from a MOT det file (1-based frame numbers)."""
    if path is None or not path.is_file():
        return {}
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    rows = rows[rows[:, 6] >= REFERENCE_MIN_SCORE]
    boxes = np.c_[rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
    frames = rows[:, 0].astype(int) - 1
    return {int(f): boxes[frames == f] for f in np.unique(frames)}


def run_variant(
    frames: list[np.ndarray], fps: float, overrides: dict[str, Any], cv_threads: int, reference: dict[int, np.ndarray]
) -> dict[str, float]:
    settings = parse_settings({"cameras": [{"id": "bench", "source": "video"}], **overrides})
    shared = SharedModels(settings, inference_threads=1)
    cv2.setNumThreads(cv_threads)  # after SharedModels, which sets the daemon's choice
    pipeline = build_camera_pipeline("bench", settings, shared)
    people = covered = expected = 0
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    for seq, image in enumerate(frames):
        result = pipeline.process(Frame("bench", seq, seq / fps, image))
        people += len(result.poses)
        truth = reference.get(seq)
        if truth is not None and len(truth):
            expected += len(truth)
            posed = result.tracks.xyxy[np.isin(result.tracks.ids, result.poses.track_ids)]
            if len(posed):
                covered += int(np.sum(iou_matrix(truth, posed).max(axis=1) > COVERED_IOU))
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
    n = len(frames)
    return {
        "cpu_ms_per_frame": 1000 * cpu / n,
        "wall_ms_per_frame": 1000 * wall / n,
        "people_per_frame": people / n,
        "covered": covered / expected if expected else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path, nargs="?", default=Path("../shared/data/video/vtest.avi"))
    parser.add_argument("--frames", type=int, default=280)
    parser.add_argument("--fps", type=float, default=7.0)
    parser.add_argument(
        "--reference", type=Path, default=Path("../shared/data/video/vtest_PETS09-S2L1_det.txt"), help="MOT det file"
    )
    parser.add_argument("--only", default="", help="comma-separated variant names to run besides the default")
    args = parser.parse_args()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - set(VARIANTS) - {"OpenCV 2 threads"}
    if unknown:
        raise SystemExit(f"unknown variant(s) {sorted(unknown)}; choose from {[*VARIANTS, 'OpenCV 2 threads']}")
    reference = read_reference(args.reference)
    capture = cv2.VideoCapture(str(args.video))
    frames = []
    for _ in range(args.frames):
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    if not frames:
        raise SystemExit(f"cannot read frames from {args.video}")

    # Colour conversion and copies: what converting whole frames would cost, against crops only.
    image = frames[0]
    started = time.perf_counter()
    for _ in range(50):
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32)
    full_frame_ms = 1000 * (time.perf_counter() - started) / 50
    crop = np.ascontiguousarray(image[:256, :256])
    started = time.perf_counter()
    for _ in range(50):
        cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)
    crop_ms = 1000 * (time.perf_counter() - started) / 50
    print(
        f"colour conversion to float RGB: full {image.shape[1]}x{image.shape[0]} frame {full_frame_ms:.2f} ms, "
        f"256x256 crop {crop_ms:.2f} ms (gaitwatch converts crops only)"
    )

    results: dict[str, dict[str, float]] = {}
    for name, overrides in VARIANTS.items():
        if name == "default" or not wanted or name in wanted:
            results[name] = run_variant(frames, args.fps, overrides, cv_threads=1, reference=reference)
    if not wanted or "OpenCV 2 threads" in wanted:
        results["OpenCV 2 threads"] = run_variant(frames, args.fps, {}, cv_threads=2, reference=reference)
    base = results["default"]
    print(f"\n{'variant':32} {'cpu ms/frame':>12} {'wall ms/frame':>13} {'people/frame':>12} {'covered':>8}")
    for name, r in results.items():
        print(
            f"{name:32} {r['cpu_ms_per_frame']:12.1f} {r['wall_ms_per_frame']:13.1f} {r['people_per_frame']:12.2f} "
            f"{r['covered']:8.3f}"
        )
    print()
    for name, r in results.items():
        if name == "default":
            continue
        print(
            f"lever: {name.replace(' ', '_')} cpu_ratio={r['cpu_ms_per_frame'] / base['cpu_ms_per_frame']:.2f} "
            f"people_ratio={r['people_per_frame'] / max(base['people_per_frame'], 1e-9):.2f} covered={r['covered']:.3f}"
        )


if __name__ == "__main__":
    main()
