"""BlazePose GHUM landmark model (MediaPipe Pose, Apache-2.0) run directly with ai-edge-litert on box crops.

No MediaPipe graph is involved: we cut a square ROI around each tracked person's box (see ``roi.py``), run
the 256 x 256 landmark model once per person, and map its landmarks back to frame pixels. The person
detector stage of MediaPipe is replaced by our tracker's boxes.

One :class:`BlazePoseBackend` owns one LiteRT interpreter, which is not thread-safe: create one backend per
inference thread and call it only from that thread (the daemon runs every camera's crops through one such
thread).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args

import cv2
import numpy as np
from annotated_types import Interval
from numpy.typing import NDArray

from gaitwatch.pose.graph_surgery import LANDMARK_OUTPUTS, GraphSurgeryError, pruned_float_model
from gaitwatch.pose.keypoints import NUM_LANDMARKS
from gaitwatch.pose.roi import (
    DEFAULT_ROI_SCALE,
    MODEL_INPUT_SIZE,
    Roi,
    extract_crop,
    roi_from_alignment,
    roi_from_box,
)
from gaitwatch.pose.types import Poses

ModelVariant = Literal["full", "lite", "full-int8"]

# "full-int8" is derived from "full" by scripts/build_pose_int8.py (outputs gaitwatch never reads pruned,
# post-training int8 quantization; provenance in models/NOTICE.md).
_MODEL_FILES: dict[str, str] = {
    "full": "pose_landmark_full.tflite",
    "lite": "pose_landmark_lite.tflite",
    "full-int8": "pose_landmark_full_int8.tflite",
}
# Variants of the full landmark model, for which the aligned second pass pays off.
_FULL_VARIANTS = ("full", "full-int8")

# The model emits 39 points: the 33 BlazePose landmarks, then 6 auxiliary points. Auxiliary point 0 (row 33)
# is the body centre between the hips and point 1 (row 34) lies above the head; together they span half of
# the body's bounding circle and are what MediaPipe uses to place the next frame's ROI.
_NUM_POINTS = 39
_AUX_CENTRE = 33
_AUX_TOP = 34

# Output tensors by name (their index order differs between model files and converter versions); the three read,
# as graph_surgery.LANDMARK_OUTPUTS lists them:
_OUT_LANDMARKS = "Identity"  # [1, 195] = 39 x (x, y, z, visibility logit, presence logit)
_OUT_PRESENCE = "Identity_1"  # [1, 1] probability that the crop holds a person
_OUT_WORLD = "Identity_4"  # [1, 117] = 39 x (x, y, z) metres, origin between the hips


# The second pass is skipped only where the first pass is sure there is no person (backgrounds score about
# 0.000). Partly hidden or cut-off people often score 0.1-0.5 on the first pass and gain the most from the
# aligned crop: gating at 0.5 instead lost a third of the measured gain; gating at 0 let 2% instead of 1% of
# real background boxes through the 0.5 presence floor.
_SECOND_PASS_MIN_PRESENCE = 0.05


class PoseModelError(RuntimeError):
    """The pose model file is missing, unreadable or not the expected BlazePose landmark model."""


@dataclass(frozen=True, slots=True)
class BlazePoseSettings:
    """Knobs of the BlazePose backend.

    ``model``: "full-int8" (default) is the full model without its segmentation and heatmap outputs and with
    int8 weights and activations except its stem, its smallest layers and its heads (built from "full" by
    scripts/build_pose_int8.py, no retraining): about 2.5x faster per crop than "full" on one core here
    (bench/pose_speed.py) at the same accuracy on the shared sets (COCO PCK@0.1 0.840 vs 0.834, ankles
    0.762 both; MPII PCKh 0.964 vs 0.946) and PCK@0.1 0.99 against "full" on held-out vtest people.
    "full" is the original float model (about 11-15 ms per crop on an idle core); "lite" saves about 20%
    of full's time and loses accuracy mostly on ankles and wrists.
    ``num_threads``: LiteRT threads for one crop. Two threads were not faster on these small models on a
    2-core PC, and every thread taken here is taken from the camera readers and the tracker; keep 1 unless
    measured otherwise on the target PC.
    ``roi_scale``: side of the square crop as a multiple of the box's longer side; see ``roi_from_box``.
    ``second_pass``: run the model a second time on an ROI re-centred on the hips and turned upright from
    the first pass's alignment points (the ROI BlazePose's own tracker would use, which matches the crops
    it was trained on). Doubles the cost per person. Measured on the shared COCO/CrowdPose/PoseTrack/MPII
    people (pose README): with the full model it raises PCK@0.1 from 0.68 to 0.73 on ground-truth boxes and
    from 0.64 to 0.73 on boxes jittered like a detector's (ankles 0.58 -> 0.68); with the lite model it
    does not help (ankles get worse). "auto" therefore means on for "full", off for "lite".
    ``skip_aligned_below``: skip the second pass when the first pass's aligned ROI is already this close to the
    box ROI (``misalignment``: centre offset in ROI sides + rotation in quarter turns + log size ratio): the
    second crop would be nearly the same and so would its answer. Measured with the full model on the shared
    sets (PCK@0.1, ankles): always on COCO 0.829 (0.762), CrowdPose 0.769, PoseTrack18 0.584 (0.450); with
    0.15: COCO 0.834 (0.762), CrowdPose 0.744, PoseTrack18 0.597 (0.550); off: COCO 0.785 (0.667). On the boxes
    the daemon poses on vtest.avi (``bench/second_pass.py``) 16% get the second pass: 1.22 model runs per box
    instead of 2.02 always-on; 0.2 would make it 1.12 at agreement with always-on PCK@0.1 0.962 instead of 0.972.
    0 = always run it.
    ``alignment_scale``: side of the second-pass ROI as a multiple of the alignment circle's diameter;
    1.25 is MediaPipe's value and measured best among 1.1-1.4.
    ``lying_hypotheses``: for a box wider than tall (someone lying in bed or on the floor), also run the
    first pass on the ROI turned by +-90 degrees and keep the most confident of the three. The model only
    knows upright people: on the shared COCO people turned by 90 degrees, PCK@0.1 rose from 0.13-0.14 to
    0.58-0.62 with it (full model, second pass on). Costs two extra crops per wide box; upright boxes are
    unaffected.
    ``replicate_border``: fill the part of a crop beyond the frame edge with the edge pixels instead of black.
    ``model_path``: use this .tflite file instead of the packaged one (e.g. a site's re-exported model).
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    model: ModelVariant = "full-int8"
    num_threads: Annotated[int, Interval(ge=1, le=16)] = 1
    roi_scale: Annotated[float, Interval(ge=1.0, le=2.5)] = DEFAULT_ROI_SCALE
    second_pass: Literal["auto", "on", "off"] = "auto"
    alignment_scale: float = DEFAULT_ROI_SCALE
    skip_aligned_below: float = 0.15
    lying_hypotheses: bool = True
    replicate_border: bool = False
    model_path: Path | None = None

    def __post_init__(self) -> None:
        if self.model not in _MODEL_FILES:
            raise ValueError(f"BlazePoseSettings.model must be one of {sorted(_MODEL_FILES)}; got {self.model!r}")
        if self.num_threads < 1:
            raise ValueError(f"BlazePoseSettings.num_threads must be >= 1; got {self.num_threads}")
        if not (math.isfinite(self.roi_scale) and 0.5 <= self.roi_scale <= 4.0):
            raise ValueError(f"BlazePoseSettings.roi_scale must be in [0.5, 4]; got {self.roi_scale}")
        if not (math.isfinite(self.alignment_scale) and 0.5 <= self.alignment_scale <= 4.0):
            raise ValueError(f"BlazePoseSettings.alignment_scale must be in [0.5, 4]; got {self.alignment_scale}")
        if self.second_pass not in ("auto", "on", "off"):
            raise ValueError(f"BlazePoseSettings.second_pass must be auto, on or off; got {self.second_pass!r}")

    @property
    def uses_second_pass(self) -> bool:
        """Whether the aligned second pass runs ("auto": only for the full model, where it helps)."""
        if self.second_pass == "auto":
            return self.model in _FULL_VARIANTS
        return self.second_pass == "on"


@dataclass(frozen=True, slots=True)
class CropLandmarks:
    """The model's answer for one ROI, already mapped to frame pixels.

    ``keypoints`` (33, 3): x, y frame pixels and visibility in [0, 1]; ``world`` (33, 3) metres in frame
    orientation; ``presence`` in [0, 1]; ``aux`` (6, 2) the auxiliary points in frame pixels (row 0 body
    centre, row 1 above the head); ``roi`` the region the model saw.
    """

    keypoints: NDArray[np.float32]
    world: NDArray[np.float32]
    presence: float
    aux: NDArray[np.float64]
    roi: Roi

    def alignment_roi(self, scale: float = DEFAULT_ROI_SCALE) -> Roi:
        """The upright ROI BlazePose would use next: centred on the hips, turned along the body axis."""
        return roi_from_alignment(self.aux[0], self.aux[1], scale)


@dataclass(frozen=True, slots=True)
class CropStageTimes:
    """Thread CPU seconds of one ``run_roi``: cutting the crop out of the frame (``warp``), writing it into the
    model's input as RGB (``feed``), the model itself (``invoke``) and mapping its outputs back to frame pixels
    (``decode``)."""

    warp: float
    feed: float
    invoke: float
    decode: float


def misalignment(current: Roi, aligned: Roi) -> float:
    """How far an ROI is from the aligned one the model asks for: centre offset in ROI sides, plus rotation in
    quarter turns, plus the log ratio of sides. 0 means the second pass would see the same crop."""
    offset = math.hypot(aligned.cx - current.cx, aligned.cy - current.cy) / current.side
    turn = abs(math.remainder(aligned.angle - current.angle, 2.0 * math.pi)) / (0.5 * math.pi)
    return offset + turn + abs(math.log(aligned.side / current.side))


def model_variant(name: str) -> ModelVariant:
    """``name`` as a model variant; ValueError naming the choices when it is none (command-line input)."""
    for variant in get_args(ModelVariant):
        if name == variant:
            return cast(ModelVariant, variant)
    raise ValueError(f"unknown pose model {name!r}; choose from {', '.join(get_args(ModelVariant))}")


def packaged_model_path(model: ModelVariant) -> Path:
    """Path of the packaged model file (package data of ``gaitwatch.pose``; no download ever happens)."""
    resource = importlib.resources.files("gaitwatch.pose").joinpath("models", _MODEL_FILES[model])
    return Path(str(resource))


def _input_quantization(detail: dict[str, Any], path: Path, hint: str) -> Literal["float", "pixel-128"]:
    """How crops are fed: float RGB in [0, 1], or int8 with scale 1/255 and zero point -128 (pixel - 128)."""
    dtype = detail["dtype"]
    if dtype == np.float32:
        return "float"
    scale, zero_point = detail["quantization"]
    if dtype == np.int8 and abs(float(scale) * 255.0 - 1.0) < 1e-4 and int(zero_point) == -128:
        return "pixel-128"
    raise PoseModelError(
        f"pose model file {path} takes {np.dtype(dtype).name} input with scale {scale} and zero point "
        f"{zero_point}; gaitwatch feeds float32 RGB in [0, 1] or int8 of scale 1/255 and zero point -128 "
        f"(as scripts/build_pose_int8.py builds); {hint}"
    )


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    # Bounded below so exp never overflows on extreme logits (the model emits about +-20 at most, but be safe);
    # a ufunc, not np.clip, whose Python wrapper costs more than the 33 exponentials here.
    return np.asarray(1.0 / (1.0 + np.exp(-np.maximum(x, np.float32(-60.0)))), dtype=np.float32)


def _decode(points: NDArray[np.float32], world_raw: NDArray[np.float32], presence: float, roi: Roi) -> CropLandmarks:
    """The model's raw outputs for ``roi`` as a :class:`CropLandmarks` in frame pixels (``crop_to_frame`` and
    ``rotate_world`` written out for one crop: this runs for every crop and numpy's per-call cost dominates)."""
    k = roi.side / MODEL_INPUT_SIZE
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    half = 0.5 * MODEL_INPUT_SIZE
    u = points[:, 0].astype(np.float64) - half
    v = points[:, 1].astype(np.float64) - half
    xy = np.empty((_NUM_POINTS, 2), dtype=np.float64)
    xy[:, 0] = (k * c) * u - (k * s) * v + roi.cx
    xy[:, 1] = (k * s) * u + (k * c) * v + roi.cy
    keypoints = np.empty((NUM_LANDMARKS, 3), dtype=np.float32)
    keypoints[:, :2] = xy[:NUM_LANDMARKS]
    keypoints[:, 2] = _sigmoid(points[:NUM_LANDMARKS, 3])
    world = np.empty((NUM_LANDMARKS, 3), dtype=np.float32)
    if roi.angle == 0.0:
        world[:] = world_raw
    else:
        # World landmarks are in the crop's axes: turn x-y by the ROI angle, as ``rotate_world`` does.
        wx = world_raw[:, 0].astype(np.float64)
        wy = world_raw[:, 1].astype(np.float64)
        world[:, 0] = c * wx - s * wy
        world[:, 1] = s * wx + c * wy
        world[:, 2] = world_raw[:, 2]
    return CropLandmarks(
        keypoints=keypoints,
        world=world,
        presence=min(max(presence, 0.0), 1.0),
        aux=xy[NUM_LANDMARKS:],
        roi=roi,
    )


class BlazePoseBackend:
    """BlazePose full/lite landmark model behind the ``PoseBackend`` protocol.

    Not thread-safe: the interpreter is reused for every crop, so one instance belongs to one inference
    thread. Crops are processed one by one: the model's batch size is 1, and resizing its input to a batch
    of 4 was slower per crop than 4 single calls on one core (measured with the pruned full model: 18 vs
    16 ms/crop), so batching is no lever here.

    A model file that also computes outputs gaitwatch never reads (MediaPipe's full and lite models: a
    segmentation mask and heatmaps) runs pruned to the three it reads (``graph_surgery``), in memory: same
    landmarks, less time. ``pruned`` says whether that happened; ``model_version`` names the file as shipped.
    """

    def __init__(self, settings: BlazePoseSettings | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter  # heavy import, only when a backend is made

        self.settings = settings if settings is not None else BlazePoseSettings()
        path = self.settings.model_path or packaged_model_path(self.settings.model)
        self.model_path = Path(path)
        hint = (
            "reinstall gaitwatch (the BlazePose models ship inside the package under gaitwatch/pose/models/) "
            "or point pose.model_path at a BlazePose GHUM landmark .tflite file"
        )
        if not self.model_path.is_file():
            raise PoseModelError(f"pose model file not found: {self.model_path}; {hint}")
        try:
            blob = self.model_path.read_bytes()
            interp: Any = Interpreter(model_content=blob, num_threads=self.settings.num_threads)
            interp.allocate_tensors()
        except (OSError, ValueError, RuntimeError) as exc:
            raise PoseModelError(f"pose model file {self.model_path} cannot be loaded ({exc}); {hint}") from exc
        self.pruned = False
        if {str(d["name"]) for d in interp.get_output_details()} > set(LANDMARK_OUTPUTS):
            # The segmentation mask and heatmap heads are never read: without them the same landmarks come out
            # 1.5x (full) to 2x (lite) faster (see graph_surgery). A graph the surgery cannot handle (several
            # subgraphs) runs as it is: slower, same landmarks.
            try:
                graph = pruned_float_model(blob)
                interp = Interpreter(model_content=graph, num_threads=self.settings.num_threads)
                interp.allocate_tensors()
                self.pruned = True
            except GraphSurgeryError:
                pass
        self._interp = interp
        inputs = interp.get_input_details()
        shape = tuple(int(v) for v in inputs[0]["shape"]) if len(inputs) == 1 else ()
        if shape != (1, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3):
            raise PoseModelError(
                f"pose model file {self.model_path} has input {shape}, expected "
                f"(1, {MODEL_INPUT_SIZE}, {MODEL_INPUT_SIZE}, 3); {hint}"
            )
        self._input_index = int(inputs[0]["index"])
        # RGB scratch crop for float models (int8 models are fed in place, see _feed).
        self._rgb = np.empty((MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3), dtype=np.uint8)
        self._input_quantization = _input_quantization(inputs[0], self.model_path, hint)
        outputs = {str(d["name"]): int(d["index"]) for d in interp.get_output_details()}
        missing = [n for n in (_OUT_LANDMARKS, _OUT_PRESENCE, _OUT_WORLD) if n not in outputs]
        if missing:
            raise PoseModelError(
                f"pose model file {self.model_path} lacks outputs {missing} (has {sorted(outputs)}); {hint}"
            )
        self._out_landmarks = outputs[_OUT_LANDMARKS]
        self._out_presence = outputs[_OUT_PRESENCE]
        self._out_world = outputs[_OUT_WORLD]
        quantized = sorted(str(d["name"]) for d in interp.get_output_details() if d["dtype"] != np.float32)
        if quantized:
            raise PoseModelError(
                f"pose model file {self.model_path} has non-float outputs {quantized}; gaitwatch reads float "
                f"landmarks (scripts/build_pose_int8.py keeps the output heads float); {hint}"
            )
        self._model_version = f"{self.model_path.stem}@{hashlib.sha256(blob).hexdigest()[:12]}"
        self._name = f"blazepose-{self.settings.model}" if self.settings.model_path is None else "blazepose"

    @property
    def name(self) -> str:
        return self._name

    @property
    def model_version(self) -> str:
        return self._model_version

    def run_roi(self, image: NDArray[np.uint8], roi: Roi) -> CropLandmarks:
        """Run the model once on ``roi`` of the BGR frame ``image``; landmarks come back in frame pixels."""
        crop = extract_crop(image, roi, MODEL_INPUT_SIZE, replicate_border=self.settings.replicate_border)
        self._feed(crop)
        self._interp.invoke()
        return self._decode_outputs(roi)

    def run_roi_profiled(self, image: NDArray[np.uint8], roi: Roi) -> tuple[CropLandmarks, CropStageTimes]:
        """``run_roi`` with the thread CPU time of each of its stages (for bench/pose_speed.py)."""
        t0 = time.thread_time()
        crop = extract_crop(image, roi, MODEL_INPUT_SIZE, replicate_border=self.settings.replicate_border)
        t1 = time.thread_time()
        self._feed(crop)
        t2 = time.thread_time()
        self._interp.invoke()
        t3 = time.thread_time()
        result = self._decode_outputs(roi)
        t4 = time.thread_time()
        return result, CropStageTimes(warp=t1 - t0, feed=t2 - t1, invoke=t3 - t2, decode=t4 - t3)

    def _decode_outputs(self, roi: Roi) -> CropLandmarks:
        return _decode(*self._raw_outputs(), roi)

    def _raw_outputs(self) -> tuple[NDArray[np.float32], NDArray[np.float32], float]:
        """Copies of the last invoke's landmarks (39, 5), world landmarks (33, 3) and presence."""
        points = self._interp.get_tensor(self._out_landmarks).reshape(_NUM_POINTS, 5)
        world_raw = self._interp.get_tensor(self._out_world).reshape(_NUM_POINTS, 3)[:NUM_LANDMARKS]
        presence = float(self._interp.get_tensor(self._out_presence).reshape(-1)[0])
        return points, world_raw, presence

    def _feed(self, crop: NDArray[np.uint8]) -> None:
        """Write the BGR crop into the interpreter's input tensor as RGB, without an intermediate copy."""
        # Colour conversion on the 256x256 crop only: converting the full frame would cost more than the warp.
        # tensor() is a view of the interpreter's own buffer; it must be dropped before invoke().
        target = self._interp.tensor(self._input_index)()[0]
        if self._input_quantization == "pixel-128":
            # int8 input of scale 1/255, zero point -128: pixel p is p - 128, the same bits as p XOR 0x80.
            rgb = target.view(np.uint8)
            cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=rgb)
            np.bitwise_xor(rgb, np.uint8(0x80), out=rgb)
        else:
            rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=self._rgb)
            np.multiply(rgb, np.float32(1.0 / 255.0), out=target)
        del target

    def run_rois(self, image: NDArray[np.uint8], rois: Sequence[Roi]) -> list[CropLandmarks]:
        """``run_roi`` on several ROIs of one frame, stage by stage: every crop is cut first, then the model runs
        on them back to back, then every answer is decoded. The answers are run_roi's, bit for bit; the CPU
        time is about 2% lower (0.12-0.16 ms per crop measured with full-int8, groups of 5): the model's
        invoke sweeps megabytes of weights through the caches, and the warp and decoding code no longer pay
        to reload what it evicted after every crop, nor the model after every warp."""
        crops = [
            extract_crop(image, roi, MODEL_INPUT_SIZE, replicate_border=self.settings.replicate_border) for roi in rois
        ]
        raw: list[tuple[NDArray[np.float32], NDArray[np.float32], float]] = []
        for crop in crops:
            self._feed(crop)
            self._interp.invoke()
            raw.append(self._raw_outputs())  # get_tensor copies: the next invoke does not overwrite them
        return [_decode(points, world, presence, roi) for (points, world, presence), roi in zip(raw, rois, strict=True)]

    def estimate_one(self, image: NDArray[np.uint8], xyxy: NDArray[np.float64]) -> CropLandmarks:
        """One person: first pass on the box's ROI, then optionally the aligned second pass."""
        return self._estimate_boxes(image, np.asarray(xyxy, dtype=np.float64)[None])[0]

    def _estimate_boxes(self, image: NDArray[np.uint8], xyxy: NDArray[np.float64]) -> list[CropLandmarks]:
        """Every box of one frame, each pass over all of them at once (``run_rois``).

        Per box: the first pass on the box's ROI (and, for a box wider than tall, on that ROI turned by +90 and
        -90 degrees, keeping the most confident in that order), then the aligned second pass unless the first
        found nobody or its aligned ROI is already close (see ``BlazePoseSettings``)."""
        s = self.settings
        rois = [roi_from_box(box, s.roi_scale) for box in xyxy]
        hypotheses: list[tuple[int, Roi]] = [(i, roi) for i, roi in enumerate(rois)]
        if s.lying_hypotheses:
            for i, (roi, box) in enumerate(zip(rois, xyxy, strict=True)):
                if box[2] - box[0] > box[3] - box[1]:
                    hypotheses += [(i, Roi(roi.cx, roi.cy, roi.side, a)) for a in (0.5 * math.pi, -0.5 * math.pi)]
        answers = self.run_rois(image, [roi for _, roi in hypotheses])
        best: list[CropLandmarks] = answers[: len(rois)]
        for (i, _), turned in zip(hypotheses[len(rois) :], answers[len(rois) :], strict=True):
            if turned.presence > best[i].presence:
                best[i] = turned
        if not s.uses_second_pass:
            return best
        second: list[tuple[int, Roi]] = []
        for i, first in enumerate(best):
            if first.presence < _SECOND_PASS_MIN_PRESENCE:
                continue
            aligned = first.alignment_roi(s.alignment_scale)
            if misalignment(first.roi, aligned) >= s.skip_aligned_below:
                second.append((i, aligned))
        for (i, _), result in zip(second, self.run_rois(image, [roi for _, roi in second]), strict=True):
            best[i] = result
        return best

    def estimate(self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
        """See ``PoseBackend.estimate``: one row per box, in input order."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"estimate expects a uint8 HxWx3 BGR image; got {image.dtype} {image.shape}")
        n = int(track_ids.shape[0])
        if track_ids.shape != (n,) or xyxy.shape != (n, 4):
            raise ValueError(f"estimate expects track_ids (N,) and xyxy (N, 4); got {track_ids.shape} and {xyxy.shape}")
        if n == 0:
            return Poses.empty()
        keypoints = np.empty((n, NUM_LANDMARKS, 3), dtype=np.float32)
        world = np.empty((n, NUM_LANDMARKS, 3), dtype=np.float32)
        presence = np.empty(n, dtype=np.float32)
        for i, result in enumerate(self._estimate_boxes(image, np.asarray(xyxy, dtype=np.float64))):
            keypoints[i] = result.keypoints
            world[i] = result.world
            presence[i] = result.presence
        return Poses(np.asarray(track_ids, dtype=np.int64).copy(), keypoints, world, presence)
