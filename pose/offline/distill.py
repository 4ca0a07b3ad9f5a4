"""Fast Pose Distillation on a site's unlabelled video: collect teacher targets, split, train, export.

1. :func:`collect` drives the daemon's own camera pipeline over each video (``PipelineRun``, supplied by
   ``gaitwatch.tools.recorder``: its detector cadence, tracker, pose schedule, verification of new tracks and
   pose-derived boxes, with the teacher as its pose model) and keeps every crop the pipeline sent to the
   teacher: the box the student will be given, as the crop it will see (with extra context for
   augmentation), plus the teacher's landmarks, visibilities, world landmarks and presence. Boxes over empty
   background are added so the student learns the presence score.
2. :func:`split` holds out whole videos, or (for one video) the last part of its time line: frames a few
   hundredths of a second apart are near-copies, so a frame-interleaved split would measure memory, not
   generalisation (the FPD authors' lesson: split by video).
3. :func:`train` fits the student on the CPU with flip (left/right labels swapped), scale, shift, rotation
   and photometric augmentation, checkpointing every epoch so an interrupted run resumes.
4. :func:`export` writes ONNX (run by onnxruntime) plus a torch state dict and ``student.json``.
5. :func:`agreement` measures PCK of the student against the teacher on held-out people.

Teacher targets are unit Gaussians rendered at the teacher's landmarks. BlazePose's own 64x64 heatmap output
(``Identity_3``) was not used: its peaks sat up to 10 px (of 256) away from the model's regressed landmarks on
knees and ankles of PETS09 walkers, so it would teach a different answer than the one the student is judged
against.

Everything here is synchronous and torch is imported only inside the functions that train or export.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.blazepose import BlazePoseBackend
from gaitwatch.pose.keypoints import NUM_LANDMARKS, Landmark
from gaitwatch.pose.offline.evaluation import PckResult, pck, reference_dataset
from gaitwatch.pose.student import (
    StudentOutput,
    StudentSpec,
    build_student_net,
    count_parameters,
    crop_matrix,
    crop_to_heatmap,
    flip_permutation,
    fpd_loss,
    invert_affine,
    render_heatmaps,
    require_torch,
    to_input_tensor,
    warp_crop,
)
from gaitwatch.pose.student_backend import (
    METADATA_FILE,
    METADATA_FORMAT,
    ONNX_INPUT,
    ONNX_OUTPUTS,
    StudentBackend,
    StudentSettings,
)
from gaitwatch.pose.types import Poses
from gaitwatch.tracking.boxes import iou_matrix

if TYPE_CHECKING:
    import torch

# Called as progress(stage, done, total, note): "collect" counts frames, "train" optimisation steps.
Progress = Callable[[str, int, int, str], None]

CACHE_FILE = "data.npz"
CHECKPOINT_FILE = "checkpoint.pt"
ONNX_FILE = "student.onnx"
TORCH_FILE = "student.pt"

# Crops are stored this much larger than the student's view (same pixel density), so scale and shift
# augmentation draws real surroundings instead of black. 1.25 turns 128 x 96 into 160 x 120: the nominal view
# is then an exact integer sub-window of the stored crop.
STORE_CONTEXT = 1.25


class DistillError(RuntimeError):
    """A distillation step cannot proceed (unreadable video, no people found, mismatched checkpoint)."""


# ----------------------------------------------------------------------------------------------------
# 1. Collection


@dataclass(frozen=True, slots=True)
class CollectSettings:
    """How teacher targets are gathered from video.

    ``fps``: the camera's true frame rate when the container misreports it (PETS09's vtest.avi says 10 and
    is 7); times drive the tracker, whose settings are in seconds. None trusts the container.
    ``background_per_s``: person-sized boxes over background sampled per second of video, labelled with
    the teacher's presence score; more teach the student's presence score better at the teacher's cost.
    ``start_fraction``, ``end_fraction``: part of each video's time line to collect (e.g. 0.7-1.0 for the
    held-out segment of an agreement evaluation).
    ``seed``: background box sampling.
    """

    fps: float | None = None
    background_per_s: float = 2.0
    start_fraction: float = 0.0
    end_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0.0):
            raise ValueError(f"CollectSettings.fps must be positive; got {self.fps}")
        if not (0.0 <= self.start_fraction < self.end_fraction <= 1.0):
            raise ValueError("CollectSettings needs 0 <= start_fraction < end_fraction <= 1")
        if self.background_per_s < 0.0:
            raise ValueError("CollectSettings.background_per_s must be >= 0")


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """One collected video: its path, size in bytes (a cheap identity check), frame count and rate used."""

    path: str
    size: int
    frames: int
    fps: float

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


@dataclass(frozen=True, slots=True)
class DistillData:
    """Teacher targets for M crops, column-wise.

    ``crops`` (M, Hc, Wc, 3) BGR: the student's view of the box enlarged ``context`` times (same pixel
    density); ``matrix`` (M, 2, 3) maps frame pixels into that stored crop; ``box`` (M, 4) the box the
    student would be given (frame pixels); ``keypoints`` (M, 33, 3) the teacher's landmarks (frame pixels,
    visibility), ``world`` (M, 33, 3) its world landmarks (metres), ``presence`` (M,) its person score;
    ``video`` (M,) index into ``videos``, ``frame`` (M,) frame index, ``t`` (M,) seconds from the video's
    start, ``track_id`` (M,) the tracker's id, or -1 for a crop of no track (a background box, or a moving
    region the pipeline's motion-verified recovery looked at).
    """

    videos: tuple[VideoInfo, ...]
    spec_geometry: tuple[int, int, float]
    context: float
    crops: NDArray[np.uint8]
    matrix: NDArray[np.float64]
    box: NDArray[np.float64]
    keypoints: NDArray[np.float32]
    world: NDArray[np.float32]
    presence: NDArray[np.float32]
    video: NDArray[np.int32]
    frame: NDArray[np.int32]
    t: NDArray[np.float64]
    track_id: NDArray[np.int64]

    def __post_init__(self) -> None:
        m = self.crops.shape[0]
        shapes = {
            "matrix": (m, 2, 3),
            "box": (m, 4),
            "keypoints": (m, NUM_LANDMARKS, 3),
            "world": (m, NUM_LANDMARKS, 3),
            "presence": (m,),
            "video": (m,),
            "frame": (m,),
            "t": (m,),
            "track_id": (m,),
        }
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"DistillData.{name} must have shape {shape}; got {getattr(self, name).shape}")
        if self.crops.dtype != np.uint8 or self.crops.ndim != 4:
            raise ValueError("DistillData.crops must be uint8 (M, H, W, 3)")

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    @property
    def person(self) -> NDArray[np.bool_]:
        """Crops the teacher found a person in (keypoint targets apply)."""
        return np.asarray(self.presence >= 0.5, dtype=bool)

    def subset(self, index: NDArray[np.int64]) -> DistillData:
        return DistillData(
            self.videos,
            self.spec_geometry,
            self.context,
            self.crops[index],
            self.matrix[index],
            self.box[index],
            self.keypoints[index],
            self.world[index],
            self.presence[index],
            self.video[index],
            self.frame[index],
            self.t[index],
            self.track_id[index],
        )

    def nominal_crops(self, spec: StudentSpec) -> NDArray[np.uint8]:
        """The exact crops the student sees at inference (the centre of the stored crops), (M, H, W, 3)."""
        oy, ox = self._nominal_offset(spec)
        return np.ascontiguousarray(self.crops[:, oy : oy + spec.input_height, ox : ox + spec.input_width])

    def _nominal_offset(self, spec: StudentSpec) -> tuple[int, int]:
        if self.spec_geometry != _geometry(spec):
            raise DistillError(
                f"the collected crops were cut for input/roi {self.spec_geometry}, the student needs "
                f"{_geometry(spec)}; collect again"
            )
        hc, wc = self.crops.shape[1:3]
        return (hc - spec.input_height) // 2, (wc - spec.input_width) // 2

    def save(self, path: Path) -> None:
        """Write to ``path`` (an uncompressed .npz; crops dominate, ~58 kB each at 160 x 120)."""
        tmp = path.with_name(path.name + ".tmp.npz")
        meta = {
            "videos": [asdict(v) for v in self.videos],
            "spec_geometry": list(self.spec_geometry),
            "context": self.context,
        }
        np.savez(
            tmp,
            meta=np.array(json.dumps(meta)),
            crops=self.crops,
            matrix=self.matrix,
            box=self.box,
            keypoints=self.keypoints,
            world=self.world,
            presence=self.presence,
            video=self.video,
            frame=self.frame,
            t=self.t,
            track_id=self.track_id,
        )
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> DistillData:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            h, w, roi = meta["spec_geometry"]
            return DistillData(
                videos=tuple(VideoInfo(**v) for v in meta["videos"]),
                spec_geometry=(int(h), int(w), float(roi)),
                context=float(meta["context"]),
                crops=z["crops"],
                matrix=z["matrix"],
                box=z["box"],
                keypoints=z["keypoints"],
                world=z["world"],
                presence=z["presence"],
                video=z["video"],
                frame=z["frame"],
                t=z["t"],
                track_id=z["track_id"],
            )


def _geometry(spec: StudentSpec) -> tuple[int, int, float]:
    return (spec.input_height, spec.input_width, float(spec.roi_scale))


def video_info(path: Path, fps: float | None) -> VideoInfo:
    """Frame count and rate of a video (``fps`` overrides the container's rate)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DistillError(f"cannot open video {path}")
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        rate = fps if fps is not None else float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    if frames <= 0:
        raise DistillError(f"video {path} reports no frames")
    if not (math.isfinite(rate) and rate > 0.0):
        raise DistillError(f"video {path} reports no frame rate; give it with --fps")
    return VideoInfo(str(Path(path).resolve()), Path(path).stat().st_size, frames, float(rate))


@dataclass(slots=True)
class _Rows:
    crops: list[NDArray[np.uint8]] = field(default_factory=list)
    matrix: list[NDArray[np.float64]] = field(default_factory=list)
    box: list[NDArray[np.float64]] = field(default_factory=list)
    keypoints: list[NDArray[np.float32]] = field(default_factory=list)
    world: list[NDArray[np.float32]] = field(default_factory=list)
    presence: list[float] = field(default_factory=list)
    video: list[int] = field(default_factory=list)
    frame: list[int] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    track_id: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PipelineFrame:
    """One frame of a pipeline run, as collection needs it: its index in the video and time (seconds from the
    video's start), the image, and the boxes the pipeline's tracks hold (no background box may overlap them)."""

    index: int
    t: float
    image: NDArray[np.uint8]
    occupied: NDArray[np.float64]


# Runs the daemon's camera pipeline over frames [first, stop) of a video (fresh tracker, media time index / fps)
# with the given pose backend as its pose model, yielding each frame once the pipeline has processed it.
PipelineRun = Callable[[VideoInfo, PoseBackend, int, int], Iterable[PipelineFrame]]


class TeacherTap:
    """The teacher, as the pipeline's pose model, keeping every crop the pipeline asks it for: the boxes (and
    track ids) exactly as the pipeline chose them and the teacher's raw answer (before any smoothing)."""

    def __init__(self, teacher: PoseBackend) -> None:
        self._teacher = teacher
        self._calls: list[tuple[NDArray[np.int64], NDArray[np.float64], Poses]] = []

    @property
    def name(self) -> str:
        return self._teacher.name

    @property
    def model_version(self) -> str:
        return self._teacher.model_version

    def estimate(self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
        poses = self._teacher.estimate(image, track_ids, xyxy)
        self._calls.append((track_ids.copy(), np.asarray(xyxy, dtype=np.float64).copy(), poses))
        return poses

    def drain(self) -> list[tuple[NDArray[np.int64], NDArray[np.float64], Poses]]:
        """The calls since the last drain: (track ids, boxes, the teacher's poses), oldest first."""
        calls, self._calls = self._calls, []
        return calls


def collect(
    videos: Sequence[Path],
    spec: StudentSpec,
    teacher: BlazePoseBackend,
    run: PipelineRun,
    settings: CollectSettings | None = None,
    progress: Progress | None = None,
) -> DistillData:
    """Drive the daemon's pipeline over ``videos`` (``run``) with ``teacher`` as its pose model and keep the
    student's view of every crop the pipeline posed, with the teacher's targets, plus background boxes.

    The crops are the daemon's own: confirmed tracks at the pose schedule's rate, new tracks being verified,
    boxes between detections from the teacher's keypoints (``BOX_MIN_VISIBILITY``), the configured detector
    cadence. Raises :class:`DistillError` when a video cannot be read or no person was found at all.
    """
    s = settings if settings is not None else CollectSettings()
    infos = [video_info(Path(v), s.fps) for v in videos]
    ranges = [(int(s.start_fraction * i.frames), math.ceil(s.end_fraction * i.frames)) for i in infos]
    total = sum(b - a for a, b in ranges)
    rows = _Rows()
    rng = np.random.default_rng(s.seed)
    done = 0
    for vi, (info, (first, last)) in enumerate(zip(infos, ranges, strict=True)):
        tap = TeacherTap(teacher)
        heights: list[float] = []
        for frame in run(info, tap, first, last):
            for ids, boxes, poses in tap.drain():
                for tid, box, kp, world, presence in zip(
                    ids, boxes, poses.keypoints, poses.world, poses.presence, strict=True
                ):
                    _add_row(rows, spec, frame.image, box, kp, world, float(presence))
                    rows.video.append(vi)
                    rows.frame.append(frame.index)
                    rows.t.append(frame.t)
                    rows.track_id.append(int(tid) if tid >= 0 else -1)
                    if tid >= 0:
                        heights.append(float(box[3] - box[1]))
            for _ in range(int(rng.poisson(s.background_per_s / info.fps))):
                bg = _background_box(rng, frame.image.shape[1], frame.image.shape[0], frame.occupied, heights)
                if bg is None:
                    continue
                result = teacher.estimate_one(frame.image, bg)
                _add_row(rows, spec, frame.image, bg, result.keypoints, result.world, result.presence)
                rows.video.append(vi)
                rows.frame.append(frame.index)
                rows.t.append(frame.t)
                rows.track_id.append(-1)
            done += 1
            if progress is not None and (done % 10 == 0 or done == total):
                progress("collect", done, total, f"{len(rows.crops)} crops")
    if not rows.crops:
        raise DistillError("no person was tracked in the given videos: nothing to learn from")
    m = len(rows.crops)
    return DistillData(
        videos=tuple(infos),
        spec_geometry=_geometry(spec),
        context=STORE_CONTEXT,
        crops=np.stack(rows.crops),
        matrix=np.stack(rows.matrix),
        box=np.stack(rows.box),
        keypoints=np.stack(rows.keypoints),
        world=np.stack(rows.world),
        presence=np.asarray(rows.presence, dtype=np.float32),
        video=np.asarray(rows.video, dtype=np.int32).reshape(m),
        frame=np.asarray(rows.frame, dtype=np.int32).reshape(m),
        t=np.asarray(rows.t, dtype=np.float64).reshape(m),
        track_id=np.asarray(rows.track_id, dtype=np.int64).reshape(m),
    )


def _add_row(
    rows: _Rows,
    spec: StudentSpec,
    frame: NDArray[np.uint8],
    box: NDArray[np.float64],
    keypoints: NDArray[np.float32],
    world: NDArray[np.float32],
    presence: float,
) -> None:
    m = crop_matrix(box, spec, STORE_CONTEXT)
    w = round(spec.input_width * STORE_CONTEXT)
    h = round(spec.input_height * STORE_CONTEXT)
    rows.crops.append(warp_crop(frame, m, w, h))
    rows.matrix.append(m)
    rows.box.append(np.asarray(box, dtype=np.float64).copy())
    rows.keypoints.append(np.asarray(keypoints, dtype=np.float32).copy())
    rows.world.append(np.asarray(world, dtype=np.float32).copy())
    rows.presence.append(float(presence))


def _background_box(
    rng: np.random.Generator,
    width: int,
    height: int,
    occupied: NDArray[np.float64],
    heights: list[float],
    tries: int = 10,
) -> NDArray[np.float64] | None:
    """A person-shaped box (sized like the people seen so far) overlapping no detection or track."""
    for _ in range(tries):
        h = float(rng.choice(heights)) if heights else 0.25 * height
        h *= float(rng.uniform(0.8, 1.25))
        w = h * float(rng.uniform(0.35, 0.5))
        if w >= width or h >= height:
            return None
        x = float(rng.uniform(0.0, width - w))
        y = float(rng.uniform(0.0, height - h))
        box = np.array([x, y, x + w, y + h], dtype=np.float64)
        if len(occupied) == 0 or float(iou_matrix(box[None], occupied).max()) < 0.05:
            return box
    return None


# ----------------------------------------------------------------------------------------------------
# 2. Splits


SplitKind = Literal["auto", "time", "video"]


@dataclass(frozen=True, slots=True)
class Split:
    """Row indices of the training and validation parts and how they were drawn (for the metadata)."""

    train: NDArray[np.int64]
    val: NDArray[np.int64]
    kind: Literal["time", "video"]
    description: str


def split(data: DistillData, val_fraction: float = 0.3, kind: SplitKind = "auto") -> Split:
    """Disjoint training and validation sets, never interleaved frame by frame.

    "time": in every video, the last ``val_fraction`` of its time line is validation (people seen in both
    parts are seen at different moments, which is what a site's next weeks look like). "video": whole videos
    are held out, the last ones first, until about ``val_fraction`` of the crops are held out (needs >= 2
    videos; the stronger test, since backgrounds and people may differ). "auto": "video" with several videos,
    else "time".
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    chosen: Literal["time", "video"] = (
        "video" if kind == "video" or (kind == "auto" and len(data.videos) > 1) else "time"
    )
    if chosen == "video":
        if len(data.videos) < 2:
            raise ValueError("a split by video needs at least two videos")
        counts = np.bincount(data.video, minlength=len(data.videos))
        held: list[int] = []
        for vi in range(len(data.videos) - 1, 0, -1):
            if counts[held].sum() >= val_fraction * len(data):
                break
            held.append(vi)
        is_val = np.isin(data.video, held)
        names = ", ".join(Path(data.videos[v].path).name for v in sorted(held))
        desc = f"held-out videos: {names}"
    else:
        cut = np.array([(1.0 - val_fraction) * v.duration_s for v in data.videos])
        is_val = data.t >= cut[data.video]
        desc = f"per video, frames from {100 * (1 - val_fraction):.0f}% of its duration on are validation"
    index = np.arange(len(data), dtype=np.int64)
    return Split(index[~is_val], index[is_val], chosen, desc)


# ----------------------------------------------------------------------------------------------------
# 3. Training


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """Knobs of the training loop.

    ``epochs``: passes over the training crops; the learning rate follows one cosine decay over all of them.
    More epochs keep improving agreement slowly; cost is linear (about a minute per 3000 crops on one
    core of a 2-core PC for the default student).
    ``batch_size``, ``learning_rate``, ``weight_decay``: AdamW. Larger batches are faster per crop on CPU but
    give fewer updates per epoch.
    ``alpha``: FPD's teacher/ground-truth balance (``fpd_loss``); moot on unlabelled video (no ground truth).
    ``heatmap_sigma``: target Gaussian width in heatmap cells (see ``render_heatmaps``).
    ``scale_jitter``: crop scale drawn log-uniformly in [1/(1+j), 1+j], mimicking a detector's box size
    error; ``shift_jitter``: centre shift up to this fraction of the crop's size; ``rotation_deg``: lean up to
    this angle; ``flip``: mirror half the crops (left/right labels swapped). Stronger jitter makes the student
    robust to worse boxes but spends capacity on poses it will rarely see.
    ``photometric``: brightness/contrast/colour jitter, occasional blur and greyscale (night-time IR
    cameras); strength in [0, 1].
    ``integral_weight``: weight of an L1 loss on each heatmap's soft-argmax (integral regression, Sun et al.
    2018) against the teacher's keypoint, in heatmap cells; ``integral_beta`` sharpens the softmax. The
    heatmap MSE alone is minimised by hedging (equal peaks on both feet when unsure which is the left one,
    after which both ankles often decode to the same foot); the soft-argmax sits between the peaks then, so
    this term pushes the student to commit to the likelier side. 0 disables it.
    ``coord_weight``: weight of the coarse position head's L1 loss (heatmap cells), whose answers decide which
    of two heatmap peaks is the left joint (``student.assign_pairs``).
    ``foot_weight``: weight of ankles, heels and toes relative to the other keypoints in the keypoint losses.
    Gait metrics hang on the feet, and the feet are where a small student loses most (FPD saw the same):
    raising it spends the student's capacity there at some cost to arms and face.
    ``aux_weight``: weight of the visibility and presence losses; ``world_weight``: of the world landmarks.
    ``threads``: torch threads. On a 2-core PC that other work shares, one thread was ~5x faster per step than
    two (two threads stall on each other whenever one core is busy).
    ``seed``: initial weights and augmentation draws.
    """

    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    alpha: float = 0.5
    heatmap_sigma: float = 1.5
    scale_jitter: float = 0.2
    shift_jitter: float = 0.06
    rotation_deg: float = 10.0
    flip: bool = True
    photometric: float = 1.0
    integral_weight: float = 1.0
    integral_beta: float = 20.0
    coord_weight: float = 1.0
    foot_weight: float = 2.0
    aux_weight: float = 0.1
    world_weight: float = 1.0
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1:
            raise ValueError("TrainSettings.epochs, batch_size and threads must be >= 1")
        if not (0.0 <= self.alpha <= 1.0):
            raise ValueError(f"TrainSettings.alpha must be in [0, 1]; got {self.alpha}")
        if not (self.learning_rate > 0.0 and self.heatmap_sigma > 0.0):
            raise ValueError("TrainSettings.learning_rate and heatmap_sigma must be positive")
        if self.scale_jitter < 0.0 or self.shift_jitter < 0.0 or self.rotation_deg < 0.0:
            raise ValueError("TrainSettings jitters must be >= 0")


@dataclass(frozen=True, slots=True)
class Batch:
    """One augmented training batch (numpy): inputs (B, 3, H, W), heatmap targets (B, K, h, w), keypoint
    weights (B, K), visibility (B, K) and presence (B,) targets, world targets (B, K, 3) and whether the
    crop holds a person (B,)."""

    inputs: NDArray[np.float32]
    heatmaps: NDArray[np.float32]
    weight: NDArray[np.float32]
    visibility: NDArray[np.float32]
    presence: NDArray[np.float32]
    world: NDArray[np.float32]
    person: NDArray[np.float32]
    keypoints: NDArray[np.float64]


def make_batch(
    data: DistillData,
    rows: NDArray[np.int64],
    spec: StudentSpec,
    settings: TrainSettings,
    rng: np.random.Generator,
    augment: bool = True,
) -> Batch:
    """Cut (and, with ``augment``, randomly transform) the student's view of ``rows`` with their targets."""
    lm = list(spec.keypoints)
    perm = flip_permutation(spec.landmarks)
    h, w = spec.input_height, spec.input_width
    hc, wc = data.crops.shape[1:3]
    n = len(rows)
    inputs = np.empty((n, h, w, 3), dtype=np.uint8)
    keypoints = np.empty((n, len(lm), 2), dtype=np.float64)
    visibility = np.empty((n, len(lm)), dtype=np.float32)
    world = np.empty((n, len(lm), 3), dtype=np.float32)
    for i, r in enumerate(rows):
        scale, angle, shift, flip = 1.0, 0.0, np.zeros(2), False
        if augment:
            j = settings.scale_jitter
            scale = math.exp(rng.uniform(-math.log1p(j), math.log1p(j)))
            angle = math.radians(rng.uniform(-settings.rotation_deg, settings.rotation_deg))
            shift = rng.uniform(-settings.shift_jitter, settings.shift_jitter, 2) * np.array([wc, hc])
            flip = settings.flip and bool(rng.random() < 0.5)
        # input = c_in + scale * R(angle) * F * (stored - c_stored - shift), F mirrors x when flipping.
        c, s_ = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s_], [s_, c]])
        mirror = np.diag([-1.0 if flip else 1.0, 1.0])
        a = scale * rot @ mirror
        t = np.array([w / 2.0, h / 2.0]) - a @ (np.array([wc / 2.0, hc / 2.0]) + shift)
        aug = np.hstack([a, t[:, None]])
        inputs[i] = warp_crop(data.crops[r], aug, w, h)
        frame_to_input = aug[:, :2] @ data.matrix[r]
        frame_to_input[:, 2] += aug[:, 2]
        kp = data.keypoints[r, lm]
        xy = kp[:, :2].astype(np.float64) @ frame_to_input[:, :2].T + frame_to_input[:, 2]
        wld = data.world[r, lm].astype(np.float64)
        wld[:, :2] = wld[:, :2] @ (rot @ mirror).T
        vis = kp[:, 2]
        if flip:
            xy, vis, wld = xy[perm], vis[perm], wld[perm]
        keypoints[i] = xy
        visibility[i] = vis
        world[i] = wld
    if augment and settings.photometric > 0.0:
        inputs = _photometric(inputs, rng, settings.photometric)
    person = (data.presence[rows] >= 0.5).astype(np.float32)
    heatmaps = render_heatmaps(
        crop_to_heatmap(keypoints, spec.STRIDE),
        spec.heatmap_height,
        spec.heatmap_width,
        settings.heatmap_sigma,
    )
    feet = {Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE, Landmark.LEFT_HEEL, Landmark.RIGHT_HEEL}
    feet |= {Landmark.LEFT_FOOT_INDEX, Landmark.RIGHT_FOOT_INDEX}
    joint_weight = np.array([settings.foot_weight if l_ in feet else 1.0 for l_ in spec.landmarks], np.float32)
    weight = person[:, None] * joint_weight[None, :]
    return Batch(
        inputs=to_input_tensor(inputs),
        heatmaps=heatmaps,
        weight=weight,
        visibility=visibility,
        presence=data.presence[rows].astype(np.float32),
        world=world,
        person=person,
        keypoints=keypoints,
    )


