"""MediaPipe's BlazePose person detector (``pose_detection.tflite``, Apache-2.0) behind ``PersonDetector``.

The network is a single-shot detector with a 224 x 224 input that was trained for people near the camera
(fitness and selfie views). For every one of 2254 fixed anchors it predicts a score and 12 numbers: a box
around the head and upper body, and four keypoints in the person's own frame: 0 the centre between the hips,
1 a point whose distance from keypoint 0 is the radius of the circle that holds the whole body and whose
direction from keypoint 0 is the body's axis (towards the head), 2 the centre between the shoulders and
3 a point above the head. Because it sees the body's axis rather than an upright window, it finds people who
sit, bend over or lie, which a HOG window of an upright walker cannot.

The person box we report is built from keypoints 0 and 1 (the body circle), not from the network's head box:
a rectangle ``box_length`` radii long along the body axis and ``box_width`` radii wide across it, turned with
the axis, and its axis-aligned bounding box in the frame. The axis angle is kept per person
(:class:`BodyAxisDetections`) so a pose crop can be turned upright.

A frame from a ward or overview camera holds people far smaller than the network expects, so the frame is
looked at whole (letterboxed) and, when large enough, as a grid of overlapping square tiles; the finds of all
passes are merged with non-maximum suppression. Anchors and decoding follow MediaPipe's published
pose-detection graph options (SSD anchors: 5 layers, strides 8-16-32-32-32, scales 0.1484375-0.75, one
aspect ratio plus an interpolated scale, fixed anchor size; boxes and keypoints are offsets in input pixels
from the anchor centre; sigmoid scores; weighted non-maximum suppression at IoU 0.3).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from annotated_types import Interval
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import iou_matrix, nms
from gaitwatch.tracking.types import Detections

FloatArray = NDArray[np.float64]

INPUT_SIZE = 224
MODEL_FILE = "pose_detection.tflite"
NUM_KEYPOINTS = 4
_NUM_COORDS = 4 + 2 * NUM_KEYPOINTS

# MediaPipe's SsdAnchorsCalculator options for the pose detector.
_ANCHOR_STRIDES = (8, 16, 32, 32, 32)
_ANCHOR_MIN_SCALE = 0.1484375
_ANCHOR_MAX_SCALE = 0.75
_ANCHOR_OFFSET = 0.5
# One aspect ratio (1.0) plus one interpolated scale per layer: two anchors per cell and layer.
_ANCHORS_PER_LAYER_CELL = 2

# Output tensors by name (the index order may differ between converter versions).
_OUT_BOXES = "Identity"  # [1, 2254, 12] box cx, cy, w, h + 4 keypoints x, y, in input pixels from the anchor
_OUT_SCORES = "Identity_1"  # [1, 2254, 1] logits

# MediaPipe clips the logits to +-100 before the sigmoid; we clip harder only to keep exp finite in float64.
_LOGIT_CLIP = 60.0

KP_HIP_CENTRE = 0
KP_BODY_SIZE = 1


class PersonDetectorModelError(RuntimeError):
    """The person-detector model file is missing, unreadable or not MediaPipe's pose detector."""


def ssd_anchors() -> FloatArray:
    """Anchor centres (2254, 2) as fractions of the input side, in the model's output order.

    Layers with the same stride share one feature map (the last three, stride 32), so the anchors of a map
    are cell by cell with all of that map's anchors per cell. With a fixed anchor size every anchor is 1 x 1
    in input fractions, so only the centres matter for decoding.
    """
    centres: list[FloatArray] = []
    layer = 0
    while layer < len(_ANCHOR_STRIDES):
        stride = _ANCHOR_STRIDES[layer]
        same = layer
        while same < len(_ANCHOR_STRIDES) and _ANCHOR_STRIDES[same] == stride:
            same += 1
        per_cell = (same - layer) * _ANCHORS_PER_LAYER_CELL
        cells = math.ceil(INPUT_SIZE / stride)
        grid = (np.arange(cells, dtype=np.float64) + _ANCHOR_OFFSET) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        cell_centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cell_centres, per_cell, axis=0))
        layer = same
    return np.concatenate(centres, axis=0)


