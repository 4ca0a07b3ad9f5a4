"""The demo's annotated video: boxes, ids, skeletons and cadence drawn on a copy of the frame, written as mp4."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gaitwatch.daemon.pipeline import FrameResult
from gaitwatch.gait.types import ActivityState, Assessment, GaitLabel, GaitMetrics, GaitResult
from gaitwatch.pose.keypoints import Landmark
from gaitwatch.pose.types import Poses
from gaitwatch.tools.render import VideoRenderer, annotate
from gaitwatch.tracking.types import Frame, Tracks, TrackState


def _result(seq: int) -> FrameResult:
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    tracks = Tracks(
        np.array([7], dtype=np.int64),
        np.array([[40.0, 10.0, 80.0, 110.0]]),
        np.array([TrackState.CONFIRMED], dtype=np.int8),
        np.array([3.0]),
        np.array([0.0]),
    )
    keypoints = np.zeros((1, 33, 3), dtype=np.float32)
    keypoints[0, Landmark.LEFT_HIP] = (55, 60, 1.0)
    keypoints[0, Landmark.LEFT_KNEE] = (55, 85, 1.0)
    poses = Poses(np.array([7], dtype=np.int64), keypoints, np.zeros((1, 33, 3), np.float32), np.ones(1, np.float32))
    metrics = GaitMetrics(7, 0.0, 8.0, True, 0.9, ActivityState.WALKING, 104.0)
    gait = (GaitResult(metrics, Assessment(7, GaitLabel.NORMAL, 0.1)),)
    return FrameResult(Frame("cam", seq, seq / 7.0, image), True, tracks, poses, gait, (), {})


def test_annotate_draws_on_a_copy() -> None:
    result = _result(0)
    out = annotate(result.frame.image, result, {7: 104.0})
    assert not result.frame.image.any(), "the source frame must not be modified"
    assert out[10, 40:80].any(), "the box's top edge is drawn"
    assert out[60:85, 55].any(), "the thigh bone between visible hip and knee is drawn"


def test_renderer_writes_a_playable_video(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    renderer = VideoRenderer(path, fps=7.0)
    for seq in range(5):
        renderer.add(_result(seq))
    renderer.close()
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 5
