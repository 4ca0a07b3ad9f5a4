"""gaitwatch's online tracker against roboflow ``trackers`` peers, same detections, same evaluator, one run.

Usage: ``python bench/tracker_peers.py [DATA_DIR] [--seq NAME ...] [--json OUT]`` where DATA_DIR holds the
MOTChallenge-format sequences (default: ``../shared/data/mot`` next to the repository).

Every tracker sees the same per-frame detections (``MotSequence.detections``) and is scored by the code path of
``gaitwatch eval-mot`` (``track_sequence`` with ``max_gap_s=0``, then ``evaluate``): a box is reported on the
frames its track is confirmed and matched. The peers are roboflow ``trackers`` (Apache-2.0) SORT, ByteTrack,
OC-SORT, BoT-SORT (camera-motion compensation off: ward cameras do not move) and C-BIoU at their defaults,
``frame_rate`` passed; they report the detection box with a track id (id -1 = not reported).

Prints one table (combined MOTA / IDF1 / HOTA per group), per-sequence HOTA, and frames per second of each
tracker's ``update`` calls alone (detections converted beforehand), with the ratio ``gaitwatch fps / peer fps``
from the same run (trackers take turns per sequence, best of ``--repeats`` runs). ``--json OUT`` writes every
figure (fractions; fps in frames per second).

``trackers`` is a dev-only tool that requires ``opencv-python``, which would shadow the project's OpenCV build;
``bash scripts/install.sh --dev`` installs it without its dependencies (see the command printed when missing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gaitwatch.tracking.offline.mot_eval import MotCounts, OnlineTracker, combine, evaluate, track_sequence
from gaitwatch.tracking.offline.motchallenge import MotSequence, find_sequences, read_sequence
from gaitwatch.tracking.tracker import Tracker
from gaitwatch.tracking.types import Detections, Tracks, TrackState

INSTALL_HINT = (
    ".venv/bin/python -m pip install --no-deps trackers==2.6.1 supervision==0.31.2 'pydeprecate>=0.9,<0.14' "
    "&& .venv/bin/python -m pip install requests rich pyyaml defusedxml   (or: bash scripts/install.sh --dev)"
)
GROUPS: dict[str, tuple[str, ...]] = {
    "MOT15": ("TUD-Campus", "KITTI-17"),
    "MOT17": ("MOT17-02-FRCNN", "MOT17-04-FRCNN", "MOT17-05-FRCNN", "MOT17-09-FRCNN", "MOT17-11-FRCNN"),
    "KITTI": ("KITTI-trk-0013", "KITTI-trk-0016", "KITTI-trk-0017"),
}
GAITWATCH = "gaitwatch"


class TimedTracker:
    """Wraps an ``OnlineTracker`` and adds up the seconds spent in its ``update`` calls."""

    def __init__(self, inner: OnlineTracker) -> None:
        self.inner = inner
        self.seconds = 0.0

    def update(self, detections: Detections, t: float) -> Tracks:
        started = time.perf_counter()
        out = self.inner.update(detections, t)
        self.seconds += time.perf_counter() - started
        return out


class PeerTracker:
    """A roboflow ``trackers`` tracker seen as an ``OnlineTracker``: its id'd detection boxes as fresh tracks.

    Only the peer's own ``update`` is timed (the ``supervision.Detections`` conversion is not), so the speed
    comparison is between the trackers' algorithms, not our glue.
    """

    def __init__(self, peer: Any) -> None:
        import supervision as sv

        self._sv = sv
        self._peer = peer
        self.seconds = 0.0

    def update(self, detections: Detections, t: float) -> Tracks:
        n = detections.xyxy.shape[0]
        sv_dets = self._sv.Detections(
            xyxy=detections.xyxy.astype(np.float32).reshape(n, 4),
            confidence=detections.score.astype(np.float32),
            class_id=np.zeros(n, dtype=int),
        )
        started = time.perf_counter()
        result = self._peer.update(sv_dets)
        self.seconds += time.perf_counter() - started
        ids = np.asarray(result.tracker_id if result.tracker_id is not None else [], dtype=np.int64)
        keep = ids >= 0
        count = int(keep.sum())
        if count == 0:
            return Tracks.empty()
        return Tracks(
            ids=ids[keep],
            xyxy=np.asarray(result.xyxy, dtype=np.float64)[keep],
            state=np.full(count, int(TrackState.CONFIRMED), dtype=np.int8),
            age_s=np.zeros(count),
            since_update_s=np.zeros(count),
        )


def peer_factories() -> dict[str, Callable[[float], PeerTracker | TimedTracker]]:
    """The roboflow peers at their defaults (``frame_rate`` passed); raises ImportError when not installed."""
    import trackers

    return {
        "trackers SORT": lambda fps: PeerTracker(trackers.SORTTracker(frame_rate=fps)),
        "trackers ByteTrack": lambda fps: PeerTracker(trackers.ByteTrackTracker(frame_rate=fps)),
        "trackers OC-SORT": lambda fps: PeerTracker(trackers.OCSORTTracker(frame_rate=fps)),
        "trackers BoT-SORT (no CMC)": lambda fps: PeerTracker(
            trackers.BoTSORTTracker(frame_rate=fps, enable_cmc=False)
        ),
        "trackers C-BIoU": lambda fps: PeerTracker(trackers.CBIoUTracker(frame_rate=fps)),
    }


Factory = Callable[[float], PeerTracker | TimedTracker]


def run_one(make: Factory, sequences: list[MotSequence]) -> dict[str, Any]:
    """Scores of one tracker over every sequence, per sequence and per group."""
    per_seq: dict[str, MotCounts] = {}
    for seq in sequences:
        per_seq[seq.name] = evaluate(seq, track_sequence(seq, make(seq.frame_rate), max_gap_s=0.0))
    groups = {
        group: combine(per_seq[name] for name in names if name in per_seq)
        for group, names in GROUPS.items()
        if any(name in per_seq for name in names)
    }
    return {"sequences": per_seq, "groups": groups}


def speeds(makers: dict[str, Factory], sequences: list[MotSequence], repeats: int) -> dict[str, float]:
    """Frames per second of each tracker's ``update`` calls over all sequences.

    The trackers take turns on each sequence and each (tracker, sequence) keeps its fastest of ``repeats``
    runs, so load from other processes on the shared machine disturbs every tracker alike and as little as
    possible.
    """
    frames = [(seq, list(seq.detections())) for seq in sequences]
    best = {(name, seq.name): float("inf") for name in makers for seq in sequences}
    for _ in range(repeats):
        for seq, dets in frames:
            for name, make in makers.items():
                tracker = make(seq.frame_rate)
                for frame, detections in dets:
                    tracker.update(detections, seq.frame_time(frame))
                best[name, seq.name] = min(best[name, seq.name], tracker.seconds)
    total = sum(seq.length for seq in sequences)
    return {name: total / max(sum(best[name, seq.name] for seq in sequences), 1e-9) for name in makers}


def _triple(counts: MotCounts) -> str:
    return f"{100 * counts.mota:.1f} / {100 * counts.idf1:.1f} / {100 * counts.hota:.1f}"


def main() -> int:
    default_dir = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=default_dir)
    parser.add_argument("--seq", nargs="+", action="extend", default=[], metavar="NAME", help="only these")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every figure as JSON")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per tracker and sequence (best counts)")
    args = parser.parse_args()
    try:
        peers = peer_factories()
    except ImportError as exc:
        sys.stderr.write(f"tracker_peers: roboflow 'trackers' is not importable ({exc}); install it with\n")
        sys.stderr.write(f"  {INSTALL_HINT}\n")
        return 1
    try:
        sequences = [read_sequence(folder) for folder in find_sequences(args.data_dir, args.seq)]
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"tracker_peers: {exc}\n")
        return 1
    if any(seq.gt is None for seq in sequences):
        sys.stderr.write("tracker_peers: every sequence needs ground truth (gt.txt)\n")
        return 1

    makers: dict[str, Factory] = {GAITWATCH: lambda _fps: TimedTracker(Tracker()), **peers}
    results = {name: run_one(make, sequences) for name, make in makers.items()}
    for name, fps in speeds(makers, sequences, args.repeats).items():
        results[name]["fps"] = fps
    ours = results[GAITWATCH]["fps"]

    groups = [g for g in GROUPS if g in results[GAITWATCH]["groups"]]
    out = sys.stdout.write
    out("online output, combined MOTA / IDF1 / HOTA (%); fps = frames/s of update() alone; ratio = gaitwatch/peer\n")
    out(f"| tracker | {' | '.join(groups)} | fps | gaitwatch fps / this |\n")
    out(f"|---|{'---|' * len(groups)}---|---|\n")
    for name, res in results.items():
        cells = " | ".join(_triple(res["groups"][g]) for g in groups)
        out(f"| {name} | {cells} | {res['fps']:.0f} | {ours / res['fps']:.2f} |\n")
    out("\nper-sequence HOTA (%)\n")
    names = list(results)
    out(f"| sequence | {' | '.join(names)} |\n|---|{'---|' * len(names)}\n")
    for seq in sequences:
        cells = " | ".join(f"{100 * results[n]['sequences'][seq.name].hota:.1f}" for n in names)
        out(f"| {seq.name} | {cells} |\n")
    peer_names = [n for n in names if n != GAITWATCH]
    best_peer = {g: max(peer_names, key=lambda n: float(results[n]["groups"][g].hota)) for g in groups}
    for g in groups:
        mine, theirs = results[GAITWATCH]["groups"][g], results[best_peer[g]]["groups"][g]
        out(
            f"{g}: gaitwatch - best peer by HOTA ({best_peer[g]}): MOTA {100 * (mine.mota - theirs.mota):+.1f} "
            f"IDF1 {100 * (mine.idf1 - theirs.idf1):+.1f} HOTA {100 * (mine.hota - theirs.hota):+.1f}\n"
        )
    worst = min(
        (
            100
            * (
                results[GAITWATCH]["sequences"][seq.name].hota
                - max(results[n]["sequences"][seq.name].hota for n in names if n != GAITWATCH)
            ),
            seq.name,
        )
        for seq in sequences
    )
    out(f"worst sequence vs best peer on it: {worst[1]} HOTA {worst[0]:+.1f}\n")
    sort_ratio = ours / results["trackers SORT"]["fps"]
    out(f"tracker_peers: gaitwatch_fps={ours:.0f} speed_ratio_vs_trackers_sort={sort_ratio:.2f}\n")

    if args.json is not None:
        payload = {
            name: {
                "fps": res["fps"],
                "speed_ratio_gaitwatch_over_this": ours / res["fps"],
                "groups": {g: c.as_dict() for g, c in res["groups"].items()},
                "sequences": {s: c.as_dict() for s, c in res["sequences"].items()},
            }
            for name, res in results.items()
        }
        payload["_settings"] = {"output": "online", "units": "fractions; fps in frames per second"}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