def anchor_scales() -> tuple[float, ...]:
    """The nominal anchor scale per layer (not used by decoding, since anchors have a fixed size; kept so the
    published options are all written down in one place)."""
    n = len(_ANCHOR_STRIDES)
    return tuple(_ANCHOR_MIN_SCALE + (_ANCHOR_MAX_SCALE - _ANCHOR_MIN_SCALE) * i / (n - 1) for i in range(n))


@dataclass(frozen=True, slots=True)
class RawFinds:
    """Detections of one network pass, in input fractions (0-1 of the 224 input): ``score`` (N,),
    ``head_box`` (N, 4) cx, cy, w, h of the network's own head/upper-body box, ``keypoints`` (N, 4, 2)."""

    score: FloatArray
    head_box: FloatArray
    keypoints: FloatArray


def decode(
    raw_boxes: NDArray[np.floating], raw_scores: NDArray[np.floating], anchors: FloatArray, min_score: float
) -> RawFinds:
    """Turn the network's raw outputs (2254, 12) and (2254,) logits into the finds scoring at least
    ``min_score`` (before non-maximum suppression)."""
    boxes = np.asarray(raw_boxes, dtype=np.float64).reshape(-1, _NUM_COORDS)
    logits = np.clip(np.asarray(raw_scores, dtype=np.float64).reshape(-1), -_LOGIT_CLIP, _LOGIT_CLIP)
    if boxes.shape[0] != anchors.shape[0] or logits.shape[0] != anchors.shape[0]:
        raise ValueError(f"decode expects {anchors.shape[0]} anchors; got boxes {boxes.shape}, scores {logits.shape}")
    score = 1.0 / (1.0 + np.exp(-logits))
    keep = score >= min_score
    boxes, score, centre = boxes[keep], score[keep], anchors[keep]
    scaled = boxes / float(INPUT_SIZE)
    head_box = np.concatenate([scaled[:, 0:2] + centre, scaled[:, 2:4]], axis=1)
    keypoints = scaled[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + centre[:, None, :]
    return RawFinds(score=score, head_box=head_box, keypoints=keypoints)


def _cxcywh_to_xyxy(b: FloatArray) -> FloatArray:
    return np.stack(
        [b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], axis=1
    )


def weighted_nms(finds: RawFinds, iou_threshold: float, weighted: bool = True) -> RawFinds:
    """MediaPipe's weighted non-maximum suppression: the best-scored find absorbs every remaining find whose
    head box overlaps it by more than ``iou_threshold``; its box and keypoints become the score-weighted mean of
    the group (neighbouring anchors agree, and their mean is steadier than the best one alone), its score stays
    the best score."""
    n = finds.score.shape[0]
    if n == 0:
        return finds
    order = np.argsort(-finds.score, kind="stable")
    overlaps = iou_matrix(_cxcywh_to_xyxy(finds.head_box[order]), _cxcywh_to_xyxy(finds.head_box[order]))
    used = np.zeros(n, dtype=bool)
    scores: list[float] = []
    boxes: list[FloatArray] = []
    keypoints: list[FloatArray] = []
    for rank in range(n):
        if used[rank]:
            continue
        group = (~used) & (overlaps[rank] > iou_threshold)
        group[rank] = True
        used |= group
        members = order[group]
        weights = finds.score[members]
        if not weighted:
            members, weights = members[:1], weights[:1]
        total = float(weights.sum())
        scores.append(float(finds.score[order[rank]]))
        boxes.append(np.tensordot(weights, finds.head_box[members], axes=1) / total)
        keypoints.append(np.tensordot(weights, finds.keypoints[members], axes=1) / total)
    return RawFinds(
        score=np.asarray(scores, dtype=np.float64),
        head_box=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        keypoints=np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2),
    )


