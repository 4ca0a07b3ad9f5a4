"""Motion-verified recovery: moving regions nobody explains get one pose crop each; a crop holding a person
becomes a detection. Candidate selection on boxes, verification with the real pose model on real photo pixels,
and the whole pipeline finding a close person that HOG misses."""

from __future__ import annotations

import numpy as np
import pytest
from photo_clips import ANNOTATIONS, SKIER_UPRIGHT, backdrop, compose, cutout, run

from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.pose.blazepose import BlazePoseBackend
from gaitwatch.pose.recovery import RecoverySettings, duplicate_poses, recovered_detections, recovery_candidates
from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.hog import HogPersonDetector

needs_photos = pytest.mark.skipif(not ANNOTATIONS.is_file(), reason=f"needs {ANNOTATIONS}")
NOBODY = np.zeros((0, 4), dtype=np.float64)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="crops_per_frame"):
        RecoverySettings(crops_per_frame=-1)
    with pytest.raises(ValueError, match="min_height"):
        RecoverySettings(min_height=1.5)


def test_the_largest_unexplained_regions_get_the_budget() -> None:
    motion = np.array(
        [[10, 10, 60, 110], [200, 10, 300, 210], [400, 10, 420, 30], [500, 10, 560, 150]], dtype=np.float64
    )
    settings = RecoverySettings(crops_per_frame=2, min_height=0.1, join_margin=0.0)
    chosen = recovery_candidates(motion, NOBODY, 480, settings)
    # The 20-pixel blob is below 10% of 480; of the other three the two largest come first, largest first.
    np.testing.assert_array_equal(chosen, motion[[1, 3]])
    assert recovery_candidates(motion, NOBODY, 480, RecoverySettings(crops_per_frame=0)).shape == (0, 4)


def test_regions_a_known_person_covers_are_explained() -> None:
    motion = np.array([[10, 10, 60, 110], [200, 10, 300, 210]], dtype=np.float64)
    known = np.array([[195, 0, 305, 220]], dtype=np.float64)  # a detection or posed track on the second blob
    chosen = recovery_candidates(motion, known, 480, RecoverySettings(join_margin=0.0, min_height=0.1))
    np.testing.assert_array_equal(chosen, motion[[0]])


def test_blobs_of_one_body_are_joined_into_one_crop() -> None:
    # Head, arms and legs that changed while the trunk stayed still: separate blobs a few pixels apart.
    motion = np.array([[100, 50, 130, 80], [90, 85, 140, 150], [95, 155, 135, 240]], dtype=np.float64)
    chosen = recovery_candidates(motion, NOBODY, 480, RecoverySettings(min_height=0.1))
    assert chosen.shape == (1, 4)
    assert chosen[0, 1] <= 50 and chosen[0, 3] >= 240


def _standing(x: float, height: float, visible: int = 33) -> np.ndarray:
    """33 landmarks of a person ``height`` px tall at ``x``, the last ``33 - visible`` unseen."""
    kp = np.zeros((33, 3), dtype=np.float32)
    kp[:, 0] = x + np.linspace(-0.1, 0.1, 33) * height
    kp[:, 1] = np.linspace(0.0, height, 33)
    kp[:visible, 2] = 0.9
    return kp


def test_two_tracks_posing_one_person_keep_the_pose_that_sees_most() -> None:
    whole, upper, other = _standing(100, 200), _standing(102, 200, visible=20), _standing(300, 200)
    upper[:, :2] += 3.0  # the same person, a few pixels apart (another crop)
    # Row 1 is the older track on the partial box: the younger whole-body pose is kept instead.
    duplicate = duplicate_poses(np.stack([whole, upper, other]), np.array([1.0, 5.0, 2.0]))
    assert duplicate.tolist() == [False, True, False]
    # Equal views: the older track keeps the person.
    assert duplicate_poses(np.stack([whole, whole + 1.0]), np.array([1.0, 5.0])).tolist() == [True, False]


def test_recovery_is_counted_per_camera() -> None:
    metrics = DaemonMetrics(version="t", cameras=["bay1"])
    metrics.recovery("bay1", crops=3, people=1)
    metrics.recovery("bay1", crops=2, people=0)
    sample = metrics.registry.get_sample_value
    assert sample("gaitwatch_recovery_crops_total", {"camera": "bay1"}) == 5.0
    assert sample("gaitwatch_recovery_people_total", {"camera": "bay1"}) == 1.0
    with pytest.raises(ValueError, match="camera"):
        metrics.recovery("nobody", crops=1, people=0)


@needs_photos
def test_a_crop_of_a_person_becomes_a_detection_and_a_crop_of_the_wall_does_not() -> None:
    person = cutout(SKIER_UPRIGHT, 300.0)
    frame = compose(backdrop(), person, 40.0, 20.0)
    truth = person.box + np.array([40.0, 20.0, 40.0, 20.0])
    wall = np.array([420.0, 60.0, 620.0, 360.0])  # nothing but the backdrop there
    regions = np.stack([truth + np.array([-30.0, -10.0, 30.0, 10.0]), wall])  # a loose motion region as well
    poses = BlazePoseBackend().estimate(frame, np.array([-1, -2]), regions)
    found = recovered_detections(poses, 0.5, 0.5, NOBODY)
    assert len(found) == 1, f"presence {poses.presence}"
    assert float(iou_matrix(found.xyxy, truth[None, :])[0, 0]) >= 0.5
    assert 0.5 <= float(found.score[0]) <= 1.0
    # The same person already known (a detection on them): no duplicate.
    assert len(recovered_detections(poses, 0.5, 0.5, truth[None, :])) == 0


@needs_photos
@pytest.mark.slow
def test_pipeline_recovers_a_close_walker_that_hog_misses() -> None:
    person = cutout(SKIER_UPRIGHT, 0.6 * 480)  # close to the camera: 60% of the frame's height
    wall = backdrop()
    fps, steps = 7.0, 28

    def frames() -> list[np.ndarray]:
        return [compose(wall, person, 10.0 + 12.0 * i, 60.0) for i in range(steps)]

    truth = [person.box + np.array([10.0 + 12.0 * i, 60.0] * 2) for i in range(steps)]
    clip = frames()
    # The premise: HOG finds no one in these frames.
    hog = HogPersonDetector()
    assert all(
        len(d) == 0 or float(iou_matrix(d.xyxy, t[None, :]).max()) < 0.5
        for d, t in ((hog.detect(f), t) for f, t in zip(clip[::7], truth[::7], strict=True))
    )
    without = run(iter(clip), fps, {"detector": {"kind": "hog", "recovery_crops_per_frame": 0}})
    assert all(len(r.people_ids) == 0 for r in without)
    assert sum(r.recovery_crops for r in without) == 0

    results = run(iter(clip), fps, {"detector": {"kind": "hog", "recovery_crops_per_frame": 2}})
    assert sum(r.recovered for r in results) >= 1
    assert sum(r.recovery_crops for r in results) <= 2 * sum(r.detected for r in results)
    last = results[-7:]  # the final second
    for r, t in zip(last, truth[-7:], strict=True):
        assert len(r.people_ids) == 1, f"frame {r.frame.seq}: people {r.people_ids}"
        box = r.tracks.xyxy[r.tracks.ids == r.people_ids[0]]
        assert float(iou_matrix(box, t[None, :])[0, 0]) >= 0.5
    assert len({int(r.people_ids[0]) for r in last}) == 1, "one track for the one person"
    assert sum(len(r.poses) for r in last) >= 5, "the recovered person is posed"
