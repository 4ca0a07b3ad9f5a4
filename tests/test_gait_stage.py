"""One gait stage for live and replay: the same frames through the daemon's per-camera pipeline (live: its gait
windows and alerts as they come out of ``process`` and ``close``) and through record -> recording file -> replay
(offline: ``gaitwatch replay``'s path) give identical windows (track, times, every metric, the assessment) and
identical alerts. Plus the stage's own scheduling on generated walkers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from photo_clips import ANNOTATIONS, HEIGHT, SKIER_UPRIGHT, backdrop, compose_turned, cutout

from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.gait.alerts import ABNORMAL_GAIT, FALL, AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.offline.replay import replay
from gaitwatch.gait.offline.synthetic import WalkerParams, generate_walk, sample_walker
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.gait.stage import GaitOutput, GaitStage
from gaitwatch.gait.types import Alert, AlertPhase, GaitResult
from gaitwatch.tools.demo import shipped_clip
from gaitwatch.tools.recorder import PipelineRecorder
from gaitwatch.tracking.types import Frame


def _live_and_replayed(
    frames: Iterator[NDArray[np.uint8]], fps: float, overrides: dict[str, Any], tmp_path: Path
) -> tuple[GaitOutput, GaitOutput, Recording]:
    """The pipeline's own gait output over ``frames`` (closed after the last, as the daemon does at shutdown),
    and the replay of what it recorded, through a file, by a fresh stage with the pipeline's settings."""
    settings = parse_settings({"cameras": [{"id": "c", "source": "clip"}], **overrides})
    pipeline = build_camera_pipeline("c", settings, SharedModels(settings, inference_threads=1))
    recorder = PipelineRecorder()
    windows: list[GaitResult] = []
    alerts: list[Alert] = []
    t = 0.0
    for seq, image in enumerate(frames):
        t = seq / fps
        result = pipeline.process(Frame("c", seq, t, image))
        recorder.add(result)
        windows.extend(result.gait)
        alerts.extend(result.alerts)
    alerts.extend(pipeline.close(t))
    path = tmp_path / "recording.npz"
    recorder.recording({"fps": fps}).save(path)
    recording = Recording.load(path)
    return GaitOutput(tuple(windows), tuple(alerts)), replay(recording, pipeline.gait.fresh()), recording


def _assert_identical(live: GaitOutput, offline: GaitOutput) -> None:
    assert [(w.metrics.track_id, w.metrics.t_end) for w in offline.windows] == [
        (w.metrics.track_id, w.metrics.t_end) for w in live.windows
    ]
    for a, b in zip(live.windows, offline.windows, strict=True):
        assert a == b, (a.metrics.track_id, a.metrics.t_end)  # every metric and feature, bit for bit
    assert offline.alerts == live.alerts


def _clip_frames(count: int) -> Iterator[NDArray[np.uint8]]:
    capture = cv2.VideoCapture(str(shipped_clip()))
    try:
        for _ in range(count):
            ok, image = capture.read()
            assert ok
            yield np.asarray(image, dtype=np.uint8)
    finally:
        capture.release()


@pytest.mark.slow
def test_real_walkers_live_and_replayed_give_identical_windows(tmp_path: Path) -> None:
    # The shipped demo clip (real pedestrians at 7 fps), 16 s: people come, walk and leave.
    live, offline, recording = _live_and_replayed(_clip_frames(112), 7.0, {}, tmp_path)
    assert len(live.windows) >= 10 and any(w.metrics.valid for w in live.windows)
    assert recording.ended_ids.shape[0] >= 1, "a track ended mid-clip: the replay must end it at the same frame"
    _assert_identical(live, offline)


@pytest.mark.slow
@pytest.mark.skipif(not ANNOTATIONS.is_file(), reason=f"needs {ANNOTATIONS}")
def test_a_fall_live_and_replayed_gives_identical_alerts_to_the_frame_the_track_ends(tmp_path: Path) -> None:
    # A person stands, tips over to lying and stays down (a fall alert), then is gone (carried out of view):
    # the tracker drops the track and the alert ends at that frame, live and replayed alike.
    person = cutout(SKIER_UPRIGHT, 0.45 * HEIGHT)
    wall = backdrop()
    fps = 7.0
    feet = (200.0, 0.9 * HEIGHT)
    frames = [compose_turned(wall, person, feet, 3.0 * np.sin(i / 3.0)) for i in range(int(4 * fps))]
    frames += [compose_turned(wall, person, feet, 90.0 * i / int(fps)) for i in range(1, int(fps) + 1)]
    frames += [compose_turned(wall, person, feet, 90.0)] * int(10 * fps)
    frames += [wall] * int(5 * fps)
    live, offline, recording = _live_and_replayed(iter(frames), fps, {"detector": {"kind": "hog+blazepose"}}, tmp_path)
    falls = [(a.phase, a.track_id) for a in live.alerts if a.type == FALL]
    assert falls and falls[0][0] == AlertPhase.START and falls[-1][0] == AlertPhase.END, falls
    ended = dict(zip(recording.ended_ids.tolist(), recording.ended_t.tolist(), strict=True))
    end_alert = [a for a in live.alerts if a.type == FALL][-1]
    assert ended.get(end_alert.track_id) == end_alert.t_observed, "the fall ends when the tracker drops the track"
    _assert_identical(live, offline)


