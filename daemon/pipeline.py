"""One camera's processing chain, frame by frame: detect -> track -> pose -> trajectories -> gait -> alerts.

Synchronous on purpose: it runs in the daemon's single inference thread (so crops of several cameras never fight
over the two cores), and the same object runs offline in tests, replays and benchmarks. It owns per-camera state
(tracker, pose schedule, and the gait stage with its trajectory buffers and alert policy); the detector, pose
backend and classifier are shared between cameras because they hold no per-camera state and are only ever called
from the one inference thread. The gait stage is ``gaitwatch.gait.stage.GaitStage``, the very object a replay of
a recording drives, so offline gait figures are the daemon's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.floor_stage import FloorStage
from gaitwatch.gait.settings import AlertPolicySettings, GaitSettings
from gaitwatch.gait.stage import GaitStage
from gaitwatch.gait.types import Alert, GaitResult
from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.pool import PoseBackendPool
from gaitwatch.pose.recovery import RecoverySettings, duplicate_poses, recovered_detections, recovery_candidates
from gaitwatch.pose.roi import box_from_keypoints
from gaitwatch.pose.schedule import PoseScheduler
from gaitwatch.pose.temporal import PoseTemporalFilter
from gaitwatch.pose.types import Poses
from gaitwatch.tracking.boxes import iou_matrix
from gaitwatch.tracking.detector import BetweenScansDetector, PersonDetector
from gaitwatch.tracking.search_regions import SearchRegionPlanner, detect_in_regions
from gaitwatch.tracking.tracker import Tracker
from gaitwatch.tracking.types import Detections, Frame, Tracks, TrackState

STAGES = ("detect", "track", "pose", "gait")

# A pose-derived box is trusted as the track's observation only from landmarks the model itself believes in.
BOX_MIN_VISIBILITY = 0.5
NO_RECOVERY = RecoverySettings(crops_per_frame=0)


@dataclass(frozen=True, slots=True)
class TimedDetections:
    """A frame's detections, the seconds the detector took (run ahead of ``process``, on another thread) and
    whether it scanned the whole frame (else only the regions that changed and those around tracked people).
    ``motion``: the blobs that changed since the previous detection (N, 4 xyxy), for motion-verified recovery."""

    detections: Detections
    seconds: float
    whole_frame: bool = True
    motion: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float64))


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything one frame produced, for publishing, metrics and rendering (never leaves the PC as pixels)."""

    frame: Frame
    detected: bool
    tracks: Tracks
    poses: Poses
    gait: tuple[GaitResult, ...]
    alerts: tuple[Alert, ...]
    stage_s: Mapping[str, float]
    # Crops sent to the pose model (people not posed again yet, and crops that held nobody, included) and the
    # CPU seconds of this thread inside the model call: what pose itself costs, as measured inside the daemon.
    pose_crops: int = 0
    pose_cpu_s: float = 0.0
    # Whether the detector (when it ran) scanned the whole frame rather than its search regions.
    whole_frame: bool = False
    # Motion-verified recovery: pose crops sent to moving regions nobody explained (included in pose_crops)
    # and the people they found, who became detections for the tracker.
    recovery_crops: int = 0
    recovered: int = 0
    # Ids of the confirmed tracks whose latest pose crop held a person: the pipeline's people, as opposed to
    # tracks kept alive by detector boxes alone (which may hold furniture).
    people_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """``detect_interval_s``: run the detector once this much time has passed since the last detection
    (0 = every frame); between detections boxes come from pose. ``min_presence``: pose crops scored below this
    are not people and are not recorded. ``region_nms_iou``: overlap above which the weaker of two detections
    from neighbouring search regions is dropped (see ``detect_in_regions``). ``recovery``: pose crops for moving
    regions no detection or posed track explains (``gaitwatch.pose.recovery``); off unless configured.
    ``verify_new_tracks``: tracks that are not confirmed (new, or lost because the detector missed them) are
    posed on every frame too, as long as their last crop held a person, and a crop holding a person counts as an
    observation. A newcomer is confirmed within a few frames instead of waiting for ``min_hits`` detections
    (seconds, with a detection every ``detect_interval_s``), and a person the detector misses now and then
    (seated, bent over, close to the camera) keeps their track; a detector false positive costs one crop."""

    detect_interval_s: float
    min_presence: float
    region_nms_iou: float = 0.3
    recovery: RecoverySettings = NO_RECOVERY
    verify_new_tracks: bool = False


