"""Scoring detections against reference boxes: one-to-one matching, recall/precision by height band and posture,
postures from COCO keypoints, boxes of images turned 90 degrees."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from gaitwatch.tools.cli import main
from gaitwatch.tracking.offline.detection_eval import (
    DetectionScore,
    height_band,
    match,
    posture_from_coco_keypoints,
    rotate_boxes_90,
)

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose" / "coco"
LABELS = Path(__file__).resolve().parent / "data" / "posture_labels.csv"


def test_height_bands_split_at_75_and_150_pixels() -> None:
    assert [height_band(h) for h in (10.0, 74.9, 75.0, 149.9, 150.0, 400.0)] == [
        "<75",
        "<75",
        "75-150",
        "75-150",
        ">=150",
        ">=150",
    ]


def test_matching_is_one_to_one_and_maximises_total_overlap() -> None:
    reference = np.array([[0, 0, 10, 20], [10, 0, 20, 20]], dtype=np.float64)
    # A loose box overlapping both people and a tight box on the first: greedy matching by best IoU would
    # give the loose box nothing; the optimal assignment gives the tight box the first person only.
    predicted = np.array([[0, 0, 10, 20], [1, 0, 21, 20]], dtype=np.float64)
    p, r = match(predicted, reference, 0.3)
    assert sorted(zip(p.tolist(), r.tolist(), strict=True)) == [(0, 0), (1, 1)]
    p, r = match(predicted, reference, 0.9)
    assert p.tolist() == [0] and r.tolist() == [0]
    with pytest.raises(ValueError, match="iou_threshold"):
        match(predicted, reference, 0.0)


def test_recall_and_precision_overall_and_by_group() -> None:
    score = DetectionScore(0.5)
    reference = np.array([[0, 0, 30, 60], [100, 0, 160, 200], [300, 0, 340, 100]], dtype=np.float64)
    predicted = np.array(
        [
            [1, 1, 30, 60],  # the small person
            [102, 5, 160, 200],  # the near person
            [500, 0, 540, 100],  # nobody there, 100 px tall
            [300, 40, 340, 100],  # half of the middle person: too small a box (IoU 0.6 -> matched)
        ],
        dtype=np.float64,
    )
    score.add(predicted, reference, ["upright", "non_upright", "upright"])
    d = score.as_dict()
    assert d["n"] == 3 and d["predicted"] == 4
    assert d["recall"] == pytest.approx(1.0)
    assert d["precision"] == pytest.approx(0.75)
    assert d["by_height"]["<75"] == {"recall": 1.0, "precision": 1.0, "n": 1}
    assert d["by_height"][">=150"] == {"recall": 1.0, "precision": 1.0, "n": 1}
    # The false box counts in the band of its own height.
    assert d["by_height"]["75-150"] == {"recall": 1.0, "precision": 0.5, "n": 1}
    assert d["by_posture"]["non_upright"] == {"recall": 1.0, "precision": 1.0, "n": 1}
    # A false box overlapping no reference person has no posture: posture precision ignores it.
    assert d["by_posture"]["upright"] == {"recall": 1.0, "precision": 1.0, "n": 2}

    score.add(np.zeros((0, 4)), reference[:1], ["non_upright"])
    d = score.as_dict()
    assert d["recall"] == pytest.approx(3 / 4)
    assert d["by_posture"]["non_upright"]["recall"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="posture labels"):
        score.add(predicted, reference, ["upright"])


def test_a_false_box_on_a_person_counts_against_that_persons_posture() -> None:
    score = DetectionScore(0.5)
    reference = np.array([[0, 0, 100, 100]], dtype=np.float64)
    score.add(np.array([[0, 0, 100, 30]], dtype=np.float64), reference, ["non_upright"])  # IoU 0.3
    d = score.as_dict()["by_posture"]["non_upright"]
    assert d["recall"] == 0.0 and d["precision"] == 0.0 and d["n"] == 1
    empty = DetectionScore(0.5).as_dict()
    assert math.isnan(empty["recall"]) and math.isnan(empty["precision"])


def _keypoints(points: dict[int, tuple[float, float]]) -> list[float]:
    flat = [0.0] * 51
    for index, (x, y) in points.items():
        flat[3 * index : 3 * index + 3] = [x, y, 2.0]
    return flat


STANDING = {5: (40, 50), 6: (60, 50), 11: (42, 110), 12: (58, 110), 13: (42, 150), 14: (58, 150), 15: (42, 190)}
SEATED = {5: (40, 50), 6: (60, 50), 11: (42, 110), 12: (58, 110), 13: (90, 112), 14: (95, 115), 15: (92, 160)}
LYING = {5: (40, 50), 6: (40, 70), 11: (100, 52), 12: (100, 68), 15: (170, 60)}
CROUCHING = {5: (40, 50), 6: (60, 50), 11: (42, 90), 12: (58, 90), 15: (45, 96), 16: (55, 96)}


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        (STANDING, "upright"),
        (SEATED, "non_upright"),
        (LYING, "non_upright"),
        (CROUCHING, "non_upright"),
        ({5: (40, 50), 6: (60, 50)}, "unknown"),
    ],
    ids=["standing", "seated", "lying", "crouching", "no-hips"],
)
def test_posture_from_keypoints(points: dict[int, tuple[float, float]], expected: str) -> None:
    assert posture_from_coco_keypoints(_keypoints(points)) == expected


def test_posture_needs_17_keypoints() -> None:
    with pytest.raises(ValueError, match="17"):
        posture_from_coco_keypoints([0.0] * 30)


def test_rotated_boxes_follow_the_pixels_of_a_rotated_image() -> None:
    image = np.zeros((120, 200, 3), dtype=np.uint8)
    image[10:50, 30:90] = 255  # rows 10..49, columns 30..89 -> box (30, 10, 90, 50)
    turned = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    ys, xs = np.nonzero(turned[:, :, 0])
    expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    np.testing.assert_allclose(rotate_boxes_90(np.array([[30, 10, 90, 50]], dtype=np.float64), 120)[0], expected)


def test_cli_refuses_bad_arguments_with_a_clear_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["eval-detect"]) == 2
    assert "ANNOTATIONS.json IMAGES_DIR" in capsys.readouterr().err
    assert main(["eval-detect", "--video", "x.avi"]) == 2
    assert "--reference" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("1,2,3\n", encoding="utf-8")
    assert main(["eval-detect", "--video", str(tmp_path / "x.avi"), "--reference", str(bad), "--detector", "hog"]) == 1
    assert "frame,id,x,y,w,h,score" in capsys.readouterr().err


@pytest.mark.skipif(not (COCO / "test_coco.json").is_file(), reason=f"needs {COCO}")
def test_cli_scores_hog_on_coco_photos_with_posture_labels(tmp_path: Path) -> None:
    out = tmp_path / "hog.json"
    code = main(
        [
            "eval-detect",
            str(COCO / "test_coco.json"),
            str(COCO),
            "--detector",
            "hog",
            "--postures",
            str(LABELS),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report) >= {"recall", "precision", "ms_per_frame", "by_height", "by_posture", "iou"}
    assert sum(g["n"] for g in report["by_height"].values()) == 14  # every COCO person annotation, no crowds
    # The labels name 3 of the 14 COCO people non-upright (two seated, one crouching).
    assert report["by_posture"]["non_upright"]["n"] == 3
    assert report["by_posture"]["upright"]["n"] == 11
    assert 0.0 <= report["recall"] <= report["iou"]["0.3"]["recall"] <= 1.0
    assert report["ms_per_frame"] > 0.0