def _photometric(crops: NDArray[np.uint8], rng: np.random.Generator, strength: float) -> NDArray[np.uint8]:
    x = crops.astype(np.float32)
    n = x.shape[0]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(1.0 - 0.3 * strength, 1.0 + 0.3 * strength, (n, 1, 1, 1)).astype(np.float32)
    brightness = rng.uniform(-40.0 * strength, 40.0 * strength, (n, 1, 1, 1)).astype(np.float32)
    colour = rng.uniform(1.0 - 0.1 * strength, 1.0 + 0.1 * strength, (n, 1, 1, 3)).astype(np.float32)
    x = (x - mean) * contrast + mean + brightness
    x *= colour
    grey = np.asarray(rng.random(n) < 0.1 * strength, dtype=bool)
    if grey.any():
        x[grey] = x[grey].mean(axis=3, keepdims=True)
    out = np.asarray(np.clip(x, 0.0, 255.0), dtype=np.uint8)
    for i in np.flatnonzero(rng.random(n) < 0.2 * strength):
        sigma = float(rng.uniform(0.5, 1.2))
        out[i] = np.asarray(cv2.GaussianBlur(out[i], (0, 0), sigma), dtype=np.uint8)
    return out


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A finished training run: the network (torch module), epochs done, wall minutes spent training
    (summed over resumed sessions), and the per-epoch history (loss, validation PCK when measured)."""

    net: Any
    epochs: int
    minutes: float
    history: list[dict[str, float]]


def _settings_key(spec: StudentSpec, settings: TrainSettings, data: DistillData, rows: NDArray[np.int64]) -> str:
    """Identity of a training run: a checkpoint only resumes a run with the same inputs."""
    h = hashlib.sha256()
    h.update(json.dumps(spec.as_dict(), sort_keys=True).encode())
    d = asdict(settings)
    d.pop("threads")  # resuming on another thread count is the same run
    h.update(json.dumps(d, sort_keys=True).encode())
    h.update(json.dumps([asdict(v) for v in data.videos], sort_keys=True).encode())
    h.update(np.ascontiguousarray(rows).tobytes())
    h.update(np.ascontiguousarray(data.presence[rows]).tobytes())
    return h.hexdigest()[:16]


def train(
    data: DistillData,
    train_rows: NDArray[np.int64],
    spec: StudentSpec,
    settings: TrainSettings,
    checkpoint: Path | None = None,
    resume: bool = False,
    evaluate: Callable[[Any], dict[str, float]] | None = None,
    progress: Progress | None = None,
    until_epoch: int | None = None,
    evaluate_every: int = 1,
) -> TrainResult:
    """Train a student on ``data[train_rows]``; returns the trained network in eval mode.

    With ``checkpoint``, the state is saved there after every epoch; with ``resume`` an existing checkpoint of
    the same run (same spec, settings, data and rows) continues where it stopped, and a different one is an
    error (:class:`DistillError`) rather than a silent restart. ``evaluate(net)`` runs after every epoch when
    given (every ``evaluate_every`` epochs and after the last) and its figures (e.g. validation PCK) go into
    the history and the progress note. ``until_epoch``
    ends this session early after that epoch (the schedule stays the full run's), e.g. to train in slices.
    """
    torch = require_torch()
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    # Channels-last (NHWC) memory: oneDNN's depthwise convolutions ran ~1.6x faster per step this way here.
    # (documented in torch, but missing from the Module.to overloads of its type stubs)
    net = build_student_net(spec).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_rows) / settings.batch_size))
    total_steps = settings.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=settings.learning_rate, total_steps=total_steps, pct_start=0.05, anneal_strategy="cos"
    )
    key = _settings_key(spec, settings, data, train_rows)
    start_epoch, minutes, history = 0, 0.0, []
    if checkpoint is not None and resume and checkpoint.is_file():
        state = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
        if state.get("key") != key:
            raise DistillError(
                f"checkpoint {checkpoint} belongs to another run (different data, student or settings); "
                "drop --resume (or delete it) to train afresh"
            )
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, minutes, history = int(state["epoch"]), float(state["minutes"]), list(state["history"])
    train_rows = np.asarray(train_rows, dtype=np.int64)
    stop = settings.epochs if until_epoch is None else min(until_epoch, settings.epochs)
    for epoch in range(start_epoch, stop):
        began = time.perf_counter()
        net.train()
        # Per-epoch generator: a resumed run draws the same batches as an uninterrupted one.
        rng = np.random.default_rng([settings.seed, epoch])
        order = rng.permutation(train_rows)
        losses: list[float] = []
        for step in range(steps_per_epoch):
            rows = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            if len(rows) == 0:
                continue
            batch = make_batch(data, rows, spec, settings, rng)
            loss = _loss(torch, net, batch, settings)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                done = epoch * steps_per_epoch + step + 1
                progress("train", done, total_steps, f"epoch {epoch + 1}/{settings.epochs} loss {losses[-1]:.4f}")
        net.eval()
        record: dict[str, float] = {
            "epoch": float(epoch + 1),
            "loss": float(np.mean(losses)) if losses else 0.0,
        }
        if evaluate is not None and ((epoch + 1) % evaluate_every == 0 or epoch + 1 == settings.epochs):
            record.update(evaluate(net))
        minutes += (time.perf_counter() - began) / 60.0
        record["minutes"] = minutes
        history.append(record)
        if progress is not None:
            note = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch")
            progress("epoch", epoch + 1, settings.epochs, note)
        if checkpoint is not None:
            _save_checkpoint(
                torch,
                checkpoint,
                {
                    "key": key,
                    "epoch": epoch + 1,
                    "minutes": minutes,
                    "history": history,
                    "net": net.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "spec": spec.as_dict(),
                },
            )
    net.eval()
    return TrainResult(net, len(history), minutes, history)


def _loss(tm: Any, net: Any, batch: Batch, settings: TrainSettings) -> torch.Tensor:
    f = tm.nn.functional
    heatmaps, aux = net(tm.from_numpy(batch.inputs).contiguous(memory_format=tm.channels_last))
    k = heatmaps.shape[1]
    person = tm.from_numpy(batch.person)
    hm_loss = fpd_loss(heatmaps, tm.from_numpy(batch.heatmaps), tm.from_numpy(batch.weight), alpha=settings.alpha)
    vis = f.binary_cross_entropy_with_logits(aux[:, :k], tm.from_numpy(batch.visibility), reduction="none")
    vis_loss = (vis.mean(dim=1) * person).sum() / person.sum().clamp(min=1.0)
    presence_loss = f.binary_cross_entropy_with_logits(aux[:, k], tm.from_numpy(batch.presence))
    world = f.smooth_l1_loss(
        aux[:, k + 1 : 4 * k + 1].reshape(-1, k, 3), tm.from_numpy(batch.world), reduction="none", beta=0.05
    )
    world_loss = (world.mean(dim=(1, 2)) * person).sum() / person.sum().clamp(min=1.0)
    aux_loss = settings.aux_weight * (vis_loss + presence_loss) + settings.world_weight * world_loss
    if settings.integral_weight > 0.0:
        aux_loss = aux_loss + settings.integral_weight * _integral_loss(tm, heatmaps, batch, settings)
    # The coarse position head, in heatmap cells like the integral term (it only has to pick the side).
    size = tm.tensor([heatmaps.shape[3], heatmaps.shape[2]], dtype=heatmaps.dtype)
    coords = aux[:, 4 * k + 1 :].reshape(-1, k, 2) * size - 0.5
    target = tm.from_numpy(np.asarray(batch.keypoints / StudentSpec.STRIDE - 0.5, dtype=np.float32))
    coord_l1 = (coords - target).abs().sum(dim=2)
    weight = tm.from_numpy(batch.weight)
    aux_loss = aux_loss + settings.coord_weight * (coord_l1 * weight).sum() / weight.sum().clamp(min=1.0)
    return cast("torch.Tensor", hm_loss + aux_loss)


def _integral_loss(tm: Any, heatmaps: Any, batch: Batch, settings: TrainSettings) -> Any:
    """L1 distance (heatmap cells) between each heatmap's soft-argmax and the teacher's keypoint."""
    n, k, h, w = heatmaps.shape
    prob = tm.softmax(settings.integral_beta * heatmaps.reshape(n, k, h * w), dim=2).reshape(n, k, h, w)
    xs = tm.arange(w, dtype=heatmaps.dtype)
    ys = tm.arange(h, dtype=heatmaps.dtype)
    ex = (prob.sum(dim=2) * xs).sum(dim=2)
    ey = (prob.sum(dim=3) * ys).sum(dim=2)
    target = tm.from_numpy(np.asarray(batch.keypoints / StudentSpec.STRIDE - 0.5, dtype=np.float32))
    # A keypoint outside the crop cannot be a soft-argmax of the crop's heatmap: leave it to the MSE term.
    inside = (target[..., 0] >= 0) & (target[..., 0] <= w - 1) & (target[..., 1] >= 0) & (target[..., 1] <= h - 1)
    weight = tm.from_numpy(batch.weight) * inside.to(heatmaps.dtype)
    l1 = (ex - target[..., 0]).abs() + (ey - target[..., 1]).abs()
    return (l1 * weight).sum() / weight.sum().clamp(min=1.0)


def _save_checkpoint(torch: Any, path: Path, state: dict[str, Any]) -> None:
    # Write then rename: a run killed mid-save keeps the previous epoch's checkpoint intact.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, str(tmp))
    tmp.replace(path)


def torch_predict(net: Any, crops: NDArray[np.uint8], spec: StudentSpec, batch: int = 64) -> StudentOutput:
    """Run a torch student on nominal crops (N, H, W, 3); decoded like the exported model."""
    from gaitwatch.pose.student import decode_outputs

    torch = require_torch()
    parts: list[StudentOutput] = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            x = torch.from_numpy(to_input_tensor(crops[start : start + batch]))
            heatmaps, aux = net(x.contiguous(memory_format=torch.channels_last))
            parts.append(decode_outputs(heatmaps.numpy(), aux.numpy(), spec))
    return StudentOutput(
        np.concatenate([p.keypoints for p in parts]),
        np.concatenate([p.visibility for p in parts]),
        np.concatenate([p.presence for p in parts]),
        np.concatenate([p.world for p in parts]),
    )


# ----------------------------------------------------------------------------------------------------
# 4. Agreement with the teacher


@dataclass(frozen=True, slots=True)
class Agreement:
    """Student vs teacher on held-out people: PCK at each threshold (fractions of the box's longer side)
    over every student keypoint (``all``) and over the joints the teacher saw (visibility >= 0.5,
    ``visible``), plus presence agreement on all crops (the fraction where both sides of 0.5 agree)."""

    all: dict[float, PckResult]
    visible: dict[float, PckResult]
    presence_agreement: float
    people: int

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"people": self.people, "presence_agreement": round(self.presence_agreement, 4)}
        for t, r in self.all.items():
            out[f"pck_{t:g}"] = r.as_dict()
        for t, r in self.visible.items():
            out[f"pck_{t:g}_visible"] = r.as_dict()
        return out


AGREEMENT_THRESHOLDS = (0.05, 0.1)


def agreement(data: DistillData, rows: NDArray[np.int64], spec: StudentSpec, output: StudentOutput) -> Agreement:
    """PCK of the student's ``output`` for ``data[rows]`` (its nominal crops, in order) against the teacher.

    Only crops the teacher found a person in count for PCK (the daemon drops the others), every student
    keypoint of them, in frame pixels.
    """
    rows = np.asarray(rows, dtype=np.int64)
    oy, ox = data._nominal_offset(spec)
    person = data.presence[rows] >= 0.5
    pred = np.full((len(rows), NUM_LANDMARKS, 2), np.nan, dtype=np.float64)
    for i, r in enumerate(rows):
        back = invert_affine(data.matrix[r])
        stored = output.keypoints[i] + np.array([ox, oy], dtype=np.float64)
        pred[i, list(spec.keypoints)] = stored @ back[:, :2].T + back[:, 2]
    keep = rows[person]
    names = [Path(data.videos[v].path) for v in data.video[keep]]
    results: dict[str, dict[float, PckResult]] = {}
    for label, min_vis in (("all", 0.0), ("visible", 0.5)):
        ds = reference_dataset("agreement", names, data.box[keep], data.keypoints[keep], spec.landmarks, min_vis)
        results[label] = {t: pck(ds, pred[person], t) for t in AGREEMENT_THRESHOLDS}
    both = (output.presence >= 0.5) == person
    return Agreement(
        results["all"], results["visible"], float(both.mean()) if len(both) else math.nan, int(person.sum())
    )


# ----------------------------------------------------------------------------------------------------
# 5. Export


def export(net: Any, spec: StudentSpec, out_dir: Path, metadata: dict[str, Any]) -> Path:
    """Write the student for inference into ``out_dir``: ``student.onnx`` (when export and an onnxruntime
    check succeed), ``student.pt`` (torch state dict, always) and ``student.json``; returns the json's path.

    The ONNX file takes (N, 3, H, W) float32 BGR 0-255 with a dynamic batch and returns ``heatmaps`` and
    ``aux``. If the ONNX exporter fails, or onnxruntime's outputs differ from torch's by more than 1e-3,
    the metadata points at the torch weights instead (the backend then needs torch).
    """
    torch = require_torch()
    out_dir.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    torch.save(net.state_dict(), str(out_dir / TORCH_FILE))
    onnx_path = out_dir / ONNX_FILE
    model_file, model_format, note = TORCH_FILE, "torch", ""
    try:
        probe = torch.rand(3, 3, spec.input_height, spec.input_width) * 255.0
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in torch 2.9+, but the torch.export-based one
            # needs onnxscript, which is not installed with the CPU build; the old one exports this net fine.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (probe,),
                str(onnx_path),
                dynamo=False,
                input_names=[ONNX_INPUT],
                output_names=list(ONNX_OUTPUTS),
                dynamic_axes={name: {0: "batch"} for name in (ONNX_INPUT, *ONNX_OUTPUTS)},
                opset_version=17,
            )
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: probe.numpy()})
        with torch.inference_mode():
            want = [t.numpy() for t in net(probe)]
        diff = max(float(np.abs(np.asarray(g) - w).max()) for g, w in zip(got, want, strict=True))
        if diff > 1e-3:
            note = f"ONNX export differs from torch by {diff:.3g}; using the torch weights"
        else:
            model_file, model_format = ONNX_FILE, "onnx"
    except Exception as exc:  # any exporter or runtime failure falls back to the torch weights
        note = f"ONNX export failed ({type(exc).__name__}: {exc}); using the torch weights"
    model_path = out_dir / model_file
    meta = {
        "format": METADATA_FORMAT,
        "model": {
            "file": model_file,
            "format": model_format,
            "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
            "torch_weights": TORCH_FILE,
            "parameters": count_parameters(net),
            "export_note": note,
            "input": {
                "name": ONNX_INPUT,
                "layout": "NCHW",
                "channels": "BGR",
                "range": [0, 255],
                "height": spec.input_height,
                "width": spec.input_width,
            },
            "outputs": {
                "heatmaps": f"(N, K, {spec.heatmap_height}, {spec.heatmap_width}), stride {spec.STRIDE}",
                "aux": "(N, 6K + 1): K visibility logits, 1 presence logit, 3K world coordinates (metres), "
                "2K coarse positions (fractions of the crop's width and height)",
            },
        },
        "spec": spec.as_dict(),
        "keypoints": [lm.name.lower() for lm in spec.landmarks],
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **metadata,
    }
    path = out_dir / METADATA_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------------------------------
# Speed


def time_per_crop(run_one: Callable[[NDArray[np.float64]], object], boxes: NDArray[np.float64]) -> float:
    """Median milliseconds of ``run_one(box)`` over ``boxes`` after a 10-box warm-up."""
    for box in boxes[:10]:
        run_one(box)
    ms = []
    for box in boxes:
        start = time.perf_counter()
        run_one(box)
        ms.append(1000.0 * (time.perf_counter() - start))
    return float(np.median(ms))


def measure_speed(
    student_dir: Path, teacher: BlazePoseBackend, frame: NDArray[np.uint8], boxes: NDArray[np.float64]
) -> tuple[float, float]:
    """(student_ms, teacher_ms): median per crop on one thread, crop extraction included, one box per call.

    The teacher's figure is one BlazePose pass (``run_roi``), as ``bench/pose_speed.py`` reports it; its
    default configuration runs two passes per person.
    """
    from gaitwatch.pose.roi import roi_from_box

    cv2.setNumThreads(1)
    student = StudentBackend(StudentSettings(student_dir, num_threads=1))
    ids = np.zeros(1, dtype=np.int64)
    student_ms = time_per_crop(lambda b: student.estimate(frame, ids, b[None]), boxes)
    teacher_ms = time_per_crop(lambda b: teacher.run_roi(frame, roi_from_box(b, teacher.settings.roi_scale)), boxes)
    return student_ms, teacher_ms


def evaluate_export(student_dir: Path, data: DistillData, rows: NDArray[np.int64]) -> Agreement:
    """Agreement of the exported student (as the backend runs it) with the teacher on ``data[rows]``."""
    backend = StudentBackend(StudentSettings(student_dir, num_threads=1))
    sub = data.subset(np.asarray(rows, dtype=np.int64))
    output = backend.run_crops(sub.nominal_crops(backend.spec))
    return agreement(data, rows, backend.spec, output)