# The stage itself, on generated walkers fed frame by frame.


def _stage(**policy: Any) -> GaitStage:
    return GaitStage(GaitSettings(), GaitClassifier(), AlertPolicy(AlertPolicySettings(**policy)))


def _feed(stage: GaitStage, t: np.ndarray, kp: np.ndarray, world: np.ndarray, tid: int = 3) -> GaitOutput:
    windows: list[GaitResult] = []
    alerts: list[Alert] = []
    ids = np.array([tid], dtype=np.int64)
    for i in range(t.shape[0]):
        out = stage.update(float(t[i]), ids, kp[i : i + 1], world[i : i + 1], [tid])
        windows.extend(out.windows)
        alerts.extend(out.alerts)
    return GaitOutput(tuple(windows), tuple(alerts))


def test_first_window_after_one_full_window_then_one_per_hop_at_posed_frames() -> None:
    walk = generate_walk(WalkerParams(cadence_spm=105.0), fps=10.0, duration_s=14.0, seed=3)
    out = _feed(_stage(), walk.t, walk.keypoints, walk.world)
    ends = np.array([w.metrics.t_end for w in out.windows])
    t0 = float(walk.t[0])
    frame_gap = float(np.diff(walk.t).max())  # the generator drops frames now and then
    assert 0.0 <= ends[0] - (t0 + 8.0) <= frame_gap  # the first frame at which a full window exists
    assert set(ends.tolist()) <= set(walk.t.tolist()), "windows end at frames the person was posed"
    assert np.all(np.diff(ends) >= 1.0) and np.all(np.diff(ends) <= 1.0 + frame_gap)
    assert all(w.metrics.t_start >= e - 8.0 - 1e-9 for w, e in zip(out.windows, ends, strict=True))


def test_a_repeated_frame_time_is_ignored_and_other_tracks_do_not_shift_windows() -> None:
    walk = generate_walk(WalkerParams(cadence_spm=105.0), fps=10.0, duration_s=12.0, seed=4)
    alone = _feed(_stage(), walk.t, walk.keypoints, walk.world)
    stage = _stage()
    # The same person, each sample sent twice, and a second person appearing at 5 s: same windows for track 3.
    ids = np.array([3, 3], dtype=np.int64)
    windows: list[GaitResult] = []
    for i in range(walk.t.shape[0]):
        t = float(walk.t[i])
        kp, w = walk.keypoints[[i, i]], walk.world[[i, i]]
        windows += stage.update(t, ids, kp, w, [3]).windows
        if t >= 5.0:
            windows += stage.update(
                t + 0.01, np.array([8]), walk.keypoints[i : i + 1], walk.world[i : i + 1], [3, 8]
            ).windows
    assert [w for w in windows if w.metrics.track_id == 3] == list(alone.windows)


def test_an_abnormal_walker_alerts_and_the_alert_ends_when_the_track_ends() -> None:
    walk = generate_walk(sample_walker("slow", np.random.default_rng(2)), fps=15.0, duration_s=20.0, seed=2)
    stage = _stage(window_count=4, k_start=3, k_end=1)
    out = _feed(stage, walk.t, walk.keypoints, walk.world)
    starts = [a for a in out.alerts if a.type == ABNORMAL_GAIT and a.phase == AlertPhase.START]
    assert starts and stage.tracked_people == 1
    t_gone = float(walk.t[-1]) + 0.5
    gone = stage.update(
        t_gone, np.zeros(0, np.int64), np.zeros((0, 33, 3), np.float32), np.zeros((0, 33, 3), np.float32), []
    )
    assert [(a.type, a.phase, a.t_observed) for a in gone.alerts] == [(ABNORMAL_GAIT, AlertPhase.END, t_gone)]
    assert stage.tracked_people == 0 and stage.close(t_gone + 1.0) == ()


def test_replay_ends_tracks_at_their_recorded_end_and_closes_at_the_recording_end() -> None:
    walk = generate_walk(sample_walker("slow", np.random.default_rng(2)), fps=15.0, duration_s=20.0, seed=2)
    base = Recording(np.full(walk.t.shape[0], 5, dtype=np.int64), walk.t, walk.keypoints, walk.world, {"fps": 15.0})
    settings = {"window_count": 4, "k_start": 3, "k_end": 1}
    end_of_track = float(walk.t[-1]) + 2.0
    with_end = Recording(
        base.track_ids, base.t, base.keypoints, base.world, {}, np.array([5]), np.array([end_of_track]), 40.0
    )
    closed_at_last = [a for a in replay(base, _stage(**settings)).alerts if a.phase == AlertPhase.END]
    ended = [a for a in replay(with_end, _stage(**settings)).alerts if a.phase == AlertPhase.END]
    assert [a.t_observed for a in closed_at_last] == [float(walk.t[-1])]
    assert [a.t_observed for a in ended] == [end_of_track]
