"""Frames per second of the default tracker and of plain SORT on MOT17-04 (crowded, 1050 frames), same run.

Usage: ``python bench/tracker_speed.py [DATA_DIR]`` where DATA_DIR holds ``MOT17-04-FRCNN`` (default:
``../shared/data/mot`` next to the repository). Only the trackers' ``update`` calls are timed (detections are
parsed beforehand); each tracker runs ``--repeats`` times and the best run counts, so a busy machine disturbs
the figures less. Ends with ``tracker_speed: default_fps=X sort_fps=Y``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gaitwatch.tracking.offline.mot_eval import OnlineTracker
from gaitwatch.tracking.offline.motchallenge import read_sequence
from gaitwatch.tracking.sort import SortTracker
from gaitwatch.tracking.tracker import Tracker
from gaitwatch.tracking.types import Detections

SEQUENCE = "MOT17-04-FRCNN"


def best_fps(
    make: Callable[[], OnlineTracker], frames: list[tuple[int, Detections]], times: list[float], repeats: int
) -> float:
    best = float("inf")
    for _ in range(repeats):
        tracker = make()
        started = time.perf_counter()
        for (_, detections), t in zip(frames, times, strict=True):
            tracker.update(detections, t)
        best = min(best, time.perf_counter() - started)
    return len(frames) / best


def main() -> int:
    default_dir = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=default_dir)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = args.data_dir / SEQUENCE
    if not folder.is_dir():
        print(f"tracker_speed: {folder} not found", file=sys.stderr)
        return 1
    seq = read_sequence(folder)
    frames = list(seq.detections())
    times = [seq.frame_time(frame) for frame, _ in frames]
    n_dets = sum(len(d) for _, d in frames)
    print(f"{SEQUENCE}: {len(frames)} frames, {n_dets} detections, best of {args.repeats} runs")
    sort_fps = best_fps(SortTracker, frames, times, args.repeats)
    default_fps = best_fps(Tracker, frames, times, args.repeats)
    print(f"sort:    {sort_fps:8.0f} frames/s")
    print(f"default: {default_fps:8.0f} frames/s ({default_fps / sort_fps:.2f}x sort)")
    print(f"tracker_speed: default_fps={default_fps:.0f} sort_fps={sort_fps:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
