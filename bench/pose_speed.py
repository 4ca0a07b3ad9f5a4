"""Pose cost per crop: BlazePose full, lite and full-int8 on one LiteRT thread, including ROI extraction, and a
distilled student when one exists; and how closely full-int8 agrees with the float full model on real people.

    .venv/bin/python bench/pose_speed.py [--crops 200] [--video ../shared/data/video/vtest.avi]
        [--student /tmp/gaitwatch-student]

Times ``BlazePoseBackend.run_roi`` (warp + colour conversion + inference + mapping back) on person-sized
boxes; prints the median and 90th percentile per crop, crops per second on one core, and the cost per person
with the default second pass. The models take turns crop by crop, so a neighbour's load on a shared machine
hits them alike. If ``--student DIR`` holds a student (``gaitwatch distill --out DIR``) that this machine can
run, the same boxes go one per call through ``StudentBackend.estimate`` on one thread (warp + inference +
decoding + mapping back), with the cost per crop when four people share a batch. Without a video it uses a
generated 768x576 frame (inference time does not depend on the picture).

With the video and its detections (``vtest_PETS09-S2L1_det.txt`` beside it), full-int8 and float full run the
whole per-person path (``estimate``: first pass, aligned second pass, lying hypotheses) on the detector boxes
of the last 30% of the video, which ``scripts/build_pose_int8.py`` does not calibrate on, and the agreement
is PCK of full-int8 against full at 0.05 and 0.1 of the box's longer side (people full finds, presence >= 0.5).

A breakdown of one crop follows for full and full-int8, in thread CPU time (``run_roi_profiled``): the warp that
cuts the crop, feeding it to the model (colour order, int8 or float), the model's invoke, and decoding its
outputs to frame pixels; what is not the model is what ``run_roi`` can still cut without touching the model.

The per-person cost of the default model on the video's detector boxes (whole ``estimate`` path) is then timed
two ways in turns, frame by frame: one ``estimate`` call for all people of the frame (each pass runs for all of
them at once, see ``BlazePoseBackend.run_rois``) and one call per person.

Ends with ``pose_speed: full_ms=X lite_ms=Y [student_ms=S] default_ms=Z default_vs_full=R``: median ms per
crop, the default model being ``BlazePoseSettings().model`` and R = full_ms / default_ms. Shared machines
make single runs noisy: compare medians, not best cases.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import NDArray

from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings, ModelVariant, packaged_model_path
from gaitwatch.pose.graph_surgery import pruned_float_model
from gaitwatch.pose.keypoints import Landmark
from gaitwatch.pose.roi import extract_crop, roi_from_box
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


MODELS: tuple[ModelVariant, ...] = ("full", "lite", "full-int8")
# Agreement uses the part of the video the int8 build does not calibrate on (scripts/build_pose_int8.py).
HELD_OUT_FROM = 0.7
AGREEMENT_EVERY = 5  # frames


def time_models(
    models: tuple[ModelVariant, ...], frame: NDArray[np.uint8], boxes: NDArray[np.float64]
) -> dict[ModelVariant, list[float]]:
    """Milliseconds per crop for each model and box, after a warm-up; the models take turns box by box."""
    backends = {m: BlazePoseBackend(BlazePoseSettings(model=m, num_threads=1)) for m in models}
    for backend in backends.values():
        for box in boxes[:10]:
            backend.run_roi(frame, roi_from_box(box))
    out: dict[ModelVariant, list[float]] = {m: [] for m in models}
    for box in boxes:
        roi = roi_from_box(box)
        for model, backend in backends.items():
            start = time.perf_counter()
            backend.run_roi(frame, roi)
            out[model].append(1000.0 * (time.perf_counter() - start))
    return out


def graph_surgery_gain(frame: NDArray[np.uint8], boxes: NDArray[np.float64]) -> str:
    """The model's invoke alone, as MediaPipe ships full and lite and as the backend runs them (pruned to the
    outputs gaitwatch reads, ``gaitwatch.pose.graph_surgery``); the two take turns crop by crop."""
    parts = []
    for model in ("full", "lite"):
        shipped = packaged_model_path(model).read_bytes()
        ms: dict[str, list[float]] = {"shipped": [], "pruned": []}
        interps = {}
        for name, blob in (("shipped", shipped), ("pruned", pruned_float_model(shipped))):
            interp = Interpreter(model_content=blob, num_threads=1)
            interp.allocate_tensors()
            interps[name] = interp
        index = int(interps["shipped"].get_input_details()[0]["index"])
        for box in boxes:
            crop = extract_crop(frame, roi_from_box(box))
            x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)[None].astype(np.float32) / 255.0
            for name, interp in interps.items():
                interp.set_tensor(index, x)
                start = time.perf_counter()
                interp.invoke()
                ms[name].append(1000.0 * (time.perf_counter() - start))
        before, after = statistics.median(ms["shipped"]), statistics.median(ms["pruned"])
        parts.append(f"{model} {before:.2f} -> {after:.2f} ms ({before / after:.2f}x)")
    return "graph surgery (invoke alone, as shipped -> as run, pruned to the outputs read): " + ", ".join(parts)


def stage_breakdown(model: ModelVariant, frame: NDArray[np.uint8], boxes: NDArray[np.float64]) -> str:
    """Median thread CPU milliseconds of each stage of one ``run_roi`` (see the module docstring)."""
    backend = BlazePoseBackend(BlazePoseSettings(model=model, num_threads=1))
    for box in boxes[:10]:
        backend.run_roi(frame, roi_from_box(box))
    stages: dict[str, list[float]] = {"warp": [], "feed": [], "invoke": [], "decode": []}
    for box in boxes:
        _, times = backend.run_roi_profiled(frame, roi_from_box(box))
        for name, seconds in (
            ("warp", times.warp),
            ("feed", times.feed),
            ("invoke", times.invoke),
            ("decode", times.decode),
        ):
            stages[name].append(1000.0 * seconds)
    med = {name: statistics.median(ms) for name, ms in stages.items()}
    total = sum(med.values())
    parts = ", ".join(f"{name} {ms:.3f} ms ({ms / total:.0%})" for name, ms in med.items())
    return f"breakdown {model} (thread CPU, median per crop over {len(boxes)} crops): {parts}"


def agreement(video: Path, detections: Path, model: ModelVariant) -> str:
    """PCK of ``model`` against float full on the held-out part of ``video`` (see the module docstring)."""
    det = np.loadtxt(detections, delimiter=",")
    reference = BlazePoseBackend(BlazePoseSettings(model="full", num_threads=1))
    candidate = BlazePoseBackend(BlazePoseSettings(model=model, num_threads=1))
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    start = int(HELD_OUT_FROM * frames)
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    errors = []
    for index in range(start, frames):
        ok, raw = cap.read()
        if not ok:
            break
        frame = np.asarray(raw, dtype=np.uint8)
        rows = det[(det[:, 0] == index + 1) & (det[:, 6] > 0.5)]  # MOT frame numbers are 1-based
        if index % AGREEMENT_EVERY or len(rows) == 0:
            continue
        xyxy = np.c_[rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]].astype(np.float64)
        ids = np.arange(len(rows), dtype=np.int64)
        ref = reference.estimate(frame, ids, xyxy)
        got = candidate.estimate(frame, ids, xyxy)
        side = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        dist = np.linalg.norm(got.keypoints[:, :, :2] - ref.keypoints[:, :, :2], axis=2) / side[:, None]
        errors.append(dist[ref.presence >= 0.5])
    cap.release()
    err = np.concatenate(errors)
    ankles = err[:, [Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE]]
    return (
        f"agreement: {model} vs full on {len(err)} people (last {1.0 - HELD_OUT_FROM:.0%} of {video.name}, every "
        f"{AGREEMENT_EVERY}th frame, detector boxes, second pass as configured): PCK@0.05 {(err < 0.05).mean():.3f}, "
        f"PCK@0.1 {(err < 0.1).mean():.3f} (ankles {(ankles < 0.1).mean():.3f}), median error "
        f"{np.median(err):.4f} of the box's longer side"
    )


def per_person_grouping(video: Path, detections: Path, model: ModelVariant) -> str:
    """Thread CPU ms per person of ``estimate``: all people of a frame in one call vs one call per person."""
    det = np.loadtxt(detections, delimiter=",")
    backend = BlazePoseBackend(BlazePoseSettings(model=model, num_threads=1))
    cap = cv2.VideoCapture(str(video))
    grouped = single = 0.0
    people = index = 0
    while True:
        ok, raw = cap.read()
        if not ok:
            break
        index += 1
        rows = det[(det[:, 0] == index) & (det[:, 6] > 0.5)]  # MOT frame numbers are 1-based
        if index % AGREEMENT_EVERY or len(rows) == 0:
            continue
        frame = np.asarray(raw, dtype=np.uint8)
        xyxy = np.c_[rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]].astype(np.float64)
        ids = np.arange(len(rows), dtype=np.int64)
        for grouped_first in (index % 2 == 0, index % 2 != 0):  # alternate which goes first
            start = time.thread_time()
            if grouped_first:
                backend.estimate(frame, ids, xyxy)
                grouped += time.thread_time() - start
            else:
                for i in range(len(rows)):
                    backend.estimate(frame, ids[i : i + 1], xyxy[i : i + 1])
                single += time.thread_time() - start
        people += len(rows)
    cap.release()
    return (
        f"per person ({model}, whole estimate path, {people} detector boxes of every {AGREEMENT_EVERY}th frame of "
        f"{video.name}, thread CPU): {1000.0 * grouped / people:.2f} ms with one call per frame, "
        f"{1000.0 * single / people:.2f} ms with one call per person ({1.0 - grouped / single:.1%} less)"
    )


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
    for model, ms in time_models(MODELS, frame, boxes).items():
        med = statistics.median(ms)
        p90 = float(np.percentile(ms, 90))
        medians[model] = med
        passes = 2 if BlazePoseSettings(model=model).uses_second_pass else 1
        per_person = passes * med
        print(
            f"{model}: {med:.2f} ms/crop median, {p90:.2f} ms p90 over {len(ms)} crops, "
            f"{1000.0 / med:.0f} crops/s on one core; {passes} pass(es) on every person "
            f"{per_person:.1f} ms/person = {1000.0 / per_person:.0f} people/s/core"
        )
    print(f"full-int8 vs full: {medians['full'] / medians['full-int8']:.2f}x faster per crop")
    print(graph_surgery_gain(frame, boxes))
    for model in ("full", "full-int8"):
        print(stage_breakdown(model, frame, boxes))
    detections = args.video.parent / "vtest_PETS09-S2L1_det.txt"
    if args.video.name == "vtest.avi" and args.video.is_file() and detections.is_file():
        print(agreement(args.video, detections, "full-int8"))
        print(per_person_grouping(args.video, detections, BlazePoseSettings().model))
    else:
        print(f"agreement: not measured ({args.video} or {detections} not found)")
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
    default = BlazePoseSettings().model
    last += f" default_ms={medians[default]:.2f} default_vs_full={medians['full'] / medians[default]:.2f}"
    print(last)


if __name__ == "__main__":
    main()
