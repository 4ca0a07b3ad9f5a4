"""Generated ward scenes with known truth: a patient in bed or in a chair, seen by a calibrated camera, for the
bed-exit and chair-rise figures (``bench/ward_scenes.py``) and their tests.

A person is a stick figure of BlazePose's 33 landmarks (segment lengths as fractions of body height, Winter
2009, the same as ``gaitwatch.gait.offline.synthetic``) posed by five numbers: trunk pitch backwards from
upright (90 = lying on the back), thigh and shank angles forwards from hanging straight down (sitting on a
chair: 90 and 0; sitting up in bed with straight legs: 90 and 90; lying: 90 and 90 with the trunk at 90), the
direction the body faces, and the pelvis position. Scripts are keyframes of those numbers, blended with a
smooth step; the landmarks are projected through a ``PinholeCamera`` with pixel jitter (heavier on hands and
feet), the pose model's compressed world depth, and dropped frames, then fed frame by frame through the
daemon's own gait stage with a floor stage (calibration from floor marks measured to +-2 cm, zones).

Scripts (each with random durations): ``bed_exit`` (lying, sitting up, turning to the edge with the legs over
it, sitting on the edge, standing up, standing, walking away); normal nights: ``turning`` (lying, half sitting
up and back), ``sit_up_lie_back`` (sitting up in bed for a while, lying back), and a nurse standing and leaning
at the bedside (another track that never lies in the bed); ``chair_rise`` (seated, standing up in a known
time, standing).

What is not modelled: bedding hiding the legs, rolling onto the side, a second person touching the patient,
the tracker (one track per person throughout) and a real pose model's failures on lying people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.floor import FloorCalibration, PinholeCamera, calibrate_from_points
from gaitwatch.gait.floor_stage import FloorStage
from gaitwatch.gait.settings import GaitSettings
from gaitwatch.gait.stage import GaitStage
from gaitwatch.gait.types import Alert, AlertPhase, AlertType, GaitResult
from gaitwatch.gait.zones import Zone, ZoneKind, ZoneMap
from gaitwatch.pose.keypoints import FACE, NUM_LANDMARKS, Landmark

_THIGH, _SHANK, _ANKLE_H, _FOOT = 0.245, 0.246, 0.039, 0.152
_HIP_W, _SHOULDER_W, _TRUNK, _UPPER_ARM, _FOREARM, _NECK_TO_NOSE = 0.191, 0.259, 0.288, 0.186, 0.146, 0.110
_LIMBS = ("WRIST", "PINKY", "INDEX", "THUMB", "ANKLE", "HEEL", "FOOT")


@dataclass(frozen=True, slots=True)
class Pose:
    """One keyframe: trunk pitch, thigh and shank angles (deg), facing direction (deg from +X towards +Y),
    pelvis position (m, floor frame, z up)."""

    pitch: float
    thigh: float
    shank: float
    facing: float
    pelvis: tuple[float, float, float]


def body(p: Pose, height_m: float) -> NDArray[np.float64]:
    """(33, 3) landmark positions of a person of ``height_m`` in pose ``p``."""
    h = height_m
    yaw = np.deg2rad(p.facing)
    f = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    left = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
    up = np.array([0.0, 0.0, 1.0])
    pitch, thigh_a, shank_a = np.deg2rad([p.pitch, p.thigh, p.shank])
    trunk = np.cos(pitch) * up - np.sin(pitch) * f
    thigh = -np.cos(thigh_a) * up + np.sin(thigh_a) * f
    shank = -np.cos(shank_a) * up + np.sin(shank_a) * f
    foot = np.cos(shank_a) * f + np.sin(shank_a) * up
    pelvis = np.asarray(p.pelvis, dtype=np.float64)
    pts = np.zeros((NUM_LANDMARKS, 3))
    for side, s in (("LEFT", 1.0), ("RIGHT", -1.0)):
        hip = pelvis + s * left * _HIP_W * h / 2
        knee = hip + thigh * _THIGH * h
        ankle = knee + shank * _SHANK * h
        sole = ankle + shank * _ANKLE_H * h
        shoulder = pelvis + trunk * _TRUNK * h + s * left * _SHOULDER_W * h / 2
        elbow = shoulder - trunk * _UPPER_ARM * h
        wrist = elbow - trunk * _FOREARM * h + 0.03 * h * f
        for name, xyz in (
            ("HIP", hip),
            ("KNEE", knee),
            ("ANKLE", ankle),
            ("HEEL", sole - foot * 0.25 * _FOOT * h),
            ("FOOT_INDEX", sole + foot * 0.75 * _FOOT * h),
            ("SHOULDER", shoulder),
            ("ELBOW", elbow),
            ("WRIST", wrist),
            ("PINKY", wrist - trunk * 0.05 * h),
            ("INDEX", wrist - trunk * 0.06 * h),
            ("THUMB", wrist - trunk * 0.04 * h + 0.02 * h * f),
        ):
            pts[Landmark[f"{side}_{name}"]] = xyz
    nose = pelvis + trunk * (_TRUNK + _NECK_TO_NOSE) * h + 0.04 * h * np.cos(pitch) * f + 0.04 * h * np.sin(pitch) * up
    for lm in FACE:
        lateral = 0.03 * h * (1 if "LEFT" in lm.name else -1 if "RIGHT" in lm.name else 0)
        pts[lm] = nose + lateral * left
    return pts


def _blend(a: Pose, b: Pose, s: float) -> Pose:
    s = s * s * (3.0 - 2.0 * s)  # smooth step: no velocity jumps at the keyframes
    mix = [x + (y - x) * s for x, y in zip(a.pelvis, b.pelvis, strict=True)]
    turn = (b.facing - a.facing + 180.0) % 360.0 - 180.0
    return Pose(
        a.pitch + (b.pitch - a.pitch) * s,
        a.thigh + (b.thigh - a.thigh) * s,
        a.shank + (b.shank - a.shank) * s,
        a.facing + turn * s,
        (mix[0], mix[1], mix[2]),
    )


# A script: (seconds to move from the previous keyframe, keyframe, seconds to hold it, label of the hold).
Script = list[tuple[float, Pose, float, str]]


def poses_at(script: Script, t: NDArray[np.float64]) -> list[Pose]:
    """The pose at each time of ``t`` (the first keyframe holds from 0)."""
    marks: list[tuple[float, Pose]] = []
    now = 0.0
    for move, pose, hold, _ in script:
        now += move
        marks.append((now, pose))
        now += hold
        marks.append((now, pose))
    out = []
    for ti in t:
        k = 0
        while k + 1 < len(marks) and marks[k + 1][0] <= ti:
            k += 1
        if k + 1 >= len(marks):
            out.append(marks[-1][1])
            continue
        (t0, a), (t1, b) = marks[k], marks[k + 1]
        out.append(_blend(a, b, (ti - t0) / (t1 - t0)) if t1 > t0 else b)
    return out


def script_times(script: Script) -> dict[str, float]:
    """Start time of each labelled hold's movement (e.g. "standing": when the stand-up began)."""
    out: dict[str, float] = {}
    now = 0.0
    for move, _, hold, label in script:
        out.setdefault(label, now)
        now += move + hold
    out["end"] = now
    return out


