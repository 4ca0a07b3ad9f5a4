"""One camera's floor and zones in the gait stage: each window's person in metres and in a zone, and the
bed-exit / chair-rise alerts that follow from posture and zone.

``gaitwatch.gait.stage.GaitStage`` calls it once per analysed window, after ``analyze_window``: the window's
metrics come back with a ``FloorReading`` (speed, step and stride length, distance, floor position, zone;
``gaitwatch.gait.floor_gait``, ``gaitwatch.gait.zones``) and the window's posture and zone go to the camera's
``ExitWatch`` (``gaitwatch.gait.bed_exit``). A camera without calibration can still have zones in pixels (then
only ``zone`` is filled in); one with neither has no floor stage at all.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gaitwatch.gait.bed_exit import ExitSettings, ExitWatch, ZoneSample
from gaitwatch.gait.floor import FloorCalibration
from gaitwatch.gait.floor_gait import floor_gait
from gaitwatch.gait.types import ActivityState, Alert, FloorReading, GaitMetrics, GaitWindow
from gaitwatch.gait.zones import HIP_ABOVE_SEAT_M, ZoneKind, ZoneMap, person_pixel

# A sit-to-stand the window saw counts for a chair rise only if it ended this recently: older ones were
# reported by an earlier window.
_RECENT_RISE_S = 3.0


class FloorStage:
    """Floor measures, zones and zone alerts of one camera's tracks (pure; no clock of its own)."""

    def __init__(
        self,
        calibration: FloorCalibration | None,
        zones: ZoneMap | None,
        settings: ExitSettings | None = None,
        min_visibility: float = 0.5,
    ) -> None:
        self.calibration = calibration
        self.zones = zones
        self._settings = settings or ExitSettings()
        self._min_visibility = min_visibility
        self._watch = ExitWatch(self._settings)

    @property
    def exit_settings(self) -> ExitSettings:
        """The bed-exit and chair-rise timing this camera's ExitWatch runs with."""
        return self._settings

    def fresh(self) -> FloorStage:
        """The same calibration and zones, no track state (for a replay from scratch)."""
        return FloorStage(self.calibration, self.zones, self._settings, self._min_visibility)

    def window(self, window: GaitWindow, metrics: GaitMetrics) -> tuple[GaitMetrics, list[Alert]]:
        """``metrics`` with its floor reading, and the zone alerts this window raises.

        The feet give the floor position and speed while they are on the floor: not for someone lying, and not
        for someone sitting in a bed (their feet rest on the mattress, which the floor map would put beyond the
        bed). A person sitting or lying in a bed or chair zone is placed by their hips on its surface instead."""
        reading = FloorReading()
        zone, at_edge = (None, False)
        if self.zones is not None and window.t.shape[0]:
            zone, at_edge = self.zones.locate(window.keypoints[-1], metrics.state, self._min_visibility)
        resting = metrics.state == ActivityState.LYING or (
            metrics.state == ActivityState.SITTING and zone is not None and zone.kind == ZoneKind.BED
        )
        if self.calibration is not None and window.t.shape[0] and not resting:
            g = floor_gait(
                window.t,
                window.keypoints,
                self.calibration,
                cadence_spm=metrics.cadence_spm if metrics.valid else None,
                min_visibility=self._min_visibility,
            )
            reading = FloorReading(g.floor_xy, g.speed_mps, g.step_length_m, g.stride_length_m, g.distance_m)
        alerts: list[Alert] = []
        if self.zones is not None and window.t.shape[0]:
            if zone is not None:
                reading = dataclasses.replace(reading, zone=zone.name, zone_kind=str(zone.kind))
                if metrics.state in (ActivityState.SITTING, ActivityState.LYING):
                    seat = self.zones.on_surface(
                        zone, person_pixel(window.keypoints[-1], metrics.state), HIP_ABOVE_SEAT_M
                    )
                    if seat is not None and np.all(np.isfinite(seat)):
                        reading = dataclasses.replace(reading, floor_xy=(float(seat[0]), float(seat[1])))
            f = metrics.features
            rise = f.get("sit_to_stand_s")
            recent = rise is not None and metrics.t_end - f.get("sit_to_stand_t", -np.inf) <= _RECENT_RISE_S
            sample = ZoneSample(
                metrics.track_id,
                metrics.t_end,
                metrics.state,
                zone,
                at_edge,
                metrics.quality,
                rise if recent else None,
            )
            alerts = self._watch.update(sample)
        return dataclasses.replace(metrics, floor=reading), alerts

    def forget(self, track_id: int, t: float) -> list[Alert]:
        """The track ended at ``t``: its open bed_exit alert ends."""
        return self._watch.forget(track_id, t)
