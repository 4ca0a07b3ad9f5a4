"""The gait stage: each person's keypoint history -> a window every hop -> metrics, assessment -> alert policy.

One object serves the daemon and every offline run: ``CameraPipeline`` feeds it each frame's poses, and
``gaitwatch.gait.offline.replay`` feeds it a recording's samples frame by frame. A figure measured offline is
therefore the daemon's figure by construction, not a sibling's.

Scheduling (the daemon's since the first release): a person's first window is due one full ``window_s`` after
their first pose, then one every ``hop_s`` of pose time, always ending at a frame where they were posed. It is
per person, not on a global clock, so a person's windows never depend on who else is in view. A track the
tracker no longer holds has ended: its open alerts end at that frame's time and its history is dropped (kept
only while a later track may still join it, below).

Joined tracks (``GaitSettings.join_max_gap_s`` > 0): the stage analyses one trajectory per person across short
losses. A track the online tracker starts just after another one was lost continues the lost one's gait id and
buffer when their motion agrees both ways (``gaitwatch.tracking.track_joiner``: the fixed-lag output's own test,
decided causally from the lost track's last and the new track's first ``join_velocity_window_s`` of pose boxes).
A window is never delayed by it: until the decision the new track fills its own buffer, far too short for a
window, and on a join that history moves into the lost track's buffer, whose next window is due on the same
schedule as before, at a frame's own time. Windows and alerts carry the gait id (the first online id of the
chain). Falls and the other alerts come out of these windows at the same moment as without joining.
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
from gaitwatch.pose.roi import box_from_keypoints
from gaitwatch.tracking.fixed_lag import FixedLagSettings
from gaitwatch.tracking.track_joiner import TrackJoiner


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
        # Per gait id (the joined track id; without joining, the online id).
        self._buffers: dict[int, TrajectoryBuffer] = {}
        # Per gait id: the end time of its last window (before the first, one window minus one hop after its
        # first pose, so the first window is due once a full window of history exists).
        self._last_window_t: dict[int, float] = {}
        self._joiner = TrackJoiner(
            FixedLagSettings(settings.join_max_gap_s, settings.join_velocity_window_s, settings.join_min_overlap)
        )
        # Gait ids whose tracks the tracker dropped, kept (history, schedule) while a later track may join them;
        # their alerts have ended already.
        self._dormant: set[int] = set()

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
        """People with a keypoint history right now (joined tracks count once; a dropped track kept for a
        possible join does not count)."""
        return len(self._buffers) - len(self._dormant)

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
        held_online = {int(i) for i in alive}
        alerts.extend(self._join(t, track_ids, keypoints, held_online))
        for track_id, kp, w in zip(track_ids, keypoints, world, strict=True):
            gait_id = self._joiner.joined_id(int(track_id))
            if gait_id is None:
                continue  # a track another one took over (the tracker found it again): it feeds no more
            tid = gait_id
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
        held: set[int] = set()
        for online in held_online:
            gait_id = self._joiner.joined_id(online)
            if gait_id is not None:
                held.add(gait_id)
        for tid in [tid for tid in self._buffers if tid not in held]:
            if tid in self._dormant:
                if not self._joiner.may_be_continued(tid, t):
                    self._dormant.discard(tid)
                    del self._buffers[tid], self._last_window_t[tid]
                continue
            alerts.extend(self._end_alerts(tid, t))
            if self._joiner.may_be_continued(tid, t):
                self._dormant.add(tid)
            else:
                del self._buffers[tid], self._last_window_t[tid]
        return GaitOutput(tuple(windows), tuple(alerts))

    def _join(
        self, t: float, track_ids: NDArray[np.int64], keypoints: NDArray[np.float32], held: set[int]
    ) -> list[Alert]:
        """Feed this frame's pose boxes to the joiner; a join moves the new track's history (it has had no
        window: it is younger than ``join_velocity_window_s``) into the gait id it continues."""
        if self._settings.join_max_gap_s == 0.0:
            return []
        boxes = np.full((len(track_ids), 4), np.nan)
        for row, kp in enumerate(keypoints):
            box = box_from_keypoints(kp, self._settings.min_visibility)
            if box is not None:
                boxes[row] = box
        alerts: list[Alert] = []
        for join in self._joiner.update(t, np.asarray(track_ids, dtype=np.int64), boxes, held):
            new = self._buffers.pop(join.online_id, None)
            self._last_window_t.pop(join.online_id, None)
            alerts.extend(self._end_alerts(join.online_id, t))  # none open: it had no window
            target = self._buffers.get(join.joined_id)
            if target is None:
                target = self._buffers[join.joined_id] = TrajectoryBuffer(
                    self._settings.buffer_s, track_id=join.joined_id
                )
                self._last_window_t[join.joined_id] = t - self._settings.hop_s + self._settings.window_s
            self._dormant.discard(join.joined_id)
            if new is not None and len(new) >= 2 and new.t_last is not None:
                moved = new.window(new.max_seconds + 1.0, new.t_last)
                if moved is not None:
                    last = target.t_last
                    for ts, kp, w in zip(moved.t, moved.keypoints, moved.world, strict=True):
                        if last is None or ts > last:
                            target.append(float(ts), kp, w)
        return alerts

    def close(self, t: float) -> tuple[Alert, ...]:
        """The input stops at ``t`` (camera stopped, recording over): every track ends, and its alerts."""
        alerts: list[Alert] = []
        for tid in list(self._buffers):
            alerts.extend(self._forget(tid, t))
        return tuple(alerts)

    def _forget(self, track_id: int, t: float) -> list[Alert]:
        del self._buffers[track_id]
        del self._last_window_t[track_id]
        if track_id in self._dormant:
            self._dormant.discard(track_id)
            return []  # its alerts ended when the tracker dropped it
        return self._end_alerts(track_id, t)

    def _end_alerts(self, track_id: int, t: float) -> list[Alert]:
        ended = self._policy.forget(track_id, t)
        return ended + self._floor.forget(track_id, t) if self._floor is not None else ended
