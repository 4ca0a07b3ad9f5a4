"""Camera states from frame timing: online, degraded (frames arrive, too few processed), offline, finished."""

from __future__ import annotations

from gaitwatch.daemon.camera_health import RATE_WINDOW_S, CameraHealth, CameraState
from gaitwatch.daemon.settings import CameraSettings


def _camera(**kw: float) -> CameraSettings:
    return CameraSettings(id="bay1", source="rtsp://192.0.2.1/s", **kw)


def _run(health: CameraHealth, start: float, seconds: float, processed_fps: float, camera_fps: float) -> CameraState:
    """Frames arrive at camera_fps, the pipeline finishes processed_fps of them; returns the last state."""
    state = CameraState.ONLINE
    t, step = start, 1.0 / camera_fps
    next_processed = start
    while t < start + seconds:
        if t >= next_processed:
            health.frame_processed(t)
            next_processed += 1.0 / processed_fps
        state = health.assess(t, t, finished=False, camera_fps=camera_fps).state
        t += step
    return state


def test_a_camera_that_keeps_up_is_online() -> None:
    health = CameraHealth(_camera(), started_at=0.0)
    assert _run(health, 0.0, 120.0, processed_fps=7.0, camera_fps=7.0) is CameraState.ONLINE


def test_processing_too_few_frames_for_gait_is_degraded_after_degraded_after_s_and_recovers() -> None:
    health = CameraHealth(_camera(min_processed_fps=4.0, degraded_after_s=30.0), started_at=0.0)
    # 1 frame a second of a 25 fps camera (a 4K stream on a 2-core PC): not yet degraded within 30 s ...
    assert _run(health, 0.0, RATE_WINDOW_S + 25.0, processed_fps=1.0, camera_fps=25.0) is CameraState.ONLINE
    # ... but after it.
    assert _run(health, RATE_WINDOW_S + 25.0, 10.0, processed_fps=1.0, camera_fps=25.0) is CameraState.DEGRADED
    # Back to 10 processed frames a second: online again once the rate window has filled.
    assert _run(health, RATE_WINDOW_S + 35.0, RATE_WINDOW_S + 1, processed_fps=10.0, camera_fps=25.0) is (
        CameraState.ONLINE
    )


def test_a_camera_slow_by_nature_is_judged_against_its_own_rate() -> None:
    health = CameraHealth(_camera(min_processed_fps=4.0, degraded_after_s=5.0), started_at=0.0)
    # A 3 fps camera whose every frame is processed is not degraded (needs 0.8 x 3 = 2.4 fps) ...
    assert _run(health, 0.0, 60.0, processed_fps=3.0, camera_fps=3.0) is CameraState.ONLINE
    # ... one processing 1 of its 3 frames a second is.
    assert _run(health, 60.0, 30.0, processed_fps=1.0, camera_fps=3.0) is CameraState.DEGRADED


def test_silence_is_offline_and_an_ended_file_is_finished() -> None:
    health = CameraHealth(_camera(stale_after_s=20.0), started_at=100.0)
    assert health.assess(110.0, None, finished=False, camera_fps=None).state is CameraState.ONLINE
    judged = health.assess(121.0, None, finished=False, camera_fps=None)
    assert judged.state is CameraState.OFFLINE and judged.silent_for_s == 21.0
    assert health.assess(200.0, 150.0, finished=True, camera_fps=7.0).state is CameraState.FINISHED
