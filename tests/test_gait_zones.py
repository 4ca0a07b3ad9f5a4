"""Zones (gaitwatch.gait.zones) and bed-exit / chair-rise alerts (gaitwatch.gait.bed_exit) on generated ward
scenes: a bed and a chair on the floor of a calibrated camera, patients' key landmarks placed in 3-D for each
posture, projected with pixel jitter, and scripted timelines of postures with mislabelled hops."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from gaitwatch.gait.bed_exit import BED_EXIT, CHAIR_RISE, ExitSettings, ExitWatch, ZoneSample
from gaitwatch.gait.floor import PinholeCamera
from gaitwatch.gait.types import ActivityState, Alert, AlertPhase
from gaitwatch.gait.zones import Zone, ZoneError, ZoneKind, ZoneMap, person_pixel, point_in_polygon
from gaitwatch.pose.keypoints import Landmark

SIZE = (1280, 720)
CAMERA = PinholeCamera.looking((0.0, 0.0, 2.4), 90.0, 30.0, 700.0, SIZE)
CAL = CAMERA.floor_calibration()


def rect(x0: float, y0: float, x1: float, y1: float) -> NDArray[np.float64]:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


BED = Zone("bed 3", ZoneKind.BED, rect(-0.5, 2.5, 0.5, 4.6))
CHAIR = Zone("chair 3", ZoneKind.CHAIR, rect(1.0, 2.6, 1.6, 3.2))
WALKWAY = Zone("walkway", ZoneKind.WALKWAY, rect(-2.5, 1.5, 2.5, 7.5))
ZONES = ZoneMap.build((WALKWAY, BED, CHAIR), CAL, SIZE)

S, L, SIT, W = ActivityState.STANDING, ActivityState.LYING, ActivityState.SITTING, ActivityState.WALKING
# 3-D hip and ankle positions (metres, floor frame) of each scene pose; the feet under the ankles.
POSES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], ActivityState]] = {
    "lying": ((0.0, 3.4, 0.62), (0.0, 4.3, 0.58), L),
    "sitting_up": ((0.0, 3.0, 0.6), (0.0, 3.9, 0.6), SIT),
    "at_edge": ((0.42, 3.3, 0.55), (0.85, 3.3, 0.1), SIT),
    "standing_by_bed": ((0.8, 3.3, 0.9), (0.8, 3.3, 0.08), S),
    "walking_away": ((1.8, 5.8, 0.9), (1.8, 5.8, 0.08), W),
    "in_chair": ((1.3, 2.95, 0.5), (1.3, 2.55, 0.08), SIT),
    "up_from_chair": ((1.3, 2.4, 0.9), (1.3, 2.4, 0.08), S),
}


def keypoints(pose: str, rng: np.random.Generator, jitter_px: float = 3.0) -> NDArray[np.float64]:
    hip, ankle, _ = POSES[pose]
    pts = np.tile(np.array(hip), (33, 1))
    for side in (-1.0, 1.0):
        lateral = np.array([0.1 * side, 0.0, 0.0])
        h = np.array(hip) + lateral
        a = np.array(ankle) + lateral
        left = side < 0
        pts[Landmark.LEFT_HIP if left else Landmark.RIGHT_HIP] = h
        pts[Landmark.LEFT_ANKLE if left else Landmark.RIGHT_ANKLE] = a
        pts[Landmark.LEFT_HEEL if left else Landmark.RIGHT_HEEL] = a + np.array([0.0, -0.05, -0.07])
        pts[Landmark.LEFT_FOOT_INDEX if left else Landmark.RIGHT_FOOT_INDEX] = a + np.array([0.0, 0.15, -0.07])
    uv = CAMERA.project(pts) + rng.normal(0.0, jitter_px, (33, 2))
    return np.asarray(np.c_[uv, np.full(33, 0.9)], dtype=np.float64)


def test_zone_validation_names_the_problem() -> None:
    with pytest.raises(ZoneError, match="edges 1 and 3 cross"):
        Zone("bow tie", ZoneKind.BED, np.array([[0, 0], [1, 1], [1, 0], [0, 1]], dtype=float))
    with pytest.raises(ZoneError, match="no area"):
        Zone("line", ZoneKind.DOOR, np.array([[0, 0], [1, 1], [2, 2]], dtype=float))
    with pytest.raises(ZoneError, match="at least 3"):
        Zone("two", ZoneKind.DOOR, np.array([[0, 0], [1, 1]], dtype=float))
    with pytest.raises(ZoneError, match="no floor calibration"):
        ZoneMap.build((BED,), None, SIZE)
    with pytest.raises(ZoneError, match="unique"):
        ZoneMap.build((BED, Zone("bed 3", ZoneKind.CHAIR, rect(0, 0, 1, 1))), CAL, SIZE)


def test_point_in_polygon_and_pixel_zones() -> None:
    poly = np.array([[0, 0], [4, 0], [4, 3], [2, 1], [0, 3]], dtype=float)  # concave
    got = point_in_polygon(poly, np.array([[1, 0.5], [2, 2], [3.5, 2.5], [np.nan, 1], [5, 1]]))
    assert got.tolist() == [True, False, True, False, False]
    door = Zone("door", ZoneKind.DOOR, rect(1000, 100, 1200, 600), units="px")
    zmap = ZoneMap.build((door,), None, None)
    assert zmap.zone_at([1100, 300]) is door
    assert zmap.zone_at([900, 300]) is None


def test_people_are_placed_by_feet_upright_and_by_hips_on_a_bed_or_chair() -> None:
    rng = np.random.default_rng(0)
    expect = {
        "lying": (BED, False),
        "sitting_up": (BED, False),
        "at_edge": (BED, True),
        "walking_away": (WALKWAY, False),
        "in_chair": (CHAIR, False),
        "up_from_chair": (WALKWAY, False),
    }
    for pose, (zone, edge) in expect.items():
        kp = keypoints(pose, rng)
        got, at_edge = ZONES.locate(kp, POSES[pose][2])
        assert got is zone, pose
        assert at_edge == edge, pose
    # A floor zone at mattress height: the bed's outline in the image is not the outline of its floor footprint.
    footprint = CAL.to_image(BED.polygon)
    assert float(np.max(np.abs(ZONES.outline(BED) - footprint))) > 40.0
    kp = keypoints("standing_by_bed", rng)
    np.testing.assert_allclose(person_pixel(kp, S), kp[[29, 30, 31, 32], :2].mean(axis=0))


Segment = tuple[str, float]
_LOCATED: dict[tuple[int, str, ActivityState, int], tuple[ZoneMap, Zone | None, bool]] = {}


def located(pose: str, state: ActivityState, variant: int) -> tuple[Zone | None, bool]:
    """ZONES.locate of one of 8 jittered views of ``pose`` (cached: 8 hours of hops would project 30k poses).
    The entry keeps its zone map: a test that swaps ZONES may get a new map at a freed map's id."""
    key = (id(ZONES), pose, state, variant)
    hit = _LOCATED.get(key)
    if hit is None or hit[0] is not ZONES:
        zone, edge = ZONES.locate(keypoints(pose, np.random.default_rng(variant)), state)
        hit = _LOCATED[key] = (ZONES, zone, edge)
    return hit[1], hit[2]


