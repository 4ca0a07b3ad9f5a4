"""Camera sources: one reader thread per camera, owning its ``cv2.VideoCapture``, handing frames over through
a single-slot mailbox.

Why a thread and a one-frame slot: decoding must never block the event loop, and a live camera must never
queue up stale frames behind a slow consumer. In live mode a new frame overwrites an unconsumed one (counted
as dropped), so the pipeline always works on the newest image. In replay mode (files processed as fast as
possible) the reader waits for the consumer instead, so no frame of a recording is lost.

Timestamps: a live camera's frames carry ``time.monotonic()`` at grab. A file's frames carry its media time
(``start + n / fps``) on the same clock, so gait analysis sees the footage's real timing whether it is played
at its frame rate or replayed faster.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.daemon.backoff import backoff_delays
from gaitwatch.daemon.settings import CameraSettings
from gaitwatch.tracking.types import Frame

log = logging.getLogger(__name__)

# A container or driver reporting no usable rate falls back to this; override it with `fps` in the config.
FALLBACK_FPS = 25.0
# Live cameras keep up to this many decoded frames waiting (see FrameSlot): a jitter buffer of one frame
# interval beyond the frame being processed.
LIVE_BUFFER_FRAMES = 2
# A stream connection that delivered for this long counts as recovered: its failure starts a new outage
# (backoff from reconnect_initial_s, a new warning). A stream that opens and fails again at once (corrupt
# data, a crashing encoder) keeps backing off up to reconnect_max_s instead of reconnecting in a tight loop.
STABLE_CONNECTION_S = 10.0


class SourceKind(StrEnum):
    FILE = "file"
    STREAM = "stream"
    DEVICE = "device"


class SourceError(Exception):
    """A source that can never work as configured (e.g. a video file that does not exist)."""


def classify_source(source: str) -> SourceKind:
    if source.isdigit() or source.startswith("/dev/video"):
        return SourceKind.DEVICE
    if "://" in source:
        return SourceKind.STREAM
    return SourceKind.FILE


class FrameSlot:
    """A small mailbox of frames between a reader thread and its consumer, oldest first.

    ``block_when_full=False`` (live): when ``capacity`` frames are waiting, ``put`` discards the oldest and
    reports it as dropped. ``capacity`` > 1 is a jitter buffer: a frame that takes longer than one frame interval
    (a detection frame, the other core busy for a moment) delays the next frames instead of dropping them, and a
    camera drops frames only when it stays behind. ``block_when_full=True`` (replay): ``put`` waits for room.
    """

    def __init__(self, block_when_full: bool, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError(f"FrameSlot capacity must be >= 1; got {capacity}")
        self._block = block_when_full
        self._frames: collections.deque[Frame] = collections.deque()
        self._capacity = capacity
        self._closed = False
        self._cond = threading.Condition()

    def put(self, frame: Frame) -> bool:
        """Store ``frame``; returns True when an unconsumed frame was discarded (dropped)."""
        with self._cond:
            if self._block:
                while len(self._frames) >= self._capacity and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            dropped = len(self._frames) >= self._capacity
            if dropped:
                self._frames.popleft()
            self._frames.append(frame)
            self._cond.notify_all()
            return dropped

    def get(self, timeout_s: float) -> Frame | None:
        """The oldest waiting frame, waiting up to ``timeout_s``; None on timeout or once closed and empty."""
        with self._cond:
            if not self._frames and not self._closed:
                self._cond.wait(timeout_s)
            frame = self._frames.popleft() if self._frames else None
            self._cond.notify_all()
            return frame

    @property
    def empty(self) -> bool:
        with self._cond:
            return not self._frames

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass(slots=True)
class CameraStats:
    """Counters written by the reader thread only, read by the daemon (plain ints: a torn read is
    harmless)."""

    decoded: int = 0
    dropped: int = 0
    reconnects: int = 0
    connected: bool = False
    last_frame_t: float | None = None  # the newest frame's timestamp (media time for files)
    last_grab_monotonic: float | None = None  # when the newest frame was decoded, on the monotonic clock
    fps: float = 0.0


class FrameSource(Protocol):
    """What the daemon needs from a camera; OpenCV today, PyAV or a GStreamer pipeline tomorrow."""

    @property
    def camera_id(self) -> str: ...

    @property
    def stats(self) -> CameraStats: ...

    @property
    def finished(self) -> bool:
        """True once a non-looping file has been read to its end and every frame was handed over."""
        ...

    def start(self) -> None: ...

    def get(self, timeout_s: float) -> Frame | None: ...

    def stop(self) -> None: ...


class OpenCvCamera:
    """A file, RTSP/HTTP URL or V4L2 device read by a dedicated thread with open/read timeouts and
    reconnects."""

    def __init__(
        self,
        settings: CameraSettings,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._kind = classify_source(settings.source)
        self._clock = clock
        self._rng = rng or random.Random()
        replay = self._kind is SourceKind.FILE and settings.playback == "replay"
        self._slot = FrameSlot(block_when_full=replay, capacity=1 if replay else LIVE_BUFFER_FRAMES)
        self._stop = threading.Event()
        self._eof = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats = CameraStats()
        self._seq = 0
        self._downscale_logged = False

    @property
    def camera_id(self) -> str:
        return self._settings.id

    @property
    def settings(self) -> CameraSettings:
        return self._settings

    @property
    def kind(self) -> SourceKind:
        return self._kind

    @property
    def stats(self) -> CameraStats:
        return self._stats

    @property
    def finished(self) -> bool:
        done = self._eof.is_set() and self._thread is not None and not self._thread.is_alive()
        return done and self._slot.empty

    def check(self) -> None:
        """Fail fast for what can never work: a file that does not exist or that OpenCV cannot decode.
        Streams and devices are not checked here: a camera that is down now may be up in a minute."""
        if self._kind is not SourceKind.FILE:
            return
        path = Path(self._settings.source)
        if not path.is_file():
            raise SourceError(
                f"camera {self._settings.id}: video file {path} does not exist or is not a file; "
                "fix cameras.source in the config"
            )
        capture = self._open()
        try:
            ok = capture.isOpened() and capture.read()[0]
        finally:
            capture.release()
        if not ok:
            raise SourceError(
                f"camera {self._settings.id}: OpenCV cannot decode {path}; is it a video file "
                "(mp4, avi, mkv) and readable by this user?"
            )

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id} already started")
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
        self._thread.start()

    def get(self, timeout_s: float) -> Frame | None:
        return self._slot.get(timeout_s)

    def stop(self, join_timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread is not None:
            self._thread.join(join_timeout_s)

    def _open(self) -> cv2.VideoCapture:
        s = self._settings
        if self._kind is SourceKind.DEVICE:
            device: int | str = int(s.source) if s.source.isdigit() else s.source
            return cv2.VideoCapture(device, cv2.CAP_V4L2)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(s.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(s.read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(s.source, cv2.CAP_FFMPEG, params)

    def _frame_rate(self, capture: cv2.VideoCapture) -> float:
        if self._settings.fps is not None:
            return self._settings.fps
        reported = float(capture.get(cv2.CAP_PROP_FPS))
        return reported if np.isfinite(reported) and 1.0 <= reported <= 240.0 else FALLBACK_FPS

    def _run(self) -> None:
        delays = backoff_delays(self._settings.reconnect_initial_s, self._settings.reconnect_max_s, self._rng)
        media_start: float | None = None  # file sources: clock time of media time 0
        media_frames = 0  # file sources: frames played since media_start, across loops
        failing = False  # an outage is under way: its first failure was logged as a warning
        looped = False  # a looping file is being reopened at its end
        while not self._stop.is_set():
            capture = self._open()
            if not capture.isOpened():
                capture.release()
                self._stats.connected = False
                self._stats.reconnects += 1
                delay = next(delays)
                # One warning per outage; the retries (every backoff period, possibly for hours) at debug.
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "camera=%s event=open_failed retry_in_s=%.1f",
                    self.camera_id,
                    delay,
                )
                failing = True
                self._stop.wait(delay)
                continue
            opened_at = time.monotonic()
            fps = self._frame_rate(capture)
            self._stats.fps = fps
            self._stats.connected = True
            # A looping file reopens at every loop: worth a line only the first time.
            log.log(
                logging.DEBUG if looped else logging.INFO,
                "camera=%s event=opened kind=%s fps=%.2f",
                self.camera_id,
                self._kind,
                fps,
            )
            looped = False
            if media_start is None:
                media_start = self._clock()
            try:
                media_frames, reached_end = self._read_until_failure(capture, fps, media_start, media_frames)
            finally:
                capture.release()
                self._stats.connected = False
            if reached_end and self._kind is SourceKind.FILE and not self._settings.loop:
                log.info("camera=%s event=end_of_file frames=%d", self.camera_id, self._stats.decoded)
                self._eof.set()
                return
            if reached_end and self._kind is SourceKind.FILE:
                looped = True
                continue  # loop: reopen at once, media time keeps running
            if self._stop.is_set():
                break
            if time.monotonic() - opened_at >= STABLE_CONNECTION_S:
                # A connection that worked for a while: this failure starts a new outage.
                delays = backoff_delays(self._settings.reconnect_initial_s, self._settings.reconnect_max_s, self._rng)
                failing = False
            self._stats.reconnects += 1
            delay = next(delays)
            log.log(
                logging.DEBUG if failing else logging.WARNING,
                "camera=%s event=read_failed retry_in_s=%.1f",
                self.camera_id,
                delay,
            )
            failing = True
            self._stop.wait(delay)
        self._eof.set()

    def _fit(self, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Scale a frame down to ``max_frame_side_px`` (here, in the reader thread, so that neither the queue
        nor any later stage ever holds a 4K or 8K image); logged once per camera."""
        limit = self._settings.max_frame_side_px
        height, width = image.shape[:2]
        if max(height, width) <= limit:
            return image
        scale = limit / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if not self._downscale_logged:
            self._downscale_logged = True
            log.info(
                "camera=%s event=downscaling from=%dx%d to=%dx%d (cameras.max_frame_side_px=%d)",
                self.camera_id,
                width,
                height,
                *size,
                limit,
            )
        # INTER_AREA: the right filter for shrinking (no aliasing of fine texture into false HOG edges).
        return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)

    def _read_until_failure(
        self, capture: cv2.VideoCapture, fps: float, media_start: float, media_frames: int
    ) -> tuple[int, bool]:
        """Read frames until stop or failure; returns (media frames so far, whether the read failed)."""
        is_file = self._kind is SourceKind.FILE
        pace = is_file and self._settings.playback == "live"
        while not self._stop.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                return media_frames, True
            if image.ndim == 2:  # some V4L2 drivers hand out grey frames
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            image = self._fit(np.asarray(image, dtype=np.uint8))
            if is_file:
                t = media_start + media_frames / fps
                media_frames += 1
                if pace:
                    wait = t - self._clock()
                    if wait > 0 and self._stop.wait(wait):
                        break
            else:
                t = self._clock()
            frame = Frame(self.camera_id, self._seq, t, np.asarray(image, dtype=np.uint8))
            self._seq += 1
            self._stats.decoded += 1
            self._stats.last_frame_t = t
            self._stats.last_grab_monotonic = time.monotonic()
            if self._slot.put(frame):
                self._stats.dropped += 1
        return media_frames, False
