"""Search regions: the detector scans the whole frame now and then, in between only what changed and the tracks'
surroundings, and finds the same people there as on the whole frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from gaitwatch.tracking.boxes import area, iou_matrix
from gaitwatch.tracking.hog import HogPersonDetector
from gaitwatch.tracking.search_regions import (
    SearchRegionPlanner,
    SearchRegionSettings,
    detect_in_regions,
    merge_overlapping,
)
from gaitwatch.tracking.types import Detections

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest.avi"
REFERENCE = VIDEO.with_name("vtest_PETS09-S2L1_det.txt")
NO_TRACKS = np.zeros((0, 4), dtype=np.float64)


def ward_frame(person_x: int | None = None, width: int = 640, height: int = 480) -> NDArray[np.uint8]:
    """A textured still background with, optionally, a dark 40x110 px "person" whose left edge is at x."""
    rng = np.random.default_rng(7)
    noise = rng.integers(90, 160, size=(height, width, 3), dtype=np.uint8)
    image = np.asarray(cv2.GaussianBlur(noise, (9, 9), 0), dtype=np.uint8)
    if person_x is not None:
        image[300:410, person_x : person_x + 40] = 30
    return image


def contains(outer: NDArray[np.float64], inner: NDArray[np.float64]) -> bool:
    return bool(np.any(np.all((outer[:, :2] <= inner[:2]) & (outer[:, 2:] >= inner[2:]), axis=1)))


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="full_frame_interval_s"):
        SearchRegionSettings(full_frame_interval_s=-1.0)
    with pytest.raises(ValueError, match="max_area_fraction"):
        SearchRegionSettings(max_area_fraction=0.0)
    with pytest.raises(ValueError, match="motion_threshold"):
        SearchRegionSettings(motion_threshold=0)


def test_merge_joins_overlapping_and_touching_boxes_transitively() -> None:
    boxes = np.array([[0, 0, 10, 10], [10, 5, 20, 15], [18, 14, 30, 30], [100, 100, 110, 110]], dtype=np.float64)
    merged = merge_overlapping(boxes)
    assert sorted(map(tuple, merged.tolist())) == [(0, 0, 30, 30), (100, 100, 110, 110)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(1, 80), st.integers(1, 80)),
        min_size=0,
        max_size=12,
    )
)
def test_merged_boxes_cover_every_input_and_never_overlap(raw: list[tuple[int, int, int, int]]) -> None:
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in raw], dtype=np.float64).reshape(-1, 4)
    merged = merge_overlapping(boxes)
    for box in boxes:
        assert contains(merged, box)
    for i in range(len(merged)):
        for j in range(i + 1, len(merged)):
            a, b = merged[i], merged[j]
            assert not (a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3])


def test_first_frame_and_every_full_frame_interval_scan_the_whole_frame() -> None:
    planner = SearchRegionPlanner(SearchRegionSettings(full_frame_interval_s=2.0))
    still = ward_frame()
    assert planner.plan(0.0, still, NO_TRACKS) is None
    for t in (0.5, 1.0, 1.5):
        regions = planner.plan(t, still, NO_TRACKS)
        assert regions is not None and regions.shape == (0, 4), "nothing changed and nobody tracked: no region"
    assert planner.plan(2.0, still, NO_TRACKS) is None
    assert planner.plan(2.5, still, NO_TRACKS) is not None
    assert planner.plan(0.3, still, NO_TRACKS) is None, "a clock that went back starts over with a full scan"


def test_cameras_with_different_phases_scan_whole_frames_on_different_frames() -> None:
    """Four cameras started together: their whole-frame scans fall half a second apart, not on the same frame."""
    still = ward_frame()
    whole_at: list[list[float]] = []
    for k in range(4):
        planner = SearchRegionPlanner(SearchRegionSettings(full_frame_interval_s=2.0), phase=k / 4)
        whole_at.append([t for t in np.arange(0.0, 6.01, 0.25) if planner.plan(float(t), still, NO_TRACKS) is None])
    assert whole_at[0] == [0.0, 2.0, 4.0, 6.0]
    assert whole_at[1] == [0.0, 1.5, 3.5, 5.5]
    assert whole_at[2] == [0.0, 1.0, 3.0, 5.0]
    assert whole_at[3] == [0.0, 0.5, 2.5, 4.5]
    with pytest.raises(ValueError, match="phase"):
        SearchRegionPlanner(phase=1.0)


def test_zero_interval_always_scans_the_whole_frame() -> None:
    planner = SearchRegionPlanner(SearchRegionSettings(full_frame_interval_s=0.0))
    assert all(planner.plan(t, ward_frame(), NO_TRACKS) is None for t in (0.0, 0.5, 1.0))


def test_a_moving_person_opens_one_region_around_both_positions_with_margin() -> None:
    planner = SearchRegionPlanner(SearchRegionSettings(min_region_w=49, min_region_h=98))
    assert planner.plan(0.0, ward_frame(person_x=200), NO_TRACKS) is None
    regions = planner.plan(0.5, ward_frame(person_x=240), NO_TRACKS)
    assert regions is not None and len(regions) == 1
    # Both silhouettes (x 200-280, y 300-410) lie inside, with the detector's margin around them.
    assert contains(regions, np.array([200.0 - 30, 300.0 - 30, 280.0 + 30, 410.0 + 30]))
    area = float(np.prod(regions[0, 2:] - regions[0, :2]))
    assert area < 0.25 * 640 * 480, "a single walker must not make the detector scan most of the frame"


def test_tracked_people_are_searched_even_when_still() -> None:
    planner = SearchRegionPlanner()
    planner.plan(0.0, ward_frame(), NO_TRACKS)
    seated = np.array([[400.0, 200.0, 460.0, 330.0]])
    regions = planner.plan(0.5, ward_frame(), seated)
    assert regions is not None and len(regions) == 1 and contains(regions, seated[0])


def test_a_change_of_the_whole_frame_scans_it_whole() -> None:
    planner = SearchRegionPlanner()
    planner.plan(0.0, ward_frame(), NO_TRACKS)
    lights_on = np.clip(ward_frame().astype(np.int16) + 60, 0, 255).astype(np.uint8)
    assert planner.plan(0.5, lights_on, NO_TRACKS) is None
    # ... which counts as the full scan: the next unchanged frame is searched by regions again.
    assert planner.plan(1.0, lights_on, NO_TRACKS) is not None


class DarkBlobDetector:
    """A real ``PersonDetector`` for geometry: one box around the pixels darker than 50, score 0.9."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        self.calls.append(image.shape[:2])
        ys, xs = np.nonzero(image.max(axis=2) < 50)
        if len(xs) == 0:
            return Detections.empty()
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
        return Detections(box, np.array([0.9]))