@dataclass(frozen=True, slots=True)
class Bed:
    """A bed along +Y: its floor rectangle (x0, y0, x1, y1) and mattress height (m)."""

    x0: float = -0.5
    y0: float = 2.4
    x1: float = 0.5
    y1: float = 4.5
    height: float = 0.5

    @property
    def polygon(self) -> NDArray[np.float64]:
        return np.array([[self.x0, self.y0], [self.x1, self.y0], [self.x1, self.y1], [self.x0, self.y1]])


def _lying(bed: Bed, h: float) -> Pose:
    cy = 0.5 * (bed.y0 + bed.y1) + 0.05 * h
    return Pose(90.0, 90.0, 90.0, 90.0, (0.5 * (bed.x0 + bed.x1), cy, bed.height + 0.1))


def bed_exit_script(bed: Bed, rng: np.random.Generator, h: float) -> Script:
    lie = _lying(bed, h)
    x, y, z = lie.pelvis
    sit = Pose(0.0, 90.0, 90.0, 90.0, (x, y, z))
    edge = Pose(0.0, 90.0, 0.0, 0.0, (bed.x1 - 0.12, y, bed.height + 0.09))
    stand_x = bed.x1 + 0.15
    stand = Pose(0.0, 0.0, 0.0, 0.0, (stand_x, y, (_THIGH + _SHANK + _ANKLE_H) * h))
    away = Pose(0.0, 0.0, 0.0, 0.0, (stand_x + 2.5, y + 1.5, (_THIGH + _SHANK + _ANKLE_H) * h))
    return [
        (0.0, lie, float(rng.uniform(20.0, 90.0)), "lying"),
        (float(rng.uniform(1.5, 4.0)), sit, float(rng.uniform(1.0, 8.0)), "sat_up"),
        (float(rng.uniform(2.0, 4.0)), edge, float(rng.uniform(5.0, 40.0)), "at_edge"),
        (float(rng.uniform(1.5, 3.0)), stand, float(rng.uniform(2.0, 5.0)), "standing"),
        (3.5, away, 4.0, "left"),
    ]


