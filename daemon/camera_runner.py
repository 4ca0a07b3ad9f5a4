"""One camera inside the daemon: its frame loop, its counters, and its judged state (online, degraded,
offline, finished) with the technical conditions that state implies.

The loop moves frames from the camera's reader thread to a detection thread and an inference thread
(``WatchedWorkers``), one frame in flight, and hands each result to the service. One bad frame (or a bug it
triggers) is logged and counted; it never ends the camera for the daemon's lifetime.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from gaitwatch.daemon.camera_health import CameraAssessment, CameraHealth, CameraState
from gaitwatch.daemon.counters import ServiceCounters
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.pipeline import CameraPipeline, FrameResult
from gaitwatch.daemon.settings import CameraSettings
from gaitwatch.daemon.sources import FrameSource
from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.daemon.workers import WatchedWorkers
from gaitwatch.gait.settings import AlertPolicySettings
from gaitwatch.gait.types import Alert

# The service's parts log under the service's name, as before they were split out of it: the journal's
# ``logger=`` field, and any filter an admin wrote on it, stay the same.
log = logging.getLogger("gaitwatch.daemon.service")

# Repeated identical per-frame errors are logged at most once per this many seconds.
FRAME_ERROR_LOG_INTERVAL_S = 60.0
# How long one wait for the reader thread's next frame lasts: bounds how late the loop notices a stop.
FRAME_WAIT_S = 0.25

ResultHandler = Callable[["CameraRunner", FrameResult], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CameraCondition:
    """A camera's technical condition as judged now; it becomes an incident while ``holds`` (``since``,
    ``priority`` and ``evidence`` describe its start)."""

    type: TechnicalAlertType
    holds: bool
    since: float | None = None
    priority: str = "high"
    evidence: Mapping[str, float] = field(default_factory=dict)


class CameraRunner:
    """One camera: ``settings`` (replaced on a reload), its reader (``source``), its pipeline and health."""

    def __init__(
        self,
        settings: CameraSettings,
        source: FrameSource,
        pipeline: CameraPipeline,
        *,
        metrics: DaemonMetrics,
        counters: ServiceCounters,
        workers: WatchedWorkers,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.source = source
        self.pipeline = pipeline
        self._clock = clock
        self.health = CameraHealth(settings, clock())
        self._metrics = metrics
        self._counters = counters
        self._workers = workers
        self._reported_decoded = 0
        self._reported_dropped = 0
        self._reported_reconnects = 0
        self.state: CameraState | None = None  # as last judged (logged on change)
        self.published_state: CameraState | None = None  # as last published (retained); None: publish again
        self._last_error: str | None = None
        self._last_error_logged = float("-inf")

    @property
    def id(self) -> str:
        return self.settings.id

    def start(self) -> None:
        """Start the reader thread; the silence before it is not an outage."""
        self.health.restart_clock(self._clock())
        self.source.start()

    def reconfigure(self, settings: CameraSettings, policy: AlertPolicySettings) -> None:
        """A reload: the camera's new zone and health thresholds, the alert policy's new thresholds."""
        self.settings = self.health.settings = settings
        self.pipeline.update_alert_policy(policy)

    # -- frames ----------------------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event, handle: ResultHandler) -> None:
        """Process frames until ``stopping`` is set (the frame in progress is finished) or a file ends."""
        source, pipeline = self.source, self.pipeline
        while not stopping.is_set():
            frame = await asyncio.to_thread(source.get, FRAME_WAIT_S)
            self.sync_counters()
            if frame is None:
                if source.finished:
                    log.info("camera=%s event=finished", self.id)
                    return
                continue
            try:
                detected = None
                if pipeline.detection_due(frame.t):
                    detected = await self._workers.detect(lambda f=frame: pipeline.detect(f))  # type: ignore[misc]
                result = await self._workers.infer(lambda f=frame, d=detected: pipeline.process(f, d))  # type: ignore[misc]
                self.record(result)
                await handle(self, result)
            except Exception as exc:
                # One bad frame (or a bug it triggers) must not end the camera for the daemon's lifetime.
                self.frame_failed(exc)

    def record(self, result: FrameResult) -> None:
        """A processed frame, in the counters, the metrics and the processed rate that health judges."""
        cam = self.id
        self._counters.frames += 1
        self.health.frame_processed(self._clock())
        for stage, seconds in result.stage_s.items():
            self._metrics.observe_stage(stage, seconds)
        self._metrics.observe_stage("frame", sum(result.stage_s.values()))
        self._metrics.set_tracks_active(cam, len(result.tracks.confirmed()))
        self._metrics.recovery(cam, result.recovery_crops, result.recovered)
        if len(result.poses):
            self._metrics.observe_pose_batch(len(result.poses))
            self._counters.confirmed_tracks.update((cam, int(i)) for i in result.poses.track_ids)

    def frame_failed(self, exc: Exception) -> None:
        """Counted every time; logged with its traceback when it differs from the last one, else once a minute."""
        self._counters.frame_errors += 1
        text = f"{type(exc).__name__}: {exc}"
        now = self._clock()
        if text != self._last_error or now - self._last_error_logged >= FRAME_ERROR_LOG_INTERVAL_S:
            log.error("camera=%s event=frame_failed", self.id, exc_info=exc)
            self._last_error, self._last_error_logged = text, now

    def sync_counters(self) -> None:
        """Copy the reader thread's counters into the metrics (they only grow)."""
        stats, cam = self.source.stats, self.id
        if stats.decoded > self._reported_decoded:
            self._metrics.frame_decoded(cam, stats.decoded - self._reported_decoded)
            self._reported_decoded = stats.decoded
        if stats.dropped > self._reported_dropped:
            self._metrics.frame_dropped(cam, stats.dropped - self._reported_dropped)
            self._reported_dropped = stats.dropped
        for _ in range(stats.reconnects - self._reported_reconnects):
            self._metrics.camera_reconnect(cam)
        self._reported_reconnects = max(self._reported_reconnects, stats.reconnects)

    async def close(self) -> list[Alert]:
        """Shutdown: the pipeline's open clinical alerts, ended (the tracks they were about end with this run)."""
        media_now = self.source.stats.last_frame_t or self._clock()
        return await self._workers.infer(lambda: self.pipeline.close(media_now))

    # -- state -----------------------------------------------------------------------------------------------

    def assess(self, now: float) -> CameraAssessment:
        """Judge the camera's state now: metrics updated, a change logged once (whether or not the status
        can be published now: a camera offline while the broker is down is one line, not one per pass)."""
        self.sync_counters()
        stats, cam = self.source.stats, self.id
        judged = self.health.assess(now, stats.last_grab_monotonic, self.source.finished, stats.fps)
        state = judged.state
        delivering = state in (CameraState.ONLINE, CameraState.DEGRADED)
        self._metrics.set_camera_up(cam, delivering and stats.connected)
        self._metrics.set_camera_degraded(cam, state is CameraState.DEGRADED)
        if state != self.state:
            if self.state is not None or state is not CameraState.ONLINE:
                log.log(
                    logging.INFO if state in (CameraState.ONLINE, CameraState.FINISHED) else logging.WARNING,
                    "camera=%s event=%s silent_s=%.1f processed_fps=%.1f",
                    cam,
                    state,
                    judged.silent_for_s,
                    judged.processed_fps,
                )
            self.state = state
        return judged

    def frame_age_s(self, now: float) -> float | None:
        """Seconds since the newest frame was decoded (None: never), for the retained status."""
        last = self.source.stats.last_grab_monotonic
        return None if last is None else max(0.0, now - last)

    def conditions(self, judged: CameraAssessment, now: float) -> tuple[CameraCondition, ...]:
        """A camera that stops delivering (not one that finished its file) is a technical alert until it
        recovers; so is one whose frames arrive faster than this PC can process them."""
        return (
            CameraCondition(
                TechnicalAlertType.CAMERA_OFFLINE,
                judged.state is CameraState.OFFLINE,
                since=now - judged.silent_for_s,
                evidence={"stale_after_s": self.settings.stale_after_s},
            ),
            CameraCondition(
                TechnicalAlertType.CAMERA_DEGRADED,
                judged.state is CameraState.DEGRADED,
                priority="medium",
                evidence={
                    "processed_fps": round(judged.processed_fps, 2),
                    "min_processed_fps": self.settings.min_processed_fps,
                    "camera_fps": float(self.source.stats.fps or 0.0),
                },
            ),
        )
