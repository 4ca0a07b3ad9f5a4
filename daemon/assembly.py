"""Builds the pipeline's parts from validated settings. The daemon, the demo, replays and benchmarks all assemble
pipelines through here. The library's settings objects come out of the config itself (``settings.tracker`` is
a ``TrackerSettings``; ``library_settings`` builds the ones a table shares with others): nothing here copies a
setting field by field."""

from __future__ import annotations

import cv2

from gaitwatch.daemon.library_settings import library_settings
from gaitwatch.daemon.pipeline import CameraPipeline, PipelineSettings
from gaitwatch.daemon.settings import Settings
from gaitwatch.gait.alerts import AlertPolicy
from gaitwatch.gait.classifier import GaitClassifier
from gaitwatch.gait.floor_stage import FloorStage
from gaitwatch.gait.model import MODEL_VERSION
from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings
from gaitwatch.pose.landmark_refinement import LandmarkRefinedDetector, LandmarkRefinementSettings
from gaitwatch.pose.pool import PoseBackendPool
from gaitwatch.pose.recovery import RecoverySettings
from gaitwatch.pose.schedule import PoseScheduler, ScheduleSettings
from gaitwatch.pose.student_backend import StudentBackend, StudentSettings
from gaitwatch.pose.temporal import PoseTemporalFilter, TemporalSettings
from gaitwatch.tracking.blazepose_detector import BlazePoseDetectorSettings, BlazePosePersonDetector
from gaitwatch.tracking.detector import PersonDetector
from gaitwatch.tracking.detector_union import FrameWideUnion, UnionDetector
from gaitwatch.tracking.hog import HogPersonDetector
from gaitwatch.tracking.nanodet import NanodetPersonDetector, NanodetSettings
from gaitwatch.tracking.onnx_detector import OnnxDetectorSettings, OnnxPersonDetector
from gaitwatch.tracking.search_regions import SearchRegionPlanner, SearchRegionSettings
from gaitwatch.tracking.tracker import Tracker

# OpenCV's own thread pool (HOG, resize, colour conversion) is capped so that it does not fight the pose
# models and the camera readers over a 2-core ward PC: parallelism comes from the daemon's own threads
# (detection, inference), each of which keeps to one core.
OPENCV_THREADS = 1


def build_detector(settings: Settings, parallel: bool = False) -> PersonDetector:
    """The configured person detector. ``parallel``: a whole-frame scan of ``hog+blazepose`` or
    ``nanodet+blazepose`` runs its two detectors side by side (``UnionDetector.parallel_whole_frame``; the daemon
    with more than one thread)."""
    d = settings.detector
    if d.kind == "onnx":
        # onnx_model is set here: DetectorSettings refuses kind = 'onnx' without it.
        return OnnxPersonDetector(library_settings(OnnxDetectorSettings, d))
    if d.kind == "blazepose":
        return build_blazepose_detector(settings)
    if d.kind in ("nanodet", "nanodet+blazepose"):
        nanodet = NanodetPersonDetector(library_settings(NanodetSettings, d.nanodet))
        if d.kind == "nanodet":
            return nanodet
        return FrameWideUnion(
            [nanodet], whole_frame_parts=[build_blazepose_detector(settings)], parallel_whole_frame=parallel
        )
    if d.kind == "hog+blazepose":
        hog, blazepose = HogPersonDetector(d.hog), build_blazepose_detector(settings)
        if d.blazepose_scans == "whole_frame":
            # A search region is looked at whole, in one pass: it is about one person's size.
            return UnionDetector(
                [hog],
                whole_frame_parts=[blazepose],
                fallback_parts=[build_blazepose_detector(settings, 0.0)],
                parallel_whole_frame=parallel,
            )
        return UnionDetector([hog, blazepose])
    return HogPersonDetector(d.hog)


def build_blazepose_detector(settings: Settings, tile_fraction: float | None = None) -> PersonDetector:
    """The BlazePose person detector, its finds checked and boxed by the landmark model unless configured off.
    Beside HOG or NanoDet (kinds ``hog+blazepose``, ``nanodet+blazepose``) it looks for near people only: tiles of
    ``near_tile_fraction``; ``tile_fraction`` overrides the tiles (0: the whole image only)."""
    d = settings.detector
    b = d.blazepose
    tiles = b.near_tile_fraction if d.kind in ("hog+blazepose", "nanodet+blazepose") else b.tile_fraction
    tiles = tiles if tile_fraction is None else tile_fraction
    detector = BlazePosePersonDetector(library_settings(BlazePoseDetectorSettings, b, tile_fraction=tiles))
    if not b.refine_with_landmarks:
        return detector
    # The crop is already aligned with the body: no second pass, no lying hypotheses.
    landmark_settings = BlazePoseSettings(
        model=settings.pose.model, second_pass="off", lying_hypotheses=False, model_path=settings.pose.model_path
    )
    return LandmarkRefinedDetector(
        detector,
        lambda: BlazePoseBackend(landmark_settings),
        library_settings(LandmarkRefinementSettings, b),
    )


