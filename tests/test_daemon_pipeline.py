"""The per-camera pipeline on real frames: detector cadence in seconds (whole frames and search regions), pose only
on confirmed tracks, pose-derived boxes between detections, keypoints in frame pixels inside the person's box."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.pipeline import FrameResult, own_motion_regions
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.pose.recovery import RecoverySettings, recovery_candidates
from gaitwatch.tools.demo import shipped_clip
from gaitwatch.tracking.types import Frame, TrackState


def _run(frames: int, fps: float, overrides: dict[str, object]) -> list[FrameResult]:
    settings = parse_settings({"cameras": [{"id": "c", "source": "clip.mp4"}], **overrides})
    pipeline = build_camera_pipeline("c", settings, SharedModels(settings, inference_threads=1))
    capture = cv2.VideoCapture(str(shipped_clip()))
    results = []
    for seq in range(frames):
        ok, image = capture.read()
        assert ok
        results.append(pipeline.process(Frame("c", seq, seq / fps, np.asarray(image, dtype=np.uint8))))
    return results


@pytest.fixture(scope="module")
def results() -> list[FrameResult]:
    return _run(frames=40, fps=7.0, overrides={"detector": {"interval_s": 0.5}})


def test_detector_runs_every_interval_in_seconds(results: list[FrameResult]) -> None:
    detected = [r.frame.seq for r in results if r.detected]
    # At 7 fps an interval of 0.5 s is every 4th frame (3 frames = 0.43 s is not yet due).
    assert detected == list(range(0, 40, 4))
    # Same interval at 14 fps: every 7th frame. The config says seconds, so it survives a frame-rate change.
    faster = _run(frames=15, fps=14.0, overrides={"detector": {"interval_s": 0.5}})
    assert [r.frame.seq for r in faster if r.detected] == [0, 7, 14]


def test_whole_frame_scans_come_every_full_frame_interval_and_regions_between(results: list[FrameResult]) -> None:
    # Detections at 0, 4/7, 8/7, ... s; full scans at 0 s and then at the first detection >= 2 s later (16/7 s),
    # (40 frames hold 5.6 s), unless the regions would cover most of the frame (then the scan is whole too).
    whole = [r.frame.seq for r in results if r.detected and r.whole_frame]
    regions = [r.frame.seq for r in results if r.detected and not r.whole_frame]
    assert whole[:2] == [0, 16] and {32} <= set(whole), whole
    assert len(regions) >= 5, regions
    assert not any(r.whole_frame for r in results if not r.detected)


def test_pose_runs_only_on_confirmed_tracks_and_lands_on_them(results: list[FrameResult]) -> None:
    posed = 0
    for r in results:
        confirmed = set(r.tracks.ids[r.tracks.state == TrackState.CONFIRMED].tolist())
        assert set(r.poses.track_ids.tolist()) <= confirmed
        for tid, keypoints in zip(r.poses.track_ids, r.poses.keypoints, strict=True):
            box = r.tracks.xyxy[r.tracks.ids == tid][0]
            hips = keypoints[[23, 24], :2].mean(axis=0)
            height = box[3] - box[1]
            assert box[0] - 0.3 * height <= hips[0] <= box[2] + 0.3 * height
            assert box[1] <= hips[1] <= box[3] + 0.3 * height
            posed += 1
    assert posed >= 20, "people walk through the first seconds of the clip"


def test_tracks_keep_following_people_between_detections(results: list[FrameResult]) -> None:
    # Between detector frames boxes come from pose, so confirmed tracks stay fresh (recently observed).
    between = [r for r in results if not r.detected and len(r.poses)]
    assert between
    for r in between:
        fresh = r.tracks.since_update_s[np.isin(r.tracks.ids, r.poses.track_ids)]
        assert np.all(fresh < 1e-6), "a posed track was corrected by its own keypoint box in this frame"


def test_a_known_walkers_own_motion_gets_no_recovery_crop_and_a_newcomer_still_does() -> None:
    # A walker 100 px tall moved 30 px right since the last detection: the image changed where they were and
    # where they are. A newcomer walked into view elsewhere.
    before = np.array([[100.0, 100.0, 140.0, 200.0]])
    now = np.array([[130.0, 100.0, 170.0, 200.0]])
    newcomer = np.array([[400.0, 100.0, 440.0, 200.0]])
    motion = np.concatenate([before, now, newcomer])
    settings = RecoverySettings(crops_per_frame=2, min_height=0.1)
    # Their own box alone leaves the walker's grown moving region unexplained: a crop would pose them again.
    assert len(recovery_candidates(motion, now, 480, settings)) == 2
    explained = np.concatenate([now, own_motion_regions(before, now, settings.join_margin)])
    chosen = recovery_candidates(motion, explained, 480, settings)
    assert chosen.shape == (1, 4)
    assert chosen[0, 0] <= 400.0 <= 440.0 <= chosen[0, 2]


def test_own_motion_regions_span_both_boxes_grown_by_the_margin() -> None:
    regions = own_motion_regions(np.array([[10.0, 20.0, 30.0, 60.0]]), np.array([[20.0, 10.0, 40.0, 50.0]]), 0.1)
    np.testing.assert_allclose(regions, [[5.0, 5.0, 45.0, 65.0]])
