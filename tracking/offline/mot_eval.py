"""Score tracker output against MOTChallenge ground truth: MOTA, IDF1 (py-motmetrics) and HOTA.

CLEAR-MOT and identity metrics come from py-motmetrics' ``MOTAccumulator`` (the evaluator that reproduces
the MOTChallenge devkit). Its own IoU helper calls ``np.asfarray``, which numpy 2 removed, so the distance
matrices are computed here and handed to the accumulator; everything else is py-motmetrics' code path.
HOTA (Luiten et al., IJCV 2021) is implemented here from the paper, since py-motmetrics 1.4 has none; it
follows the paper's definitions: for each localisation threshold alpha in 0.05..0.95, a Hungarian matching
that maximises IoU weighted by the pair's global association score, DetA = TP / (TP + FN + FP),
AssA = mean over TPs of TPA / (TPA + FNA + FPA), HOTA = sqrt(DetA * AssA), averaged over alpha.

All results are fractions in [0, 1] (MOTA can be negative); multiply by 100 for the usual percentages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from gaitwatch.tracking.fixed_lag import FixedLagSettings, fixed_lag_rows
from gaitwatch.tracking.offline.motchallenge import DISTRACTOR_CLASSES, PEDESTRIAN_CLASS, MotSequence
from gaitwatch.tracking.types import Detections, Tracks, TrackState

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

IOU_THRESHOLD = 0.5  # a tracker box matches a ground-truth box at IoU >= 0.5 (MOTChallenge convention)
HOTA_ALPHAS = np.arange(0.05, 0.96, 0.05)
_EPS = float(np.finfo(np.float64).eps)


class OnlineTracker(Protocol):
    """What the evaluation needs from a tracker: ``update(detections, t) -> Tracks``."""

    def update(self, detections: Detections, t: float) -> Tracks: ...


# The fixed-lag output leaves out tracks observed on fewer frames than this: one-frame flickers (the online output,
# which cannot wait, reports them once confirmed). With min_hits 1, 2 rather than 1 gained KITTI fixed-lag MOTA
# +1.3 (KITTI-trk-0013 +3.6), IDF1 +0.6, HOTA +0.2, MOT15 IDF1 -0.1, MOT17 unchanged; with min_hits >= 2 no
# confirmed track has fewer than 2 observations, so nothing changes there.
FIXED_LAG_MIN_OBSERVATIONS = 2

ONLINE = "online"
FIXED_LAG = "fixed_lag"


def track_sequence(sequence: MotSequence, tracker: OnlineTracker, max_gap_s: float = 0.0) -> FloatArray:
    """Run ``tracker`` over every frame of ``sequence``; rows ``frame, id, x1, y1, x2, y2`` to score.

    With ``max_gap_s == 0`` the online output (what the daemon's urgent path sees), else the fixed-lag output
    with that window (its gait path); see ``track_outputs``.
    """
    outputs = track_outputs(sequence, tracker, max_gap_s if max_gap_s > 0.0 else None)
    return outputs[FIXED_LAG] if max_gap_s > 0.0 else outputs[ONLINE]


def track_outputs(sequence: MotSequence, tracker: OnlineTracker, max_gap_s: float | None) -> dict[str, FloatArray]:
    """One run of ``tracker`` over ``sequence``, reported as ``online`` and (``max_gap_s`` given) ``fixed_lag``.

    ``online``: a track is reported on a frame when it is CONFIRMED and was matched on that very frame, the usual
    MOTChallenge convention (coasting boxes are not reported). This is what the daemon's urgent path (falls and
    other alerts) works from.

    ``fixed_lag`` (``fixed_lag.py``): every observed box of a track that ever became CONFIRMED and was observed on
    at least ``FIXED_LAG_MIN_OBSERVATIONS`` frames is reported, including its tentative first frames (a consumer
    with a lag sees whether a track was ever seen again: one seen once is a flicker, and with ``min_hits`` 1 it was
    confirmed at once); then tracklets that end and start within ``max_gap_s`` seconds of each
    other are joined, and gaps up to that long are filled by interpolation, wherever the motion extrapolated
    from both sides of the gap agrees. A consumer that waits ``max_gap_s + FixedLagSettings.velocity_window_s``
    seconds before using a box can produce exactly this online, which is how gait windows (several seconds
    long) can use it; ByteTrack and OC-SORT report MOT17 with interpolation too.
    """
    rows: list[list[float]] = []
    online_flags: list[bool] = []
    confirmed: set[int] = set()
    for frame, detections in sequence.detections():
        tracks = tracker.update(detections, sequence.frame_time(frame))
        fresh = tracks.since_update_s == 0.0
        for track_id, box, state in zip(tracks.ids[fresh], tracks.xyxy[fresh], tracks.state[fresh], strict=True):
            is_confirmed = bool(state == TrackState.CONFIRMED)
            if is_confirmed:
                confirmed.add(int(track_id))
            rows.append([frame, int(track_id), *box])
            online_flags.append(is_confirmed)
    empty = np.zeros((0, 6), dtype=np.float64)
    if not rows:
        outputs = {ONLINE: empty}
        if max_gap_s is not None:
            outputs[FIXED_LAG] = empty
        return outputs
    every = np.array(rows, dtype=np.float64)
    # No joining or filling with a zero window: just the sorted rows, as the fixed-lag code orders them.
    outputs = {ONLINE: fixed_lag_rows(every[np.array(online_flags)], sequence.frame_rate, FixedLagSettings(0.0))}
    if max_gap_s is not None:
        ids, seen = np.unique(every[:, 1], return_counts=True)
        kept = ids[(seen >= FIXED_LAG_MIN_OBSERVATIONS) & np.isin(ids, np.array(sorted(confirmed), dtype=np.float64))]
        ever = every[np.isin(every[:, 1], kept)]
        outputs[FIXED_LAG] = fixed_lag_rows(ever, sequence.frame_rate, FixedLagSettings(max_gap_s=max(max_gap_s, 0.0)))
    return outputs


def _iou_xyxy(a: FloatArray, b: FloatArray) -> FloatArray:
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out


def _distance(iou: FloatArray) -> FloatArray:
    """py-motmetrics' convention: distance 1 - IoU, NaN (do not pair) below the IoU threshold."""
    dist = 1.0 - iou
    out: FloatArray = np.where(dist > 1.0 - IOU_THRESHOLD, np.nan, dist)
    return out