def night_script(bed: Bed, rng: np.random.Generator, h: float, minutes: float) -> Script:
    """Normal activity in bed for about ``minutes``: lying, turning (half sitting up and back), sitting up and
    lying back after a while."""
    lie = _lying(bed, h)
    x, y, z = lie.pelvis
    out: Script = [(0.0, lie, float(rng.uniform(30.0, 300.0)), "lying")]
    total = out[0][2]
    while total < minutes * 60.0:
        if rng.random() < 0.5:
            half = Pose(float(rng.uniform(45.0, 70.0)), 90.0, 90.0, 90.0, (x + float(rng.uniform(-0.2, 0.2)), y, z))
            out.append((float(rng.uniform(1.0, 3.0)), half, float(rng.uniform(1.0, 5.0)), "turning"))
        else:
            sit = Pose(0.0, 90.0, 90.0, 90.0, (x + float(rng.uniform(-0.2, 0.2)), y, z))
            out.append((float(rng.uniform(1.5, 4.0)), sit, float(rng.uniform(5.0, 90.0)), "sat_up"))
        back = float(rng.uniform(60.0, 600.0))
        out.append((float(rng.uniform(1.5, 4.0)), lie, back, "lying"))
        total += back + 10.0
    return out


def staff_script(bed: Bed, rng: np.random.Generator, h: float) -> Script:
    """A nurse walks to the bedside, stands and leans over the patient, and leaves."""
    z = (_THIGH + _SHANK + _ANKLE_H) * h
    y = float(rng.uniform(bed.y0 + 0.3, bed.y1 - 0.3))
    start = Pose(0.0, 0.0, 0.0, 180.0, (bed.x1 + 2.5, y + 1.0, z))
    side = Pose(0.0, 0.0, 0.0, 180.0, (bed.x1 + 0.3, y, z))
    lean = Pose(35.0 * -1.0, 20.0, 0.0, 180.0, (bed.x1 + 0.35, y, z - 0.03))
    return [
        (0.0, start, 1.0, "arrive"),
        (3.0, side, float(rng.uniform(5.0, 30.0)), "bedside"),
        (1.0, lean, float(rng.uniform(3.0, 20.0)), "leaning"),
        (1.0, side, 3.0, "bedside"),
        (3.0, start, 2.0, "leave"),
    ]


def chair_script(rng: np.random.Generator, h: float, chair_xy: tuple[float, float]) -> tuple[Script, float]:
    """Seated in a chair (facing +X), standing up in a known time, standing; returns the script and the true
    sit-to-stand duration (the movement between the keyframes)."""
    x, y = chair_xy
    sit = Pose(0.0, 90.0, 0.0, 0.0, (x, y, 0.54))
    stand = Pose(0.0, 0.0, 0.0, 0.0, (x + 0.25, y, (_THIGH + _SHANK + _ANKLE_H) * h))
    duration = float(rng.uniform(1.2, 4.0))
    return [(0.0, sit, float(rng.uniform(10.0, 20.0)), "seated"), (duration, stand, 6.0, "standing")], duration