def run_script(
    segments: list[Segment],
    rng: np.random.Generator,
    watch: ExitWatch,
    track: int = 1,
    t0: float = 0.0,
    flip: float = 0.05,
) -> tuple[list[Alert], dict[str, float]]:
    """Feed one gait hop per second of a scripted timeline of scene poses; ``flip`` of the hops get a wrong
    posture (the neighbouring one: lying <-> sitting <-> standing). Returns the alerts and each segment's
    start time."""
    neighbour = {L: SIT, SIT: S, S: SIT, W: S}
    out: list[Alert] = []
    starts: dict[str, float] = {}
    t = t0
    for pose, dur in segments:
        starts.setdefault(pose, t)
        end = t + dur
        while t < end:
            state = POSES[pose][2]
            if rng.random() < flip:
                state = neighbour[state]
            zone, edge = located(pose, state, int(rng.integers(8)))
            out += watch.update(ZoneSample(track, t, state, zone, edge))
            t += 1.0
    return out, starts


def test_bed_exits_are_called_seconds_before_the_patient_stands() -> None:
    rng = np.random.default_rng(17)
    leads = []
    for _ in range(100):
        watch = ExitWatch()
        script = [
            ("lying", float(rng.uniform(20, 120))),
            ("sitting_up", float(rng.uniform(2, 10))),
            ("at_edge", float(rng.uniform(6, 40))),
            ("standing_by_bed", float(rng.uniform(2, 5))),
            ("walking_away", 10.0),
        ]
        alerts, starts = run_script(script, rng, watch)
        bed = [a for a in alerts if a.type == BED_EXIT]
        first = next((a for a in bed if a.phase == AlertPhase.START), None)
        leads.append(starts["standing_by_bed"] - first.t_observed if first is not None else -np.inf)
        order = ["sat_up", "at_edge", "standing", "left_zone"]
        stages = [order.index(a.pattern) for a in bed]
        assert first is None or (stages == sorted(stages) and stages[-1] == 3)  # stage by stage, then out
    leads_arr = np.array(leads)
    assert np.mean(leads_arr >= 3.0) >= 0.95
    assert np.median(leads_arr) > 10.0


