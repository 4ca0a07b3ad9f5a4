"""Generated ward scenarios with known identities: ID switches of the default tracker and of SORT.

Each scenario is a small MOTChallenge-style sequence (ground truth + noisy detections) made here from a seeded
random generator and scored with the project's evaluator. ``BASELINE`` holds the committed ID-switch counts
(summed over ``SEEDS``); a change that makes the default tracker switch identities more often fails, and so
does one that makes it worse than SORT.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.offline.mot_eval import OnlineTracker, evaluate, track_sequence
from gaitwatch.tracking.offline.motchallenge import MotSequence
from gaitwatch.tracking.sort import SortTracker
from gaitwatch.tracking.tracker import Tracker

FPS = 10.0
SEEDS = range(5)
HEIGHT, WIDTH = 100.0, 40.0  # a person 100 px tall seen by a ward camera
SPEED = 80.0  # px/s: 0.8 body heights per second, a normal walking pace in the image

# Committed ID switches summed over SEEDS (regenerate only for a deliberate, explained behaviour change).
BASELINE = {
    "crossing": {"default": 0, "sort": 5},
    "pillar": {"default": 0, "sort": 5},
    # 1 since issue 16: OC-SORT's recovery round is off by default (it cost MOT17-11 2.9 HOTA online);
    # with TrackerSettings(recovery_iou_threshold=0.3) it is 0 again (tests/test_tracking_online.py).
    "reentry": {"default": 1, "sort": 5},
}


def _sequence(name: str, truth: list[np.ndarray], visible: list[np.ndarray], seed: int) -> MotSequence:
    """Build a sequence from per-frame true boxes (P, 4) and which of them the detector sees (P,)."""
    rng = np.random.default_rng(seed)
    gt_rows, det_rows = [], []
    for k, (boxes, seen) in enumerate(zip(truth, visible, strict=True)):
        frame = k + 1
        for person, box in enumerate(boxes):
            if np.isnan(box[0]):
                continue  # not in the picture at all
            gt_rows.append([frame, person + 1, box[0], box[1], box[2] - box[0], box[3] - box[1], 1, -1, -1, -1])
            if seen[person]:
                noisy = box + rng.normal(0.0, 0.03 * HEIGHT, size=4)
                det_rows.append([frame, -1, noisy[0], noisy[1], noisy[2] - noisy[0], noisy[3] - noisy[1],
                                 rng.uniform(0.9, 1.0)])  # fmt: skip
    return generated_sequence(name, len(truth), det_rows, gt_rows)


def generated_sequence(
    name: str, length: int, det_rows: list[list[float]], gt_rows: list[list[float]], frame_rate: float = FPS
) -> MotSequence:
    """A MOTChallenge sequence (MOT15 columns) from generated detection and ground-truth rows."""
    return MotSequence(
        name=name,
        path=Path(f"<generated {name}>"),
        frame_rate=frame_rate,
        length=length,
        det=np.array(det_rows, dtype=np.float64).reshape(-1, 7),
        gt=np.array(gt_rows, dtype=np.float64).reshape(-1, 10),
        gt_format="mot15",
    )


def _box(x: float, y: float) -> np.ndarray:
    return np.array([x - WIDTH / 2, y - HEIGHT / 2, x + WIDTH / 2, y + HEIGHT / 2])


def crossing(seed: int) -> MotSequence:
    """Two people walk towards each other on nearly one line; the one behind is hidden while they overlap."""
    truth, visible = [], []
    for k in range(int(6 * FPS)):
        t = k / FPS
        boxes = np.stack([_box(100 + SPEED * t, 200), _box(580 - SPEED * t, 210)])
        seen = np.array([iou_matrix(boxes[:1], boxes[1:])[0, 0] <= 0.2, True])
        truth.append(boxes)
        visible.append(seen)
    return _sequence("crossing", truth, visible, seed)


def pillar(seed: int) -> MotSequence:
    """One person walks behind a pillar and is unseen for 1.0 s, while another stands nearby."""
    truth, visible = [], []
    for k in range(int(6 * FPS)):
        t = k / FPS
        x = 80 + SPEED * t
        boxes = np.stack([_box(x, 200), _box(300, 330)])
        seen = np.array([not (2.5 <= t < 3.5), True])
        truth.append(boxes)
        visible.append(seen)
    return _sequence("pillar", truth, visible, seed)


def reentry(seed: int) -> MotSequence:
    """A person steps out of the picture at the right edge for 0.8 s and walks back in."""
    truth, visible = [], []
    for k in range(int(6 * FPS)):
        t = k / FPS
        # walks right until x=600 at t=2.5 s, is out of the 640 px picture (x > 640 + w/2) for 0.8 s, returns
        x = 400 + SPEED * t if t < 2.9 else 400 + SPEED * 2.9 - SPEED * (t - 2.9)
        box = _box(x, 200)
        inside = box[0] < 640 - 0.5 * WIDTH
        truth.append(np.stack([box if inside else np.full(4, np.nan)]))
        visible.append(np.array([inside]))
    return _sequence("reentry", truth, visible, seed)


SCENARIOS: dict[str, Callable[[int], MotSequence]] = {
    "crossing": crossing,
    "pillar": pillar,
    "reentry": reentry,
}
TRACKERS: dict[str, Callable[[], OnlineTracker]] = {"default": Tracker, "sort": SortTracker}


def id_switches(scenario: str, tracker: str) -> int:
    total = 0
    for seed in SEEDS:
        sequence = SCENARIOS[scenario](seed)
        total += evaluate(sequence, track_sequence(sequence, TRACKERS[tracker]())).idsw
    return total


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_id_switches_do_not_regress(scenario: str) -> None:
    measured = {name: id_switches(scenario, name) for name in TRACKERS}
    assert measured["default"] <= BASELINE[scenario]["default"], measured
    assert measured["default"] <= measured["sort"], measured
    # SORT is frozen: its count must stay exactly as committed (it validates the generator itself).
    assert measured["sort"] == BASELINE[scenario]["sort"], measured


def test_the_pillar_occlusion_keeps_one_identity_per_person() -> None:
    sequence = pillar(0)
    rows = track_sequence(sequence, Tracker())
    assert evaluate(sequence, rows).idsw == 0
    # Two people, two tracks, and the walker's track spans the occlusion (seen before 2.5 s and after 3.5 s).
    assert len(np.unique(rows[:, 1])) == 2
    walker = rows[rows[:, 1] == rows[0, 1]] if rows[0, 2] < 200 else rows[rows[:, 1] != rows[0, 1]]
    assert walker[:, 0].min() < 25 and walker[:, 0].max() > 36


def test_skipped_detector_frames_do_not_break_tracks() -> None:
    """Detection on every third frame only (the daemon's detector cadence): identities survive crossing."""
    sequence = crossing(1)
    tracker = Tracker()
    start: dict[int, float] = {}
    for frame, detections in sequence.detections():
        t = sequence.frame_time(frame)
        tracks = tracker.update(detections, t) if frame % 3 == 1 else tracker.predict(t)
        confirmed = tracks.confirmed()
        if frame == 10:
            start = {int(i): float(b[0]) for i, b in zip(confirmed.ids, confirmed.xyxy, strict=True)}
    assert len(start) == 2
    end = {int(i): float(b[0]) for i, b in zip(confirmed.ids, confirmed.xyxy, strict=True)}
    assert set(end) == set(start)
    # The one who started on the left (walking right) ends on the right, and vice versa.
    left_at_start = min(start, key=start.__getitem__)
    assert end[left_at_start] == max(end.values())
