"""The daemon's health, without a broker or a running service: the STATUS line, the outbox backlog it shows,
and one health pass over cameras whose reader threads are stand-ins (retained camera status published once
per change, the camera_offline incident started and ended, STATUS following)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, cast

from gaitwatch.daemon.alert_intake import StoreResult
from gaitwatch.daemon.alerting import Alerting
from gaitwatch.daemon.camera_health import CameraState
from gaitwatch.daemon.camera_runner import CameraRunner
from gaitwatch.daemon.counters import ServiceCounters
from gaitwatch.daemon.delivery import Delivery
from gaitwatch.daemon.health import Health, ServiceMetrics, status_line
from gaitwatch.daemon.incidents import IncidentRegistry
from gaitwatch.daemon.payloads import AlertIds, ClockMap, PublisherIdentity, Topics
from gaitwatch.daemon.pipeline import CameraPipeline
from gaitwatch.daemon.sdnotify import SystemdNotifier
from gaitwatch.daemon.settings import parse_settings
from gaitwatch.daemon.sources import CameraStats
from gaitwatch.daemon.workers import WatchedWorkers
from gaitwatch.tracking.types import Frame

IDENTITY = PublisherIdentity(site="ward", host="pc1", boot_id="b00t", software_version="test")
BASE = "gaitwatch/v1/ward/pc1"


class Link:
    """The broker connection as STATUS and delivery see it; records what is published."""

    def __init__(self, connected: bool = True, last_error: str | None = None) -> None:
        self.connected = connected
        self.last_error = last_error
        self.published: list[tuple[str, dict[str, Any], int, bool]] = []

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        return self.connected

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, json.loads(payload), qos, retain))


class Storage:
    def __init__(self, available: bool = True, held: int = 0, last_error: str | None = None) -> None:
        self.available, self.held, self.last_error = available, held, last_error
        self.losing = False


class Failing:
    def __init__(self, last_error: str | None) -> None:
        self.last_error = last_error


def test_status_line_names_cameras_broker_and_outbox() -> None:
    cameras = [("bay1", CameraState.ONLINE), ("door", CameraState.OFFLINE), ("hall", CameraState.DEGRADED)]
    assert status_line(cameras, broker=Link(), alerts_failing=None, storage=Storage(), outbox_pending=3) == (
        "cameras 2/3 online (offline: door) (DEGRADED, too slow to analyse gait: hall); mqtt connected; "
        "outbox pending 3"
    )
    assert status_line(
        [("bay1", None), ("door", CameraState.FINISHED)],
        broker=Link(connected=False, last_error="connection refused: not authorised"),
        alerts_failing=None,
        storage=Storage(available=False, held=12, last_error="disk I/O error"),
        outbox_pending=0,
    ) == (
        "cameras 0/2 online; mqtt down: connection refused: not authorised; "
        "OUTBOX UNAVAILABLE (disk I/O error): 12 alerts held in memory; outbox pending 0"
    )
    assert status_line([], broker=Link(connected=False), alerts_failing=None, storage=None, outbox_pending=0) == (
        "cameras 0/0 online; mqtt down: connecting; outbox pending 0"
    )
    assert status_line(
        [("bay1", CameraState.ONLINE)],
        broker=Link(),
        alerts_failing="not authorized",
        storage=Storage(available=False),
        outbox_pending=7,
    ) == (
        "cameras 1/1 online; mqtt connected; alerts failing: not authorized; "
        "OUTBOX UNAVAILABLE (disk error): 0 alerts held in memory; outbox pending 7"
    )
    assert status_line([], broker=None, alerts_failing=None, storage=None, outbox_pending=0) == (
        "cameras 0/0 online; outbox pending 0"
    ), "MQTT off: no broker part"


def test_the_outbox_backlog_shown_is_the_one_last_reported_to_the_metrics() -> None:
    metrics = ServiceMetrics(version="test", cameras=["bay1"])
    assert metrics.outbox_pending_count == 0
    metrics.set_outbox(42, 3.5)
    assert metrics.outbox_pending_count == 42
    assert "gaitwatch_outbox_pending 42.0" in metrics.render().decode()


class StandInSource:
    """A camera reader thread's outward state, set by the test."""

    def __init__(self, camera: str) -> None:
        self._camera = camera
        self._stats = CameraStats(connected=True, fps=7.0)
        self.started = False

    @property
    def camera_id(self) -> str:
        return self._camera

    @property
    def stats(self) -> CameraStats:
        return self._stats

    @property
    def finished(self) -> bool:
        return False

    def start(self) -> None:
        self.started = True

    def get(self, timeout_s: float) -> Frame | None:
        return None

    def stop(self) -> None:
        pass


class Notes(SystemdNotifier):
    def __init__(self) -> None:
        super().__init__({})
        self.statuses: list[str] = []

    def status(self, text: str) -> bool:
        self.statuses.append(text)
        return True


