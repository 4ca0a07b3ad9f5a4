"""Bed exits and chair rises: a patient's posture followed through the zones of the room.

A bed exit is a sequence, and the alert's worth is its warning: a patient lying in a bed zone (for at least
``in_bed_s``: a visitor passing by the bed is never watched) sits up, moves to the edge, stands, and leaves.
The ``bed_exit`` alert STARTs at the stage the zone's sensitivity names ("high": sitting up anywhere in the bed;
"medium": sitting on the edge, hips near the bed's outline or legs over it; "low": standing), UPDATEs at each
later stage (``pattern`` names it: ``sat_up``, ``at_edge``, ``standing``, ``left_zone``), and ENDs when the
patient lies in the bed again for ``back_in_bed_s`` or the track ends. Sitting up and lying back, turning, or
staff at the bedside (never lying in it) raise nothing. Commercial bed-exit systems report ~97 % sensitivity
with a median 28 s of warning before the patient stands; the warning here is the time sitting on the edge.

``chair_rise`` is a measurement, not an emergency: a one-off alert (START and END at once) when someone who sat
in a chair zone for ``seated_s`` stands up, with the sit-to-stand time of the gait window (``sit_to_stand_s``).
Five rises within ``sts_series_s`` add ``five_sts_s``, the five-times-sit-to-stand time (> 15 s: fall risk in
older adults, Buatois et al. 2008).

Pure and synchronous: one ``ExitWatch`` per camera, fed one ``ZoneSample`` per track per gait hop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Annotated

from annotated_types import Interval

from gaitwatch.gait.types import ActivityState, Alert, AlertPhase, AlertType
from gaitwatch.gait.zones import Zone, ZoneKind

BED_EXIT = AlertType.BED_EXIT
CHAIR_RISE = AlertType.CHAIR_RISE
ZONE_ALERT_TYPES: tuple[AlertType, ...] = (BED_EXIT, CHAIR_RISE)
_UPRIGHT = (ActivityState.STANDING, ActivityState.WALKING)
# Stages of a bed exit in order; the sensitivity names the first one alerted.
_STAGES = ("sat_up", "at_edge", "standing", "left_zone")
_FIRST_STAGE = {"high": "sat_up", "medium": "at_edge", "low": "standing"}


@dataclass(frozen=True, slots=True)
class ExitSettings:
    """in_bed_s: lying in a bed zone this long arms the watch. Longer ignores a patient who just lay down
    (no alert if they get straight up again); shorter arms on anyone lying down briefly.
    confirm_s: a stage must hold this long before it is alerted: one mislabelled posture is no sitting up.
    Longer costs that much warning.
    leave_s: outside the bed (or chair) zone this long is leaving it.
    back_in_bed_s: lying in the bed again this long ends a bed_exit alert (the patient lay back down).
    seated_s: sitting in a chair zone this long before standing makes a chair_rise (shorter counts quick
    repeated rises of a sit-to-stand test, longer ignores someone perching for a moment).
    sts_series_s: five rises within this time make a five-times-sit-to-stand measurement.
    rise_settle_s: a chair_rise is reported once its person has been upright this long (or sits down again
    sooner): the first window that sees someone upright has seen only part of the rise, and its sit-to-stand
    time grows as later windows see the standing that ends it. Longer reports later and times better.
    priority: of bed_exit alerts (a patient at fall risk getting up needs a nurse now)."""

    # Annotated ranges: what an admin may configure (the daemon's [exits] table, see
    # gaitwatch.daemon.library_settings); __post_init__ keeps what the code itself needs.
    in_bed_s: Annotated[float, Interval(ge=0.0, le=600.0)] = 5.0
    confirm_s: Annotated[float, Interval(ge=0.0, le=30.0)] = 1.0
    leave_s: Annotated[float, Interval(ge=0.0, le=60.0)] = 2.0
    back_in_bed_s: Annotated[float, Interval(ge=0.0, le=600.0)] = 10.0
    seated_s: Annotated[float, Interval(ge=0.0, le=600.0)] = 1.0
    sts_series_s: Annotated[float, Interval(gt=0.0, le=600.0)] = 60.0
    rise_settle_s: Annotated[float, Interval(ge=0.0, le=10.0)] = 2.0
    priority: str = "high"
    chair_priority: str = "low"

    def __post_init__(self) -> None:
        for name in ("in_bed_s", "confirm_s", "leave_s", "back_in_bed_s", "seated_s", "rise_settle_s"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"ExitSettings.{name} must be >= 0 seconds")
        if not self.sts_series_s > 0.0:
            raise ValueError("ExitSettings.sts_series_s must be > 0 seconds")


@dataclass(frozen=True, slots=True)
class ZoneSample:
    """What one gait hop says about one track: time, posture, the zone holding the person's point
    (``gaitwatch.gait.zones.ZoneMap.zone_at``), whether a sitting person is at the zone's edge (hips near its
    outline, or feet outside it), and the window's sit-to-stand time if it saw one."""

    track_id: int
    t: float
    state: ActivityState
    zone: Zone | None
    at_edge: bool = False
    quality: float = 1.0
    sit_to_stand_s: float | None = None


