"""Pose cost per crop: BlazePose full and lite on one LiteRT thread, including ROI extraction, and a distilled
student when one exists.

    .venv/bin/python bench/pose_speed.py [--crops 200] [--video ../shared/data/video/vtest.avi]
        [--student /tmp/gaitwatch-student]

Times ``BlazePoseBackend.run_roi`` (warp + colour conversion + inference + mapping back) on person-sized
boxes; prints the median and 90th percentile per crop, crops per second on one core, and the cost per person
with the default second pass, then ends with ``pose_speed: full_ms=X lite_ms=Y`` (median ms per crop).
If ``--student DIR`` holds a student (``gaitwatch distill --out DIR``) that this machine can run, the same
boxes go one per call through ``StudentBackend.estimate`` on one thread (warp + inference + decoding +
mapping back) and the last line gains ``student_ms=Z``; the cost per crop when four people share a batch is
printed too. Without a video it uses a generated 768x576 frame (inference time does not depend on the
picture). Shared machines make single runs noisy: compare medians, not best cases.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings, ModelVariant
from gaitwatch.pose.roi import roi_from_box
from gaitwatch.pose.student_backend import StudentBackend, StudentModelError, StudentSettings

# Where the README's `gaitwatch distill` command writes its student.
DEFAULT_STUDENT = Path("/tmp/gaitwatch-student")


def _frame(video: Path | None) -> NDArray[np.uint8]:
    if video is not None and video.is_file():
        cap = cv2.VideoCapture(str(video))
        ok, frame = cap.read()
        cap.release()
        if ok:
            return np.asarray(frame, dtype=np.uint8)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(576, 768, 3), dtype=np.uint8)


def _boxes(frame: NDArray[np.uint8], n: int) -> NDArray[np.float64]:
    """Person-shaped boxes (40-300 px tall) spread over the frame, some crossing its edge."""
    rng = np.random.default_rng(1)
    h = rng.uniform(40.0, 300.0, n)
    w = h * rng.uniform(0.35, 0.5, n)
    x = rng.uniform(-0.2 * w, frame.shape[1] - 0.8 * w)
    y = rng.uniform(-0.1 * h, frame.shape[0] - 0.9 * h)
    return np.stack([x, y, x + w, y + h], axis=1)


def time_model(model: ModelVariant, frame: NDArray[np.uint8], boxes: NDArray[np.float64]) -> list[float]:
    """Milliseconds per crop for each box, after a warm-up."""
    backend = BlazePoseBackend(BlazePoseSettings(model=model, num_threads=1))
    for box in boxes[:10]:
        backend.run_roi(frame, roi_from_box(box))
    out = []
    for box in boxes:
        start = time.perf_counter()
        backend.run_roi(frame, roi_from_box(box))
        out.append(1000.0 * (time.perf_counter() - start))
    return out


def time_student(
    student_dir: Path, frame: NDArray[np.uint8], boxes: NDArray[np.float64]
) -> tuple[list[float], list[float]] | None:
    """Milliseconds per crop of the student (one box per call, and four per call), or None without one."""
    try:
        backend = StudentBackend(StudentSettings(student_dir, num_threads=1))
    except StudentModelError as exc:
        print(f"student: not timed ({exc})")
        return None
    ids1 = np.zeros(1, dtype=np.int64)
    for box in boxes[:10]:
        backend.estimate(frame, ids1, box[None])
    single = []
    for box in boxes:
        start = time.perf_counter()
        backend.estimate(frame, ids1, box[None])
        single.append(1000.0 * (time.perf_counter() - start))
    ids4 = np.arange(4, dtype=np.int64)
    batched = []
    for i in range(0, len(boxes) - 3, 4):
        start = time.perf_counter()
        backend.estimate(frame, ids4, boxes[i : i + 4])
        batched.append(1000.0 * (time.perf_counter() - start) / 4)
    return single, batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=200, help="crops per model (>= 100)")
    parser.add_argument("--video", type=Path, default=Path("../shared/data/video/vtest.avi"))
    parser.add_argument(
        "--student", type=Path, default=DEFAULT_STUDENT, help="student directory (timed if it holds one)"
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core: the warp must not borrow OpenCV's thread pool
    frame = _frame(args.video)
    boxes = _boxes(frame, max(args.crops, 100))
    medians: dict[str, float] = {}
    for model in ("full", "lite"):
        ms = time_model(model, frame, boxes)
        med = statistics.median(ms)
        p90 = float(np.percentile(ms, 90))
        medians[model] = med
        passes = 2 if BlazePoseSettings(model=model).uses_second_pass else 1
        per_person = passes * med
        print(
            f"{model}: {med:.2f} ms/crop median, {p90:.2f} ms p90 over {len(ms)} crops, "
            f"{1000.0 / med:.0f} crops/s on one core; default config ({passes} pass(es)) "
            f"{per_person:.1f} ms/person = {1000.0 / per_person:.0f} people/s/core"
        )
    last = f"pose_speed: full_ms={medians['full']:.2f} lite_ms={medians['lite']:.2f}"
    if (args.student / "student.json").is_file():
        timed = time_student(args.student, frame, boxes)
        if timed is not None:
            single, batched = timed
            med = statistics.median(single)
            print(
                f"student: {med:.2f} ms/crop median, {float(np.percentile(single, 90)):.2f} ms p90 over "
                f"{len(single)} crops, {1000.0 / med:.0f} crops/s on one core (one pass per person); "
                f"{statistics.median(batched):.2f} ms/crop in batches of 4; "
                f"{medians['full'] / med:.1f}x faster than full per crop"
            )
            last += f" student_ms={med:.2f}"
    print(last)


if __name__ == "__main__":
    main()