async def test_a_health_pass_publishes_camera_status_and_raises_the_offline_incident(tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "service": {"site": "ward", "host": "pc1", "state_dir": str(tmp_path / "state")},
            "cameras": [{"id": "door", "source": "rtsp://127.0.0.1:9/door", "zone": "entrance"}],
        }
    )
    metrics = ServiceMetrics(version="test", cameras=["door"])
    counters = ServiceCounters()
    clock = ClockMap.capture()
    topics = Topics(site="ward", host="pc1")
    changed = asyncio.Event()
    incidents = IncidentRegistry("pc1", "b00t", clock, on_change=changed.set)
    delivery = Delivery(
        topics=topics,
        clock=clock,
        incidents=incidents,
        metrics=metrics,
        counters=counters,
        ack_topic=None,
        active_changed=changed,
    )
    stored: list[dict[str, Any]] = []

    async def store(topic: str, body: bytes, alert_id: str, over_limit: bool = False) -> StoreResult:
        stored.append(json.loads(body))
        return StoreResult.STORED

    alerting = Alerting(
        alert_ids=AlertIds(host="pc1", boot_id="b00t"),
        incidents=incidents,
        topics=topics,
        clock=clock,
        metrics=metrics,
        zone_of=lambda camera: "entrance",
        store=store,
        outbox_max_rows=100,
    )
    alerting.attach(IDENTITY)
    link, notes = Link(), Notes()
    source = StandInSource("door")
    camera = CameraRunner(
        settings.cameras[0],
        source,
        cast(CameraPipeline, object()),  # never asked for a frame here
        metrics=metrics,
        counters=counters,
        workers=WatchedWorkers(1),
    )
    health = Health(
        topics=topics, metrics=metrics, notifier=notes, delivery=delivery, alerting=alerting, outbox_memory_rows=10
    )
    storage = Storage()
    health.attach([camera], IDENTITY, storage=storage, broker=link, drainer=Failing(None))
    delivery.attach(cast(Any, None), cast(Any, None), IDENTITY, transport=link, drainer=None)

    # A frame a moment ago (the clock may be coarse: "ago" is at most now).
    source.stats.last_grab_monotonic = time.monotonic()
    await health.publish_camera_statuses()
    health.update_status_line()
    assert [(t, p["state"], qos, retain) for t, p, qos, retain in link.published] == [
        (f"{BASE}/camera/door/status", "online", 1, True)
    ]
    assert link.published[0][1]["zone"] == "entrance"
    assert stored == [] and notes.statuses == ["cameras 1/1 online; mqtt connected; outbox pending 0"]

    # Silent for far longer than stale_after_s (20 s by default).
    source.stats.last_grab_monotonic = time.monotonic() - 1000.0
    for _ in range(2):
        await health.publish_camera_statuses()
        health.update_status_line()
    assert [p["state"] for _, p, _, _ in link.published] == ["online", "offline"], "published once per change"
    assert [(a["type"], a["phase"], a["camera"]) for a in stored] == [("camera_offline", "start", "door")]
    assert stored[0]["evidence"] == {"stale_after_s": 20.0}
    assert [i.type for i in incidents.active()] == ["camera_offline"]
    assert notes.statuses[-1] == "cameras 0/1 online (offline: door); mqtt connected; outbox pending 0"
    assert len(notes.statuses) == 2, "STATUS is sent only when it changes"

    # While disconnected nothing is published; after a reconnect everything is published again.
    link.connected = False
    source.stats.last_grab_monotonic = time.monotonic()
    await health.publish_camera_statuses()
    assert len(link.published) == 2
    assert [(a["type"], a["phase"]) for a in stored] == [("camera_offline", "start"), ("camera_offline", "end")]
    assert len(incidents) == 0
    link.connected = True
    health.republish_camera_statuses()
    await health.publish_camera_statuses()
    assert [p["state"] for _, p, _, _ in link.published] == ["online", "offline", "online"]
    metrics.set_outbox(5, 1.0)
    health.update_status_line()
    assert notes.statuses[-1] == "cameras 1/1 online; mqtt connected; outbox pending 5"

    # The disk refuses commits: an outbox_unavailable incident and STATUS at once; then it is back.
    storage.available, storage.held, storage.last_error = False, 3, "database is locked"
    await health.outbox_availability(False)
    assert (stored[-1]["type"], stored[-1]["phase"], stored[-1]["camera"]) == ("outbox_unavailable", "start", None)
    assert stored[-1]["evidence"] == {"memory_rows": 10.0}
    assert "OUTBOX UNAVAILABLE (database is locked): 3 alerts held in memory" in notes.statuses[-1]
    storage.available, storage.held, storage.last_error = True, 0, None
    await health.outbox_availability(True)
    assert (stored[-1]["type"], stored[-1]["phase"]) == ("outbox_unavailable", "end")
    assert notes.statuses[-1] == "cameras 1/1 online; mqtt connected; outbox pending 5"
