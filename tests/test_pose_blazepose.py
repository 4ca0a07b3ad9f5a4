"""The BlazePose backend on real model files: loading errors, presence, keypoints mapped to frame pixels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.blazepose import (
    BlazePoseBackend,
    BlazePoseSettings,
    CropLandmarks,
    ModelVariant,
    PoseModelError,
    misalignment,
)
from gaitwatch.pose.keypoints import NUM_LANDMARKS, Landmark
from gaitwatch.pose.roi import Roi, crop_to_frame, extract_crop, roi_from_box, rotate_world

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEO = SHARED / "video" / "vtest.avi"
DETS = SHARED / "video" / "vtest_PETS09-S2L1_det.txt"
needs_shared = pytest.mark.skipif(
    not (VIDEO.is_file() and DETS.is_file()),
    reason=f"real-person footage not found at {VIDEO} (the shared data folder sits beside the repository)",
)


@pytest.fixture(scope="module", params=["full", "lite"])
def backend(request: pytest.FixtureRequest) -> BlazePoseBackend:
    return BlazePoseBackend(BlazePoseSettings(model=request.param))


@pytest.fixture(scope="module")
def full() -> BlazePoseBackend:
    return BlazePoseBackend(BlazePoseSettings(model="full"))


@pytest.fixture(scope="module")
def pets_people() -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Frame 100 of vtest.avi and the confident detector boxes of its walking people."""
    if not (VIDEO.is_file() and DETS.is_file()):
        pytest.skip(f"real-person footage not found at {VIDEO}")
    cap = cv2.VideoCapture(str(VIDEO))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    cap.release()
    assert ok
    det = np.loadtxt(DETS, delimiter=",")
    rows = det[(det[:, 0] == 101) & (det[:, 6] > 0.95)]  # det frame numbers are 1-based
    xyxy = np.c_[rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
    return np.asarray(frame, dtype=np.uint8), xyxy.astype(np.float64)


def test_backend_satisfies_the_protocol(full: BlazePoseBackend) -> None:
    b: PoseBackend = full
    assert b.name == "blazepose-full"
    assert b.model_version.startswith("pose_landmark_full@") and len(b.model_version) == len("pose_landmark_full@") + 12


def test_missing_model_file_names_the_path_and_the_remedy(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tflite"
    with pytest.raises(PoseModelError, match=r"not found: .*nope\.tflite.*model_path"):
        BlazePoseBackend(BlazePoseSettings(model_path=missing))


def test_corrupt_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 100)
    with pytest.raises(PoseModelError, match=r"corrupt\.tflite cannot be loaded"):
        BlazePoseBackend(BlazePoseSettings(model_path=bad))


def test_second_pass_auto_means_full_only() -> None:
    # Measured: the aligned second pass helps the full model and hurts the lite model's ankles.
    assert BlazePoseSettings(model="full").uses_second_pass
    assert not BlazePoseSettings(model="lite").uses_second_pass
    assert BlazePoseSettings(model="lite", second_pass="on").uses_second_pass
    assert not BlazePoseSettings(model="full", second_pass="off").uses_second_pass


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="num_threads"):
        BlazePoseSettings(num_threads=0)
    with pytest.raises(ValueError, match="roi_scale"):
        BlazePoseSettings(roi_scale=0.0)


def _non_person_images() -> list[NDArray[np.uint8]]:
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, 480, dtype=np.float64)
    gradient = np.stack([np.tile(ramp, (360, 1)), np.tile(ramp[::-1], (360, 1)), np.full((360, 480), 90.0)], -1)
    wall = np.full((360, 480, 3), (180, 190, 200), dtype=np.uint8)  # a flat painted wall, BGR
    noise = rng.integers(0, 256, size=(360, 480, 3), dtype=np.uint8)
    return [gradient.astype(np.uint8), wall, noise]


# Person-shaped boxes where a tracker could hand over a false detection.
_BOXES = np.array([[140.0, 40.0, 340.0, 330.0], [50.0, 50.0, 150.0, 250.0]])


