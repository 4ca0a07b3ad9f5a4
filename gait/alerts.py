"""Per-person alert policy: turn a stream of window verdicts into few, sustained, explained alerts.

Types (``gaitwatch.gait.types.AlertType``; adding one: see its docstring):
- ``abnormal_gait``: one window is 8 s of gait and a nurse must not be called for one odd window. The alert
  starts when at least K of the person's last N counted windows are abnormal, updates (with fresh evidence) at
  most every ``update_interval_s`` while it lasts, and ends when at most ``k_end`` of the last N still are
  (hysteresis), or when the track dies. After an end the same type stays quiet for that person for
  ``cooldown_s``. Windows that are invalid, UNKNOWN or poorly seen are not counted at all: they neither raise
  nor clear an alert.
- ``freezing``: the same K-of-N machinery over windows classified as freezing (shorter N, K) that also hold
  the physical evidence of one: the feet stood still for at least ``freezing_min_halt_s`` inside the walking
  window (``halt_s``). A classifier's "freezing" on a broken rhythm alone (pose noise, dropped frames at a
  low frame rate) never raises it. Freezing of gait is episodic and recurs (at turns, doorways, starts), and
  one stop looks the same as anyone pausing or turning on the spot (the trembling that marks a freeze is
  above a ward camera's Nyquist frequency or within its pose noise): the alert also needs
  ``freezing_min_episodes`` distinct stops within ``freezing_recurrence_s``. Such windows do not also count
  towards ``abnormal_gait`` (one episode, one alert).
- ``fall``: a rapid descent to lying (``descent_t`` in the window's features) followed by no recovery (still
  lying ``fall_no_recovery_s`` later); ends when the person is up again or the track dies. Counted whether or
  not the window is a valid walking window (a fallen person does not walk).
- ``slow_sit_to_stand``: a one-off alert (START and END at once) for a sit-to-stand slower than
  ``slow_sit_to_stand_s``.
Every alert carries the window's features as evidence and the window's quality.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from gaitwatch.gait.feature_names import Feature
from gaitwatch.gait.settings import AlertPolicySettings
from gaitwatch.gait.types import ActivityState, Alert, AlertPhase, AlertType, Assessment, GaitLabel, GaitMetrics

# Names from before AlertType, kept for callers written against them; new code names AlertType's members.
ABNORMAL_GAIT: Final = AlertType.ABNORMAL_GAIT
FREEZING: Final = AlertType.FREEZING
FALL: Final = AlertType.FALL
SLOW_SIT_TO_STAND: Final = AlertType.SLOW_SIT_TO_STAND
# Two stops whose middles are this close are one episode seen by overlapping windows.
_SAME_HALT_S = 2.0


@dataclass(frozen=True, slots=True)
class _Vote:
    positive: bool
    p: float
    t_start: float
    t_end: float
    quality: float
    pattern: str


@dataclass(slots=True)
class _Episode:
    """State of one alert type for one track (mutable, private to the policy)."""

    votes: deque[_Vote]
    active: bool = False
    t_start: float = 0.0
    last_emit: float = float("-inf")
    last_end: float | None = None
    last_evidence: dict[str, float] = field(default_factory=dict)
    last_quality: float = 0.0
    confidence: float = 0.0
    # Falls: time of the descent being watched (None when none), and of the last one alerted on.
    candidate_t: float | None = None
    alerted_t: float | None = None


class AlertPolicy:
    """Per-track alerts: abnormal gait and freezing (K-of-N with hysteresis, cooldown and rate-limited
    updates), falls (descent + no recovery) and slow sit-to-stand (one-off)."""

    def __init__(self, settings: AlertPolicySettings | None = None) -> None:
        self.settings = settings or AlertPolicySettings()
        self._episodes: dict[tuple[int, AlertType], _Episode] = {}
        # Per track: times of the distinct freezing-like stops seen recently.
        self._halts: dict[int, list[float]] = {}

    def update(self, metrics: GaitMetrics, assessment: Assessment) -> list[Alert]:
        """Count one window's verdict; returns the alerts it starts, updates or ends (usually none)."""
        if metrics.track_id != assessment.track_id:
            raise ValueError(f"track mismatch: metrics {metrics.track_id}, assessment {assessment.track_id}")
        s = self.settings
        evidence = {k: float(v) for k, v in metrics.features.items() if np.isfinite(v)}
        if metrics.cadence_spm is not None:
            evidence[Feature.CADENCE_SPM] = float(metrics.cadence_spm)
        evidence["p_abnormal"] = float(assessment.p_abnormal)
        out = self._fall(metrics, evidence)
        out += self._sit_to_stand(metrics, evidence)
        if not metrics.valid or assessment.label == GaitLabel.UNKNOWN or metrics.quality < s.min_quality:
            return out
        abnormal = assessment.label == GaitLabel.ABNORMAL and assessment.p_abnormal >= s.min_confidence
        halt = metrics.features.get(Feature.HALT_S, 0.0)
        freezing = abnormal and assessment.pattern == "freezing" and halt >= s.freezing_min_halt_s
        if freezing:
            self._note_halt(metrics.track_id, metrics.features.get(Feature.HALT_T, metrics.t_end))
        for kind, positive, n, k_start, k_end in (
            # A window whose abnormality is a stop of the feet speaks for the freezing alert only, so one
            # episode never raises two alerts.
            (AlertType.ABNORMAL_GAIT, abnormal and not freezing, s.window_count, s.k_start, s.k_end),
            (AlertType.FREEZING, freezing, s.freezing_window_count, s.freezing_k_start, s.freezing_k_end),
        ):
            vote = _Vote(
                positive,
                assessment.p_abnormal,
                metrics.t_start,
                metrics.t_end,
                metrics.quality,
                assessment.pattern,
            )
            out += self._count(metrics.track_id, kind, vote, evidence, n, k_start, k_end)
        return out

    def forget(self, track_id: int, t: float) -> list[Alert]:
        """The track died at ``t``: end its active alerts (phase END) and drop its state."""
        out: list[Alert] = []
        self._halts.pop(track_id, None)
        for key in [k for k in self._episodes if k[0] == track_id]:
            ep = self._episodes.pop(key)
            if ep.active:
                out.append(self._alert(key, ep, AlertPhase.END, t, ep.last_quality, ep.last_evidence))
        return out

    def active(self, track_id: int) -> list[AlertType]:
        """Alert types currently active for ``track_id``."""
        return sorted(k[1] for k, ep in self._episodes.items() if k[0] == track_id and ep.active)

    def _episode(self, track_id: int, kind: AlertType, n: int = 1) -> _Episode:
        key = (track_id, kind)
        ep = self._episodes.get(key)
        if ep is None:
            ep = self._episodes[key] = _Episode(votes=deque(maxlen=n))
        return ep

    def _count(
        self,
        track_id: int,
        kind: AlertType,
        vote: _Vote,
        evidence: dict[str, float],
        n: int,
        k_start: int,
        k_end: int,
    ) -> list[Alert]:
        s = self.settings
        key = (track_id, kind)
        ep = self._episode(track_id, kind, n)
        ep.votes.append(vote)
        positives = [v for v in ep.votes if v.positive]
        n_pos = len(positives)
        t = vote.t_end
        ev = dict(evidence)
        ev["abnormal_windows"] = float(n_pos)
        ev["counted_windows"] = float(len(ep.votes))
        ep.last_evidence = ev
        ep.last_quality = vote.quality
        ep.confidence = float(np.mean([v.p for v in positives])) if positives else 0.0
        if not ep.active:
            cooled = ep.last_end is None or t - ep.last_end >= s.cooldown_s
            recurrent = kind != AlertType.FREEZING or self._halt_episodes(track_id, t) >= s.freezing_min_episodes
            if n_pos >= k_start and cooled and recurrent:
                ep.active = True
                ep.t_start = min(v.t_start for v in positives)
                ep.last_emit = t
                return [self._alert(key, ep, AlertPhase.START, t, vote.quality, ev)]
            return []
        if n_pos <= k_end:
            ep.active = False
            ep.last_end = t
            return [self._alert(key, ep, AlertPhase.END, t, vote.quality, ev)]
        if t - ep.last_emit >= s.update_interval_s:
            ep.last_emit = t
            return [self._alert(key, ep, AlertPhase.UPDATE, t, vote.quality, ev)]
        return []

    def _note_halt(self, track_id: int, t: float) -> None:
        """Remember one freezing-like stop of ``track_id`` at time ``t`` (merged with one already noted within
        ``_SAME_HALT_S``: overlapping windows see the same stop)."""
        halts = self._halts.setdefault(track_id, [])
        if not any(abs(t - h) <= _SAME_HALT_S for h in halts):
            halts.append(float(t))

    def _halt_episodes(self, track_id: int, now: float) -> int:
        """Distinct stops of ``track_id`` within the last ``freezing_recurrence_s`` (older ones are dropped)."""
        recent = [h for h in self._halts.get(track_id, []) if now - h <= self.settings.freezing_recurrence_s]
        self._halts[track_id] = recent
        return len(recent)

    def _fall(self, metrics: GaitMetrics, evidence: dict[str, float]) -> list[Alert]:
        s = self.settings
        f = metrics.features
        lying = f.get(Feature.LYING_END, 0.0) >= 0.5 or metrics.state == ActivityState.LYING
        key = (metrics.track_id, AlertType.FALL)
        if key not in self._episodes and Feature.DESCENT_T not in f:
            return []  # nothing to watch: keep no state for people who never fell
        ep = self._episode(metrics.track_id, AlertType.FALL)
        t = metrics.t_end
        descent = f.get(Feature.DESCENT_T)
        # A descent not yet alerted on and not already watched (the same fall is seen by overlapping windows).
        new = descent is not None and (ep.alerted_t is None or abs(descent - ep.alerted_t) > 1.0)
        if new and descent is not None and (ep.candidate_t is None or abs(descent - ep.candidate_t) > 1.0):
            ep.candidate_t = float(descent)
        ep.last_evidence = dict(evidence)
        ep.last_quality = metrics.quality
        if ep.active:
            if not lying:  # up again: the fall is over
                ep.active = False
                ep.last_end = t
                ep.candidate_t = None
                return [self._alert(key, ep, AlertPhase.END, t, metrics.quality, evidence)]
            if t - ep.last_emit >= s.update_interval_s:
                ep.last_emit = t
                return [self._alert(key, ep, AlertPhase.UPDATE, t, metrics.quality, evidence)]
            return []
        if ep.candidate_t is None:
            return []
        if not lying:
            ep.candidate_t = None  # got up within the no-recovery time: not a fall to alert on
            return []
        if t - ep.candidate_t >= s.fall_no_recovery_s:
            ep.active = True
            ep.t_start = ep.candidate_t
            ep.alerted_t = ep.candidate_t
            ep.candidate_t = None
            ep.last_emit = t
            ep.confidence = float(np.clip(f.get(Feature.LYING_END, 1.0), 0.0, 1.0))
            ev = dict(evidence)
            ev["lying_s"] = t - ep.t_start
            return [self._alert(key, ep, AlertPhase.START, t, metrics.quality, ev)]
        return []

    def _sit_to_stand(self, metrics: GaitMetrics, evidence: dict[str, float]) -> list[Alert]:
        s = self.settings
        f = metrics.features
        dur, t_tr = f.get(Feature.SIT_TO_STAND_S), f.get(Feature.SIT_TO_STAND_T)
        if dur is None or t_tr is None or dur < s.slow_sit_to_stand_s:
            return []
        key = (metrics.track_id, AlertType.SLOW_SIT_TO_STAND)
        ep = self._episode(metrics.track_id, AlertType.SLOW_SIT_TO_STAND)
        if ep.alerted_t is not None and abs(t_tr - ep.alerted_t) <= 1.0:
            return []  # the same transition seen again by a later, overlapping window
        if ep.last_end is not None and metrics.t_end - ep.last_end < s.cooldown_s:
            return []
        ep.alerted_t = float(t_tr)
        ep.t_start = float(t_tr) - float(dur)
        ep.last_end = metrics.t_end
        ep.confidence = float(np.clip(dur / (2.0 * s.slow_sit_to_stand_s), 0.5, 1.0))
        start = self._alert(key, ep, AlertPhase.START, metrics.t_end, metrics.quality, evidence)
        end = self._alert(key, ep, AlertPhase.END, metrics.t_end, metrics.quality, evidence)
        return [start, end]

    def _alert(
        self,
        key: tuple[int, AlertType],
        ep: _Episode,
        phase: AlertPhase,
        t: float,
        quality: float,
        evidence: dict[str, float],
    ) -> Alert:
        patterns = Counter(v.pattern for v in ep.votes if v.positive and v.pattern)
        pattern = patterns.most_common(1)[0][0] if patterns else ""
        priority = self.settings.fall_priority if key[1] == AlertType.FALL else self.settings.priority
        return Alert(
            type=key[1],
            phase=phase,
            track_id=key[0],
            t_start=ep.t_start,
            t_observed=t,
            confidence=ep.confidence,
            priority=priority,
            quality=float(quality),
            evidence=dict(evidence),
            pattern=pattern,
        )