def _gt_boxes(gt: FloatArray) -> FloatArray:
    return np.stack([gt[:, 2], gt[:, 3], gt[:, 2] + gt[:, 4], gt[:, 3] + gt[:, 5]], axis=1)


def _by_frame(frames: NDArray[np.int64]) -> dict[int, IntArray]:
    order = np.argsort(frames, kind="stable")
    uniq, starts = np.unique(frames[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    return {int(f): order[s:e].astype(np.int64) for f, s, e in zip(uniq, starts, ends, strict=True)}


def _remove_distractor_matches(gt: FloatArray, hyp: FloatArray, length: int) -> FloatArray:
    """Devkit step for MOT16/17: drop tracker boxes matched (IoU >= 0.5) to a distractor ground-truth box."""
    from motmetrics.lap import linear_sum_assignment as mm_lsa  # type: ignore[import-untyped]

    gt_rows = _by_frame(gt[:, 0].astype(np.int64))
    hyp_rows = _by_frame(hyp[:, 0].astype(np.int64))
    gt_xyxy = _gt_boxes(gt)
    drop = np.zeros(len(hyp), dtype=bool)
    for frame in range(1, length + 1):
        gi, hi = gt_rows.get(frame), hyp_rows.get(frame)
        if gi is None or hi is None:
            continue
        dist = _distance(_iou_xyxy(gt_xyxy[gi], hyp[hi, 2:6]))
        rows, cols = mm_lsa(dist)
        for r, c in zip(rows, cols, strict=True):
            if not np.isfinite(dist[r, c]):
                continue
            cls, visibility = int(gt[gi[r], 7]), float(gt[gi[r], 8])
            if cls in DISTRACTOR_CLASSES or visibility < 0.0:
                drop[hi[c]] = True
    return hyp[~drop]


@dataclass(frozen=True, slots=True)
class HotaCounts:
    """Per-alpha HOTA sufficient statistics of one or more sequences (so sequences can be combined)."""

    tp: FloatArray
    fn: FloatArray
    fp: FloatArray
    assa_tp: FloatArray  # AssA * TP, summed (the TP-weighted association accuracy)

    @property
    def deta(self) -> FloatArray:
        out: FloatArray = self.tp / np.maximum(1.0, self.tp + self.fn + self.fp)
        return out

    @property
    def assa(self) -> FloatArray:
        out: FloatArray = self.assa_tp / np.maximum(1.0, self.tp)
        return out

    @property
    def hota(self) -> float:
        return float(np.mean(np.sqrt(self.deta * self.assa)))

    def __add__(self, other: HotaCounts) -> HotaCounts:
        return HotaCounts(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp, self.assa_tp + other.assa_tp)


def hota_counts(
    gt_frames: IntArray, gt_ids: IntArray, gt_xyxy: FloatArray,
    hyp_frames: IntArray, hyp_ids: IntArray, hyp_xyxy: FloatArray,
) -> HotaCounts:  # fmt: skip
    """HOTA statistics of one sequence from flat per-box arrays (frame, id, xyxy) of truth and hypotheses."""
    n_alpha = len(HOTA_ALPHAS)
    gt_uid, gt_idx = np.unique(gt_ids, return_inverse=True)
    hyp_uid, hyp_idx = np.unique(hyp_ids, return_inverse=True)
    n_gt, n_hyp = len(gt_uid), len(hyp_uid)
    if n_gt == 0 or n_hyp == 0:
        zeros = np.zeros(n_alpha)
        return HotaCounts(zeros, np.full(n_alpha, float(len(gt_ids))), np.full(n_alpha, float(len(hyp_ids))), zeros)
    gt_rows, hyp_rows = _by_frame(gt_frames), _by_frame(hyp_frames)
    frames = sorted(set(gt_rows) & set(hyp_rows))
    sims: dict[int, FloatArray] = {}
    potential = np.zeros((n_gt, n_hyp))
    gt_count = np.bincount(gt_idx, minlength=n_gt).astype(np.float64)
    hyp_count = np.bincount(hyp_idx, minlength=n_hyp).astype(np.float64)
    for frame in frames:
        gi, hi = gt_rows[frame], hyp_rows[frame]
        sim = _iou_xyxy(gt_xyxy[gi], hyp_xyxy[hi])
        sims[frame] = sim
        # Soft per-frame alignment: a pair's IoU relative to how much both boxes overlap anything else.
        denom = sim.sum(axis=0)[None, :] + sim.sum(axis=1)[:, None] - sim
        soft = np.divide(sim, denom, out=np.zeros_like(sim), where=denom > _EPS)
        np.add.at(potential, (gt_idx[gi][:, None], hyp_idx[hi][None, :]), soft)
    global_score = potential / (gt_count[:, None] + hyp_count[None, :] - potential)
    # Matched (gt, hyp) pairs per alpha, encoded as gt * n_hyp + hyp; counted at the end (sparse: a tracker
    # with thousands of short tracks must not need an alpha x gt x hyp dense array).
    pair_codes: list[list[IntArray]] = [[] for _ in HOTA_ALPHAS]
    tp = np.zeros(n_alpha)
    for frame in frames:
        gi, hi = gt_idx[gt_rows[frame]], hyp_idx[hyp_rows[frame]]
        sim = sims[frame]
        rows, cols = linear_sum_assignment(-(global_score[gi[:, None], hi[None, :]] * sim))
        matched_sim = sim[rows, cols]
        codes = gi[rows].astype(np.int64) * n_hyp + hi[cols]
        for a, alpha in enumerate(HOTA_ALPHAS):
            ok = matched_sim >= alpha - _EPS
            tp[a] += ok.sum()
            pair_codes[a].append(codes[ok])
    fn = len(gt_ids) - tp
    fp = len(hyp_ids) - tp
    assa_tp = np.zeros(n_alpha)
    for a in range(n_alpha):
        if not pair_codes[a]:
            continue
        code, count = np.unique(np.concatenate(pair_codes[a]), return_counts=True)
        g, h = code // n_hyp, code % n_hyp
        m = count.astype(np.float64)
        # TPA / (TPA + FNA + FPA) of each matched pair of trajectories, weighted by its TPA (its m TPs)
        assa_tp[a] = float((m * m / (gt_count[g] + hyp_count[h] - m)).sum())
    return HotaCounts(tp, fn, fp, assa_tp)


@dataclass(frozen=True, slots=True)
class MotCounts:
    """Sufficient statistics of one or more sequences; metrics are derived so sequences combine exactly."""

    num_gt: int
    fp: int
    fn: int
    idsw: int
    idtp: float
    idfp: float
    idfn: float
    hota_stats: HotaCounts

    @property
    def mota(self) -> float:
        return 1.0 - (self.fn + self.fp + self.idsw) / max(1, self.num_gt)

    @property
    def idf1(self) -> float:
        denom = 2.0 * self.idtp + self.idfp + self.idfn
        return 2.0 * self.idtp / denom if denom > 0 else 0.0

    @property
    def hota(self) -> float:
        return self.hota_stats.hota

    @property
    def recall(self) -> float:
        return (self.num_gt - self.fn) / max(1, self.num_gt)

    @property
    def precision(self) -> float:
        tp = self.num_gt - self.fn
        return tp / max(1, tp + self.fp)

    def __add__(self, other: MotCounts) -> MotCounts:
        return MotCounts(
            self.num_gt + other.num_gt,
            self.fp + other.fp,
            self.fn + other.fn,
            self.idsw + other.idsw,
            self.idtp + other.idtp,
            self.idfp + other.idfp,
            self.idfn + other.idfn,
            self.hota_stats + other.hota_stats,
        )

    def as_dict(self) -> dict[str, float | int]:
        """The JSON view: fractions (not percentages) and integer counts."""
        return {
            "mota": self.mota,
            "idf1": self.idf1,
            "hota": self.hota,
            "idsw": self.idsw,
            "fp": self.fp,
            "fn": self.fn,
            "num_gt": self.num_gt,
            "recall": self.recall,
            "precision": self.precision,
        }


def combine(counts: Iterable[MotCounts]) -> MotCounts:
    """Pool sequences the way the devkit's "overall" row does (sums of counts, not means of ratios)."""
    items = list(counts)
    if not items:
        raise ValueError("nothing to combine")
    total = items[0]
    for item in items[1:]:
        total = total + item
    return total


def evaluate(sequence: MotSequence, hyp: FloatArray) -> MotCounts:
    """Score tracker rows ``frame, id, x1, y1, x2, y2`` against the sequence's ground truth."""
    try:
        import motmetrics as mm  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - motmetrics is a project dependency
        raise ImportError("MOT evaluation needs py-motmetrics: pip install motmetrics") from exc
    if sequence.gt is None:
        raise ValueError(f"{sequence.path}: no gt/gt.txt or gt.txt, so it cannot be scored")
    gt = sequence.gt
    hyp = hyp[(hyp[:, 0] >= 1) & (hyp[:, 0] <= sequence.length)]
    if sequence.gt_format == "mot16":
        hyp = _remove_distractor_matches(gt, hyp, sequence.length)
        gt = gt[(gt[:, 6] >= 0.99) & (gt[:, 7] == PEDESTRIAN_CLASS)]
    else:
        gt = gt[gt[:, 6] >= 1.0]
    gt_frames, hyp_frames = gt[:, 0].astype(np.int64), hyp[:, 0].astype(np.int64)
    gt_ids, hyp_ids = gt[:, 1].astype(np.int64), hyp[:, 1].astype(np.int64)
    gt_xyxy, hyp_xyxy = _gt_boxes(gt), hyp[:, 2:6]
    gt_rows, hyp_rows = _by_frame(gt_frames), _by_frame(hyp_frames)
    acc = mm.MOTAccumulator()
    for frame in sorted(set(gt_rows) | set(hyp_rows)):
        gi = gt_rows.get(frame, np.zeros(0, dtype=np.int64))
        hi = hyp_rows.get(frame, np.zeros(0, dtype=np.int64))
        dist = _distance(_iou_xyxy(gt_xyxy[gi], hyp_xyxy[hi])) if len(gi) and len(hi) else np.empty((0, 0))
        acc.update(gt_ids[gi], hyp_ids[hi], dist, frameid=frame)
    host = mm.metrics.create()
    names = ["num_objects", "num_false_positives", "num_misses", "num_switches", "idtp", "idfp", "idfn"]
    summary = host.compute(acc, metrics=names, name=sequence.name)
    row = summary.iloc[0]
    return MotCounts(
        num_gt=int(row["num_objects"]),
        fp=int(row["num_false_positives"]),
        fn=int(row["num_misses"]),
        idsw=int(row["num_switches"]),
        idtp=float(row["idtp"]),
        idfp=float(row["idfp"]),
        idfn=float(row["idfn"]),
        hota_stats=hota_counts(gt_frames, gt_ids, gt_xyxy, hyp_frames, hyp_ids, hyp_xyxy),
    )


def read_results(path: str, sequence_length: int) -> FloatArray:
    """Read a MOTChallenge result file (frame,id,x,y,w,h,...) as rows ``frame, id, x1, y1, x2, y2``."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    if rows.size == 0:
        return np.zeros((0, 6))
    out = np.column_stack(
        [rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]]
    )
    keep = (out[:, 0] >= 1) & (out[:, 0] <= sequence_length)
    result: FloatArray = out[keep]
    return result
