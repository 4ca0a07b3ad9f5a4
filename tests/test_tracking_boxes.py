"""Specification of box IoU and non-maximum suppression."""

from __future__ import annotations

import numpy as np

from gaitwatch.tracking.boxes import covered_share_matrix, cxcywh_to_xyxy, iou_matrix, nms, xyxy_to_cxcywh


def test_iou_known_values() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [3, 3, 3, 3.0]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50.0 / 150.0, 0.0, 0.0]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)
    degenerate = np.array([[1.0, 1.0, 1.0, 1.0]])
    assert iou_matrix(degenerate, degenerate)[0, 0] == 0.0  # never NaN


def test_nms_keeps_best_of_overlapping_and_separate_boxes() -> None:
    xyxy = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [50, 0, 60, 20], [0.0, 0, 10, 20]])
    score = np.array([0.6, 0.9, 0.5, 0.7])
    np.testing.assert_array_equal(nms(xyxy, score, 0.5), [1, 2])
    np.testing.assert_array_equal(nms(xyxy, score, 1.0), [1, 3, 0, 2])
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_cxcywh_round_trip() -> None:
    xyxy = np.array([[10.0, 20.0, 30.0, 80.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(xyxy_to_cxcywh(xyxy), [[20, 50, 20, 60], [0, 0, 0, 0]])
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(xyxy)), xyxy)


def test_covered_share_is_the_intersection_over_the_first_box_own_area() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 9.0]])  # a box and a degenerate one
    b = np.array([[0.0, 0.0, 10.0, 5.0], [-100.0, -100.0, 100.0, 100.0], [20.0, 20.0, 30.0, 30.0]])
    share = covered_share_matrix(a, b)
    np.testing.assert_allclose(share[0], [0.5, 1.0, 0.0])
    assert np.isfinite(share).all() and share[1, 2] == 0.0
