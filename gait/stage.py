"""The gait stage: each person's keypoint history -> a window every hop -> metrics, assessment -> alert policy.

One object serves the daemon and every offline run: ``CameraPipeline`` feeds it each frame's poses, and
``gaitwatch.gait.offline.replay`` feeds it a recording's samples frame by frame. A figure measured offline is
therefore the daemon's figure by construction, not a sibling's.

Scheduling (the daemon's since the first release): a person's first window is due one full ``window_s`` after
their first pose, then one every ``hop_s`` of pose time, always ending at a frame where they were posed. It is
per person, not on a global clock, so a person's windows never depend on who else is in view. A track the
tracker no longer holds has ended: its history is dropped and its open alerts end at that frame's time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.features import analyze_window
from gaitwatch.gait.floor_stage import FloorStage
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.gait.trajectory import TrajectoryBuffer
from gaitwatch.gait.types import Alert, GaitResult


@dataclass(frozen=True, slots=True)
class GaitOutput:
    """What the stage produced: windows in the order their tracks were fed, then alerts (those of the
    windows first, in the same order, then the end phases of tracks that ended)."""

    windows: tuple[GaitResult, ...] = ()
    alerts: tuple[Alert, ...] = ()


class GaitStage:
    """Per-track trajectory buffers, window scheduling, analysis, classification and the alert policy of
    one camera. Synchronous and deterministic: the same samples in the same order give the same output."""

    def __init__(
        self,
        settings: GaitSettings,
        classifier: GaitClassifier,
        policy: AlertPolicy,
        floor: FloorStage | None = None,
    ) -> None:
        self._settings = settings
        self._classifier = classifier
        self._policy = policy
        # The camera's floor calibration and zones (metres, zone, bed-exit / chair-rise alerts), if it has any.
        self._floor = floor
        self._buffers: dict[int, TrajectoryBuffer] = {}
        # Per track: the end time of its last window (before the first, one window minus one hop after its
        # first pose, so the first window is due once a full window of history exists).
        self._last_window_t: dict[int, float] = {}

    @property
    def settings(self) -> GaitSettings:
        return self._settings

    @property
    def policy_settings(self) -> AlertPolicySettings:
        return self._policy.settings

    @policy_settings.setter
    def policy_settings(self, settings: AlertPolicySettings) -> None:
        """A config reload: new thresholds apply from the next window; open alerts keep their state."""
        self._policy.settings = settings

    @property
    def tracked_people(self) -> int:
        """Tracks with a keypoint history right now."""
        return len(self._buffers)

    def fresh(self, classifier: GaitClassifier | None = None) -> GaitStage:
        """A stage with the same settings, classifier (unless another is given, to compare models), alert-policy
        settings and floor, and no history: what a replay of this stage's input starts from."""
        floor = self._floor.fresh() if self._floor is not None else None
        return GaitStage(self._settings, classifier or self._classifier, AlertPolicy(self._policy.settings), floor)

    def update(
        self,
        t: float,
        track_ids: NDArray[np.int64],
        keypoints: NDArray[np.float32],
        world: NDArray[np.float32],
        alive: Iterable[int],
    ) -> GaitOutput:
        """One frame at ``t``: the poses of ``track_ids`` (``keypoints`` (N, 33, 3) image px + visibility,
        ``world`` (N, 33, 3) metres) and ``alive``, the ids the tracker still holds (posed or not). Tracks
        with a history that are not alive have ended: their alerts end at ``t``.

        A pose not later than its track's previous one (a frame time repeated) is ignored: a buffer only
        ever grows forward in time."""
        s = self._settings
        windows: list[GaitResult] = []
        alerts: list[Alert] = []
        for track_id, kp, w in zip(track_ids, keypoints, world, strict=True):
            tid = int(track_id)
            buffer = self._buffers.get(tid)
            if buffer is None:
                buffer = self._buffers[tid] = TrajectoryBuffer(s.buffer_s, track_id=tid)
                self._last_window_t[tid] = t - s.hop_s + s.window_s
            last = buffer.t_last
            if last is not None and t <= last:
                continue
            buffer.append(t, kp, w)
            if t - self._last_window_t[tid] < s.hop_s:
                continue
            self._last_window_t[tid] = t
            window = buffer.window(s.window_s, t)
            if window is None:
                continue
            metrics = analyze_window(window, s)
            zone_alerts: list[Alert] = []
            if self._floor is not None:
                metrics, zone_alerts = self._floor.window(window, metrics)
            assessment = self._classifier.assess(metrics)
            windows.append(GaitResult(metrics, assessment))
            alerts.extend(self._policy.update(metrics, assessment))
            alerts.extend(zone_alerts)
        held = {int(i) for i in alive}
        for tid in [tid for tid in self._buffers if tid not in held]:
            alerts.extend(self._forget(tid, t))
        return GaitOutput(tuple(windows), tuple(alerts))

    def close(self, t: float) -> tuple[Alert, ...]:
        """The input stops at ``t`` (camera stopped, recording over): every track ends, and its alerts."""
        alerts: list[Alert] = []
        for tid in list(self._buffers):
            alerts.extend(self._forget(tid, t))
        return tuple(alerts)

    def _forget(self, track_id: int, t: float) -> list[Alert]:
        del self._buffers[track_id]
        del self._last_window_t[track_id]
        ended = self._policy.forget(track_id, t)
        return ended + self._floor.forget(track_id, t) if self._floor is not None else ended
