"""Camera faults: a camera served as MJPEG over HTTP on 127.0.0.1 (generated frames) that stalls, truncates its
stream and sends corrupt bytes. The real daemon (``gaitwatch run``) must reconnect, report the camera offline
(retained status and a camera_offline technical alert) and online again, stay up, and keep its event loop
responsive: event-loop lag p99 under 250 ms (a read on the loop would stall it for a timeout), read from the
daemon's own metric.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import pytest
from test_faults_harness import (
    Integrator,
    base_config,
    check_alerts,
    daemon,
    histogram_quantile,
    scrape,
    until_metric,
    write_config,
)
from videogen import numbered_frame

pytestmark = pytest.mark.slow

BOUNDARY = b"frame"
FRAME_GAP_S = 0.05  # the camera sends 20 frames per second


class MjpegCamera:
    """A tiny MJPEG-over-HTTP camera (``multipart/x-mixed-replace``, as cheap IP cameras serve) whose behaviour
    the test switches: ``ok`` streams numbered frames; ``stall`` keeps connections open and sends nothing;
    ``truncate`` sends three frames and half of a fourth, then closes; ``corrupt`` sends two good frames, then
    JPEG parts full of random bytes."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.connections = 0
        self._closing = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                with contextlib.suppress(OSError):
                    camera.stream(self.wfile)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/stream.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def stream(self, out: Any) -> None:
        sent = 0
        mode, in_mode = self.mode, 0  # frames sent on this connection since the mode last changed
        while not self._closing.is_set():
            if self.mode != mode:
                mode, in_mode = self.mode, 0
            if mode == "stall":
                time.sleep(FRAME_GAP_S)
                continue
            ok, jpeg = cv2.imencode(".jpg", numbered_frame(sent))
            assert ok
            data = jpeg.tobytes()
            if mode == "corrupt" and in_mode >= 2:
                data = os.urandom(len(data))
            if mode == "truncate" and in_mode == 3:
                out.write(self._part_header(len(data)) + data[: len(data) // 2])
                out.flush()
                return
            out.write(self._part_header(len(data)) + data + b"\r\n")
            out.flush()
            sent += 1
            in_mode += 1
            time.sleep(FRAME_GAP_S)

    @staticmethod
    def _part_header(length: int) -> bytes:
        return b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % length

    def __enter__(self) -> MjpegCamera:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def camera() -> Iterator[MjpegCamera]:
    with MjpegCamera() as cam:
        yield cam


async def test_stalled_truncated_and_corrupt_camera_is_survived_and_reported(
    mosquitto: Any, camera: MjpegCamera, tmp_path: Path
) -> None:
    cam = {
        "id": "bay1",
        "source": camera.url,
        "stale_after_s": 1.0,
        "open_timeout_s": 1.0,
        "read_timeout_s": 0.5,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 0.4,
    }
    path = write_config(tmp_path / "daemon.toml", base_config(tmp_path, mosquitto.port, camera=cam))
    filters = ["gaitwatch/v1/+/+/camera/+/status", "gaitwatch/v1/+/+/alert/#"]
    async with Integrator(mosquitto.port, filters) as integrator, daemon(path, tmp_path, cli=True) as d:
        await d.wait_ready()
        d.metrics_port = _metrics_port(path)

        def states() -> list[str]:
            return [s["state"] for s in integrator.on("/camera/bay1/status")]

        def offline_alerts() -> list[dict[str, Any]]:
            return [a for a in integrator.alerts() if a["type"] == "camera_offline"]

        await integrator.until(lambda: states()[-1:] == ["online"], "the camera online")

        camera.mode = "stall"  # no frames on open connections: read timeouts, reconnects, then offline
        await integrator.until(lambda: states()[-1:] == ["offline"], "the camera offline")
        await integrator.until(lambda: len(offline_alerts()) == 1, "a camera_offline alert")
        reconnects = 'gaitwatch_camera_reconnects_total{camera="bay1"}'
        await until_metric(d, reconnects, lambda v: v >= 1, "a reconnect after the stall")

        camera.mode = "ok"
        await integrator.until(lambda: states()[-1:] == ["online"], "the camera online again")
        await integrator.until(lambda: len(offline_alerts()) == 2, "the end of the camera_offline alert")

        for mode in ("truncate", "corrupt"):
            target = (await scrape(d.metrics_port))[reconnects] + 3
            camera.mode = mode
            await until_metric(d, reconnects, lambda v, t=target: v >= t, f"reconnects of a {mode} stream")  # type: ignore[misc]

        camera.mode = "ok"
        decoded = 'gaitwatch_frames_decoded_total{camera="bay1"}'
        now = (await scrape(d.metrics_port))[decoded]
        await until_metric(d, decoded, lambda v: v >= now + 40, "frames flowing again")
        lag = "gaitwatch_event_loop_lag_seconds_count"
        await until_metric(d, lag, lambda v: v >= 40, "40 event-loop lag samples (10 s)")
        metrics = await scrape(d.metrics_port)
        assert d.proc is not None and d.proc.returncode is None, "the daemon stayed up"
        assert await d.stop() == 0
    start, end = offline_alerts()[:2]
    assert (start["phase"], end["phase"]) == ("start", "end") and start["incident_id"] == end["incident_id"]
    check_alerts(offline_alerts())
    assert metrics['gaitwatch_camera_up{camera="bay1"}'] == 1
    lag_p99 = histogram_quantile(metrics, "gaitwatch_event_loop_lag_seconds", 0.99)
    samples = metrics["gaitwatch_event_loop_lag_seconds_count"]
    print(
        f"camera faults: {camera.connections} connections, {metrics[reconnects]:.0f} reconnects, "
        f"{metrics[decoded]:.0f} frames, event-loop lag p99 <= {lag_p99 * 1000:.0f} ms over {samples:.0f} samples"
    )
    assert lag_p99 <= 0.25, f"event-loop lag p99 {lag_p99 * 1000:.0f} ms: something blocks the loop"


def _metrics_port(config: Path) -> int:
    from gaitwatch.daemon.settings import load_settings

    return load_settings(config).metrics.port
