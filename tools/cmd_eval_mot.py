"""``gaitwatch eval-mot``: run a tracker on MOTChallenge-format detections and score it against ground truth.

Usage: ``gaitwatch eval-mot DATA_DIR [--seq NAME ...] [--tracker default|sort] [--max-gap-s S]
[--gt-format auto|mot15|mot16] [--json OUT] [--results DIR]``.

DATA_DIR holds sequence folders (or is one), each with ``det/det.txt`` or ``det.txt``, ``gt/gt.txt`` or
``gt.txt`` and ``seqinfo.ini`` (``frameRate``, ``seqLength``). MOT16/17 ground truth (class and visibility
columns) is scored like the devkit: pedestrians with flag 1, tracker boxes on distractors removed; other
ground truth ignores rows with flag 0. Matching at IoU >= 0.5 (py-motmetrics), HOTA over IoU 0.05..0.95.

``--tracker sort`` is plain SORT (the reference baseline); ``--tracker default`` is gaitwatch's tracker.
One run of the tracker is scored as two outputs, by name:

* ``online``: confirmed tracks' matched boxes, frame by frame; what the daemon's urgent path (falls and other
  alerts) works from.
* ``fixed_lag``: the same run through ``gaitwatch.tracking.fixed_lag`` with a window of ``--max-gap-s``
  seconds (default 3.0 for ``default``, 0 for ``sort``): a confirmed track's tentative first frames are
  reported, tracklets that end and start within that many seconds are joined, and gaps up to that long are
  filled by interpolation, wherever the motion extrapolated from both sides of the gap agrees; what the gait
  path works from. ``--max-gap-s 0`` reports the online output alone.

The tables print percentages; the JSON has one object per output (``"online"``, ``"fixed_lag"``), each with
one object per sequence plus "combined", holding ``mota``, ``idf1``, ``hota``, ``recall``, ``precision`` as
fractions in [0, 1] (MOTA may be negative) and ``idsw``, ``fp``, ``fn``, ``num_gt`` as counts, and
``"_settings"``. ``--results DIR`` writes ``DIR/<output>/<sequence>.txt``. Exit codes: 0 done, 1 unreadable
data (named on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gaitwatch.tracking.offline.mot_eval import (
    FIXED_LAG,
    ONLINE,
    MotCounts,
    OnlineTracker,
    combine,
    evaluate,
    track_outputs,
)
from gaitwatch.tracking.offline.motchallenge import MotSequence, find_sequences, read_sequence, write_results
from gaitwatch.tracking.sort import SortTracker
from gaitwatch.tracking.tracker import Tracker

DEFAULT_MAX_GAP_S = 3.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``eval-mot`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "eval-mot",
        help="run the tracker on MOTChallenge detections; MOTA, IDF1, HOTA, ID switches against ground truth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="folder of sequence folders (or one)")
    p.add_argument("--seq", nargs="+", action="extend", default=[], metavar="NAME", help="only these")
    p.add_argument("--tracker", choices=("default", "sort"), default="default", help="tracker to run")
    p.add_argument(
        "--max-gap-s",
        type=float,
        default=None,
        help=f"fixed-lag window in seconds: join and fill gaps up to this long where motion agrees "
        f"(default {DEFAULT_MAX_GAP_S} for default, 0 for sort)",
    )
    p.add_argument("--gt-format", choices=("auto", "mot15", "mot16"), default="auto", help="ground-truth dialect")
    p.add_argument("--json", type=Path, metavar="OUT", help="write metrics as JSON (fractions)")
    p.add_argument("--results", type=Path, metavar="DIR", help="also write each sequence's tracks (MOT format)")
    p.set_defaults(func=run)


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def make_tracker(kind: str) -> OnlineTracker:
    return SortTracker() if kind == "sort" else Tracker()


def _row(name: str, counts: MotCounts, fps: float | None) -> str:
    speed = f"{fps:8.0f}" if fps is not None else " " * 8
    return (
        f"{name:24s} {100 * counts.mota:6.1f} {100 * counts.idf1:6.1f} {100 * counts.hota:6.1f} "
        f"{counts.idsw:5d} {counts.fp:6d} {counts.fn:7d} {100 * counts.recall:6.1f} "
        f"{100 * counts.precision:6.1f} {speed}"
    )


def run(args: argparse.Namespace) -> int:
    max_gap_s = args.max_gap_s
    if max_gap_s is None:
        max_gap_s = DEFAULT_MAX_GAP_S if args.tracker == "default" else 0.0
    if max_gap_s < 0:
        _err(f"eval-mot: --max-gap-s must be >= 0; got {max_gap_s}")
        return 1
    try:
        folders = find_sequences(args.data_dir, args.seq)
        sequences: list[MotSequence] = [read_sequence(folder, args.gt_format) for folder in folders]
    except (OSError, ValueError) as exc:
        _err(f"eval-mot: {exc}")
        return 1
    unscored = [seq.name for seq in sequences if seq.gt is None]
    if unscored:
        _err(f"eval-mot: no ground truth (gt/gt.txt or gt.txt) for {unscored}")
        return 1
    outputs = [ONLINE, FIXED_LAG] if max_gap_s > 0 else [ONLINE]
    header = (
        f"{'sequence':24s} {'MOTA':>6s} {'IDF1':>6s} {'HOTA':>6s} {'IDsw':>5s} {'FP':>6s} {'FN':>7s} "
        f"{'Rcll':>6s} {'Prcn':>6s} {'fps':>8s}"
    )
    results: dict[str, dict[str, MotCounts]] = {name: {} for name in outputs}
    speed: dict[str, float] = {}
    for seq in sequences:
        started = time.perf_counter()
        rows = track_outputs(seq, make_tracker(args.tracker), max_gap_s if max_gap_s > 0 else None)
        speed[seq.name] = seq.length / max(time.perf_counter() - started, 1e-9)
        for name in outputs:
            results[name][seq.name] = evaluate(seq, rows[name])
            if args.results is not None:
                (args.results / name).mkdir(parents=True, exist_ok=True)
                write_results(args.results / name / f"{seq.name}.txt", rows[name])
    totals = {name: combine(results[name].values()) for name in outputs}
    for name in outputs:
        window = f" max_gap_s={max_gap_s:g}" if name == FIXED_LAG else ""
        _out(f"output={name} tracker={args.tracker}{window} (percentages; fps = tracker frames per second)")
        _out(header)
        for seq_name, counts in results[name].items():
            _out(_row(seq_name, counts, speed[seq_name]))
        _out(_row("combined", totals[name], None))
        _out("")
    if args.json is not None:
        payload: dict[str, object] = {}
        for name in outputs:
            block: dict[str, object] = {seq_name: c.as_dict() for seq_name, c in results[name].items()}
            block["combined"] = totals[name].as_dict()
            payload[name] = block
        payload["_settings"] = {
            "tracker": args.tracker,
            "outputs": outputs,
            "max_gap_s": max_gap_s,
            "units": "fractions",
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0
