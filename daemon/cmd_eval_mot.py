"""``gaitwatch eval-mot``: run a tracker on MOTChallenge-format detections and score it against ground truth.

Usage: ``gaitwatch eval-mot DATA_DIR [--seq NAME ...] [--tracker default|sort] [--max-gap-s S]
[--gt-format auto|mot15|mot16] [--json OUT] [--results DIR]``.

DATA_DIR holds sequence folders (or is one), each with ``det/det.txt`` or ``det.txt``, ``gt/gt.txt`` or
``gt.txt`` and ``seqinfo.ini`` (``frameRate``, ``seqLength``). MOT16/17 ground truth (class and visibility
columns) is scored like the devkit: pedestrians with flag 1, tracker boxes on distractors removed; other
ground truth ignores rows with flag 0. Matching at IoU >= 0.5 (py-motmetrics), HOTA over IoU 0.05..0.95.

``--tracker sort`` is plain SORT (the reference baseline); ``--tracker default`` is gaitwatch's tracker.
``--max-gap-s`` (default 3.0 for ``default``, 0 for ``sort``) reports the tracker as a fixed-lag output
(``gaitwatch.tracking.fixed_lag``): a confirmed track's tentative first frames are reported, tracklets that end
and start within that many seconds are joined, and gaps up to that long are filled by interpolation, wherever
the motion extrapolated from both sides of the gap agrees; 0 gives the plain online output. The table prints
percentages; the JSON (one object per sequence plus "combined") holds ``mota``, ``idf1``, ``hota``,
``recall``, ``precision`` as fractions in [0, 1] (MOTA may be negative) and ``idsw``, ``fp``, ``fn``,
``num_gt`` as counts. Exit codes: 0 done, 1 unreadable data (named on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gaitwatch.tracking.evaluation import MotCounts, OnlineTracker, combine, evaluate, track_sequence
from gaitwatch.tracking.motchallenge import MotSequence, find_sequences, read_sequence, write_results
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
    if args.results is not None:
        args.results.mkdir(parents=True, exist_ok=True)
    _out(f"tracker={args.tracker} max_gap_s={max_gap_s:g} (percentages; fps = tracker frames per second)")
    _out(
        f"{'sequence':24s} {'MOTA':>6s} {'IDF1':>6s} {'HOTA':>6s} {'IDsw':>5s} {'FP':>6s} {'FN':>7s} "
        f"{'Rcll':>6s} {'Prcn':>6s} {'fps':>8s}"
    )
    results: dict[str, MotCounts] = {}
    for seq in sequences:
        started = time.perf_counter()
        rows = track_sequence(seq, make_tracker(args.tracker), max_gap_s=max_gap_s)
        fps = seq.length / max(time.perf_counter() - started, 1e-9)
        counts = evaluate(seq, rows)
        results[seq.name] = counts
        _out(_row(seq.name, counts, fps))
        if args.results is not None:
            write_results(args.results / f"{seq.name}.txt", rows)
    total = combine(results.values())
    _out(_row("combined", total, None))
    if args.json is not None:
        payload: dict[str, object] = {name: counts.as_dict() for name, counts in results.items()}
        payload["combined"] = total.as_dict()
        payload["_settings"] = {"tracker": args.tracker, "max_gap_s": max_gap_s, "units": "fractions"}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0
