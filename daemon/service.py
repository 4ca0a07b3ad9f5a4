"""The gaitwatch daemon: wires cameras, the inference threads, the outbox and MQTT together on one event loop.

Start-up is all-or-nothing before READY, cheapest check first (``startup``), so a failure leaves nothing
half-started (no broker connection, no "online" status, no metrics port, no camera thread): the MQTT settings
(password file, TLS files; exit 78), the state directory and outbox, including a test write (exit 73), the
cameras (files must exist and decode, exit 66; a network camera that is down now is only logged, it may come
up later), the models (exit 69). The broker is not waited for: the outbox covers its absence.

Then one task per camera (``camera_runner``) moves frames from its reader thread to the detection and
inference threads (``workers``: several cameras at once, each camera's frames in order) and hands results
here: gait metrics go out as QoS 0 telemetry, alerts are raised (``alerting``), recorded as incidents
(``incidents``) and committed to the outbox before any network I/O (``delivery``). Around them: the outbox
drainer; the health task (retained camera status, the ``camera_offline``/``camera_degraded`` incidents, the
systemd STATUS line); the retained snapshot of active alerts; integrator acks (ack mode); outbox clean-up; an
event-loop lag monitor; and a watchdog task that pings systemd only while both the event loop and every
inference thread make progress (``health``).

SIGTERM (or SIGINT): STOPPING=1, every camera finishes its current frame, open alerts are ended (their
``end`` phase stored), one bounded attempt flushes the outbox, the (now empty) active-alerts snapshot and the
"offline" status are published, exit 0. SIGHUP reloads the config, SIGUSR1 logs the state.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gaitwatch.daemon import __version__
from gaitwatch.daemon.alert_intake import AlertIntake
from gaitwatch.daemon.alerting import Alerting, EmittedAlert
from gaitwatch.daemon.assembly import build_camera_pipeline
from gaitwatch.daemon.camera_runner import CameraRunner
from gaitwatch.daemon.config_checks import config_warnings
from gaitwatch.daemon.counters import ServiceCounters
from gaitwatch.daemon.delivery import Delivery, broker_link
from gaitwatch.daemon.fhir_sink import FhirLink, fhir_link
from gaitwatch.daemon.health import Health, ServiceMetrics
from gaitwatch.daemon.incidents import IncidentRegistry
from gaitwatch.daemon.logs import configure_logging
from gaitwatch.daemon.metrics import MetricsServer, monitor_loop_lag
from gaitwatch.daemon.mqtt import MqttTransport, OutboxDrainer
from gaitwatch.daemon.outbox import Outbox
from gaitwatch.daemon.payloads import (
    AlertIds,
    ClockMap,
    PublisherIdentity,
    Topics,
    new_boot_id,
)
from gaitwatch.daemon.pipeline import STAGES, FrameResult
from gaitwatch.daemon.reload import merge_reloadable, plan_reload
from gaitwatch.daemon.sdnotify import SystemdNotifier
from gaitwatch.daemon.settings import EX_CONFIG, ConfigError, Settings, load_settings
from gaitwatch.daemon.signals import install_signal_handlers
from gaitwatch.daemon.startup import (
    EX_CANTCREAT,
    EX_NOINPUT,
    EX_RUNTIME,
    EX_UNAVAILABLE,
    StartupError,
    check_cameras,
    load_models,
    mqtt_config,
    open_outbox,
    serve_metrics,
)
from gaitwatch.daemon.state_lock import StateDirLock
from gaitwatch.daemon.workers import WatchedWorkers
from gaitwatch.gait.types import AlertPhase

log = logging.getLogger(__name__)

# The inference thread counts as stuck when one frame has taken this long: then the watchdog stops pinging
# and systemd restarts the service (far above any real frame: ~0.1-0.5 s on a 2-core PC).
INFERENCE_STUCK_S = 20.0
# Event-loop lag is sampled this often: 4 samples a second make a p99 meaningful within a minute.
LOOP_LAG_PERIOD_S = 0.25


class Service:
    """One daemon run. ``stop_when_sources_end``: exit once every camera has finished (files without
    ``loop``): used by the demo and offline replays; a ward daemon keeps running. ``on_result`` sees every
    processed frame on the event loop (the demo's renderer). ``ready`` is set once start-up succeeded.
    ``inference_stuck_s``: one frame taking longer than this stops the watchdog pings (systemd then restarts
    the daemon); lower notices a hung model sooner but risks a restart on a machine that is merely slow."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop_when_sources_end: bool = False,
        on_result: Callable[[FrameResult], None] | None = None,
        notifier: SystemdNotifier | None = None,
        inference_stuck_s: float = INFERENCE_STUCK_S,
        config_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self._config_path = config_path
        self._inference_stuck_s = inference_stuck_s
        self.counters = ServiceCounters()
        self.ready = asyncio.Event()
        self._stop_when_sources_end = stop_when_sources_end
        self._on_result = on_result
        self._notifier = notifier or SystemdNotifier()
        self._stopping = asyncio.Event()
        self._stopping_notified = False
        self._boot_id = new_boot_id()
        self._clock = ClockMap.capture()
        svc = settings.service
        self._topics = Topics(site=svc.site, host=svc.host, root=settings.mqtt.topic_root)
        self.metrics = ServiceMetrics(
            version=__version__, cameras=[c.id for c in settings.cameras], stages=(*STAGES, "frame")
        )
        active_changed = asyncio.Event()
        self._incidents = IncidentRegistry(svc.host, self._boot_id, self._clock, on_change=active_changed.set)
        self._delivery = Delivery(
            topics=self._topics,
            clock=self._clock,
            incidents=self._incidents,
            metrics=self.metrics,
            counters=self.counters,
            ack_topic=settings.mqtt.ack_topic,
            active_changed=active_changed,
        )
        self._alerting = Alerting(
            alert_ids=AlertIds(host=svc.host, boot_id=self._boot_id),
            incidents=self._incidents,
            topics=self._topics,
            clock=self._clock,
            metrics=self.metrics,
            zone_of=self._zone_of,
            store=self._delivery.store,
            outbox_max_rows=settings.outbox.max_rows,
        )
        self._health = Health(
            topics=self._topics,
            metrics=self.metrics,
            notifier=self._notifier,
            delivery=self._delivery,
            alerting=self._alerting,
            outbox_memory_rows=settings.outbox.memory_rows,
        )
        self._workers = WatchedWorkers(settings.service.inference_threads)
        self._cameras: list[CameraRunner] = []
        self._reload_task: asyncio.Task[None] | None = None
        # Known once start-up got that far (each is closed at shutdown if it was opened).
        self._state_lock: StateDirLock | None = None
        self._outbox: Outbox | None = None
        self._intake: AlertIntake | None = None
        self._transport: MqttTransport | None = None
        self._drainer: OutboxDrainer | None = None
        self._fhir: FhirLink | None = None  # the FHIR sink, when [fhir] is enabled
        self._metrics_server: MetricsServer | None = None

    def request_stop(self) -> None:
        """Begin a graceful stop (what SIGTERM does); ``run`` then returns 0."""
        self._stopping.set()

    def request_reload(self) -> None:
        """Re-read the config file (what SIGHUP does): see ``gaitwatch.daemon.reload`` for what changes."""
        if not self.ready.is_set() or self._stopping.is_set():
            log.warning("ignoring a reload request: the daemon is not running yet or is stopping")
            return
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.get_running_loop().create_task(self._reload(), name="reload")

    async def _reload(self) -> None:
        if self._config_path is None:
            log.warning("reload requested, but this daemon was not started from a config file; nothing to do")
            return
        self._notifier.reloading()
        try:
            new = await asyncio.to_thread(load_settings, self._config_path)
        except ConfigError as exc:
            log.error("reload refused: the new config is invalid; the running config stays error=%s", exc)
            self.counters.reloads_refused += 1
            self._notifier.ready(f"reload refused (invalid config); {self._health.status_text or ''}".rstrip("; "))
            return
        plan = plan_reload(self.settings, new)
        self.settings = merge_reloadable(self.settings, new)
        configure_logging(self.settings.service.log_level)
        policy = self.settings.alerts
        cameras = {c.id: c for c in self.settings.cameras}
        for camera in self._cameras:
            camera.reconfigure(cameras[camera.id], policy)
        self.counters.reloads += 1
        log.info(
            "reloaded config=%s applied=%s needs_restart=%s",
            self._config_path,
            ",".join(plan.applied) or "-",
            ",".join(plan.needs_restart) or "-",
        )
        if plan.needs_restart:
            log.warning("these changes need a restart (systemctl restart gaitwatch): %s", ", ".join(plan.needs_restart))
        self._health.status_text = None  # re-sent by the next health pass
        self._notifier.ready()

    def _log_state(self) -> None:
        """SIGUSR1: one line with the daemon's state (what STATUS shows, plus counters)."""
        c = self.counters
        log.info(
            "state status=%r frames=%d alerts=%d stored=%d held=%d reloads=%d",
            self._health.status_text or "",
            c.frames,
            c.alerts,
            c.alerts_stored,
            c.alerts_held,
            c.reloads,
        )

    @property
    def topics(self) -> Topics:
        return self._topics

    @property
    def metrics_port(self) -> int | None:
        """The bound metrics port (useful with ``metrics.port = 0``); None when metrics are off."""
        return self._metrics_server.port if self._metrics_server is not None else None

    # -- the run ---------------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT or ``request_stop`` (or until every source ended, if asked); returns the
        exit code: 0 after a graceful stop, 66/69/73/78 when start-up failed, 1 after an unexpected error."""
        # Every other signal whose default would kill the daemon mid-frame is ignored (see ``signals``).
        remove_signal_handlers = install_signal_handlers(
            asyncio.get_running_loop(),
            {
                signal.SIGTERM: self.request_stop,
                signal.SIGINT: self.request_stop,
                signal.SIGHUP: self.request_reload,
                signal.SIGUSR1: self._log_state,
            },
        )
        try:
            try:
                await self._start()
            except StartupError as exc:
                log.error("startup failed: %s", exc)
                self._notifier.status(f"startup failed: {exc}")
                return exc.exit_code
            except ConfigError as exc:
                log.error("startup failed: %s", exc)
                self._notifier.status(f"startup failed: {exc}")
                return EX_CONFIG
            await self._serve()
            return 0
        except Exception:
            log.critical("unexpected error; stopping", exc_info=True)
            return EX_RUNTIME
        finally:
            await self._shutdown()
            remove_signal_handlers()

    async def _start(self) -> None:
        """The start-up checks (``startup``) in order, then the parts wired together and the cameras started."""
        s = self.settings
        for warning in config_warnings(s):
            log.warning("config: %s", warning)
        broker = mqtt_config(s)
        outbox, self._state_lock = await asyncio.to_thread(open_outbox, s)
        self._outbox = outbox
        self._intake = intake = AlertIntake(
            outbox, s.outbox.memory_rows, self.metrics, self._health.outbox_availability
        )
        await intake.start()
        sources = await asyncio.to_thread(check_cameras, s)
        shared = await asyncio.to_thread(load_models, s)
        identity = PublisherIdentity(
            site=s.service.site,
            host=s.service.host,
            boot_id=self._boot_id,
            software_version=__version__,
            ward=s.service.ward,
            model_versions=shared.model_versions,
        )
        self._cameras = [
            CameraRunner(
                source.settings,
                source,
                # Whole-frame scans spread evenly over the interval, camera by camera (see SearchRegionPlanner).
                build_camera_pipeline(source.camera_id, s, shared, scan_phase=i / len(sources)),
                metrics=self.metrics,
                counters=self.counters,
                workers=self._workers,
            )
            for i, source in enumerate(sources)
        ]
        self._metrics_server = serve_metrics(s, self.metrics)
        if broker is not None:
            self._transport, self._drainer = broker_link(
                broker,
                ack_topic=s.mqtt.ack_topic,
                ack_timeout_s=s.mqtt.ack_timeout_s,
                topics=self._topics,
                identity=identity,
                outbox=outbox,
                metrics=self.metrics,
                delivery=self._delivery,
                on_connected=self._on_connected,
            )
        self._fhir = fhir_link(s, outbox, self.metrics, identity, self._clock)
        intake.attach(self._transport, self._drainer)
        if self._fhir is not None:
            intake.attach_sink(self._fhir.drainer)
        self._alerting.attach(identity)
        self._delivery.attach(outbox, intake, identity, transport=self._transport, drainer=self._drainer)
        self._health.attach(self._cameras, identity, storage=intake, broker=self._transport, drainer=self._drainer)
        if self._transport is not None:
            self._transport.start()
        for camera in self._cameras:
            camera.start()
        if self._stopping.is_set():
            return  # SIGTERM during start-up: not ready, stop at once
        self._health.status_text = f"watching {len(self._cameras)} camera(s)"
        self._notifier.ready(self._health.status_text)
        self.ready.set()
        log.info(
            "started version=%s site=%s host=%s boot=%s cameras=%d ack_mode=%s",
            __version__,
            s.service.site,
            s.service.host,
            self._boot_id,
            len(self._cameras),
            "on" if s.mqtt.ack_topic else "off",
        )

    async def _serve(self) -> None:
        assert self._outbox is not None and self._intake is not None
        o = self.settings.outbox
        tasks = [
            asyncio.create_task(c.run(self._stopping, self._handle_result), name=f"camera-{c.id}")
            for c in self._cameras
        ]
        background: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._health.watchdog_loop(self._workers, self._inference_stuck_s), name="watchdog"),
            asyncio.create_task(monitor_loop_lag(self.metrics, LOOP_LAG_PERIOD_S), name="loop-lag"),
            asyncio.create_task(self._health.loop(), name="camera-health"),
            asyncio.create_task(self._delivery.active_alerts_loop(), name="active-alerts"),
            asyncio.create_task(
                self._health.cleanup_loop(self._outbox, o.keep_published_s, o.cleanup_interval_s),
                name="outbox-cleanup",
            ),
            asyncio.create_task(self._intake.run(), name="held-alerts"),
        ]
        if self._fhir is not None:
            # Cancelled with the background work at shutdown: what it had not delivered goes at the next start.
            background.append(asyncio.create_task(self._fhir.run(), name="fhir"))
        drainer = asyncio.create_task(self._drainer.run(), name="outbox-drainer") if self._drainer is not None else None
        if self.settings.mqtt.ack_topic:
            background.append(asyncio.create_task(self._delivery.ack_loop(), name="acks"))
        stop_wait = asyncio.create_task(self._stopping.wait(), name="stop-signal")
        try:
            if self._stop_when_sources_end:
                sources: asyncio.Future[list[Any]] = asyncio.gather(*tasks, return_exceptions=True)
                waiters: list[asyncio.Future[Any]] = [stop_wait, sources]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            else:
                await stop_wait
            self._stopping.set()
            self._notify_stopping()
            self._notifier.status("stopping: finishing frames, ending open alerts, flushing the outbox")
            log.info("stopping")
            # Camera loops finish their current frame and return.
            await asyncio.gather(*tasks, return_exceptions=True)
            # Background work stops before the final flush: one drainer at a time, else rows go twice. The
            # drainer finishes the batch in flight (bounded by mqtt.timeout_s) so its PUBACKs are recorded.
            if drainer is not None and self._drainer is not None:
                self._drainer.stop()
                await asyncio.wait({drainer}, timeout=self.settings.mqtt.timeout_s + 1.0)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._delivery.record_acks()
            await self._end_open_alerts()
            await self._delivery.flush()
            await self._delivery.publish_active_alerts()
        finally:
            everything = [*background, stop_wait, *tasks, *([drainer] if drainer is not None else [])]
            for task in everything:
                task.cancel()
            await asyncio.gather(*everything, return_exceptions=True)

    def _notify_stopping(self) -> None:
        if not self._stopping_notified:
            self._stopping_notified = True
            self._notifier.stopping()

    async def _shutdown(self) -> None:
        self._notify_stopping()
        for camera in self._cameras:
            await asyncio.to_thread(camera.source.stop)
        if self._transport is not None:
            await self._transport.close()
        if self._fhir is not None:
            await self._fhir.close()
        self._workers.shutdown()
        if self._outbox is not None:
            self._outbox.close()
        if self._state_lock is not None:
            self._state_lock.release()
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self.ready.is_set():
            log.info(
                "stopped frames=%d gait_windows=%d alerts=%d stored=%d",
                self.counters.frames,
                self.counters.gait_windows,
                self.counters.alerts,
                self.counters.alerts_stored,
            )

    async def _end_open_alerts(self) -> None:
        """Shutdown: every open incident gets its ``end`` phase (the tracks and camera outages it was about
        end with this run)."""
        for camera in self._cameras:
            try:
                alerts = await camera.close()
            except Exception:
                log.exception("camera=%s event=close_failed", camera.id)
                continue
            for alert in alerts:
                await self._alerting.clinical(camera.id, alert)
        await self._alerting.end_open_incidents()

    # -- what the parts call back ----------------------------------------------------------------------------

    async def _handle_result(self, camera: CameraRunner, result: FrameResult) -> None:
        """One processed frame (already counted by its camera): gait telemetry out, alerts raised."""
        for gait in result.gait:
            await self._delivery.gait(camera.id, gait)
            if self._fhir is not None:
                self._fhir.offer_gait(camera.id, gait)
        for alert in result.alerts:
            await self._alerting.clinical(camera.id, alert)
        if self._on_result is not None:
            self._on_result(result)

    async def _on_connected(self) -> None:
        """After every (re)connect (the transport has just published "online"): republish every camera's
        retained status and the active-alerts snapshot, which may have changed while disconnected."""
        self._health.republish_camera_statuses()
        if self._intake is not None:
            self._intake.wake()
        await self._health.publish_camera_statuses()
        await self._delivery.publish_active_alerts()

    def _zone_of(self, camera_id: str) -> str:
        for camera in self._cameras:
            if camera.id == camera_id:
                return camera.settings.zone
        raise ValueError(f"unknown camera {camera_id!r}")

    async def emit_technical_alert(
        self,
        type_: str,
        phase: AlertPhase = AlertPhase.START,
        *,
        camera: str | None = None,
        incident_id: str | None = None,
        since: float | None = None,
        priority: str = "high",
        evidence: Mapping[str, float] | None = None,
    ) -> EmittedAlert:
        """Store a technical alert in the outbox, to be published like every other alert.

        The daemon raises its own (``camera_offline``, ``outbox_full``) through the same path; this is public
        so that a commissioning tool, the soak benchmark and the fault-injection tests can push alerts through
        the real outbox and MQTT path without waiting for real abnormal gait (the pipeline never calls it).
        ``incident_id``: None opens a new incident (with ``phase=START``); pass the returned one with
        ``phase=END`` to close it. ``since``: when the condition began (``time.monotonic()``; default now).
        Must be called on the service's event loop after ``ready`` is set.
        """
        return await self._alerting.technical(
            type_, phase, camera=camera, incident_id=incident_id, since=since, priority=priority, evidence=evidence
        )


def run_service(settings: Settings, config_path: Path | None = None) -> int:
    """Entry point of ``gaitwatch run``: logging, then the service on a fresh event loop. ``config_path``:
    the file SIGHUP re-reads."""
    configure_logging(settings.service.log_level)
    return asyncio.run(Service(settings, config_path=config_path).run())


__all__ = [
    "EX_CANTCREAT",
    "EX_NOINPUT",
    "EX_RUNTIME",
    "EX_UNAVAILABLE",
    "EmittedAlert",
    "Service",
    "ServiceCounters",
    "StartupError",
    "run_service",
]
