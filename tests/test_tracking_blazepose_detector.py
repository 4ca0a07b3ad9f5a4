"""The BlazePose person detector: anchors, decoding on real photos, tiles, body axis, landmark refinement."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from repo_scripts import load_script

from gaitwatch.daemon.assembly import build_detector, search_region_settings
from gaitwatch.daemon.settings import ConfigError, Settings, parse_settings
from gaitwatch.pose.landmark_refinement import LandmarkRefinedDetector
from gaitwatch.tracking.blazepose_detector import (
    BlazePoseDetectorSettings,
    BlazePosePersonDetector,
    PersonDetectorModelError,
    body_axis_angle,
    packaged_model_path,
    plan_tiles,
    ssd_anchors,
)
from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.detector_union import UnionDetector
from gaitwatch.tracking.hog import HogPersonDetector
from gaitwatch.tracking.search_regions import detect_in_regions
from gaitwatch.tracking.types import Detections

REPO = Path(__file__).resolve().parents[1]
COCO = REPO.parent / "shared" / "data" / "pose" / "coco"
LABELS = REPO / "tests" / "data" / "posture_labels.csv"
needs_photos = pytest.mark.skipif(
    not (COCO / "test_coco.json").is_file(),
    reason=f"shared annotated photos not found at {COCO} (the shared data folder sits beside the repository)",
)
SKIER = 442619  # one upright skier filling the photo
BATTER = 460541  # a baseball batter, mid-swing
SEATED = 198196  # a man sitting on a low chair in a street photo (HOG does not find him)


def _annotation(annotation_id: int) -> tuple[NDArray[np.uint8], NDArray[np.float64], NDArray[np.float64]]:
    """Image, person box (xyxy) and mid-hip point of one COCO annotation."""
    doc: dict[str, Any] = json.loads((COCO / "test_coco.json").read_text(encoding="utf-8"))
    ann = next(a for a in doc["annotations"] if a["id"] == annotation_id)
    name = next(i["file_name"] for i in doc["images"] if i["id"] == ann["image_id"])
    image = np.asarray(cv2.imread(str(COCO / name)), dtype=np.uint8)
    x, y, w, h = ann["bbox"]
    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    return image, np.array([x, y, x + w, y + h]), kp[[11, 12], :2].mean(axis=0)


def _bench_module() -> Any:
    """``bench/detect_photos.py`` (not a package): its loaders and matching are what the figures come from."""
    return load_script("detect_photos", "bench")


def _settings(**detector: Any) -> Settings:
    return parse_settings({"cameras": [{"id": "c", "source": "video.mp4"}], "detector": detector})


def test_anchor_grid_matches_mediapipe_pose_detection_options() -> None:
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    # Stride 8 (28 x 28 cells, 2 anchors each), stride 16 (14 x 14, 2 each), stride 32 (7 x 7, 6 each).
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14])
    assert np.allclose(anchors[1568 + 392 : 1568 + 392 + 6], [0.5 / 7, 0.5 / 7])
    assert np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_body_axis_angle_turns_each_body_upright() -> None:
    hips = np.zeros((4, 2))
    heads = np.array([[0.0, -1.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])  # up, right, left, down (y points down)
    assert np.allclose(body_axis_angle(hips, heads), [0.0, math.pi / 2, -math.pi / 2, math.pi])


@needs_photos
@pytest.mark.parametrize("annotation_id", [SKIER, BATTER, SEATED])
def test_decoded_hip_keypoint_lands_on_the_annotated_hips(annotation_id: int) -> None:
    image, box, mid_hip = _annotation(annotation_id)
    # The whole-image pass alone: this checks the anchors and the decoding, not the tiling.
    found = BlazePosePersonDetector(BlazePoseDetectorSettings(tile_fraction=0.0)).detect_with_axis(image)
    height = box[3] - box[1]
    distance = np.linalg.norm(found.hip_centre - mid_hip, axis=1) / height
    assert distance.min() < 0.2, f"no decoded hip centre near the annotated hips ({distance.min():.2f} heights)"
    nearest = int(np.argmin(distance))
    assert abs(found.angle[nearest]) < math.radians(35), "an upright or seated person's axis points up"


@needs_photos
def test_a_photo_turned_90_degrees_still_finds_the_person_with_a_lying_axis() -> None:
    image, _, mid_hip = _annotation(SKIER)
    upright = BlazePosePersonDetector().detect_with_axis(image)
    height = image.shape[0]
    turned = np.ascontiguousarray(cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE), dtype=np.uint8)
    found = BlazePosePersonDetector().detect_with_axis(turned)
    hip_turned = np.array([height - mid_hip[1], mid_hip[0]])  # (x, y) -> (H - y, x)
    distance = np.linalg.norm(found.hip_centre - hip_turned, axis=1)
    assert len(found.angle) and distance.min() < 0.1 * height
    nearest = int(np.argmin(distance))
    before = upright.angle[int(np.argmin(np.linalg.norm(upright.hip_centre - mid_hip, axis=1)))]
    turn = math.remainder(found.angle[nearest] - before, 2 * math.pi)
    assert abs(turn - math.pi / 2) < math.radians(15), "turning the picture clockwise turns the body axis with it"


@needs_photos
def test_shipped_blazepose_kind_boxes_a_seated_person_hog_misses() -> None:
    detector = build_detector(_settings(kind="blazepose"))
    assert isinstance(detector, LandmarkRefinedDetector)
    image, box, _ = _annotation(SEATED)
    assert iou_matrix(box[None], detector.detect(image).xyxy).max(initial=0.0) >= 0.5
    assert iou_matrix(box[None], HogPersonDetector().detect(image).xyxy).max(initial=0.0) < 0.5, (
        "HOG finds the seated man too: this photo no longer shows what BlazePose adds"
    )


@needs_photos
@pytest.mark.parametrize("kind", ["blazepose", None])
def test_shipped_detectors_meet_the_posture_targets_on_the_shared_photos(kind: str | None) -> None:
    """Issue 13's targets, with the posture labels committed beside the tests (made by looking at the photos):
    recall at IoU 0.5 of seated, crouching and lying people >= 0.45; of all people turned 90 degrees >= 0.40.
    ``None``: the default detector (HOG with BlazePose for near people)."""
    bench = _bench_module()
    detector = build_detector(_settings(kind=kind) if kind is not None else _settings())
    people = bench.load_people(COCO.parent)
    labels = bench.load_labels(LABELS)
    non_upright = np.array([labels[(p.dataset, str(p.annotation_id))] == "non_upright" for p in people])
    assert non_upright.sum() == 13
    recall = {}
    for rotation in (0, 90):
        ious = np.zeros(len(people))
        for path in sorted({p.image_path for p in people}):
            idx = [i for i, p in enumerate(people) if p.image_path == path]
            image = np.asarray(cv2.imread(str(path)), dtype=np.uint8)
            truth = np.stack([people[i].xyxy for i in idx])
            if rotation:
                image, truth = bench.rotate_cw(image, truth)
            ious[idx] = bench.matched_iou(truth, detector.detect(image).xyxy)
        recall[rotation] = (float(np.mean(ious[non_upright] >= 0.5)), float(np.mean(ious >= 0.5)))
    assert recall[0][0] >= 0.45, f"non-upright recall {recall[0][0]:.2f}"
    assert recall[90][1] >= 0.40, f"turned 90 degrees, all-people recall {recall[90][1]:.2f}"


@needs_photos
def test_tiles_find_a_small_person_and_map_the_box_back_to_frame_pixels() -> None:
    image, box, mid_hip = _annotation(SKIER)
    x0, y0 = int(box[0]) - 20, int(box[1]) - 20
    person = image[y0 : int(box[3]) + 20, x0 : int(box[2]) + 20]
    scale = 0.35  # the person becomes ~120 px tall in a 1280 x 960 frame: too small for the whole-frame pass
    small = cv2.resize(person, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((960, 1280, 3), 128, dtype=np.uint8)
    ox, oy = 700, 500
    frame[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    expected_hip = (mid_hip - [x0, y0]) * scale + [ox, oy]
    expected_box = (box - [x0, y0, x0, y0]) * scale + [ox, oy, ox, oy]

    whole_only = BlazePosePersonDetector(BlazePoseDetectorSettings(tile_fraction=0.0)).detect_with_axis(frame)
    assert len(whole_only.detections) == 0, "the whole-frame pass alone should not see a person this small"
    tiled = BlazePosePersonDetector().detect_with_axis(frame)
    assert len(tiled.detections) == 1
    assert np.linalg.norm(tiled.hip_centre[0] - expected_hip) < 0.1 * small.shape[0]
    assert iou_matrix(expected_box[None], tiled.detections.xyxy)[0, 0] >= 0.5


def test_tiles_cover_the_frame_edge_to_edge_with_the_configured_overlap() -> None:
    s = BlazePoseDetectorSettings(tile_fraction=0.4, tile_overlap=0.25)
    tiles = plan_tiles(768, 576, s)
    whole, grid = tiles[0], tiles[1:]
    assert whole.side == 768 and whole.x == 0 and whole.y == (576 - 768) / 2  # letterboxed, centred
    assert len(grid) == 5 * 3  # (768 - 230.4) / 172.8 -> 4 steps across, 2 down
    side = 0.4 * 576
    assert all(t.side == pytest.approx(side) for t in grid)
    xs, ys = sorted({t.x for t in grid}), sorted({t.y for t in grid})
    assert xs[0] == 0 and xs[-1] + side == pytest.approx(768) and ys[0] == 0 and ys[-1] + side == pytest.approx(576)
    assert max(np.diff(xs)) <= side * 0.75 + 1e-9 and max(np.diff(ys)) <= side * 0.75 + 1e-9
    # A small image (a search region around one person) is looked at whole only.
    assert len(plan_tiles(200, 300, s)) == 1


@needs_photos
def test_threads_share_one_detector_and_get_the_same_answer() -> None:
    image, _, _ = _annotation(SKIER)
    detector = BlazePosePersonDetector()
    expected = detector.detect(image)
    results: list[NDArray[np.float64]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(detector.detect(image).xyxy)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 9 and all(np.array_equal(r, expected.xyxy) for r in results)


def test_bad_model_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.tflite"
    with pytest.raises(PersonDetectorModelError, match=r"not found.*nothing\.tflite.*reinstall"):
        BlazePosePersonDetector(BlazePoseDetectorSettings(model_path=missing))
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a model" * 100)
    with pytest.raises(PersonDetectorModelError, match=r"garbage\.tflite cannot be loaded"):
        BlazePosePersonDetector(BlazePoseDetectorSettings(model_path=garbage))
    landmark_model = packaged_model_path().parents[2] / "pose" / "models" / "pose_landmark_lite.tflite"
    with pytest.raises(PersonDetectorModelError, match="has input"):
        BlazePosePersonDetector(BlazePoseDetectorSettings(model_path=landmark_model))


def test_settings_validate_tiling_and_kinds() -> None:
    with pytest.raises(ValueError, match="tile_fraction"):
        BlazePoseDetectorSettings(tile_fraction=0.05)
    with pytest.raises(ConfigError, match="tile_fraction"):
        _settings(kind="blazepose", blazepose={"tile_fraction": 0.05})
    with pytest.raises(ConfigError, match="kind"):
        _settings(kind="blazepose-xl")
    raw = build_detector(_settings(kind="blazepose", blazepose={"refine_with_landmarks": False}))
    assert isinstance(raw, BlazePosePersonDetector)
    assert isinstance(build_detector(_settings(kind="hog+blazepose")), UnionDetector)
    # Region scans between whole-frame scans: a region smaller than a tile is looked at in one pass.
    regions = search_region_settings(_settings(kind="blazepose"))
    assert regions.full_frame_interval_s > 0 and regions.min_region_h == BlazePoseDetectorSettings().min_tile_px


@needs_photos
def test_union_keeps_each_detectors_people_once() -> None:
    image, _, _ = _annotation(SEATED)
    hog, blaze = HogPersonDetector(), build_detector(_settings(kind="blazepose"))
    union = UnionDetector([hog, blaze], nms_iou=0.4).detect(image)
    parts = np.concatenate([hog.detect(image).xyxy, blaze.detect(image).xyxy])
    assert 0 < len(union) <= parts.shape[0]
    # Every part's box is either in the union or overlaps a kept box by more than the NMS threshold.
    assert np.all(iou_matrix(parts, union.xyxy).max(axis=1) > 0.4 - 1e-9)


def test_hog_blazepose_kind_is_hog_with_near_people_blazepose_on_whole_frames() -> None:
    union = build_detector(_settings(kind="hog+blazepose"))
    assert isinstance(union, UnionDetector)
    assert [type(p) for p in union.parts] == [HogPersonDetector]
    (near,) = union.whole_frame_parts
    assert isinstance(near, LandmarkRefinedDetector)
    # Beside HOG, BlazePose looks for near people: coarse tiles; alone it keeps the fine ones for far people.
    assert near.detector.settings.tile_fraction == BlazePoseDetectorSettings().near_tile_fraction
    alone = build_detector(_settings(kind="blazepose"))
    assert isinstance(alone, LandmarkRefinedDetector)
    assert alone.detector.settings.tile_fraction == BlazePoseDetectorSettings().tile_fraction
    assert len(plan_tiles(768, 576, near.detector.settings)) < len(plan_tiles(768, 576, alone.detector.settings)) / 3
    every_scan = build_detector(_settings(kind="hog+blazepose", blazepose_scans="all"))
    assert isinstance(every_scan, UnionDetector) and len(every_scan.parts) == 2 and not every_scan.whole_frame_parts
    with pytest.raises(ValueError, match="near_tile_fraction"):
        BlazePoseDetectorSettings(near_tile_fraction=0.05)


@needs_photos
def test_tall_search_regions_get_blazepose_only_where_hog_finds_nobody() -> None:
    image, box, _ = _annotation(SEATED)
    union = build_detector(_settings(kind="hog+blazepose"))
    assert isinstance(union, UnionDetector)
    hog = union.parts[0]
    # A whole-frame scan (or a still image) runs BlazePose too and finds the seated man HOG misses.
    assert iou_matrix(box[None], union.detect(image).xyxy).max(initial=0.0) >= 0.5
    # A search region around him: HOG finds nobody there, so BlazePose looks at it (whole, in one pass).
    pad = 0.35 * (box[3] - box[1])
    around = np.array([[max(box[0] - pad, 0.0), max(box[1] - pad, 0.0), box[2] + pad, box[3] + pad]]).round()
    around[0, 2:] = np.minimum(around[0, 2:], [image.shape[1], image.shape[0]])
    assert len(detect_in_regions(hog, image, around, 0.3)) == 0
    assert iou_matrix(box[None], detect_in_regions(union, image, around, 0.3).xyxy).max(initial=0.0) >= 0.5
    # The same region cut from a frame three times as tall could only hold a far person: HOG's alone.
    x0, y0, x1, y1 = around[0].astype(int)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    assert len(union.detect_region(crop, 3 * crop.shape[0])) == 0
    # A region HOG finds people in is HOG's alone: exactly HOG's boxes, no network pass.
    whole = np.array([[0.0, 0.0, float(image.shape[1]), float(image.shape[0])]])
    hog_boxes = detect_in_regions(hog, image, whole, 0.3)
    assert len(hog_boxes)
    np.testing.assert_array_equal(detect_in_regions(union, image, whole, 0.3).xyxy, hog_boxes.xyxy)


class _FixedBoxes:
    """A detector reporting the same boxes for any image: the input of the union's merging rules."""

    def __init__(self, xyxy: list[list[float]], score: list[float]) -> None:
        self.found = Detections(np.asarray(xyxy, dtype=np.float64), np.asarray(score, dtype=np.float64))

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        return self.found


