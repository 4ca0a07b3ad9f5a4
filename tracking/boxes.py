"""Vectorised box geometry shared by the detectors and the trackers: IoU and non-maximum suppression.

Boxes are ``xyxy`` float64 arrays of shape (N, 4) in pixels: left, top, right, bottom.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def area(xyxy: FloatArray) -> FloatArray:
    """Area of each box in square pixels (0 for degenerate boxes)."""
    return np.clip(xyxy[:, 2] - xyxy[:, 0], 0.0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0.0, None)


def longer_side(xyxy: FloatArray) -> FloatArray:
    """Each box's longer side: a person's size whatever their posture (a lying person's box is wide)."""
    side: FloatArray = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
    return side


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): shape (N, M).

    Two degenerate (zero-area) boxes have IoU 0, never NaN.
    """
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.float64)
    # np.maximum rather than np.clip, and the areas inline: this runs several times per frame on small
    # matrices, where the cost is numpy's per-call overhead, not the arithmetic.
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)
    return out


def covered_share_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """The share of each box in ``a`` (N, 4) that lies inside each box in ``b`` (M, 4): shape (N, M), the
    intersection over ``a``'s own area (a degenerate box of ``a`` counts as area 1e-9, never a division by 0)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0.0, None) * np.clip(y2 - y1, 0.0, None)
    share: FloatArray = inter / np.maximum(area(a), 1e-9)[:, None]
    return share


def nms(xyxy: FloatArray, score: FloatArray, iou_threshold: float) -> IntArray:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first.

    A box is dropped when it overlaps an already kept, better-scored box by more than ``iou_threshold``.
    Raising the threshold keeps people standing close together apart but lets duplicate detections of one
    person through; lowering it merges a person half hidden behind another into them.
    The pairwise IoU matrix is computed once (N is at most a few hundred raw detections per frame).
    """
    n = xyxy.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-score, kind="stable")
    overlaps = iou_matrix(xyxy[order], xyxy[order])
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for rank in range(n):
        if suppressed[rank]:
            continue
        keep.append(int(order[rank]))
        suppressed |= overlaps[rank] > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def xyxy_to_cxcywh(xyxy: FloatArray) -> FloatArray:
    """Centre x, centre y, width, height of each box."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    return np.stack([xyxy[:, 0] + 0.5 * w, xyxy[:, 1] + 0.5 * h, w, h], axis=1)


def cxcywh_to_xyxy(cxcywh: FloatArray) -> FloatArray:
    """Inverse of :func:`xyxy_to_cxcywh`; negative sizes are clipped to 0 so the result is a valid box."""
    half_w = 0.5 * np.clip(cxcywh[:, 2], 0.0, None)
    half_h = 0.5 * np.clip(cxcywh[:, 3], 0.0, None)
    return np.stack(
        [cxcywh[:, 0] - half_w, cxcywh[:, 1] - half_h, cxcywh[:, 0] + half_w, cxcywh[:, 1] + half_h], axis=1
    )
