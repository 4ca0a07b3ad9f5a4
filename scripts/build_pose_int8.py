"""Build ``pose/models/pose_landmark_full_int8.tflite`` (``[pose] model = "full-int8"``) from the shipped float model.

The shipped BlazePose GHUM full landmark model is left untouched; this script derives a second file from it
without any retraining, in three steps:

1. Graph surgery (lossless): the model's float16 weights are expanded to float32 (its DEQUANTIZE ops removed)
   and the graph is pruned to the three outputs gaitwatch reads (landmarks ``Identity``, presence
   ``Identity_1``, world landmarks ``Identity_4``). The segmentation mask (256x256) and heatmap (64x64x39)
   branches are dropped: they cost about half of the model's time on one core and gaitwatch never reads them.
   The pruned float graph gives bit-identical landmarks.
2. Calibration on real person crops, cut exactly as the daemon cuts them (``roi_from_box`` + ``extract_crop``),
   each with the aligned second-pass ROI the float model asks for: the detector boxes of the first 70% of
   vtest.avi (the last 30% is kept for the agreement check in ``bench/pose_speed.py``), and the people HOG
   finds in the two short street clips beside it (sharper, larger people than vtest's). The shared keypoint
   sets (COCO, MPII, ...) are never used: they are the accuracy test. The crops are not committed; the
   ``crops`` step writes them to a scratch file.
3. Post-training integer quantization (int8 weights per channel, int8 activations) with ``ai-edge-quantizer``'s
   ``static_wi8_ai8`` recipe and min/max ranges, except where int8 measurably hurt (``float_op_scopes``): the
   stem (the first 11 ops: the 128x128 block and the first 64x64 block), every op at 4x4 or less, and the
   output heads stay float. Measured (COCO PCK@0.1 with ground-truth boxes, float full 0.834; agreement
   with float full on held-out vtest crops, one pass): all-int8 with vtest-only calibration 0.702 / 0.93;
   float 5-op stem + float <= 4x4 + float heads 0.768 / 0.983; + clip crops 0.807 / 0.987; 11-op stem
   0.840 / 0.996, about 10% slower than all-int8. The input is given the fixed range [0, 1] so that a pixel
   p maps exactly to the int8 value p - 128 (no calibration-dependent clipping of bright pixels).

``ai-edge-quantizer`` pins its own ``ai-edge-litert`` and must not go into the daemon's venv: steps 1 and 3 run
in a throw-away venv, the ``crops`` step in the project's venv (it uses gaitwatch's own ROI code, detector and
float model)::

    python3 -m venv /tmp/qvenv && /tmp/qvenv/bin/pip install ai-edge-quantizer==0.10.0
    .venv/bin/python scripts/build_pose_int8.py crops --out /tmp/pose_calibration.npz
    /tmp/qvenv/bin/python scripts/build_pose_int8.py quantize --calibration /tmp/pose_calibration.npz

Built here with ai-edge-quantizer 0.10.0 / ai-edge-litert 2.3.0; the result's sha256 is in
``pose/models/NOTICE.md``. ``quantize --float-stem-ops N --out FILE`` builds a variant with only the first N ops
float (default 11, the shipped model) for measuring; pose/README.md has the figures of 3, 5, 8, 9 and 10.
Exit codes: 0 built, 1 missing or unreadable input (named on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "pose" / "models"
FLOAT_MODEL = MODELS / "pose_landmark_full.tflite"
INT8_MODEL = MODELS / "pose_landmark_full_int8.tflite"
SHARED_VIDEO = REPO.parent / "shared" / "data" / "video"
# Output heads and their reshapes (by output tensor name), which stay float.
FLOAT_HEADS = r"convld_3d|convworld_3d|poseflag|^Identity"
# The stem: the 128x128 block and the first 64x64 block up to its residual add (11 ops).
FLOAT_STEM_OPS = 11
# Ops whose output map is this small or smaller stay float: most of the weights, under 3% of the MACs.
FLOAT_MAX_SIDE = 4
# Calibration uses the part of the video before this fraction; the rest is held out for agreement checks.
CALIBRATION_UNTIL = 0.7


class BuildError(RuntimeError):
    """An input of the build is missing or not what the build expects."""


# ---------------------------------------------------------------------------------------------------------
# Step 2: calibration crops (project venv: gaitwatch's ROI code and the float model)


def calibration_crops(video: Path, detections: Path, every: int, per_frame: int) -> np.ndarray[Any, Any]:
    """RGB uint8 crops (N, 256, 256, 3): box ROIs and their aligned second-pass ROIs from the calibration part."""
    import cv2

    from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings
    from gaitwatch.pose.roi import MODEL_INPUT_SIZE, extract_crop, roi_from_box

    if not video.is_file() or not detections.is_file():
        raise BuildError(f"calibration needs {video} and {detections} (the shared data folder beside the repo)")
    det = np.loadtxt(detections, delimiter=",")
    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    float_model = BlazePoseBackend(BlazePoseSettings(model="full"))
    crops: list[np.ndarray[Any, Any]] = []
    for index in range(int(CALIBRATION_UNTIL * frames)):
        ok, frame = cap.read()
        if not ok:
            break
        if index % every:
            continue
        rows = det[(det[:, 0] == index + 1) & (det[:, 6] > 0.5)][:per_frame]  # MOT frame numbers are 1-based
        for row in rows:
            x, y, w, h = row[2:6]
            roi = roi_from_box(np.array([x, y, x + w, y + h], dtype=np.float64))
            rois = [roi]
            first = float_model.run_roi(frame, roi)
            if first.presence > 0.5:
                rois.append(first.alignment_roi())
            for r in rois:
                crops.append(cv2.cvtColor(extract_crop(frame, r, MODEL_INPUT_SIZE), cv2.COLOR_BGR2RGB))
    cap.release()
    if not crops:
        raise BuildError(f"no detections found for the first frames of {video} in {detections}")
    return np.stack(crops).astype(np.uint8)


def clip_crops(clips: list[Path]) -> list[np.ndarray[Any, Any]]:
    """RGB crops of the people HOG finds in every frame of ``clips`` (and the float model confirms)."""
    import cv2

    from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings
    from gaitwatch.pose.roi import MODEL_INPUT_SIZE, extract_crop, roi_from_box
    from gaitwatch.tracking.hog import HogPersonDetector

    detector = HogPersonDetector()
    float_model = BlazePoseBackend(BlazePoseSettings(model="full"))
    crops: list[np.ndarray[Any, Any]] = []
    for clip in clips:
        if not clip.is_file():
            raise BuildError(f"calibration clip not found: {clip}")
        cap = cv2.VideoCapture(str(clip))
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            for box in detector.detect(np.asarray(frame, dtype=np.uint8)).xyxy:
                roi = roi_from_box(box)
                first = float_model.run_roi(frame, roi)
                if first.presence < 0.5:
                    continue  # a HOG false alarm: not a person crop the daemon would keep
                for r in (roi, first.alignment_roi()):
                    crops.append(cv2.cvtColor(extract_crop(frame, r, MODEL_INPUT_SIZE), cv2.COLOR_BGR2RGB))
        cap.release()
    return crops


# ---------------------------------------------------------------------------------------------------------
# Step 1: graph surgery on the flatbuffer (gaitwatch/pose/graph_surgery.py, loaded by path: it needs only numpy,
# flatbuffers and ai_edge_litert's schema, and gaitwatch is not installed in the quantizer's venv)


@functools.cache
def _graph_surgery() -> Any:
    spec = importlib.util.spec_from_file_location("graph_surgery", REPO / "pose" / "graph_surgery.py")
    if spec is None or spec.loader is None:
        raise BuildError(f"cannot load {REPO / 'pose' / 'graph_surgery.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pruned_float_model(source: bytes) -> bytes:
    """The float model with float32 weights, only the outputs gaitwatch reads, and a signature for calibration."""
    surgery = _graph_surgery()
    try:
        pruned: bytes = surgery.pruned_float_model(source)
    except surgery.GraphSurgeryError as exc:
        raise BuildError(str(exc)) from exc
    return pruned


# ---------------------------------------------------------------------------------------------------------
# Step 3: quantization (throw-away venv with ai-edge-quantizer)


def float_op_scopes(float_model: bytes, float_stem_ops: int = FLOAT_STEM_OPS) -> list[str]:
    """Output tensor names of the ops that stay float (see step 3 in the module docstring)."""
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(float_model, 0)).subgraphs[0]
    scopes = []
    for index, op in enumerate(graph.operators):
        output = graph.tensors[op.outputs[0]]
        name = output.name.decode()
        shape = [int(v) for v in output.shape]
        small = len(shape) == 4 and shape[1] <= FLOAT_MAX_SIDE
        # The heads stay float so the landmark output is not one int8 scale shared by pixels, depths and logits
        # (steps of about 1.3 crop pixels and 1.3 visibility logits).
        if index < float_stem_ops or small or re.search(FLOAT_HEADS, name):
            scopes.append(name)
    return scopes


def quantize(float_model: bytes, crops: np.ndarray[Any, Any], float_stem_ops: int = FLOAT_STEM_OPS) -> bytes:
    """Integer model calibrated on ``crops`` (RGB uint8), float where ``float_op_scopes`` says."""
    from ai_edge_quantizer import calibrator, quantizer, recipe
    from ai_edge_quantizer.utils import qsv_utils

    qt = quantizer.Quantizer(bytearray(float_model))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    for scope in float_op_scopes(float_model, float_stem_ops):
        # An op's scope is its output tensor names joined (and ended) by ";".
        qt.update_quantization_recipe(
            regex="^" + re.escape(scope) + "(;|$)",
            operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
            algorithm_key="no_quantize",
        )
    input_name = "input_1"
    samples = [{input_name: crop[None].astype(np.float32) / 255.0} for crop in crops]
    # Ranges are the plain min/max over all crops, not the quantizer's default moving average: the average
    # shrinks ranges towards the typical (blurry, small) vtest person, and sharp close-up photos then clip
    # (COCO PCK@0.1 0.779 with the moving average, 0.807 with min/max, same float ops). Quantizer.calibrate
    # does not take the update rule, so its Calibrator is driven directly with the quantizer's recipe.
    calib = calibrator.Calibrator(bytearray(float_model), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    # The signature the pruned graph carries (step 1).
    calib.calibrate({_graph_surgery().SIGNATURE: samples}, qt._recipe_manager)
    stats = calib.get_model_qsvs()
    if input_name not in stats:
        raise BuildError(f"calibration has no statistics for {input_name!r}; tensors: {sorted(stats)[:5]}...")
    # Pixels are 0..255 / 255: with the range [0, 1] the int8 input is exactly pixel - 128.
    stats[input_name] = {"min": np.zeros_like(stats[input_name]["min"]), "max": np.ones_like(stats[input_name]["max"])}
    return bytes(qt.quantize(stats).quantized_model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    crops_p = sub.add_parser("crops", help="write calibration crops (run with the project's venv)")
    crops_p.add_argument("--video", type=Path, default=SHARED_VIDEO / "vtest.avi")
    crops_p.add_argument("--detections", type=Path, default=SHARED_VIDEO / "vtest_PETS09-S2L1_det.txt")
    crops_p.add_argument("--every", type=int, default=6, help="use every Nth frame")
    crops_p.add_argument("--per-frame", type=int, default=3, help="at most this many boxes per frame")
    crops_p.add_argument(
        "--clips",
        type=Path,
        nargs="*",
        default=[SHARED_VIDEO / "mmpose_demo.mp4", SHARED_VIDEO / "mmtracking_demo.mp4"],
        help="short clips of sharper, larger people (HOG boxes, every frame)",
    )
    crops_p.add_argument("--out", type=Path, required=True, help=".npz to write (not committed)")
    quant_p = sub.add_parser("quantize", help="build the int8 model (run with the ai-edge-quantizer venv)")
    quant_p.add_argument("--calibration", type=Path, required=True, help=".npz written by the crops step")
    quant_p.add_argument("--float-model", type=Path, default=FLOAT_MODEL)
    quant_p.add_argument("--out", type=Path, default=INT8_MODEL)
    quant_p.add_argument(
        "--float-stem-ops",
        type=int,
        default=FLOAT_STEM_OPS,
        help=f"leading ops of the pruned graph kept float (default {FLOAT_STEM_OPS}, the shipped model; fewer is "
        "faster and less accurate, see pose/README.md)",
    )
    args = parser.parse_args(argv)
    try:
        if args.step == "crops":
            if args.every < 1 or args.per_frame < 1:
                parser.error("--every and --per-frame must be >= 1")
            crops = calibration_crops(args.video, args.detections, args.every, args.per_frame)
            extra = clip_crops(list(args.clips))
            if extra:
                crops = np.concatenate([crops, np.stack(extra).astype(np.uint8)])
            np.savez_compressed(args.out, crops=crops)
            sys.stdout.write(f"wrote {len(crops)} calibration crops to {args.out}\n")
            return 0
        if args.float_stem_ops < 0:
            parser.error("--float-stem-ops must be >= 0")
        if not args.calibration.is_file():
            raise BuildError(f"calibration crops not found: {args.calibration} (run the crops step first)")
        if not args.float_model.is_file():
            raise BuildError(f"float model not found: {args.float_model}")
        crops = np.load(args.calibration)["crops"]
        pruned = pruned_float_model(args.float_model.read_bytes())
        model = quantize(pruned, crops, args.float_stem_ops)
        args.out.write_bytes(model)
        sys.stdout.write(
            f"wrote {args.out} ({len(model)} bytes, sha256 {hashlib.sha256(model).hexdigest()}) from "
            f"{args.float_model.name} (sha256 {hashlib.sha256(args.float_model.read_bytes()).hexdigest()}) "
            f"calibrated on {len(crops)} crops\n"
        )
        return 0
    except (BuildError, OSError, KeyError, ValueError) as exc:
        sys.stderr.write(f"build_pose_int8: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
