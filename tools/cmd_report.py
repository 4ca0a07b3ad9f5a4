"""``gaitwatch report``: per-person gait plots (PNG) and a small HTML page from a keypoint recording.

Usage: ``gaitwatch report RECORDING --out DIR [--fps F] [--model default|rules|PATH]``. For each track with
at least one analysed window: ankle traces relative to the pelvis with the detected heel strikes, the
ankle-separation spectrum of the most central valid window with its cadence peak, and the metrics over time
(cadence, step-time CV, p_abnormal), plus a table of alerts. Needs matplotlib (``pip install
gaitwatch[report]``). Exit 0, 1 when the recording cannot be read or matplotlib is missing.
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gaitwatch.gait.events import detect_heel_strikes
from gaitwatch.gait.offline.replay import analyze_recording
from gaitwatch.gait.prepare import prepare_window
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.spectral import power_spectrum
from gaitwatch.gait.stage import GaitOutput
from gaitwatch.gait.types import GaitResult, GaitWindow
from gaitwatch.pose.keypoints import Landmark
from gaitwatch.tools.cmd_replay import load_classifier, retimed


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "report",
        help="per-person gait plots (PNG) and an HTML page from a keypoint recording",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recording", type=Path, metavar="RECORDING", help="keypoint recording (.npz)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--fps", type=float, default=None, help="the camera's true frame rate (re-times samples)")
    p.add_argument("--model", default="default", help="'default' (shipped), 'rules', or a model JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write("gaitwatch report: needs matplotlib (pip install 'gaitwatch[report]')\n")
        return 1
    try:
        rec = retimed(Recording.load(args.recording), args.fps)
        classifier = load_classifier(args.model)
        args.out.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"gaitwatch report: {exc}\n")
        return 1
    settings = GaitSettings()
    result = analyze_recording(rec, settings, classifier)
    sections = []
    for tid in rec.tracks():
        wins = [w for w in result.windows if w.metrics.track_id == tid]
        if not wins:
            continue
        png = args.out / f"track_{tid}.png"
        fig = _figure(plt, rec.track(tid), wins, settings)
        fig.savefig(png, dpi=80)
        plt.close(fig)
        sections.append(_section(tid, png.name, wins, result))
    page = _page(args.recording.name, sections, result)
    (args.out / "index.html").write_text(page, encoding="utf-8")
    sys.stdout.write(f"wrote {args.out / 'index.html'} ({len(sections)} people)\n")
    return 0


def _figure(plt: Any, track: GaitWindow, wins: list[GaitResult], settings: GaitSettings) -> Any:
    fig, axes = plt.subplots(3, 1, figsize=(11, 10))
    ax_tr, ax_sp, ax_m = axes
    kp = track.keypoints
    pelvis_x = 0.5 * (kp[:, Landmark.LEFT_HIP, 0] + kp[:, Landmark.RIGHT_HIP, 0])
    for lm, name in ((Landmark.LEFT_ANKLE, "left ankle"), (Landmark.RIGHT_ANKLE, "right ankle")):
        ax_tr.plot(track.t, kp[:, lm, 0] - pelvis_x, lw=0.8, label=f"{name} - pelvis (x px)")
    valid = [w for w in wins if w.metrics.valid]
    central = valid[len(valid) // 2] if valid else None
    if central is not None:
        m = central.metrics
        sel = (track.t >= m.t_start) & (track.t <= m.t_end)
        win = GaitWindow(track.track_id, track.t[sel], track.keypoints[sel], track.world[sel])
        prepared, _, _ = prepare_window(win, settings)
        f_stride = m.features.get("stride_freq_hz")
        if prepared is not None and f_stride:
            events = detect_heel_strikes(prepared, f_stride, settings)
            if events is not None:
                for t_ev, left in zip(events.t, events.left, strict=True):
                    ax_tr.axvline(t_ev, color="tab:blue" if left else "tab:orange", lw=0.6, ls="--")
            leg = prepared.leg_px[:, None]
            sep = (prepared.point(Landmark.LEFT_ANKLE) - prepared.point(Landmark.RIGHT_ANKLE)) / leg
            spec = power_spectrum(sep, prepared.rate_hz, settings.freq_step_hz)
            keep = spec.freq <= min(4.0, prepared.nyquist_hz)
            ax_sp.plot(spec.freq[keep] * 120.0, spec.power[keep], lw=1.0)
            ax_sp.axvline(120.0 * f_stride, color="r", lw=0.8)
            ax_sp.set_title(
                f"ankle-separation spectrum, window {m.t_start:.1f}-{m.t_end:.1f} s: "
                f"cadence {m.cadence_spm:.1f} steps/min (peak at stride frequency x 120)"
            )
    ax_sp.set_xlabel("steps/min (= 120 x stride frequency in Hz)")
    ax_tr.set_title("ankles relative to the pelvis; dashed: detected heel strikes (central window)")
    ax_tr.set_xlabel("time (s)")
    ax_tr.legend(loc="upper right", fontsize=8)
    t_end = np.array([w.metrics.t_end for w in wins])
    cad = np.array([w.metrics.cadence_spm if w.metrics.cadence_spm is not None else np.nan for w in wins])
    cv = np.array([100.0 * w.metrics.features.get("step_time_cv", np.nan) for w in wins])
    p = np.array([w.assessment.p_abnormal for w in wins])
    ax_m.plot(t_end, cad, "o-", ms=3, label="cadence (steps/min)")
    ax_m.plot(t_end, cv, "s-", ms=3, label="step-time CV (%)")
    ax2 = ax_m.twinx()
    ax2.plot(t_end, p, "r.-", ms=3, label="p abnormal")
    ax2.set_ylim(0, 1)
    ax_m.set_xlabel("window end (s)")
    ax_m.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def _section(tid: int, png: str, wins: list[GaitResult], result: GaitOutput) -> str:
    valid = [w for w in wins if w.metrics.valid]
    cad = [w.metrics.cadence_spm for w in valid if w.metrics.cadence_spm is not None]
    states = sorted({w.metrics.state.value for w in wins})
    ab = sum(1 for w in valid if w.assessment.label.value == "abnormal")
    alerts = [a for a in result.alerts if a.track_id == tid]
    rows = "".join(
        f"<tr><td>{html.escape(a.type)}</td><td>{a.phase.value}</td><td>{a.t_observed:.1f}</td>"
        f"<td>{a.confidence:.2f}</td><td>{html.escape(a.pattern)}</td></tr>"
        for a in alerts
    )
    cad_txt = f"{np.median(cad):.1f}" if cad else "-"
    return (
        f"<h2>Person (track {tid})</h2><p>{len(wins)} windows, {len(valid)} valid walking; median cadence "
        f"{cad_txt} steps/min; {ab} abnormal windows; states: {html.escape(', '.join(states))}</p>"
        f'<img src="{html.escape(png)}" width="880">'
        + (
            f"<table><tr><th>alert</th><th>phase</th><th>t (s)</th><th>confidence</th><th>pattern</th></tr>"
            f"{rows}</table>"
            if rows
            else "<p>No alerts.</p>"
        )
    )


def _page(name: str, sections: list[str], result: GaitOutput) -> str:
    body = "".join(sections) if sections else "<p>No person had enough keypoints for a gait window.</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>gaitwatch report</title>"
        "<style>body{font-family:sans-serif;max-width:960px;margin:auto}td,th{padding:2px 8px}</style>"
        f"</head><body><h1>Gait report: {html.escape(name)}</h1>"
        f"<p>{len(result.windows)} windows, {len(result.alerts)} alert messages.</p>{body}</body></html>\n"
    )
