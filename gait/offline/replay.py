"""The gait stage run offline over a recording, exactly as the daemon runs it live.

Samples are fed in time order into one ``TrajectoryBuffer`` per track; every ``hop_s`` on a global clock each
track with new samples gets a window analysed, classified and passed to the alert policy; a track not seen for
``track_timeout_s`` is forgotten (its alerts end). Used by ``replay``, ``eval-gait``, ``report`` and the
tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.features import analyze_window
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.gait.trajectory import TrajectoryBuffer
from gaitwatch.gait.types import Alert, Assessment, GaitMetrics


@dataclass(frozen=True, slots=True)
class WindowResult:
    metrics: GaitMetrics
    assessment: Assessment


@dataclass(frozen=True, slots=True)
class OfflineResult:
    windows: tuple[WindowResult, ...]
    alerts: tuple[Alert, ...]


def analyze_recording(
    rec: Recording,
    settings: GaitSettings | None = None,
    classifier: GaitClassifier | None = None,
    policy_settings: AlertPolicySettings | None = None,
    track_timeout_s: float = 2.0,
) -> OfflineResult:
    """Windows (every ``hop_s`` per live track, once it has ``min_duration_s`` of history) and alerts.

    ``track_timeout_s``: a track without samples for this long is dead (its alerts end). Longer keeps alerts
    through short occlusions; shorter ends them sooner after a person leaves.
    """
    settings = settings or GaitSettings()
    classifier = classifier or GaitClassifier()
    policy = AlertPolicy(policy_settings or AlertPolicySettings())
    order = np.argsort(rec.t, kind="stable")
    buffers: dict[int, TrajectoryBuffer] = {}
    first_seen: dict[int, float] = {}
    last_sample: dict[int, float] = {}
    last_analysed: dict[int, float] = {}
    windows: list[WindowResult] = []
    alerts: list[Alert] = []
    if order.shape[0] == 0:
        return OfflineResult((), ())
    next_tick = float(rec.t[order[0]]) + settings.hop_s

    def tick(now: float) -> None:
        for tid in list(buffers):
            if now - last_sample[tid] > track_timeout_s:
                alerts.extend(policy.forget(tid, last_sample[tid]))
                del buffers[tid], first_seen[tid], last_sample[tid]
                last_analysed.pop(tid, None)
                continue
            if now - first_seen[tid] < settings.min_duration_s:
                continue
            if last_analysed.get(tid, -np.inf) >= last_sample[tid]:
                continue  # nothing new since the last window
            win = buffers[tid].window(settings.window_s, now)
            if win is None:
                continue
            last_analysed[tid] = last_sample[tid]
            m = analyze_window(win, settings)
            a = classifier.assess(m)
            windows.append(WindowResult(m, a))
            alerts.extend(policy.update(m, a))

    for i in order:
        t = float(rec.t[i])
        while t >= next_tick:
            tick(next_tick)
            next_tick += settings.hop_s
        tid = int(rec.track_ids[i])
        buf = buffers.get(tid)
        if buf is None:
            buf = buffers[tid] = TrajectoryBuffer(settings.buffer_s, tid)
            first_seen[tid] = t
        if buf.t_last is not None and t <= buf.t_last:
            continue  # duplicate timestamp for this track
        buf.append(t, rec.keypoints[i], rec.world[i])
        last_sample[tid] = t
    tick(next_tick)
    end = float(rec.t[order[-1]])
    for tid in list(buffers):
        alerts.extend(policy.forget(tid, end))
    return OfflineResult(tuple(windows), tuple(alerts))
