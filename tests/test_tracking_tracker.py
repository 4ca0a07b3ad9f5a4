"""Specification of the tracker: lifecycle in seconds, predict/correct semantics, identities when crossing."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.tracker import Tracker, TrackerSettings
from gaitwatch.tracking.types import Detections, Tracks, TrackState

BOX = np.array([[100.0, 50.0, 140.0, 150.0]])


def dets(*boxes: np.ndarray, score: float = 0.9) -> Detections:
    xyxy = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return Detections(xyxy, np.full(len(xyxy), score))


def only(tracks: Tracks) -> tuple[int, TrackState]:
    assert len(tracks) == 1
    return int(tracks.ids[0]), TrackState(int(tracks.state[0]))


def test_birth_after_min_hits_then_coasting_then_death_after_max_age_seconds() -> None:
    tracker = Tracker(TrackerSettings(min_hits=3, max_age_s=1.0))
    assert only(tracker.update(dets(BOX), 0.0)) == (1, TrackState.TENTATIVE)
    assert only(tracker.update(dets(BOX), 0.1)) == (1, TrackState.TENTATIVE)
    out = tracker.update(dets(BOX), 0.2)
    assert only(out) == (1, TrackState.CONFIRMED)
    assert len(out.confirmed()) == 1
    assert out.age_s[0] == pytest.approx(0.2) and out.since_update_s[0] == 0.0
    out = tracker.update(Detections.empty(), 0.3)
    assert only(out) == (1, TrackState.LOST)
    assert out.since_update_s[0] == pytest.approx(0.1)
    assert len(out.confirmed()) == 0
    for k in range(4, 13):  # 0.4 .. 1.2 s: at most 1.0 s since the last observation at 0.2 s
        out = tracker.update(Detections.empty(), k / 10)
        assert only(out) == (1, TrackState.LOST)
    assert out.since_update_s[0] == pytest.approx(1.0)
    assert len(tracker.update(Detections.empty(), 1.3)) == 0


def test_death_by_age_with_skipped_and_irregular_frames() -> None:
    tracker = Tracker(TrackerSettings(min_hits=1, max_age_s=1.0))
    assert only(tracker.update(dets(BOX), -0.1)) == (1, TrackState.CONFIRMED)
    assert only(tracker.update(dets(BOX), 0.0)) == (1, TrackState.CONFIRMED)
    assert only(tracker.update(Detections.empty(), 0.7)) == (1, TrackState.LOST)
    assert len(tracker.predict(0.95)) == 1
    assert len(tracker.predict(1.0)) == 1
    assert len(tracker.update(Detections.empty(), 1.37)) == 0


def test_a_track_seen_once_is_reported_at_once_with_min_hits_1_but_dropped_when_the_next_detector_frame_misses_it() -> (
    None
):
    tracker = Tracker(TrackerSettings(min_hits=1, max_age_s=1.0))
    assert only(tracker.update(dets(BOX), 0.0)) == (1, TrackState.CONFIRMED)
    assert only(tracker.predict(0.1)) == (1, TrackState.CONFIRMED)  # no detector ran: not a miss
    assert len(tracker.update(Detections.empty(), 0.2)) == 0
    # Seen twice, a track outlives a miss as LOST.
    tracker.update(dets(BOX), 0.3)
    tracker.update(dets(BOX), 0.4)
    assert only(tracker.update(Detections.empty(), 0.5)) == (2, TrackState.LOST)


def test_death_by_age_applies_in_predict_only_runs() -> None:
    tracker = Tracker(TrackerSettings(min_hits=1, max_age_s=0.5))
    tracker.update(dets(BOX), 0.0)
    assert only(tracker.predict(0.5)) == (1, TrackState.CONFIRMED)  # no detector ran: not a miss
    assert len(tracker.predict(0.51)) == 0


def test_unmatched_tentative_track_dies_at_once_and_ids_are_never_reused() -> None:
    tracker = Tracker(TrackerSettings(min_hits=3, max_age_s=5.0))
    tracker.update(dets(BOX), 0.0)
    tracker.update(dets(BOX), 0.1)
    assert len(tracker.update(Detections.empty(), 0.2)) == 0
    assert only(tracker.update(dets(BOX), 0.3)) == (2, TrackState.TENTATIVE)


def test_tentative_track_survives_frames_without_detection() -> None:
    tracker = Tracker(TrackerSettings(min_hits=2, max_age_s=1.0))
    tracker.update(dets(BOX), 0.0)
    assert only(tracker.predict(0.1)) == (1, TrackState.TENTATIVE)
    assert only(tracker.update(dets(BOX), 0.2)) == (1, TrackState.CONFIRMED)


def test_lost_track_is_recovered_with_its_id() -> None:
    tracker = Tracker(TrackerSettings(min_hits=1, max_age_s=1.0))
    tracker.update(dets(BOX), -0.1)
    tracker.update(dets(BOX), 0.0)
    tracker.update(Detections.empty(), 0.1)
    tracker.update(Detections.empty(), 0.2)
    assert only(tracker.update(dets(BOX), 0.3)) == (1, TrackState.CONFIRMED)


def test_doubtful_detections_keep_and_recover_tracks_but_never_start_or_confirm_one() -> None:
    settings = TrackerSettings(min_hits=2, max_age_s=1.0, min_score=0.1, high_score=0.6, new_track_score=0.9)
    tracker = Tracker(settings)
    assert len(tracker.update(dets(BOX, score=0.4), 0.0)) == 0  # a doubtful box alone starts nothing
    tracker.update(dets(BOX), 0.1)
    assert len(tracker.update(dets(BOX, score=0.4), 0.2)) == 0  # no hit for a tentative track: a miss
    tracker = Tracker(settings)
    tracker.update(dets(BOX), 0.0)
    assert only(tracker.update(dets(BOX), 0.1)) == (1, TrackState.CONFIRMED)
    assert only(tracker.update(dets(BOX, score=0.4), 0.2)) == (1, TrackState.CONFIRMED)  # kept followed
    assert only(tracker.update(Detections.empty(), 0.3)) == (1, TrackState.LOST)
    # A person coming out from behind someone is often first seen as a doubtful box: it recovers the lost id.
    out = tracker.update(dets(BOX, score=0.4), 0.4)
    assert only(out) == (1, TrackState.CONFIRMED) and out.since_update_s[0] == 0.0
    # ... but only where the track is predicted to be (the second round's stricter gate).
    tracker.update(Detections.empty(), 0.5)
    assert only(tracker.update(dets(BOX + np.array([[25.0, 0.0, 25.0, 0.0]]), score=0.4), 0.6)) == (
        1,
        TrackState.LOST,
    )


def test_low_score_detections_are_ignored() -> None:
    tracker = Tracker(TrackerSettings(min_hits=1, min_score=0.5))
    assert len(tracker.update(dets(BOX, score=0.4), 0.0)) == 0


def test_correct_is_a_hit_for_known_ids_and_ignores_unknown_ones() -> None:
    tracker = Tracker(TrackerSettings(min_hits=3, max_age_s=1.0))
    tracker.update(dets(BOX), 0.0)
    shifted = BOX + np.array([[4.0, 0.0, 4.0, 0.0]])
    out = tracker.correct(np.array([1, 99]), np.vstack([shifted, BOX]), 0.1)
    assert only(out) == (1, TrackState.TENTATIVE)
    assert out.since_update_s[0] == 0.0
    assert 100.0 < out.xyxy[0, 0] <= 104.0  # pulled towards the observation
    out = tracker.correct(np.array([1]), shifted, 0.2)
    assert only(out) == (1, TrackState.CONFIRMED)


def test_correct_revives_a_lost_track_and_predict_then_correct_at_same_time_is_consistent() -> None:
    tracker = Tracker(TrackerSettings(min_hits=1, max_age_s=1.0))
    tracker.update(dets(BOX), -0.1)
    tracker.update(dets(BOX), 0.0)
    tracker.update(Detections.empty(), 0.1)
    predicted = tracker.predict(0.2)
    assert only(predicted) == (1, TrackState.LOST)
    out = tracker.correct(predicted.ids, predicted.xyxy, 0.2)  # same instant: no second prediction
    assert only(out) == (1, TrackState.CONFIRMED)
    np.testing.assert_allclose(out.xyxy, predicted.xyxy, atol=1e-6)


def test_predict_coasts_along_the_learned_velocity() -> None:
    tracker = Tracker(TrackerSettings(min_hits=1, max_age_s=2.0))
    for k in range(20):  # 60 px/s to the right at 10 Hz
        out = tracker.update(dets(BOX + np.array([[6.0 * k, 0, 6.0 * k, 0]])), k / 10)
    x_last = out.xyxy[0, 0]
    coasted = tracker.predict(1.9 + 0.5)
    assert coasted.xyxy[0, 0] - x_last == pytest.approx(30.0, abs=3.0)


def test_time_must_not_go_backwards_and_correct_checks_shapes() -> None:
    tracker = Tracker()
    tracker.update(dets(BOX), 1.0)
    with pytest.raises(ValueError, match="backwards"):
        tracker.predict(0.5)
    with pytest.raises(ValueError, match="correct"):
        tracker.correct(np.array([1, 2]), BOX, 1.1)


def test_ids_are_per_instance() -> None:
    a, b = Tracker(TrackerSettings(min_hits=1)), Tracker(TrackerSettings(min_hits=1))
    a.update(dets(BOX), 0.0)
    a.update(dets(BOX, BOX + 300.0), 0.1)
    assert only(b.update(dets(BOX), 0.0))[0] == 1


def crossing(fps: float, hide_rear: bool, seed: int) -> tuple[list[float], list[Detections], list[np.ndarray]]:
    """Two people 100 px tall walk towards each other along nearly the same line and cross at t ~ 3 s.

    Returns frame times, detections (with 3 % box jitter) and the true boxes (2, 4) of each frame.
    If ``hide_rear``, the detector misses the person behind while the two boxes overlap (IoU > 0.2).
    """
    rng = np.random.default_rng(seed)
    times, frames, truth = [], [], []
    for k in range(int(6 * fps)):
        t = k / fps
        x = np.array([100.0 + 80.0 * t, 580.0 - 80.0 * t])  # 0.8 body heights per second each
        y = np.array([200.0, 210.0])
        boxes = np.stack([x - 20, y - 50, x + 20, y + 50], axis=1)
        keep = np.array([True, True])
        if hide_rear and iou_matrix(boxes[:1], boxes[1:])[0, 0] > 0.2:
            keep[0] = False  # person 0 walks behind person 1
        noisy = boxes + rng.normal(0.0, 3.0, size=boxes.shape)
        times.append(t)
        frames.append(Detections(noisy[keep], np.full(int(keep.sum()), 0.9)))
        truth.append(boxes)
    return times, frames, truth


@pytest.mark.parametrize("hide_rear", [False, True])
@pytest.mark.parametrize("fps", [10.0, 25.0])
def test_two_people_crossing_keep_their_identities(hide_rear: bool, fps: float) -> None:
    for seed in range(3):
        times, frames, truth = crossing(fps, hide_rear, seed)
        tracker = Tracker(TrackerSettings(min_hits=3, max_age_s=1.0))
        ids_of: dict[int, set[int]] = {0: set(), 1: set()}
        for t, frame, boxes in zip(times, frames, truth, strict=True):
            out = tracker.update(frame, t).confirmed()
            if iou_matrix(boxes[:1], boxes[1:])[0, 0] > 0.0:
                continue  # while they overlap, who is who is judged by the identities before and after
            overlap = iou_matrix(boxes, out.xyxy)
            for person in (0, 1):
                best = int(np.argmax(overlap[person])) if len(out) else -1
                if best >= 0 and overlap[person, best] > 0.5:
                    ids_of[person].add(int(out.ids[best]))
        assert ids_of == {0: {1}, 1: {2}}, f"fps={fps} hide_rear={hide_rear} seed={seed}: {ids_of}"
