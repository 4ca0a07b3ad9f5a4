"""Prometheus metrics: names, units, bounded labels, per-instance registry, loopback endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gaitwatch.daemon.metrics import DaemonMetrics, monitor_loop_lag, start_http_server

EXPECTED = {
    "gaitwatch_frames_decoded_total",
    "gaitwatch_frames_dropped_total",
    "gaitwatch_camera_up",
    "gaitwatch_camera_reconnects_total",
    "gaitwatch_stage_latency_seconds",
    "gaitwatch_tracks_active",
    "gaitwatch_pose_batch_size",
    "gaitwatch_alerts_total",
    "gaitwatch_outbox_pending",
    "gaitwatch_outbox_oldest_pending_age_seconds",
    "gaitwatch_outbox_full_total",
    "gaitwatch_outbox_published_total",
    "gaitwatch_outbox_republished_total",
    "gaitwatch_outbox_unacked",
    "gaitwatch_outbox_rows",
    "gaitwatch_outbox_cleaned_total",
    "gaitwatch_mqtt_acks_total",
    "gaitwatch_mqtt_connected",
    "gaitwatch_mqtt_connects_total",
    "gaitwatch_mqtt_publish_failures_total",
    "gaitwatch_event_loop_lag_seconds",
    "gaitwatch_build_info",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


def test_endpoint_serves_all_metrics_on_loopback() -> None:
    metrics = DaemonMetrics(version="1.2.3", cameras=["bay1", "bay2"])
    server = start_http_server(0, registry=metrics.registry)
    try:
        assert server.address == "127.0.0.1"
        metrics.frame_decoded("bay1", 5)
        metrics.frame_dropped("bay1")
        metrics.set_camera_up("bay1", True)
        metrics.camera_reconnect("bay2")
        metrics.observe_stage("pose", 0.012)
        metrics.set_tracks_active("bay1", 3)
        metrics.observe_pose_batch(3)
        metrics.alert_raised("abnormal_gait", "clinical")
        metrics.set_outbox(7, 42.5)
        metrics.outbox_overflow()
        metrics.outbox_row_published()
        metrics.set_outbox_rows(12, 4)
        metrics.ack_received("acked", 2)
        metrics.ack_received("invalid")
        metrics.set_mqtt_connected(True)
        metrics.publish_failure("timeout")
        metrics.observe_loop_lag(0.003)
        text = scrape(server.port)
    finally:
        server.close()
    families = {f.name for f in text_string_to_metric_families(text)}
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {n.removesuffix("_total") for n in EXPECTED} <= families | names
    histograms = {
        "gaitwatch_stage_latency_seconds",
        "gaitwatch_pose_batch_size",
        "gaitwatch_event_loop_lag_seconds",
    }
    assert EXPECTED - histograms <= names
    got = samples(text)
    assert got[("gaitwatch_frames_decoded_total", (("camera", "bay1"),))] == 5
    assert got[("gaitwatch_frames_decoded_total", (("camera", "bay2"),))] == 0  # exists from the start
    assert got[("gaitwatch_camera_up", (("camera", "bay1"),))] == 1
    assert got[("gaitwatch_camera_up", (("camera", "bay2"),))] == 0
    assert got[("gaitwatch_camera_reconnects_total", (("camera", "bay2"),))] == 1
    assert got[("gaitwatch_stage_latency_seconds_count", (("stage", "pose"),))] == 1
    assert got[("gaitwatch_stage_latency_seconds_bucket", (("le", "0.025"), ("stage", "pose")))] == 1
    assert got[("gaitwatch_tracks_active", (("camera", "bay1"),))] == 3
    assert got[("gaitwatch_alerts_total", (("category", "clinical"), ("type", "abnormal_gait")))] == 1
    assert got[("gaitwatch_outbox_pending", ())] == 7
    assert got[("gaitwatch_outbox_oldest_pending_age_seconds", ())] == 42.5
    assert got[("gaitwatch_outbox_full_total", ())] == 1
    assert got[("gaitwatch_outbox_rows", ())] == 12
    assert got[("gaitwatch_outbox_unacked", ())] == 4
    assert got[("gaitwatch_mqtt_acks_total", (("result", "acked"),))] == 2
    assert got[("gaitwatch_mqtt_acks_total", (("result", "ignored"),))] == 0
    assert got[("gaitwatch_mqtt_acks_total", (("result", "invalid"),))] == 1
    assert got[("gaitwatch_mqtt_connected", ())] == 1
    assert got[("gaitwatch_mqtt_connects_total", ())] == 1
    assert got[("gaitwatch_mqtt_publish_failures_total", (("reason", "timeout"),))] == 1
    assert got[("gaitwatch_mqtt_publish_failures_total", (("reason", "rejected"),))] == 0
    assert got[("gaitwatch_event_loop_lag_seconds_count", ())] == 1
    build = [k for k in got if k[0] == "gaitwatch_build_info"]
    assert len(build) == 1 and ("version", "1.2.3") in build[0][1]


def test_label_values_come_only_from_bounded_sets() -> None:
    metrics = DaemonMetrics(version="x", cameras=["bay1"])
    with pytest.raises(ValueError, match="camera"):
        metrics.frame_decoded("bay9")
    with pytest.raises(ValueError, match="stage"):
        metrics.observe_stage("track-17", 0.1)
    with pytest.raises(ValueError, match="reason"):
        metrics.publish_failure("because")
    with pytest.raises(ValueError, match="category"):
        metrics.alert_raised("fall", "personal")
    with pytest.raises(ValueError, match="ack result"):
        metrics.ack_received("alert-17")
    for i in range(100):  # a bug that builds types from data cannot create unbounded series
        metrics.alert_raised(f"type-{i}", "clinical")
    families = text_string_to_metric_families(metrics.render().decode())
    types = {s.labels["type"] for f in families for s in f.samples if s.name == "gaitwatch_alerts_total"}
    assert len(types) == 33 and "other" in types


def test_each_instance_has_its_own_registry_and_the_global_one_stays_clean() -> None:
    a = DaemonMetrics(version="1", cameras=["bay1"])
    b = DaemonMetrics(version="2", cameras=["bay1"])  # would raise "Duplicated timeseries" on a shared registry
    a.frame_decoded("bay1", 3)
    got_b = samples(b.render().decode())
    assert got_b[("gaitwatch_frames_decoded_total", (("camera", "bay1"),))] == 0
    assert not any(name.startswith("gaitwatch_") for name in REGISTRY._names_to_collectors)


def test_no_metric_has_a_per_person_label() -> None:
    metrics = DaemonMetrics(version="1", cameras=["bay1"])
    labels = {
        label
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        for label in s.labels
    }
    assert labels <= {"camera", "stage", "category", "type", "reason", "result", "le", "version", "python"}


async def test_loop_lag_monitor_records_a_blocked_loop() -> None:
    metrics = DaemonMetrics(version="1", cameras=[])
    task = asyncio.create_task(monitor_loop_lag(metrics, interval_s=0.01))
    await asyncio.sleep(0.02)
    time.sleep(0.06)  # noqa: ASYNC251  (block the loop on purpose, longer than the 0.05 s bucket)
    await asyncio.sleep(0.03)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    got = samples(metrics.render().decode())
    assert got[("gaitwatch_event_loop_lag_seconds_count", ())] >= 2
    # At least one observation fell above 50 ms: the blocking sleep cannot be shorter than asked.
    assert (
        got[("gaitwatch_event_loop_lag_seconds_count", ())]
        > got[("gaitwatch_event_loop_lag_seconds_bucket", (("le", "0.02"),))]
    )