def test_detections_in_regions_come_back_in_frame_coordinates() -> None:
    detector = DarkBlobDetector()
    image = ward_frame(person_x=240)
    regions = np.array([[180.0, 250.0, 330.0, 470.0], [500.0, 0.0, 640.0, 200.0]])
    found = detect_in_regions(detector, image, regions, nms_iou=0.3)
    np.testing.assert_array_equal(found.xyxy, [[240.0, 300.0, 280.0, 410.0]])
    assert detector.calls == [(220, 150), (200, 140)], "each region is scanned once, at its own size"
    assert len(detect_in_regions(detector, image, np.zeros((0, 4)), nms_iou=0.3)) == 0


@pytest.mark.skipif(not VIDEO.is_file() or not REFERENCE.is_file(), reason=f"needs {VIDEO} and its det file")
def test_hog_finds_the_same_real_pedestrians_in_regions_as_in_the_whole_frame() -> None:
    """Regions grown around each reference pedestrian (as around tracks): HOG finds there what it finds on the
    whole frame, at the same places, while scanning a fraction of the pixels."""
    reference = np.loadtxt(REFERENCE, delimiter=",")
    detector = HogPersonDetector()
    capture = cv2.VideoCapture(str(VIDEO))
    whole_found = region_found = 0
    scanned = []
    for index in range(0, 795, 40):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, f"cannot read frame {index} of {VIDEO}"
        image = np.asarray(frame, dtype=np.uint8)
        rows = reference[(reference[:, 0] == index + 1) & (reference[:, 6] >= 0.5)]
        truth = np.c_[rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
        planner = SearchRegionPlanner(SearchRegionSettings(min_region_w=49, min_region_h=98))
        planner.plan(0.0, image, NO_TRACKS)
        regions = planner.plan(0.5, image, truth)
        assert regions is not None
        scanned.append(float(np.sum(area(regions))) / (image.shape[0] * image.shape[1]))
        whole = detector.detect(image)
        inside = detect_in_regions(detector, image, regions, nms_iou=0.3)
        if len(whole) and len(truth):
            whole_found += int(np.sum(iou_matrix(truth, whole.xyxy).max(axis=1) > 0.5))
        if len(inside) and len(truth):
            region_found += int(np.sum(iou_matrix(truth, inside.xyxy).max(axis=1) > 0.5))
    capture.release()
    # Measured: 93 in regions, 92 on whole frames. HOG's window grid starts at each crop's corner, so a window
    # whose margin is near zero can flip either way; more than a few lost would mean regions cut people off.
    assert whole_found >= 80, f"HOG found only {whole_found} reference pedestrians on whole frames"
    assert region_found >= 0.95 * whole_found, f"regions found {region_found}, whole frames {whole_found}"
    assert max(scanned) < 0.6
