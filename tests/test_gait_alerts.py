"""AlertPolicy: K-of-N start, hysteresis end, cooldown, rate-limited updates, end on forget."""

from __future__ import annotations

import pytest

from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.settings import AlertPolicySettings
from gaitwatch.gait.types import ActivityState, Alert, AlertPhase, AlertType, Assessment, GaitLabel, GaitMetrics

SETTINGS = AlertPolicySettings(
    window_count=5, k_start=3, k_end=1, cooldown_s=20.0, update_interval_s=3.0, min_quality=0.4
)
# The same without updates, to look at start / end alone.
QUIET = AlertPolicySettings(
    window_count=5, k_start=3, k_end=1, cooldown_s=20.0, update_interval_s=1000.0, min_quality=0.4
)


def _window(
    t_end: float, abnormal: bool | None, track: int = 1, quality: float = 0.9
) -> tuple[GaitMetrics, Assessment]:
    """One window ending at ``t_end``; ``abnormal`` None means an invalid window."""
    valid = abnormal is not None
    m = GaitMetrics(
        track_id=track,
        t_start=t_end - 8.0,
        t_end=t_end,
        valid=valid,
        quality=quality,
        state=ActivityState.WALKING,
        cadence_spm=100.0 if valid else None,
        features={"cadence_spm": 100.0, "speed_from_steps_bh_s": 0.3},
    )
    if abnormal is None:
        a = Assessment(track, GaitLabel.UNKNOWN, 0.5)
    elif abnormal:
        a = Assessment(track, GaitLabel.ABNORMAL, 0.9, "slow")
    else:
        a = Assessment(track, GaitLabel.NORMAL, 0.1)
    return m, a


def _feed(policy: AlertPolicy, seq: list[bool | None], t0: float = 10.0, track: int = 1) -> list[tuple[float, Alert]]:
    out = []
    for k, ab in enumerate(seq):
        t = t0 + k
        for alert in policy.update(*_window(t, ab, track)):
            out.append((t, alert))
    return out


def test_starts_only_at_k_of_last_n() -> None:
    policy = AlertPolicy(SETTINGS)
    # Abnormal windows at 0, 2, 4 of the sequence: the third abnormal one within the last 5 starts it.
    events = _feed(policy, [True, False, True, False, False, False, True, False, True])
    # Every run of 5 consecutive windows here holds at most 2 abnormal ones: no alert.
    assert [(t, a.phase) for t, a in events] == []
    policy = AlertPolicy(SETTINGS)
    events = _feed(policy, [True, False, True, False, True])
    assert [(t, a.phase) for t, a in events] == [(14.0, AlertPhase.START)]
    alert = events[0][1]
    assert alert.type == AlertType.ABNORMAL_GAIT and alert.track_id == 1 and alert.pattern == "slow"
    assert alert.t_start == pytest.approx(10.0 - 8.0)  # first abnormal window's start
    assert alert.t_observed == 14.0
    assert alert.confidence == pytest.approx(0.9)
    assert alert.quality == pytest.approx(0.9)
    assert alert.evidence["abnormal_windows"] == 3.0
    assert alert.evidence["cadence_spm"] == 100.0
    assert alert.evidence["speed_from_steps_bh_s"] == pytest.approx(0.3)


def test_hysteresis_ends_only_when_at_most_k_end_remain() -> None:
    policy = AlertPolicy(QUIET)
    seq: list[bool | None] = [True, True, True]  # start at the 3rd
    seq += [False, False]  # last 5: 3 abnormal -> still active
    seq += [False]  # last 5: T T F F F -> 2 abnormal > k_end=1 -> still active
    seq += [False]  # last 5: T F F F F -> 1 -> END
    events = _feed(policy, seq)
    assert [(t, a.phase) for t, a in events] == [(12.0, AlertPhase.START), (16.0, AlertPhase.END)]


def test_update_at_most_every_interval_while_active() -> None:
    policy = AlertPolicy(SETTINGS)
    events = _feed(policy, [True] * 10)
    assert [(t, a.phase) for t, a in events] == [
        (12.0, AlertPhase.START),
        (15.0, AlertPhase.UPDATE),
        (18.0, AlertPhase.UPDATE),
    ]


def test_cooldown_blocks_restart_for_the_same_track_only() -> None:
    policy = AlertPolicy(QUIET)
    # Start at 12, end at 16, abnormal again at 17-19 (within the cooldown).
    seq: list[bool | None] = [True, True, True, False, False, False, False, True, True, True]
    events = _feed(policy, seq)
    assert [(t, a.phase) for t, a in events] == [(12.0, AlertPhase.START), (16.0, AlertPhase.END)]
    # Another track is not affected by track 1's cooldown.
    other = _feed(policy, [True] * 3, t0=20.0, track=2)
    assert [(t, a.phase, a.track_id) for t, a in other] == [(22.0, AlertPhase.START, 2)]
    # Track 1 may start again once 20 s have passed since its end at 16 s.
    later = _feed(policy, [True] * 3, t0=35.0)
    assert [(t, a.phase) for t, a in later] == [(36.0, AlertPhase.START)]


def test_invalid_and_poor_windows_are_not_counted() -> None:
    policy = AlertPolicy(SETTINGS)
    events = _feed(policy, [True, None, None, True, None, True])
    assert [(t, a.phase) for t, a in events] == [(15.0, AlertPhase.START)]
    policy = AlertPolicy(SETTINGS)
    out = []
    for k in range(5):
        out += policy.update(*_window(10.0 + k, True, quality=0.2))
    assert out == []


def test_forget_ends_active_alert_and_drops_state() -> None:
    policy = AlertPolicy(SETTINGS)
    _feed(policy, [True] * 3)
    assert policy.active(1) == [AlertType.ABNORMAL_GAIT]
    ended = policy.forget(1, 30.0)
    assert [(a.phase, a.t_observed, a.track_id) for a in ended] == [(AlertPhase.END, 30.0, 1)]
    assert policy.active(1) == []
    assert policy.forget(1, 31.0) == []
    assert policy.forget(99, 31.0) == []


def test_mismatched_track_rejected() -> None:
    m, _ = _window(10.0, True, track=1)
    with pytest.raises(ValueError):
        AlertPolicy(SETTINGS).update(m, Assessment(2, GaitLabel.ABNORMAL, 0.9))
