"""``gaitwatch replay``: re-run gait analysis offline over a recording of keypoint trajectories.

Usage: ``gaitwatch replay RECORDING|VIDEO [--fps F] [--model default|rules|PATH] [--config FILE [--camera ID]]
[--json OUT]``.
RECORDING is a ``.npz`` written by ``gaitwatch synth`` or ``gaitwatch record`` (timestamps and keypoints, never
pixels); any other file is taken as a video and first runs through the real pipeline (detector, tracker, pose,
with the detector/pose settings of ``--config`` if given), exactly as ``gaitwatch record`` would.
``--fps F`` re-times a recording whose camera misreported its rate: times are scaled by (recorded fps / F), so
a 7 fps camera that claimed 10 fps is replayed at its true speed. The recording is fed frame by frame through the
daemon's own gait stage (``GaitStage``: buffers, windows every hop per person, classifier, alert policy, alerts
ending when the tracker dropped the track), so the windows and alerts are those the daemon produced live, with the
gait and alert settings of ``--config`` (else the defaults) and, given a config, the floor calibration and zones of
one of its cameras (``--camera ID``; else the camera the recording names if the config has it, else the config's
first camera), built as the daemon builds them (``daemon.assembly.build_floor_stage``): windows then carry metres
and zones (``floor``) and the zone alerts (``bed_exit``, ``chair_rise``) appear offline too. Prints one line per
window and per alert; ``--json`` writes ``{"windows": [{"track", "t_start", "t_end", "valid", "state",
"cadence_spm", "quality", "label", "p_abnormal", "pattern", "features", "floor"}...], "alerts": [{"type",
"phase", "track", "zone", ...}...], "summary": {...}}`` (``floor``: ``speed_mps``, ``step_length_m``,
``stride_length_m``, ``distance_m``, ``floor_xy``, ``zone``, ``zone_kind``, or null without a calibration or
zones). Exit 0, or 1 when the recording or video cannot be read, 78 for a bad config or an unknown camera.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from gaitwatch.daemon.assembly import build_floor_stage
from gaitwatch.daemon.settings import EX_CONFIG, ConfigError, Settings, load_settings
from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.model import GaitModel
from gaitwatch.gait.offline.replay import analyze_recording, replay
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.stage import GaitOutput, GaitStage
from gaitwatch.tools.cmd_record import offline_settings
from gaitwatch.tools.recorder import VideoReadError, VideoRun, record


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``replay`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "replay",
        help="re-run gait analysis and alerts offline over a keypoint recording",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recording", type=Path, metavar="RECORDING|VIDEO", help="keypoint recording (.npz) or a video")
    p.add_argument("--fps", type=float, default=None, help="the camera's true frame rate (re-times samples)")
    p.add_argument(
        "--config", type=Path, default=None, help="daemon config: gait, alert, pipeline settings and floor/zones"
    )
    p.add_argument(
        "--camera",
        default=None,
        metavar="ID",
        help="the config's camera whose calibration and zones to use (default: the recording's, else the first)",
    )
    p.add_argument("--model", default="default", help="'default' (shipped), 'rules', or a model JSON file")
    p.add_argument("--json", type=Path, default=None, help="write windows and alerts as JSON")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run)


def load_classifier(spec: str) -> GaitClassifier:
    """'default', 'rules' or a path to a model JSON file."""
    if spec == "default":
        return GaitClassifier()
    if spec == "rules":
        return GaitClassifier(use_default=False)
    return GaitClassifier(GaitModel.load(Path(spec)))


def retimed(rec: Recording, fps: float | None) -> Recording:
    """``rec`` with times scaled so that its recorded frame rate becomes ``fps``."""
    recorded = rec.meta.get("fps")
    if fps is None or not recorded:
        return rec
    stretched = rec.retimed(float(recorded) / fps)
    return replace(stretched, meta={**rec.meta, "fps": fps})


def result_json(result: GaitOutput) -> dict[str, Any]:
    """Windows, alerts and a summary as plain JSON-able objects."""
    windows = [
        {
            "track": w.metrics.track_id,
            "t_start": w.metrics.t_start,
            "t_end": w.metrics.t_end,
            "valid": w.metrics.valid,
            "state": w.metrics.state.value,
            "cadence_spm": w.metrics.cadence_spm,
            "quality": w.metrics.quality,
            "label": w.assessment.label.value,
            "p_abnormal": w.assessment.p_abnormal,
            "pattern": w.assessment.pattern,
            "features": {k: float(v) for k, v in w.metrics.features.items()},
            "floor": asdict(w.metrics.floor) if w.metrics.floor is not None else None,
        }
        for w in result.windows
    ]
    alerts = [
        {
            "type": a.type,
            "phase": a.phase.value,
            "track": a.track_id,
            "t_start": a.t_start,
            "t_observed": a.t_observed,
            "confidence": a.confidence,
            "priority": a.priority,
            "quality": a.quality,
            "pattern": a.pattern,
            "zone": a.zone,
            "evidence": dict(a.evidence),
        }
        for a in result.alerts
    ]
    cad = np.array([w["cadence_spm"] for w in windows if w["valid"] and w["cadence_spm"] is not None], float)
    walking = [w for w in windows if w["state"] == "walking" and w["valid"]]
    summary = {
        "windows": len(windows),
        "valid_walking_windows": len(walking),
        "cadence_median_spm": float(np.median(cad)) if cad.size else None,
        "cadence_in_80_130": float(np.mean((cad >= 80) & (cad <= 130))) if cad.size else None,
        "abnormal_windows": sum(1 for w in windows if w["label"] == "abnormal"),
        "alerts_started": {
            t: sum(1 for a in alerts if a["type"] == t and a["phase"] == "start")
            for t in sorted({a.type for a in result.alerts})
        },
    }
    return {"windows": windows, "alerts": alerts, "summary": summary}


def camera_for(settings: Settings, wanted: str | None, recorded: object) -> str:
    """The config's camera to replay as: ``wanted``, else the recording's camera if the config has it, else the
    config's first camera. ConfigError for a ``wanted`` camera the config lacks."""
    ids = [c.id for c in settings.cameras]
    if wanted is not None:
        if wanted not in ids:
            raise ConfigError(f"--camera {wanted!r}: the config's cameras are {', '.join(ids)}")
        return wanted
    if isinstance(recorded, str) and recorded in ids:
        return recorded
    return ids[0]