def render(
    script: Script,
    camera: PinholeCamera,
    rng: np.random.Generator,
    *,
    fps: float,
    height_m: float,
    jitter: float = 0.006,
    limb_jitter: float = 2.0,
    world_depth: float = 0.6,
    frame_drop: float = 0.03,
) -> tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.float32]]:
    """Times (M,), keypoints (M, 33, 3) image px + visibility and world landmarks (M, 33, 3) metres
    (camera-aligned, hip-centred, depth compressed) of ``script`` seen by ``camera`` at ``fps``, with pixel
    jitter of ``jitter`` x the body's image height (``limb_jitter`` times that on hands and feet)."""
    end = script_times(script)["end"]
    t = np.arange(0.0, end, 1.0 / fps)
    t = t[rng.random(t.shape[0]) >= frame_drop]
    pts = np.stack([body(p, height_m) for p in poses_at(script, t)])
    uv = camera.project(pts)
    cam = (pts - camera.centre) @ camera.rotation.T
    depth = np.maximum(cam[..., 2].mean(axis=1), 0.5)
    body_px = camera.k[0, 0] * height_m / depth
    scale = np.ones(NUM_LANDMARKS)
    for lm in Landmark:
        if any(k in lm.name for k in _LIMBS):
            scale[lm] = limb_jitter
    uv = uv + rng.normal(0.0, 1.0, uv.shape) * (jitter * body_px)[:, None, None] * scale[None, :, None]
    w, h = 2.0 * camera.k[0, 2], 2.0 * camera.k[1, 2]
    inside = (
        np.all(np.isfinite(uv), axis=-1) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    )
    vis = np.where(inside, 0.9, 0.05)
    kp = np.concatenate([np.nan_to_num(uv), vis[..., None]], axis=-1)
    hips = 0.5 * (cam[:, Landmark.LEFT_HIP] + cam[:, Landmark.RIGHT_HIP])
    world = cam - hips[:, None, :]
    world[..., 2] *= world_depth
    world = world + rng.normal(0.0, 0.015, world.shape)
    return t, kp.astype(np.float32), world.astype(np.float32)


def ward_camera() -> PinholeCamera:
    """A wall camera 2.6 m up, tilted 30 deg down, looking across the bed from its side (a bed seen end-on
    hides lying: the trunk then points along the image's vertical)."""
    return PinholeCamera.looking((3.6, 0.6, 2.6), 135.0, 30.0, 700.0, (1280, 720))


