"""The FHIR sink: alerts as DetectedIssue and walking windows as Observation, validated against the FHIR R4B
models of ``fhir.resources`` (R4B = R4 for these resources) by a real HTTP server on 127.0.0.1, with the
outbox's guarantees: an outage delays, a lost answer does not duplicate, a refusal stops only this sink."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from gaitwatch.daemon.drainer import SinkDrainer
from gaitwatch.daemon.fhir_sink import (
    FhirConfig,
    FhirConfigError,
    FhirSink,
    conditional_create_query,
    detected_issue,
    gait_observation,
)
from gaitwatch.daemon.outbox import Outbox, SinkPolicy
from gaitwatch.daemon.payloads import (
    ClockMap,
    PublisherIdentity,
    alert_body,
    gait_payload,
    technical_alert_body,
)
from gaitwatch.daemon.settings import FhirSettings
from gaitwatch.gait.types import (
    ActivityState,
    Alert,
    AlertPhase,
    AlertType,
    Assessment,
    FloorReading,
    GaitLabel,
    GaitMetrics,
)

GUARD_S = 15.0  # upper bound on any single wait, so a failure fails instead of hanging
IDENTITY = PublisherIdentity(site="ward7", host="pc1", boot_id="b00t", software_version="0.1.0", ward="7")
CLOCK = ClockMap(1_800_000_000.0)
# R4 value sets with a required binding (fhir.resources checks structure, types and cardinality, not codes).
OBSERVATION_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error"}
SEVERITY = {"high", "moderate", "low"}


def config(base_url: str = "http://127.0.0.1:1/fhir", **changes: Any) -> FhirConfig:
    return FhirConfig(base_url, **changes)


def fall(i: int, phase: AlertPhase = AlertPhase.START) -> bytes:
    alert = Alert(
        type=AlertType.FALL,
        phase=phase,
        track_id=17,
        t_start=10.0,
        t_observed=12.5,
        confidence=0.93,
        priority="high",
        quality=0.8,
        evidence={"drop_bh": 0.71, "lying_s": 4.0},
    )
    return alert_body(
        alert,
        camera="bay1",
        zone="bed-3",
        identity=IDENTITY,
        clock=CLOCK,
        alert_id=f"pc1:b00t:{i}",
        incident_id="pc1:b00t:1",
    )


def camera_offline(i: int) -> bytes:
    return technical_alert_body(
        "camera_offline",
        AlertPhase.END,
        camera="bay2",
        identity=IDENTITY,
        clock=CLOCK,
        t_start=0.0,
        t_observed=30.0,
        alert_id=f"pc1:b00t:{i}",
        incident_id=f"pc1:b00t:{i}",
        evidence={"last_frame_age_s": 30.0},
    )


def walking_window(floor: FloorReading | None = None) -> bytes:
    metrics = GaitMetrics(
        track_id=17,
        t_start=100.0,
        t_end=110.0,
        valid=True,
        quality=0.9,
        state=ActivityState.WALKING,
        cadence_spm=104.5,
        features={
            "speed_from_steps_bh_s": 0.61,
            "step_length_ll": 0.42,
            "stride_time_cv": 0.031,
            "step_asymmetry": 0.05,
            "rhythm": 0.9,
        },
        floor=floor,
    )
    assessment = Assessment(17, GaitLabel.NORMAL, 0.1)
    return gait_payload(metrics, assessment, camera="bay1", identity=IDENTITY, clock=CLOCK)


# -- the resources -------------------------------------------------------------------------------------------


def test_a_clinical_alert_is_a_valid_detected_issue_about_a_track_not_a_person() -> None:
    resource = detected_issue(json.loads(fall(5)), config())
    issue = DetectedIssue.model_validate(resource)  # raises on any structural error
    assert resource["status"] in OBSERVATION_STATUS and resource["status"] == "preliminary"
    assert resource["severity"] in SEVERITY and resource["severity"] == "high"
    assert resource["identifier"] == [
        {"system": "urn:gaitwatch:alert-id", "value": "pc1:b00t:5"},
        {"system": "urn:gaitwatch:incident-id", "value": "pc1:b00t:1"},
    ]
    assert resource["code"]["coding"][0] == {"system": "urn:gaitwatch:alert-type", "code": "fall", "display": "fall"}
    assert issue.patient is not None and issue.patient.identifier is not None
    assert issue.patient.identifier.value == "bay1:b00t:17" and issue.patient.reference is None
    assert resource["author"]["identifier"]["value"] == "ward7/pc1/bay1"
    assert resource["identifiedPeriod"] == {"start": CLOCK.utc(10.0), "end": CLOCK.utc(12.5)}
    assert "drop_bh=0.71" in resource["detail"] and "bed-3" in resource["detail"]
    assert "ack_token" not in json.dumps(resource), "the MQTT ack secret stays out of the EHR"


def test_a_technical_alert_has_no_patient_and_its_end_is_final() -> None:
    resource = detected_issue(json.loads(camera_offline(9)), config(namespace="https://ehr.example/gaitwatch"))
    DetectedIssue.model_validate(resource)
    assert "patient" not in resource and resource["status"] == "final"
    assert resource["identifier"][0]["system"] == "https://ehr.example/gaitwatch/alert-id"
    assert resource["code"]["coding"][0]["code"] == "camera_offline"


def test_a_walking_window_is_a_valid_observation_with_one_component_per_measured_metric() -> None:
    resource = gait_observation(json.loads(walking_window()), config())
    assert resource is not None
    observation = Observation.model_validate(resource)
    assert resource["status"] in OBSERVATION_STATUS
    assert resource["category"][0]["coding"][0]["code"] == "activity"
    assert observation.subject is not None and observation.subject.identifier is not None
    assert observation.subject.identifier.value == "bay1:b00t:17"
    assert resource["device"]["identifier"]["value"] == "ward7/pc1/bay1"
    assert resource["effectivePeriod"] == {"start": CLOCK.utc(100.0), "end": CLOCK.utc(110.0)}
    values = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in resource["component"]}
    # Measured metrics only: step-time variability was not measured in this window, so it is left out.
    assert set(values) == {"cadence", "walking-speed", "step-length", "stride-time-variability", "step-asymmetry"}
    assert values["cadence"] == {
        "value": 104.5,
        "unit": "steps/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert values["walking-speed"]["code"] == "{body_height}/s", "relative speed: never presented as m/s"


def test_a_calibrated_camera_adds_metre_components_under_codes_of_their_own() -> None:
    floor = FloorReading(floor_xy=(1.0, 2.0), speed_mps=0.83, step_length_m=0.52, stride_length_m=1.04)
    resource = gait_observation(json.loads(walking_window(floor)), config())
    assert resource is not None
    Observation.model_validate(resource)
    values = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in resource["component"]}
    assert values["walking-speed-m"] == {
        "value": 0.83,
        "unit": "m/s",
        "system": "http://unitsofmeasure.org",
        "code": "m/s",
    }
    assert values["step-length-m"]["value"] == 0.52 and values["step-length-m"]["code"] == "m"
    assert values["stride-length-m"]["value"] == 1.04
    assert values["walking-speed"]["code"] == "{body_height}/s", "the relative speed keeps its own code"
    assert "distance-walked-m" not in values, "not measured in this window: left out"


def test_the_validation_is_real_a_broken_resource_is_refused() -> None:
    """The checks above mean something: the same model refuses what a careless builder could produce."""
    issue = detected_issue(json.loads(fall(5)), config())
    with pytest.raises(ValidationError, match="identifiedPeriod"):
        DetectedIssue.model_validate({**issue, "identifiedPeriod": {"start": "12:00 yesterday"}})
    with pytest.raises(ValidationError, match="patient"):
        DetectedIssue.model_validate({**issue, "patient": "bay1:b00t:17"})
    observation = gait_observation(json.loads(walking_window()), config())
    assert observation is not None
    with pytest.raises(ValidationError, match=r"component\.0\.code"):
        Observation.model_validate({**observation, "component": [{"valueQuantity": {"value": 1.0}}]})
    with pytest.raises(ValidationError, match="status"):
        Observation.model_validate({k: v for k, v in observation.items() if k != "status"})


def test_windows_without_gait_are_not_observations() -> None:
    msg = json.loads(walking_window())
    assert gait_observation({**msg, "valid": False}, config()) is None
    assert gait_observation({**msg, "cadence_spm": None}, config()) is None
    assert gait_observation({"schema": "something/1"}, config()) is None


def test_conditional_create_query_names_system_and_value() -> None:
    query = conditional_create_query({"system": "urn:gaitwatch:alert-id", "value": "pc1:b00t:5"})
    assert query == "identifier=urn:gaitwatch:alert-id|pc1:b00t:5"
    odd = conditional_create_query({"system": "urn:x", "value": "a b|c&d"})
    assert unquote(odd.split("|", 1)[1]) == "a b|c&d" and "&" not in odd and " " not in odd


def test_settings_and_config_errors_name_the_key_never_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    cfg = FhirConfig.from_settings(FhirSettings(enabled=True, base_url="https://fhir.example/r4", token_file=token))
    assert cfg.token == "s3cr3t-token" and "s3cr3t" not in repr(cfg)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "fhir-token").write_text("from-credentials")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = FhirSettings(enabled=True, base_url="http://127.0.0.1/fhir", token_file=Path("fhir-token"))
    assert FhirConfig.from_settings(settings).token == "from-credentials"
    with pytest.raises(FhirConfigError, match=r"fhir.token_file: .*missing not found"):
        FhirConfig.from_settings(FhirSettings(enabled=True, base_url="http://x/fhir", token_file=Path("missing")))
    with pytest.raises(FhirConfigError, match=r"fhir\.base_url"):
        FhirConfig("ftp://x/fhir")
    with pytest.raises(FhirConfigError, match=r"fhir.ca_file"):
        FhirSink(FhirConfig("https://x/fhir", ca_file=tmp_path / "no-ca.pem"))
    with pytest.raises(ValidationError, match="base_url is required"):
        FhirSettings(enabled=True)


# -- a FHIR server on loopback ---------------------------------------------------------------------------------


class FhirServer:
    """A minimal FHIR endpoint: validates every resource with ``fhir.resources`` (422 + OperationOutcome when
    invalid), honours ``If-None-Exist`` (200 when the identifier is already stored, else 201). Scripted faults:
    ``lose_answers`` answers 503 AFTER storing (a lost answer), ``refuse`` answers 422 for these alert ids,
    ``status`` answers this status to everything (e.g. 401)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.stored: dict[str, list[dict[str, Any]]] = {"DetectedIssue": [], "Observation": []}
        self.requests: list[tuple[str, int]] = []
        self.lose_answers = 0
        self.refuse: set[str] = set()
        self.status: int | None = None
        self.invalid: list[str] = []

    def ids(self, kind: str = "DetectedIssue") -> list[str]:
        return [r["identifier"][0]["value"] for r in self.stored[kind]]

    async def handle(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        answer = await self._answer(request, kind)
        self.requests.append((kind, answer.status))
        return answer

    async def _answer(self, request: web.Request, kind: str) -> web.Response:
        if self.status is not None:
            return _outcome(self.status, "scripted")
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _outcome(401, "no or wrong bearer token")
        if request.content_type != "application/fhir+json":
            return _outcome(415, f"content type {request.content_type}")
        resource = await request.json()
        if kind not in self.stored or resource.get("resourceType") != kind:
            return _outcome(404, f"unknown resource type {kind}")
        try:
            if kind == "DetectedIssue":
                DetectedIssue.model_validate(resource)
            else:
                Observation.model_validate(resource)
        except ValidationError as exc:
            self.invalid.append(str(exc))
            return _outcome(422, str(exc))
        system, value = _if_none_exist(request.headers.get("If-None-Exist", ""))
        if value in self.refuse:
            return _outcome(422, f"business rule: {value} refused")
        matches = [r for r in self.stored[kind] if {"system": system, "value": value} in r["identifier"]]
        if matches:
            return web.Response(status=200)
        self.stored[kind].append(resource)
        if self.lose_answers:
            self.lose_answers -= 1
            return _outcome(503, "stored, but the answer is lost")
        return web.Response(status=201, headers={"Location": f"{kind}/{len(self.stored[kind])}/_history/1"})


def _if_none_exist(header: str) -> tuple[str, str]:
    name, _, token = header.partition("=")
    assert name == "identifier", f"every create is conditional on the identifier: {header!r}"
    system, _, value = token.partition("|")
    return unquote(system), unquote(value)


def _outcome(status: int, text: str) -> web.Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": text}],
    }
    return web.json_response(body, status=status, content_type="application/fhir+json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(server: FhirServer, port: int) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/fhir/{kind}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        await runner.cleanup()


async def until(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(GUARD_S):
            while not predicate():  # noqa: ASYNC110  (polls state owned by other tasks)
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def fhir_outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite", 1000, sinks=[SinkPolicy("mqtt"), SinkPolicy("fhir")])


def drainer(box: Outbox, sink: FhirSink) -> SinkDrainer:
    # Short backoff: the test waits for the outcome, not for the clock.
    return SinkDrainer(box, sink, idle_poll_s=0.05, retry_initial_s=0.02, retry_max_s=0.1)


# -- transport -----------------------------------------------------------------------------------------------


async def test_a_fhir_server_that_is_down_shows_as_that_sinks_backlog_while_mqtt_delivers(tmp_path: Path) -> None:
    """``gaitwatch_sink_pending{sink}``: hospital IT sees which receiver is behind, not just that one is."""
    from gaitwatch.daemon.metrics import DaemonMetrics

    box = fhir_outbox(tmp_path)
    metrics = DaemonMetrics(version="test", cameras=["bay1"])
    sink = FhirSink(config(f"http://127.0.0.1:{free_port()}/fhir"))  # nobody listens
    d = SinkDrainer(box, sink, idle_poll_s=0.05, retry_initial_s=0.02, retry_max_s=0.1, metrics=metrics)
    seqs = [box.add("gaitwatch/v1/ward7/pc1/alert/bay1", fall(i), f"pc1:b00t:{i}") for i in range(1, 4)]
    box.mark_published_many(seqs, sink="mqtt")
    assert await d.drain_once() == 0
    await sink.close()
    text = metrics.render().decode()
    assert 'gaitwatch_sink_pending{sink="fhir"} 3.0' in text
    assert 'gaitwatch_sink_pending{sink="mqtt"} 0.0' in text
    box.close()


async def test_server_down_keeps_alerts_and_delivers_them_once_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    box = fhir_outbox(tmp_path)
    sink = FhirSink(config(f"http://127.0.0.1:{port}/fhir"))
    d = drainer(box, sink)
    task = asyncio.create_task(d.run())
    try:
        for i in range(1, 6):
            box.add("gaitwatch/v1/ward7/pc1/alert/bay1", fall(i), f"pc1:b00t:{i}")
            d.notify()
        await until(lambda: d.last_error is not None, "a failed try")
        assert "POST" in (d.last_error or "") and box.pending_count(sink="fhir") == 5
        first = box.deliveries(1)[0]
        assert first.sink == "fhir" and first.attempts >= 1 and first.last_error is not None
        server = FhirServer()
        async with serving(server, port):
            await until(lambda: box.pending_count(sink="fhir") == 0, "every alert at the FHIR server")
        assert server.ids() == [f"pc1:b00t:{i}" for i in range(1, 6)], "in seq order, each once"
        assert server.invalid == []
        assert box.pending_count(sink="mqtt") == 5, "the other sink's state is its own"
        assert box.deliveries(1)[0].last_error is None
    finally:
        d.stop()
        await task
        await sink.close()
        box.close()


async def test_a_lost_answer_is_retried_without_creating_a_duplicate(tmp_path: Path) -> None:
    server = FhirServer()
    server.lose_answers = 2  # the first two creates are stored, but their 201 never arrives
    box = fhir_outbox(tmp_path)
    async with serving(server, free_port()) as url:
        sink = FhirSink(config(url))
        d = drainer(box, sink)
        for i in range(1, 4):
            box.add("t", fall(i), f"pc1:b00t:{i}")
        task = asyncio.create_task(d.run())
        await until(lambda: box.pending_count(sink="fhir") == 0, "every alert delivered")
        d.stop()
        await task
        await sink.close()
    assert server.ids() == ["pc1:b00t:1", "pc1:b00t:2", "pc1:b00t:3"], "no duplicate"
    statuses = [status for _, status in server.requests]
    assert statuses.count(503) == 2 and statuses.count(200) >= 1, statuses
    box.close()


async def test_a_refused_alert_is_logged_and_kept_for_the_other_sinks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = FhirServer()
    server.refuse = {"pc1:b00t:2"}
    box = fhir_outbox(tmp_path)
    async with serving(server, free_port()) as url:
        sink = FhirSink(config(url))
        for i in range(1, 4):
            box.add("t", fall(i), f"pc1:b00t:{i}")
        with caplog.at_level(logging.ERROR, logger="gaitwatch.daemon.drainer"):
            assert await drainer(box, sink).drain_once() == 2
        await sink.close()
    assert server.ids() == ["pc1:b00t:1", "pc1:b00t:3"], "the refusal did not hold back the next alert"
    refused = [r for r in caplog.records if getattr(r, "alert_id", None) == "pc1:b00t:2"]
    assert refused and refused[0].levelno == logging.ERROR
    assert "HTTP 422" in str(getattr(refused[0], "error", "")) and "refused" in str(getattr(refused[0], "error", ""))
    assert box.pending_count(sink="fhir") == 0
    assert [r.alert_id for r in box.pending(10, sink="mqtt")] == ["pc1:b00t:1", "pc1:b00t:2", "pc1:b00t:3"]
    fhir = next(s for s in box.deliveries(2) if s.sink == "fhir")
    assert fhir.rejected_wall is not None and "HTTP 422" in (fhir.last_error or "")
    box.close()


async def test_wrong_credentials_are_transient_and_named(tmp_path: Path) -> None:
    """401 is about the configuration, not the alert: the alert stays pending (until an admin fixes the
    token) and the error says where to look; the token itself is sent only in the header."""
    token = tmp_path / "token"
    token.write_text("right-token")
    server = FhirServer(token="right-token")
    box = fhir_outbox(tmp_path)
    async with serving(server, free_port()) as url:
        wrong = FhirSink(config(url, token="wrong-token"))
        d = drainer(box, wrong)
        box.add("t", fall(1), "pc1:b00t:1")
        assert await d.drain_once() == 0
        assert "HTTP 401" in (d.last_error or "") and "fhir.token_file" in (d.last_error or "")
        assert "wrong-token" not in (d.last_error or "")
        assert box.pending_count(sink="fhir") == 1
        await wrong.close()
        right = FhirSink(FhirConfig.from_settings(FhirSettings(enabled=True, base_url=url, token_file=token)))
        assert await drainer(box, right).drain_once() == 1
        await right.close()
    assert server.ids() == ["pc1:b00t:1"]
    box.close()


async def test_walking_windows_arrive_as_observations_best_effort(tmp_path: Path) -> None:
    server = FhirServer()
    async with serving(server, free_port()) as url:
        sink = FhirSink(config(url))
        sink.start()
        assert sink.offer_gait(walking_window())
        assert not sink.offer_gait(
            gait_payload(
                GaitMetrics(17, 0.0, 8.0, False, 0.1, ActivityState.UNKNOWN, None),
                None,
                camera="bay1",
                identity=IDENTITY,
                clock=CLOCK,
            )
        ), "an invalid window is not sent"
        assert sink.offer_gait(walking_window()), "the same window again: conditional create keeps one"
        await until(lambda: sink.gait_sent == 2, "both offers sent")
        await sink.close()
    assert len(server.stored["Observation"]) == 1 and server.invalid == []
    assert server.stored["Observation"][0]["subject"]["identifier"]["value"] == "bay1:b00t:17"


async def test_every_shipped_alert_type_passes_the_server_validation(tmp_path: Path) -> None:
    """Both kinds of alert the daemon stores, each phase, reach the validating server as 201s."""
    server = FhirServer()
    box = fhir_outbox(tmp_path)
    bodies = [fall(1), fall(2, AlertPhase.UPDATE), fall(3, AlertPhase.END), camera_offline(4)]
    async with serving(server, free_port()) as url:
        sink = FhirSink(config(url))
        for i, body in enumerate(bodies, start=1):
            box.add("t", body, f"pc1:b00t:{i}")
        box.add("t", b"not an alert", "foreign")
        assert await drainer(box, sink).drain_once() == 4
        await sink.close()
    assert server.invalid == [] and len(server.ids()) == 4
    assert [r["status"] for r in server.stored["DetectedIssue"]] == ["preliminary", "preliminary", "final", "final"]
    foreign = next(s for s in box.deliveries(5) if s.sink == "fhir")
    assert foreign.rejected_wall is not None, "a payload that is not an alert is refused, not retried forever"
    box.close()


# -- the daemon ----------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_daemon_delivers_every_alert_to_mqtt_and_fhir_through_a_fhir_outage(
    mosquitto: Any, tmp_path: Path
) -> None:
    """The real daemon with ``[fhir]`` enabled and the FHIR server down at first: MQTT integrators get every
    alert at once, the FHIR server every alert once it is up, each exactly once, and nothing stays pending."""
    from test_faults_harness import Integrator, base_config, check_alerts, daemon, write_config

    port = free_port()
    fhir = {
        "enabled": True,
        "base_url": f"http://127.0.0.1:{port}/fhir",
        "timeout_s": 2.0,
        "retry_initial_s": 0.1,
        "retry_max_s": 0.5,
    }
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, mosquitto.port, fhir=fhir))
    server = FhirServer()
    async with Integrator(mosquitto.port) as integrator, daemon(config, tmp_path) as d:
        await d.wait_ready()
        await d.alerts(30)
        await d.until(lambda: "done 30" in d.lines, "the burst")
        await integrator.until(lambda: integrator.alert_ids() >= set(d.stored), "all 30 alerts over MQTT")
        assert server.ids() == []
        async with serving(server, port):
            await until_fhir(lambda: set(server.ids()) >= set(d.stored), "all 30 alerts at the FHIR server")
            assert await d.stop() == 0
    check_alerts(integrator.alerts())
    assert len(server.ids()) == len(set(server.ids())) == 30, "each alert once"
    assert server.invalid == []
    with Outbox(tmp_path / "state-pc1" / "outbox.sqlite3", 1000, sinks=[SinkPolicy("mqtt"), SinkPolicy("fhir")]) as box:
        assert box.pending_count() == 0


