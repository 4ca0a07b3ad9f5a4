"""Camera sources: frame order, media timestamps, frame-rate override, playback modes, dead sources."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from videogen import numbered_frame, read_index, write_numbered_video

from gaitwatch.daemon.settings import CameraSettings
from gaitwatch.daemon.sources import (
    LIVE_BUFFER_FRAMES,
    FrameSlot,
    OpenCvCamera,
    SourceError,
    SourceKind,
    classify_source,
)
from gaitwatch.tracking.types import Frame


def _frame(seq: int) -> Frame:
    return Frame("c", seq, float(seq), np.zeros((4, 4, 3), dtype=np.uint8))


def _drain(camera: OpenCvCamera, limit_s: float = 30.0) -> list[Frame]:
    frames: list[Frame] = []
    waited = 0.0
    while not camera.finished and waited < limit_s:
        frame = camera.get(0.2)
        if frame is None:
            waited += 0.2
            continue
        frames.append(frame)
    return frames


def test_classify_source() -> None:
    assert classify_source("0") is SourceKind.DEVICE
    assert classify_source("/dev/video2") is SourceKind.DEVICE
    assert classify_source("rtsp://cam/stream") is SourceKind.STREAM
    assert classify_source("http://127.0.0.1:8080/video.mjpg") is SourceKind.STREAM
    assert classify_source("/data/ward.mp4") is SourceKind.FILE


def test_live_slot_keeps_only_the_newest_frame_and_counts_drops() -> None:
    slot = FrameSlot(block_when_full=False)
    assert slot.put(_frame(0)) is False
    assert slot.put(_frame(1)) is True  # frame 0 was never consumed
    got = slot.get(0.1)
    assert got is not None and got.seq == 1
    assert slot.get(0.01) is None


def test_live_jitter_buffer_delivers_oldest_first_and_drops_the_oldest_when_full() -> None:
    slot = FrameSlot(block_when_full=False, capacity=2)
    assert slot.put(_frame(0)) is False
    assert slot.put(_frame(1)) is False  # one frame late: buffered, not dropped
    assert slot.put(_frame(2)) is True  # two frames behind: the oldest goes
    got = [slot.get(0.1), slot.get(0.1)]
    assert [f.seq for f in got if f is not None] == [1, 2]
    assert slot.empty and slot.get(0.01) is None


def test_slot_needs_room_for_a_frame() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        FrameSlot(block_when_full=False, capacity=0)


def test_replay_slot_blocks_the_producer_instead_of_dropping() -> None:
    slot = FrameSlot(block_when_full=True)
    received: list[int] = []

    def produce() -> None:
        for i in range(50):
            assert slot.put(_frame(i)) is False

    producer = threading.Thread(target=produce)
    producer.start()
    while len(received) < 50:
        frame = slot.get(1.0)
        assert frame is not None
        received.append(frame.seq)
    producer.join(5)
    assert received == list(range(50))


def test_replay_delivers_every_frame_in_order_with_overridden_media_time(tmp_path: Path) -> None:
    video = write_numbered_video(tmp_path / "clip.avi", frames=40, fps=10.0)
    camera = OpenCvCamera(CameraSettings(id="c1", source=str(video), playback="replay", fps=7.0))
    camera.check()
    camera.start()
    frames = _drain(camera)
    camera.stop()
    assert [read_index(f.image) for f in frames] == list(range(40))
    assert [f.seq for f in frames] == list(range(40))
    # The container says 10 fps; the override says the footage was captured at 7 fps.
    assert np.allclose(np.diff([f.t for f in frames]), 1 / 7.0)
    assert camera.stats.decoded == 40 and camera.stats.dropped == 0


def test_live_playback_paces_frames_by_media_time_and_drops_when_nobody_reads(tmp_path: Path) -> None:
    video = write_numbered_video(tmp_path / "clip.avi", frames=12, fps=50.0)
    camera = OpenCvCamera(CameraSettings(id="c1", source=str(video), playback="live"))
    camera.start()
    while not camera.finished and camera.stats.decoded < 12:
        threading.Event().wait(0.05)
    camera.stop()
    # Nobody consumed: every frame but the newest LIVE_BUFFER_FRAMES (still waiting, oldest first) was dropped.
    assert camera.stats.decoded == 12
    assert camera.stats.dropped == 12 - LIVE_BUFFER_FRAMES
    waiting = [camera.get(0.1) for _ in range(LIVE_BUFFER_FRAMES)]
    assert [read_index(f.image) for f in waiting if f is not None] == list(range(12 - LIVE_BUFFER_FRAMES, 12))


def test_live_playback_never_hands_out_a_frame_before_its_media_time(tmp_path: Path) -> None:
    video = write_numbered_video(tmp_path / "clip.avi", frames=10, fps=40.0)
    camera = OpenCvCamera(CameraSettings(id="c1", source=str(video), playback="live"))
    camera.start()
    arrivals: list[tuple[float, Frame]] = []
    while len(arrivals) < 10 and not camera.finished:
        frame = camera.get(0.5)
        if frame is not None:
            arrivals.append((time.monotonic(), frame))
    camera.stop()
    assert [read_index(f.image) for _, f in arrivals] == list(range(len(arrivals)))
    assert len(arrivals) >= 8  # a fast consumer may still lose a frame on a loaded machine
    for received_at, frame in arrivals:
        assert received_at >= frame.t - 1e-3  # paced like a camera: never early


def test_looping_file_keeps_media_time_increasing(tmp_path: Path) -> None:
    video = write_numbered_video(tmp_path / "clip.avi", frames=5, fps=10.0)
    camera = OpenCvCamera(CameraSettings(id="c1", source=str(video), playback="replay", loop=True))
    camera.start()
    frames = [camera.get(2.0) for _ in range(12)]
    camera.stop()
    assert all(f is not None for f in frames)
    indices = [read_index(f.image) for f in frames if f is not None]
    assert indices == [i % 5 for i in range(12)]
    times = [f.t for f in frames if f is not None]
    assert np.all(np.diff(times) > 0)


def test_missing_or_undecodable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        OpenCvCamera(CameraSettings(id="c1", source=str(tmp_path / "none.mp4"))).check()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(SourceError, match="cannot decode"):
        OpenCvCamera(CameraSettings(id="c1", source=str(junk))).check()


def test_dead_stream_is_retried_with_backoff_without_raising() -> None:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = CameraSettings(
        id="c1",
        source=f"http://127.0.0.1:{port}/stream.mjpg",
        open_timeout_s=0.5,
        read_timeout_s=0.5,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.1,
    )
    camera = OpenCvCamera(settings)
    camera.check()  # streams are not checked: a camera that is down now may be up later
    camera.start()
    deadline = threading.Event()
    for _ in range(100):
        if camera.stats.reconnects >= 3:
            break
        deadline.wait(0.05)
    camera.stop()
    assert camera.stats.reconnects >= 3
    assert camera.stats.connected is False
    assert camera.get(0.01) is None


def test_oversized_frames_are_scaled_down_in_the_reader(tmp_path: Path) -> None:
    """A 4K camera costs seconds per frame and gigabytes downstream; frames leave the reader at most
    max_frame_side_px on their longer side, with the aspect ratio kept."""
    import cv2

    path = tmp_path / "uhd.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 7.0, (3840, 2160))
    for i in range(3):
        writer.write(cv2.resize(numbered_frame(i), (3840, 2160), interpolation=cv2.INTER_NEAREST))
    writer.release()
    camera = OpenCvCamera(CameraSettings(id="uhd", source=str(path), playback="replay", max_frame_side_px=1280))
    camera.start()
    try:
        frames = _drain(camera)
    finally:
        camera.stop()
    assert [f.image.shape for f in frames] == [(720, 1280, 3)] * 3
    back = [np.asarray(cv2.resize(f.image, (320, 240), interpolation=cv2.INTER_AREA), dtype=np.uint8) for f in frames]
    assert [read_index(b) for b in back] == [0, 1, 2], "the content survives the scaling"
