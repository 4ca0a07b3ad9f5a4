"""Prometheus metrics of the daemon, on a per-instance registry (never the process-global default one).

Names are ``gaitwatch_*`` in base units (seconds), counters end in ``_total``. Labels come only from
bounded sets: the configured cameras, the pipeline stages, a capped set of alert types and fixed failure
reasons; never a track id or anything about a person (each label value is a time series Prometheus keeps,
and a per-person label would both explode its storage and leak who was seen when).

``start_http_server`` binds 127.0.0.1 unless told otherwise: prometheus_client's own default is 0.0.0.0, which
would put the endpoint on the ward network by accident.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from threading import Thread
from typing import Final, NoReturn
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import start_http_server as _prometheus_http_server

DEFAULT_STAGES: Final = ("detect", "track", "pose", "gait", "frame")
PUBLISH_FAILURE_REASONS: Final = ("not_connected", "timeout", "rejected", "error")
# What became of an alert id named in an integrator ack: newly acknowledged, already acknowledged or not ours
# (another host's, or cleaned up), or the whole message was unreadable.
ACK_RESULTS: Final = ("acked", "ignored", "invalid")
# Alert types are code-defined, but a bug (a type built from data) must not create unbounded series:
# beyond this many distinct types, further ones are counted as "other".
MAX_ALERT_TYPES: Final = 32

# Buckets in seconds: a frame budget at 7-15 fps is 70-140 ms; pose per crop ~10 ms.
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Event-loop lag: the target is p99 < 50 ms; finer buckets below that.
_LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_BATCH_BUCKETS: Final = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


class DaemonMetrics:
    """All daemon metrics, registered on ``self.registry``.

    ``cameras`` and ``stages`` are the allowed label values; an unknown one raises ValueError (a bug, caught
    by tests, rather than a silent new series). Series of every configured camera exist from the start at 0,
    so "camera never produced a frame" is visible rather than absent.
    """

    def __init__(
        self,
        *,
        version: str,
        cameras: Iterable[str],
        stages: Sequence[str] = DEFAULT_STAGES,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.cameras: frozenset[str] = frozenset(cameras)
        self.stages: frozenset[str] = frozenset(stages)
        self._alert_types: set[str] = set()
        r = self.registry

        self.frames_decoded = Counter(
            "gaitwatch_frames_decoded", "Frames decoded from the camera", ["camera"], registry=r
        )
        self.frames_dropped = Counter(
            "gaitwatch_frames_dropped",
            "Frames decoded but overwritten before the pipeline took them (pipeline slower than camera)",
            ["camera"],
            registry=r,
        )
        self.camera_up = Gauge("gaitwatch_camera_up", "1 while the camera delivers frames", ["camera"], registry=r)
        self.camera_reconnects = Counter(
            "gaitwatch_camera_reconnects", "Times the camera stream was reopened", ["camera"], registry=r
        )
        self.stage_latency = Histogram(
            "gaitwatch_stage_latency_seconds",
            "Processing time of one frame in one pipeline stage",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tracks_active = Gauge(
            "gaitwatch_tracks_active", "People currently tracked on the camera", ["camera"], registry=r
        )
        self.pose_batch_size = Histogram(
            "gaitwatch_pose_batch_size",
            "Crops sent to the pose model per frame",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        # Motion-verified recovery (gaitwatch.pose.recovery): crops tried on moving regions nobody explained, and
        # the people they found. Many crops and few people: moving background (curtains, screens, shadows).
        self.recovery_crops = Counter(
            "gaitwatch_recovery_crops",
            "Pose crops sent to moving regions that no detection or posed track explained",
            ["camera"],
            registry=r,
        )
        self.recovery_people = Counter(
            "gaitwatch_recovery_people",
            "People found by recovery crops (pose presence), handed to the tracker as detections",
            ["camera"],
            registry=r,
        )
        self.alerts = Counter(
            "gaitwatch_alerts", "Alert messages raised (all phases)", ["category", "type"], registry=r
        )
        self.outbox_pending = Gauge(
            "gaitwatch_outbox_pending", "Alerts stored but not yet acknowledged by the broker", registry=r
        )
        self.sink_pending = Gauge(
            "gaitwatch_sink_pending",
            "Alerts owed to this sink (mqtt, fhir) and not delivered to it yet: a FHIR server that is down or "
            "refuses the credentials shows here while MQTT delivers",
            ["sink"],
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "gaitwatch_outbox_oldest_pending_age_seconds",
            "How long the oldest undelivered alert has waited (0 when none)",
            registry=r,
        )
        self.outbox_full = Counter(
            "gaitwatch_outbox_full",
            "Alerts that could NOT be stored because the outbox was full of undelivered alerts",
            registry=r,
        )
        self.outbox_published = Counter(
            "gaitwatch_outbox_published", "Outbox rows acknowledged by the broker (PUBACK)", registry=r
        )
        self.outbox_republished = Counter(
            "gaitwatch_outbox_republished",
            "Ack mode: alerts sent again because no integrator acknowledged them in time",
            registry=r,
        )
        self.outbox_unacked = Gauge(
            "gaitwatch_outbox_unacked",
            "Ack mode: alerts the broker took but no integrator acknowledged yet",
            registry=r,
        )
        self.outbox_rows = Gauge(
            "gaitwatch_outbox_rows",
            "Rows in the outbox, delivered or not (bounded by outbox.max_rows)",
            registry=r,
        )
        self.outbox_cleaned = Counter(
            "gaitwatch_outbox_cleaned", "Delivered rows deleted after outbox.keep_published_s", registry=r
        )
        self.outbox_available = Gauge(
            "gaitwatch_outbox_available",
            "0 while the outbox cannot commit alerts (disk full, locked, I/O error): alerts are then held in "
            "memory and published directly",
            registry=r,
        )
        self.alerts_held = Gauge(
            "gaitwatch_alerts_held",
            "Alerts held in memory because the outbox could not commit them (bounded by outbox.memory_rows)",
            registry=r,
        )
        self.alerts_lost = Counter(
            "gaitwatch_alerts_lost",
            "Alerts neither committed nor held (outbox unavailable AND the memory hold full): page someone",
            registry=r,
        )
        self.camera_degraded = Gauge(
            "gaitwatch_camera_degraded",
            "1 while the camera delivers frames but the pipeline processes fewer than the camera's "
            "min_processed_fps (too large or too fast a stream for this PC)",
            ["camera"],
            registry=r,
        )
        self.acks = Counter(
            "gaitwatch_mqtt_acks",
            "Alert ids named in integrator acks, by result (acked, ignored, invalid message)",
            ["result"],
            registry=r,
        )
        self.mqtt_connected = Gauge("gaitwatch_mqtt_connected", "1 while connected to the broker", registry=r)
        self.mqtt_connects = Counter("gaitwatch_mqtt_connects", "Successful broker connections", registry=r)
        self.publish_failures = Counter(
            "gaitwatch_mqtt_publish_failures", "Publishes that did not complete", ["reason"], registry=r
        )
        self.event_loop_lag = Histogram(
            "gaitwatch_event_loop_lag_seconds",
            "How late the event loop woke a periodic timer",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.build_info = Info("gaitwatch_build", "Software build", registry=r)
        self.build_info.info({"version": version, "python": platform.python_version()})

        for camera in self.cameras:
            self.frames_decoded.labels(camera=camera)
            self.frames_dropped.labels(camera=camera)
            self.camera_up.labels(camera=camera).set(0)
            self.camera_reconnects.labels(camera=camera)
            self.tracks_active.labels(camera=camera).set(0)
            self.camera_degraded.labels(camera=camera).set(0)
            self.recovery_crops.labels(camera=camera)
            self.recovery_people.labels(camera=camera)
        for stage in self.stages:
            self.stage_latency.labels(stage=stage)
        for reason in PUBLISH_FAILURE_REASONS:
            self.publish_failures.labels(reason=reason)
        for result in ACK_RESULTS:
            self.acks.labels(result=result)
        self.mqtt_connected.set(0)
        self.outbox_available.set(1)

    def _camera(self, camera: str) -> str:
        if camera not in self.cameras:
            raise ValueError(f"unknown camera label {camera!r}; configured: {sorted(self.cameras)}")
        return camera

    # -- cameras and pipeline ----------------------------------------------------------------------------

    def frame_decoded(self, camera: str, n: int = 1) -> None:
        self.frames_decoded.labels(camera=self._camera(camera)).inc(n)

    def frame_dropped(self, camera: str, n: int = 1) -> None:
        self.frames_dropped.labels(camera=self._camera(camera)).inc(n)

    def set_camera_up(self, camera: str, up: bool) -> None:
        self.camera_up.labels(camera=self._camera(camera)).set(1 if up else 0)

    def camera_reconnect(self, camera: str) -> None:
        self.camera_reconnects.labels(camera=self._camera(camera)).inc()

    def observe_stage(self, stage: str, seconds: float) -> None:
        if stage not in self.stages:
            raise ValueError(f"unknown stage label {stage!r}; allowed: {sorted(self.stages)}")
        self.stage_latency.labels(stage=stage).observe(seconds)

    def set_tracks_active(self, camera: str, n: int) -> None:
        self.tracks_active.labels(camera=self._camera(camera)).set(n)

    def observe_pose_batch(self, size: int) -> None:
        self.pose_batch_size.observe(size)

    def recovery(self, camera: str, crops: int, people: int) -> None:
        """One frame's motion-verified recovery: crops tried and people found."""
        camera = self._camera(camera)
        if crops:
            self.recovery_crops.labels(camera=camera).inc(crops)
        if people:
            self.recovery_people.labels(camera=camera).inc(people)

    # -- alerts and delivery -----------------------------------------------------------------------------

    def alert_raised(self, type_: str, category: str) -> None:
        if category not in ("clinical", "technical"):
            raise ValueError(f"alert category must be clinical or technical; got {category!r}")
        if type_ not in self._alert_types:
            if len(self._alert_types) >= MAX_ALERT_TYPES:
                type_ = "other"
            else:
                self._alert_types.add(type_)
        self.alerts.labels(category=category, type=type_).inc()

    def set_outbox(self, pending: int, oldest_age_s: float, pending_by_sink: Mapping[str, int] | None = None) -> None:
        self.outbox_pending.set(pending)
        self.outbox_oldest_age.set(oldest_age_s)
        for sink, count in (pending_by_sink or {}).items():
            self.sink_pending.labels(sink=sink).set(count)

    def outbox_overflow(self) -> None:
        """An alert was refused by a full outbox: alert on ``increase(gaitwatch_outbox_full_total) > 0``."""
        self.outbox_full.inc()

    def outbox_row_published(self) -> None:
        self.outbox_published.inc()

    def set_held(self, held: int, *, available: bool) -> None:
        self.alerts_held.set(held)
        self.outbox_available.set(1 if available else 0)

    def set_camera_degraded(self, camera: str, degraded: bool) -> None:
        self.camera_degraded.labels(camera=self._camera(camera)).set(1 if degraded else 0)

    def set_outbox_rows(self, rows: int, unacked: int) -> None:
        self.outbox_rows.set(rows)
        self.outbox_unacked.set(unacked)

    def ack_received(self, result: str, n: int = 1) -> None:
        if result not in ACK_RESULTS:
            raise ValueError(f"unknown ack result {result!r}; allowed: {ACK_RESULTS}")
        self.acks.labels(result=result).inc(n)

    def set_mqtt_connected(self, connected: bool) -> None:
        self.mqtt_connected.set(1 if connected else 0)
        if connected:
            self.mqtt_connects.inc()

    def publish_failure(self, reason: str) -> None:
        if reason not in PUBLISH_FAILURE_REASONS:
            raise ValueError(f"unknown publish failure reason {reason!r}; allowed: {PUBLISH_FAILURE_REASONS}")
        self.publish_failures.labels(reason=reason).inc()

    def observe_loop_lag(self, seconds: float) -> None:
        self.event_loop_lag.observe(max(0.0, seconds))

    def render(self) -> bytes:
        """The text exposition of this registry, as a scrape would see it."""
        return generate_latest(self.registry)


async def monitor_loop_lag(metrics: DaemonMetrics, interval_s: float = 0.25) -> NoReturn:
    """Record how late the event loop wakes a timer every ``interval_s``. Lag means a callback blocked the
    loop (CPU work or blocking I/O on it); a shorter interval catches shorter stalls at a small CPU cost."""
    while True:
        start = time.monotonic()
        await asyncio.sleep(interval_s)
        metrics.observe_loop_lag(time.monotonic() - start - interval_s)


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running metrics endpoint; ``port`` is the bound port (useful with port 0)."""

    address: str
    port: int
    _server: WSGIServer
    _thread: Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


def start_http_server(port: int, addr: str = "127.0.0.1", *, registry: CollectorRegistry) -> MetricsServer:
    """Serve ``registry`` at ``http://addr:port/metrics`` from a daemon thread. ``addr`` defaults to
    loopback; pass the configured address to expose it to a scrape network. ``port=0`` picks a free port."""
    server, thread = _prometheus_http_server(port, addr=addr, registry=registry)
    return MetricsServer(address=addr, port=int(server.server_port), _server=server, _thread=thread)
