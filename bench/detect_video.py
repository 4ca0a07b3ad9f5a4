"""Person-detector recall, precision and time per frame on a video against reference boxes (MOT det/gt text).

    .venv/bin/python bench/detect_video.py [--video ../shared/data/video/vtest.avi]
        [--reference ../shared/data/video/vtest_PETS09-S2L1_det.txt] [--detector blazepose] [--step 1]
        [--set detector.blazepose.tile_fraction=0.3 ...]

Every ``--step``-th frame goes through ``build_detector`` (the whole frame, no search regions) on one OpenCV
thread. A reference box and a detection match one-to-one (Hungarian on IoU) at IoU >= 0.5. Recall is the share
of reference boxes matched; precision the share of detections matched. The ">=150" row counts reference boxes
at least 150 px tall for recall and detections at least 150 px tall for precision (people close to the camera).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from gaitwatch.daemon.assembly import build_detector
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.tracking.boxes import iou_matrix

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "video" / "vtest.avi"
REFERENCE = REPO.parent / "shared" / "data" / "video" / "vtest_PETS09-S2L1_det.txt"
CLOSE_PX = 150.0


def load_reference(path: Path) -> dict[int, NDArray[np.float64]]:
    """Boxes per 0-based frame index from MOT text (frame numbers start at 1)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    out: dict[int, NDArray[np.float64]] = {}
    for frame in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == frame]
        out[frame - 1] = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], axis=1)
    return out


def matches(
    reference: NDArray[np.float64], found: NDArray[np.float64], threshold: float
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    ref_hit = np.zeros(reference.shape[0], bool)
    det_hit = np.zeros(found.shape[0], bool)
    if reference.shape[0] and found.shape[0]:
        iou = iou_matrix(reference, found)
        rows, cols = linear_sum_assignment(-iou)
        ok = iou[rows, cols] >= threshold
        ref_hit[rows[ok]] = True
        det_hit[cols[ok]] = True
    return ref_hit, det_hit


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--detector", default="blazepose")
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="dotted.key=json_value config override")
    args = parser.parse_args(argv)
    for path in (args.video, args.reference):
        if not path.is_file():
            print(f"error: {path} not found; pass --video / --reference", file=sys.stderr)
            return 2
    config: dict[str, Any] = {
        "cameras": [{"id": "bench", "source": str(args.video)}],
        "detector": {"kind": args.detector},
    }
    for item in args.set:
        key, _, value = item.partition("=")
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parse_value(value)
    cv2.setNumThreads(1)
    detector = build_detector(parse_settings(config))
    reference = load_reference(args.reference)
    capture = cv2.VideoCapture(str(args.video))
    counts = {"ref": 0, "ref_hit": 0, "det": 0, "det_hit": 0, "ref_c": 0, "ref_c_hit": 0, "det_c": 0, "det_c_hit": 0}
    seconds, cpu_seconds, frames, index = 0.0, 0.0, 0, -1
    while True:
        ok, image = capture.read()
        if not ok:
            break
        index += 1
        if index % args.step:
            continue
        started, cpu_started = time.perf_counter(), time.process_time()
        found = detector.detect(np.asarray(image, dtype=np.uint8)).xyxy
        seconds += time.perf_counter() - started
        cpu_seconds += time.process_time() - cpu_started
        frames += 1
        ref = reference.get(index, np.zeros((0, 4)))
        ref_hit, det_hit = matches(ref, found, 0.5)
        ref_close = ref[:, 3] - ref[:, 1] >= CLOSE_PX
        det_close = found[:, 3] - found[:, 1] >= CLOSE_PX
        counts["ref"] += ref.shape[0]
        counts["ref_hit"] += int(ref_hit.sum())
        counts["det"] += found.shape[0]
        counts["det_hit"] += int(det_hit.sum())
        counts["ref_c"] += int(ref_close.sum())
        counts["ref_c_hit"] += int(ref_hit[ref_close].sum())
        counts["det_c"] += int(det_close.sum())
        counts["det_c_hit"] += int(det_hit[det_close].sum())

    def ratio(a: str, b: str) -> float | None:
        return round(counts[a] / counts[b], 3) if counts[b] else None

    result = {
        "detector": args.detector,
        "overrides": args.set,
        "frames": frames,
        "recall": ratio("ref_hit", "ref"),
        "precision": ratio("det_hit", "det"),
        "recall_ge150": ratio("ref_c_hit", "ref_c"),
        "precision_ge150": ratio("det_c_hit", "det_c"),
        "n_ref_ge150": counts["ref_c"],
        "ms_per_frame": round(1000.0 * seconds / max(frames, 1), 1),
        # CPU time of this process: the cost on one core, less inflated than wall time when the PC is busy.
        "cpu_ms_per_frame": round(1000.0 * cpu_seconds / max(frames, 1), 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