def own_motion_regions(before: NDArray[np.float64], now: NDArray[np.float64], margin: float) -> NDArray[np.float64]:
    """The moving region each known person's own motion makes for recovery (``recovery_candidates``), to count
    as explained: the box spanning where they were at the last detection (``before``) and where they are
    ``now`` (the image changed at both places since then), grown by recovery's blob-joining ``margin`` (as a
    fraction of its height), as the region is. A walker's own box covers only ~25% of that region: without
    these, 72 of vtest's 138 recovery crops posed a walker already tracked, the budget's largest waste."""
    span = np.concatenate([np.minimum(before[:, :2], now[:, :2]), np.maximum(before[:, 2:], now[:, 2:])], axis=1)
    pad = margin * (span[:, 3] - span[:, 1])
    grown: NDArray[np.float64] = span + np.stack([-pad, -pad, pad, pad], axis=1)
    return grown


class CameraPipeline:
    def __init__(
        self,
        camera_id: str,
        settings: PipelineSettings,
        detector: PersonDetector,
        regions: SearchRegionPlanner,
        tracker: Tracker,
        pose: PoseBackend,
        scheduler: PoseScheduler,
        temporal: PoseTemporalFilter,
        gait_settings: GaitSettings,
        classifier: GaitClassifier,
        policy: AlertPolicy,
        clock: Callable[[], float] = time.perf_counter,
        floor: FloorStage | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._settings = settings
        self._detector = detector
        self._regions = regions
        self._tracker = tracker
        self._pose = pose
        self._scheduler = scheduler
        self._temporal = temporal
        # Windows, analysis, classification and alerts: the same stage replays and evaluations run.
        self._gait = GaitStage(gait_settings, classifier, policy, floor)
        self._clock = clock
        self._last_detect_t: float | None = None
        # The boxes of the last processed frame's tracks: the detector also searches around them.
        self._track_boxes = np.zeros((0, 4), dtype=np.float64)
        self._track_ids = np.zeros(0, dtype=np.int64)
        # Each track's box at the last detection: the motion a detection sees is the change since then, so a
        # known person's own motion spans the box they had then and the box they have now.
        self._boxes_at_detection: dict[int, np.ndarray] = {}
        # Whether each track's latest pose crop held a person (presence >= min_presence).
        self._present: dict[int, bool] = {}
        # Each track's latest landmarks that held a person: two tracks on one person are told apart by them.
        self._last_keypoints: dict[int, np.ndarray] = {}

    @property
    def gait(self) -> GaitStage:
        """This camera's gait stage (``gait.fresh()`` replays a recording of it from scratch)."""
        return self._gait

    @property
    def tracked_people(self) -> int:
        """People with a keypoint history right now."""
        return self._gait.tracked_people

    def update_alert_policy(self, settings: AlertPolicySettings) -> None:
        """A config reload: new thresholds apply from the next gait window; open alerts keep their state."""
        self._gait.policy_settings = settings

    def detection_due(self, t: float) -> bool:
        """Whether the frame at ``t`` should go through the person detector."""
        return self._last_detect_t is None or t - self._last_detect_t >= self._settings.detect_interval_s

    def detect(self, frame: Frame) -> TimedDetections:
        """Run the detector on ``frame``, on the whole frame or on its search regions. The daemon runs it on a
        detection thread, overlapping another camera's pose inference, and ``process`` then takes the result;
        a camera's frames go through ``detect`` and ``process`` one at a time and in order, so the region
        planner (this camera's own) and the track boxes it reads are never used by two threads at once."""
        started = self._clock()
        plan = self._regions.plan_with_motion(
            frame.t, frame.image, self._track_boxes, keep_motion=self._settings.recovery.crops_per_frame > 0
        )
        regions = plan.regions
        if regions is None:
            detections = self._detector.detect(frame.image)
        elif isinstance(self._detector, BetweenScansDetector):
            detections = self._detector.detect_between_scans(frame.image)
        else:
            detections = detect_in_regions(self._detector, frame.image, regions, self._settings.region_nms_iou)
        return TimedDetections(detections, self._clock() - started, whole_frame=regions is None, motion=plan.motion)

    def process(self, frame: Frame, detected: TimedDetections | None = None) -> FrameResult:
        """Track, pose and analyse one frame. ``detected``: this frame's detections when the caller ran the
        detector already; otherwise the detector runs here when due."""
        stage_s: dict[str, float] = {}
        t = frame.t
        if detected is None and self.detection_due(t):
            detected = self.detect(frame)
        stage_s["detect"] = detected.seconds if detected is not None else 0.0
        mark = self._clock()

        recovery_crops = recovered = 0
        recovery_cpu_s = recovery_wall_s = 0.0
        if detected is not None:
            self._last_detect_t = t
            detections = detected.detections
            if self._settings.recovery.crops_per_frame and len(detected.motion):
                recovery_started = self._clock()
                found, recovery_crops, recovery_cpu_s = self._recover(frame, detected)
                recovery_wall_s = self._clock() - recovery_started
                recovered = len(found)
                if recovered:
                    detections = Detections(
                        np.concatenate([detections.xyxy, found.xyxy]), np.concatenate([detections.score, found.score])
                    )
            tracks = self._tracker.update(detections, t)
        else:
            tracks = self._tracker.predict(t)
        now = self._clock()
        # Recovery crops are pose work: their time goes to the pose stage, not to tracking.
        stage_s["track"], mark = now - mark - recovery_wall_s, now - recovery_wall_s

        raw, pose_crops, pose_cpu_s = self._estimate_poses(frame, tracks)
        pose_crops += recovery_crops
        pose_cpu_s += recovery_cpu_s
        if detected is None and len(raw):
            # Raw landmarks, not smoothed ones: the tracker's observation must not lag the person.
            tracks = self._correct_from_poses(raw, t, tracks)
        elif self._settings.verify_new_tracks and len(raw):
            # A detection frame: the detector observed the confirmed tracks; the others only pose can observe.
            unconfirmed = tracks.ids[tracks.state != TrackState.CONFIRMED]
            tracks = self._correct_from_poses(raw.select(np.isin(raw.track_ids, unconfirmed)), t, tracks)
        if self._settings.verify_new_tracks and len(raw):
            # Verification crops of tracks still tentative serve the tracker only: downstream sees people once
            # their track is confirmed (this very frame, when the crop's observation confirmed it).
            confirmed = tracks.ids[tracks.state == TrackState.CONFIRMED]
            raw = raw.select(np.isin(raw.track_ids, confirmed))
        poses = self._temporal.update(t, raw).poses
        now = self._clock()
        stage_s["pose"], mark = now - mark, now

        gait, alerts = self._analyse(poses, tracks, t)
        stage_s["gait"] = self._clock() - mark
        self._track_boxes, self._track_ids = tracks.xyxy, tracks.ids
        if detected is not None:
            self._boxes_at_detection = {int(i): box for i, box in zip(tracks.ids, tracks.xyxy, strict=True)}
        people = tracks.ids[
            (tracks.state == TrackState.CONFIRMED)
            & np.array([self._present.get(int(i), False) for i in tracks.ids], dtype=bool)
        ]
        return FrameResult(
            frame,
            detected is not None,
            tracks,
            poses,
            gait,
            alerts,
            stage_s,
            pose_crops,
            pose_cpu_s,
            whole_frame=detected is not None and detected.whole_frame,
            recovery_crops=recovery_crops,
            recovered=recovered,
            people_ids=people.astype(np.int64).reshape(-1),
        )

    def close(self, t: float) -> list[Alert]:
        """End every open alert (camera stopped): tracks that will never be seen again."""
        return list(self._gait.close(t))

    def _estimate_poses(self, frame: Frame, tracks: Tracks) -> tuple[Poses, int, float]:
        """The people posed, the crops sent to the model and the model call's CPU seconds on this thread."""
        # Confirmed tracks, each at most at its scheduled rate (lower for people who are not moving), and tracks to
        # verify (new or lost): posed on every frame until confirmed, unless their last crop held nobody.
        due = self._scheduler.select(frame.t, tracks)
        if self._settings.verify_new_tracks:
            due |= (
                (tracks.state != TrackState.CONFIRMED)
                & np.array([self._present.get(int(i), True) for i in tracks.ids], dtype=bool)
                & self._alone(tracks, np.array([self._present.get(int(i), False) for i in tracks.ids], dtype=bool))
            )
        crops = int(np.count_nonzero(due))
        if not crops:
            return Poses.empty(), 0, 0.0
        started = time.thread_time()
        poses = self._pose.estimate(frame.image, tracks.ids[due], tracks.xyxy[due])
        cpu_s = time.thread_time() - started + self._pose_helper_cpu_s()
        found = poses.presence >= self._settings.min_presence
        if self._settings.verify_new_tracks and found.any():
            self._drop_duplicates(poses, found, tracks)
        self._scheduler.record_presence(poses.track_ids, found)
        for track_id, person in zip(poses.track_ids, found, strict=True):
            self._present[int(track_id)] = bool(person)
        return poses.select(found), crops, cpu_s

    def _drop_duplicates(self, poses: Poses, found: NDArray[np.bool_], tracks: Tracks) -> None:
        """Two tracks on one person (a second detector box on part of them) pose the same landmarks: the pose
        that sees fewer of them (else the younger track's) holds nobody new. Compared with this frame's poses
        and with the latest pose of every other track holding a person (posed a frame or a few ago)."""
        rows = np.flatnonzero(found)
        posed = {int(i) for i in poses.track_ids}
        age_of = {int(i): float(a) for i, a in zip(tracks.ids, tracks.age_s, strict=True)}
        others = [tid for tid in self._last_keypoints if tid not in posed and self._present.get(tid) and tid in age_of]
        keypoints = np.concatenate(
            [
                poses.keypoints[rows],
                np.asarray([self._last_keypoints[o] for o in others], dtype=np.float32).reshape(-1, 33, 3),
            ]
        )
        ages = np.array([age_of.get(int(i), 0.0) for i in poses.track_ids[rows]] + [age_of[o] for o in others])
        duplicate = duplicate_poses(keypoints, ages, BOX_MIN_VISIBILITY)
        found[rows[duplicate[: len(rows)]]] = False
        for other, dup in zip(others, duplicate[len(rows) :], strict=True):
            if dup:
                self._present[other] = False
        for row in rows[~duplicate[: len(rows)]]:
            self._last_keypoints[int(poses.track_ids[row])] = poses.keypoints[row]

    @staticmethod
    def _alone(tracks: Tracks, present: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Tracks whose box overlaps no other track with a person in its last crop (IoU <= 0.3). Where they
        overlap, a crop may pose the neighbour instead, and a pose-kept track would duplicate the neighbour."""
        if not present.any():
            return np.ones(len(tracks), dtype=bool)
        overlap = iou_matrix(tracks.xyxy, tracks.xyxy[present])
        overlap[np.flatnonzero(present), np.arange(int(present.sum()))] = 0.0  # not with itself
        alone: NDArray[np.bool_] = overlap.max(axis=1) <= 0.3
        return alone

    def _recover(self, frame: Frame, detected: TimedDetections) -> tuple[Detections, int, float]:
        """Motion-verified recovery: one pose crop per moving region that no detection and no posed track
        explains (within the per-frame budget); the crops that hold a person become detections. Returns them,
        the crops tried and the model call's CPU seconds on this thread."""
        posed = np.array([self._present.get(int(i), False) for i in self._track_ids], dtype=bool)
        known = np.concatenate([detected.detections.xyxy, self._track_boxes[posed]])
        explained = np.concatenate([known, self._swept_boxes(posed)])
        candidates = recovery_candidates(detected.motion, explained, frame.height, self._settings.recovery)
        if not len(candidates):
            return Detections.empty(), 0, 0.0
        started = time.thread_time()
        # Crops of nobody yet: negative ids never collide with the tracker's (which count up from 0 or 1).
        ids = -np.arange(1, len(candidates) + 1, dtype=np.int64)
        poses = self._pose.estimate(frame.image, ids, candidates)
        cpu_s = time.thread_time() - started + self._pose_helper_cpu_s()
        found = recovered_detections(poses, self._settings.min_presence, BOX_MIN_VISIBILITY, known)
        return found, len(candidates), cpu_s

    def _swept_boxes(self, posed: NDArray[np.bool_]) -> NDArray[np.float64]:
        """``own_motion_regions`` of the posed tracks since the last detection (a track born since: its box)."""
        ids, boxes = self._track_ids[posed], self._track_boxes[posed]
        before = np.array([self._boxes_at_detection.get(int(i), box) for i, box in zip(ids, boxes, strict=True)])
        return own_motion_regions(before.reshape(-1, 4), boxes, self._settings.recovery.join_margin)

    def _pose_helper_cpu_s(self) -> float:
        """CPU seconds other threads spent on this thread's last pose call (a pool splitting a frame's crops
        across idle backends); this thread's own time does not include them."""
        return self._pose.helper_cpu_s() if isinstance(self._pose, PoseBackendPool) else 0.0

    def _correct_from_poses(self, poses: Poses, t: float, tracks: Tracks) -> Tracks:
        ids: list[int] = []
        boxes: list[np.ndarray] = []
        for track_id, keypoints in zip(poses.track_ids, poses.keypoints, strict=True):
            box = box_from_keypoints(keypoints, BOX_MIN_VISIBILITY)
            if box is not None:
                ids.append(int(track_id))
                boxes.append(box)
        if not ids:
            return tracks
        return self._tracker.correct(
            np.asarray(ids, dtype=np.int64), np.asarray(boxes, dtype=np.float64).reshape(-1, 4), t
        )

    def _analyse(self, poses: Poses, tracks: Tracks, t: float) -> tuple[tuple[GaitResult, ...], tuple[Alert, ...]]:
        """The gait stage on this frame's people, then per-track state of tracks the tracker dropped is pruned."""
        out = self._gait.update(t, poses.track_ids, poses.keypoints, poses.world, (int(i) for i in tracks.ids))
        self._scheduler.prune(tracks.ids)
        self._temporal.prune(int(i) for i in tracks.ids)
        alive = {int(i) for i in tracks.ids}
        for tid in [tid for tid in self._present if tid not in alive]:
            del self._present[tid]
        for tid in [tid for tid in self._last_keypoints if tid not in alive]:
            del self._last_keypoints[tid]
        return out.windows, out.alerts
