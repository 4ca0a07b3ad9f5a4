"""A small heatmap pose network (the "student") distilled from BlazePose, and what it needs at inference.

Fast Pose Distillation (Zhang et al., CVPR 2019, MIT) trains a small network on a large teacher's
heatmaps with ``alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, ground truth)``. Here the
teacher is BlazePose run by gaitwatch's own pipeline on a site's unlabelled video (see ``distill.py``), and
the student is:

- input: a portrait crop (people are taller than wide) of ``input_height x input_width`` pixels, BGR 0-255,
  cut around the tracker's box (:func:`crop_matrix`);
- backbone: MobileNetV2-style inverted residual blocks (depthwise 3x3 convolutions) down to 1/16 of the input;
- decoder: an hourglass-like top-down path (nearest upsampling + 1x1 lateral skips + a depthwise refinement)
  back to 1/4, where one heatmap per keypoint comes out;
- a pooled head: per-keypoint visibility logits, a person-presence logit, and world coordinates in metres for
  each keypoint (BlazePose's world landmarks, so the gait stage can use the student as a drop-in).

Keypoints are decoded with sub-pixel accuracy (:func:`decode_heatmaps`: arg-max, then a second-order Taylor
step on the log-heatmap, which recovers the exact centre of a Gaussian peak).

Only :func:`build_student_net`, :func:`fpd_loss` and :func:`count_parameters` need torch; they import it when
called, so this module (schema, geometry, decoding) serves the onnxruntime backend on machines without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.keypoints import NUM_LANDMARKS, Landmark

if TYPE_CHECKING:
    import torch

TORCH_INSTALL_HINT = "pip install torch==2.13.0"

# The student's keypoints: the COCO-17 body joints (in COCO order) plus heels and toes, which gait events
# (heel strike, toe off) need. BlazePose's hand and extra face points are left out: they cost capacity and
# nothing downstream uses them.
STUDENT_KEYPOINTS: tuple[Landmark, ...] = (
    Landmark.NOSE,
    Landmark.LEFT_EYE,
    Landmark.RIGHT_EYE,
    Landmark.LEFT_EAR,
    Landmark.RIGHT_EAR,
    Landmark.LEFT_SHOULDER,
    Landmark.RIGHT_SHOULDER,
    Landmark.LEFT_ELBOW,
    Landmark.RIGHT_ELBOW,
    Landmark.LEFT_WRIST,
    Landmark.RIGHT_WRIST,
    Landmark.LEFT_HIP,
    Landmark.RIGHT_HIP,
    Landmark.LEFT_KNEE,
    Landmark.RIGHT_KNEE,
    Landmark.LEFT_ANKLE,
    Landmark.RIGHT_ANKLE,
    Landmark.LEFT_HEEL,
    Landmark.RIGHT_HEEL,
    Landmark.LEFT_FOOT_INDEX,
    Landmark.RIGHT_FOOT_INDEX,
)

# Landmarks of the 33-point schema a student does not predict are filled with the nearest predicted one and
# visibility 0, so ``Poses`` keeps its shape and nothing downstream meets a NaN.
PROXY_LANDMARKS: dict[Landmark, Landmark] = {
    Landmark.LEFT_EYE_INNER: Landmark.LEFT_EYE,
    Landmark.LEFT_EYE_OUTER: Landmark.LEFT_EYE,
    Landmark.RIGHT_EYE_INNER: Landmark.RIGHT_EYE,
    Landmark.RIGHT_EYE_OUTER: Landmark.RIGHT_EYE,
    Landmark.MOUTH_LEFT: Landmark.NOSE,
    Landmark.MOUTH_RIGHT: Landmark.NOSE,
    Landmark.LEFT_PINKY: Landmark.LEFT_WRIST,
    Landmark.LEFT_INDEX: Landmark.LEFT_WRIST,
    Landmark.LEFT_THUMB: Landmark.LEFT_WRIST,
    Landmark.RIGHT_PINKY: Landmark.RIGHT_WRIST,
    Landmark.RIGHT_INDEX: Landmark.RIGHT_WRIST,
    Landmark.RIGHT_THUMB: Landmark.RIGHT_WRIST,
}


class StudentUnavailableError(RuntimeError):
    """torch is needed (training, export, the torch fallback) but is not installed."""


def require_torch() -> ModuleType:
    """Import torch, or raise :class:`StudentUnavailableError` saying how to install the CPU build."""
    try:
        import torch
    except ImportError as exc:
        raise StudentUnavailableError(
            f"the pose student needs torch for this step, which is not installed; run `{TORCH_INSTALL_HINT}` "
            "(the CPU build; the extra is gaitwatch[torch])"
        ) from exc
    return torch


def mirrored(landmark: Landmark) -> Landmark:
    """The same body point on the other side (LEFT_KNEE <-> RIGHT_KNEE); midline points map to themselves."""
    name = landmark.name
    if name.startswith("LEFT_"):
        return Landmark["RIGHT_" + name[5:]]
    if name.startswith("RIGHT_"):
        return Landmark["LEFT_" + name[6:]]
    if name == "MOUTH_LEFT":
        return Landmark.MOUTH_RIGHT
    if name == "MOUTH_RIGHT":
        return Landmark.MOUTH_LEFT
    return landmark


def flip_permutation(keypoints: Sequence[Landmark]) -> NDArray[np.int64]:
    """Index permutation that relabels a horizontally mirrored person: ``flipped = original[:, perm]``."""
    index = {lm: i for i, lm in enumerate(keypoints)}
    try:
        return np.array([index[mirrored(lm)] for lm in keypoints], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"keypoint set lacks the mirror of {exc.args[0]!r}; it cannot be flipped") from exc


def landmark_fill_index(keypoints: Sequence[Landmark]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """For each of the 33 landmarks, the student output row that fills it, and whether it is predicted.

    Raises ValueError when a landmark is neither predicted nor has a predicted proxy.
    """
    index = {lm: i for i, lm in enumerate(keypoints)}
    rows = np.zeros(NUM_LANDMARKS, dtype=np.int64)
    predicted = np.zeros(NUM_LANDMARKS, dtype=bool)
    for lm in Landmark:
        if lm in index:
            rows[lm] = index[lm]
            predicted[lm] = True
        elif PROXY_LANDMARKS.get(lm) in index:
            rows[lm] = index[PROXY_LANDMARKS[lm]]
        else:
            raise ValueError(f"the student's keypoints neither include {lm.name} nor a stand-in for it")
    return rows, predicted


@dataclass(frozen=True, slots=True)
class StudentSpec:
    """Shape of a student network and of the crop it looks at.

    ``input_height`` x ``input_width``: crop size in pixels (portrait, multiples of 16). Cost grows with the
    area; 128 x 96 gives a ~110 px tall person about one input pixel per frame pixel, finer than the
    PCK@0.05 tolerance (~5 px). Larger crops help only for people much taller than that on screen.
    ``roi_scale``: crop height as a multiple of the box height (or of its width times the crop's aspect
    ratio when the box is wider than that): context around the box. Below ~1.15 a tight box cuts feet and
    hands; above ~1.4 the person shrinks in the crop. 1.25 is what the BlazePose teacher uses.
    ``widths``: channels at 1/2, 1/4, 1/8 and 1/16 of the input; ``blocks``: inverted residual blocks at 1/4,
    1/8 and 1/16 (the first of each stage downsamples); ``expansion``: inverted residual expansion factor;
    ``decoder_width``: channels of the upsampling path. More of any buys accuracy with time, the deep stages
    (1/16) cheaply, the shallow ones (1/2, 1/4) expensively.
    ``keypoints``: predicted landmarks (indices of ``Landmark``), each with its mirror for flip augmentation.
    """

    input_height: int = 128
    input_width: int = 96
    roi_scale: float = 1.25
    widths: tuple[int, int, int, int] = (16, 24, 48, 96)
    blocks: tuple[int, int, int] = (2, 3, 4)
    expansion: int = 4
    decoder_width: int = 32
    keypoints: tuple[int, ...] = field(default_factory=lambda: tuple(int(k) for k in STUDENT_KEYPOINTS))

    # The decoder ends at 1/4 of the input resolution.
    STRIDE = 4

    def __post_init__(self) -> None:
        for name in ("input_height", "input_width"):
            value = getattr(self, name)
            if value < 32 or value % 16 != 0:
                raise ValueError(f"StudentSpec.{name} must be a multiple of 16 and >= 32; got {value}")
        if not (math.isfinite(self.roi_scale) and 0.5 <= self.roi_scale <= 4.0):
            raise ValueError(f"StudentSpec.roi_scale must be in [0.5, 4]; got {self.roi_scale}")
        if len(self.widths) != 4 or min(self.widths) < 4:
            raise ValueError(f"StudentSpec.widths must be 4 channel counts >= 4; got {self.widths}")
        if len(self.blocks) != 3 or min(self.blocks) < 1:
            raise ValueError(f"StudentSpec.blocks must be 3 counts >= 1; got {self.blocks}")
        if self.expansion < 1 or self.decoder_width < 4:
            raise ValueError("StudentSpec.expansion must be >= 1 and decoder_width >= 4")
        if not self.keypoints or len(set(self.keypoints)) != len(self.keypoints):
            raise ValueError("StudentSpec.keypoints must be a non-empty list of distinct landmarks")
        flip_permutation(self.landmarks)
        landmark_fill_index(self.landmarks)

    @property
    def landmarks(self) -> tuple[Landmark, ...]:
        return tuple(Landmark(k) for k in self.keypoints)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def heatmap_height(self) -> int:
        return self.input_height // self.STRIDE

    @property
    def heatmap_width(self) -> int:
        return self.input_width // self.STRIDE

    @property
    def aux_size(self) -> int:
        """Length of ``aux``: K visibility logits, 1 presence logit, 3K world coordinates, 2K coarse positions."""
        return 6 * self.num_keypoints + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_height": self.input_height,
            "input_width": self.input_width,
            "roi_scale": self.roi_scale,
            "widths": list(self.widths),
            "blocks": list(self.blocks),
            "expansion": self.expansion,
            "decoder_width": self.decoder_width,
            "keypoints": [Landmark(k).name.lower() for k in self.keypoints],
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> StudentSpec:
        try:
            return StudentSpec(
                input_height=int(d["input_height"]),
                input_width=int(d["input_width"]),
                roi_scale=float(d["roi_scale"]),
                widths=tuple(int(v) for v in d["widths"]),  # type: ignore[arg-type]
                blocks=tuple(int(v) for v in d["blocks"]),  # type: ignore[arg-type]
                expansion=int(d["expansion"]),
                decoder_width=int(d["decoder_width"]),
                keypoints=tuple(int(Landmark[str(n).upper()]) for n in d["keypoints"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"invalid student spec {d!r}: {exc}") from exc


# ----------------------------------------------------------------------------------------------------
# Crop geometry (continuous pixel coordinates, as in roi.py: pixel i spans [i, i + 1]).


def crop_region(xyxy: NDArray[np.floating], spec: StudentSpec, context: float = 1.0) -> tuple[float, float, float]:
    """Centre (cx, cy) and height in frame pixels of the student's crop around one box.

    The crop has the spec's aspect ratio, is centred on the box and is ``spec.roi_scale * context`` times the
    smallest such rectangle holding the box. A degenerate box still gives a 1-pixel crop, never an error.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(xyxy, dtype=np.float64).reshape(4))
    aspect = spec.input_height / spec.input_width
    height = spec.roi_scale * context * max(y2 - y1, (x2 - x1) * aspect)
    return 0.5 * (x1 + x2), 0.5 * (y1 + y2), max(height, 1.0)


