"""``gaitwatch bench [--video PATH ...] [--cameras N] [--seconds S] [--live] [--json OUT]``: size a ward PC.

Runs the real daemon on real clips (default: ../shared/data/video/vtest.avi at its real 7 fps, else the shipped
demo clip) and prints, per stage, the median and p95 milliseconds per frame and per person, frames/s,
person-frames/s, CPU seconds per frame, cores used, peak RSS, and the pose model's raw crops/s on one core,
measured inside the run (CPU seconds of the model calls) and alone afterwards on the same clip's crops. Then,
unless ``--no-sweep``, it plays the clip live as 1, 2, ... 6 cameras with every shipped pose model and reports
the largest camera count that holds real time (<= 5% frames dropped, p95 capture-to-publish latency < 500 ms),
with a PNG plot of person-frames/s and p95 latency against cameras. A model's sweep stops at the first camera
count that does not hold real time (more cameras cannot hold it either, and each run takes ``--seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, get_args

from gaitwatch.daemon.logs import configure_logging
from gaitwatch.daemon.settings import DetectorSettings
from gaitwatch.pose.blazepose import BlazePoseSettings, ModelVariant
from gaitwatch.tools.bench import holds_realtime, run_once, time_pose_backend
from gaitwatch.tools.demo import shipped_clip

# Every shipped pose model, the daemon's default first.
POSE_MODELS: tuple[str, ...] = tuple(dict.fromkeys((BlazePoseSettings().model, *get_args(ModelVariant))))

DEFAULT_CLIP = Path("../shared/data/video/vtest.avi")
VTEST_FPS = 7.0  # vtest.avi's container claims 10 fps; PETS09-S2L1 was captured at 7 fps


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmark the real pipeline: stage costs, throughput, latency, cameras in real time",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--video", type=Path, action="append", help="clip(s) to play (repeat for several)")
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="the clips' real frame rate (default: each clip's container rate; 7 for the default clip vtest.avi, "
        "whose container claims 10: pass --fps 7 when naming it with --video)",
    )
    p.add_argument("--cameras", type=int, default=1, help="cameras in the throughput run (copies of the clips)")
    p.add_argument("--seconds", type=float, default=45.0, help="length of each run")
    p.add_argument(
        "--model", choices=POSE_MODELS, default=BlazePoseSettings().model, help="pose model of the throughput run"
    )
    p.add_argument(
        "--live", action="store_true", help="throughput run at the clips' frame rate, not as fast as possible"
    )
    p.add_argument(
        "--inference-threads",
        type=int,
        default=None,
        help="the daemon's service.inference_threads for every run (default: the daemon's default)",
    )
    p.add_argument(
        "--detector",
        choices=get_args(DetectorSettings.model_fields["kind"].annotation),
        default=None,
        help="the daemon's [detector] kind for every run (default: the daemon's default)",
    )
    p.add_argument("--sweep", default="1,2,3,4,5,6", help="camera counts of the live real-time sweep")
    p.add_argument(
        "--sweep-models",
        default=",".join(POSE_MODELS),
        help=f"pose models of the live sweep, comma-separated (default {','.join(POSE_MODELS)})",
    )
    p.add_argument("--no-sweep", action="store_true", help="skip the live sweep")
    p.add_argument(
        "--no-pose-alone", action="store_true", help="skip timing the pose model alone after the run (sweep runs)"
    )
    p.add_argument("--plot", type=Path, default=Path("bench/scaling.png"), help="PNG of the sweep")
    p.add_argument("--json", type=Path, default=None, help="write all figures as JSON")
    p.set_defaults(func=run)


def _default_videos() -> tuple[list[Path], float | None]:
    if DEFAULT_CLIP.is_file():
        return [DEFAULT_CLIP], VTEST_FPS
    return [shipped_clip()], None


def _finite(value: float, digits: int) -> float | None:
    """JSON has no NaN: a figure that could not be measured is null."""
    return round(value, digits) if math.isfinite(value) else None


def _pose_share(run: dict[str, Any], crops_per_s_per_core: float) -> float:
    """Person-frames/s as a share of what the pose model alone could do on the cores the run used: 1.0 would
    mean that everything that is not pose costs nothing."""
    capacity = crops_per_s_per_core * run["cores_used"]
    return float(run["person_frames_per_s"] / capacity) if capacity > 0 else float("nan")


def _print_run(run: dict[str, Any]) -> None:
    out = sys.stdout
    out.write(
        f"\n[{run['mode']}] cameras={run['cameras']} model={run['model']} "
        f"inference_threads={run['inference_threads']} {run['seconds']} s: "
        f"frames/s={run['frames_per_s']} person-frames/s={run['person_frames_per_s']} "
        f"people/frame={run['people_per_frame']} cpu_s/frame={run['cpu_s_per_frame']} "
        f"cores_used={run['cores_used']} peak_rss_mb={run['peak_rss_mb']} dropped={run['dropped_fraction']} "
        f"latency median/p95 ms={run['latency_median_ms']}/{run['p95_latency_ms']}\n"
    )
    out.write(
        f"  {'stage':8} {'frame mean':>10} {'frame med':>10} {'frame p95':>10} {'person med':>11} {'person p95':>11}\n"
    )
    for stage, q in run["stages_per_frame"].items():
        pp = run["stages_per_person"][stage]
        out.write(
            f"  {stage:8} {q['mean_ms']:>10} {q['median_ms']:>10} {q['p95_ms']:>10} {pp['median_ms']:>11} "
            f"{pp['p95_ms']:>11}\n"
        )
    out.write(f"  per-person ms by people in frame: {run['per_person_cost_by_people']}\n")
    passes = run["detection_passes"]
    out.write(
        # Between whole-frame scans the HOG kinds search regions only, while the NanoDet kinds run NanoDet alone
        # on the whole frame (BlazePose waits for the next scan): the label must not claim regions for them.
        f"  detection passes: {passes['whole_frame']} whole-frame scans (median {passes['whole_frame_median_ms']} "
        f"ms), {passes['regions']} between them (median {passes['regions_median_ms']} ms; search regions, or "
        "NanoDet alone on the whole frame)\n"
    )
    roles = run["cpu_ms_per_frame_by_role"]
    if roles:
        total = sum(roles.values())
        out.write(f"  CPU ms per frame by thread role (total {total:.1f}):\n")
        for role, ms in roles.items():
            out.write(f"    {role:50} {ms:7.2f}  {100.0 * ms / total:5.1f}%\n")


def _plot(sweep: list[dict[str, Any]], path: Path, fps: float | None) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install 'gaitwatch[report]')"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    # The rate the clips were played at (it said 7 fps whatever --fps and the clip were).
    cameras = f"cameras (live, {fps:g} fps)" if fps else "cameras (live, each clip's own frame rate)"
    for model in dict.fromkeys(r["model"] for r in sweep):
        runs = [r for r in sweep if r["model"] == model]
        cams = [r["cameras"] for r in runs]
        ax1.plot(cams, [r["person_frames_per_s"] for r in runs], marker="o", label=f"{model} model")
        ax2.plot(cams, [r["p95_latency_ms"] or float("nan") for r in runs], marker="o", label=f"{model} model")
    ax1.set(xlabel=cameras, ylabel="person-frames/s", title="Throughput")
    ax2.axhline(500, color="grey", linestyle="--", label="real-time bound")
    ax2.set(xlabel=cameras, ylabel="p95 capture-to-publish latency (ms)", title="Latency")
    for ax in (ax1, ax2):
        ax.set_xticks(sorted({r["cameras"] for r in sweep}))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"plot written to {path}"


async def _run_in_own_process(
    videos: list[Path],
    fps: float | None,
    cameras: int,
    model: str,
    seconds: float,
    threads: int | None,
    detector: str | None,
) -> dict[str, Any]:
    """One live sweep run in a fresh process, so that its peak memory and its CPU are its own (memory freed by
    an earlier run is not always handed back to the system, and would be counted again)."""
    with tempfile.TemporaryDirectory(prefix="gaitwatch-bench-") as tmp:
        out = Path(tmp) / "run.json"
        command = [sys.executable, "-m", "gaitwatch.tools.cli", "bench", "--no-sweep", "--live", "--no-pose-alone"]
        for video in videos:
            command += ["--video", str(video)]
        command += ["--cameras", str(cameras), "--model", model, "--seconds", str(seconds), "--json", str(out)]
        if fps:
            command += ["--fps", str(fps)]
        if threads:
            command += ["--inference-threads", str(threads)]
        if detector:
            command += ["--detector", detector]
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"the {cameras}-camera {model} run failed: {stderr.decode(errors='replace')[-500:]}")
        run: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))["throughput"]
        return run


async def _bench(args: argparse.Namespace, counts: list[int]) -> dict[str, Any]:
    """The throughput run, then the live sweep over ``counts`` cameras (``sweep_counts``) unless ``--no-sweep``."""
    videos, fps = (args.video, args.fps) if args.video else _default_videos()
    fps = args.fps or fps
    for video in videos:
        if not video.is_file():
            raise FileNotFoundError(f"video {video} does not exist")
    threads = args.inference_threads
    if threads is not None and not 1 <= threads <= 16:
        raise ValueError(f"--inference-threads must be between 1 and 16; got {threads}")
    main = await run_once(
        videos,
        cameras=args.cameras,
        model=args.model,
        live=args.live,
        seconds=args.seconds,
        fps=fps,
        inference_threads=threads,
        detector=args.detector,
    )
    samples = main.pop("_samples")
    alone = float("nan") if args.no_pose_alone else time_pose_backend(args.model, samples)
    in_run = main["pose_crops_per_cpu_s"] or float("nan")
    _print_run(main)
    ratio = _pose_share(main, in_run)
    ratio_alone = _pose_share(main, alone)
    sys.stdout.write(
        f"  pose model ({args.model}, 1 thread per crop): {in_run:.1f} crops/s per core inside this run, "
        f"{alone:.1f} alone on the same clip's crops afterwards\n"
        f"  person-frames/s / (crops/s per core x cores used) = {ratio:.2f} (with the figure alone: "
        f"{ratio_alone:.2f})\n"
    )
    report: dict[str, Any] = {
        "videos": [str(v) for v in videos],
        "fps": fps,
        "throughput": main,
        "person_frames_per_s": main["person_frames_per_s"],
        "pose_crops_per_s_per_core": _finite(in_run, 2),
        "pose_crops_per_s_per_core_alone": _finite(alone, 2),
        "cores_used": main["cores_used"],
        "pose_share_ratio": _finite(ratio, 3),
        "pose_share_ratio_alone": _finite(ratio_alone, 3),
        "p95_latency_ms": main["p95_latency_ms"],
        "dropped_fraction": main["dropped_fraction"],
        **{_realtime_key(m): None for m in POSE_MODELS},
        "sweep": [],
    }
    if args.no_sweep:
        return report
    for model in _sweep_models(args):
        first_run: dict[str, Any] | None = None
        for n in counts:
            run = await _run_in_own_process(videos, fps, n, model, args.seconds, threads, args.detector)
            run["realtime"] = holds_realtime(run)
            report["sweep"].append(run)
            first_run = first_run or run
            _print_run(run)
            sys.stdout.write(f"  real time: {run['realtime']}\n")
            if not run["realtime"]:
                break
        runs = [(int(r["cameras"]), bool(r["realtime"])) for r in report["sweep"] if r["model"] == model]
        best = largest_held(runs)
        report[_realtime_key(model)] = best
        if best == 0 and first_run is not None:
            report[f"p95_latency_ms_{model.replace('-', '_')}_1cam"] = first_run["p95_latency_ms"]
    if main["mode"] == "replay":
        live_default = [r for r in report["sweep"] if r["model"] == args.model and r["cameras"] == args.cameras]
        if live_default:
            report["p95_latency_ms"] = live_default[0]["p95_latency_ms"]
            report["dropped_fraction"] = live_default[0]["dropped_fraction"]
    sys.stdout.write(_plot(report["sweep"], args.plot, fps) + "\n")
    return report


def sweep_counts(text: str) -> list[int]:
    """``--sweep``'s camera counts, increasing and without repeats (the sweep stops at its first miss, which
    only means "more cannot hold either" when the counts increase)."""
    try:
        counts = sorted({int(c) for c in text.split(",") if c.strip()})
    except ValueError:
        raise ValueError(f"--sweep: expected camera counts such as 1,2,3; got {text!r}") from None
    if not counts or counts[0] < 1:
        raise ValueError(f"--sweep: camera counts must be >= 1; got {text!r}")
    return counts


def largest_held(runs: list[tuple[int, bool]]) -> int:
    """The largest camera count of a sweep that held real time, given its (cameras, held) runs in the order run:
    counts up to the first miss (0 when the first run missed). Counts need not start at 1: a sweep of 3,4,5 that
    held 3 and 4 is 4 (this used to say 0, wanting the count one below to have held)."""
    best = 0
    for cameras, held in runs:
        if not held:
            break
        best = cameras
    return best


def _realtime_key(model: str) -> str:
    return f"realtime_cameras_{model.replace('-', '_')}"


def _sweep_models(args: argparse.Namespace) -> list[str]:
    models = [m.strip() for m in args.sweep_models.split(",") if m.strip()]
    unknown = [m for m in models if m not in POSE_MODELS]
    if unknown:
        raise ValueError(f"--sweep-models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(POSE_MODELS)}")
    return models


def run(args: argparse.Namespace) -> int:
    configure_logging("warning")
    try:
        _sweep_models(args)  # a typo fails now, not after the throughput run
        counts = [] if args.no_sweep else sweep_counts(args.sweep)
        report = asyncio.run(_bench(args, counts))
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        sys.stderr.write(f"gaitwatch bench: {exc}\n")
        return 1
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(
        f"bench: person_frames_per_s={report['person_frames_per_s']} "
        f"pose_crops_per_s_per_core={report['pose_crops_per_s_per_core']} cores_used={report['cores_used']} "
        f"p95_latency_ms={report['p95_latency_ms']} dropped_fraction={report['dropped_fraction']} "
        + " ".join(f"{_realtime_key(m)}={report[_realtime_key(m)]}" for m in POSE_MODELS)
        + "\n"
    )
    return 0
