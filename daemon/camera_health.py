"""Is a camera online, degraded, offline or finished? Judged from when its frames arrive and get processed.

- offline: no frame for ``stale_after_s`` (since its last frame, or since start-up if it never delivered
  one, so a slow RTSP handshake is not an outage);
- degraded: frames arrive, but the pipeline processes fewer than ``min_processed_fps`` a second (or 80% of
  the camera's own rate, if that is lower) for ``degraded_after_s``: a 4K/8K stream, or more cameras than
  the PC can take. Gait analysis needs >= ~4 samples a second (steps come at up to 2-2.5 Hz), so below it
  the camera still "works" but its gait figures do not, and nobody would notice without this state;
- finished: a file that reached its end (not an outage);
- online: otherwise.

Pure bookkeeping on ``time.monotonic()`` values: the service calls ``frame_processed`` after each frame and
``assess`` from its health loop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from gaitwatch.daemon.settings import CameraSettings

# The processed rate is counted over this many seconds: long enough to smooth the detection cadence (one
# slower frame every 0.5 s), short enough that the degraded_after_s timer starts promptly.
RATE_WINDOW_S: Final = 10.0
# A camera slower than min_processed_fps by its own nature is judged against this share of its own rate.
OWN_RATE_SHARE: Final = 0.8


class CameraState(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class CameraAssessment:
    state: CameraState
    silent_for_s: float  # since the last frame (or since start-up)
    processed_fps: float  # over the last RATE_WINDOW_S


class CameraHealth:
    """One camera's state (see the module docstring). ``settings`` may be replaced on a config reload."""

    def __init__(self, settings: CameraSettings, started_at: float) -> None:
        self.settings = settings
        self._started_at = started_at
        self._processed: deque[float] = deque()
        self._slow_since: float | None = None

    def restart_clock(self, started_at: float) -> None:
        """The camera's reader started now (the silence before it is not an outage)."""
        self._started_at = started_at

    def frame_processed(self, t: float) -> None:
        self._processed.append(t)
        self._prune(t)

    def processed_fps(self, now: float) -> float:
        self._prune(now)
        span = min(RATE_WINDOW_S, now - self._started_at)
        return len(self._processed) / span if span > 0 else 0.0

    def assess(
        self, now: float, last_frame: float | None, finished: bool, camera_fps: float | None
    ) -> CameraAssessment:
        silent_for = now - (last_frame if last_frame is not None else self._started_at)
        fps = self.processed_fps(now)
        if finished:
            self._slow_since = None
            return CameraAssessment(CameraState.FINISHED, silent_for, fps)
        if silent_for >= self.settings.stale_after_s:
            self._slow_since = None
            return CameraAssessment(CameraState.OFFLINE, silent_for, fps)
        needed = self.settings.min_processed_fps
        if camera_fps is not None and camera_fps > 0:
            needed = min(needed, OWN_RATE_SHARE * camera_fps)
        judged = now - self._started_at >= RATE_WINDOW_S  # a rate needs a full window of history
        if judged and fps < needed:
            if self._slow_since is None:
                self._slow_since = now
            if now - self._slow_since >= self.settings.degraded_after_s:
                return CameraAssessment(CameraState.DEGRADED, silent_for, fps)
        else:
            self._slow_since = None
        return CameraAssessment(CameraState.ONLINE, silent_for, fps)

    def _prune(self, now: float) -> None:
        while self._processed and self._processed[0] < now - RATE_WINDOW_S:
            self._processed.popleft()
