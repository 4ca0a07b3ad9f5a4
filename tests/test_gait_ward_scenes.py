"""Bed exits, a normal stretch of night with a nurse, and chair rises on generated ward scenes through the
daemon's gait stage with a floor stage (gaitwatch.gait.offline.ward_scenes): the whole chain of posture, zones
in metres on a calibrated camera, and ExitWatch."""

from __future__ import annotations

import numpy as np
import pytest

from gaitwatch.gait.offline.ward_scenes import (
    Actor,
    Bed,
    bed_exit_script,
    evaluate_chair_rises,
    evaluate_nights,
    run_scene,
    script_times,
    ward_camera,
    ward_stage,
)
from gaitwatch.gait.types import ActivityState, AlertPhase, AlertType


def test_bed_exits_are_called_before_standing_with_their_stages() -> None:
    rng = np.random.default_rng(3)
    camera, bed = ward_camera(), Bed()
    for _ in range(3):
        script = bed_exit_script(bed, rng, 1.7)
        alerts, windows = run_scene([Actor(1, script, 1.7)], camera, ward_stage(camera, bed, rng), rng, fps=15.0)
        bed_alerts = [a for a in alerts if a.type == AlertType.BED_EXIT]
        assert bed_alerts[0].phase == AlertPhase.START and bed_alerts[0].zone == "bed 1"
        assert script_times(script)["standing"] - bed_alerts[0].t_observed >= 3.0
        assert [a.pattern for a in bed_alerts][-1] == "left_zone"
        lying = [w.metrics for w in windows if w.metrics.state == ActivityState.LYING]
        assert lying and all(m.floor is not None and m.floor.zone == "bed 1" for m in lying)
        # Lying in bed: placed by the hips on the mattress, not by feet mapped to the floor beyond the bed.
        xy = lying[-1].floor.floor_xy if lying[-1].floor is not None else None
        assert xy is not None and bed.x0 <= xy[0] <= bed.x1 and bed.y0 <= xy[1] <= bed.y1
        assert lying[-1].floor is not None and lying[-1].floor.speed_mps is None


@pytest.mark.slow
def test_a_normal_stretch_of_night_with_a_nurse_raises_no_bed_exit() -> None:
    got = evaluate_nights(0.3, 15.0, seed=5)
    assert got["bed_exit_false_per_8h"] == 0.0


def test_chair_rises_are_reported_with_a_sit_to_stand_time() -> None:
    got = evaluate_chair_rises(3, 15.0, seed=4)
    assert got["chair_rise_detected"] == 1.0 and got["chair_rise_timed"] == 1.0
