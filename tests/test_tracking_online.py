"""The online tracker (what the daemon's urgent path runs): its issue-16 ideas on generated ward scenes with
known identities, and its committed figures on the public sequences."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_tracking_scenarios import SEEDS, generated_sequence, id_switches, reentry

from gaitwatch.tracking.offline.mot_eval import combine, evaluate, track_sequence
from gaitwatch.tracking.offline.motchallenge import MotSequence, read_sequence
from gaitwatch.tracking.tracker import Tracker, TrackerSettings
from gaitwatch.tracking.types import Detections

FPS = 10.0
MOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot"
needs_data = pytest.mark.skipif(not MOT.is_dir(), reason=f"needs the shared evaluation data at {MOT}")


def _box(cx: float, bottom: float, width: float, height: float) -> np.ndarray:
    return np.array([cx - width / 2, bottom - height, cx + width / 2, bottom])


def _scene(name: str, truth: list[np.ndarray], seed: int, score: float = 0.95) -> MotSequence:
    """A MOTChallenge-style sequence from per-frame true boxes (P, 4), detected every frame with 2 % jitter."""
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = [], []
    for k, boxes in enumerate(truth):
        for person, box in enumerate(boxes):
            gt_rows.append([k + 1, person + 1, box[0], box[1], box[2] - box[0], box[3] - box[1], 1, -1, -1, -1])
            noisy = box + rng.normal(0.0, 0.02 * (box[3] - box[1]), size=4)
            det_rows.append([k + 1, -1, noisy[0], noisy[1], noisy[2] - noisy[0], noisy[3] - noisy[1], score])
    return generated_sequence(name, len(truth), det_rows, gt_rows, FPS)


def sit_to_stand(seed: int) -> MotSequence:
    """A seated patient (box 60 px tall) stands up in 0.4 s (170 px) beside a nurse standing still."""
    truth = []
    for k in range(int(4 * FPS)):
        t = k / FPS
        rise = float(np.clip((t - 1.5) / 0.4, 0.0, 1.0))
        patient = _box(200.0, 300.0, 70.0 - 20.0 * rise, 60.0 + 110.0 * rise)
        truth.append(np.stack([patient, _box(330.0, 300.0, 50.0, 170.0)]))
    return _scene("sit_to_stand", truth, seed)


def fall(seed: int) -> MotSequence:
    """A walker falls in 0.3 s: the box turns from 170 x 50 px upright to 50 x 150 px lying on the floor."""
    truth = []
    for k in range(int(4 * FPS)):
        t = k / FPS
        down = float(np.clip((t - 2.0) / 0.3, 0.0, 1.0))
        cx = 150.0 + 60.0 * min(t, 2.0) + 50.0 * down
        truth.append(np.stack([_box(cx, 300.0, 50.0 + 100.0 * down, 170.0 - 120.0 * down)]))
    return _scene("fall", truth, seed)


@pytest.mark.parametrize("scene", [sit_to_stand, fall])
def test_fast_size_changes_keep_one_identity(scene: object) -> None:
    """Sit-to-stand and falls change the box shape within a few frames; the person keeps one track."""
    assert callable(scene)
    for seed in SEEDS:
        sequence: MotSequence = scene(seed)
        rows = track_sequence(sequence, Tracker())
        counts = evaluate(sequence, rows)
        assert counts.idsw == 0, (sequence.name, seed)
        assert len(np.unique(rows[:, 1])) == len(np.unique(sequence.gt[:, 1])), (sequence.name, seed)  # type: ignore[index]
        assert counts.mota >= 0.9, (sequence.name, seed, counts.mota)


def _one_track_then_offset(score: float, settings: TrackerSettings) -> float:
    """Distance (px) of the track's box from a detection 8 px to the right, after fusing it with ``score``."""
    tracker = Tracker(settings)
    box = np.array([[100.0, 50.0, 140.0, 150.0]])
    for k in range(5):
        tracker.update(Detections(box.copy(), np.array([0.95])), k / FPS)
    moved = box + np.array([[8.0, 0.0, 8.0, 0.0]])
    out = tracker.update(Detections(moved, np.array([score])), 5 / FPS)
    return float(moved[0, 0] - out.xyxy[0, 0])


def test_confident_detections_steer_the_box_more_than_doubtful_ones() -> None:
    """Confidence-aware update: the same box moves the estimate further when the detector is sure of it."""
    settings = TrackerSettings(min_hits=1)
    # 0.4 is a doubtful box (below high_score): ByteTrack's second round still matches it to the track.
    confident, doubtful = _one_track_then_offset(0.99, settings), _one_track_then_offset(0.4, settings)
    assert 0.0 < confident < doubtful < 8.0
    # With the scaling off (floor 1) the score no longer matters.
    flat = TrackerSettings(min_hits=1, score_noise_floor=1.0)
    assert _one_track_then_offset(0.99, flat) == pytest.approx(_one_track_then_offset(0.4, flat))


def test_recovery_round_brings_back_a_person_who_stepped_out_at_the_edge() -> None:
    """With OC-SORT's recovery on (0.3), leaving at the picture's edge and coming back keeps the identity."""
    with_recovery = 0
    for seed in SEEDS:
        sequence = reentry(seed)
        with_recovery += evaluate(
            sequence, track_sequence(sequence, Tracker(TrackerSettings(recovery_iou_threshold=0.3)))
        ).idsw
    assert with_recovery == 0
    assert id_switches("reentry", "default") <= 1  # default off: the committed scenario baseline


