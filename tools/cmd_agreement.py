"""``gaitwatch agreement``: how well clinicians agree with each other, and the system with each of them.

Usage: ``gaitwatch agreement LABELS.csv [--system REPLAY.json|DIR ...] [--replay [--model SPEC]] [--window S]
[--bootstrap N] [--seed S] [--json OUT] [--png OUT]``.
LABELS.csv holds episode labels (``gaitwatch review``: ``recording,subject,t_start,t_end,rater,label,pattern,note``).
Each person's rated time is cut into windows of ``--window`` seconds (default 2); on each window every rater's
gait call is normal, abnormal or none (``unusable``, or not rated). Printed and written: Cohen's kappa and percent
agreement per pair of raters, Fleiss' kappa and the share of windows where all agree, each with a 95 % bootstrap
interval resampling whole recordings (``--bootstrap`` resamples, default 1000). With the system's calls
(``--system``: ``gaitwatch replay --json`` files, matched to the labels' recordings by file stem, e.g.
``walk01.json`` for ``walk01.npz``, or by a ``recording`` key in the file; or ``--replay``: run the gait stage
on every labelled recording now), also the system against each rater and its sensitivity / specificity against
the raters' majority (ties dropped). ``--png`` draws a one-page summary. Exit 0, 1 on unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gaitwatch.gait.offline.agreement import (
    SystemWindow,
    agreement_report,
    rated_windows,
    system_windows,
    with_system,
)
from gaitwatch.gait.offline.episodes import Episode, read_episodes


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``agreement`` subcommand to the ``gaitwatch`` command line."""
    p = subparsers.add_parser(
        "agreement",
        help="agreement between clinicians' labels, and between the system and each clinician",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("labels", type=Path, metavar="LABELS.csv", help="episode labels (from gaitwatch review)")
    p.add_argument(
        "--system",
        type=Path,
        action="append",
        default=[],
        metavar="REPLAY.json|DIR",
        help="the system's windows: replay --json files (or folders of them), matched by file stem; repeatable",
    )
    p.add_argument("--replay", action="store_true", help="run the gait stage on each labelled recording now")
    p.add_argument("--model", default="default", help="for --replay: 'default', 'rules' or a model JSON file")
    p.add_argument("--window", type=float, default=2.0, help="seconds per compared window (default 2)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of recordings (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    p.add_argument("--png", type=Path, default=None, help="write a one-page PNG summary (needs matplotlib)")
    p.set_defaults(func=run)


def load_system(paths: list[Path], episodes: list[Episode]) -> dict[str, list[SystemWindow]]:
    """The system's windows per labelled recording from replay JSON files or folders of them."""
    by_stem: dict[str, str] = {}
    for e in episodes:
        by_stem.setdefault(Path(e.recording).stem, e.recording)
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    out: dict[str, list[SystemWindow]] = {}
    for f in files:
        doc = json.loads(f.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or "windows" not in doc:
            raise ValueError(f"{f}: not a gaitwatch replay --json file (no 'windows')")
        stem = Path(str(doc["recording"])).stem if "recording" in doc else f.stem
        recording = by_stem.get(stem)
        if recording is not None:
            out[recording] = system_windows(doc)
    if not out:
        raise ValueError("no --system file matches a labelled recording (match is by file stem)")
    return out


def replay_system(episodes: list[Episode], model: str) -> dict[str, list[SystemWindow]]:
    """Run the gait stage (as ``gaitwatch replay``) over every labelled recording."""
    from gaitwatch.gait.offline.replay import analyze_recording
    from gaitwatch.gait.recording import Recording
    from gaitwatch.tools.cmd_replay import load_classifier, result_json

    classifier = load_classifier(model)
    paths = {e.recording: e.path for e in episodes}
    out = {}
    for recording, path in sorted(paths.items()):
        rec = Recording.load(path if path is not None else Path(recording))
        out[recording] = system_windows(result_json(analyze_recording(rec, classifier=classifier)))
    return out


def run(args: argparse.Namespace) -> int:
    try:
        if args.bootstrap < 1 or args.window <= 0:
            raise ValueError("--bootstrap must be >= 1 and --window > 0")
        if not args.labels.is_file():
            raise ValueError(f"{args.labels}: no such file")
        episodes = read_episodes(args.labels)
        rw = rated_windows(episodes, window_s=args.window)
        if len(rw) == 0:
            raise ValueError(f"{args.labels}: no normal/abnormal episodes to compare")
        if args.system:
            rw = with_system(rw, load_system(args.system, episodes))
        elif args.replay:
            rw = with_system(rw, replay_system(episodes, args.model))
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"gaitwatch agreement: {exc}\n")
        return 1
    report = agreement_report(rw, n_boot=args.bootstrap, seed=args.seed)
    report = {"labels": str(args.labels), "window_s": args.window, **report}
    sys.stdout.write(format_report(report))
    try:
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if args.png is not None:
            plot_summary(report, args.png)
    except OSError as exc:
        sys.stderr.write(f"gaitwatch agreement: cannot write output: {exc}\n")
        return 1
    return 0


def _fig(f: dict[str, Any]) -> str:
    v, (lo, hi) = f["value"], f["ci95"]
    if v is None:
        return "n/a"
    ci = f"[{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "[n/a]"
    return f"{v:.3f} {ci}"


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"agreement on {r['windows']} windows of {r['window_s']:g} s: {r['people']} people in {r['recordings']} "
        f"recordings, raters {', '.join(r['raters'])} (95% CI: {r['bootstrap']['resamples']} bootstrap "
        "resamples of recordings)"
    ]
    for p in r["pairs"]:
        lines.append(
            f"  {p['a']} vs {p['b']}: n={p['n']} kappa={_fig(p['kappa'])} agreement={_fig(p['percent_agreement'])}"
        )
    f = r["fleiss"]
    lines.append(
        f"  Fleiss ({f['raters']} raters): n={f['n']} kappa={_fig(f['kappa'])} all_agree={_fig(f['all_agree'])}"
    )
    s = r.get("system")
    if s:
        for v in s["vs_raters"]:
            lines.append(
                f"  system vs {v['rater']}: n={v['n']} kappa={_fig(v['kappa'])} "
                f"agreement={_fig(v['percent_agreement'])}"
            )
        m = s["vs_majority"]
        lines.append(
            f"  system vs majority: n={m['n']} (abnormal {m['abnormal']}) sensitivity={_fig(m['sensitivity'])} "
            f"specificity={_fig(m['specificity'])} kappa={_fig(m['kappa'])}"
        )
    return "\n".join(lines) + "\n"


def plot_summary(r: dict[str, Any], out: Path) -> None:
    """A one-page PNG: the kappa matrix (raters and system) and every figure with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(r["raters"]) + (["system"] if "system" in r else [])
    k = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(k, 1.0)
    for p in r["pairs"]:
        i, j = names.index(p["a"]), names.index(p["b"])
        k[i, j] = k[j, i] = np.nan if p["kappa"]["value"] is None else p["kappa"]["value"]
    rows: list[tuple[str, dict[str, Any]]] = [(f"{p['a']} vs {p['b']} kappa", p["kappa"]) for p in r["pairs"]]
    rows.append(("Fleiss kappa", r["fleiss"]["kappa"]))
    rows.append(("all raters agree", r["fleiss"]["all_agree"]))
    if "system" in r:
        for v in r["system"]["vs_raters"]:
            i = names.index(v["rater"])
            k[i, -1] = k[-1, i] = np.nan if v["kappa"]["value"] is None else v["kappa"]["value"]
            rows.append((f"system vs {v['rater']} kappa", v["kappa"]))
        m = r["system"]["vs_majority"]
        rows += [("system sensitivity", m["sensitivity"]), ("system specificity", m["specificity"])]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, max(4.0, 0.45 * len(rows) + 1.5)))
    im = ax0.imshow(k, vmin=-0.2, vmax=1.0, cmap="viridis")
    ax0.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax0.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(k[i, j]):
                ax0.text(j, i, f"{k[i, j]:.2f}", ha="center", va="center", color="w" if k[i, j] < 0.6 else "k")
    ax0.set_title("Cohen's kappa")
    fig.colorbar(im, ax=ax0, fraction=0.046)
    y = np.arange(len(rows))[::-1]
    vals = np.array([np.nan if f["value"] is None else f["value"] for _, f in rows])
    lo = np.array([np.nan if f["ci95"][0] is None else f["ci95"][0] for _, f in rows])
    hi = np.array([np.nan if f["ci95"][1] is None else f["ci95"][1] for _, f in rows])
    ax1.errorbar(vals, y, xerr=[np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)], fmt="o", capsize=4)
    ax1.set_yticks(y, [name for name, _ in rows])
    ax1.set_xlim(-0.2, 1.05)
    ax1.axvline(0.0, color="0.7", lw=0.8)
    ax1.grid(axis="x", alpha=0.3)
    ax1.set_title("figure and 95% CI (bootstrap over recordings)")
    fig.suptitle(
        f"{r['windows']} windows of {r['window_s']:g} s, {r['people']} people, {r['recordings']} recordings, "
        f"raters: {', '.join(r['raters'])}"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
