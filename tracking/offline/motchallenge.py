"""Read MOTChallenge-format sequences (detections, ground truth, seqinfo.ini) and write tracker results.

A sequence folder holds ``det/det.txt`` or ``det.txt``, ``gt/gt.txt`` or ``gt.txt`` (optional: without it a
sequence can be tracked but not scored) and ``seqinfo.ini`` (``frameRate``, ``seqLength``). Text rows are
``frame, id, x, y, w, h, score-or-flag, ...`` with 1-based frames and top-left/width/height boxes in pixels.

Ground truth comes in two dialects, told apart automatically (``gt_format="auto"``):

* MOT16/MOT17 ("mot16"): ``frame, id, x, y, w, h, consider_flag, class, visibility`` with visibility in
  [0, 1]. Scored like the MOTChallenge devkit: pedestrians (class 1) with flag 1 count; tracker boxes that
  match a distractor (person on vehicle 2, static person 7, distractor 8, reflection 12) are removed first.
* MOT15 and everything else ("mot15"): rows with flag 0 are ignored, every other row counts (KITTI-style
  files converted with visibility -1 land here too).
"""

from __future__ import annotations

import configparser
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from gaitwatch.tracking.types import Detections

FloatArray = NDArray[np.float64]
GtFormat = Literal["auto", "mot15", "mot16"]

# MOT16/17 class ids whose ground-truth boxes are "don't care": a tracker box on them is neither TP nor FP.
DISTRACTOR_CLASSES = (2, 7, 8, 12)
PEDESTRIAN_CLASS = 1


@dataclass(frozen=True, slots=True)
class MotSequence:
    """One sequence: its detections per frame and (optionally) its ground truth.

    ``det`` and ``gt`` keep the file's rows (N, >= 7) as float64 with frames 1-based; ``gt_format`` is the
    resolved dialect ("mot15" or "mot16"). ``frame_rate`` is frames per second, so frame ``f`` is at
    ``(f - 1) / frame_rate`` seconds.
    """

    name: str
    path: Path
    frame_rate: float
    length: int
    det: FloatArray
    gt: FloatArray | None
    gt_format: Literal["mot15", "mot16"]

    def frame_time(self, frame: int) -> float:
        return (frame - 1) / self.frame_rate

    def detections(self) -> Iterator[tuple[int, Detections]]:
        """Every frame 1..length with its detections as xyxy boxes and scores in [0, 1].

        Scores already in [0, 1] are kept; a file with scores outside [0, 1] (raw logits, e.g. KITTI's
        PointRCNN) is mapped through the logistic function so the tracker's thresholds mean the same thing.
        """
        det = self.det
        score = det[:, 6].copy()
        if score.size and (score.min() < 0.0 or score.max() > 1.0):
            score = 1.0 / (1.0 + np.exp(-score))
        order = np.argsort(det[:, 0], kind="stable")
        frames = det[order, 0].astype(np.int64)
        boxes = np.stack([det[:, 2], det[:, 3], det[:, 2] + det[:, 4], det[:, 3] + det[:, 5]], axis=1)[order]
        score = score[order]
        starts = np.searchsorted(frames, np.arange(1, self.length + 2))
        for frame in range(1, self.length + 1):
            lo, hi = starts[frame - 1], starts[frame]
            yield frame, Detections(np.ascontiguousarray(boxes[lo:hi]), np.ascontiguousarray(score[lo:hi]))


def _first_existing(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _read_rows(path: Path, min_columns: int) -> FloatArray:
    rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    if rows.size == 0:
        return np.zeros((0, min_columns), dtype=np.float64)
    if rows.shape[1] < min_columns:
        raise ValueError(f"{path}: expected at least {min_columns} comma-separated columns; got {rows.shape[1]}")
    return rows


def _resolve_gt_format(gt: FloatArray | None, requested: GtFormat) -> Literal["mot15", "mot16"]:
    if requested != "auto":
        return requested
    if gt is None or gt.shape[0] == 0 or gt.shape[1] < 9:
        return "mot15"
    visibility = gt[:, 8]
    return "mot16" if bool(np.all((visibility >= 0.0) & (visibility <= 1.0))) else "mot15"


def read_sequence(folder: Path, gt_format: GtFormat = "auto") -> MotSequence:
    """Load one sequence folder; raises ``FileNotFoundError``/``ValueError`` naming the file at fault."""
    folder = Path(folder)
    det_path = _first_existing(folder, ["det/det.txt", "det.txt"])
    if det_path is None:
        raise FileNotFoundError(f"{folder}: no det/det.txt or det.txt")
    ini_path = folder / "seqinfo.ini"
    if not ini_path.is_file():
        raise FileNotFoundError(f"{folder}: no seqinfo.ini (frameRate and seqLength are needed)")
    ini = configparser.ConfigParser()
    ini.read(ini_path, encoding="utf-8")
    try:
        frame_rate = float(ini["Sequence"]["frameRate"])
        length = int(ini["Sequence"]["seqLength"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{ini_path}: [Sequence] needs numeric frameRate and seqLength ({exc})") from exc
    if not (frame_rate > 0.0 and math.isfinite(frame_rate)) or length < 1:
        raise ValueError(f"{ini_path}: frameRate must be > 0 and seqLength >= 1; got {frame_rate}, {length}")
    det = _read_rows(det_path, 7)
    gt_path = _first_existing(folder, ["gt/gt.txt", "gt.txt"])
    gt = _read_rows(gt_path, 7) if gt_path is not None else None
    name = ini["Sequence"].get("name", folder.name)
    return MotSequence(
        name=name,
        path=folder,
        frame_rate=frame_rate,
        length=length,
        det=det,
        gt=gt,
        gt_format=_resolve_gt_format(gt, gt_format),
    )


def find_sequences(root: Path, names: Sequence[str] = ()) -> list[Path]:
    """Sequence folders under ``root`` (those with a seqinfo.ini), sorted; ``names`` selects some by name.

    ``root`` may itself be a sequence folder. Unknown names raise ``FileNotFoundError`` listing what exists.
    """
    root = Path(root)
    is_sequence = (root / "seqinfo.ini").is_file()
    found = [root] if is_sequence else sorted(p.parent for p in root.glob("*/seqinfo.ini"))
    if not names:
        if not found:
            raise FileNotFoundError(f"{root}: no sequence folders (folders holding seqinfo.ini)")
        return found
    by_name = {p.name: p for p in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise FileNotFoundError(f"{root}: no sequence named {missing}; found {sorted(by_name)}")
    return [by_name[n] for n in names]


def write_results(path: Path, rows: FloatArray) -> None:
    """Write rows ``frame, id, x1, y1, x2, y2`` as MOTChallenge results (frame,id,x,y,w,h,1,-1,-1,-1)."""
    out = np.column_stack(
        [
            rows[:, 0],
            rows[:, 1],
            rows[:, 2],
            rows[:, 3],
            rows[:, 4] - rows[:, 2],
            rows[:, 5] - rows[:, 3],
            np.ones(len(rows)),
            -np.ones((len(rows), 3)),
        ]
    )
    np.savetxt(path, out, fmt=["%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%d", "%d", "%d", "%d"], delimiter=",")
