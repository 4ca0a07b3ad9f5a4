"""A site-supplied ONNX person detector run through onnxruntime, behind ``PersonDetector``.

Expected model layout (the common single-output YOLO export with NMS-free or built-in-NMS heads):

* one input, shape ``(1, 3, H, W)`` float32: the frame converted to RGB, scaled to [0, 1], and letterboxed
  to ``W x H`` (resized keeping its aspect ratio, centred, padded with grey 114/255). ``H`` and ``W`` come
  from the model; if they are symbolic, ``OnnxDetectorSettings.input_size`` must give them.
* one output (the first, if there are several), shape ``(1, N, 6)`` float32, one row per candidate box:
  ``x1, y1, x2, y2, score, class`` with corners in input (letterboxed) pixels, ``score`` in [0, 1] and
  ``class`` the class index (``person_class``, 0 for COCO-trained models). ``N`` may be dynamic.

Boxes are mapped back through the letterbox to frame pixels, filtered by class and score, and NMS is applied
(harmless for models that already did it). onnxruntime (a core dependency since NanoDet ships) is imported only
when a detector is made: it is heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from annotated_types import Interval
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import nms
from gaitwatch.tracking.types import Detections

_PAD_VALUE = 114  # YOLO convention: mid-grey padding, which the models were trained with
_ROW = 6  # x1, y1, x2, y2, score, class


@dataclass(frozen=True, slots=True)
class OnnxDetectorSettings:
    """Knobs of the ONNX person detector.

    model_path:
        The ``.onnx`` file (the site's own model; none ships with gaitwatch).
    min_score:
        Boxes scoring below this are dropped. Lower finds partly hidden people but admits false positives;
        the tracker's own thresholds apply afterwards, so keep this at or below them.
    nms_iou:
        IoU above which a weaker overlapping person box is suppressed. Lower merges people walking side by
        side; higher leaves duplicate boxes on one person.
    person_class:
        Class index of "person" in the model's output (0 for COCO-trained YOLO models).
    input_size:
        ``(width, height)`` of the model input, needed only when the model declares them symbolically. A
        larger input finds smaller people at roughly quadratic cost.
    num_threads:
        onnxruntime intra-op threads. 1 leaves the other core to pose inference and the event loop.
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    model_path: Path
    min_score: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.3
    nms_iou: Annotated[float, Interval(gt=0.0, le=1.0)] = 0.45
    person_class: Annotated[int, Interval(ge=0, le=9999)] = 0
    input_size: tuple[int, int] | None = None
    num_threads: int = 1

    def __post_init__(self) -> None:
        if not (0.0 <= self.min_score <= 1.0):
            raise ValueError(f"OnnxDetectorSettings.min_score must be in [0, 1]; got {self.min_score}")
        if not (0.0 < self.nms_iou <= 1.0):
            raise ValueError(f"OnnxDetectorSettings.nms_iou must be in (0, 1]; got {self.nms_iou}")
        if self.num_threads < 1:
            raise ValueError(f"OnnxDetectorSettings.num_threads must be >= 1; got {self.num_threads}")
        if self.input_size is not None and (self.input_size[0] < 1 or self.input_size[1] < 1):
            raise ValueError(f"OnnxDetectorSettings.input_size must be positive; got {self.input_size}")


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a frame was fitted into the model input: ``input = frame * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: int
    pad_y: int

    def to_frame(self, xyxy: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map boxes from input pixels back to frame pixels."""
        out = xyxy.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        return out


def letterbox(image: NDArray[np.uint8], width: int, height: int) -> tuple[NDArray[np.float32], Letterbox]:
    """Resize ``image`` (BGR uint8) into a ``width x height`` canvas keeping its aspect ratio.

    Returns the model input, NCHW float32 RGB in [0, 1], and the mapping back to frame pixels.
    """
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.full((height, width, 3), _PAD_VALUE, dtype=np.uint8)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    rgb = canvas[:, :, ::-1]
    tensor = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)
    return tensor, Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y)


def _dim(value: Any) -> int | None:
    """A static dimension as int, or None when the model declares it symbolically."""
    return value if isinstance(value, int) and value > 0 else None


def cpu_session(model: str | bytes, num_threads: int) -> Any:
    """An onnxruntime CPU session of ``model`` (a path or the file's bytes) on ``num_threads`` intra-op threads and
    one inter-op thread (the person detectors: the daemon's own threads give the parallelism). Raises whatever
    onnxruntime raises for a model it cannot load."""
    import onnxruntime as ort  # heavy import, only when a detector is made

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


class OnnxPersonDetector:
    """``PersonDetector`` backed by an onnxruntime session (CPU). Safe to call from several threads at once:
    ``InferenceSession.run`` is thread-safe and ``detect`` keeps no state of its own."""

    def __init__(self, settings: OnnxDetectorSettings) -> None:
        self.settings = settings
        path = Path(settings.model_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX person-detector model not found: {path}")
        try:
            self._session = cpu_session(str(path), settings.num_threads)
        except Exception as exc:
            raise ValueError(f"cannot load ONNX person-detector model {path}: {exc}") from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        expected = "one input (1, 3, H, W) float32 and an output (1, N, 6) [x1, y1, x2, y2, score, class]"
        if len(inputs) != 1 or len(outputs) < 1:
            raise ValueError(f"{path}: expected {expected}; got {len(inputs)} inputs and {len(outputs)} outputs")
        in_shape = list(inputs[0].shape)
        out_shape = list(outputs[0].shape)
        if (
            len(in_shape) != 4
            or _dim(in_shape[1]) not in (3, None)
            or _dim(in_shape[0]) not in (1, None)
            or inputs[0].type != "tensor(float)"
        ):
            raise ValueError(f"{path}: expected {expected}; got input {inputs[0].type} {in_shape}")
        if len(out_shape) != 3 or _dim(out_shape[2]) not in (_ROW, None):
            raise ValueError(f"{path}: expected {expected}; got output {out_shape}")
        height, width = _dim(in_shape[2]), _dim(in_shape[3])
        if height is None or width is None:
            if settings.input_size is None:
                raise ValueError(
                    f"{path}: the model's input size is symbolic ({in_shape}); set input_size=(width, height)"
                )
            width, height = settings.input_size
        elif settings.input_size is not None and settings.input_size != (width, height):
            raise ValueError(
                f"{path}: input_size {settings.input_size} contradicts the model's fixed input {width}x{height}"
            )
        self.input_size = (width, height)
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"ONNX detector expects a BGR uint8 HxWx3 image; got {image.dtype} {image.shape}")
        s = self.settings
        tensor, box_map = letterbox(image, *self.input_size)
        raw = self._session.run([self._output_name], {self._input_name: tensor})[0]
        rows = np.asarray(raw, dtype=np.float64)
        if rows.ndim != 3 or rows.shape[0] != 1 or rows.shape[2] != _ROW:
            raise ValueError(f"{s.model_path}: output must be (1, N, {_ROW}); got {rows.shape}")
        rows = rows[0]
        keep = (np.rint(rows[:, 5]) == s.person_class) & (rows[:, 4] >= s.min_score) & np.isfinite(rows).all(axis=1)
        rows = rows[keep]
        if rows.shape[0] == 0:
            return Detections.empty()
        xyxy = box_map.to_frame(rows[:, :4])
        height, width = image.shape[:2]
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, float(width))
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, float(height))
        # A model may emit inverted corners for degenerate boxes; order them so the contract holds.
        xyxy = np.concatenate([np.minimum(xyxy[:, :2], xyxy[:, 2:]), np.maximum(xyxy[:, :2], xyxy[:, 2:])], axis=1)
        score = np.clip(rows[:, 4], 0.0, 1.0)
        kept = nms(xyxy, score, s.nms_iou)
        return Detections(np.ascontiguousarray(xyxy[kept]), np.ascontiguousarray(score[kept]))