def crop_matrix(xyxy: NDArray[np.floating], spec: StudentSpec, context: float = 1.0) -> NDArray[np.float64]:
    """2x3 affine from frame coordinates to the coordinates of a ``context``-times enlarged student crop.

    With ``context = 1`` the crop spans ``[0, input_width] x [0, input_height]``; with a larger context it
    spans ``context`` times that at the same pixel density (what the distillation cache stores, so that scale
    and shift augmentation has real pixels to draw on).
    """
    cx, cy, height = crop_region(xyxy, spec, context)
    k = spec.input_height / (height / context)
    w, h = spec.input_width * context, spec.input_height * context
    return np.array([[k, 0.0, w / 2.0 - k * cx], [0.0, k, h / 2.0 - k * cy]], dtype=np.float64)


def invert_affine(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of a 2x3 affine."""
    a = matrix[:, :2]
    inv = np.linalg.inv(a)
    return np.hstack([inv, (-inv @ matrix[:, 2])[:, None]])


def warp_crop(image: NDArray[np.uint8], matrix: NDArray[np.float64], width: int, height: int) -> NDArray[np.uint8]:
    """Cut the crop that ``matrix`` (continuous frame -> crop coordinates) defines out of ``image``.

    Outside the frame is black, as for the teacher. ``cv2.warpAffine`` works in pixel indices (centre of
    pixel i at i), hence the half-pixel conversion.
    """
    m = matrix.copy()
    m[:, 2] = matrix[:, :2] @ np.array([0.5, 0.5]) + matrix[:, 2] - 0.5
    crop = cv2.warpAffine(
        image, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return np.asarray(crop, dtype=np.uint8)


def to_input_tensor(crops: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(N, H, W, 3) BGR uint8 crops -> the network's (N, 3, H, W) float32 input (0-255; it normalises)."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)


# ----------------------------------------------------------------------------------------------------
# Heatmaps: a keypoint at crop coordinate u lies at heatmap index coordinate u / stride - 0.5 (the centre of
# heatmap cell j covers crop pixels [j * stride, (j + 1) * stride]).


def crop_to_heatmap(points: NDArray[np.floating], stride: int) -> NDArray[np.float64]:
    return np.asarray(points, dtype=np.float64) / stride - 0.5


def heatmap_to_crop(points: NDArray[np.floating], stride: int) -> NDArray[np.float64]:
    return (np.asarray(points, dtype=np.float64) + 0.5) * stride


def render_heatmaps(centres: NDArray[np.floating], height: int, width: int, sigma: float) -> NDArray[np.float32]:
    """Unit-peak Gaussians (..., K, height, width) at ``centres`` (..., K, 2) in heatmap index coordinates.

    ``sigma`` is in heatmap cells: wider peaks are easier to learn and decode robustly, narrower ones keep
    nearby joints (ankle, heel, toe) apart; 1.5 cells is ~6 input pixels at stride 4.
    """
    c = np.asarray(centres, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    xs = np.arange(width, dtype=np.float32)
    gx = np.exp(-((xs - c[..., 0:1]) ** 2) / (2.0 * sigma * sigma))  # (..., K, W)
    gy = np.exp(-((ys - c[..., 1:2]) ** 2) / (2.0 * sigma * sigma))  # (..., K, H)
    return np.asarray(gy[..., :, None] * gx[..., None, :], dtype=np.float32)


def decode_heatmaps(heatmaps: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """Sub-pixel peak of each heatmap (..., H, W): (..., 2) x, y in heatmap index coordinates, and peak value.

    The arg-max cell is refined by one Newton step on the log-heatmap, using central differences over its
    3x3 neighbourhood (the "distribution-aware" decoding of DARK, Zhang et al. 2020): for a Gaussian peak the
    log is an exact quadratic, so its centre is recovered exactly rather than to the nearest cell (a quarter
    of a cell off on average with plain arg-max). Where the neighbourhood is not a proper maximum (a flat or
    noisy map, or a peak on the border) the step is dropped along that axis, and a step is never longer than
    one cell.
    """
    hm = np.asarray(heatmaps, dtype=np.float64)
    *lead, h, w = hm.shape
    flat = hm.reshape(-1, h, w)
    m = flat.shape[0]
    idx = np.argmax(flat.reshape(m, -1), axis=1)
    py, px = np.divmod(idx, w)
    xy = refine_peaks(flat, py, px)
    peak = flat[np.arange(m), py, px]
    return xy.reshape(*lead, 2), peak.astype(np.float32).reshape(lead)


def refine_peaks(heatmaps: NDArray[np.float64], py: NDArray[np.int64], px: NDArray[np.int64]) -> NDArray[np.float64]:
    """Sub-pixel position (M, 2) of the peaks at integer cells (``py``, ``px``) of heatmaps (M, H, W).

    See :func:`decode_heatmaps`; this is its refinement step for peaks chosen by other means.
    """
    flat = heatmaps
    m, h, w = flat.shape
    rows = np.arange(m)
    peak = flat[rows, py, px]
    # Log of the map around the peak, floored relative to the peak so noise far below it cannot dominate.
    floor = np.maximum(peak, 1e-10)[:, None, None] * 1e-6
    pad = np.pad(flat, ((0, 0), (1, 1), (1, 1)), mode="edge")
    ys = py[:, None, None] + np.arange(3)[None, :, None]
    xs = px[:, None, None] + np.arange(3)[None, None, :]
    patch = np.log(np.maximum(pad[rows[:, None, None], ys, xs], floor))  # (m, 3, 3), centre at [1, 1]
    dx = 0.5 * (patch[:, 1, 2] - patch[:, 1, 0])
    dy = 0.5 * (patch[:, 2, 1] - patch[:, 0, 1])
    dxx = patch[:, 1, 2] - 2.0 * patch[:, 1, 1] + patch[:, 1, 0]
    dyy = patch[:, 2, 1] - 2.0 * patch[:, 1, 1] + patch[:, 0, 1]
    dxy = 0.25 * (patch[:, 2, 2] - patch[:, 2, 0] - patch[:, 0, 2] + patch[:, 0, 0])
    det = dxx * dyy - dxy * dxy
    inner_x = (px > 0) & (px < w - 1)
    inner_y = (py > 0) & (py < h - 1)
    # Full 2-D Newton step where the Hessian is negative definite (a true maximum) and both axes are inner.
    full = (dxx < 0) & (det > 1e-12) & inner_x & inner_y
    safe_det = np.where(full, det, 1.0)
    off_x = np.where(full, -(dyy * dx - dxy * dy) / safe_det, 0.0)
    off_y = np.where(full, -(dxx * dy - dxy * dx) / safe_det, 0.0)
    # Otherwise fall back to a 1-D parabola per axis where that axis curves downwards.
    ox = np.where(inner_x & (dxx < 0), -dx / np.where(dxx < 0, dxx, -1.0), 0.0)
    oy = np.where(inner_y & (dyy < 0), -dy / np.where(dyy < 0, dyy, -1.0), 0.0)
    off_x = np.clip(np.where(full, off_x, ox), -1.0, 1.0)
    off_y = np.clip(np.where(full, off_y, oy), -1.0, 1.0)
    return np.stack([px + off_x, py + off_y], axis=1)


# A second peak counts as the other side's joint when it lies more than this many heatmap cells from the
# first (less is the same blob) and is at least this fraction of the first's height (less is noise).
PAIR_MIN_DISTANCE = 1.5
PAIR_MIN_RATIO = 0.2


def assign_pairs(
    heatmaps: NDArray[np.floating],
    guide: NDArray[np.floating],
    pairs: Sequence[tuple[int, int]],
    min_distance: float = PAIR_MIN_DISTANCE,
    min_ratio: float = PAIR_MIN_RATIO,
) -> NDArray[np.float64]:
    """Decode heatmaps (N, K, H, W), letting coarse ``guide`` positions (N, K, 2) decide left from right.

    Heatmaps localise well but decide poorly which of two feet is the left one: unsure, they put both
    sides' peaks on both feet, and plain arg-max then often puts the left and right ankle on the same foot.
    For each (left, right) channel pair this takes the two strongest distinct peaks of the summed pair
    (``min_distance`` cells apart, the second at least ``min_ratio`` of the first) and gives them to the
    sides whose guide positions (a regression head's answer, a global view of the body) are nearer; with
    only one peak both sides keep their own arg-max. Returns (N, K, 2) heatmap index coordinates.
    """
    hm = np.asarray(heatmaps, dtype=np.float64)
    n, _, h, w = hm.shape
    xy, _ = decode_heatmaps(hm)
    if not pairs or n == 0:
        return xy
    g = np.asarray(guide, dtype=np.float64)
    left = [a for a, _ in pairs]
    right = [b for _, b in pairs]
    # All pairs of all crops at once: (N, P, H, W), flattened to M = N * P maps.
    hl, hr = hm[:, left], hm[:, right]
    both = (hl + hr).reshape(-1, h, w)
    m = both.shape[0]
    rows = np.arange(m)
    fy, fx = np.divmod(np.argmax(both.reshape(m, -1), axis=1), w)
    # Local maxima of the summed maps (>= all 8 neighbours), away from the first peak.
    pad = np.pad(both, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=-np.inf)
    local_max = np.ones(both.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                local_max &= both >= pad[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    yy = np.arange(h)[None, :, None]
    xx = np.arange(w)[None, None, :]
    far = (yy - fy[:, None, None]) ** 2 + (xx - fx[:, None, None]) ** 2 > min_distance**2
    candidates = np.where(local_max & far, both, -np.inf)
    sy, sx = np.divmod(np.argmax(candidates.reshape(m, -1), axis=1), w)
    has_two = candidates[rows, sy, sx] >= min_ratio * np.maximum(both[rows, fy, fx], 1e-9)
    gl = g[:, left].reshape(-1, 2)
    gr = g[:, right].reshape(-1, 2)
    p1 = np.stack([fx, fy], axis=1).astype(np.float64)
    p2 = np.stack([sx, sy], axis=1).astype(np.float64)
    keep = np.linalg.norm(p1 - gl, axis=1) + np.linalg.norm(p2 - gr, axis=1)
    swap = np.linalg.norm(p2 - gl, axis=1) + np.linalg.norm(p1 - gr, axis=1)
    first_is_left = keep <= swap
    sel = np.flatnonzero(has_two)
    if len(sel) == 0:
        return xy
    ly, lx = np.where(first_is_left, fy, sy)[sel], np.where(first_is_left, fx, sx)[sel]
    ry, rx = np.where(first_is_left, sy, fy)[sel], np.where(first_is_left, sx, fx)[sel]
    crop_i, pair_i = np.divmod(sel, len(pairs))
    lch, rch = np.asarray(left)[pair_i], np.asarray(right)[pair_i]
    xy[crop_i, lch] = refine_peaks(hl.reshape(-1, h, w)[sel], ly, lx)
    xy[crop_i, rch] = refine_peaks(hr.reshape(-1, h, w)[sel], ry, rx)
    return xy


def side_pairs(keypoints: Sequence[Landmark]) -> list[tuple[int, int]]:
    """(left, right) index pairs of a keypoint list, e.g. (LEFT_ANKLE, RIGHT_ANKLE)."""
    perm = flip_permutation(keypoints)
    return [
        (i, int(perm[i]))
        for i, lm in enumerate(keypoints)
        if int(perm[i]) != i and (lm.name.startswith("LEFT_") or lm.name == "MOUTH_LEFT")
    ]


def sigmoid(x: NDArray[np.floating]) -> NDArray[np.float32]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0))), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class StudentOutput:
    """Decoded student answers for N crops: ``keypoints`` (N, K, 2) crop pixels, ``visibility`` (N, K) and
    ``presence`` (N,) probabilities, ``world`` (N, K, 3) metres (hip-centred, crop orientation)."""

    keypoints: NDArray[np.float64]
    visibility: NDArray[np.float32]
    presence: NDArray[np.float32]
    world: NDArray[np.float32]


def decode_outputs(heatmaps: NDArray[np.floating], aux: NDArray[np.floating], spec: StudentSpec) -> StudentOutput:
    """Turn the network's raw outputs (heatmaps (N, K, h, w), aux (N, 6K + 1)) into crop-pixel keypoints.

    ``aux`` holds K visibility logits, a presence logit, 3K world coordinates (metres) and 2K coarse keypoint
    positions (fractions of the heatmap's width and height) that settle left versus right
    (:func:`assign_pairs`).
    """
    k = spec.num_keypoints
    a = np.asarray(aux, dtype=np.float32)
    guide = a[:, 4 * k + 1 :].reshape(-1, k, 2) * np.array([spec.heatmap_width, spec.heatmap_height]) - 0.5
    xy = assign_pairs(heatmaps, guide, side_pairs(spec.landmarks))
    return StudentOutput(
        keypoints=heatmap_to_crop(xy, spec.STRIDE),
        visibility=sigmoid(a[:, :k]),
        presence=sigmoid(a[:, k]),
        world=np.ascontiguousarray(a[:, k + 1 : 4 * k + 1].reshape(-1, k, 3), dtype=np.float32),
    )


# ----------------------------------------------------------------------------------------------------
# The network (torch, imported on call).


def build_student_net(spec: StudentSpec) -> torch.nn.Module:
    """A freshly initialised student network for ``spec``.

    ``forward(x)`` takes (N, 3, H, W) float32 BGR in 0-255 and returns ``(heatmaps (N, K, H/4, W/4),
    aux (N, 6K + 1))``; see :func:`decode_outputs`. BatchNorm everywhere (folded into the convolutions by the
    ONNX export), ReLU6 as in MobileNetV2 (robust under low-precision inference).
    """
    torch_mod = require_torch()
    nn = torch_mod.nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> Any:
        layers: list[Any] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        return nn.Sequential(*layers)

    class InvertedResidual(nn.Module):  # type: ignore[misc,name-defined]
        """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, skip if shapes allow."""

        def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
            super().__init__()
            hidden = cin * expansion
            self.skip = stride == 1 and cin == cout
            self.body = nn.Sequential(
                conv_bn(cin, hidden, 1),
                conv_bn(hidden, hidden, 3, stride, groups=hidden),
                conv_bn(hidden, cout, 1, act=False),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y: torch.Tensor = self.body(x)
            return x + y if self.skip else y

    def stage(cin: int, cout: int, blocks: int, expansion: int) -> Any:
        layers = [InvertedResidual(cin, cout, 2, expansion)]
        layers += [InvertedResidual(cout, cout, 1, expansion) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def refine(width: int) -> Any:
        # Depthwise-separable 3x3: smooths the upsampled map at the cost of one cheap layer.
        return nn.Sequential(conv_bn(width, width, 3, groups=width), conv_bn(width, width, 1))

    class StudentNet(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, s: StudentSpec) -> None:
            super().__init__()
            w0, w1, w2, w3 = s.widths
            d = s.decoder_width
            self.stem = nn.Sequential(conv_bn(3, w0, 3, 2), conv_bn(w0, w0, 3, groups=w0), conv_bn(w0, w0, 1))
            self.s4 = stage(w0, w1, s.blocks[0], s.expansion)
            self.s8 = stage(w1, w2, s.blocks[1], s.expansion)
            self.s16 = stage(w2, w3, s.blocks[2], s.expansion)
            self.lat16 = conv_bn(w3, d, 1)
            self.lat8 = conv_bn(w2, d, 1)
            self.lat4 = conv_bn(w1, d, 1)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.refine8 = refine(d)
            self.refine4 = refine(d)
            self.heatmaps = nn.Conv2d(d, s.num_keypoints, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.aux = nn.Sequential(
                nn.Linear(w3, 128), nn.ReLU6(inplace=True), nn.Linear(128, 4 * s.num_keypoints + 1)
            )
            # Coarse positions regressed from the whole 1/16 map (not pooled: where things are matters), as
            # BlazePose itself does; they only decide which heatmap peak is the left and which the right.
            cells = (s.input_height // 16) * (s.input_width // 16)
            self.coords = nn.Sequential(
                conv_bn(w3, 32, 1),
                nn.Flatten(),
                nn.Linear(32 * cells, 256),
                nn.ReLU6(inplace=True),
                nn.Linear(256, 2 * s.num_keypoints),
            )

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = x * (1.0 / 127.5) - 1.0  # 0-255 -> [-1, 1]
            f4 = self.s4(self.stem(x))
            f8 = self.s8(f4)
            f16 = self.s16(f8)
            y = self.refine8(self.up(self.lat16(f16)) + self.lat8(f8))
            y = self.refine4(self.up(y) + self.lat4(f4))
            aux = self.aux(torch_mod.flatten(self.pool(f16), 1))
            # Positions as fractions of the crop, starting from its centre.
            coords = 0.5 + self.coords(f16)
            return self.heatmaps(y), torch_mod.cat([aux, coords], dim=1)

    net: torch.nn.Module = StudentNet(spec)
    return net


def count_parameters(net: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def fpd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    weight: torch.Tensor,
    truth: torch.Tensor | None = None,
    truth_weight: torch.Tensor | None = None,
    alpha: float = 0.5,
) -> torch.Tensor:
    """FPD's heatmap loss: ``alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, truth)``.

    Heatmaps are (N, K, h, w); ``weight`` / ``truth_weight`` (N, K) say which keypoints count (0 drops one,
    e.g. a crop the teacher found no person in, or an unlabelled joint). Each MSE sums over the pixels of a
    heatmap and averages over the weighted keypoints, so its scale does not depend on the heatmap size.
    On unlabelled video there is no ``truth``: the loss is then the teacher term alone (``alpha`` is moot).
    ``alpha`` trades the teacher's knowledge (soft, consistent, available everywhere) against labels (exact
    where given); the FPD paper used 0.5.
    """

    def weighted_mse(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        per_joint = ((pred - target) ** 2).sum(dim=(2, 3))
        return (per_joint * w).sum() / w.sum().clamp(min=1.0)

    teacher_term = weighted_mse(student, teacher, weight)
    if truth is None:
        return teacher_term
    tw = truth_weight if truth_weight is not None else weight
    return alpha * teacher_term + (1.0 - alpha) * weighted_mse(student, truth, tw)
