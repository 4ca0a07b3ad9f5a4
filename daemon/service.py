"""The gaitwatch daemon: wires cameras, the inference thread, the outbox and MQTT together on one event loop.

Start-up is all-or-nothing before READY: configuration, state directory and outbox, models, and cameras (files
must exist and decode; a network camera that is down now is only logged, it may come up later). The broker is
not waited for: the outbox covers its absence. Then one task per camera moves frames from its reader thread to
the single inference thread and hands results to the outbox (alerts, committed before any network I/O) and to
MQTT (gait metrics, QoS 0). A watchdog task pings systemd only while both the event loop and the inference
thread make progress. SIGTERM finishes the current frame, ends open alerts, tries to flush the outbox, publishes
"offline" and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from gaitwatch.daemon import __version__
from gaitwatch.daemon.assembly import SharedModels, build_camera_pipeline
from gaitwatch.daemon.logs import configure_logging
from gaitwatch.daemon.metrics import DaemonMetrics, MetricsServer, start_http_server
from gaitwatch.daemon.mqtt import MqttConfig, MqttTransport, OutboxDrainer, TlsConfig, TransportError
from gaitwatch.daemon.outbox import Outbox, OutboxError, OutboxFullError
from gaitwatch.daemon.payloads import (
    GAIT_DELIVERY,
    AlertIds,
    ClockMap,
    PublisherIdentity,
    Topics,
    alert_body,
    camera_status_payload,
    gait_payload,
    host_status_payload,
    new_boot_id,
    technical_alert_body,
)
from gaitwatch.daemon.pipeline import STAGES, CameraPipeline, FrameResult
from gaitwatch.daemon.sdnotify import SystemdNotifier, watchdog_interval_s
from gaitwatch.daemon.settings import EX_CONFIG, CameraSettings, ConfigError, Settings, read_secret
from gaitwatch.daemon.sources import OpenCvCamera, SourceError
from gaitwatch.gait.types import Alert, AlertPhase
from gaitwatch.pose.blazepose import PoseModelError

log = logging.getLogger(__name__)

# sysexits.h codes, so an admin (and systemd's RestartPreventExitStatus=) can tell failures apart.
EX_NOINPUT = 66  # a configured video file is missing or undecodable
EX_UNAVAILABLE = 69  # a model file is missing or corrupt
EX_CANTCREAT = 73  # the state directory or outbox cannot be created or written

# The inference thread counts as stuck when one frame has taken this long: then the watchdog stops pinging
# and systemd restarts the service (far above any real frame: ~0.1-0.5 s on a 2-core PC).
INFERENCE_STUCK_S = 20.0
# A camera whose newest frame is older than this is reported offline (status topic + technical alert).
CAMERA_STALE_S = 20.0
CAMERA_STATUS_PERIOD_S = 2.0
LOOP_LAG_PERIOD_S = 0.5
SHUTDOWN_FLUSH_S = 5.0

T = TypeVar("T")


class StartupError(Exception):
    """A problem that prevents the daemon from starting; ``exit_code`` says which kind."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(slots=True)
class ServiceCounters:
    """What the daemon did, for the demo's summary line and for tests."""

    frames: int = 0
    gait_windows: int = 0
    alerts: int = 0
    confirmed_tracks: set[tuple[str, int]] = field(default_factory=set)


@dataclass(slots=True)
class _Camera:
    settings: CameraSettings
    source: OpenCvCamera
    pipeline: CameraPipeline
    reported_decoded: int = 0
    reported_dropped: int = 0
    reported_reconnects: int = 0
    started_at: float = 0.0
    online: bool | None = None
    offline_incident: tuple[str, float] | None = None  # (incident id, since)


