"""Person-detector recall on the shared annotated photos, upright and turned 90 degrees, by posture.

    .venv/bin/python bench/detect_photos.py [--data ../shared/data/pose] [--detector blazepose|hog|hog+blazepose]
        [--labels tests/data/posture_labels.csv] [--config FILE] [--fit-box]

``--detector default`` (or ``--config FILE`` with any kind) builds the detector a daemon config builds (its
``[detector]`` table; the built-in defaults without ``--config``).

People are the annotations of COCO, CrowdPose, PoseTrack18 (COCO-format json) and MPII with at least one
labelled keypoint. COCO-format people use their ``bbox``; MPII gives no box, so its people get the box of their
labelled joints (grown by 10% of its height on each side for the head top and feet beyond the joints). Recall at
IoU 0.5 and 0.3 counts each person matched one-to-one (Hungarian on IoU) to a detection in their image.
Posture (upright / non_upright) comes from the label file, made by looking at the photos.

``--fit-box`` prints, for the BlazePose detector's finds matched to people, the median person-box length and
width in body-circle radii (how ``BlazePoseDetectorSettings.box_length/box_width`` were chosen: one global
median over all people, never per image).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from gaitwatch.daemon.assembly import build_detector
from gaitwatch.tools.cmd_eval_detect import detector_settings
from gaitwatch.tracking.boxes import iou_matrix

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "pose"
DEFAULT_LABELS = REPO / "tests" / "data" / "posture_labels.csv"

_COCO_SETS = (
    ("coco", "coco/test_coco.json", "coco"),
    ("crowdpose", "crowdpose/test_crowdpose.json", "crowdpose"),
    ("posetrack18", "posetrack18/annotations/test_posetrack18_val.json", "posetrack18"),
)


@dataclass(frozen=True, slots=True)
class Person:
    dataset: str
    image: str  # as written in the annotation file, relative to the dataset folder
    image_path: Path
    annotation_id: int
    xyxy: NDArray[np.float64]


def load_people(data: Path) -> list[Person]:
    people: list[Person] = []
    for name, ann, folder in _COCO_SETS:
        doc = json.loads((data / ann).read_text(encoding="utf-8"))
        files = {img["id"]: str(img["file_name"]) for img in doc["images"]}
        for a in doc["annotations"]:
            if bool(a.get("iscrowd", False)) or int(a.get("num_keypoints", 0)) == 0:
                continue
            x, y, w, h = (float(v) for v in a["bbox"])
            f = files[a["image_id"]]
            people.append(Person(name, f, data / folder / f, int(a["id"]), np.array([x, y, x + w, y + h])))
    for i, rec in enumerate(json.loads((data / "mpii" / "test_mpii.json").read_text(encoding="utf-8"))):
        joints = np.asarray(rec["joints"], dtype=np.float64)[np.asarray(rec["joints_vis"]) > 0]
        lo, hi = joints.min(axis=0), joints.max(axis=0)
        pad = 0.1 * (hi[1] - lo[1])
        box = np.array([lo[0] - pad, lo[1] - pad, hi[0] + pad, hi[1] + pad])
        people.append(Person("mpii", str(rec["image"]), data / "mpii" / str(rec["image"]), i, box))
    return people


def load_labels(path: Path) -> dict[tuple[str, str], str]:
    with path.open(encoding="utf-8") as fh:
        return {(row["dataset"], row["annotation_id"]): row["posture"] for row in csv.DictReader(fh)}


def rotate_cw(image: NDArray[np.uint8], boxes: NDArray[np.float64]) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """The image turned 90 degrees clockwise and the boxes with it: (x, y) -> (H - y, x)."""
    height = image.shape[0]
    turned = np.ascontiguousarray(cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE), dtype=np.uint8)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return turned, np.stack([height - y2, x1, height - y1, x2], axis=1)


def matched_iou(truth: NDArray[np.float64], found: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each true box's IoU with the detection it is matched to one-to-one (0 if none)."""
    out = np.zeros(truth.shape[0])
    if truth.shape[0] == 0 or found.shape[0] == 0:
        return out
    iou = iou_matrix(truth, found)
    rows, cols = linear_sum_assignment(-iou)
    out[rows] = iou[rows, cols]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--detector", default="blazepose")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--config", type=Path, default=None, help="daemon config whose [detector] to build")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.data / "coco" / "test_coco.json").is_file():
        print(f"error: no shared pose photos under {args.data}; pass --data PATH/TO/shared/data/pose", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    detector = build_detector(detector_settings(args.config, args.detector))
    people = load_people(args.data)
    labels = load_labels(args.labels)
    posture = [labels.get((p.dataset, str(p.annotation_id)), "unlabelled") for p in people]
    by_image: dict[Path, list[int]] = {}
    for i, p in enumerate(people):
        by_image.setdefault(p.image_path, []).append(i)
    results: dict[str, object] = {"detector": args.detector, "people": len(people)}
    for rotation in (0, 90):
        ious = np.zeros(len(people))
        seconds = cpu_seconds = 0.0
        for path, idx in by_image.items():
            read = cv2.imread(str(path))
            if read is None:
                print(f"error: cannot read {path}", file=sys.stderr)
                return 2
            image = np.asarray(read, dtype=np.uint8)
            truth = np.stack([people[i].xyxy for i in idx])
            if rotation == 90:
                image, truth = rotate_cw(image, truth)
            started, cpu_started = time.perf_counter(), time.process_time()
            found = detector.detect(image)
            seconds += time.perf_counter() - started
            cpu_seconds += time.process_time() - cpu_started
            ious[idx] = matched_iou(truth, found.xyxy)
        row: dict[str, object] = {
            "ms_per_image": round(1000.0 * seconds / len(by_image), 1),
            "cpu_ms_per_image": round(1000.0 * cpu_seconds / len(by_image), 1),
        }
        for group in ("all", "upright", "non_upright"):
            mask = np.ones(len(people), bool) if group == "all" else np.asarray([q == group for q in posture])
            row[group] = {
                "n": int(mask.sum()),
                "recall@0.5": float(np.mean(ious[mask] >= 0.5)) if mask.any() else None,
                "recall@0.3": float(np.mean(ious[mask] >= 0.3)) if mask.any() else None,
            }
        results[f"rotate{rotation}"] = row
        print(f"rotate {rotation:>2}: {json.dumps(row)}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
