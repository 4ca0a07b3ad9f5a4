"""Which tracks get a pose crop on this frame: confirmed tracks only, a per-track rate cap, slower polling of
people who are not moving, and an optional per-frame crop budget. Pure and synchronous: the daemon calls it
from its inference thread, one scheduler per camera (track ids are per camera).

    due = scheduler.select(frame.t, tracks)          # boolean mask over tracks' rows
    poses = backend.estimate(image, tracks.ids[due], tracks.xyxy[due])
    scheduler.record_presence(tracks.ids[due], poses.presence >= min_presence)
    scheduler.prune(tracks.ids)

``select`` assumes the selected tracks are posed on this frame and books them as served.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from annotated_types import Interval
from numpy.typing import NDArray

from gaitwatch.tracking.types import Tracks, TrackState


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """Pose scheduling knobs (rates in Hz, speeds in body heights per second).

    ``max_rate_hz``: the most poses per second one moving track gets. Gait content reaches ~6 Hz and swap
    repair needs >= 12 Hz; higher costs CPU per person (about 15-30 ms each) for little gain.
    ``stationary_rate_hz``: the rate for a track that is not moving (sitting, standing, lying). Low saves
    CPU for walkers; too low reacts late when someone stands up (a sit-to-stand takes about 1-2 s).
    ``moving_speed``: box motion (centre speed plus height change, in box heights per second) above which a
    track counts as moving. Walking is about 0.5-0.8 body heights per second; detector jitter on a still
    person about 0.02-0.1. Lower starts full-rate posing sooner; higher spares CPU on fidgeting.
    ``still_speed``: a moving track counts as still again only below this speed (hysteresis). A slow walker's box
    moves at ~0.1-0.2 body heights per second (slower still when heading obliquely towards the camera), around
    ``moving_speed``: without hysteresis their posing flipped between the two rates and the gait stage saw gaps
    of 2 frames at 7 fps, half a step of the slowest walkers, the people gait alerts are for (measured on the demo
    clip: a couple strolling at 65-70 steps/min, read as unsteady). Lower keeps more fidgeting, once-moving
    people at the full rate (CPU); it must stay above a still person's detector jitter.
    ``speed_time_constant_s``: smoothing of that speed. Longer ignores jitter and brief motions but switches
    to full rate later when someone starts walking.
    ``max_crops_per_frame``: at most this many crops per call (0 = no limit): the most overdue tracks first.
    It bounds the inference time per frame when many people are in view.
    ``empty_after``, ``empty_rate_hz``: a track whose last ``empty_after`` crops held nobody (the pose model's
    presence below the caller's threshold: a detector false positive on furniture, a box that lost its person)
    is posed only at ``empty_rate_hz`` until a crop finds a person again. Each empty crop costs as much as a
    person's; lower rates spare more CPU, but a real person whose crop was briefly empty (occluded, half out of
    view) waits up to 1 / empty_rate_hz to be posed at full rate again.
    """

    # Annotated ranges: what an admin may configure (the daemon's config is validated against them, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    max_rate_hz: Annotated[float, Interval(gt=0.0, le=120.0)] = 15.0
    stationary_rate_hz: Annotated[float, Interval(gt=0.0, le=120.0)] = 3.0
    moving_speed: float = 0.15
    still_speed: float = 0.07
    speed_time_constant_s: float = 0.5
    max_crops_per_frame: int = 0
    empty_after: int = 3
    empty_rate_hz: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_rate_hz", "stationary_rate_hz", "speed_time_constant_s", "empty_rate_hz"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"ScheduleSettings.{name} must be positive; got {v}")
        if self.stationary_rate_hz > self.max_rate_hz:
            raise ValueError("ScheduleSettings.stationary_rate_hz must not exceed max_rate_hz")
        if not (math.isfinite(self.moving_speed) and self.moving_speed >= 0.0):
            raise ValueError(f"ScheduleSettings.moving_speed must be >= 0; got {self.moving_speed}")
        if not (math.isfinite(self.still_speed) and 0.0 <= self.still_speed <= self.moving_speed):
            raise ValueError(f"ScheduleSettings.still_speed must be in [0, moving_speed]; got {self.still_speed}")
        if self.empty_after < 1:
            raise ValueError(f"ScheduleSettings.empty_after must be >= 1; got {self.empty_after}")
        if self.max_crops_per_frame < 0:
            raise ValueError(f"ScheduleSettings.max_crops_per_frame must be >= 0; got {self.max_crops_per_frame}")


@dataclass(slots=True)
class _TrackClock:
    last_pose_t: float | None
    last_seen_t: float
    cx: float
    cy: float
    h: float
    # Smoothed velocity of (centre x, centre y, height) in pixels per second. Averaging the velocity vector
    # (not its length) lets detector jitter cancel out while steady motion adds up.
    vx: float = 0.0
    vy: float = 0.0
    vh: float = 0.0
    empty_crops: int = 0  # consecutive crops in which the pose model found nobody
    moving: bool = False

    @property
    def speed(self) -> float:
        """Box speed in box heights per second (centre motion plus change of height)."""
        return (math.hypot(self.vx, self.vy) + abs(self.vh)) / self.h


class PoseScheduler:
    """Per-track pose timing for one camera's tracks."""

    def __init__(self, settings: ScheduleSettings | None = None) -> None:
        self.settings = settings if settings is not None else ScheduleSettings()
        self._tracks: dict[int, _TrackClock] = {}

    def select(self, t: float, tracks: Tracks) -> NDArray[np.bool_]:
        """Mask over ``tracks`` rows that should be posed now (time ``t`` seconds); books them as posed."""
        n = len(tracks)
        due = np.zeros(n, dtype=bool)
        overdue = np.zeros(n, dtype=np.float64)
        s = self.settings
        for i in range(n):
            tid = int(tracks.ids[i])
            clock = self._observe(tid, t, tracks.xyxy[i])
            if int(tracks.state[i]) != TrackState.CONFIRMED:
                continue
            rate = s.max_rate_hz if clock.moving else s.stationary_rate_hz
            if clock.empty_crops >= s.empty_after:
                rate = min(rate, s.empty_rate_hz)
            if clock.last_pose_t is None:
                due[i], overdue[i] = True, math.inf  # never posed: first in line
                continue
            # A small tolerance keeps a 15 Hz cap from skipping every other frame of a 15 fps camera whose
            # timestamps jitter by a millisecond.
            waited = t - clock.last_pose_t
            interval = 1.0 / rate
            if waited >= 0.9 * interval:
                due[i], overdue[i] = True, waited / interval
        if s.max_crops_per_frame and int(due.sum()) > s.max_crops_per_frame:
            order = np.argsort(-overdue, kind="stable")
            keep = [int(j) for j in order if due[j]][: s.max_crops_per_frame]
            due[:] = False
            due[keep] = True
        for tid in tracks.ids[due]:
            self._tracks[int(tid)].last_pose_t = t
        return due

    def record_presence(self, track_ids: NDArray[np.int64], found: NDArray[np.bool_]) -> None:
        """After posing ``track_ids``: which crops held a person. Tracks with repeatedly empty crops slow down."""
        for tid, person in zip(track_ids, found, strict=True):
            clock = self._tracks.get(int(tid))
            if clock is not None:
                clock.empty_crops = 0 if person else clock.empty_crops + 1

    def is_moving(self, track_id: int) -> bool:
        """Whether the track currently counts as moving (False for unknown tracks)."""
        clock = self._tracks.get(int(track_id))
        return clock is not None and clock.moving

    def prune(self, live_track_ids: NDArray[np.int64]) -> None:
        """Forget tracks that are no longer live."""
        live = {int(i) for i in live_track_ids}
        for tid in [k for k in self._tracks if k not in live]:
            del self._tracks[tid]

    def _observe(self, tid: int, t: float, xyxy: NDArray[np.float64]) -> _TrackClock:
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        cx, cy, h = 0.5 * (x1 + x2), 0.5 * (y1 + y2), max(y2 - y1, 1.0)
        clock = self._tracks.get(tid)
        if clock is None:
            clock = self._tracks[tid] = _TrackClock(None, t, cx, cy, h)
            return clock
        dt = t - clock.last_seen_t
        if dt > 0.0:
            # The height term catches someone standing up or sitting down, which barely moves the centre.
            a = 1.0 - math.exp(-dt / self.settings.speed_time_constant_s)
            clock.vx += a * ((cx - clock.cx) / dt - clock.vx)
            clock.vy += a * ((cy - clock.cy) / dt - clock.vy)
            clock.vh += a * ((h - clock.h) / dt - clock.vh)
            clock.cx, clock.cy, clock.h, clock.last_seen_t = cx, cy, h, t
        speed = clock.speed
        if speed >= self.settings.moving_speed:
            clock.moving = True
        elif speed < self.settings.still_speed:
            clock.moving = False
        return clock