@dataclass(slots=True)
class _Track:
    bed: Zone | None = None  # the bed this track was seen lying in (armed)
    lying_since: float | None = None
    stage: str = ""  # latest bed-exit stage alerted ("" = none active)
    candidate: str = ""  # stage being confirmed
    candidate_since: float = 0.0
    outside_since: float | None = None
    back_since: float | None = None
    t_start: float = 0.0
    chair: Zone | None = None
    seated_since: float | None = None
    upright_since: float | None = None
    rise_s: float | None = None  # latest sit-to-stand time measured for the rise under way
    rises: deque[float] = field(default_factory=lambda: deque(maxlen=5))


class ExitWatch:
    """Bed-exit and chair-rise alerts for the tracks of one camera (see the module docstring)."""

    def __init__(self, settings: ExitSettings | None = None) -> None:
        self.settings = settings or ExitSettings()
        self._tracks: dict[int, _Track] = {}

    def update(self, s: ZoneSample) -> list[Alert]:
        tr = self._tracks.setdefault(s.track_id, _Track())
        return self._bed(tr, s) + self._chair(tr, s)

    def forget(self, track_id: int, t: float) -> list[Alert]:
        """The track died: end its active bed_exit alert and drop its state."""
        tr = self._tracks.pop(track_id, None)
        if tr is None or not tr.stage:
            return []
        bed = tr.bed.name if tr.bed is not None else ""
        return [self._alert(BED_EXIT, AlertPhase.END, track_id, tr.t_start, t, tr.stage, 1.0, {}, bed)]

    def active(self, track_id: int) -> list[str]:
        tr = self._tracks.get(track_id)
        return [BED_EXIT] if tr is not None and tr.stage else []

    def _stage_of(self, tr: _Track, s: ZoneSample) -> str:
        """The furthest bed-exit stage this sample shows ("" for lying in bed or unknown)."""
        in_bed = s.zone is tr.bed
        if s.state in _UPRIGHT:
            # Feet still on the mattress: a patient sitting up in bed called "standing" by the posture classifier
            # is far likelier than one standing on the mattress; nobody gets out of bed without their feet.
            if in_bed and not s.at_edge:
                return "sat_up"
            if not in_bed:
                gone = tr.outside_since is not None and s.t - tr.outside_since >= self.settings.leave_s
                return "left_zone" if gone else "standing"
            return "standing"
        if s.state == ActivityState.SITTING and (in_bed or s.at_edge):
            return "at_edge" if s.at_edge else "sat_up"
        return ""

    def _bed(self, tr: _Track, s: ZoneSample) -> list[Alert]:
        cfg = self.settings
        z = s.zone
        lying_in_bed = s.state == ActivityState.LYING and z is not None and z.kind == ZoneKind.BED
        if lying_in_bed:
            tr.lying_since = s.t if tr.lying_since is None else tr.lying_since
        else:
            tr.lying_since = None
        armed = lying_in_bed and z is not None and z.exit_alerts and not tr.stage
        if armed and tr.lying_since is not None and s.t - tr.lying_since >= cfg.in_bed_s:
            tr.bed = z
        if tr.bed is None:
            return []
        # Where the person's point is relative to the armed bed (for "left_zone").
        if s.zone is tr.bed:
            tr.outside_since = None
        elif s.state in _UPRIGHT:
            tr.outside_since = s.t if tr.outside_since is None else tr.outside_since
        out: list[Alert] = []
        if tr.stage and lying_in_bed and s.zone is tr.bed:
            tr.back_since = s.t if tr.back_since is None else tr.back_since
            if s.t - tr.back_since >= cfg.back_in_bed_s:
                end = self._alert(
                    BED_EXIT, AlertPhase.END, s.track_id, tr.t_start, s.t, "back_in_bed", s.quality, {}, tr.bed.name
                )
                out.append(end)
                tr.stage, tr.candidate = "", ""
            return out
        tr.back_since = None
        stage = self._stage_of(tr, s)
        first = _FIRST_STAGE[tr.bed.sensitivity]
        if not stage or _STAGES.index(stage) < _STAGES.index(first):
            tr.candidate = ""
            return out
        if tr.stage and _STAGES.index(stage) <= _STAGES.index(tr.stage):
            return out  # no further than what was alerted (a patient standing back up to the bed is still out)
        if stage != tr.candidate:
            tr.candidate, tr.candidate_since = stage, s.t
        if s.t - tr.candidate_since < cfg.confirm_s and stage != "left_zone":
            return out
        evidence = {"stage_index": float(_STAGES.index(stage))}
        if not tr.stage:
            tr.t_start = tr.candidate_since
            phase = AlertPhase.START
        else:
            phase = AlertPhase.UPDATE
        evidence["since_start_s"] = s.t - tr.t_start
        tr.stage = stage
        out.append(self._alert(BED_EXIT, phase, s.track_id, tr.t_start, s.t, stage, s.quality, evidence, tr.bed.name))
        return out

    def _chair(self, tr: _Track, s: ZoneSample) -> list[Alert]:
        cfg = self.settings
        z = s.zone
        seated_here = s.state == ActivityState.SITTING and z is not None and z.kind == ZoneKind.CHAIR and z.exit_alerts
        out: list[Alert] = []
        if tr.upright_since is not None and (seated_here or s.state == ActivityState.LYING):
            out += self._rise(tr, s)  # sat down again before the rise settled: report it as measured so far
        if seated_here and z is not None:
            if tr.chair is not z:
                tr.chair, tr.seated_since = z, s.t
            tr.upright_since = None
            return out
        if tr.chair is None or tr.seated_since is None:
            return out
        if s.state not in _UPRIGHT:
            if s.state != ActivityState.UNKNOWN:
                self._reset_chair(tr)
            return out
        if tr.upright_since is None:
            tr.upright_since, tr.rise_s = s.t, None
        if s.sit_to_stand_s is not None:
            tr.rise_s = s.sit_to_stand_s  # the latest window has seen most of the standing that ends the rise
        if s.t - tr.upright_since >= cfg.rise_settle_s:
            out += self._rise(tr, s)
        return out

    def _reset_chair(self, tr: _Track) -> None:
        tr.chair, tr.seated_since, tr.upright_since, tr.rise_s = None, None, None, None

    def _rise(self, tr: _Track, s: ZoneSample) -> list[Alert]:
        """A chair_rise (START and END at once) for the rise under way, then the chair watch starts over."""
        cfg = self.settings
        if tr.chair is None or tr.seated_since is None or tr.upright_since is None:
            self._reset_chair(tr)
            return []
        seated = tr.upright_since - tr.seated_since
        chair, rise, up = tr.chair.name, tr.rise_s, tr.upright_since
        self._reset_chair(tr)
        if seated < cfg.seated_s:
            return []
        evidence = {"seated_s": seated}
        if rise is not None:
            evidence["sit_to_stand_s"] = rise
        t0 = up - (rise or 0.0)  # when the rise began
        tr.rises.append(t0)
        if len(tr.rises) == tr.rises.maxlen and up - tr.rises[0] <= cfg.sts_series_s:
            # From the start of the first rise to the end of the fifth (the test's stopwatch also counts the
            # sitting down in between).
            evidence["five_sts_s"] = up - tr.rises[0]
            tr.rises.clear()
        start = self._alert(CHAIR_RISE, AlertPhase.START, s.track_id, t0, s.t, "rise", s.quality, evidence, chair)
        end = self._alert(CHAIR_RISE, AlertPhase.END, s.track_id, t0, s.t, "rise", s.quality, evidence, chair)
        return [start, end]

    def _alert(
        self,
        kind: AlertType,
        phase: AlertPhase,
        track_id: int,
        t_start: float,
        t: float,
        stage: str,
        quality: float,
        evidence: dict[str, float],
        zone: str,
    ) -> Alert:
        cfg = self.settings
        return Alert(
            type=kind,
            phase=phase,
            track_id=track_id,
            t_start=t_start,
            t_observed=t,
            confidence=1.0,
            priority=cfg.priority if kind == BED_EXIT else cfg.chair_priority,
            quality=float(quality),
            evidence=dict(evidence),
            pattern=stage,
            zone=zone,
        )
