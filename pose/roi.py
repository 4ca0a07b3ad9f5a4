"""Square regions of interest (ROIs) around one person: geometry only, no model.

Coordinate convention, used for frames, boxes, crops and landmarks alike: continuous pixel coordinates, an
image of width W spans ``[0, W]``, and pixel column ``i`` is the unit interval ``[i, i + 1]`` with its centre
at ``i + 0.5``. The pose model reports landmarks in this convention in its 256 x 256 input, detectors report
boxes in it, and keeping one convention end to end avoids a half-pixel shift per stage. Only
``cv2.warpAffine`` thinks in pixel *indices* (centre at ``i``); :func:`warp_matrix` converts for it.

An ROI is a square of side ``side`` frame pixels centred on ``(cx, cy)`` and rotated by ``angle`` radians:
the crop's x axis points along ``(cos angle, sin angle)`` in the frame and its y axis (downwards in the crop)
along ``(-sin angle, cos angle)``. With the frame's y axis pointing down, a positive angle turns the ROI
clockwise on screen; ``angle = 0`` is an upright crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.keypoints import FACE, NUM_LANDMARKS, Landmark

# BlazePose's input side in pixels.
MODEL_INPUT_SIZE = 256

# Side of the ROI as a multiple of the longer side of the person's box. 1.25 is the value MediaPipe uses
# around its own alignment circle; on the shared annotated people 1.4 gained a little overall but lost
# ankles and MPII accuracy (see the pose README): a tighter crop cuts off feet and hands when the box is
# tight, a looser one spends the 256 input pixels on background and shrinks the person.
DEFAULT_ROI_SCALE = 1.25


@dataclass(frozen=True, slots=True)
class Roi:
    """A square region of a frame: centre ``(cx, cy)`` and ``side`` in frame pixels, ``angle`` in radians."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cx) and math.isfinite(self.cy) and math.isfinite(self.angle)):
            raise ValueError(f"Roi centre and angle must be finite; got {self}")
        if not (math.isfinite(self.side) and self.side > 0.0):
            raise ValueError(f"Roi.side must be a positive number of pixels; got {self.side}")

    def rotation(self) -> NDArray[np.float64]:
        """2x2 matrix whose columns are the crop's x and y axes expressed in frame coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.array([[c, -s], [s, c]], dtype=np.float64)


def roi_from_box(xyxy: NDArray[np.float64], scale: float = DEFAULT_ROI_SCALE) -> Roi:
    """The upright square ROI centred on a person box, of side ``scale * max(w, h)``.

    ``scale`` trades context against resolution: below ~1.15 a tight detector box loses feet and hands at
    the crop's edge; above ~1.4 the person shrinks in the 256-pixel input and landmarks get coarser.
    A degenerate (zero-size) box still yields a 1-pixel ROI rather than an error, so one bad box cannot stop
    a batch; its presence score will be low.
    """
    if xyxy.shape != (4,):
        raise ValueError(f"roi_from_box expects one box of shape (4,); got {xyxy.shape}")
    if not scale > 0.0:
        raise ValueError(f"roi scale must be positive; got {scale}")
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    side = max(scale * max(x2 - x1, y2 - y1), 1.0)
    return Roi(cx=0.5 * (x1 + x2), cy=0.5 * (y1 + y2), side=side)


def roi_from_alignment(centre: NDArray[np.float64], top: NDArray[np.float64], scale: float = DEFAULT_ROI_SCALE) -> Roi:
    """A rotated ROI from two frame points: the body centre and a point above the head.

    This is BlazePose's own alignment: the ROI is centred on ``centre`` (between the hips), rotated so that
    ``top`` lies straight above the centre in the crop, with side ``2 * |top - centre| * scale`` (the two
    points span half the body's bounding circle). ``scale`` has the same trade-off as in :func:`roi_from_box`.
    """
    d = np.asarray(top, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    radius = float(np.hypot(d[0], d[1]))
    # The crop's "up" (its -y axis) is (sin a, -cos a) in the frame; make it point along d.
    angle = math.atan2(float(d[0]), float(-d[1])) if radius > 0.0 else 0.0
    return Roi(cx=float(centre[0]), cy=float(centre[1]), side=max(2.0 * radius * scale, 1.0), angle=angle)


def frame_to_crop_matrix(roi: Roi, size: int = MODEL_INPUT_SIZE) -> NDArray[np.float64]:
    """2x3 affine taking continuous frame coordinates to crop coordinates (the crop spans [0, size])."""
    k = size / roi.side
    a = k * roi.rotation().T
    t = np.array([size / 2.0, size / 2.0]) - a @ np.array([roi.cx, roi.cy])
    return np.hstack([a, t[:, None]])


def crop_to_frame_matrix(roi: Roi, size: int = MODEL_INPUT_SIZE) -> NDArray[np.float64]:
    """2x3 affine taking continuous crop coordinates back to frame coordinates (inverse of the above)."""
    k = roi.side / size
    a = k * roi.rotation()
    t = np.array([roi.cx, roi.cy]) - a @ np.array([size / 2.0, size / 2.0])
    return np.hstack([a, t[:, None]])


def warp_matrix(roi: Roi, size: int = MODEL_INPUT_SIZE) -> NDArray[np.float64]:
    """The 2x3 matrix to pass to ``cv2.warpAffine`` (pixel-index convention) to cut ``roi`` out of a frame."""
    m = frame_to_crop_matrix(roi, size)
    # index = continuous - 0.5 on both sides: u_idx = A (p_idx + 0.5) + t - 0.5.
    out = m.copy()
    out[:, 2] = m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2] - 0.5
    return out


def apply_affine(matrix: NDArray[np.float64], points: NDArray[np.floating]) -> NDArray[np.float64]:
    """Apply a 2x3 affine to points of shape (..., 2)."""
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


def crop_to_frame(points: NDArray[np.floating], roi: Roi, size: int = MODEL_INPUT_SIZE) -> NDArray[np.float64]:
    """Map crop coordinates (..., 2) (e.g. the model's landmark x, y) to frame coordinates."""
    return apply_affine(crop_to_frame_matrix(roi, size), points)


def frame_to_crop(points: NDArray[np.floating], roi: Roi, size: int = MODEL_INPUT_SIZE) -> NDArray[np.float64]:
    """Map frame coordinates (..., 2) into the crop of ``roi``."""
    return apply_affine(frame_to_crop_matrix(roi, size), points)


def extract_crop(
    image: NDArray[np.uint8], roi: Roi, size: int = MODEL_INPUT_SIZE, *, replicate_border: bool = False
) -> NDArray[np.uint8]:
    """Cut ``roi`` out of ``image`` as a ``size`` x ``size`` crop (same channel order as ``image``).

    Parts of the ROI outside the frame are filled with zeros (black), as BlazePose saw in training, or with
    the nearest edge pixel when ``replicate_border`` is set (smears edge colours into the margin, which can
    look like a limb continuing off-frame). Bilinear interpolation: when the ROI is much larger than ``size``
    this aliases a little, which the model tolerates; area averaging is not available for rotated warps.
    """
    border = cv2.BORDER_REPLICATE if replicate_border else cv2.BORDER_CONSTANT
    crop = cv2.warpAffine(
        image, warp_matrix(roi, size), (size, size), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0
    )
    return np.asarray(crop, dtype=np.uint8)


def rotate_world(world: NDArray[np.floating], angle: float) -> NDArray[np.float64]:
    """Rotate model world landmarks (..., 3) from crop axes into frame axes (about the camera's z axis).

    The model reports world landmarks in the crop's orientation; for a rotated ROI the x-y plane must turn
    by the ROI angle so "down" in metres agrees with "down" in the image, as MediaPipe does.
    """
    w = np.asarray(world, dtype=np.float64).copy()
    c, s = math.cos(angle), math.sin(angle)
    x, y = w[..., 0].copy(), w[..., 1].copy()
    w[..., 0] = c * x - s * y
    w[..., 1] = s * x + c * y
    return w


# Landmarks whose highest point lies some way below the top of the head.

_SHOULDERS = (Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER)
_HIPS = (Landmark.LEFT_HIP, Landmark.RIGHT_HIP)


@dataclass(frozen=True, slots=True)
class BoxPadding:
    """How far a keypoint box is grown to look like a detector's box of the same person.

    Every margin is a fraction of the person's torso length (mid-shoulder to mid-hip, which is about 0.3 of
    the standing height and does not change when the person turns or bends the legs). ``head_top`` is the
    distance from the highest face landmark (usually an eye) to the crown, ``head_top_without_face`` the one
    from the top visible landmark (the shoulders) when no face landmark is visible; ``sides`` covers hair,
    clothing and the flesh beyond the shoulder and elbow joints; ``bottom`` covers the sole below the heel
    and toe landmarks. Larger margins make the box loose (more IoU lost to background); smaller ones cut
    the head.
    Defaults are the median margins between BlazePose landmarks and Faster R-CNN boxes of 150 walking people
    in the PETS09-S2L1 footage (the resulting boxes overlap those detector boxes with median IoU 0.73).
    """

    head_top: float = 0.37
    head_top_without_face: float = 0.6
    sides: float = 0.25
    bottom: float = 0.05


def box_from_keypoints(
    keypoints: NDArray[np.floating],
    min_visibility: float = 0.5,
    *,
    padding: BoxPadding | None = None,
    min_landmarks: int = 6,
) -> NDArray[np.float64] | None:
    """A person box (x1, y1, x2, y2) from one person's landmarks (33, 3: x, y, visibility) in frame pixels.

    Only landmarks with visibility >= ``min_visibility`` count. The box spans them and is then padded (see
    :class:`BoxPadding`) so it reaches the crown of the head and the soles, as a detector's box would.
    Returns None when fewer than ``min_landmarks`` landmarks are visible or neither shoulders nor hips are
    visible (no torso means no scale to pad by; the caller keeps its predicted box instead).
    Raising ``min_visibility`` drops guessed (occluded) limbs, so the box shrinks to what is seen; lowering
    it lets the model's guesses for hidden legs stretch the box to a full-body box.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (NUM_LANDMARKS, 3):
        raise ValueError(f"box_from_keypoints expects ({NUM_LANDMARKS}, 3) keypoints; got {kp.shape}")
    pad = padding if padding is not None else BoxPadding()
    visible = (kp[:, 2] >= min_visibility) & np.all(np.isfinite(kp[:, :2]), axis=1)
    if int(visible.sum()) < min_landmarks:
        return None
    torso = _torso_length(kp, visible)
    if torso is None:
        return None
    pts = kp[visible, :2]
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    x1 -= pad.sides * torso
    x2 += pad.sides * torso
    y2 += pad.bottom * torso
    face = [int(i) for i in FACE if visible[int(i)]]
    if face:
        # The crown sits above the eyes; grow upwards from the face only if the face is the top of the box
        # (a raised arm above the head already covers the crown).
        y1 = min(y1, float(kp[face, 1].min()) - pad.head_top * torso)
    else:
        # Face hidden (turned away or cut off): shoulders to crown is about 0.6 torso lengths.
        y1 -= pad.head_top_without_face * torso
    return np.array([x1, y1, x2, y2], dtype=np.float64)


def _torso_length(kp: NDArray[np.float64], visible: NDArray[np.bool_]) -> float | None:
    sh = [int(i) for i in _SHOULDERS if visible[int(i)]]
    hp = [int(i) for i in _HIPS if visible[int(i)]]
    if sh and hp:
        return float(np.hypot(*(kp[sh, :2].mean(axis=0) - kp[hp, :2].mean(axis=0))))
    # Only one of the two pairs is seen: fall back on the spread of all visible points, a cruder scale.
    if sh or hp:
        pts = kp[visible, :2]
        extent = float(np.max(pts.max(axis=0) - pts.min(axis=0)))
        return extent / 3.0 if extent > 0.0 else None
    return None