def test_union_drops_a_box_on_part_of_a_better_boxed_person() -> None:
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    whole = [250.0, 120.0, 430.0, 370.0]  # a near person, boxed whole
    legs = [350.0, 190.0, 400.0, 350.0]  # a find on their legs: inside, IoU 0.18
    head = [300.0, 120.0, 350.0, 245.0]  # HOG's window on their head and shoulders
    beside = [440.0, 130.0, 520.0, 360.0]  # somebody next to them
    union = UnionDetector(
        [_FixedBoxes([head, beside], [0.8, 0.7])], whole_frame_parts=[_FixedBoxes([whole, legs], [1.0, 0.95])]
    )
    np.testing.assert_array_equal(union.detect(image).xyxy, [whole, beside])
    # A better-scored box is not dropped for lying inside a weaker one; HOG's boxes hold no other box (a far walker
    # overlapping a loose HOG window stays).
    assert (
        len(UnionDetector([_FixedBoxes([head], [0.9])], whole_frame_parts=[_FixedBoxes([whole], [0.5])]).detect(image))
        == 2
    )
    assert len(UnionDetector([_FixedBoxes([whole, head], [0.9, 0.5])]).detect(image)) == 2


class _ThreadRecordingBoxes(_FixedBoxes):
    """Fixed boxes that also note which thread asked, and take a moment (a real pass takes ~60-90 ms)."""

    def __init__(self, xyxy: list[list[float]], score: list[float], fails: bool = False) -> None:
        super().__init__(xyxy, score)
        self.threads: list[int] = []
        self.fails = fails

    def detect(self, image: NDArray[np.uint8]) -> Detections:
        self.threads.append(threading.get_ident())
        time.sleep(0.02)
        if self.fails:
            raise RuntimeError("the near-people detector broke")
        return self.found