class Service:
    """One daemon run. ``stop_when_sources_end``: exit once every camera has finished (files without
    ``loop``): used by the demo and offline replays; a ward daemon keeps running. ``on_result`` sees every
    processed frame on the event loop (the demo's renderer)."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop_when_sources_end: bool = False,
        on_result: Callable[[FrameResult], None] | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.counters = ServiceCounters()
        self._stop_when_sources_end = stop_when_sources_end
        self._on_result = on_result
        self._notifier = notifier or SystemdNotifier()
        self._stopping = asyncio.Event()
        self._boot_id = new_boot_id()
        self._clock = ClockMap.capture()
        svc = settings.service
        self._topics = Topics(site=svc.site, host=svc.host, root=settings.mqtt.topic_root)
        self._alert_ids = AlertIds(host=svc.host, boot_id=self._boot_id)
        self._incident_ids = AlertIds(host=svc.host, boot_id=f"{self._boot_id}i")
        self._incidents: dict[tuple[str, int, str], str] = {}
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._inference_started: float | None = None
        self._cameras: list[_Camera] = []
        self._outbox: Outbox | None = None
        self._transport: MqttTransport | None = None
        self._drainer: OutboxDrainer | None = None
        self._metrics_server: MetricsServer | None = None
        self._identity: PublisherIdentity | None = None
        self.metrics = DaemonMetrics(
            version=__version__, cameras=[c.id for c in settings.cameras], stages=(*STAGES, "frame")
        )

    def request_stop(self) -> None:
        self._stopping.set()

    # -- start-up --------------------------------------------------------------------------------------------

    def _open_outbox(self) -> Outbox:
        state_dir = self.settings.service.state_dir
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                f"cannot create state directory {state_dir}: {exc.strerror}; set service.state_dir to a "
                "writable directory (systemd: StateDirectory=)",
                EX_CANTCREAT,
            ) from None
        try:
            return Outbox(state_dir / "outbox.sqlite3", self.settings.outbox.max_rows)
        except OutboxError as exc:
            raise StartupError(str(exc), EX_CANTCREAT) from None

    def _load_models(self) -> SharedModels:
        try:
            return SharedModels(self.settings)
        except PoseModelError as exc:
            raise StartupError(str(exc), EX_UNAVAILABLE) from None
        except (FileNotFoundError, ValueError, RuntimeError, ImportError) as exc:
            raise StartupError(f"cannot load a model: {exc}", EX_UNAVAILABLE) from None

    def _open_cameras(self, shared: SharedModels) -> list[_Camera]:
        cameras: list[_Camera] = []
        for cam in self.settings.cameras:
            source = OpenCvCamera(cam)
            try:
                source.check()
            except SourceError as exc:
                raise StartupError(str(exc), EX_NOINPUT) from None
            cameras.append(_Camera(cam, source, build_camera_pipeline(cam.id, self.settings, shared)))
        return cameras

    def _mqtt_config(self) -> MqttConfig:
        m = self.settings.mqtt
        password = read_secret(m.password_file) if m.password_file is not None else None
        tls = (
            TlsConfig(ca_file=m.tls.ca_file, cert_file=m.tls.cert_file, key_file=m.tls.key_file)
            if m.tls is not None
            else None
        )
        return MqttConfig(
            host=m.host,
            port=m.port,
            client_id=m.client_id or f"gaitwatch-{self.settings.service.site}-{self.settings.service.host}",
            protocol=m.protocol,
            username=m.username,
            password=password,
            tls=tls,
            keepalive_s=m.keepalive_s,
            timeout_s=m.timeout_s,
            reconnect_initial_s=m.reconnect_initial_s,
            reconnect_max_s=m.reconnect_max_s,
        )

    # -- the run ---------------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or until every source ended, if asked); returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            try:
                await self._start()
            except StartupError as exc:
                log.error("startup failed: %s", exc)
                self._notifier.status(f"startup failed: {exc}")
                return exc.exit_code
            except ConfigError as exc:
                log.error("startup failed: %s", exc)
                return EX_CONFIG
            await self._serve()
            return 0
        finally:
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    async def _start(self) -> None:
        s = self.settings
        self._outbox = await asyncio.to_thread(self._open_outbox)
        shared = await asyncio.to_thread(self._load_models)
        self._identity = PublisherIdentity(
            site=s.service.site,
            host=s.service.host,
            boot_id=self._boot_id,
            software_version=__version__,
            ward=s.service.ward,
            model_versions=shared.model_versions,
        )
        self._cameras = await asyncio.to_thread(self._open_cameras, shared)
        if s.metrics.enabled:
            try:
                self._metrics_server = start_http_server(
                    s.metrics.port, s.metrics.address, registry=self.metrics.registry
                )
            except OSError as exc:
                raise StartupError(
                    f"cannot serve metrics on {s.metrics.address}:{s.metrics.port}: {exc.strerror}; "
                    "change [metrics] port or set enabled = false",
                    EX_CANTCREAT,
                ) from None
        if s.mqtt.enabled:
            identity = self._identity
            self._transport = MqttTransport(
                self._mqtt_config(),
                status_topic=self._topics.status,
                online_payload=lambda: host_status_payload("online", identity, time.time()),
                offline_payload=lambda: host_status_payload("offline", identity, time.time()),
                on_connected=self._on_connected,
                metrics=self.metrics,
            )
            self._transport.start()
            self._drainer = OutboxDrainer(self._outbox, self._transport, metrics=self.metrics)
        for camera in self._cameras:
            camera.started_at = time.monotonic()
            camera.source.start()
        self._notifier.ready(f"watching {len(self._cameras)} camera(s)")
        log.info(
            "started version=%s site=%s host=%s boot=%s cameras=%d",
            __version__,
            s.service.site,
            s.service.host,
            self._boot_id,
            len(self._cameras),
        )

    async def _serve(self) -> None:
        tasks = [asyncio.create_task(self._camera_loop(c), name=f"camera-{c.settings.id}") for c in self._cameras]
        background = [
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
            asyncio.create_task(self._camera_status_loop(), name="camera-status"),
        ]
        if self._drainer is not None:
            background.append(asyncio.create_task(self._drainer.run(), name="outbox-drainer"))
        stop_wait = asyncio.create_task(self._stopping.wait(), name="stop-signal")
        try:
            if self._stop_when_sources_end:
                await asyncio.wait([stop_wait, asyncio.gather(*tasks)], return_when=asyncio.FIRST_COMPLETED)
            else:
                await stop_wait
            self._stopping.set()
            # Camera loops finish their current frame and return.
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._end_open_alerts()
            await self._flush_outbox()
        finally:
            for task in [*background, stop_wait, *tasks]:
                task.cancel()
            await asyncio.gather(*background, stop_wait, *tasks, return_exceptions=True)

    async def _shutdown(self) -> None:
        self._notifier.stopping()
        for camera in self._cameras:
            await asyncio.to_thread(camera.source.stop)
        if self._transport is not None:
            await self._transport.close()
        self._inference.shutdown(wait=True)
        if self._outbox is not None:
            self._outbox.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        log.info(
            "stopped frames=%d gait_windows=%d alerts=%d",
            self.counters.frames,
            self.counters.gait_windows,
            self.counters.alerts,
        )

    # -- per camera --------------------------------------------------------------------------------------------

    async def _infer(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        self._inference_started = time.monotonic()
        try:
            return await loop.run_in_executor(self._inference, fn)
        finally:
            self._inference_started = None

    async def _camera_loop(self, camera: _Camera) -> None:
        source, pipeline = camera.source, camera.pipeline
        while not self._stopping.is_set():
            frame = await asyncio.to_thread(source.get, 0.25)
            self._sync_camera_counters(camera)
            if frame is None:
                if source.finished:
                    log.info("camera=%s event=finished", camera.settings.id)
                    return
                continue
            result = await self._infer(lambda f=frame: pipeline.process(f))  # type: ignore[misc]
            await self._deliver(camera, result)

    def _sync_camera_counters(self, camera: _Camera) -> None:
        stats, cam = camera.source.stats, camera.settings.id
        if stats.decoded > camera.reported_decoded:
            self.metrics.frame_decoded(cam, stats.decoded - camera.reported_decoded)
            camera.reported_decoded = stats.decoded
        if stats.dropped > camera.reported_dropped:
            self.metrics.frame_dropped(cam, stats.dropped - camera.reported_dropped)
            camera.reported_dropped = stats.dropped
        for _ in range(stats.reconnects - camera.reported_reconnects):
            self.metrics.camera_reconnect(cam)
        camera.reported_reconnects = stats.reconnects

    async def _deliver(self, camera: _Camera, result: FrameResult) -> None:
        cam = camera.settings.id
        self.counters.frames += 1
        for stage, seconds in result.stage_s.items():
            self.metrics.observe_stage(stage, seconds)
        self.metrics.observe_stage("frame", sum(result.stage_s.values()))
        self.metrics.set_tracks_active(cam, len(result.tracks.confirmed()))
        if len(result.poses):
            self.metrics.observe_pose_batch(len(result.poses))
            self.counters.confirmed_tracks.update((cam, int(i)) for i in result.poses.track_ids)
        assert self._identity is not None
        for gait in result.gait:
            self.counters.gait_windows += 1
            payload = gait_payload(
                gait.metrics, gait.assessment, camera=cam, identity=self._identity, clock=self._clock
            )
            await self._publish_telemetry(self._topics.gait(cam), payload)
        for alert in result.alerts:
            await self._store_clinical_alert(camera, alert)
        if self._on_result is not None:
            self._on_result(result)

    async def _publish_telemetry(self, topic: str, payload: bytes) -> None:
        """QoS 0 telemetry: sent when connected, else counted and dropped (the next window supersedes it)."""
        transport = self._transport
        if transport is None:
            return
        if not transport.connected:
            self.metrics.publish_failure("not_connected")
            return
        try:
            await transport.publish(topic, payload, qos=GAIT_DELIVERY.qos, retain=GAIT_DELIVERY.retain)
        except TransportError as exc:
            log.debug("gait publish failed topic=%s error=%s", topic, exc)

    # -- alerts ------------------------------------------------------------------------------------------------

    def _incident(self, key: tuple[str, int, str], phase: AlertPhase) -> str:
        if phase is AlertPhase.START or key not in self._incidents:
            self._incidents[key] = self._incident_ids.next()
        incident = self._incidents[key]
        if phase is AlertPhase.END:
            del self._incidents[key]
        return incident

    async def _store_clinical_alert(self, camera: _Camera, alert: Alert) -> None:
        assert self._identity is not None
        cam = camera.settings.id
        alert_id = self._alert_ids.next()
        body = alert_body(
            alert,
            camera=cam,
            zone=camera.settings.zone,
            identity=self._identity,
            clock=self._clock,
            alert_id=alert_id,
            incident_id=self._incident((cam, alert.track_id, alert.type), alert.phase),
        )
        self.counters.alerts += 1
        self.metrics.alert_raised(alert.type, "clinical")
        await self._store(self._topics.alert(cam), body, alert_id)

    async def _store_technical_alert(
        self, type_: str, phase: AlertPhase, camera: _Camera | None, incident: str, since: float
    ) -> None:
        assert self._identity is not None
        alert_id = self._alert_ids.next()
        body = technical_alert_body(
            type_,
            phase,
            camera=camera.settings.id if camera else None,
            identity=self._identity,
            clock=self._clock,
            t_start=since,
            t_observed=time.monotonic(),
            alert_id=alert_id,
            incident_id=incident,
            zone=camera.settings.zone if camera else "",
        )
        self.counters.alerts += 1
        self.metrics.alert_raised(type_, "technical")
        topic = self._topics.alert(camera.settings.id if camera else None)
        await self._store(topic, body, alert_id)

    async def _store(self, topic: str, body: bytes, alert_id: str) -> None:
        """Commit to the outbox before any network I/O; the drainer publishes it."""
        assert self._outbox is not None
        try:
            await asyncio.to_thread(self._outbox.add, topic, body, alert_id)
        except OutboxFullError as exc:
            self.metrics.outbox_overflow()
            log.error("outbox full: alert not stored alert_id=%s error=%s", alert_id, exc)
            return
        except OutboxError as exc:
            log.critical("cannot store alert alert_id=%s error=%s", alert_id, exc)
            return
        if self._drainer is not None:
            self._drainer.notify()

    async def _end_open_alerts(self) -> None:
        now = time.monotonic()
        for camera in self._cameras:
            media_now = camera.source.stats.last_frame_t or now
            alerts = await self._infer(lambda c=camera, t=media_now: c.pipeline.close(t))  # type: ignore[misc]
            for alert in alerts:
                await self._store_clinical_alert(camera, alert)

    async def _flush_outbox(self) -> None:
        if self._drainer is None or self._transport is None or not self._transport.connected:
            return
        with contextlib.suppress(TimeoutError, TransportError, OutboxError):
            async with asyncio.timeout(SHUTDOWN_FLUSH_S):
                await self._drainer.drain_once()

    # -- health ------------------------------------------------------------------------------------------------

    async def _on_connected(self) -> None:
        """After every (re)connect: republish every camera's retained status."""
        for camera in self._cameras:
            camera.online = None
        await self._publish_camera_statuses()

    async def _camera_status_loop(self) -> None:
        while True:
            await asyncio.sleep(CAMERA_STATUS_PERIOD_S)
            await self._publish_camera_statuses()

    async def _publish_camera_statuses(self) -> None:
        assert self._identity is not None
        now = time.monotonic()
        for camera in self._cameras:
            stats = camera.source.stats
            last = stats.last_grab_monotonic
            age = None if last is None else max(0.0, now - last)
            # A camera is offline once it has been silent for CAMERA_STALE_S (since its last frame, or since
            # start-up if it never delivered one), so a slow RTSP handshake is not an outage.
            silent_for = now - (last if last is not None else camera.started_at)
            finished = camera.source.finished
            online = not finished and silent_for < CAMERA_STALE_S
            self.metrics.set_camera_up(camera.settings.id, online and stats.connected)
            if online != camera.online:
                camera.online = online
                payload = camera_status_payload(
                    "online" if online else "offline",
                    camera.settings.id,
                    self._identity,
                    time.time(),
                    age,
                    zone=camera.settings.zone,
                )
                await self._publish_status(self._topics.camera_status(camera.settings.id), payload)
            await self._track_camera_incident(camera, online, finished, now)

    async def _track_camera_incident(self, camera: _Camera, online: bool, finished: bool, now: float) -> None:
        """A camera that stops delivering (not one that finished its file) is a technical alert until it
        recovers."""
        if not online and not finished and camera.offline_incident is None:
            incident = self._incident_ids.next()
            camera.offline_incident = (incident, now)
            await self._store_technical_alert("camera_offline", AlertPhase.START, camera, incident, now)
        elif online and camera.offline_incident is not None:
            incident, since = camera.offline_incident
            camera.offline_incident = None
            await self._store_technical_alert("camera_offline", AlertPhase.END, camera, incident, since)

    async def _publish_status(self, topic: str, payload: bytes) -> None:
        transport = self._transport
        if transport is None or not transport.connected:
            return
        with contextlib.suppress(TransportError):
            await transport.publish(topic, payload, qos=1, retain=True)

    async def _watchdog_loop(self) -> None:
        interval = watchdog_interval_s()
        period = min(LOOP_LAG_PERIOD_S, interval) if interval else LOOP_LAG_PERIOD_S
        last_ping = 0.0
        while True:
            before = time.monotonic()
            await asyncio.sleep(period)
            now = time.monotonic()
            self.metrics.observe_loop_lag(max(0.0, now - before - period))
            started = self._inference_started
            inference_alive = started is None or now - started < INFERENCE_STUCK_S
            if interval and inference_alive and now - last_ping >= interval:
                self._notifier.watchdog()
                last_ping = now
            elif not inference_alive:
                log.error("inference thread stuck for %.0f s; withholding watchdog pings", now - started)


def run_service(settings: Settings) -> int:
    """Entry point of ``gaitwatch run``: logging, then the service on a fresh event loop."""
    configure_logging(settings.service.log_level)
    return asyncio.run(Service(settings).run())


def default_state_dir() -> Path:
    return Path("/var/lib/gaitwatch")