def floor_marks(camera: PinholeCamera) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Image pixels (clicked to the pixel) and floor metres of the marks of a 1.5 m grid the camera sees."""
    marks = np.array([[x, y] for x in (-1.0, 0.5, 2.0) for y in (1.0, 2.5, 4.0)])
    img = np.round(camera.project(np.c_[marks, np.zeros(len(marks))]))
    w, h = 2.0 * camera.k[0, 2], 2.0 * camera.k[1, 2]
    seen = np.all(np.isfinite(img), axis=1) & (img[:, 0] >= 0) & (img[:, 0] < w) & (img[:, 1] >= 0) & (img[:, 1] < h)
    return img[seen], marks[seen]


def marks_calibration(camera: PinholeCamera, rng: np.random.Generator) -> FloorCalibration:
    """The camera calibrated from the floor marks it sees, measured to +-2 cm."""
    img, marks = floor_marks(camera)
    return calibrate_from_points(img, marks + rng.uniform(-0.02, 0.02, marks.shape))


@dataclass(frozen=True, slots=True)
class Actor:
    """One tracked person of a scene: track id, script, body height."""

    track_id: int
    script: Script
    height_m: float = 1.70


def run_scene(
    actors: list[Actor],
    camera: PinholeCamera,
    stage: GaitStage,
    rng: np.random.Generator,
    *,
    fps: float,
    t0: float = 0.0,
) -> tuple[list[Alert], list[GaitResult]]:
    """Every actor rendered through ``camera`` and fed frame by frame, all at once, through ``stage`` (which
    keeps its state across calls, so consecutive scenes make one long recording starting at ``t0``)."""
    frames = []
    for a in actors:
        t, kp, world = render(a.script, camera, rng, fps=fps, height_m=a.height_m)
        frames.append((a.track_id, np.round((t + t0) * fps).astype(np.int64), kp, world))
    ticks = np.unique(np.concatenate([f[1] for f in frames]))
    alerts: list[Alert] = []
    windows: list[GaitResult] = []
    cursor = [0] * len(frames)
    for tick in ticks:
        ids, kps, worlds = [], [], []
        for k, (tid, fticks, kp, world) in enumerate(frames):
            i = cursor[k]
            if i < fticks.shape[0] and fticks[i] == tick:
                ids.append(tid)
                kps.append(kp[i])
                worlds.append(world[i])
                cursor[k] = i + 1
        alive = [tid for k, (tid, fticks, _, _) in enumerate(frames) if cursor[k] < fticks.shape[0]] + ids
        out = stage.update(
            float(tick) / fps, np.array(ids, dtype=np.int64), np.stack(kps), np.stack(worlds), sorted(set(alive))
        )
        alerts.extend(out.alerts)
        windows.extend(out.windows)
    return alerts, windows


def ward_stage(camera: PinholeCamera, bed: Bed, rng: np.random.Generator) -> GaitStage:
    """The daemon's gait stage with this ward's floor stage: calibration from marks, a bed and a chair zone."""
    cal = marks_calibration(camera, rng)
    zones = ZoneMap.build(
        (
            Zone("bed 1", ZoneKind.BED, bed.polygon, surface_height_m=bed.height),
            Zone("chair 1", ZoneKind.CHAIR, CHAIR_POLYGON),
        ),
        cal,
        (int(2 * camera.k[0, 2]), int(2 * camera.k[1, 2])),
    )
    return GaitStage(GaitSettings(), GaitClassifier(), AlertPolicy(), FloorStage(cal, zones))


CHAIR_POLYGON = np.array([[1.2, 2.0], [1.8, 2.0], [1.8, 2.6], [1.2, 2.6]])


def bed_exit_leads(n: int, fps: float, seed: int) -> NDArray[np.float64]:
    """``n`` bed exits: per scene, how long before the stand-up began ``bed_exit`` started (-inf: never)."""
    rng = np.random.default_rng(seed)
    camera, bed = ward_camera(), Bed()
    leads = []
    for _ in range(n):
        h = float(np.clip(rng.normal(1.68, 0.09), 1.5, 1.9))
        script = bed_exit_script(bed, rng, h)
        alerts, _ = run_scene([Actor(1, script, h)], camera, ward_stage(camera, bed, rng), rng, fps=fps)
        start = [a.t_observed for a in alerts if a.type == AlertType.BED_EXIT and a.phase == AlertPhase.START]
        leads.append(script_times(script)["standing"] - start[0] if start else -np.inf)
    return np.array(leads, dtype=np.float64)


def _bed_exit_figures(lead: NDArray[np.float64]) -> dict[str, float]:
    called = lead[np.isfinite(lead)]
    return {
        "bed_exits": float(lead.shape[0]),
        "bed_exit_sensitivity": float(np.mean(lead >= 3.0)) if lead.shape[0] else float("nan"),
        "bed_exit_detected": float(called.shape[0]) / max(lead.shape[0], 1),
        "bed_exit_lead_s_median": float(np.median(called)) if called.shape[0] else float("nan"),
    }


def evaluate_bed_exits(n: int, fps: float, seed: int) -> dict[str, float]:
    """``n`` bed exits: the share called at least 3 s before the stand-up began, the median lead."""
    return _bed_exit_figures(bed_exit_leads(n, fps, seed))


def night_false_alerts(hours: float, fps: float, seed: int, stretch_min: float = 20.0) -> tuple[int, float]:
    """Normal nights (turning, sitting up and lying back, a nurse at the bedside every ~``stretch_min``
    minutes) for at least ``hours``: the false bed_exit alerts and the hours generated."""
    rng = np.random.default_rng(seed)
    camera, bed = ward_camera(), Bed()
    stage = ward_stage(camera, bed, rng)
    t0 = 0.0
    false = 0
    staff_id = 100
    while t0 < hours * 3600.0:
        h = 1.70
        night = night_script(bed, rng, h, stretch_min)
        length = script_times(night)["end"]
        staff_id += 1
        staff = staff_script(bed, rng, 1.65)
        # The nurse (her own track, never lying in the bed) comes at the start of every stretch.
        alerts, _ = run_scene([Actor(1, night, h), Actor(staff_id, staff, 1.65)], camera, stage, rng, fps=fps, t0=t0)
        false += sum(1 for a in alerts if a.type == AlertType.BED_EXIT and a.phase == AlertPhase.START)
        t0 += length + 1.0
    return false, t0 / 3600.0


def evaluate_nights(hours: float, fps: float, seed: int, stretch_min: float = 20.0) -> dict[str, float]:
    """Normal nights (turning, sitting up and lying back, a nurse at the bedside every ~20 min) for ``hours``:
    false bed_exit alerts per 8 hours."""
    false, done = night_false_alerts(hours, fps, seed, stretch_min)
    return {"night_hours": done, "bed_exit_false_per_8h": false * 8.0 / done if done > 0 else float("nan")}


def chair_rise_errors(n: int, fps: float, seed: int) -> tuple[int, NDArray[np.float64]]:
    """``n`` sit-to-stands from the chair zone: how many were reported as chair_rise, and the absolute errors
    of the sit-to-stand times reported (s, against the generated movement's duration)."""
    rng = np.random.default_rng(seed)
    camera, bed = ward_camera(), Bed()
    errors = []
    found = 0
    for _ in range(n):
        h = float(np.clip(rng.normal(1.68, 0.09), 1.5, 1.9))
        centre = CHAIR_POLYGON.mean(axis=0)
        script, truth = chair_script(rng, h, (float(centre[0]), float(centre[1])))
        alerts, _ = run_scene([Actor(1, script, h)], camera, ward_stage(camera, bed, rng), rng, fps=fps)
        rises = [a for a in alerts if a.type == AlertType.CHAIR_RISE and a.phase == AlertPhase.START]
        if rises:
            found += 1
            got = rises[0].evidence.get("sit_to_stand_s")
            if got is not None:
                errors.append(abs(got - truth))
    return found, np.array(errors, dtype=np.float64)


def _chair_figures(n: int, found: int, errors: NDArray[np.float64]) -> dict[str, float]:
    return {
        "chair_rises": float(n),
        "chair_rise_detected": found / max(n, 1),
        "chair_rise_timed": float(errors.shape[0]) / max(n, 1),
        "chair_rise_median_ae_s": float(np.median(errors)) if errors.shape[0] else float("nan"),
    }


def evaluate_chair_rises(n: int, fps: float, seed: int) -> dict[str, float]:
    """``n`` sit-to-stands from the chair zone: share reported as chair_rise, median error of their time."""
    found, errors = chair_rise_errors(n, fps, seed)
    return _chair_figures(n, found, errors)


def evaluate_ward(
    fps_list: tuple[float, ...],
    *,
    bed_exits: int,
    night_hours: float,
    chair_rises: int,
    seed: int,
    night_stretch_min: float = 20.0,
) -> dict[str, float]:
    """The figures of ``evaluate_bed_exits``, ``evaluate_nights`` and ``evaluate_chair_rises`` pooled over
    ``fps_list`` (``bed_exits`` and ``chair_rises`` scenes and ``night_hours`` per frame rate; the k-th frame
    rate uses seeds ``seed + k``, ``seed + 100 + k``, ``seed + 200 + k``, as ``bench/ward_scenes.py`` does for
    each frame rate). A count of 0 leaves that part out."""
    out: dict[str, float] = {}
    leads, errors = [], []
    false, hours, found = 0, 0.0, 0
    for k, fps in enumerate(fps_list):
        if bed_exits:
            leads.append(bed_exit_leads(bed_exits, fps, seed + k))
        if night_hours:
            f, h = night_false_alerts(night_hours, fps, seed + 100 + k, night_stretch_min)
            false, hours = false + f, hours + h
        if chair_rises:
            n_found, err = chair_rise_errors(chair_rises, fps, seed + 200 + k)
            found += n_found
            errors.append(err)
    if leads:
        out.update(_bed_exit_figures(np.concatenate(leads)))
    if hours > 0:
        out.update({"night_hours": hours, "bed_exit_false_per_8h": false * 8.0 / hours})
    if errors:
        out.update(_chair_figures(chair_rises * len(fps_list), found, np.concatenate(errors)))
    return out
