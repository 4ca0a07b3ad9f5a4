"""``gaitwatch record VIDEO --out REC.npz [--fps F] [--config FILE]``: run the real pipeline (detector, tracker,
pose) over a video and save what its gait stage was fed — every tracked person's keypoint trajectory with
timestamps (never pixels), when the tracker dropped each of them, when the video ended — for ``gaitwatch replay``
(which then reproduces the daemon's windows and alerts), ``report`` and ``train-gait``. Exit 0; 1 when the video
cannot be read; 78 for a bad config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gaitwatch.daemon.settings import EX_CONFIG, ConfigError, Settings, load_settings, parse_settings
from gaitwatch.tools.recorder import VideoReadError, record_video


def offline_settings(config: Path | None, video: Path) -> Settings:
    """The detector/tracker/pose settings of ``config`` (a daemon config), or the defaults."""
    if config is not None:
        return load_settings(config)
    return parse_settings({"cameras": [{"id": "offline", "source": str(video)}]})


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "record",
        help="save per-person keypoint trajectories of a video (no pixels)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", type=Path, metavar="VIDEO")
    p.add_argument("--out", type=Path, required=True, help="recording file to write (.npz)")
    p.add_argument("--fps", type=float, default=None, help="the footage's true frame rate")
    p.add_argument("--config", type=Path, default=None, help="daemon config whose detector/pose settings to use")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = offline_settings(args.config, args.video)
    except ConfigError as exc:
        sys.stderr.write(f"gaitwatch record: {exc}\n")
        return EX_CONFIG
    try:
        recording = record_video(args.video, settings, fps=args.fps)
    except VideoReadError as exc:
        sys.stderr.write(f"gaitwatch record: {exc}\n")
        return 1
    recording.save(args.out)
    sys.stdout.write(
        f"record: {args.out} tracks={len(recording.tracks())} samples={len(recording)} "
        f"frames={recording.meta.get('frames')} fps={recording.meta.get('fps')}\n"
    )
    return 0
