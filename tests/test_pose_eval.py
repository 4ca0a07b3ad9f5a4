"""Keypoint evaluation: joint mapping, dataset loading, PCK arithmetic, ``eval-pose`` on real annotations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from gaitwatch.pose.keypoints import NUM_LANDMARKS, Landmark
from gaitwatch.pose.offline.evaluation import (
    BLAZEPOSE_TO_COCO17,
    COCO17_NAMES,
    KeypointDataset,
    load_coco_keypoints,
    load_keypoint_dataset,
    load_mpii,
    pck,
    to_coco17,
)
from gaitwatch.tools.cmd_eval_pose import register

SHARED_POSE = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose"
needs_shared = pytest.mark.skipif(
    not (SHARED_POSE / "coco" / "test_coco.json").is_file(),
    reason=f"annotated pose images not found under {SHARED_POSE} (shared data sits beside the repository)",
)


def test_coco17_mapping_matches_names() -> None:
    assert len(BLAZEPOSE_TO_COCO17) == 17
    for name, lm in zip(COCO17_NAMES, BLAZEPOSE_TO_COCO17, strict=True):
        assert lm.name.lower() == name
    kp = np.arange(NUM_LANDMARKS * 3, dtype=np.float64).reshape(NUM_LANDMARKS, 3)
    coco = to_coco17(kp)
    assert coco.shape == (17, 3)
    np.testing.assert_array_equal(coco[15], kp[Landmark.LEFT_ANKLE])
    np.testing.assert_array_equal(coco[0], kp[Landmark.NOSE])


def _dataset(n: int, joints: tuple[str, ...], norm: float) -> KeypointDataset:
    rng = np.random.default_rng(0)
    lms = tuple(Landmark[j.upper()] for j in joints)
    return KeypointDataset(
        name="gen",
        image_paths=tuple(Path(f"img{i}.jpg") for i in range(n)),
        xyxy=np.tile([0.0, 0.0, norm / 2, norm], (n, 1)),
        joints=rng.uniform(0, norm, size=(n, len(joints), 2)),
        labelled=np.ones((n, len(joints)), dtype=bool),
        joint_names=joints,
        landmarks=lms,
        norm=np.full(n, norm),
        norm_kind="box",
    )


def test_pck_counts_errors_against_the_threshold() -> None:
    joints = ("left_ankle", "right_ankle", "left_knee", "right_knee", "left_hip", "right_hip", "left_wrist")
    ds = _dataset(10, joints, norm=200.0)
    pred = np.full((10, NUM_LANDMARKS, 3), np.nan)
    pred[:, list(ds.landmarks), :2] = ds.joints
    # Ankles of the first 4 people off by 15 px (0.075 of 200): inside 0.1, outside 0.05.
    pred[:4, Landmark.LEFT_ANKLE, 0] += 15.0
    pred[:4, Landmark.RIGHT_ANKLE, 1] -= 15.0
    # Knees of person 0 off by 30 px (0.15): outside both.
    pred[0, Landmark.LEFT_KNEE, :2] += np.array([18.0, 24.0])
    ds.labelled[9, 6] = False  # an unlabelled wrist never counts
    pred[9, Landmark.LEFT_WRIST, :2] = np.nan
    r05, r1 = pck(ds, pred, 0.05), pck(ds, pred, 0.1)
    assert r05.groups["ankles"] == pytest.approx(12 / 20)
    assert r1.groups["ankles"] == pytest.approx(1.0)
    assert r1.groups["knees"] == pytest.approx(19 / 20)
    assert r1.groups["wrists"] == pytest.approx(1.0)
    assert r1.joints == 69 and r1.people == 10
    assert r1.overall == pytest.approx(68 / 69)
    assert r05.overall == pytest.approx((69 - 8 - 1) / 69)
    assert r1.per_joint["left_knee"] == pytest.approx(0.9)
    # A missing prediction is a miss.
    pred[1, Landmark.LEFT_HIP, :2] = np.nan
    assert pck(ds, pred, 0.1).per_joint["left_hip"] == pytest.approx(0.9)
    d = r1.as_dict()
    assert set(d) >= {"overall", "ankles", "knees", "hips", "wrists", "people", "per_joint"}


def test_coco_loader_maps_names_and_skips_crowds_and_empty_people(tmp_path: Path) -> None:
    names = ["left_shoulder", "right_shoulder", "left_ankle", "right_ankle", "head", "neck"]  # CrowdPose-like
    kp_a = [10, 20, 2, 30, 20, 2, 12, 90, 2, 28, 91, 1, 20, 5, 2, 20, 12, 2]
    ann = [
        {"image_id": 1, "bbox": [5, 0, 40, 100], "keypoints": kp_a, "iscrowd": 0},
        {"image_id": 1, "bbox": [5, 0, 40, 100], "keypoints": kp_a, "iscrowd": 1},
        {"image_id": 1, "bbox": [5, 0, 40, 100], "keypoints": [0] * 18, "iscrowd": 0},
    ]
    data = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": ann,
        "categories": [{"keypoints": names}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    ds = load_keypoint_dataset(path, tmp_path)
    assert len(ds) == 1
    assert ds.joint_names == ("left_shoulder", "right_shoulder", "left_ankle", "right_ankle")
    assert ds.landmarks[2] == Landmark.LEFT_ANKLE
    np.testing.assert_allclose(ds.xyxy[0], [5, 0, 45, 100])
    assert ds.norm[0] == pytest.approx(100.0)
    assert ds.image_paths[0] == tmp_path / "a.jpg"
    assert load_coco_keypoints(path, tmp_path).joints.shape == (1, 4, 2)


def test_mpii_loader_builds_box_and_head_size(tmp_path: Path) -> None:
    joints = [[float(i), float(2 * i)] for i in range(16)]
    joints[8] = [100.0, 100.0]  # upper neck
    joints[9] = [100.0, 70.0]  # head top: head size 30 px
    rec = {"image": "m.jpg", "joints": joints, "joints_vis": [1] * 16, "center": [100.0, 200.0], "scale": 1.5}
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps([rec]))
    ds = load_mpii(path, tmp_path)
    assert ds.norm_kind == "head" and ds.norm[0] == pytest.approx(30.0)
    np.testing.assert_allclose(ds.xyxy[0], [-50.0, 50.0, 250.0, 350.0])
    assert "pelvis" not in ds.joint_names and "left_ankle" in ds.joint_names
    assert len(ds.joint_names) == 12


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gaitwatch")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_eval_pose_reports_unreadable_annotations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(["eval-pose", str(tmp_path / "missing.json"), str(tmp_path)]) == 1
    assert "missing.json" in capsys.readouterr().err


@needs_shared
def test_eval_pose_on_shared_coco_meets_the_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Default configuration on the shared COCO people: at least the single-pass reference (0.78 / 0.67)."""
    out = tmp_path / "coco.json"
    coco = SHARED_POSE / "coco"
    assert _run_cli(["eval-pose", str(coco / "test_coco.json"), str(coco), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for key in ("pck_0.05", "pck_0.1"):
        assert {"overall", "ankles", "knees", "hips", "wrists", "people"} <= set(report[key])
    assert report["people"] == 12
    assert report["pck_0.1"]["overall"] >= 0.78
    assert report["pck_0.1"]["ankles"] >= 0.67
    assert "ankles" in capsys.readouterr().out


@needs_shared
def test_eval_pose_on_shared_mpii_reports_pckh(tmp_path: Path) -> None:
    out = tmp_path / "mpii.json"
    mpii = SHARED_POSE / "mpii"
    args = ["eval-pose", str(mpii / "test_mpii.json"), str(mpii), "--backend", "lite", "--json", str(out)]
    assert _run_cli(args) == 0
    report = json.loads(out.read_text())
    assert report["backend"] == "blazepose-lite" and report["second_pass"] is False
    assert report["pckh_0.5"]["overall"] >= 0.85
