"""The gaitwatch daemon: wires cameras, the inference thread, the outbox and MQTT together on one event loop.

Start-up is all-or-nothing before READY, cheapest check first, so a failure leaves nothing half-started (no
broker connection, no "online" status, no metrics port, no camera thread): the MQTT settings (password file,
TLS files; exit 78), the state directory and outbox, including a test write (exit 73), the models (exit 69),
the cameras (files must exist and decode, exit 66; a network camera that is down now is only logged, it may
come up later). The broker is not waited for: the outbox covers its absence.

Then one task per camera moves frames from its reader thread to the detection thread and the inference threads
(``service.inference_threads``: several cameras at once, each camera's frames in order) and hands results
to the outbox (alerts, committed before any network I/O) and to MQTT (gait metrics, QoS 0). Around them:
the outbox drainer; a camera-health task (retained camera status, a ``camera_offline`` technical alert when a
camera is silent for its ``stale_after_s``, the systemd STATUS line); the retained snapshot of active alerts;
integrator acks (ack mode); outbox clean-up; an event-loop lag monitor; and a watchdog task that pings systemd
only while both the event loop and every inference thread make progress.

SIGTERM (or SIGINT): STOPPING=1, every camera finishes its current frame, open alerts are ended (their
``end`` phase stored), one bounded attempt flushes the outbox, the (now empty) active-alerts snapshot and the
"offline" status are published, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gaitwatch.daemon import __version__
from gaitwatch.daemon.alert_intake import AlertIntake, StoreResult
from gaitwatch.daemon.assembly import SharedModels, alert_policy_settings, build_camera_pipeline
from gaitwatch.daemon.camera_health import CameraHealth, CameraState
from gaitwatch.daemon.config_checks import config_warnings
from gaitwatch.daemon.logs import LogThrottle, configure_logging
from gaitwatch.daemon.metrics import DaemonMetrics, MetricsServer, monitor_loop_lag, start_http_server
from gaitwatch.daemon.mqtt import (
    MqttConfig,
    MqttConfigError,
    MqttTransport,
    OutboxDrainer,
    TlsConfig,
    TransportError,
    tls_context,
)
from gaitwatch.daemon.outbox import Outbox, OutboxError, OutboxFullError
from gaitwatch.daemon.payloads import (
    ACTIVE_ALERTS_DELIVERY,
    CAMERA_STATUS_DELIVERY,
    GAIT_DELIVERY,
    AckClaim,
    AckError,
    AlertIds,
    CameraStatusState,
    ClockMap,
    PublisherIdentity,
    Topics,
    active_alert_entry,
    active_alerts_payload,
    alert_body,
    camera_status_payload,
    gait_payload,
    host_status_payload,
    new_boot_id,
    parse_ack,
    technical_alert_body,
)
from gaitwatch.daemon.pipeline import STAGES, CameraPipeline, FrameResult
from gaitwatch.daemon.reload import merge_reloadable, plan_reload
from gaitwatch.daemon.sdnotify import SystemdNotifier, watchdog_interval_s
from gaitwatch.daemon.settings import EX_CONFIG, CameraSettings, ConfigError, Settings, load_settings, read_secret
from gaitwatch.daemon.sources import OpenCvCamera, SourceError
from gaitwatch.daemon.state_lock import StateDirLock, StateDirLockedError
from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.gait.types import Alert, AlertPhase
from gaitwatch.pose.blazepose import PoseModelError

log = logging.getLogger(__name__)

# sysexits.h codes, so an admin (and systemd's RestartPreventExitStatus=) can tell failures apart.
EX_RUNTIME = 1  # an unexpected error after start-up (logged with its traceback)
EX_NOINPUT = 66  # a configured video file is missing or undecodable
EX_UNAVAILABLE = 69  # a model file is missing or corrupt
EX_CANTCREAT = 73  # the state directory or outbox cannot be created or written

# The inference thread counts as stuck when one frame has taken this long: then the watchdog stops pinging
# and systemd restarts the service (far above any real frame: ~0.1-0.5 s on a 2-core PC).
INFERENCE_STUCK_S = 20.0
# Camera health is checked this often, or four times per the shortest stale_after_s if that is shorter, so
# an outage is reported at most a quarter of its threshold late.
CAMERA_STATUS_PERIOD_S = 2.0
# Event-loop lag is sampled this often: 4 samples a second make a p99 meaningful within a minute.
LOOP_LAG_PERIOD_S = 0.25
WATCHDOG_CHECK_S = 0.5
# At shutdown, one bounded attempt to deliver what is still in the outbox (the rest waits for the next start).
SHUTDOWN_FLUSH_S = 5.0
# The retained active-alerts snapshot is republished at most this often during an alert burst.
ACTIVE_ALERTS_MIN_INTERVAL_S = 0.5
# Integrator acks are recorded in batches of at most this many ids (one fsync per batch), and at most this
# many wait to be recorded.
ACK_BATCH = 500
ACK_BACKLOG = 10_000
# Repeated identical per-frame errors are logged at most once per this many seconds.
FRAME_ERROR_LOG_INTERVAL_S = 60.0

# What integrators see of a camera's state: a file that reached its end is simply offline to them.
PUBLISHED_CAMERA_STATE: Mapping[CameraState, CameraStatusState] = {
    CameraState.ONLINE: "online",
    CameraState.DEGRADED: "degraded",
    CameraState.OFFLINE: "offline",
    CameraState.FINISHED: "offline",
}

# Signals that would terminate the process by default and have no meaning for the daemon (see ``run``).
IGNORED_SIGNALS: tuple[int, ...] = (
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGVTALRM,
    signal.SIGPROF,
    signal.SIGIO,
    signal.SIGPWR,
    signal.SIGSTKFLT,
    *range(signal.SIGRTMIN, signal.SIGRTMAX + 1),
)

T = TypeVar("T")


class StartupError(Exception):
    """A problem that prevents the daemon from starting; ``exit_code`` says which kind."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(slots=True)