def test_normal_in_bed_activity_and_staff_raise_nothing() -> None:
    """8 hours of generated nights: lying and turning, sitting up and lying back (not at the edge), and a nurse
    standing at the bedside (another track, never lying in the bed): no bed_exit at all."""
    rng = np.random.default_rng(8)
    watch = ExitWatch()
    t = 0.0
    alerts: list[Alert] = []
    while t < 8 * 3600:
        script = [("lying", float(rng.uniform(60, 600))), ("sitting_up", float(rng.uniform(5, 60))), ("lying", 30.0)]
        got, _ = run_script(script, rng, watch, track=1, t0=t)
        alerts += got
        t += sum(d for _, d in script)
        staff, _ = run_script([("standing_by_bed", 60.0), ("at_edge", 5.0), ("walking_away", 5.0)], rng, watch, 2, t)
        alerts += staff
        t += 70.0
    assert [a for a in alerts if a.type == BED_EXIT] == []


def test_sensitivity_and_per_zone_switch() -> None:
    rng = np.random.default_rng(3)
    script = [("lying", 30.0), ("sitting_up", 8.0), ("at_edge", 8.0), ("standing_by_bed", 3.0)]

    def first_stage(zone: Zone) -> str | None:
        global ZONES
        saved = ZONES
        ZONES = ZoneMap.build((WALKWAY, zone, CHAIR), CAL, SIZE)
        try:
            alerts, _ = run_script(script, rng, ExitWatch(), flip=0.0)
        finally:
            ZONES = saved
        starts = [a.pattern for a in alerts if a.type == BED_EXIT and a.phase == AlertPhase.START]
        return starts[0] if starts else None

    assert first_stage(Zone("bed 3", ZoneKind.BED, BED.polygon, sensitivity="high")) == "sat_up"
    assert first_stage(Zone("bed 3", ZoneKind.BED, BED.polygon, sensitivity="medium")) == "at_edge"
    assert first_stage(Zone("bed 3", ZoneKind.BED, BED.polygon, sensitivity="low")) == "standing"
    assert first_stage(Zone("bed 3", ZoneKind.BED, BED.polygon, exit_alerts=False)) is None


def test_lying_back_down_ends_the_alert_and_a_lost_track_ends_it_too() -> None:
    rng = np.random.default_rng(4)
    watch = ExitWatch(ExitSettings(back_in_bed_s=5.0))
    alerts, _ = run_script([("lying", 30.0), ("at_edge", 6.0), ("lying", 10.0)], rng, watch, flip=0.0)
    phases = [(a.phase, a.pattern) for a in alerts]
    assert phases == [(AlertPhase.START, "at_edge"), (AlertPhase.END, "back_in_bed")]
    alerts, _ = run_script([("lying", 30.0), ("at_edge", 6.0)], rng, watch, track=5, flip=0.0)
    assert watch.active(5) == [BED_EXIT]
    assert [(a.phase, a.type) for a in watch.forget(5, 100.0)] == [(AlertPhase.END, BED_EXIT)]


def test_chair_rises_and_a_five_times_sit_to_stand() -> None:
    watch = ExitWatch()
    out: list[Alert] = []
    t = 0.0
    for _ in range(5):
        for state, zone in ((SIT, CHAIR), (SIT, CHAIR), (S, WALKWAY)):
            out += watch.update(ZoneSample(9, t, state, zone, sit_to_stand_s=1.2 if state == S else None))
            t += 1.0
    # The last rise is reported once it has settled (upright for rise_settle_s); the others when the person sat
    # down again.
    for _ in range(2):
        out += watch.update(ZoneSample(9, t, S, WALKWAY))
        t += 1.0
    rises = [a for a in out if a.type == CHAIR_RISE and a.phase == AlertPhase.START]
    assert len(rises) == 5
    assert rises[0].evidence["sit_to_stand_s"] == pytest.approx(1.2)
    assert rises[-1].evidence["five_sts_s"] == pytest.approx(14.0 - 1.2 + 1.2 - 0.0, abs=1.5)
    # Sitting on a bed or anywhere else is no chair.
    assert watch.update(ZoneSample(9, t, SIT, None)) == [] and watch.update(ZoneSample(9, t + 1, S, None)) == []