def body_axis_angle(hip_centre: FloatArray, body_point: FloatArray) -> FloatArray:
    """Rotation (radians) that turns each body upright: 0 for a person standing with the head up, +-pi/2 for
    a person lying (positive: head to the right on screen), pi for upside down. The convention of
    ``gaitwatch.pose.roi.Roi.angle``: a crop turned by this angle shows the person upright."""
    d = body_point - hip_centre
    # Upright means the body point straight above the hips: direction (0, -1) with y pointing down.
    angle: FloatArray = np.arctan2(d[:, 0], -d[:, 1])
    return angle


def person_boxes(
    hip_centre: FloatArray, body_point: FloatArray, length: float, width: float, centre_offset: float
) -> FloatArray:
    """Axis-aligned person boxes (N, 4) from the body circle: a rectangle ``length`` x ``width`` circle radii,
    centred ``centre_offset`` radii from the hips towards the head and turned with the body axis, bounded in
    frame axes."""
    axis = body_point - hip_centre
    radius = np.linalg.norm(axis, axis=1)
    angle = body_axis_angle(hip_centre, body_point)
    c, s = np.abs(np.cos(angle)), np.abs(np.sin(angle))
    half_along, half_across = 0.5 * length * radius, 0.5 * width * radius
    half_w = half_along * s + half_across * c
    half_h = half_along * c + half_across * s
    unit = axis / np.maximum(radius, 1e-9)[:, None]
    centre = hip_centre + centre_offset * radius[:, None] * unit
    cx, cy = centre[:, 0], centre[:, 1]
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)


