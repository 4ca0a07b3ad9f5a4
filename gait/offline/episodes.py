"""Episode labels made by clinicians (``gaitwatch review``): one CSV row per marked episode.

Columns: ``recording`` (path, relative to the CSV's folder unless absolute), ``subject`` (the person's track id in
that recording, as the review page shows it), ``t_start`` / ``t_end`` (seconds on the recording's clock),
``rater`` (who marked it), ``label`` (one of ``EPISODE_LABELS``), ``pattern`` (optional, for ``abnormal``: e.g.
``shuffling``, ``limping``), ``note`` (free text).

Gait labels (``normal`` / ``abnormal`` / ``unusable``) describe how a person walks over a stretch of time; event
labels (``fall``, ``sit_to_stand``, ``bed_exit``) mark something that happened and may overlap a gait episode.
A window of time takes a rater's gait label from the episode that covers most of it (at least half): shorter
overlaps say too little about the window. ``unusable`` (person hidden, pose broken) means "no call", so it is
missing data for agreement and training, not a third class.

The file is rewritten atomically (a temporary file in the same folder, flushed, fsynced, then ``os.replace``), so
a crash of the browser or of the review server leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

EPISODE_COLUMNS: tuple[str, ...] = ("recording", "subject", "t_start", "t_end", "rater", "label", "pattern", "note")
GAIT_LABELS: tuple[str, ...] = ("normal", "abnormal", "unusable")
EVENT_LABELS: tuple[str, ...] = ("fall", "sit_to_stand", "bed_exit")
EPISODE_LABELS: tuple[str, ...] = GAIT_LABELS + EVENT_LABELS
BINARY_LABELS: tuple[str, ...] = ("normal", "abnormal")


@dataclass(frozen=True, slots=True)
class Episode:
    """One marked stretch of one person's recording. ``recording`` is the path as written in the CSV (the key
    that joins raters); ``path`` the file it names."""

    recording: str
    subject: str
    t_start: float
    t_end: float
    rater: str
    label: str
    pattern: str = ""
    note: str = ""
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.label not in EPISODE_LABELS:
            raise ValueError(f"label must be one of {', '.join(EPISODE_LABELS)}; got {self.label!r}")
        if not self.t_end > self.t_start:
            raise ValueError(f"t_end ({self.t_end}) must be after t_start ({self.t_start})")
        if not self.recording or not self.subject or not self.rater:
            raise ValueError("recording, subject and rater must not be empty")

    def row(self) -> dict[str, str]:
        return {
            "recording": self.recording,
            "subject": self.subject,
            "t_start": f"{self.t_start:.3f}",
            "t_end": f"{self.t_end:.3f}",
            "rater": self.rater,
            "label": self.label,
            "pattern": self.pattern,
            "note": self.note,
        }

    def overlap(self, t0: float, t1: float) -> float:
        """Seconds of ``[t0, t1]`` this episode covers."""
        return max(0.0, min(t1, self.t_end) - max(t0, self.t_start))


def is_episode_file(path: Path) -> bool:
    """True when the CSV's header has the episode columns (``t_start``, ``t_end``, ``rater``)."""
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    return {"t_start", "t_end", "rater"} <= {h.strip() for h in header}


def read_episodes(path: Path) -> list[Episode]:
    """Episodes of ``path`` (an absent file is an empty list); ValueError names the line of a bad row."""
    if not path.exists():
        return []
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(EPISODE_COLUMNS[:6]) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for line, r in enumerate(reader, start=2):
            try:
                rec = (r["recording"] or "").strip()
                p = Path(rec)
                out.append(
                    Episode(
                        recording=rec,
                        subject=(r["subject"] or "").strip(),
                        t_start=float(r["t_start"]),
                        t_end=float(r["t_end"]),
                        rater=(r["rater"] or "").strip(),
                        label=(r["label"] or "").strip().lower(),
                        pattern=(r.get("pattern") or "").strip(),
                        note=(r.get("note") or "").strip(),
                        path=p if p.is_absolute() else path.parent / p,
                    )
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    return out


def write_episodes(path: Path, episodes: Iterable[Episode]) -> None:
    """Replace ``path`` atomically with ``episodes`` (sorted by recording, subject, rater, time)."""
    rows = sorted(episodes, key=lambda e: (e.recording, _subject_key(e.subject), e.rater, e.t_start, e.t_end))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(EPISODE_COLUMNS), lineterminator="\n")
    w.writeheader()
    for e in rows:
        w.writerow(e.row())
    folder = path.parent if str(path.parent) else Path()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
        _fsync_folder(folder)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX: the folder's entry is only on disk once the folder is synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible on this platform (Windows): the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _subject_key(subject: str) -> tuple[int, str]:
    return (int(subject), "") if subject.isdigit() else (1 << 62, subject)


def covering_episode(episodes: Sequence[Episode], t0: float, t1: float) -> Episode | None:
    """The gait episode (normal / abnormal / unusable) covering most of ``[t0, t1]``, if it covers at least half
    of it; ``episodes`` are one rater's for one person. On a tie the first-listed episode keeps the window."""
    best, best_ov, half = None, 0.0, 0.5 * (t1 - t0)
    for e in episodes:
        if e.label in GAIT_LABELS:
            ov = e.overlap(t0, t1)
            if ov >= half and ov > best_ov:
                best, best_ov = e, ov
    return best


def gait_label(episodes: Sequence[Episode], t0: float, t1: float) -> str | None:
    """The label of ``covering_episode`` (None when no gait episode covers half of the window)."""
    e = covering_episode(episodes, t0, t1)
    return None if e is None else e.label


def majority(labels: Iterable[str | None]) -> str | None:
    """The raters' majority gait label: the most frequent call, None on a tie, when nobody rated, or when the
    winner is ``unusable`` (the window is dropped)."""
    counts = Counter(label for label in labels if label is not None)
    if not counts:
        return None
    (top, n), *rest = counts.most_common()
    if rest and rest[0][1] == n:
        return None
    return None if top == "unusable" else top


def by_person(episodes: Iterable[Episode]) -> dict[tuple[str, str], dict[str, list[Episode]]]:
    """Episodes grouped by (recording, subject), then by rater."""
    out: dict[tuple[str, str], dict[str, list[Episode]]] = {}
    for e in episodes:
        out.setdefault((e.recording, e.subject), {}).setdefault(e.rater, []).append(e)
    return out
