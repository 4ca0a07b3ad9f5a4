"""``gaitwatch synth``: write generated walkers as recordings plus a ``labels.csv`` with their ground truth.

Usage: ``gaitwatch synth --out DIR [--subjects N] [--fps F] [--duration S] [--seed S]
[--abnormal-fraction P]``. Each subject becomes ``DIR/subject_NNNN.npz`` (keypoints and timestamps only, one
track) and a row of ``DIR/labels.csv``: recording, subject, label, pattern and the true cadence, step-time CV
and stride-time CV over the recording. Without ``--fps`` subjects are filmed at 15 or 30 fps; cameras, views
and pose noise (jitter, dropped-frame bursts, left/right swaps) are drawn as for training
(``gaitwatch.gait.offline.training.subject_specs``). Exit 0 on success, 1 when DIR cannot be written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from gaitwatch.gait.offline.labels import write_labels
from gaitwatch.gait.offline.synthetic import generate_walk, sample_walker
from gaitwatch.gait.offline.training import subject_specs
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.types import GaitWindow


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``synth`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "synth",
        help="generate walkers with known gait as recordings + labels.csv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--subjects", type=int, default=40, help="number of subjects (default 40)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of every subject (default 15 or 30)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per recording (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    p.add_argument(
        "--abnormal-fraction",
        type=float,
        default=0.5,
        help="share of subjects with abnormal gait (default 0.5)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        sys.stderr.write(f"gaitwatch synth: cannot create {out}: {exc}\n")
        return 1
    fps_choices = (args.fps,) if args.fps else (15.0, 30.0)
    specs = subject_specs(args.subjects, args.seed, fps_choices, args.abnormal_fraction)
    rows: list[dict[str, str | float]] = []
    for k, spec in enumerate(specs):
        rng = np.random.default_rng(spec.seed)
        params = sample_walker(spec.pattern, rng, args.duration)
        walk = generate_walk(
            params,
            spec.camera(),
            spec.noise,
            fps=spec.fps,
            duration_s=args.duration,
            seed=spec.seed,
        )
        name = f"subject_{spec.subject:04d}.npz"
        meta = {
            "source": "synthetic",
            "fps": spec.fps,
            "view_deg": spec.view_deg,
            "camera_height_m": spec.camera_height_m,
            "tilt_deg": spec.tilt_deg,
            "pattern": spec.pattern,
            "heel_strikes_left": walk.heel_strikes_left.tolist(),
            "heel_strikes_right": walk.heel_strikes_right.tolist(),
        }
        Recording.single(GaitWindow(1, walk.t, walk.keypoints, walk.world), meta).save(out / name)
        truth = walk.truth(float(walk.t[0]), float(walk.t[-1]))
        rows.append(
            {
                "recording": name,
                "subject": f"s{spec.subject:04d}",
                "label": "normal" if spec.pattern == "normal" else "abnormal",
                "pattern": spec.pattern,
                "cadence_spm": round(truth["cadence_spm"], 3),
                "step_time_cv": round(truth["step_time_cv"], 5),
                "stride_time_cv": round(truth["stride_time_cv"], 5),
            }
        )
        progress("synth", k + 1, len(specs))
    write_labels(out / "labels.csv", rows)
    sys.stdout.write(f"wrote {len(rows)} recordings and {out / 'labels.csv'}\n")
    return 0


def progress(what: str, done: int, total: int) -> None:
    """A one-line progress bar on stderr (only when it is a terminal)."""
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * done / max(total, 1))
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r{what} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    sys.stderr.flush()