@pytest.mark.parametrize("model", ["full", "lite"])
def test_presence_rejects_generated_images_without_a_person(model: ModelVariant) -> None:
    backend = BlazePoseBackend(BlazePoseSettings(model=model))
    gradient, wall, noise = _non_person_images()
    # Measured: the lite model's presence head is fooled by a smooth colour ramp (0.6-0.97), which never
    # occurs in a ward; the full model rejects all three. Real backgrounds are tested below.
    images = [gradient, wall, noise] if model == "full" else [wall, noise]
    for image in images:
        poses = backend.estimate(image, np.array([5, 6], dtype=np.int64), _BOXES)
        assert np.all(poses.presence < 0.5)


@needs_shared
def test_presence_rejects_real_background_boxes(
    backend: BlazePoseBackend, pets_people: tuple[NDArray[np.uint8], NDArray[np.float64]]
) -> None:
    """Person-sized boxes on the empty parts of a real scene (lawn, road, walls) are not people."""
    frame, people = pets_people
    rng = np.random.default_rng(3)
    boxes: list[NDArray[np.float64]] = []
    while len(boxes) < 12:
        w = rng.uniform(30.0, 60.0)
        h = w * rng.uniform(1.8, 2.6)
        x, y = rng.uniform(0.0, frame.shape[1] - w), rng.uniform(0.0, frame.shape[0] - h)
        b = np.array([x, y, x + w, y + h])
        clear = (people[:, 0] - w > b[2]) | (people[:, 2] + w < b[0]) | (people[:, 1] - h > b[3])
        clear |= people[:, 3] + h < b[1]
        if np.all(clear):
            boxes.append(b)
    poses = backend.estimate(frame, np.arange(len(boxes), dtype=np.int64), np.array(boxes))
    # Measured over 100 such boxes in 20 frames: 1% (full) and 4% (lite) pass 0.5; allow one in twelve.
    assert int(np.sum(poses.presence >= 0.5)) <= 1


@needs_shared
def test_presence_accepts_real_people_and_keypoints_land_on_them(
    backend: BlazePoseBackend, pets_people: tuple[NDArray[np.uint8], NDArray[np.float64]]
) -> None:
    frame, xyxy = pets_people
    assert len(xyxy) >= 3
    ids = np.arange(100, 100 + len(xyxy), dtype=np.int64)
    poses = backend.estimate(frame, ids, xyxy)
    assert np.array_equal(poses.track_ids, ids)
    assert poses.keypoints.shape == (len(xyxy), NUM_LANDMARKS, 3)
    assert np.all(poses.presence > 0.5)
    for kp, box in zip(poses.keypoints, xyxy, strict=True):
        w, h = box[2] - box[0], box[3] - box[1]
        margin = np.array([-0.15 * w, -0.1 * h, 0.15 * w, 0.1 * h])
        lo, hi = box[:2] + margin[:2], box[2:] + margin[2:]
        body = kp[[Landmark.NOSE, Landmark.LEFT_HIP, Landmark.RIGHT_HIP, Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE]]
        assert np.all((body[:, :2] >= lo) & (body[:, :2] <= hi))
        # Head in the top quarter, ankles in the bottom quarter of a walking person's box.
        assert kp[Landmark.NOSE, 1] < box[1] + 0.25 * h
        assert kp[Landmark.LEFT_ANKLE, 1] > box[3] - 0.25 * h
        assert kp[Landmark.RIGHT_ANKLE, 1] > box[3] - 0.25 * h
        assert np.all((kp[:, 2] >= 0.0) & (kp[:, 2] <= 1.0))
        assert kp[Landmark.LEFT_HIP, 2] > 0.5  # a walking person's hips are visible
    # World landmarks are metres around the hips: a person is 1-2.2 m tall, hips near the origin.
    for world in poses.world:
        hip_mid = world[[Landmark.LEFT_HIP, Landmark.RIGHT_HIP]].mean(axis=0)
        assert np.linalg.norm(hip_mid) < 0.1
        span = world[:, 1].max() - world[:, 1].min()
        assert 1.0 < span < 2.2


