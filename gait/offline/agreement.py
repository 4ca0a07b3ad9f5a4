"""Agreement between clinicians, and between the system and each clinician, on time-aligned windows.

Episode labels (``gaitwatch.gait.offline.episodes``) are cut into windows of ``window_s`` seconds on each
person's timeline; each window takes every rater's gait call (normal / abnormal; ``unusable`` or no episode is no
call) and, when given, the system's (the label of the valid gait-stage window centred nearest to it). On those
windows: Cohen's kappa and percent agreement for every pair of raters and for the system against each rater,
Fleiss' kappa and the share of windows where all raters agree (windows every rater called), and the system's
sensitivity / specificity against the raters' majority (ties dropped).

Confidence intervals (95 %, percentile bootstrap) resample whole recordings, not windows: the windows of one
recording share a person, a camera and a rater's mood, so they are far from independent, and resampling windows
would give intervals that are much too narrow. With few recordings (< ~10) the intervals are rough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.offline.episodes import BINARY_LABELS, Episode, by_person, gait_label

NO_CALL = 0  # code of "no call" in rating matrices; 1 = normal, 2 = abnormal
_CODE = {label: i + 1 for i, label in enumerate(BINARY_LABELS)}
_ABNORMAL = _CODE["abnormal"]


@dataclass(frozen=True, slots=True)
class SystemWindow:
    """One window of the gait stage (``gaitwatch replay --json``): person, time span and its binary label."""

    subject: str
    t_start: float
    t_end: float
    label: str


@dataclass(frozen=True, slots=True)
class RatedWindows:
    """Windows of every person: ``recording``/``subject`` (N,), ``t_start``/``t_end`` (N,), ``ratings`` (N, R)
    codes per rater in ``raters`` order (0 no call, 1 normal, 2 abnormal), ``system`` (N,) codes or None."""

    recording: NDArray[np.str_]
    subject: NDArray[np.str_]
    t_start: NDArray[np.float64]
    t_end: NDArray[np.float64]
    raters: tuple[str, ...]
    ratings: NDArray[np.int8]
    system: NDArray[np.int8] | None = None

    def __len__(self) -> int:
        return int(self.t_start.shape[0])


def rated_windows(episodes: Sequence[Episode], window_s: float = 2.0) -> RatedWindows:
    """Cut each person's rated time into ``window_s`` windows and take every rater's call on each.

    ``window_s``: shorter windows follow short episodes more closely, but neighbouring windows then repeat the
    same call (which the recording-level bootstrap accounts for, at no gain in information)."""
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    raters = tuple(sorted({e.rater for e in episodes}))
    col = {r: i for i, r in enumerate(raters)}
    rec: list[str] = []
    subj: list[str] = []
    t0s: list[float] = []
    rows: list[list[int]] = []
    for (recording, subject), per_rater in sorted(by_person(episodes).items()):
        gait = [e for eps in per_rater.values() for e in eps if e.label in ("normal", "abnormal", "unusable")]
        if not gait:
            continue
        start, end = min(e.t_start for e in gait), max(e.t_end for e in gait)
        n = int(np.floor((end - start) / window_s + 1e-9))
        for k in range(n):
            t0 = start + k * window_s
            calls = [NO_CALL] * len(raters)
            for rater, eps in per_rater.items():
                calls[col[rater]] = _CODE.get(gait_label(eps, t0, t0 + window_s) or "", NO_CALL)
            if any(calls):
                rec.append(recording)
                subj.append(subject)
                t0s.append(t0)
                rows.append(calls)
    starts = np.asarray(t0s, dtype=np.float64)
    return RatedWindows(
        np.asarray(rec, dtype=np.str_),
        np.asarray(subj, dtype=np.str_),
        starts,
        starts + window_s,
        raters,
        np.asarray(rows, dtype=np.int8).reshape(len(rows), len(raters)),
    )


def with_system(rw: RatedWindows, system: Mapping[str, Sequence[SystemWindow]]) -> RatedWindows:
    """``rw`` with the system's call on each window: ``system`` maps a recording (as written in the labels) to
    its gait-stage windows. A window's call is that of the valid stage window (normal/abnormal) whose centre is
    nearest to the window's centre among those covering it; none covering it is no call."""
    codes = np.zeros(len(rw), dtype=np.int8)
    index: dict[tuple[str, str], tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int8]]] = {}
    for recording, wins in system.items():
        per: dict[str, list[SystemWindow]] = {}
        for w in wins:
            if w.label in _CODE:
                per.setdefault(w.subject, []).append(w)
        for subject, ws in per.items():
            index[(recording, subject)] = (
                np.array([w.t_start for w in ws]),
                np.array([w.t_end for w in ws]),
                np.array([_CODE[w.label] for w in ws], dtype=np.int8),
            )
    for i in range(len(rw)):
        found = index.get((str(rw.recording[i]), str(rw.subject[i])))
        if found is None:
            continue
        s, e, c = found
        mid = 0.5 * (rw.t_start[i] + rw.t_end[i])
        cover = (s <= mid) & (e >= mid)
        if np.any(cover):
            dist = np.where(cover, np.abs(0.5 * (s + e) - mid), np.inf)
            codes[i] = c[int(np.argmin(dist))]
    return RatedWindows(rw.recording, rw.subject, rw.t_start, rw.t_end, rw.raters, rw.ratings, codes)