def test_parallel_whole_frame_scan_finds_the_same_boxes_with_both_halves_on_two_threads() -> None:
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    whole, legs = [250.0, 120.0, 430.0, 370.0], [350.0, 190.0, 400.0, 350.0]
    head, beside = [300.0, 120.0, 350.0, 245.0], [440.0, 130.0, 520.0, 360.0]
    hog = _ThreadRecordingBoxes([head, beside], [0.8, 0.7])
    near = _ThreadRecordingBoxes([whole, legs], [1.0, 0.95])
    sequential = UnionDetector([hog], whole_frame_parts=[near]).detect(image)
    parallel = UnionDetector([hog], whole_frame_parts=[near], parallel_whole_frame=True)
    found = parallel.detect(image)
    np.testing.assert_array_equal(found.xyxy, sequential.xyxy)
    np.testing.assert_array_equal(found.score, sequential.score)
    assert hog.threads[-1] == threading.get_ident() and near.threads[-1] != threading.get_ident()
    # A search region stays on the caller's thread (one pass of HOG; the fallback only where HOG found nobody).
    parallel.detect_region(image, image.shape[0])
    assert hog.threads[-1] == threading.get_ident()


def test_parallel_whole_frame_scan_runs_on_the_callers_thread_while_the_helper_is_busy() -> None:
    """Two cameras' whole-frame scans at once: the second does not queue behind the first one's helper job."""
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    entered, gate = threading.Event(), threading.Event()

    class _HeldFirstCall(_ThreadRecordingBoxes):
        def detect(self, image: NDArray[np.uint8]) -> Detections:
            if not entered.is_set():  # the first scan's helper job holds the helper until released
                entered.set()
                assert gate.wait(10.0)
            return super().detect(image)

    near = _HeldFirstCall([[300.0, 100.0, 400.0, 400.0]], [0.9])
    union = UnionDetector(
        [_FixedBoxes([[10.0, 10.0, 50.0, 110.0]], [0.9])], whole_frame_parts=[near], parallel_whole_frame=True
    )
    first = threading.Thread(target=union.detect, args=(image,))
    first.start()
    assert entered.wait(10.0)
    assert len(union.detect(image)) == 2  # would wait for ever behind the held helper if it queued there
    assert near.threads == [threading.get_ident()]  # ran on this caller's own thread
    gate.set()
    first.join(10.0)
    assert len(near.threads) == 2 and near.threads[1] != threading.get_ident()  # the held helper job, done


def test_parallel_whole_frame_scan_reports_a_failing_part_and_frees_its_helper() -> None:
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    near = _ThreadRecordingBoxes([[300.0, 100.0, 400.0, 400.0]], [0.9], fails=True)
    union = UnionDetector(
        [_FixedBoxes([[10.0, 10.0, 50.0, 110.0]], [0.9])], whole_frame_parts=[near], parallel_whole_frame=True
    )
    with pytest.raises(RuntimeError, match="broke"):
        union.detect(image)
    near.fails = False
    assert len(union.detect(image)) == 2
    assert near.threads[-1] != threading.get_ident()  # the helper was given back: the next scan used it again
