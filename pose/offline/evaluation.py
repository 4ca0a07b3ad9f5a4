"""Top-down keypoint evaluation on annotated photos, COCO-format (COCO, CrowdPose, PoseTrack18) or MPII.

Ground-truth person boxes stand in for the tracker's boxes, so the figures measure the pose stage alone.
Each dataset's joints are matched to BlazePose landmarks by name; joints BlazePose has no landmark for
(MPII's pelvis, thorax, neck and head top, CrowdPose's head and neck, PoseTrack's head top/bottom) are
left out.

Metrics:
- PCK@a: a joint is correct when its error is below ``a`` times the longer side of the person's box.
- PCKh@a (MPII): the same with ``a`` times the head size. MPII's official head size is 0.6 x the head box
  diagonal; the MPII-format json has no head box, so we use the upper-neck to head-top distance, which is
  of the same size (about 0.6 x a typical head box's diagonal).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.keypoints import Landmark
from gaitwatch.tracking.boxes import longer_side

# BlazePose landmark for each joint name used by COCO-17, CrowdPose and PoseTrack18.
_NAME_TO_LANDMARK: dict[str, Landmark] = {
    "nose": Landmark.NOSE,
    "left_eye": Landmark.LEFT_EYE,
    "right_eye": Landmark.RIGHT_EYE,
    "left_ear": Landmark.LEFT_EAR,
    "right_ear": Landmark.RIGHT_EAR,
    "left_shoulder": Landmark.LEFT_SHOULDER,
    "right_shoulder": Landmark.RIGHT_SHOULDER,
    "left_elbow": Landmark.LEFT_ELBOW,
    "right_elbow": Landmark.RIGHT_ELBOW,
    "left_wrist": Landmark.LEFT_WRIST,
    "right_wrist": Landmark.RIGHT_WRIST,
    "left_hip": Landmark.LEFT_HIP,
    "right_hip": Landmark.RIGHT_HIP,
    "left_knee": Landmark.LEFT_KNEE,
    "right_knee": Landmark.RIGHT_KNEE,
    "left_ankle": Landmark.LEFT_ANKLE,
    "right_ankle": Landmark.RIGHT_ANKLE,
}

# COCO-17 keypoint order, and the BlazePose landmark behind each.
COCO17_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
BLAZEPOSE_TO_COCO17: tuple[Landmark, ...] = tuple(_NAME_TO_LANDMARK[n] for n in COCO17_NAMES)

# MPII's 16 joints in file order.
MPII_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
_MPII_UPPER_NECK = 8
_MPII_HEAD_TOP = 9

# Joint groups reported separately (both sides together): gait depends most on the lower limbs.
JOINT_GROUPS: dict[str, tuple[str, ...]] = {
    "ankles": ("left_ankle", "right_ankle"),
    "knees": ("left_knee", "right_knee"),
    "hips": ("left_hip", "right_hip"),
    "wrists": ("left_wrist", "right_wrist"),
}


def to_coco17(keypoints: NDArray[np.floating]) -> NDArray[np.floating]:
    """BlazePose landmarks (..., 33, C) -> COCO-17 keypoints (..., 17, C)."""
    return keypoints[..., list(BLAZEPOSE_TO_COCO17), :]


@dataclass(frozen=True, slots=True)
class KeypointDataset:
    """People with ground-truth joints, one row per person (column-wise arrays).

    ``image_paths`` (N,) where each person is seen; ``xyxy`` (N, 4) the person box given to the pose model;
    ``joints`` (N, J, 2) ground-truth pixels and ``labelled`` (N, J) which of them are annotated;
    ``joint_names`` (J,) the evaluated joints and ``landmarks`` (J,) the BlazePose landmark for each;
    ``norm`` (N,) the length PCK thresholds are fractions of (box's longer side, or head size for PCKh).
    """

    name: str
    image_paths: tuple[Path, ...]
    xyxy: NDArray[np.float64]
    joints: NDArray[np.float64]
    labelled: NDArray[np.bool_]
    joint_names: tuple[str, ...]
    landmarks: tuple[Landmark, ...]
    norm: NDArray[np.float64]
    norm_kind: str

    def __post_init__(self) -> None:
        n, j = len(self.image_paths), len(self.joint_names)
        if self.xyxy.shape != (n, 4) or self.joints.shape != (n, j, 2) or self.labelled.shape != (n, j):
            raise ValueError(
                f"KeypointDataset arrays disagree: {n} people, {j} joints, xyxy {self.xyxy.shape}, "
                f"joints {self.joints.shape}, labelled {self.labelled.shape}"
            )
        if len(self.landmarks) != j or self.norm.shape != (n,):
            raise ValueError("KeypointDataset.landmarks must match joint_names and norm must be (N,)")

    def __len__(self) -> int:
        return len(self.image_paths)


def load_coco_keypoints(annotations: Path, images: Path) -> KeypointDataset:
    """People of a COCO-format keypoint file (COCO-17, CrowdPose-14, PoseTrack18-17 all work).

    Annotations that are crowds or have no labelled keypoint are skipped. Joints are matched by the names in
    ``categories[0].keypoints``; names with no BlazePose landmark are dropped. The box is the annotation's
    ``bbox`` and the PCK normaliser its longer side.
    """
    data = _read_json(annotations)
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise ValueError(f"{annotations} is not a COCO-format keypoint file (no 'images'/'annotations')")
    categories = data.get("categories") or [{}]
    names: list[str] = list(categories[0].get("keypoints", COCO17_NAMES))
    keep = [i for i, n in enumerate(names) if n in _NAME_TO_LANDMARK]
    files = {img["id"]: str(img["file_name"]) for img in data["images"]}
    paths: list[Path] = []
    boxes: list[list[float]] = []
    joints: list[NDArray[np.float64]] = []
    labelled: list[NDArray[np.bool_]] = []
    for ann in data["annotations"]:
        kp = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        if kp.shape[0] != len(names) or bool(ann.get("iscrowd", False)):
            continue
        vis = kp[keep, 2] > 0
        if not vis.any() or "bbox" not in ann:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 1.0 or h <= 1.0:
            continue
        paths.append(images / files[ann["image_id"]])
        boxes.append([x, y, x + w, y + h])
        joints.append(kp[keep, :2])
        labelled.append(vis)
    joint_names = tuple(names[i] for i in keep)
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return KeypointDataset(
        name=annotations.stem,
        image_paths=tuple(paths),
        xyxy=xyxy,
        joints=np.asarray(joints, dtype=np.float64).reshape(-1, len(keep), 2),
        labelled=np.asarray(labelled, dtype=bool).reshape(-1, len(keep)),
        joint_names=joint_names,
        landmarks=tuple(_NAME_TO_LANDMARK[n] for n in joint_names),
        norm=longer_side(xyxy),
        norm_kind="box",
    )


def load_mpii(annotations: Path, images: Path) -> KeypointDataset:
    """People of an MPII-format json (a list of ``{image, joints, joints_vis, center, scale}``).

    MPII gives a centre and a ``scale`` (person height / 200 px) instead of a box; the box is the square of
    side ``200 * scale`` around the centre, i.e. about the person's height, which is what a person detector
    would give for an upright person. PCKh's head size is the upper-neck to head-top distance.
    """
    data = _read_json(annotations)
    if not isinstance(data, list) or not data or "joints" not in data[0]:
        raise ValueError(f"{annotations} is not an MPII-format file (a list of {{joints, center, scale}})")
    keep = [i for i, n in enumerate(MPII_NAMES) if n in _NAME_TO_LANDMARK]
    paths: list[Path] = []
    boxes: list[list[float]] = []
    joints: list[NDArray[np.float64]] = []
    labelled: list[NDArray[np.bool_]] = []
    heads: list[float] = []
    for rec in data:
        j = np.asarray(rec["joints"], dtype=np.float64).reshape(len(MPII_NAMES), 2)
        vis = np.asarray(rec["joints_vis"], dtype=np.float64).reshape(len(MPII_NAMES)) > 0
        if not (vis[_MPII_UPPER_NECK] and vis[_MPII_HEAD_TOP]):
            continue  # no head size, no PCKh
        cx, cy = (float(v) for v in rec["center"])
        half = 100.0 * float(rec["scale"])
        paths.append(images / str(rec["image"]))
        boxes.append([cx - half, cy - half, cx + half, cy + half])
        joints.append(j[keep])
        labelled.append(vis[keep])
        heads.append(float(np.linalg.norm(j[_MPII_HEAD_TOP] - j[_MPII_UPPER_NECK])))
    joint_names = tuple(MPII_NAMES[i] for i in keep)
    return KeypointDataset(
        name=annotations.stem,
        image_paths=tuple(paths),
        xyxy=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        joints=np.asarray(joints, dtype=np.float64).reshape(-1, len(keep), 2),
        labelled=np.asarray(labelled, dtype=bool).reshape(-1, len(keep)),
        joint_names=joint_names,
        landmarks=tuple(_NAME_TO_LANDMARK[n] for n in joint_names),
        norm=np.asarray(heads, dtype=np.float64),
        norm_kind="head",
    )


def reference_dataset(
    name: str,
    image_paths: Sequence[Path],
    xyxy: NDArray[np.floating],
    reference: NDArray[np.floating],
    landmarks: Sequence[Landmark],
    min_visibility: float = 0.0,
) -> KeypointDataset:
    """People whose "ground truth" is another model's landmarks: the teacher-agreement evaluation.

    ``reference`` (N, 33, 3) holds the reference model's landmarks (x, y frame pixels, visibility) for the
    person in box ``xyxy`` (N, 4) of ``image_paths`` (N,); ``landmarks`` are the joints compared. A joint
    counts when its reference visibility is at least ``min_visibility`` (0 counts every joint, including the
    ones the reference only guessed). PCK thresholds are fractions of the box's longer side, as for COCO.
    """
    ref = np.asarray(reference, dtype=np.float64)
    box = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    lms = tuple(Landmark(int(lm)) for lm in landmarks)
    cols = [int(lm) for lm in lms]
    joints = ref[:, cols, :2]
    labelled = (ref[:, cols, 2] >= min_visibility) & np.all(np.isfinite(joints), axis=2)
    return KeypointDataset(
        name=name,
        image_paths=tuple(image_paths),
        xyxy=box,
        joints=joints,
        labelled=labelled,
        joint_names=tuple(lm.name.lower() for lm in lms),
        landmarks=lms,
        norm=longer_side(box),
        norm_kind="box",
    )


def load_keypoint_dataset(annotations: Path, images: Path) -> KeypointDataset:
    """COCO-format or MPII-format, told apart by the json's shape."""
    data = _read_json(annotations)
    if isinstance(data, list):
        return load_mpii(annotations, images)
    return load_coco_keypoints(annotations, images)


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read annotations {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"annotations {path} are not valid JSON: {exc}") from exc


# Given an image path and the boxes of the people in it, return landmarks (K, 33, >=2) in image pixels.
Predictor = Callable[[Path, NDArray[np.float64]], NDArray[np.floating]]


def predict_dataset(dataset: KeypointDataset, predictor: Predictor) -> NDArray[np.float64]:
    """Run ``predictor`` once per image (all its people together); returns (N, 33, 2) landmarks per person."""
    out = np.full((len(dataset), 33, 2), np.nan, dtype=np.float64)
    by_image: dict[Path, list[int]] = {}
    for i, p in enumerate(dataset.image_paths):
        by_image.setdefault(p, []).append(i)
    for path, rows in by_image.items():
        pred = np.asarray(predictor(path, dataset.xyxy[rows]), dtype=np.float64)
        out[rows] = pred[:, :, :2]
    return out


@dataclass(frozen=True, slots=True)
class PckResult:
    """PCK at one threshold: fractions of labelled joints found within ``threshold * norm``.

    ``per_joint`` maps joint name to its fraction (NaN if never labelled), ``groups`` the reported groups
    (ankles, knees, hips, wrists; both sides pooled), ``overall`` all evaluated joints pooled; ``people`` and
    ``joints`` count what was evaluated.
    """

    threshold: float
    overall: float
    per_joint: Mapping[str, float]
    groups: Mapping[str, float]
    people: int
    joints: int

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for ``eval-pose --json``: overall, the four groups, counts, and ``per_joint``.

        Fractions that could not be computed (no labelled joint) become None, since JSON has no NaN.
        """
        d: dict[str, Any] = {"overall": _json_number(self.overall)}
        d.update({g: _json_number(v) for g, v in self.groups.items()})
        d["people"] = self.people
        d["joints"] = self.joints
        d["per_joint"] = {k: _json_number(v) for k, v in self.per_joint.items()}
        return d


def _json_number(v: float) -> float | None:
    return round(v, 4) if np.isfinite(v) else None


def pck(dataset: KeypointDataset, predicted: NDArray[np.floating], threshold: float) -> PckResult:
    """PCK (or PCKh for MPII-format sets) of BlazePose landmarks ``predicted`` (N, 33, >=2) on ``dataset``."""
    pred = np.asarray(predicted, dtype=np.float64)[:, list(dataset.landmarks), :2]
    err = np.linalg.norm(pred - dataset.joints, axis=2) / dataset.norm[:, None]
    # A missing prediction (NaN) counts as a miss, never as a hit.
    hit = np.where(np.isfinite(err), err <= threshold, False) & dataset.labelled
    lab = dataset.labelled

    def frac(cols: Sequence[int]) -> float:
        n = int(lab[:, cols].sum())
        return float(hit[:, cols].sum() / n) if n else float("nan")

    names = dataset.joint_names
    per_joint = {n: frac([i]) for i, n in enumerate(names)}
    groups = {g: frac([names.index(n) for n in members if n in names]) for g, members in JOINT_GROUPS.items()}
    return PckResult(
        threshold=threshold,
        overall=frac(list(range(len(names)))),
        per_joint=per_joint,
        groups=groups,
        people=int(np.any(lab, axis=1).sum()),
        joints=int(lab.sum()),
    )
