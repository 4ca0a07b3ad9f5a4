"""A recording replayed through the daemon's own gait stage (``gaitwatch.gait.stage.GaitStage``).

The samples are fed frame by frame in time order (a frame's samples in the order the pipeline posed them), with
the tracks the tracker still held, and the stage is closed when the recording stops: the stage sees what it saw
live, so a recording of the pipeline replays to the same windows and alerts (``tests/test_gait_stage.py``).
Used by ``replay``, ``report``, ``eval-gait``, ``train-gait`` and the tests.
"""

from __future__ import annotations

import numpy as np

from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.recording import Recording
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.gait.stage import GaitOutput, GaitStage
from gaitwatch.gait.types import Alert, GaitResult


def replay(rec: Recording, stage: GaitStage) -> GaitOutput:
    """Feed ``rec`` into ``stage`` (a fresh one: see ``GaitStage.fresh``) and close it at the recording's end.

    A recorded track is held by the tracker from its first sample until its ``ended_t``; recordings that do not
    say (generated ones, version 1 files) hold every track to the end."""
    order = np.argsort(rec.t, kind="stable")
    t_sorted = rec.t[order]
    end_order = np.argsort(rec.ended_t, kind="stable")
    ended_t = rec.ended_t[end_order]
    ended_ids = rec.ended_ids[end_order]
    # Every frame time the stage was called at live and that the recording knows of: frames with poses, and
    # frames at which a recorded track ended (possibly with nobody posed).
    times = np.unique(np.concatenate([rec.t, rec.ended_t]))
    held: set[int] = set()
    windows: list[GaitResult] = []
    alerts: list[Alert] = []
    for t in times:
        lo, hi = np.searchsorted(t_sorted, t, side="left"), np.searchsorted(t_sorted, t, side="right")
        e_lo, e_hi = np.searchsorted(ended_t, t, side="left"), np.searchsorted(ended_t, t, side="right")
        held.difference_update(int(i) for i in ended_ids[e_lo:e_hi])
        rows = order[lo:hi]
        ids = rec.track_ids[rows]
        held.update(int(i) for i in ids)
        out = stage.update(float(t), ids, rec.keypoints[rows], rec.world[rows], held)
        windows.extend(out.windows)
        alerts.extend(out.alerts)
    end = rec.t_end if rec.t_end is not None else (float(times[-1]) if times.shape[0] else None)
    if end is not None:
        alerts.extend(stage.close(end))
    return GaitOutput(tuple(windows), tuple(alerts))


def analyze_recording(
    rec: Recording,
    settings: GaitSettings | None = None,
    classifier: GaitClassifier | None = None,
    policy_settings: AlertPolicySettings | None = None,
) -> GaitOutput:
    """``replay`` through a new stage with these settings (the library defaults where None, which are also the
    daemon's defaults)."""
    stage = GaitStage(
        settings or GaitSettings(),
        classifier or GaitClassifier(),
        AlertPolicy(policy_settings or AlertPolicySettings()),
    )
    return replay(rec, stage)
