"""Start-up checks: everything that must work before READY, each failure a ``StartupError`` with its exit code.

Cheapest check first, so a failure leaves nothing half-started: the MQTT settings (password file, TLS files;
``ConfigError``, exit 78), the state directory and outbox, including a test write (exit 73), the cameras (files
must exist and decode, exit 66; a network camera that is down now is only logged, it may come up later), the
models (exit 69), the metrics port (exit 73). The broker is not waited for: the outbox covers its absence.
Plain functions of the settings: each can be tested on its own, without a broker or a running service.
"""

from __future__ import annotations

import errno

from gaitwatch.daemon.assembly import SharedModels
from gaitwatch.daemon.metrics import DaemonMetrics, MetricsServer, start_http_server
from gaitwatch.daemon.mqtt import MqttConfig, MqttConfigError, TlsConfig, tls_context
from gaitwatch.daemon.outbox import Outbox, OutboxError
from gaitwatch.daemon.settings import ConfigError, Settings, read_secret
from gaitwatch.daemon.sinks import configured_sinks
from gaitwatch.daemon.sources import OpenCvCamera, SourceError
from gaitwatch.daemon.state_lock import StateDirLock, StateDirLockedError
from gaitwatch.pose.blazepose import PoseModelError

# sysexits.h codes, so an admin (and systemd's RestartPreventExitStatus=) can tell failures apart.
EX_RUNTIME = 1  # an unexpected error after start-up (logged with its traceback)
EX_NOINPUT = 66  # a configured video file is missing or undecodable
EX_UNAVAILABLE = 69  # a model file is missing or corrupt
EX_CANTCREAT = 73  # the state directory or outbox cannot be created or written


class StartupError(Exception):
    """A problem that prevents the daemon from starting; ``exit_code`` says which kind."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def mqtt_config(settings: Settings) -> MqttConfig | None:
    """The broker connection (None: MQTT off). Reads the password and loads the TLS files now, so a wrong
    path fails start-up (``ConfigError``, exit 78) instead of every connection attempt later."""
    m = settings.mqtt
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
        client_id=m.client_id or f"gaitwatch-{settings.service.site}-{settings.service.host}",
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


def open_outbox(settings: Settings) -> tuple[Outbox, StateDirLock]:
    """Create the state directory, take its lock (one daemon per state directory) and open the outbox with a
    test write. On failure nothing stays open or locked."""
    state_dir = settings.service.state_dir
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
    try:
        return _open_locked(settings), lock
    except BaseException:
        lock.release()
        raise


def _open_locked(settings: Settings) -> Outbox:
    state_dir = settings.service.state_dir
    try:
        outbox = Outbox(state_dir / "outbox.sqlite3", settings.outbox.max_rows, sinks=configured_sinks(settings))
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


def check_cameras(settings: Settings) -> list[OpenCvCamera]:
    """Before the (slow) models: a missing or undecodable video file fails start-up at once (exit 66). The
    sources are returned unstarted."""
    sources: list[OpenCvCamera] = []
    for cam in settings.cameras:
        source = OpenCvCamera(cam)
        try:
            source.check()
        except SourceError as exc:
            raise StartupError(str(exc), EX_NOINPUT) from None
        sources.append(source)
    return sources


def load_models(settings: Settings) -> SharedModels:
    """The detector and pose models every camera shares (exit 69 when one is missing or corrupt)."""
    try:
        return SharedModels(settings)
    except PoseModelError as exc:
        raise StartupError(str(exc), EX_UNAVAILABLE) from None
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise StartupError(f"cannot load a model: {exc}", EX_UNAVAILABLE) from None


def serve_metrics(settings: Settings, metrics: DaemonMetrics) -> MetricsServer | None:
    """The Prometheus endpoint on the configured address (None: metrics off); a taken port is exit 73."""
    m = settings.metrics
    if not m.enabled:
        return None
    try:
        return start_http_server(m.port, m.address, registry=metrics.registry)
    except OSError as exc:
        raise StartupError(
            f"cannot serve metrics on {m.address}:{m.port}: {exc.strerror}; "
            "change [metrics] port or set enabled = false",
            EX_CANTCREAT,
        ) from None