async def until_fhir(predicate: Callable[[], bool], what: str) -> None:
    """As ``until``, with the daemon harness's longer guard (a subprocess backs off between retries)."""
    try:
        async with asyncio.timeout(45.0):
            while not predicate():  # noqa: ASYNC110  (polls state owned by a server task)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def test_a_redirect_is_not_taken_for_a_delivery(tmp_path: Path) -> None:
    """A proxy redirecting to a login page must not turn into "delivered" (a followed POST becomes a GET whose
    200 is the login page): the alert stays pending and the error points at the base URL."""
    server = FhirServer()
    server.status = 302
    box = fhir_outbox(tmp_path)
    async with serving(server, free_port()) as url:
        sink = FhirSink(config(url))
        d = drainer(box, sink)
        box.add("t", fall(1), "pc1:b00t:1")
        assert await d.drain_once() == 0
        await sink.close()
    assert "HTTP 302" in (d.last_error or "") and "fhir.base_url" in (d.last_error or "")
    assert box.pending_count(sink="fhir") == 1 and server.requests == [("DetectedIssue", 302)]
    box.close()


@pytest.mark.slow
async def test_an_unreadable_fhir_token_file_stops_start_up_with_exit_78(mosquitto: Any, tmp_path: Path) -> None:
    from test_faults_harness import base_config, daemon, write_config

    fhir = {"enabled": True, "base_url": "http://127.0.0.1:9/fhir", "token_file": str(tmp_path / "no-such-token")}
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, mosquitto.port, fhir=fhir))
    async with daemon(config, tmp_path) as d:
        assert await d.wait_exit() == 78
        assert "fhir.token_file" in d.log_text() and "no-such-token not found" in d.log_text()
        assert not any(line.startswith("ready") for line in d.lines)


@pytest.mark.parametrize(
    ("fhir", "named"),
    [
        ({"base_url": "http://127.0.0.1:9/fhir", "token_file": "{tmp}/no-such-token"}, "no-such-token not found"),
        ({"base_url": "https://127.0.0.1:9/fhir", "ca_file": "{tmp}/not-a-ca.pem"}, "cannot load CA certificates"),
    ],
)
def test_check_config_names_an_unusable_fhir_token_or_ca_before_start(
    tmp_path: Path, fhir: dict[str, str], named: str
) -> None:
    """ExecStartPre='s check-config says it (exit 78), not the daemon's start after it."""
    from test_faults_harness import base_config, write_config

    (tmp_path / "not-a-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    section = {"enabled": True, **{k: v.format(tmp=tmp_path) for k, v in fhir.items()}}
    config = write_config(tmp_path / "daemon.toml", base_config(tmp_path, 1883, fhir=section))
    done = subprocess.run(
        [sys.executable, "-m", "gaitwatch.tools.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    assert "fhir." in done.stderr and named in done.stderr
