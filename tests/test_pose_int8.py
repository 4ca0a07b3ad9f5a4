"""The int8 BlazePose full model (``[pose] model = "full-int8"``): it loads, agrees with the float full model on
real people, is the file its provenance names, and its build keeps the float stem it says (the graph surgery
itself: test_pose_graph_surgery.py)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from pydantic import ValidationError
from repo_scripts import load_script

from gaitwatch.daemon.settings import PoseSettingsModel
from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings, packaged_model_path
from gaitwatch.pose.keypoints import Landmark

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
VIDEO = SHARED / "video" / "vtest.avi"
DETS = SHARED / "video" / "vtest_PETS09-S2L1_det.txt"
# Frames from the last 30% of vtest.avi: the int8 model was not calibrated on them.
HELD_OUT_FRAMES = (600, 650, 700, 750)


@pytest.fixture(scope="module")
def float_full() -> BlazePoseBackend:
    return BlazePoseBackend(BlazePoseSettings(model="full"))


@pytest.fixture(scope="module")
def int8_full() -> BlazePoseBackend:
    return BlazePoseBackend(BlazePoseSettings(model="full-int8"))


@pytest.fixture(scope="module")
def held_out_people() -> list[tuple[NDArray[np.uint8], NDArray[np.float64]]]:
    """Frames the int8 build never saw and the confident detector boxes of their walking people."""
    if not (VIDEO.is_file() and DETS.is_file()):
        pytest.skip(f"real-person footage not found at {VIDEO} (the shared data folder sits beside the repository)")
    det = np.loadtxt(DETS, delimiter=",")
    cap = cv2.VideoCapture(str(VIDEO))
    out = []
    for index in HELD_OUT_FRAMES:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        assert ok
        rows = det[(det[:, 0] == index + 1) & (det[:, 6] > 0.9)]  # det frame numbers are 1-based
        xyxy = np.c_[rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
        out.append((np.asarray(frame, dtype=np.uint8), xyxy.astype(np.float64)))
    cap.release()
    return out


def test_int8_model_loads_with_its_own_name_and_the_full_models_second_pass(int8_full: BlazePoseBackend) -> None:
    assert int8_full.name == "blazepose-full-int8"
    assert int8_full.model_version.startswith("pose_landmark_full_int8@")
    assert int8_full.settings.uses_second_pass  # "auto" treats it as the full model it is derived from


def test_settings_accept_the_int8_model_and_reject_unknown_names() -> None:
    assert PoseSettingsModel().model == "full-int8"  # the default: as accurate as full, faster
    assert PoseSettingsModel(model="full").model == "full"  # the float model stays selectable
    assert PoseSettingsModel(model="full-int8").model == "full-int8"
    with pytest.raises(ValidationError, match="model"):
        PoseSettingsModel.model_validate({"model": "full-int4"})
    with pytest.raises(ValueError, match="full-int8"):
        BlazePoseSettings(model="full-int4")  # type: ignore[arg-type]


def test_shipped_file_is_the_one_its_notice_describes() -> None:
    notice = (REPO / "pose" / "models" / "NOTICE.md").read_text(encoding="utf-8")
    row = re.search(r"\| pose_landmark_full_int8\.tflite \| ([0-9a-f]{64}) \|", notice)
    assert row is not None, "NOTICE.md lacks the provenance row of pose_landmark_full_int8.tflite"
    digest = hashlib.sha256(packaged_model_path("full-int8").read_bytes()).hexdigest()
    assert digest == row.group(1)


def test_int8_landmarks_agree_with_the_float_model_on_real_people(
    float_full: BlazePoseBackend,
    int8_full: BlazePoseBackend,
    held_out_people: list[tuple[NDArray[np.uint8], NDArray[np.float64]]],
) -> None:
    errors = []
    for frame, xyxy in held_out_people:
        ids = np.arange(len(xyxy), dtype=np.int64)
        ref = float_full.estimate(frame, ids, xyxy)
        got = int8_full.estimate(frame, ids, xyxy)
        assert np.all(ref.presence > 0.5)
        assert np.all(got.presence > 0.5)  # the int8 model finds the same people
        side = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        errors.append(np.linalg.norm(got.keypoints[:, :, :2] - ref.keypoints[:, :, :2], axis=2) / side[:, None])
        # Visibility and world landmarks stay close too (the output heads are float).
        assert np.median(np.abs(got.keypoints[:, :, 2] - ref.keypoints[:, :, 2])) < 0.1
        assert np.median(np.abs(got.world - ref.world)) < 0.03  # metres
    err = np.concatenate(errors)
    assert len(err) >= 15
    assert float(np.mean(err < 0.1)) >= 0.95  # PCK@0.1 against the float model
    assert float(np.median(err)) < 0.02  # of the box's longer side
    ankles = err[:, [Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE]]
    assert float(np.mean(ankles < 0.1)) >= 0.9


def test_int8_lying_people_are_found_by_the_turned_hypotheses(
    int8_full: BlazePoseBackend, held_out_people: list[tuple[NDArray[np.uint8], NDArray[np.float64]]]
) -> None:
    """The frame turned by 90 degrees makes every walker lie down; the int8 model must follow them as full does."""
    frame, xyxy = held_out_people[0]
    h = frame.shape[0]
    turned = np.ascontiguousarray(cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE), dtype=np.uint8)  # (x,y)->(h-y,x)
    boxes = np.stack([h - xyxy[:, 3], xyxy[:, 0], h - xyxy[:, 1], xyxy[:, 2]], axis=1)
    ids = np.arange(len(boxes), dtype=np.int64)
    upright = int8_full.estimate(frame, ids, xyxy)
    lying = int8_full.estimate(turned, ids, boxes)
    assert np.all(lying.presence > 0.5)
    expected = np.stack([h - upright.keypoints[:, :, 1], upright.keypoints[:, :, 0]], axis=-1)
    heights = (xyxy[:, 3] - xyxy[:, 1])[:, None]
    assert float(np.median(np.linalg.norm(lying.keypoints[:, :, :2] - expected, axis=-1) / heights)) < 0.05


def test_float_stem_ops_keeps_exactly_the_leading_ops_float() -> None:
    """--float-stem-ops N (for measuring cheaper variants) keeps the first N ops of the pruned graph float and
    leaves the rest of the rule (small maps, heads) alone; the default is the shipped model's rule."""
    from ai_edge_litert import schema_py_generated as schema

    build = load_script("build_pose_int8")
    pruned = build.pruned_float_model(packaged_model_path("full").read_bytes())
    graph = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(pruned, 0)).subgraphs[0]
    names = [graph.tensors[op.outputs[0]].name.decode() for op in graph.operators]
    shipped = build.float_op_scopes(pruned)
    assert shipped == build.float_op_scopes(pruned, build.FLOAT_STEM_OPS)
    assert names[: build.FLOAT_STEM_OPS] == shipped[: build.FLOAT_STEM_OPS]
    fewer = build.float_op_scopes(pruned, 3)
    assert set(shipped) - set(fewer) == set(names[3 : build.FLOAT_STEM_OPS])
    assert set(fewer) <= set(shipped)