def search_region_settings(settings: Settings) -> SearchRegionSettings:
    d = settings.detector
    if d.kind in ("hog", "hog+blazepose"):
        min_w, min_h = d.hog.smallest_window()
        interval = SearchRegionSettings().full_frame_interval_s
    elif d.kind == "blazepose":
        # Tiled like HOG's pyramid, its cost grows with the area scanned; a region around one person is
        # looked at in one pass (too small for tiles), where the person is large, as the network likes.
        min_w = min_h = d.blazepose.min_tile_px
        interval = SearchRegionSettings().full_frame_interval_s
    else:
        # A network with a fixed input runs a whole pass per region: whole frames only, unless configured. With
        # nanodet+blazepose NanoDet looks at the whole frame at every detection anyway (BetweenScansDetector) and
        # the interval paces BlazePose's whole-frame scans.
        min_w, min_h = 64, 128
        interval = SearchRegionSettings().full_frame_interval_s if d.kind == "nanodet+blazepose" else 0.0
    if d.full_frame_interval_s is not None:
        interval = d.full_frame_interval_s
    return SearchRegionSettings(full_frame_interval_s=interval, min_region_w=min_w, min_region_h=min_h)


def build_pose_backend(settings: Settings) -> PoseBackend:
    p = settings.pose
    if p.backend == "student":
        assert p.student_dir is not None  # enforced by PoseSettingsModel
        return StudentBackend(StudentSettings(model_dir=p.student_dir, num_threads=p.num_threads))
    return BlazePoseBackend(library_settings(BlazePoseSettings, p))


class SharedModels:
    """The parts every camera's pipeline shares; they hold no per-camera state. The detector is only called
    from the daemon's one detection thread; the pose pool holds one interpreter per inference thread (an
    interpreter is not thread-safe); the classifier only reads its model. ``inference_threads``: how many
    threads will call the pose pool at once (default: the configured ``service.inference_threads``; offline
    tools that run one pipeline on one thread pass 1 and load one interpreter)."""

    def __init__(self, settings: Settings, inference_threads: int | None = None) -> None:
        cv2.setNumThreads(OPENCV_THREADS)
        threads = settings.service.inference_threads if inference_threads is None else inference_threads
        self.detector = build_detector(settings, parallel=threads > 1)
        self.pose = PoseBackendPool(lambda: build_pose_backend(settings), threads)
        self.classifier = GaitClassifier()

    @property
    def model_versions(self) -> dict[str, str]:
        gait = "rules" if self.classifier.model is None else f"gait-model/{MODEL_VERSION}"
        return {"pose": self.pose.model_version, "gait": gait}


def build_floor_stage(camera_id: str, settings: Settings) -> FloorStage | None:
    """The camera's floor calibration and zones as its gait stage's floor stage (None when it has neither)."""
    camera = next((c for c in settings.cameras if c.id == camera_id), None)
    if camera is None or (camera.calibration is None and not camera.zones):
        return None
    return FloorStage(
        camera.floor_calibration(), camera.zone_map(), settings.exits, min_visibility=settings.gait.min_visibility
    )


def build_camera_pipeline(
    camera_id: str, settings: Settings, shared: SharedModels, scan_phase: float = 0.0
) -> CameraPipeline:
    """One camera's pipeline. ``scan_phase``: where in the full-frame interval this camera's whole-frame scans
    fall (``SearchRegionPlanner``'s ``phase``); the daemon spreads its cameras evenly over it."""
    return CameraPipeline(
        camera_id,
        PipelineSettings(
            detect_interval_s=settings.detector.interval_s,
            min_presence=settings.pose.min_presence,
            recovery=library_settings(RecoverySettings, settings.detector),
            verify_new_tracks=True,
        ),
        detector=shared.detector,
        regions=SearchRegionPlanner(search_region_settings(settings), scan_phase),
        tracker=Tracker(settings.tracker),
        pose=shared.pose,
        scheduler=PoseScheduler(library_settings(ScheduleSettings, settings.pose)),
        temporal=PoseTemporalFilter(TemporalSettings()),
        gait_settings=settings.gait,
        classifier=shared.classifier,
        policy=AlertPolicy(settings.alerts),
        floor=build_floor_stage(camera_id, settings),
    )
