"""The floor stage wired into the gait stage and the payloads: metres and zones per window, bed exits as
alerts naming their bed, null fields without a calibration (gaitwatch.gait.floor_stage, gait.stage)."""

from __future__ import annotations

import numpy as np
from test_daemon_payloads import CLOCK, GAIT_SCHEMA, IDENTITY, validate
from test_gait_zones import CAL, POSES, SIZE, ZONES, keypoints

from gaitwatch.daemon.payloads import gait_payload
from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.floor_stage import FloorStage
from gaitwatch.gait.offline.floor_eval import aim_distance, point_calibration, scene_camera
from gaitwatch.gait.offline.synthetic import CameraView, PoseNoise, WalkerParams, generate_walk
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.stage import GaitStage
from gaitwatch.gait.types import ActivityState, AlertPhase, AlertType, GaitMetrics, GaitResult, GaitWindow


def feed(stage: GaitStage, walk_t: np.ndarray, kp: np.ndarray, world: np.ndarray) -> list[GaitResult]:
    out: list[GaitResult] = []
    for i in range(walk_t.shape[0]):
        got = stage.update(float(walk_t[i]), np.array([1]), kp[i : i + 1], world[i : i + 1], [1])
        out.extend(got.windows)
    return out


def test_a_calibrated_camera_reports_metres_in_every_window_and_payload() -> None:
    view = CameraView(view_deg=60.0, height_m=2.6, tilt_deg=28.0)
    view = CameraView(view_deg=60.0, height_m=2.6, tilt_deg=28.0, distance_m=aim_distance(view))
    cal = point_calibration(scene_camera(view, aim_distance(view)), (1280, 720), np.random.default_rng(2))
    params = WalkerParams(cadence_spm=100.0)
    walk = generate_walk(params, view, PoseNoise(), fps=15.0, duration_s=12.0, seed=5)
    stage = GaitStage(GaitSettings(), GaitClassifier(), AlertPolicy(), FloorStage(cal, None))
    windows = feed(stage, walk.t, walk.keypoints, walk.world)
    assert windows
    for w in windows:
        floor = w.metrics.floor
        assert floor is not None and floor.speed_mps is not None
        assert abs(floor.speed_mps - params.speed_m_s) < 0.1
        if w.metrics.valid:
            assert floor.step_length_m is not None and abs(floor.step_length_m - params.step_length_m) < 0.08
        body = validate(
            gait_payload(w.metrics, w.assessment, camera="bay1", identity=IDENTITY, clock=CLOCK), GAIT_SCHEMA
        )
        assert body["speed_mps"] == floor.speed_mps or abs(body["speed_mps"] - floor.speed_mps) < 1e-3
        assert body["floor_xy"] is not None and body["zone"] is None
    # A fresh stage (what a replay starts from) keeps the calibration.
    assert feed(stage.fresh(), walk.t, walk.keypoints, walk.world)[0].metrics.floor is not None


def test_without_calibration_the_payload_fields_are_null() -> None:
    walk = generate_walk(WalkerParams(), CameraView(), PoseNoise(), fps=15.0, duration_s=9.0, seed=1)
    windows = feed(GaitStage(GaitSettings(), GaitClassifier(), AlertPolicy()), walk.t, walk.keypoints, walk.world)
    body = validate(
        gait_payload(windows[0].metrics, windows[0].assessment, camera="c", identity=IDENTITY, clock=CLOCK), GAIT_SCHEMA
    )
    assert [body[k] for k in ("speed_mps", "step_length_m", "stride_length_m", "distance_m", "floor_xy", "zone")] == [
        None
    ] * 6


def test_a_bed_exit_through_the_floor_stage_names_its_bed() -> None:
    """Windows of a patient lying, sitting on the bed's edge, standing and walking away (posture as the window
    reports it): bed_exit START at the edge, updates, the zone of every window, and the bed in the alert."""
    stage = FloorStage(CAL, ZONES)
    rng = np.random.default_rng(0)
    alerts = []
    zones = []
    t = 0.0
    for pose, seconds in (("lying", 20), ("at_edge", 8), ("standing_by_bed", 3), ("walking_away", 5)):
        for _ in range(seconds):
            kp = keypoints(pose, rng).astype(np.float32)[None]
            window = GaitWindow(7, np.array([t]), kp, np.zeros_like(kp))
            state: ActivityState = POSES[pose][2]
            metrics = GaitMetrics(7, t - 8.0, t, False, 0.9, state, None, {})
            measured, got = stage.window(window, metrics)
            assert measured.floor is not None
            zones.append(measured.floor.zone)
            alerts += got
            t += 1.0
    assert zones[0] == "bed 3" and zones[-1] == "walkway"
    bed = [a for a in alerts if a.type == AlertType.BED_EXIT]
    assert bed[0].phase == AlertPhase.START and bed[0].pattern == "at_edge" and bed[0].zone == "bed 3"
    assert bed[-1].pattern == "left_zone"
    assert bed[0].t_observed <= 22.0  # called within ~2 s of reaching the edge, 6 s before standing
    ended = stage.forget(7, t)
    assert [(a.phase, a.zone) for a in ended] == [(AlertPhase.END, "bed 3")]
    assert SIZE == (1280, 720)
