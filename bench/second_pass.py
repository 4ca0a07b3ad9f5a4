"""How often the aligned second pose pass runs on the boxes the daemon really poses, and what skipping it costs.

    .venv/bin/python bench/second_pass.py [--frames 300] [--video ../shared/data/video/vtest.avi] [--fps 7]

Runs the daemon's own camera pipeline (default settings: detector on its schedule, tracker, pose-derived boxes
between detections, verification and recovery crops) over the first ``--frames`` frames and records every box
it sends to the pose model. Then the default pose model poses those boxes again with the second pass always on
(the reference) and with ``skip_aligned_below`` at several thresholds, and prints per threshold the model runs
per box (1 = first pass only; wide boxes add two lying hypotheses), the second-pass share, the thread CPU and
the agreement with always-on (PCK at 0.05 and 0.1 of the box's longer side, people the reference finds). The
thresholds take turns on the same boxes, so a neighbour's load hits them alike.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings, CropLandmarks
from gaitwatch.pose.keypoints import Landmark
from gaitwatch.pose.roi import Roi
from gaitwatch.pose.types import Poses
from gaitwatch.tracking.types import Frame

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.15, 0.2, 0.25, 0.3)


@dataclass(frozen=True)
class Posed:
    frame: int
    xyxy: NDArray[np.float64]


def pipeline_boxes(video: Path, frames: int, fps: float) -> tuple[list[NDArray[np.uint8]], list[Posed]]:
    """The frames and every box the daemon's pipeline sends to the pose model on them."""
    settings = parse_settings({"cameras": [{"id": "bench", "source": str(video)}]}, "<defaults>")
    shared = SharedModels(settings, inference_threads=1)
    images: list[NDArray[np.uint8]] = []
    posed: list[Posed] = []
    estimate = shared.pose.estimate

    def recording(image: NDArray[np.uint8], ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
        posed.append(Posed(len(images) - 1, np.array(xyxy, dtype=np.float64)))
        return estimate(image, ids, xyxy)

    shared.pose.estimate = recording  # type: ignore[method-assign,assignment]
    pipeline = build_camera_pipeline("bench", settings, shared)
    capture = cv2.VideoCapture(str(video))
    try:
        for index in range(frames):
            ok, raw = capture.read()
            if not ok:
                break
            images.append(np.asarray(raw, dtype=np.uint8))
            pipeline.process(Frame("bench", index, index / fps, images[-1]))
    finally:
        capture.release()
    return images, posed


class CountingBackend(BlazePoseBackend):
    """The default pose backend counting its model runs."""

    runs = 0

    def run_rois(self, image: NDArray[np.uint8], rois: Sequence[Roi]) -> list[CropLandmarks]:
        self.runs += len(rois)
        return super().run_rois(image, rois)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared" / "data" / "video" / "vtest.avi")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--fps", type=float, default=7.0)
    args = parser.parse_args()
    images, posed = pipeline_boxes(args.video, args.frames, args.fps)
    boxes = sum(len(p.xyxy) for p in posed)
    names = ["always", *(f"{t:g}" for t in THRESHOLDS), "off"]
    backends = {
        name: CountingBackend(BlazePoseSettings(skip_aligned_below=t))
        for name, t in zip(names, (0.0, *THRESHOLDS, 0.0), strict=True)
    }
    backends["off"] = CountingBackend(BlazePoseSettings(second_pass="off"))
    results: dict[str, list[Poses]] = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    for p in posed:
        ids = np.arange(len(p.xyxy), dtype=np.int64)
        for name, backend in backends.items():
            started = time.thread_time()
            results[name].append(backend.estimate(images[p.frame], ids, p.xyxy))
            cpu[name] += time.thread_time() - started
    first_only = backends["off"].runs / boxes
    print(f"second_pass: {len(images)} frames of {args.video.name}, {boxes} boxes posed by the pipeline")
    for name in names:
        errors = []
        for p, ref, got in zip(posed, results["always"], results[name], strict=True):
            side = np.maximum(p.xyxy[:, 2] - p.xyxy[:, 0], p.xyxy[:, 3] - p.xyxy[:, 1])
            dist = np.linalg.norm(got.keypoints[:, :, :2] - ref.keypoints[:, :, :2], axis=2) / side[:, None]
            errors.append(dist[ref.presence >= 0.5])
        err = np.concatenate(errors)
        ankles = err[:, [Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE]]
        runs = backends[name].runs / boxes
        print(
            f"  skip_aligned_below {name:>6}: model runs per box {runs:.3f} (second pass on "
            f"{runs - first_only:.1%} of boxes), thread CPU {cpu[name] / cpu['always']:.2f}x always-on; "
            f"agreement with always-on PCK@0.05 {(err < 0.05).mean():.3f}, PCK@0.1 {(err < 0.1).mean():.3f} "
            f"(ankles {(ankles < 0.1).mean():.3f})"
        )


if __name__ == "__main__":
    main()
