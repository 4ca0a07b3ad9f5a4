"""The per-camera pipeline on real frames: detector cadence in seconds, pose only on confirmed tracks, pose-derived
boxes between detections, keypoints in frame pixels inside the person's box."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.demo import shipped_clip
from gaitwatch.daemon.pipeline import FrameResult
from gaitwatch.daemon.settings import parse_settings
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