class ServiceCounters:
    """What the daemon did, for the demo's summary line, benchmarks and tests."""

    frames: int = 0
    frame_errors: int = 0
    gait_windows: int = 0
    alerts: int = 0  # alert messages raised (every phase, clinical and technical), stored or not
    alerts_stored: int = 0  # of those, committed to the outbox
    alerts_held: int = 0  # of those, held in memory because the outbox could not commit them
    reloads: int = 0  # SIGHUP reloads applied
    reloads_refused: int = 0  # SIGHUP reloads refused (invalid config)
    confirmed_tracks: set[tuple[str, int]] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class EmittedAlert:
    """An alert message handed to delivery: its idempotency key, the incident it belongs to, and whether it
    was committed to the outbox (``stored``) or, the outbox being unavailable, held in memory (``held``: it
    is published directly and committed when the disk recovers)."""

    alert_id: str
    incident_id: str
    stored: bool
    held: bool = False


@dataclass(slots=True)
class _Camera:
    settings: CameraSettings
    source: OpenCvCamera
    pipeline: CameraPipeline
    health: CameraHealth
    reported_decoded: int = 0
    reported_dropped: int = 0
    reported_reconnects: int = 0
    state: CameraState | None = None  # as last judged (logged on change)
    published_state: CameraState | None = None  # as last published (retained); None: publish again
    last_error: str | None = None
    last_error_logged: float = float("-inf")


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
        self._alert_ids = AlertIds(host=svc.host, boot_id=self._boot_id)
        self._incident_ids = AlertIds(host=svc.host, boot_id=f"{self._boot_id}i")
        self._incidents: dict[tuple[str, int, str], str] = {}
        # Open incidents (started, not ended), by incident id: the retained active-alerts snapshot.
        self._active: dict[str, dict[str, Any]] = {}
        self._active_changed = asyncio.Event()
        self._outbox_full_incident: str | None = None
        # Bounded: acks arriving faster than the disk records them are counted and dropped, not buffered
        # without limit (a dropped ack only means the alert is re-sent after mqtt.ack_timeout_s).
        self._acks: asyncio.Queue[AckClaim] = asyncio.Queue(maxsize=ACK_BACKLOG)
        # Each camera has at most one frame in flight, so these threads run different cameras side by side and
        # every camera's tracker and trajectories still see its frames in order.
        self._inference = ThreadPoolExecutor(
            max_workers=settings.service.inference_threads, thread_name_prefix="inference"
        )
        # Person detection has its own threads (as many, sharing the thread-safe detector): one camera's HOG
        # pass overlaps other cameras' pose inference, and a camera never waits for a busy detector while a
        # core could take it; per camera, frames still go through detect -> process in order.
        self._detection = ThreadPoolExecutor(
            max_workers=settings.service.inference_threads, thread_name_prefix="detection"
        )
        # When each busy inference thread began its current job, by thread id (written only by that thread).
        self._inference_started: dict[int, float] = {}
        self._cameras: list[_Camera] = []
        self._state_lock: StateDirLock | None = None
        self._outbox: Outbox | None = None
        self._intake: AlertIntake | None = None
        # Technical conditions that are an incident while they last (camera offline or degraded, outbox
        # unavailable): the open incident id by (type, camera), claimed before any await (see _condition).
        self._conditions: dict[tuple[TechnicalAlertType, str | None], str] = {}
        self._throttle = LogThrottle(FRAME_ERROR_LOG_INTERVAL_S)
        self._reload_task: asyncio.Task[None] | None = None
        self._mqtt_config: MqttConfig | None = None
        self._transport: MqttTransport | None = None
        self._drainer: OutboxDrainer | None = None
        self._metrics_server: MetricsServer | None = None
        self._identity: PublisherIdentity | None = None
        self._status_text: str | None = None
        self.metrics = DaemonMetrics(
            version=__version__, cameras=[c.id for c in settings.cameras], stages=(*STAGES, "frame")
        )

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
            self._notifier.ready(f"reload refused (invalid config); {self._status_text or ''}".rstrip("; "))
            return
        plan = plan_reload(self.settings, new)
        self.settings = merge_reloadable(self.settings, new)
        configure_logging(self.settings.service.log_level)
        policy = alert_policy_settings(self.settings)
        cameras = {c.id: c for c in self.settings.cameras}
        for camera in self._cameras:
            camera.settings = camera.health.settings = cameras[camera.settings.id]
            camera.pipeline.update_alert_policy(policy)
        self.counters.reloads += 1
        log.info(
            "reloaded config=%s applied=%s needs_restart=%s",
            self._config_path,
            ",".join(plan.applied) or "-",
            ",".join(plan.needs_restart) or "-",
        )
        if plan.needs_restart:
            log.warning("these changes need a restart (systemctl restart gaitwatch): %s", ", ".join(plan.needs_restart))
        self._status_text = None  # re-sent by the next health pass
        self._notifier.ready()

    def _ignore_signal(self, sig: int) -> None:
        try:
            name = signal.Signals(sig).name
        except ValueError:  # a real-time signal between SIGRTMIN and SIGRTMAX has no name of its own
            name = f"signal {sig}"
        self._throttle.log(
            log,
            logging.WARNING,
            f"signal-{sig}",
            "ignoring %s (SIGHUP reloads the config, SIGUSR1 logs the state)",
            name,
        )

    def _log_state(self) -> None:
        """SIGUSR1: one line with the daemon's state (what STATUS shows, plus counters)."""
        c = self.counters
        log.info(
            "state status=%r frames=%d alerts=%d stored=%d held=%d reloads=%d",
            self._status_text or "",
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

    # -- start-up --------------------------------------------------------------------------------------------

    def _build_mqtt_config(self) -> MqttConfig | None:
        """Read the password and load the TLS files now, so a wrong path fails start-up (exit 78) instead of
        every connection attempt later."""
        m = self.settings.mqtt
        if not m.enabled:
            return None
        password = read_secret(m.password_file) if m.password_file is not None else None
        tls = (
            TlsConfig(ca_file=m.tls.ca_file, cert_file=m.tls.cert_file, key_file=m.tls.key_file)
            if m.tls is not None
            else None
        )
        config = MqttConfig(
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
        if tls is not None:
            try:
                tls_context(tls)
            except MqttConfigError as exc:
                raise ConfigError(str(exc)) from None
        return config

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
        lock = StateDirLock(state_dir)
        try:
            lock.acquire()
        except StateDirLockedError as exc:
            raise StartupError(str(exc), EX_CANTCREAT) from None
        except OSError as exc:
            full = " (the disk, or the state directory's quota, is full)" if exc.errno == errno.ENOSPC else ""
            raise StartupError(
                f"cannot create the lock file in {state_dir}: {exc.strerror}{full}; free space in (or fix) "
                "service.state_dir",
                EX_CANTCREAT,
            ) from None
        self._state_lock = lock
        try:
            outbox = Outbox(
                state_dir / "outbox.sqlite3",
                self.settings.outbox.max_rows,
                ack_required=self.settings.mqtt.enabled and self.settings.mqtt.ack_topic is not None,
            )
        except OutboxError as exc:
            hint = "fix service.state_dir"
            if "corrupt" in str(exc) or "not an SQLite database" in str(exc):
                hint = f"recover its alerts with `gaitwatch outbox salvage --state-dir {state_dir}`"
            raise StartupError(f"{exc}; {hint}", EX_CANTCREAT) from None
        try:
            outbox.check_writable()
        except OutboxError as exc:
            outbox.close()
            raise StartupError(f"{exc}; free space in (or fix) service.state_dir", EX_CANTCREAT) from None
        return outbox

    def _load_models(self) -> SharedModels:
        try:
            return SharedModels(self.settings)
        except PoseModelError as exc:
            raise StartupError(str(exc), EX_UNAVAILABLE) from None
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise StartupError(f"cannot load a model: {exc}", EX_UNAVAILABLE) from None

    def _check_cameras(self) -> list[OpenCvCamera]:
        """Before the (slow) models: a missing or undecodable video file fails start-up at once."""
        sources: list[OpenCvCamera] = []
        for cam in self.settings.cameras:
            source = OpenCvCamera(cam)
            try:
                source.check()
            except SourceError as exc:
                raise StartupError(str(exc), EX_NOINPUT) from None
            sources.append(source)
        return sources

    # -- the run ---------------------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT or ``request_stop`` (or until every source ended, if asked); returns the
        exit code: 0 after a graceful stop, 66/69/73/78 when start-up failed, 1 after an unexpected error."""
        loop = asyncio.get_running_loop()
        handlers: dict[int, Callable[[], None]] = {
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
            signal.SIGHUP: self.request_reload,
            signal.SIGUSR1: self._log_state,
        }
        # Every other signal whose default action would kill the daemon mid-frame (outbox, open incidents and
        # all) means nothing here: ignored, with a line in the log. SIGQUIT keeps its core dump (debugging);
        # SIGKILL and SIGSTOP cannot be caught; SIGPIPE and SIGXFSZ Python already ignores.
        for sig in IGNORED_SIGNALS:
            handlers[sig] = lambda sig=sig: self._ignore_signal(sig)  # type: ignore[misc]
        for sig, handler in handlers.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, handler)
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
            for sig in handlers:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)

    async def _start(self) -> None:
        s = self.settings
        for warning in config_warnings(s):
            log.warning("config: %s", warning)
        self._mqtt_config = self._build_mqtt_config()
        self._outbox = await asyncio.to_thread(self._open_outbox)
        self._intake = AlertIntake(self._outbox, s.outbox.memory_rows, self.metrics, self._on_outbox_availability)
        await self._intake.start()
        sources = await asyncio.to_thread(self._check_cameras)
        shared = await asyncio.to_thread(self._load_models)
        self._identity = PublisherIdentity(
            site=s.service.site,
            host=s.service.host,
            boot_id=self._boot_id,
            software_version=__version__,
            ward=s.service.ward,
            model_versions=shared.model_versions,
        )
        self._cameras = [
            _Camera(
                source.settings,
                source,
                build_camera_pipeline(source.camera_id, s, shared),
                CameraHealth(source.settings, time.monotonic()),
            )
            for source in sources
        ]
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
        if self._mqtt_config is not None:
            identity = self._identity
            ack_topic = s.mqtt.ack_topic
            self._transport = MqttTransport(
                self._mqtt_config,
                status_topic=self._topics.status,
                online_payload=lambda: host_status_payload("online", identity, time.time()),
                offline_payload=lambda: host_status_payload("offline", identity, time.time()),
                subscriptions=(ack_topic,) if ack_topic else (),
                on_message=self._on_message if ack_topic else None,
                on_connected=self._on_connected,
                metrics=self.metrics,
            )
            self._transport.start()
            self._drainer = OutboxDrainer(
                self._outbox,
                self._transport,
                metrics=self.metrics,
                republish_after_s=s.mqtt.ack_timeout_s if ack_topic else None,
            )
        self._intake.attach(self._transport, self._drainer)
        for camera in self._cameras:
            camera.health.restart_clock(time.monotonic())
            camera.source.start()
        if self._stopping.is_set():
            return  # SIGTERM during start-up: not ready, stop at once
        self._status_text = f"watching {len(self._cameras)} camera(s)"
        self._notifier.ready(self._status_text)
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
        tasks = [asyncio.create_task(self._camera_loop(c), name=f"camera-{c.settings.id}") for c in self._cameras]
        background: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
            asyncio.create_task(monitor_loop_lag(self.metrics, LOOP_LAG_PERIOD_S), name="loop-lag"),
            asyncio.create_task(self._health_loop(), name="camera-health"),
            asyncio.create_task(self._active_alerts_loop(), name="active-alerts"),
            asyncio.create_task(self._cleanup_loop(), name="outbox-cleanup"),
        ]
        if self._intake is not None:
            background.append(asyncio.create_task(self._intake.run(), name="held-alerts"))
        drainer = asyncio.create_task(self._drainer.run(), name="outbox-drainer") if self._drainer is not None else None
        if self.settings.mqtt.ack_topic:
            background.append(asyncio.create_task(self._ack_loop(), name="acks"))
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
            await self._record_acks()
            await self._end_open_alerts()
            if self._intake is not None:
                await self._intake.flush()
            await self._flush_outbox()
            await self._publish_active_alerts()
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
        self._inference.shutdown(wait=True)
        self._detection.shutdown(wait=True)
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

    # -- per camera ------------------------------------------------------------------------------------------

    async def _infer(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on an inference thread (watched, see ``_watched``)."""
        return await self._watched(self._inference, fn)

    async def _watched(self, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        """Run ``fn`` on one of ``executor``'s threads (inference or detection). The thread itself records
        when the job it is running began, so the watchdog sees a hung job even while other cameras' jobs
        queue behind it."""

        def job() -> T:
            thread = threading.get_ident()
            self._inference_started[thread] = time.monotonic()
            try:
                return fn()
            finally:
                del self._inference_started[thread]

        return await asyncio.get_running_loop().run_in_executor(executor, job)

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
            try:
                detected = None
                if pipeline.detection_due(frame.t):
                    detected = await self._watched(self._detection, lambda f=frame: pipeline.detect(f))  # type: ignore[misc]
                result = await self._infer(lambda f=frame, d=detected: pipeline.process(f, d))  # type: ignore[misc]
                await self._deliver(camera, result)
            except Exception as exc:
                # One bad frame (or a bug it triggers) must not end the camera for the daemon's lifetime.
                self._frame_failed(camera, exc)

    def _frame_failed(self, camera: _Camera, exc: Exception) -> None:
        self.counters.frame_errors += 1
        text = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if text != camera.last_error or now - camera.last_error_logged >= FRAME_ERROR_LOG_INTERVAL_S:
            log.error("camera=%s event=frame_failed", camera.settings.id, exc_info=exc)
            camera.last_error, camera.last_error_logged = text, now

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
        camera.reported_reconnects = max(camera.reported_reconnects, stats.reconnects)

    async def _deliver(self, camera: _Camera, result: FrameResult) -> None:
        cam = camera.settings.id
        self.counters.frames += 1
        camera.health.frame_processed(time.monotonic())
        for stage, seconds in result.stage_s.items():
            self.metrics.observe_stage(stage, seconds)
        self.metrics.observe_stage("frame", sum(result.stage_s.values()))
        self.metrics.set_tracks_active(cam, len(result.tracks.confirmed()))
        self.metrics.recovery(cam, result.recovery_crops, result.recovered)
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

    # -- alerts ----------------------------------------------------------------------------------------------

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
        self.metrics.alert_raised(alert.type, "clinical")
        await self._store(self._topics.alert(cam), body, alert_id)

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

        The daemon raises its own (``camera_offline``, ``outbox_full``) through here; it is public so that a
        commissioning tool, the soak benchmark and the fault-injection tests can push alerts through the
        real outbox and MQTT path without waiting for real abnormal gait (the pipeline never calls it).
        ``incident_id``: None opens a new incident (with ``phase=START``); pass the returned one with
        ``phase=END`` to close it. ``since``: when the condition began (``time.monotonic()``; default now).
        Must be called on the service's event loop after ``ready`` is set.
        """
        if self._identity is None:
            raise RuntimeError("the service has not started")
        cam = self._camera(camera) if camera is not None else None
        incident = incident_id or self._incident_ids.next()
        now = time.monotonic()
        alert_id = self._alert_ids.next()
        body = technical_alert_body(
            type_,
            phase,
            camera=camera,
            identity=self._identity,
            clock=self._clock,
            t_start=now if since is None else since,
            t_observed=now,
            alert_id=alert_id,
            incident_id=incident,
            priority=priority,
            zone=cam.settings.zone if cam else "",
            evidence=evidence,
        )
        self.metrics.alert_raised(type_, "technical")
        # The overflow alert must get in even when the outbox is full: that is the point of it.
        result = await self._store(
            self._topics.alert(camera), body, alert_id, over_limit=type_ == TechnicalAlertType.OUTBOX_FULL
        )
        return EmittedAlert(alert_id, incident, result is StoreResult.STORED, result is StoreResult.HELD)

    def _camera(self, camera_id: str) -> _Camera:
        for camera in self._cameras:
            if camera.settings.id == camera_id:
                return camera
        raise ValueError(f"unknown camera {camera_id!r}")

    async def _store(self, topic: str, body: bytes, alert_id: str, *, over_limit: bool = False) -> StoreResult:
        """Hand an alert to delivery before any network I/O: committed to the outbox (the drainer publishes
        it) or, when the disk refuses it, held in memory and published directly (``AlertIntake``). A full
        outbox is loud (log, metric, ``outbox_full`` technical alert); so is an unavailable one."""
        assert self._intake is not None
        self.counters.alerts += 1
        self._track_active(body)
        try:
            result = await self._intake.store(topic, body, alert_id, over_limit=over_limit)
        except OutboxFullError as exc:
            self.metrics.outbox_overflow()
            log.error("outbox full: alert not stored alert_id=%s error=%s", alert_id, exc)
            if self._outbox_full_incident is None:
                # Claimed before the await: several cameras may hit the full outbox at once.
                self._outbox_full_incident = incident = self._incident_ids.next()
                await self.emit_technical_alert(
                    TechnicalAlertType.OUTBOX_FULL,
                    incident_id=incident,
                    evidence={"max_rows": float(self.settings.outbox.max_rows)},
                )
            return StoreResult.LOST
        if result is StoreResult.STORED:
            self.counters.alerts_stored += 1
            if self._outbox_full_incident is not None and not over_limit:
                # The outbox took an alert again: the overflow is over.
                incident, self._outbox_full_incident = self._outbox_full_incident, None
                await self.emit_technical_alert(TechnicalAlertType.OUTBOX_FULL, AlertPhase.END, incident_id=incident)
        elif result is StoreResult.HELD:
            self.counters.alerts_held += 1
        return result

    async def _on_outbox_availability(self, available: bool) -> None:
        """The outbox stopped committing alerts (disk full, locked, I/O errors), or is back: a technical
        alert for the integrators (it travels like every alert: held and published directly while the disk
        is down), the STATUS line at once."""
        await self._condition(
            TechnicalAlertType.OUTBOX_UNAVAILABLE,
            not available,
            evidence={"memory_rows": float(self.settings.outbox.memory_rows)},
        )
        self._update_status_line()

    async def _condition(
        self,
        type_: TechnicalAlertType,
        holds: bool,
        *,
        camera: str | None = None,
        since: float | None = None,
        priority: str = "high",
        evidence: Mapping[str, float] | None = None,
    ) -> None:
        """A technical condition is one incident while it holds: started the first time ``holds`` is seen,
        ended the first time it is not. The incident id is claimed before the await, because the on-connect
        hook and the health loop may report the same condition concurrently."""
        key = (type_, camera)
        open_id = self._conditions.get(key)
        if holds and open_id is None:
            self._conditions[key] = incident = self._incident_ids.next()
            await self.emit_technical_alert(
                type_, camera=camera, incident_id=incident, since=since, priority=priority, evidence=evidence
            )
        elif not holds and open_id is not None:
            del self._conditions[key]
            await self.emit_technical_alert(type_, AlertPhase.END, camera=camera, incident_id=open_id)

    def _track_active(self, body: bytes) -> None:
        """Keep the set of open incidents (for the retained snapshot), whether or not the outbox took the
        message: when it could not, the snapshot is the only place the incident still shows."""
        entry = active_alert_entry(body)
        incident = str(entry["incident_id"])
        if entry["phase"] == str(AlertPhase.END):
            self._active.pop(incident, None)
        else:
            previous = self._active.get(incident)
            if previous is not None:
                entry["observed_start"] = previous["observed_start"]
            self._active[incident] = entry
        self._active_changed.set()

    async def _end_open_alerts(self) -> None:
        """Shutdown: every open incident gets its ``end`` phase (the tracks and camera outages it was about
        end with this run)."""
        now = time.monotonic()
        for camera in self._cameras:
            media_now = camera.source.stats.last_frame_t or now
            try:
                alerts = await self._infer(lambda c=camera, t=media_now: c.pipeline.close(t))  # type: ignore[misc]
            except Exception:
                log.exception("camera=%s event=close_failed", camera.settings.id)
                continue
            for alert in alerts:
                await self._store_clinical_alert(camera, alert)
        for type_, cam in list(self._conditions):
            await self._condition(type_, False, camera=cam)
        if self._outbox_full_incident is not None:
            incident, self._outbox_full_incident = self._outbox_full_incident, None
            await self.emit_technical_alert(TechnicalAlertType.OUTBOX_FULL, AlertPhase.END, incident_id=incident)
        # Anything still open was raised through emit_technical_alert by a tool: close it too.
        for incident, entry in list(self._active.items()):
            await self.emit_technical_alert(
                str(entry["type"]), AlertPhase.END, camera=entry["camera"], incident_id=incident
            )

    async def _flush_outbox(self) -> None:
        if self._drainer is None or self._transport is None or not self._transport.connected:
            return
        with contextlib.suppress(TimeoutError, TransportError, OutboxError):
            async with asyncio.timeout(SHUTDOWN_FLUSH_S):
                sent = await self._drainer.drain_once()
                log.info("flushed outbox rows=%d", sent)

    # -- the active-alerts snapshot and integrator acks ------------------------------------------------------

    async def _active_alerts_loop(self) -> None:
        while True:
            await self._active_changed.wait()
            await self._publish_active_alerts()
            # A burst of alerts becomes a few snapshots, not one per alert.
            await asyncio.sleep(ACTIVE_ALERTS_MIN_INTERVAL_S)

    async def _publish_active_alerts(self) -> None:
        transport = self._transport
        if transport is None or self._identity is None or not transport.connected:
            return  # republished on (re)connect
        self._active_changed.clear()
        payload = active_alerts_payload(list(self._active.values()), self._identity, time.time())
        try:
            await transport.publish(
                self._topics.active_alerts,
                payload,
                qos=ACTIVE_ALERTS_DELIVERY.qos,
                retain=ACTIVE_ALERTS_DELIVERY.retain,
            )
        except TransportError as exc:
            self._active_changed.set()  # try again
            log.debug("active alerts publish failed error=%s", exc)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        """Integrator acks (the only subscription): parsed here, recorded in batches by ``_ack_loop``."""
        if topic != self.settings.mqtt.ack_topic:
            return
        try:
            claims = parse_ack(payload)
        except AckError as exc:
            self.metrics.ack_received("invalid")
            # A broken or hostile client can send these by the thousand: the metric counts every one.
            self._throttle.log(
                log, logging.WARNING, "ack", "ignoring an invalid ack message topic=%s error=%s", topic, exc
            )
            return
        for claim in claims:
            try:
                self._acks.put_nowait(claim)
            except asyncio.QueueFull:
                self.metrics.ack_received("ignored")
                self._throttle.log(log, logging.WARNING, "ack-backlog", "ack backlog full; dropping acks")

    async def _ack_loop(self) -> None:
        while True:
            first = await self._acks.get()
            await self._record_acks(first)

    async def _record_acks(self, first: AckClaim | None = None) -> None:
        claims: list[AckClaim] = [] if first is None else [first]
        while not self._acks.empty() and len(claims) < ACK_BATCH:
            claims.append(self._acks.get_nowait())
        if not claims or self._outbox is None:
            return
        try:
            acked = await asyncio.to_thread(self._outbox.mark_acked_many, [(c.alert_id, c.ack_token) for c in claims])
        except OutboxError as exc:
            log.error("cannot record acks error=%s", exc)
            return
        self.metrics.ack_received("acked", acked)
        self.metrics.ack_received("ignored", len(claims) - acked)

    async def _cleanup_loop(self) -> None:
        o = self.settings.outbox
        while True:
            if self._outbox is not None:
                try:
                    deleted = await asyncio.to_thread(self._outbox.cleanup, o.keep_published_s)
                    stats = await asyncio.to_thread(self._outbox.stats, time.time())
                except OutboxError as exc:
                    log.error("outbox clean-up failed error=%s", exc)
                else:
                    self.metrics.outbox_cleaned.inc(deleted)
                    self.metrics.set_outbox(stats.pending, stats.oldest_pending_age_s)
                    self.metrics.set_outbox_rows(stats.rows, stats.unacked)
                    if deleted:
                        log.info("outbox clean-up deleted=%d rows=%d", deleted, stats.rows)
            await asyncio.sleep(o.cleanup_interval_s)

    # -- health ----------------------------------------------------------------------------------------------

    async def _on_connected(self) -> None:
        """After every (re)connect (the transport has just published "online"): republish every camera's
        retained status and the active-alerts snapshot, which may have changed while disconnected."""
        for camera in self._cameras:
            camera.published_state = None
        if self._intake is not None:
            self._intake.wake()
        await self._publish_camera_statuses()
        await self._publish_active_alerts()

    async def _health_loop(self) -> None:
        stale = min((c.settings.stale_after_s for c in self._cameras), default=CAMERA_STATUS_PERIOD_S * 4)
        period = max(0.05, min(CAMERA_STATUS_PERIOD_S, stale / 4))
        while True:
            await self._publish_camera_statuses()
            self._update_status_line()
            await asyncio.sleep(period)

    async def _publish_camera_statuses(self) -> None:
        assert self._identity is not None
        now = time.monotonic()
        for camera in self._cameras:
            self._sync_camera_counters(camera)
            cam, stats = camera.settings.id, camera.source.stats
            last = stats.last_grab_monotonic
            judged = camera.health.assess(now, last, camera.source.finished, stats.fps)
            state = judged.state
            delivering = state in (CameraState.ONLINE, CameraState.DEGRADED)
            self.metrics.set_camera_up(cam, delivering and stats.connected)
            self.metrics.set_camera_degraded(cam, state is CameraState.DEGRADED)
            if state != camera.state:
                # Logged once per change, whether or not the status can be published now (a camera that is
                # offline while the broker is down is one line, not one every health pass).
                if camera.state is not None or state is not CameraState.ONLINE:
                    log.log(
                        logging.INFO if state in (CameraState.ONLINE, CameraState.FINISHED) else logging.WARNING,
                        "camera=%s event=%s silent_s=%.1f processed_fps=%.1f",
                        cam,
                        state,
                        judged.silent_for_s,
                        judged.processed_fps,
                    )
                camera.state = state
            if state != camera.published_state:
                payload = camera_status_payload(
                    PUBLISHED_CAMERA_STATE[state],
                    cam,
                    self._identity,
                    time.time(),
                    None if last is None else max(0.0, now - last),
                    zone=camera.settings.zone,
                )
                if await self._publish_status(self._topics.camera_status(cam), payload):
                    camera.published_state = state
            await self._track_camera_incidents(camera, state, now - judged.silent_for_s, judged.processed_fps)

    async def _track_camera_incidents(
        self, camera: _Camera, state: CameraState, silent_since: float, processed_fps: float
    ) -> None:
        """A camera that stops delivering (not one that finished its file) is a technical alert until it
        recovers; so is one whose frames arrive faster than this PC can process them."""
        cam = camera.settings.id
        await self._condition(
            TechnicalAlertType.CAMERA_OFFLINE,
            state is CameraState.OFFLINE,
            camera=cam,
            since=silent_since,
            evidence={"stale_after_s": camera.settings.stale_after_s},
        )
        await self._condition(
            TechnicalAlertType.CAMERA_DEGRADED,
            state is CameraState.DEGRADED,
            camera=cam,
            priority="medium",
            evidence={
                "processed_fps": round(processed_fps, 2),
                "min_processed_fps": camera.settings.min_processed_fps,
                "camera_fps": float(camera.source.stats.fps or 0.0),
            },
        )

    async def _publish_status(self, topic: str, payload: bytes) -> bool:
        """Publish a retained status; False when it could not be sent now (it is sent on reconnect)."""
        transport = self._transport
        if transport is None:
            return True  # MQTT off: nothing to send, the state is still tracked
        if not transport.connected:
            return False
        try:
            await transport.publish(
                topic, payload, qos=CAMERA_STATUS_DELIVERY.qos, retain=CAMERA_STATUS_DELIVERY.retain
            )
        except TransportError:
            return False
        return True

    def _update_status_line(self) -> None:
        """systemd's STATUS= (shown by ``systemctl status``): cameras, broker and outbox in one line, sent
        when it changes. The broker's last error is the first thing to look at when alerts do not arrive."""
        online = [c for c in self._cameras if c.state in (CameraState.ONLINE, CameraState.DEGRADED)]
        parts = [f"cameras {len(online)}/{len(self._cameras)} online"]
        offline = [c.settings.id for c in self._cameras if c.state is CameraState.OFFLINE]
        if offline:
            parts[0] += f" (offline: {', '.join(offline)})"
        degraded = [c.settings.id for c in self._cameras if c.state is CameraState.DEGRADED]
        if degraded:
            parts[0] += f" (DEGRADED, too slow to analyse gait: {', '.join(degraded)})"
        transport = self._transport
        if transport is not None:
            if transport.connected:
                failing = self._drainer.last_error if self._drainer is not None else None
                parts.append(f"mqtt connected; alerts failing: {failing}" if failing else "mqtt connected")
            else:
                parts.append(f"mqtt down: {transport.last_error or 'connecting'}")
        intake = self._intake
        if intake is not None and not intake.available:
            parts.append(
                f"OUTBOX UNAVAILABLE ({intake.last_error or 'disk error'}): {intake.held} alerts held in memory"
            )
        pending = int(self.metrics.outbox_pending._value.get())
        parts.append(f"outbox pending {pending}")
        text = "; ".join(parts)
        if text != self._status_text:
            self._status_text = text
            self._notifier.status(text)

    async def _watchdog_loop(self) -> None:
        interval = watchdog_interval_s()
        period = min(WATCHDOG_CHECK_S, interval) if interval else WATCHDOG_CHECK_S
        last_ping = float("-inf")
        stuck_logged = False
        losing_logged = False
        while True:
            now = time.monotonic()
            # copy(): one atomic step, while inference threads add and remove their entries.
            started = min(self._inference_started.copy().values(), default=None)
            inference_alive = started is None or now - started < self._inference_stuck_s
            # Alerts being lost (outbox unavailable and the memory hold full): a restart makes the failure
            # visible to systemd and fleet monitoring, and reopens the database (a stale lock, a remounted
            # disk); it cannot lose more than is being lost already.
            losing = self._intake is not None and self._intake.losing
            if losing and not losing_logged:
                log.critical("alerts are being lost (outbox unavailable, memory hold full); withholding watchdog pings")
            losing_logged = losing
            if interval and inference_alive and not losing and now - last_ping >= interval:
                self._notifier.watchdog()
                last_ping = now
            if not inference_alive and not stuck_logged:
                assert started is not None
                log.error(
                    "inference thread stuck (pose or detection) for %.0f s; withholding watchdog pings", now - started
                )
            stuck_logged = not inference_alive
            await asyncio.sleep(period)


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