def cohen_kappa(a: NDArray[np.integer[Any]], b: NDArray[np.integer[Any]]) -> float:
    """Cohen's kappa of two raters' codes on the items both called (NaN when undefined: no items, or both
    raters always gave one and the same call)."""
    both = (a != NO_CALL) & (b != NO_CALL)
    a, b = a[both], b[both]
    n = a.shape[0]
    if n == 0:
        return float("nan")
    po = float(np.count_nonzero(a == b)) / n
    ca = np.bincount(a, minlength=3)[1:] / n
    cb = np.bincount(b, minlength=3)[1:] / n
    pe = float(np.dot(ca, cb))
    return (po - pe) / (1.0 - pe) if pe < 1.0 else float("nan")


def percent_agreement(a: NDArray[np.integer[Any]], b: NDArray[np.integer[Any]]) -> float:
    """Share of the items both called on which they agree (NaN when there are none)."""
    both = (a != NO_CALL) & (b != NO_CALL)
    n = int(np.count_nonzero(both))
    return float(np.count_nonzero(a[both] == b[both])) / n if n else float("nan")


def fleiss_kappa(ratings: NDArray[np.integer[Any]]) -> float:
    """Fleiss' kappa over the items (rows) that every rater (column) called; NaN when undefined."""
    full = ratings[np.all(ratings != NO_CALL, axis=1)]
    n_items, n_raters = full.shape
    if n_items == 0 or n_raters < 2:
        return float("nan")
    counts = np.stack([np.count_nonzero(full == c, axis=1) for c in _CODE.values()], axis=1).astype(np.float64)
    p_item = (np.sum(counts**2, axis=1) - n_raters) / (n_raters * (n_raters - 1))
    p_cat = counts.sum(axis=0) / (n_items * n_raters)
    pe = float(np.sum(p_cat**2))
    return (float(np.mean(p_item)) - pe) / (1.0 - pe) if pe < 1.0 else float("nan")


def all_agree(ratings: NDArray[np.integer[Any]]) -> float:
    """Share of the items every rater called on which all of them gave the same call."""
    full = ratings[np.all(ratings != NO_CALL, axis=1)]
    if full.shape[0] == 0:
        return float("nan")
    return float(np.mean(np.all(full == full[:, :1], axis=1)))


def majority_codes(ratings: NDArray[np.integer[Any]]) -> NDArray[np.int8]:
    """Per item, the raters' majority call (0 when nobody called it or on a tie)."""
    n_normal = np.count_nonzero(ratings == _CODE["normal"], axis=1)
    n_abnormal = np.count_nonzero(ratings == _ABNORMAL, axis=1)
    out = np.zeros(ratings.shape[0], dtype=np.int8)
    out[n_normal > n_abnormal] = _CODE["normal"]
    out[n_abnormal > n_normal] = _ABNORMAL
    return out


def sensitivity(system: NDArray[np.integer[Any]], reference: NDArray[np.integer[Any]]) -> float:
    """Share of the reference's abnormal items (the system called) that the system calls abnormal."""
    pos = (reference == _ABNORMAL) & (system != NO_CALL)
    n = int(np.count_nonzero(pos))
    return float(np.count_nonzero(system[pos] == _ABNORMAL)) / n if n else float("nan")


