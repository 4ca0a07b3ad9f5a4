"""``gaitwatch train-gait``: fit the gait classifier and write it as a versioned JSON model (never a pickle).

Usage: ``gaitwatch train-gait LABELS.csv [--out MODEL.json] [--kind svm|gnb] [--hop S]`` trains on the
recordings a labels file lists (columns: recording, subject, label[, rater_label, pattern, ...]) or on
clinicians' episode labels from ``gaitwatch review`` (recording, subject, t_start, t_end, rater, label, pattern,
note: each window takes the raters' majority call, ``unusable`` and ties are dropped, recordings are never split
between training and test); ``gaitwatch
train-gait --synthetic N [--seed S] [--fps F,...] [--views LO,HI]`` trains on N generated subjects instead,
filmed with pose noise drawn over the range measured on real footage (``gaitwatch.gait.offline.synthetic.
realistic_noise``) and walking in every direction by default. The shipped default model is made by
``gaitwatch train-gait --synthetic 300 --seed 2026 --fps 7,15,30 --out gait/models/default_gait_model.json``;
the model's ``info.command`` records the command that made it. Exit 0 on success, 1 on unreadable data or too
few windows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import sklearn

from gaitwatch.gait.model import GaitModel
from gaitwatch.gait.offline.episodes import is_episode_file, read_episodes
from gaitwatch.gait.offline.labels import episode_windows, labelled_windows, read_labels
from gaitwatch.gait.offline.training import WindowSet, fit_model, subject_specs, synthetic_windows
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.tools.cmd_synth import progress


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``train-gait`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "train-gait",
        help="train the normal/abnormal gait classifier (SVM or naive Bayes) into a JSON model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(p, "train", seed=2026, fps="7,15,30", views="0,90", views_note="all")
    p.add_argument("--hop", type=float, default=2.0, help="seconds between training windows (default 2)")
    p.add_argument("--out", type=Path, default=Path("gait_model.json"), help="model file to write")
    p.set_defaults(func=run)


def add_data_arguments(
    p: argparse.ArgumentParser, verb: str, *, seed: int, fps: str, views: str, views_note: str
) -> None:
    """Where the windows come from (a labels file or ``--synthetic`` subjects) and the binary model kind:
    shared by ``train-gait`` and ``eval-gait``, which read them through :func:`load_training_data`."""
    p.add_argument("labels", type=Path, nargs="?", metavar="LABELS.csv", help="labels file of recordings")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help=f"{verb} on N generated subjects")
    p.add_argument("--seed", type=int, default=seed, help=f"seed for --synthetic (default {seed})")
    p.add_argument("--fps", default=fps, help="frame rates for --synthetic, comma-separated")
    p.add_argument(
        "--views",
        default=views,
        help=f"for --synthetic: range of walking directions to the optical axis, degrees (default {views}: "
        f"{views_note})",
    )
    p.add_argument("--kind", choices=("svm", "gnb"), default="svm", help="binary model (default svm)")


def load_training_data(args: argparse.Namespace, what: str) -> tuple[WindowSet, dict[str, Any]]:
    """Windows from ``args.labels`` or ``--synthetic``; also returns a description of where they came from."""
    settings = GaitSettings()
    if args.synthetic:
        fps = tuple(float(f) for f in str(args.fps).split(","))
        lo, hi = (float(v) for v in str(args.views).split(","))
        specs = subject_specs(args.synthetic, args.seed, fps, view_range=(lo, hi))
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            progress(what, done[0], len(specs))

        data = synthetic_windows(specs, settings, hop_s=args.hop, progress=tick)
        return data, {
            "data": "synthetic",
            "subjects_generated": args.synthetic,
            "seed": args.seed,
            "fps": fps,
            "views_deg": (lo, hi),
        }
    if args.labels is None:
        raise ValueError("give LABELS.csv or --synthetic N")
    if is_episode_file(args.labels):  # clinicians' episodes (gaitwatch review): majority call per window
        episodes = read_episodes(args.labels)
        data, _ = episode_windows(episodes, settings, hop_s=args.hop)
        raters = len({e.rater for e in episodes})
        return data, {"data": str(args.labels), "recordings": len({e.recording for e in episodes}), "raters": raters}
    rows = read_labels(args.labels)
    data, _ = labelled_windows(rows, settings, hop_s=args.hop)
    return data, {"data": str(args.labels), "recordings": len(rows)}


def command_line(args: argparse.Namespace) -> str:
    """The ``gaitwatch train-gait`` command that reproduces this run (every option spelled out)."""
    data = f"--synthetic {args.synthetic} --seed {args.seed} --fps {args.fps} --views {args.views}"
    source = data if args.synthetic else str(args.labels)
    return f"gaitwatch train-gait {source} --kind {args.kind} --hop {args.hop:g} --out {args.out}"


def run(args: argparse.Namespace) -> int:
    try:
        data, source = load_training_data(args, "train-gait")
        info = {**source, "sklearn": sklearn.__version__, "hop_s": args.hop, "command": command_line(args)}
        model: GaitModel = fit_model(data, kind=args.kind, info=info)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"gaitwatch train-gait: {exc}\n")
        return 1
    model.save(args.out)
    n_ab = int(data.abnormal.sum())
    sys.stdout.write(
        f"wrote {args.out}: {args.kind} on {len(data)} windows ({n_ab} abnormal) of "
        f"{len(set(data.subject.tolist()))} subjects\n"
    )
    return 0
