"""ROI geometry: frame <-> crop coordinate mapping, the cv2 warp convention, rotation, keypoint boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from gaitwatch.pose.keypoints import NUM_LANDMARKS, Landmark
from gaitwatch.pose.roi import (
    BoxPadding,
    Roi,
    box_from_keypoints,
    crop_to_frame,
    extract_crop,
    frame_to_crop,
    roi_from_alignment,
    roi_from_box,
    rotate_world,
)


def _blob_image(h: int, w: int, centre: tuple[float, float], sigma: float) -> NDArray[np.uint8]:
    """A BGR image with a Gaussian spot centred at a continuous coordinate (pixel i has centre i + 0.5)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    img = np.round(g * 255.0).astype(np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2)


def _centroid(img: NDArray[np.uint8]) -> NDArray[np.float64]:
    g = img[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[0 : g.shape[0], 0 : g.shape[1]].astype(np.float64) + 0.5
    return np.array([(g * xs).sum() / g.sum(), (g * ys).sum() / g.sum()])


def test_roi_from_box_is_centred_square_of_scaled_longer_side() -> None:
    roi = roi_from_box(np.array([100.0, 50.0, 140.0, 250.0]), scale=1.25)
    assert (roi.cx, roi.cy, roi.angle) == (120.0, 150.0, 0.0)
    assert roi.side == pytest.approx(250.0)


@pytest.mark.parametrize("angle", [0.0, 0.3, -1.2, math.pi / 2, 2.9])
def test_frame_crop_round_trip_is_identity(angle: float) -> None:
    roi = Roi(cx=321.7, cy=188.2, side=173.0, angle=angle)
    pts = np.random.default_rng(1).uniform(-50, 700, size=(40, 2))
    back = crop_to_frame(frame_to_crop(pts, roi), roi)
    np.testing.assert_allclose(back, pts, atol=1e-9)
    # The ROI centre lands in the crop centre and the crop spans [0, 256].
    np.testing.assert_allclose(frame_to_crop(np.array([roi.cx, roi.cy]), roi), [128.0, 128.0], atol=1e-9)
    corner = crop_to_frame(np.array([[0.0, 0.0], [256.0, 0.0]]), roi)
    assert np.linalg.norm(corner[1] - corner[0]) == pytest.approx(roi.side)


@pytest.mark.parametrize("angle", [0.0, 0.7, -2.1])
def test_warp_puts_image_content_where_the_coordinate_mapping_says(angle: float) -> None:
    """A spot drawn in the frame appears in the crop exactly at frame_to_crop(spot), and maps back."""
    spot = (203.3, 141.8)
    frame = _blob_image(300, 400, spot, sigma=4.0)
    roi = Roi(cx=190.0, cy=150.0, side=128.0, angle=angle)  # 2x magnification: a sharp test of the convention
    crop = extract_crop(frame, roi)
    found = _centroid(crop)
    expected = frame_to_crop(np.array(spot), roi)
    np.testing.assert_allclose(found, expected, atol=0.1)
    np.testing.assert_allclose(crop_to_frame(found, roi), spot, atol=0.05)


def test_alignment_roi_turns_the_body_axis_upright() -> None:
    # A person lying with the head to the right of the hips: the crop must show the head straight up.
    centre, top = np.array([300.0, 200.0]), np.array([420.0, 210.0])
    roi = roi_from_alignment(centre, top, scale=1.25)
    c, t = frame_to_crop(centre, roi), frame_to_crop(top, roi)
    np.testing.assert_allclose(c, [128.0, 128.0], atol=1e-9)
    assert t[0] == pytest.approx(128.0, abs=1e-9)
    assert t[1] < 128.0
    radius = float(np.hypot(*(top - centre)))
    assert roi.side == pytest.approx(2 * radius * 1.25)
    assert roi_from_alignment(centre, centre + np.array([0.0, -50.0])).angle == pytest.approx(0.0)


def test_rotate_world_agrees_with_image_rotation() -> None:
    # A world vector pointing "up" in the crop must point along the crop's up axis in the frame.
    roi = Roi(cx=0.0, cy=0.0, side=256.0, angle=0.9)
    up_crop = np.array([0.0, -1.0, 0.25])
    up_frame = rotate_world(up_crop, roi.angle)
    image_dir = crop_to_frame(np.array([128.0, 127.0]), roi) - crop_to_frame(np.array([128.0, 128.0]), roi)
    np.testing.assert_allclose(up_frame[:2], image_dir, atol=1e-9)
    assert up_frame[2] == pytest.approx(0.25)


def test_crop_outside_the_frame_is_zero_padded_or_replicated() -> None:
    frame = np.full((100, 100, 3), 200, dtype=np.uint8)
    roi = Roi(cx=100.0, cy=50.0, side=100.0)  # right half of the ROI lies beyond the frame
    crop = extract_crop(frame, roi)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    assert np.all(crop[2:-2, :126] == 200)  # (the outermost rows blend with the border)
    assert np.all(crop[:, 130:] == 0)
    assert np.all(extract_crop(frame, roi, replicate_border=True) == 200)


def _standing_person(x0: float = 300.0, foot_y: float = 400.0, height: float = 170.0) -> NDArray[np.float64]:
    """Landmarks of an upright front-facing person whose feet stand on ``foot_y`` (pixels), all visible."""
    h = height
    kp = np.zeros((NUM_LANDMARKS, 3))
    kp[:, 2] = 0.99
    pos = {
        Landmark.NOSE: (0.0, 0.90),
        Landmark.LEFT_EYE_INNER: (0.01, 0.92),
        Landmark.LEFT_EYE: (0.02, 0.92),
        Landmark.LEFT_EYE_OUTER: (0.03, 0.92),
        Landmark.RIGHT_EYE_INNER: (-0.01, 0.92),
        Landmark.RIGHT_EYE: (-0.02, 0.92),
        Landmark.RIGHT_EYE_OUTER: (-0.03, 0.92),
        Landmark.LEFT_EAR: (0.05, 0.91),
        Landmark.RIGHT_EAR: (-0.05, 0.91),
        Landmark.MOUTH_LEFT: (0.015, 0.88),
        Landmark.MOUTH_RIGHT: (-0.015, 0.88),
        Landmark.LEFT_SHOULDER: (0.11, 0.82),
        Landmark.RIGHT_SHOULDER: (-0.11, 0.82),
        Landmark.LEFT_ELBOW: (0.13, 0.64),
        Landmark.RIGHT_ELBOW: (-0.13, 0.64),
        Landmark.LEFT_WRIST: (0.14, 0.48),
        Landmark.RIGHT_WRIST: (-0.14, 0.48),
        Landmark.LEFT_HIP: (0.06, 0.52),
        Landmark.RIGHT_HIP: (-0.06, 0.52),
        Landmark.LEFT_KNEE: (0.06, 0.28),
        Landmark.RIGHT_KNEE: (-0.06, 0.28),
        Landmark.LEFT_ANKLE: (0.06, 0.04),
        Landmark.RIGHT_ANKLE: (-0.06, 0.04),
        Landmark.LEFT_HEEL: (0.06, 0.01),
        Landmark.RIGHT_HEEL: (-0.06, 0.01),
        Landmark.LEFT_FOOT_INDEX: (0.07, 0.0),
        Landmark.RIGHT_FOOT_INDEX: (-0.07, 0.0),
    }
    for lm, (dx, up) in pos.items():
        kp[lm] = (x0 + dx * h, foot_y - up * h, 0.99)
    for lm in (Landmark.LEFT_PINKY, Landmark.LEFT_INDEX, Landmark.LEFT_THUMB):
        kp[lm] = (x0 + 0.145 * h, foot_y - 0.44 * h, 0.99)
    for lm in (Landmark.RIGHT_PINKY, Landmark.RIGHT_INDEX, Landmark.RIGHT_THUMB):
        kp[lm] = (x0 - 0.145 * h, foot_y - 0.44 * h, 0.99)
    return kp


def test_box_from_keypoints_covers_head_and_feet_like_a_person_box() -> None:
    height = 170.0
    kp = _standing_person(height=height)
    box = box_from_keypoints(kp, 0.5)
    assert box is not None
    x1, y1, x2, y2 = box
    # Crown at about 1.0 body height above the soles: the box must reach it within 5% of the height,
    # and the soles (0.0) within 3%.
    assert y1 == pytest.approx(400.0 - height, abs=0.05 * height)
    assert y2 == pytest.approx(400.0, abs=0.03 * height)
    # A standing person's box is about 0.3-0.5 body heights wide with arms down.
    assert 0.3 * height < x2 - x1 < 0.5 * height
    assert x1 < kp[:, 0].min() and x2 > kp[:, 0].max()
    # Translation-equivariant and scales with the person.
    shifted = box_from_keypoints(kp + np.array([30.0, -20.0, 0.0]), 0.5)
    assert shifted is not None
    np.testing.assert_allclose(shifted, box + np.array([30.0, -20.0, 30.0, -20.0]), atol=1e-9)


def test_box_from_keypoints_ignores_landmarks_below_the_visibility_floor() -> None:
    kp = _standing_person()
    ref = box_from_keypoints(kp, 0.5)
    kp[Landmark.LEFT_WRIST] = (900.0, 900.0, 0.2)  # a wild guess for a hidden hand
    again = box_from_keypoints(kp, 0.5)
    assert ref is not None and again is not None
    np.testing.assert_array_equal(again, ref)
    with_guess = box_from_keypoints(kp, 0.1)
    assert with_guess is not None and with_guess[2] > 900.0


def test_box_from_keypoints_returns_none_without_enough_body() -> None:
    kp = _standing_person()
    kp[:, 2] = 0.1
    assert box_from_keypoints(kp, 0.5) is None
    # Only the face visible: no torso to scale padding by.
    kp[: Landmark.MOUTH_RIGHT + 1, 2] = 0.9
    assert box_from_keypoints(kp, 0.5) is None


def test_box_from_keypoints_without_face_still_reaches_above_the_shoulders() -> None:
    kp = _standing_person()
    kp[: Landmark.MOUTH_RIGHT + 1, 2] = 0.0  # person seen from behind with the face landmarks unsure
    box = box_from_keypoints(kp, 0.5)
    assert box is not None
    assert box[1] == pytest.approx(400.0 - 170.0, abs=0.05 * 170.0)
    tighter = box_from_keypoints(kp, 0.5, padding=BoxPadding(head_top_without_face=0.2))
    assert tighter is not None and tighter[1] > box[1]