def _seen_when(truth: list[np.ndarray], seen: list[np.ndarray], name: str, seed: int) -> MotSequence:
    """Like ``_scene``, but person ``p`` is detected on frame ``k`` only where ``seen[k][p]``."""
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = [], []
    for k, (boxes, visible) in enumerate(zip(truth, seen, strict=True)):
        for person, box in enumerate(boxes):
            gt_rows.append([k + 1, person + 1, box[0], box[1], box[2] - box[0], box[3] - box[1], 1, -1, -1, -1])
            if visible[person]:
                noisy = box + rng.normal(0.0, 0.01 * (box[3] - box[1]), size=4)
                det_rows.append([k + 1, -1, noisy[0], noisy[1], noisy[2] - noisy[0], noisy[3] - noisy[1], 0.95])
    return generated_sequence(name, len(truth), det_rows, gt_rows, FPS)


def sidestep_behind_nurse(seed: int) -> MotSequence:
    """A patient (40 x 100 px) sidesteps 17 px as the nurse standing in front of them (60 x 150 px, closer to the
    camera, her box around his) drops out of the detections: his new box overlaps her predicted box (IoU 0.44)
    more than his own (0.40), but only his track's size and motion explain it."""
    truth, seen = [], []
    for k in range(int(3 * FPS)):
        t = k / FPS
        patient = _box(120.0 + (17.0 if t >= 2.0 else 0.0), 200.0, 40.0, 100.0)
        truth.append(np.stack([patient, _box(137.0, 225.0, 60.0, 150.0)]))
        seen.append(np.array([True, t < 2.0]))
    return _seen_when(truth, seen, "sidestep", seed)


def hidden_then_closer(seed: int) -> MotSequence:
    """A patient hidden for 1 s (a curtain) comes out 20 px to the side and closer to the camera (box 50 % taller):
    his still-standing track's predicted box overlaps the new one by the gate at best (IoU 0.30)."""
    truth, seen = [], []
    for k in range(int(4 * FPS)):
        t = k / FPS
        moved = float(np.clip(t - 2.0, 0.0, 1.0))
        height = 100.0 + 50.0 * moved
        truth.append(np.stack([_box(100.0 + 20.0 * moved, 250.0, 0.4 * height, height)]))
        seen.append(np.array([not 2.0 <= t < 3.0]))
    return _seen_when(truth, seen, "hidden_then_closer", seed)


def _switches(scene: Callable[[int], MotSequence], settings: TrackerSettings) -> int:
    return sum(evaluate(s, track_sequence(s, Tracker(settings))).idsw for s in map(scene, SEEDS))


def test_mahalanobis_similarity_gives_a_box_to_the_track_whose_size_and_motion_explain_it() -> None:
    assert _switches(sidestep_behind_nurse, TrackerSettings()) == 0
    # IoU alone hands the patient's box to the nurse's track on most seeds: the scene tests the term.
    assert _switches(sidestep_behind_nurse, TrackerSettings(mahalanobis_weight=0.0)) >= 3


def test_a_track_unseen_for_a_while_is_searched_in_a_grown_box() -> None:
    assert _switches(hidden_then_closer, TrackerSettings()) == 0
    # Without growth the patient comes back with a new id on most seeds: the scene tests the growth.
    assert _switches(hidden_then_closer, TrackerSettings(lost_box_growth_per_s=0.0)) >= 2


def test_bad_knobs_are_named() -> None:
    with pytest.raises(ValueError, match="score_noise_floor"):
        TrackerSettings(score_noise_floor=0.0)
    with pytest.raises(ValueError, match="recovery_iou_threshold"):
        TrackerSettings(recovery_iou_threshold=1.5)
    with pytest.raises(ValueError, match="mahalanobis_weight"):
        TrackerSettings(mahalanobis_weight=-0.1)
    with pytest.raises(ValueError, match="lost_box_growth_per_s"):
        TrackerSettings(lost_box_growth_per_s=math.inf)


GROUPS = {
    "MOT15": ["TUD-Campus", "KITTI-17"],
    "MOT17": [f"MOT17-{n}-FRCNN" for n in ("02", "04", "05", "09", "11")],
    "KITTI": ["KITTI-trk-0013", "KITTI-trk-0016", "KITTI-trk-0017"],
}
# Committed online-output figures (MOTA, IDF1, HOTA in %) of the default tracker, measured with
# `gaitwatch eval-mot` (output=online); the best roboflow `trackers` peer per group is in the README table.
# With min_hits 1 (a confident detection confirms its track at once) KITTI's MOTA fell from 52.3 to 50.9 and its
# IDF1 from 72.3 to 71.7 (KITTI-trk-0013's one-frame false tracks are now reported), for MOT15 / MOT17 MOTA +1.1 / +0.4.
ONLINE_BASELINE = {
    "MOT15": (66.6, 79.3, 52.8),
    "MOT17": (49.7, 60.3, 51.4),
    "KITTI": (50.9, 71.7, 45.1),
}


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_online_output_keeps_its_committed_figures(group: str) -> None:
    seqs = [read_sequence(MOT / name) for name in GROUPS[group]]
    total = combine(evaluate(s, track_sequence(s, Tracker())) for s in seqs)
    measured = (100 * total.mota, 100 * total.idf1, 100 * total.hota)
    for value, committed in zip(measured, ONLINE_BASELINE[group], strict=True):
        assert value >= committed - 0.1, (group, measured, ONLINE_BASELINE[group])