def specificity(system: NDArray[np.integer[Any]], reference: NDArray[np.integer[Any]]) -> float:
    """Share of the reference's normal items (the system called) that the system calls normal."""
    neg = (reference == _CODE["normal"]) & (system != NO_CALL)
    n = int(np.count_nonzero(neg))
    return float(np.count_nonzero(system[neg] == _CODE["normal"])) / n if n else float("nan")


Statistic = Callable[[NDArray[np.intp]], float]


def cluster_bootstrap(
    stats: Mapping[str, Statistic],
    clusters: NDArray[Any],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """``level`` intervals of each statistic (a function of the item indices it is computed on) from ``n_boot``
    resamples of whole clusters (recordings) with replacement.

    The interval is the estimate +- t(G-1) x the bootstrap standard error x sqrt(G / (G-1)) for G clusters,
    clipped to [-1, 1]: with the 10-30 recordings a site labels, the bootstrap spread of a clustered statistic is
    too small (by ~10 % for kappa on generated raters, 20 recordings) and plain percentile or BCa intervals then
    covered the true kappa in only 85-91 % of trials instead of 95 %; the t quantile and the G/(G-1) factor are the
    usual few-cluster corrections. A statistic undefined in a resample (NaN) is left out of that resample."""
    from scipy.stats import t as student_t

    keys, inverse = np.unique(clusters, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(keys.shape[0])]
    g = len(members)
    rng = np.random.default_rng(seed)
    funcs = list(stats.values())
    draws = np.full((n_boot, len(funcs)), np.nan)
    for b in range(n_boot):
        pick = rng.integers(0, g, g)
        idx = np.concatenate([members[k] for k in pick]) if members else np.zeros(0, dtype=np.intp)
        for j, f in enumerate(funcs):
            draws[b, j] = f(idx)
    everything = np.arange(inverse.shape[0])
    crit = float(student_t.ppf(0.5 + level / 2.0, max(g - 1, 1))) * (np.sqrt(g / (g - 1)) if g > 1 else 1.0)
    out = {}
    for j, (name, f) in enumerate(stats.items()):
        col = draws[:, j][np.isfinite(draws[:, j])]
        theta = f(everything)
        if col.shape[0] < 2 or not np.isfinite(theta):
            out[name] = (float("nan"), float("nan"))
            continue
        half = crit * float(np.std(col, ddof=1))
        out[name] = (max(-1.0, theta - half), min(1.0, theta + half))
    return out


def _pair_stats(
    stats: dict[str, Statistic], key: str, a: NDArray[np.int8], b: NDArray[np.int8]
) -> list[tuple[str, str]]:
    stats[f"{key}.kappa"] = lambda idx: cohen_kappa(a[idx], b[idx])
    stats[f"{key}.percent_agreement"] = lambda idx: percent_agreement(a[idx], b[idx])
    return [("kappa", f"{key}.kappa"), ("percent_agreement", f"{key}.percent_agreement")]


def agreement_report(rw: RatedWindows, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every figure with its recording-bootstrap 95 % interval, as a JSON-able dict:
    ``pairs`` (rater pairs), ``fleiss``, and with a system ``system`` (``vs_raters``, ``vs_majority``)."""
    all_idx = np.arange(len(rw))
    stats: dict[str, Statistic] = {}
    layout: list[tuple[dict[str, Any], list[tuple[str, str]]]] = []
    pairs: list[dict[str, Any]] = []
    for i, j in combinations(range(len(rw.raters)), 2):
        a, b = rw.ratings[:, i], rw.ratings[:, j]
        entry: dict[str, Any] = {
            "a": rw.raters[i],
            "b": rw.raters[j],
            "n": int(np.count_nonzero((a != NO_CALL) & (b != NO_CALL))),
        }
        pairs.append(entry)
        layout.append((entry, _pair_stats(stats, f"pair{i}-{j}", a, b)))
    ratings = rw.ratings
    fleiss: dict[str, Any] = {"n": int(np.count_nonzero(np.all(ratings != NO_CALL, axis=1))), "raters": len(rw.raters)}
    stats["fleiss.kappa"] = lambda idx: fleiss_kappa(ratings[idx])
    stats["fleiss.all_agree"] = lambda idx: all_agree(ratings[idx])
    layout.append((fleiss, [("kappa", "fleiss.kappa"), ("all_agree", "fleiss.all_agree")]))
    report: dict[str, Any] = {
        "windows": len(rw),
        "recordings": len(set(rw.recording.tolist())),
        "people": len(set(zip(rw.recording.tolist(), rw.subject.tolist(), strict=True))),
        "raters": list(rw.raters),
        "pairs": pairs,
        "fleiss": fleiss,
    }
    if rw.system is not None:
        sys_codes = rw.system
        vs_raters = []
        for i, rater in enumerate(rw.raters):
            r = rw.ratings[:, i]
            entry = {"rater": rater, "n": int(np.count_nonzero((sys_codes != NO_CALL) & (r != NO_CALL)))}
            vs_raters.append(entry)
            layout.append((entry, _pair_stats(stats, f"system-{i}", sys_codes, r)))
        maj = majority_codes(ratings)
        vs_maj: dict[str, Any] = {
            "n": int(np.count_nonzero((sys_codes != NO_CALL) & (maj != NO_CALL))),
            "abnormal": int(np.count_nonzero((sys_codes != NO_CALL) & (maj == _ABNORMAL))),
        }
        stats["majority.sensitivity"] = lambda idx: sensitivity(sys_codes[idx], maj[idx])
        stats["majority.specificity"] = lambda idx: specificity(sys_codes[idx], maj[idx])
        layout.append(
            (
                vs_maj,
                [
                    ("sensitivity", "majority.sensitivity"),
                    ("specificity", "majority.specificity"),
                    *_pair_stats(stats, "majority", sys_codes, maj),
                ],
            )
        )
        report["system"] = {"windows_called": int(np.count_nonzero(sys_codes)), "vs_raters": vs_raters}
        report["system"]["vs_majority"] = vs_maj
    cis = cluster_bootstrap(stats, rw.recording, n_boot=n_boot, seed=seed)
    for entry, fields in layout:
        for field_name, key in fields:
            entry[field_name] = {"value": _json_float(stats[key](all_idx)), "ci95": [_json_float(x) for x in cis[key]]}
    report["bootstrap"] = {"resamples": n_boot, "unit": "recording", "level": 0.95, "seed": seed}
    return report


def _json_float(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def system_windows(replay: Mapping[str, Any]) -> list[SystemWindow]:
    """The valid windows of a ``gaitwatch replay --json`` document (or ``result_json``) as ``SystemWindow``."""
    out = []
    windows: Iterable[Mapping[str, Any]] = replay.get("windows", [])
    for w in windows:
        if w.get("valid") and w.get("label") in _CODE:
            out.append(SystemWindow(str(w["track"]), float(w["t_start"]), float(w["t_end"]), str(w["label"])))
    return out


def simulated_episodes(
    n_recordings: int,
    raters: Sequence[str],
    accuracy: float,
    prevalence: float = 0.4,
    seed: int = 0,
    people: tuple[int, int] = (1, 3),
    episodes: tuple[int, int] = (2, 5),
    episode_s: tuple[float, float] = (6.0, 30.0),
) -> list[Episode]:
    """Generated raters with a known agreement, for tests and benchmarks.

    Each person's time is a run of episodes whose true call is abnormal with probability ``prevalence``. For each
    episode every rater independently gives the true call with probability ``accuracy`` and otherwise a call
    drawn at random with the same prevalence, so every rater's calls have the prevalence's distribution and the
    expected Cohen's (and Fleiss') kappa between any two raters is exactly ``accuracy ** 2``."""
    rng = np.random.default_rng(seed)
    out = []
    for r in range(n_recordings):
        recording = f"rec_{r:03d}.npz"
        for person in range(int(rng.integers(people[0], people[1] + 1))):
            t = float(rng.uniform(0.0, 5.0))
            for _ in range(int(rng.integers(episodes[0], episodes[1] + 1))):
                dur = float(rng.uniform(*episode_s))
                truth = rng.random() < prevalence
                for rater in raters:
                    call = truth if rng.random() < accuracy else bool(rng.random() < prevalence)
                    label = "abnormal" if call else "normal"
                    out.append(Episode(recording, str(person + 1), round(t, 3), round(t + dur, 3), rater, label))
                t += dur
    return out
