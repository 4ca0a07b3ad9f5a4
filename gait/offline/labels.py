"""Label files for training and evaluation: one row per recording, or clinicians' episode labels.

Episode labels (``gaitwatch review``; ``gaitwatch.gait.offline.episodes``) are read by ``episode_windows``: each
window takes the raters' majority gait call, ``unusable`` or tied windows are dropped, and a recording is one
group, so its people never sit on both sides of a train/test split.

Columns: ``recording`` (path, relative to the CSV's folder), ``subject`` (id; windows of one subject are never
split between training and test), ``label`` (``normal`` / ``abnormal``), optional ``rater_label`` (a
clinician's call, to measure agreement), optional ``pattern`` and ground truth ``cadence_spm``,
``step_time_cv``, ``stride_time_cv`` (fractions) when known (generated data).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gaitwatch.gait.offline.episodes import Episode, by_person, covering_episode, majority
from gaitwatch.gait.offline.replay import analyze_recording
from gaitwatch.gait.offline.training import WindowSet, window_set
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.types import GaitMetrics

LABEL_COLUMNS: tuple[str, ...] = (
    "recording",
    "subject",
    "label",
    "rater_label",
    "pattern",
    "cadence_spm",
    "step_time_cv",
    "stride_time_cv",
)
_LABELS = ("normal", "abnormal")


@dataclass(frozen=True, slots=True)
class LabelRow:
    recording: Path
    subject: str
    label: str
    rater_label: str
    pattern: str
    truth: dict[str, float]


def read_labels(path: Path) -> list[LabelRow]:
    """Rows of ``path``; raises ValueError naming the line of a bad label or a missing column."""
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"recording", "subject", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for line, r in enumerate(reader, start=2):
            label = (r.get("label") or "").strip().lower()
            if label not in _LABELS:
                raise ValueError(f"{path}:{line}: label must be normal or abnormal; got {label!r}")
            rater = (r.get("rater_label") or "").strip().lower()
            if rater and rater not in _LABELS:
                raise ValueError(f"{path}:{line}: rater_label must be normal, abnormal or empty; got {rater!r}")
            truth = {}
            for key in ("cadence_spm", "step_time_cv", "stride_time_cv"):
                v = (r.get(key) or "").strip()
                if v:
                    truth[key] = float(v)
            rec = Path(r["recording"])
            rows.append(
                LabelRow(
                    rec if rec.is_absolute() else path.parent / rec,
                    str(r["subject"]),
                    label,
                    rater,
                    (r.get("pattern") or "").strip(),
                    truth,
                )
            )
    return rows


def write_labels(path: Path, rows: Sequence[dict[str, str | float]]) -> None:
    """Write rows (dicts keyed by ``LABEL_COLUMNS``; missing keys left empty)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(LABEL_COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in LABEL_COLUMNS})


def labelled_windows(
    rows: Sequence[LabelRow], settings: GaitSettings | None = None, hop_s: float = 2.0
) -> tuple[WindowSet, list[int]]:
    """Valid walking windows of every track of every recording, labelled by its row: the windows the daemon's
    gait stage cuts (a replay of the recording), one every ``hop_s`` per person. Returns the set and, for each
    window, the index of its row (to compare with per-recording truth and rater labels)."""
    settings = replace(settings or GaitSettings(), hop_s=hop_s)
    subjects = {s: i for i, s in enumerate(sorted({r.subject for r in rows}))}
    out: list[tuple[GaitMetrics, bool, str, int, dict[str, float]]] = []
    row_of: list[int] = []
    for i, row in enumerate(rows):
        for result in analyze_recording(Recording.load(row.recording), settings).windows:
            m = result.metrics
            if m.valid:
                truth = {k: float(v) for k, v in row.truth.items()}
                out.append((m, row.label == "abnormal", row.pattern or row.label, subjects[row.subject], truth))
                row_of.append(i)
    return window_set(out), row_of


def episode_windows(
    episodes: Sequence[Episode], settings: GaitSettings | None = None, hop_s: float = 2.0
) -> tuple[WindowSet, list[int]]:
    """Valid walking windows of every labelled person (the ``subject`` column is the track id), labelled by the
    raters' majority over the episodes covering at least half of the window; ``unusable`` and tied windows are
    dropped; the pattern is the raters' most frequent one. Every window of one recording gets the same group id
    (``WindowSet.subject``), so cross-validation splits by recording and therefore by person. Also returns, per
    window, the index of its recording in sorted order."""
    settings = replace(settings or GaitSettings(), hop_s=hop_s)
    people = by_person(episodes)
    paths = {e.recording: e.path or Path(e.recording) for e in episodes}
    out: list[tuple[GaitMetrics, bool, str, int, dict[str, float]]] = []
    row_of: list[int] = []
    for group, recording in enumerate(sorted(paths)):
        for result in analyze_recording(Recording.load(paths[recording]), settings).windows:
            m = result.metrics
            per_rater = people.get((recording, str(m.track_id)))
            if not per_rater or not m.valid:
                continue
            calls = [covering_episode(eps, m.t_start, m.t_end) for eps in per_rater.values()]
            label = majority(c.label if c is not None else None for c in calls)
            if label not in ("normal", "abnormal"):
                continue
            patterns = Counter(c.pattern for c in calls if c is not None and c.label == label and c.pattern)
            pattern = patterns.most_common(1)[0][0] if patterns else label
            out.append((m, label == "abnormal", pattern, group, {}))
            row_of.append(group)
    return window_set(out), row_of


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa between two raters' labels (1: perfect agreement, 0: chance)."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape[0] == 0:
        return float("nan")
    cats = np.unique(np.concatenate([a_arr, b_arr]))
    po = float(np.mean(a_arr == b_arr))
    pe = float(sum(np.mean(a_arr == c) * np.mean(b_arr == c) for c in cats))
    return (po - pe) / (1.0 - pe) if pe < 1.0 else 1.0