def config_stage(settings: Settings, camera_id: str, classifier: GaitClassifier) -> GaitStage:
    """The gait stage the daemon runs for ``camera_id``: the config's gait and alert settings, the camera's
    floor calibration and zones."""
    return GaitStage(settings.gait, classifier, AlertPolicy(settings.alerts), build_floor_stage(camera_id, settings))


def run(args: argparse.Namespace) -> int:
    try:
        classifier = load_classifier(args.model)
        if args.camera is not None and args.config is None:
            raise ConfigError("--camera needs --config (the camera's calibration and zones come from it)")
        if args.recording.suffix.lower() == ".npz":
            rec = retimed(Recording.load(args.recording), args.fps)
            if args.config is None:
                result = analyze_recording(rec, classifier=classifier)
            else:
                settings = load_settings(args.config)
                result = replay(
                    rec, config_stage(settings, camera_for(settings, args.camera, rec.meta.get("camera")), classifier)
                )
        else:
            # Replayed by the pipeline's own gait stage settings (the config's window, hop, alert policy, floor).
            settings = offline_settings(args.config, args.recording)
            if args.camera is not None:  # the video pipeline runs as the config's first camera
                chosen = camera_for(settings, args.camera, None)
                cameras = sorted(settings.cameras, key=lambda c: c.id != chosen)
                settings = settings.model_copy(update={"cameras": cameras})
            video = VideoRun(args.recording, settings, fps=args.fps)
            result = replay(record(video), video.pipeline.gait.fresh(classifier))
    except ConfigError as exc:
        sys.stderr.write(f"gaitwatch replay: {exc}\n")
        return EX_CONFIG
    except (OSError, ValueError, KeyError, VideoReadError) as exc:
        sys.stderr.write(f"gaitwatch replay: {exc}\n")
        return 1
    out = result_json(result)
    if not args.quiet:
        for w in out["windows"]:
            cad = f"{w['cadence_spm']:.1f}" if w["cadence_spm"] is not None else "-"
            fl = w["floor"] or {}
            metres = ""
            if fl.get("speed_mps") is not None:
                metres += f" speed={fl['speed_mps']:.2f}m/s"
            if fl.get("step_length_m") is not None:
                metres += f" step={fl['step_length_m']:.2f}m"
            if fl.get("zone"):
                metres += f" zone={fl['zone']!r}"
            sys.stdout.write(
                f"window track={w['track']} t={w['t_start']:.1f}-{w['t_end']:.1f} valid={w['valid']} "
                f"state={w['state']} cadence={cad} label={w['label']} p={w['p_abnormal']:.2f} "
                f"{w['pattern']}{metres}\n"
            )
        for a in out["alerts"]:
            sys.stdout.write(
                f"alert {a['type']} {a['phase']} track={a['track']} t={a['t_observed']:.1f} "
                f"confidence={a['confidence']:.2f} {a['pattern']}"
                + (f" zone={a['zone']!r}" if a["zone"] else "")
                + "\n"
            )
    sys.stdout.write("summary " + json.dumps(out["summary"]) + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0