@needs_shared
def test_keypoints_follow_the_person_when_the_frame_is_shifted_and_scaled(
    full: BlazePoseBackend, pets_people: tuple[NDArray[np.uint8], NDArray[np.float64]]
) -> None:
    """Mapping back to frame pixels: the same person placed elsewhere, twice as large, gives the same pose."""
    frame, xyxy = pets_people
    box = xyxy[:1]
    base = full.estimate(frame, np.array([1], dtype=np.int64), box)
    # Place the frame 2x enlarged at an offset inside a bigger canvas.
    big = cv2.resize(frame, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)
    dx, dy = 37, 23
    canvas = np.zeros((big.shape[0] + 60, big.shape[1] + 60, 3), dtype=np.uint8)
    canvas[dy : dy + big.shape[0], dx : dx + big.shape[1]] = big
    moved = full.estimate(canvas, np.array([1], dtype=np.int64), box * 2.0 + np.array([dx, dy, dx, dy]))
    expected = base.keypoints[0, :, :2] * 2.0 + np.array([dx, dy])
    visible = base.keypoints[0, :, 2] > 0.5
    err = np.linalg.norm(moved.keypoints[0, visible, :2] - expected[visible], axis=1)
    # The crops differ only by resampling, so the landmarks agree within ~2% of the 2x box height.
    assert np.median(err) < 0.02 * 2.0 * (box[0, 3] - box[0, 1])


def test_empty_input_gives_empty_poses(full: BlazePoseBackend) -> None:
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    poses = full.estimate(frame, np.zeros(0, dtype=np.int64), np.zeros((0, 4)))
    assert len(poses) == 0


def test_shape_mismatch_is_rejected(full: BlazePoseBackend) -> None:
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="track_ids"):
        full.estimate(frame, np.arange(2, dtype=np.int64), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="BGR"):
        full.estimate(np.zeros((120, 160), dtype=np.uint8), np.arange(1, dtype=np.int64), np.zeros((1, 4)))


@needs_shared
def test_lying_person_is_found_by_the_turned_hypotheses(
    full: BlazePoseBackend, pets_people: tuple[NDArray[np.uint8], NDArray[np.float64]]
) -> None:
    """The frame turned by 90 degrees makes every walker lie down: boxes become wide, poses must follow."""
    frame, xyxy = pets_people
    h = frame.shape[0]
    turned = np.ascontiguousarray(cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE), dtype=np.uint8)  # (x,y)->(h-y,x)
    boxes = np.stack([h - xyxy[:, 3], xyxy[:, 0], h - xyxy[:, 1], xyxy[:, 2]], axis=1)
    ids = np.arange(len(boxes), dtype=np.int64)
    upright = full.estimate(frame, ids, xyxy)
    lying = full.estimate(turned, ids, boxes)
    plain = BlazePoseBackend(BlazePoseSettings(model="full", lying_hypotheses=False)).estimate(turned, ids, boxes)
    assert np.all(lying.presence > 0.5)
    expected = np.stack([h - upright.keypoints[:, :, 1], upright.keypoints[:, :, 0]], axis=-1)
    heights = (xyxy[:, 3] - xyxy[:, 1])[:, None]
    err_lying = np.linalg.norm(lying.keypoints[:, :, :2] - expected, axis=-1) / heights
    err_plain = np.linalg.norm(plain.keypoints[:, :, :2] - expected, axis=-1) / heights
    # Turned ROIs see the same upright person, so they agree with the upright result within ~5% of the
    # person's height; the untried upright ROI on a lying person does far worse.
    assert float(np.median(err_lying)) < 0.05
    assert float(np.median(err_plain)) > 2 * float(np.median(err_lying))