@dataclass(frozen=True, slots=True)
class BlazePoseDetectorSettings:
    """Knobs of the BlazePose person detector.

    min_score:
        Network score (sigmoid) a find needs. MediaPipe uses 0.5. Lower finds more partly hidden and far
        people and more false people (posters, coats on chairs), which the pose stage's presence score then
        has to reject.
    head_nms_iou:
        IoU of the network's head boxes above which neighbouring anchors' finds in one pass are merged into
        one person (weighted mean); MediaPipe's 0.3.
    nms_iou:
        IoU of person boxes above which finds of different passes (whole frame and tiles) are taken as the
        same person and the weaker is dropped. Lower merges two people sitting side by side; higher leaves
        duplicates of a person seen whole in one tile and cut in another, which the tracker would birth as
        a second track.
    tile_fraction:
        Side of the square tiles as a fraction of the image's shorter side; 0 looks at the whole image only.
        The network finds people from roughly a quarter of its input upwards, so a tile of 0.3 of a 576-px
        frame (173 px) reaches people about 45 px tall. Smaller tiles reach farther people, but the count
        of passes grows with the inverse square, and a near person spanning several tiles is only found
        whole in the whole-frame pass. On vtest.avi (768 x 576, every 5th frame, landmark refinement on,
        against Faster R-CNN boxes at IoU 0.5): 0.4 = 15 tiles + the whole frame, recall 0.68 / precision
        0.74; 0.3 = 30 tiles + the whole frame, recall 0.78 / precision 0.92 at about 1.3x the CPU time
        (the network passes double, but fewer false finds need a landmark pass). Same recall on the shared
        photos either way.
    near_tile_fraction:
        ``tile_fraction`` when BlazePose runs beside HOG (the daemon's ``hog+blazepose``): HOG finds the far,
        upright people the small tiles are for, and BlazePose is there for near, seated, bent and lying people,
        who fill a good part of a tile of 0.6 x the shorter side (a 346-px tile of a 576-px frame holds a
        150-px person at 0.43 of its side). On 768 x 576 that is 6 tiles and the whole frame, a quarter of the
        passes of 0.3.
    tile_overlap:
        Fraction of a tile shared with its neighbour. A person cut by a tile edge is still found whole in
        the neighbour when the overlap is at least their width; more overlap costs more tiles.
    min_tile_px:
        No tiles smaller than this (in image pixels): the image is only looked at whole. Below about half
        the network's input, a tile is mostly upscaled blur, and a small image (a search region around one
        person) holds its person large enough for the whole-image pass.
    box_length, box_width, box_centre_offset:
        Person box, in radii of the body circle (keypoint 0 to 1): its length along the body axis, its width
        across it, and how far its centre lies from the hips towards the head. Medians over the annotated
        people of the shared photo sets the detector found (upright, seated and turned 90 degrees together;
        IQR length 1.7-2.2, width 0.84-1.15, offset 0.04-0.30), one global value each, never per image: the
        body circle's diameter is the person's length, half of it their width, and the hips lie a little
        below the middle of a box that holds the raised arms and head.
    num_threads:
        LiteRT threads per pass. Keep 1 on a 2-core ward PC (the daemon's threads give the parallelism).
    model_path:
        Use this .tflite file instead of the packaged one.
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    min_score: Annotated[float, Interval(gt=0.0, le=1.0)] = 0.5
    head_nms_iou: float = 0.3
    nms_iou: Annotated[float, Interval(gt=0.0, le=1.0)] = 0.4
    tile_fraction: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.3
    near_tile_fraction: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.6
    tile_overlap: Annotated[float, Interval(ge=0.0, le=0.75)] = 0.25
    min_tile_px: Annotated[int, Interval(ge=16, le=4096)] = 128
    weighted_nms: bool = True
    box_length: float = 2.0
    box_width: float = 1.0
    box_centre_offset: float = 0.15
    num_threads: int = 1
    model_path: Path | None = None

    def __post_init__(self) -> None:
        for name in ("min_score", "head_nms_iou", "nms_iou"):
            value = getattr(self, name)
            if not (0.0 < value <= 1.0):
                raise ValueError(f"BlazePoseDetectorSettings.{name} must be in (0, 1]; got {value}")
        if not (self.tile_fraction == 0.0 or 0.1 <= self.tile_fraction <= 1.0):
            raise ValueError(
                f"BlazePoseDetectorSettings.tile_fraction must be 0 (whole image only) or in [0.1, 1]; "
                f"got {self.tile_fraction}"
            )
        if not (self.near_tile_fraction == 0.0 or 0.1 <= self.near_tile_fraction <= 1.0):
            raise ValueError(
                f"BlazePoseDetectorSettings.near_tile_fraction must be 0 (whole image only) or in [0.1, 1]; "
                f"got {self.near_tile_fraction}"
            )
        if not (0.0 <= self.tile_overlap <= 0.75):
            raise ValueError(f"BlazePoseDetectorSettings.tile_overlap must be in [0, 0.75]; got {self.tile_overlap}")
        if self.min_tile_px < 16:
            raise ValueError(f"BlazePoseDetectorSettings.min_tile_px must be >= 16; got {self.min_tile_px}")
        for name in ("box_length", "box_width"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.1 <= value <= 4.0):
                raise ValueError(f"BlazePoseDetectorSettings.{name} must be in [0.1, 4] radii; got {value}")
        if not (math.isfinite(self.box_centre_offset) and abs(self.box_centre_offset) <= 1.0):
            raise ValueError(
                f"BlazePoseDetectorSettings.box_centre_offset must be in [-1, 1] radii; got {self.box_centre_offset}"
            )
        if self.num_threads < 1:
            raise ValueError(f"BlazePoseDetectorSettings.num_threads must be >= 1; got {self.num_threads}")


@dataclass(frozen=True, slots=True)
class Tile:
    """A square part of the image looked at in one pass: top-left ``(x, y)`` and ``side`` in image pixels.
    The whole image is a tile too, larger than the image on its shorter side (letterboxed)."""

    x: float
    y: float
    side: float


def plan_tiles(width: int, height: int, settings: BlazePoseDetectorSettings) -> list[Tile]:
    """The whole image (letterboxed into a square, centred) and, when it is large enough, a grid of overlapping
    square tiles covering it edge to edge."""
    long_side = float(max(width, height))
    tiles = [Tile(x=(width - long_side) / 2.0, y=(height - long_side) / 2.0, side=long_side)]
    side = settings.tile_fraction * min(width, height)
    if settings.tile_fraction == 0.0 or side < settings.min_tile_px:
        return tiles
    step = side * (1.0 - settings.tile_overlap)

    def starts(extent: int) -> list[float]:
        if extent <= side:
            return [0.0]
        count = math.ceil((extent - side) / step) + 1
        # Spread the tiles evenly so the last one ends on the image edge.
        return [i * (extent - side) / (count - 1) for i in range(count)]

    tiles.extend(Tile(x=x, y=y, side=side) for y in starts(height) for x in starts(width))
    return tiles


@dataclass(frozen=True, slots=True)
class BodyAxisDetections:
    """People found in one image: ``detections`` (boxes in image pixels, scores), ``angle`` (N,) the rotation
    that turns each body upright (see :func:`body_axis_angle`), ``hip_centre`` (N, 2) and ``radius`` (N,)
    of each body circle in image pixels: MediaPipe's own pose ROI is centred on the hips with side
    ``2.5 * radius``, turned by ``angle``."""

    detections: Detections
    angle: FloatArray
    hip_centre: FloatArray
    radius: FloatArray

    def __post_init__(self) -> None:
        n = len(self.detections)
        if self.angle.shape != (n,) or self.hip_centre.shape != (n, 2) or self.radius.shape != (n,):
            raise ValueError(
                f"BodyAxisDetections arrays disagree with {n} detections: angle {self.angle.shape}, "
                f"hip_centre {self.hip_centre.shape}, radius {self.radius.shape}"
            )


def packaged_model_path() -> Path:
    """Path of the packaged detector model (package data of ``gaitwatch.tracking``; never downloaded)."""
    return Path(str(importlib.resources.files("gaitwatch.tracking").joinpath("models", MODEL_FILE)))


class BlazePosePersonDetector:
    """``PersonDetector`` running MediaPipe's BlazePose person detector over the whole image and tiles.

    Thread-safe: a LiteRT interpreter is not, so each calling thread gets its own interpreter (made on its
    first call from the model bytes read once here); interpreters release the GIL while they run, so two
    detection threads really use two cores.
    """

    def __init__(self, settings: BlazePoseDetectorSettings | None = None) -> None:
        self.settings = settings if settings is not None else BlazePoseDetectorSettings()
        self.model_path = Path(self.settings.model_path or packaged_model_path())
        hint = (
            "reinstall gaitwatch (the person-detector model ships inside the package under "
            "gaitwatch/tracking/models/) or point detector.blazepose.model_path at MediaPipe's pose_detection.tflite"
        )
        if not self.model_path.is_file():
            raise PersonDetectorModelError(f"person-detector model file not found: {self.model_path}; {hint}")
        try:
            self._blob = self.model_path.read_bytes()
        except OSError as exc:
            raise PersonDetectorModelError(
                f"cannot read person-detector model {self.model_path} ({exc}); {hint}"
            ) from exc
        self._hint = hint
        self._local = threading.local()
        self._anchors = ssd_anchors()
        # Load once now so a bad file fails at start-up, not on the first frame.
        self._interpreter()
        self.model_version = f"{self.model_path.stem}@{hashlib.sha256(self._blob).hexdigest()[:12]}"

    def _interpreter(self) -> tuple[Any, int, int, int]:
        cached: tuple[Any, int, int, int] | None = getattr(self._local, "interp", None)
        if cached is not None:
            return cached
        from ai_edge_litert.interpreter import Interpreter  # heavy import, only when a detector is made

        try:
            interp: Any = Interpreter(model_content=self._blob, num_threads=self.settings.num_threads)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise PersonDetectorModelError(
                f"person-detector model {self.model_path} cannot be loaded ({exc}); {self._hint}"
            ) from exc
        inputs = interp.get_input_details()
        shape = tuple(int(v) for v in inputs[0]["shape"]) if len(inputs) == 1 else ()
        if shape != (1, INPUT_SIZE, INPUT_SIZE, 3):
            raise PersonDetectorModelError(
                f"person-detector model {self.model_path} has input {shape}, expected (1, {INPUT_SIZE}, "
                f"{INPUT_SIZE}, 3); {self._hint}"
            )
        outputs = {str(d["name"]): d for d in interp.get_output_details()}
        expected = {_OUT_BOXES: (1, self._anchors.shape[0], _NUM_COORDS), _OUT_SCORES: (1, self._anchors.shape[0], 1)}
        for name, want in expected.items():
            got = tuple(int(v) for v in outputs[name]["shape"]) if name in outputs else None
            if got != want:
                raise PersonDetectorModelError(
                    f"person-detector model {self.model_path} output {name} is {got}, expected {want}; {self._hint}"
                )
        cached = (
            interp,
            int(inputs[0]["index"]),
            int(outputs[_OUT_BOXES]["index"]),
            int(outputs[_OUT_SCORES]["index"]),
        )
        self._local.interp = cached
        return cached

    def run_tile(self, image: NDArray[np.uint8], tile: Tile) -> RawFinds:
        """One network pass on ``tile`` of the BGR image; finds after weighted NMS, keypoints and head boxes
        in image pixels (head box as cx, cy, w, h)."""
        interp, input_index, boxes_index, scores_index = self._interpreter()
        scale = INPUT_SIZE / tile.side
        # Image pixel (continuous) p maps to (p - tile origin) * scale; warpAffine works on pixel centres, the
        # half-pixel terms cancel for a pure scale + shift. Outside the image is black (letterbox).
        matrix = np.array([[scale, 0.0, -tile.x * scale], [0.0, scale, -tile.y * scale]], dtype=np.float64)
        matrix[:, 2] += 0.5 * scale - 0.5
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        crop = cv2.warpAffine(
            image,
            matrix,
            (INPUT_SIZE, INPUT_SIZE),
            flags=interpolation,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)
        rgb *= 2.0 / 255.0
        rgb -= 1.0
        interp.set_tensor(input_index, rgb[None])
        interp.invoke()
        raw_boxes = np.asarray(interp.get_tensor(boxes_index))[0]
        raw_scores = np.asarray(interp.get_tensor(scores_index))[0]
        finds = weighted_nms(
            decode(raw_boxes, raw_scores, self._anchors, self.settings.min_score),
            self.settings.head_nms_iou,
            self.settings.weighted_nms,
        )
        origin = np.array([tile.x, tile.y], dtype=np.float64)
        head = finds.head_box * tile.side
        head[:, :2] += origin
        return RawFinds(score=finds.score, head_box=head, keypoints=finds.keypoints * tile.side + origin)

    def detect_with_axis(self, image: NDArray[np.uint8]) -> BodyAxisDetections:
        """People in the whole image (all passes merged) with their body axes."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"BlazePose detector expects a BGR uint8 HxWx3 image; got {image.dtype} {image.shape}")
        s = self.settings
        height, width = image.shape[:2]
        passes = [self.run_tile(image, tile) for tile in plan_tiles(width, height, s)]
        score = np.concatenate([p.score for p in passes])
        keypoints = np.concatenate([p.keypoints for p in passes]).reshape(-1, NUM_KEYPOINTS, 2)
        hip, body = keypoints[:, KP_HIP_CENTRE], keypoints[:, KP_BODY_SIZE]
        xyxy = person_boxes(hip, body, s.box_length, s.box_width, s.box_centre_offset)
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0.0, float(width))
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0.0, float(height))
        kept = nms(xyxy, score, s.nms_iou)
        return BodyAxisDetections(
            detections=Detections(np.ascontiguousarray(xyxy[kept]), np.ascontiguousarray(score[kept])),
            angle=np.ascontiguousarray(body_axis_angle(hip[kept], body[kept])),
            hip_centre=np.ascontiguousarray(hip[kept]),
            radius=np.linalg.norm(body[kept] - hip[kept], axis=1),
        )

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        return self.detect_with_axis(image).detections