@needs_shared
@pytest.mark.parametrize("model", ["full", "full-int8"])
def test_run_roi_gives_exactly_the_models_answer_mapped_to_the_frame(
    model: ModelVariant, pets_people: tuple[NDArray[np.uint8], NDArray[np.float64]]
) -> None:
    """run_roi writes the crop into the interpreter in place and maps the outputs with its own arithmetic; it
    must give what the plain route gives: RGB crop through set_tensor, then crop_to_frame and rotate_world."""
    from ai_edge_litert.interpreter import Interpreter

    frame, people = pets_people
    backend = BlazePoseBackend(BlazePoseSettings(model=model))
    plain: Any = Interpreter(model_path=str(backend.model_path), num_threads=1)
    plain.allocate_tensors()
    detail = plain.get_input_details()[0]
    outputs = {str(d["name"]): int(d["index"]) for d in plain.get_output_details()}
    box_roi = roi_from_box(people[0])
    for roi in (box_roi, Roi(box_roi.cx, box_roi.cy, box_roi.side, 0.4)):
        rgb = cv2.cvtColor(extract_crop(frame, roi), cv2.COLOR_BGR2RGB)
        if detail["dtype"] == np.int8:
            tensor: NDArray[Any] = (rgb.astype(np.int16) - 128).astype(np.int8)
        else:
            tensor = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
        plain.set_tensor(int(detail["index"]), tensor[None])
        plain.invoke()
        points = plain.get_tensor(outputs["Identity"]).reshape(39, 5)
        world = plain.get_tensor(outputs["Identity_4"]).reshape(39, 3)[:NUM_LANDMARKS]
        presence = float(plain.get_tensor(outputs["Identity_1"]).reshape(-1)[0])

        got = backend.run_roi(frame, roi)
        assert got.presence == pytest.approx(presence, abs=1e-7)
        np.testing.assert_allclose(got.keypoints[:, :2], crop_to_frame(points[:NUM_LANDMARKS, :2], roi), atol=1e-3)
        np.testing.assert_allclose(got.keypoints[:, 2], 1.0 / (1.0 + np.exp(-points[:NUM_LANDMARKS, 3])), atol=1e-5)
        np.testing.assert_allclose(got.world, rotate_world(world, roi.angle), atol=1e-6)
        np.testing.assert_allclose(got.aux, crop_to_frame(points[NUM_LANDMARKS:, :2], roi), atol=1e-3)


@needs_shared
def test_profiled_run_roi_is_run_roi_with_its_stage_times(
    full: BlazePoseBackend, pets_people: tuple[NDArray[np.uint8], NDArray[np.float64]]
) -> None:
    frame, people = pets_people
    roi = roi_from_box(people[0])
    result, times = full.run_roi_profiled(frame, roi)
    reference = full.run_roi(frame, roi)
    np.testing.assert_array_equal(result.keypoints, reference.keypoints)
    assert result.presence == reference.presence
    assert min(times.warp, times.feed, times.invoke, times.decode) >= 0.0
    assert times.invoke > 0.0  # the model itself always takes some CPU time


def _one_by_one(backend: BlazePoseBackend, frame: NDArray[np.uint8], box: NDArray[np.float64]) -> CropLandmarks:
    """The per-person rule written out crop by crop with run_roi (what estimate groups across people)."""
    s = backend.settings
    roi = roi_from_box(box, s.roi_scale)
    first = backend.run_roi(frame, roi)
    if s.lying_hypotheses and box[2] - box[0] > box[3] - box[1]:
        for angle in (0.5 * math.pi, -0.5 * math.pi):
            turned = backend.run_roi(frame, Roi(roi.cx, roi.cy, roi.side, angle))
            if turned.presence > first.presence:
                first = turned
    if not s.uses_second_pass or first.presence < 0.05:
        return first
    aligned = first.alignment_roi(s.alignment_scale)
    if misalignment(first.roi, aligned) < s.skip_aligned_below:
        return first
    return backend.run_roi(frame, aligned)


@needs_shared
@pytest.mark.parametrize("skip_aligned_below", [0.0, 0.15])
def test_estimate_groups_crops_across_people_without_mixing_them_up(
    skip_aligned_below: float, pets_people: tuple[NDArray[np.uint8], NDArray[np.float64]]
) -> None:
    """estimate runs each pass for all people at once; every person must still get their own one-by-one
    answer, with walkers, a wide (lying-sized) box and an empty background box in one frame."""
    frame, people = pets_people
    backend = BlazePoseBackend(BlazePoseSettings(model="full-int8", skip_aligned_below=skip_aligned_below))
    boxes = np.vstack([people, [[300.0, 300.0, 420.0, 360.0], [700.0, 20.0, 740.0, 110.0]]])
    poses = backend.estimate(frame, np.arange(len(boxes), dtype=np.int64), boxes)
    for i, box in enumerate(boxes):
        expected = _one_by_one(backend, frame, box)
        np.testing.assert_array_equal(poses.keypoints[i], expected.keypoints)
        np.testing.assert_array_equal(poses.world[i], expected.world)
        assert poses.presence[i] == np.float32(expected.presence)
    assert int(np.sum(poses.presence >= 0.5)) >= len(people) - 1  # the walkers are found (not a vacuous match)
