"""MQTT contract v1: topics, and payloads validated against the committed JSON Schemas."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gaitwatch.daemon.payloads import (
    ACTIVE_ALERTS_DELIVERY,
    ALERT_DELIVERY,
    ALERT_TYPES,
    CAMERA_STATUS_DELIVERY,
    GAIT_DELIVERY,
    MAX_ACK_IDS,
    STATUS_DELIVERY,
    AckError,
    AlertIds,
    Category,
    ClockMap,
    PublisherIdentity,
    Topics,
    ack_payload,
    active_alert_entry,
    active_alerts_payload,
    alert_body,
    camera_status_payload,
    gait_payload,
    host_status_payload,
    parse_ack,
    stamp_alert,
    technical_alert_body,
    utc_iso,
)
from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.gait.types import ActivityState, Alert, AlertPhase, AlertType, Assessment, GaitLabel, GaitMetrics

CONFIG = Path(__file__).resolve().parents[1] / "config"
ALERT_SCHEMA = json.loads((CONFIG / "alert.schema.json").read_text())
GAIT_SCHEMA = json.loads((CONFIG / "gait.schema.json").read_text())
STATUS_SCHEMA = json.loads((CONFIG / "status.schema.json").read_text())

IDENTITY = PublisherIdentity(
    site="stmarys",
    host="ward3-pc1",
    boot_id="0badcafe",
    software_version="0.1.0",
    ward="Ward 3",
    model_versions={"pose": "blazepose-full-2023", "classifier": "svm-1"},
)
# Monotonic 1000.0 s is wall 2023-11-14T22:13:20Z + 1000 s.
CLOCK = ClockMap(offset_s=1_700_000_000.0)


def validate(payload: bytes, schema: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(payload)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(obj)
    assert isinstance(obj, dict)
    return obj


def clinical_alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "type": "abnormal_gait",
        "phase": AlertPhase.START,
        "track_id": 17,
        "t_start": 1000.0,
        "t_observed": 1008.25,
        "confidence": 0.87,
        "priority": "high",
        "quality": 0.9,
        "evidence": {"cadence_spm": 71.5, "p_abnormal": 0.87},
        "pattern": "shuffling",
    }
    fields.update(changes)
    return Alert(**fields)


def test_topics_follow_the_v1_layout() -> None:
    topics = Topics(site="stmarys", host="ward3-pc1")
    assert topics.status == "gaitwatch/v1/stmarys/ward3-pc1/status"
    assert topics.camera_status("bay1") == "gaitwatch/v1/stmarys/ward3-pc1/camera/bay1/status"
    assert topics.gait("bay1") == "gaitwatch/v1/stmarys/ward3-pc1/gait/bay1"
    assert topics.alert("bay1") == "gaitwatch/v1/stmarys/ward3-pc1/alert/bay1"
    assert topics.alert(None) == "gaitwatch/v1/stmarys/ward3-pc1/alert"
    assert Topics("s", "h", root="acme/gw").status == "acme/gw/s/h/status"


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "#", "ward 3", "bay\0"])
def test_topic_levels_reject_separators_and_wildcards(bad: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        Topics(site=bad, host="h")
    with pytest.raises(ValueError, match="topic level"):
        Topics(site="s", host="h").alert(bad)


def test_delivery_policy() -> None:
    assert (STATUS_DELIVERY.qos, STATUS_DELIVERY.retain) == (1, True)
    assert (CAMERA_STATUS_DELIVERY.qos, CAMERA_STATUS_DELIVERY.retain) == (1, True)
    assert (GAIT_DELIVERY.qos, GAIT_DELIVERY.retain) == (0, False)
    assert (ALERT_DELIVERY.qos, ALERT_DELIVERY.retain) == (1, False)  # an alert is never retained


def test_clock_map_is_explicit_and_deterministic() -> None:
    assert utc_iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso(1.2345) == "1970-01-01T00:00:01.234Z"
    clock = ClockMap(offset_s=100.0)
    assert clock.wall(5.5) == 105.5
    assert clock.utc(5.5) == "1970-01-01T00:01:45.500Z"
    captured = ClockMap.capture(wall=lambda: 1000.0, monotonic=lambda: 40.0)
    assert captured.offset_s == 960.0


def test_alert_ids_are_per_instance_counters() -> None:
    a, b = AlertIds("h", "boot1"), AlertIds("h", "boot2")
    assert [a.next(), a.next(), b.next()] == ["h:boot1:1", "h:boot1:2", "h:boot2:1"]


def test_clinical_alert_validates_after_stamping() -> None:
    body = alert_body(
        clinical_alert(),
        camera="bay1",
        zone="bay 1",
        identity=IDENTITY,
        clock=CLOCK,
        alert_id="ward3-pc1:0badcafe:5",
        incident_id="ward3-pc1:0badcafe:5",
    )
    # The body alone is not a message: seq/emitted_at/delayed belong to a transmission.
    with pytest.raises(jsonschema.ValidationError):
        validate(body, ALERT_SCHEMA)
    msg = validate(stamp_alert(body, seq=42, emitted_wall_s=1_700_001_010.0, delayed=False), ALERT_SCHEMA)
    assert msg["schema"] == "gaitwatch.alert/1"
    assert msg["seq"] == 42 and msg["delayed"] is False
    assert msg["phase"] == "start" and msg["category"] == "clinical" and msg["type"] == "abnormal_gait"
    assert msg["pattern"] == "shuffling"
    assert msg["subject"] == "bay1:0badcafe:17"
    assert msg["observed_start"] == "2023-11-14T22:30:00.000Z"
    assert msg["observed_end"] == "2023-11-14T22:30:08.250Z"
    assert msg["emitted_at"] == "2023-11-14T22:30:10.000Z"
    assert msg["site"] == "stmarys" and msg["ward"] == "Ward 3" and msg["host"] == "ward3-pc1"
    assert msg["camera"] == "bay1" and msg["zone"] == "bay 1"
    assert msg["confidence"] == 0.87 and msg["quality"] == 0.9
    assert msg["evidence"] == {"cadence_spm": 71.5, "p_abnormal": 0.87}
    assert msg["software_version"] == "0.1.0"
    assert msg["model_versions"] == {"classifier": "svm-1", "pose": "blazepose-full-2023"}


def test_restamping_keeps_identity_and_marks_delay() -> None:
    body = alert_body(
        clinical_alert(phase=AlertPhase.END),
        camera="bay1",
        zone="",
        identity=IDENTITY,
        clock=CLOCK,
        alert_id="x:1",
        incident_id="x:0",
    )
    first = json.loads(stamp_alert(body, seq=7, emitted_wall_s=1_700_001_010.0, delayed=False))
    late = validate(stamp_alert(body, seq=7, emitted_wall_s=1_700_009_999.0, delayed=True), ALERT_SCHEMA)
    assert late["alert_id"] == first["alert_id"] == "x:1" and late["incident_id"] == "x:0"
    assert late["delayed"] is True and late["emitted_at"] != first["emitted_at"]
    assert {k: v for k, v in late.items() if k not in ("emitted_at", "delayed")} == {
        k: v for k, v in first.items() if k not in ("emitted_at", "delayed")
    }


def test_stamp_leaves_other_payloads_alone() -> None:
    for payload in (b"not json", b"[1, 2]", b'{"schema": "something/else"}'):
        assert stamp_alert(payload, seq=1, emitted_wall_s=0.0, delayed=True) == payload


@pytest.mark.parametrize("camera", ["bay1", None])
def test_technical_alert_validates(camera: str | None) -> None:
    body = technical_alert_body(
        "camera_offline" if camera else "outbox_full",
        AlertPhase.START,
        camera=camera,
        identity=IDENTITY,
        clock=CLOCK,
        t_start=1000.0,
        t_observed=1020.0,
        alert_id="h:b:9",
        incident_id="h:b:9",
        evidence={"last_frame_age_s": 20.0},
    )
    msg = validate(stamp_alert(body, seq=3, emitted_wall_s=1_700_001_020.0, delayed=False), ALERT_SCHEMA)
    assert msg["category"] == "technical" and msg["subject"] is None and msg["camera"] == camera
    assert msg["confidence"] == 1.0 and msg["pattern"] == ""


def test_schema_rejects_a_name_as_subject_and_a_clinical_alert_without_subject() -> None:
    body = alert_body(
        clinical_alert(),
        camera="bay1",
        zone="",
        identity=IDENTITY,
        clock=CLOCK,
        alert_id="a",
        incident_id="a",
    )
    msg = json.loads(stamp_alert(body, seq=1, emitted_wall_s=1_700_001_010.0, delayed=False))
    validator = jsonschema.Draft202012Validator(ALERT_SCHEMA)
    assert validator.is_valid(msg)
    assert not validator.is_valid({**msg, "subject": "John Smith"})
    assert not validator.is_valid({**msg, "subject": None})
    assert not validator.is_valid({**msg, "emitted_at": "2023-11-14 22:30:10"})  # not UTC 'Z'
    assert not validator.is_valid({**msg, "extra_field": 1})


def test_non_finite_numbers_become_null_and_still_validate() -> None:
    alert = clinical_alert(confidence=math.nan, quality=math.inf, evidence={"a": math.nan, "b": 1.0})
    body = alert_body(alert, camera="bay1", zone="", identity=IDENTITY, clock=CLOCK, alert_id="a", incident_id="a")
    msg = validate(stamp_alert(body, seq=1, emitted_wall_s=1e9, delayed=False), ALERT_SCHEMA)
    assert msg["confidence"] is None and msg["quality"] is None
    assert msg["evidence"] == {"a": None, "b": 1.0}


@settings(max_examples=60, deadline=None)
@given(
    evidence=st.dictionaries(st.text(min_size=1, max_size=12), st.floats(allow_nan=True, allow_infinity=True)),
    confidence=st.floats(min_value=0.0, max_value=1.0),
    track_id=st.integers(min_value=0, max_value=2**40),
    t_start=st.floats(min_value=0.0, max_value=1e7),
)
def test_any_alert_builds_a_valid_message(
    evidence: dict[str, float], confidence: float, track_id: int, t_start: float
) -> None:
    alert = clinical_alert(
        evidence=evidence, confidence=confidence, track_id=track_id, t_start=t_start, t_observed=t_start + 8
    )
    body = alert_body(alert, camera="bay1", zone="", identity=IDENTITY, clock=CLOCK, alert_id="a", incident_id="a")
    validate(stamp_alert(body, seq=1, emitted_wall_s=1.8e9, delayed=False), ALERT_SCHEMA)


def test_gait_payload_validates_with_and_without_classification() -> None:
    metrics = GaitMetrics(
        track_id=17,
        t_start=1000.0,
        t_end=1008.0,
        valid=True,
        quality=0.8,
        state=ActivityState.WALKING,
        cadence_spm=104.123456789,
        features={"stride_time_cv": 0.031, "freeze_index": 0.4},
    )
    assessment = Assessment(track_id=17, label=GaitLabel.ABNORMAL, p_abnormal=0.91, pattern="slow")
    msg = validate(gait_payload(metrics, assessment, camera="bay1", identity=IDENTITY, clock=CLOCK), GAIT_SCHEMA)
    assert msg["subject"] == "bay1:0badcafe:17"
    assert msg["window_start"] == "2023-11-14T22:30:00.000Z" and msg["window_end"] == "2023-11-14T22:30:08.000Z"
    assert msg["valid"] is True and msg["state"] == "walking"
    assert msg["cadence_spm"] == pytest.approx(104.1235, abs=1e-3)
    assert msg["features"] == {"freeze_index": 0.4, "stride_time_cv": 0.031}
    assert msg["classification"] == {"label": "abnormal", "p_abnormal": 0.91, "pattern": "slow"}

    invalid = GaitMetrics(17, 1000.0, 1002.0, False, 0.1, ActivityState.UNKNOWN, None)
    msg = validate(gait_payload(invalid, None, camera="bay1", identity=IDENTITY, clock=CLOCK), GAIT_SCHEMA)
    assert msg["cadence_spm"] is None and msg["classification"] is None and msg["valid"] is False


def test_gait_payload_refuses_an_assessment_of_another_track() -> None:
    metrics = GaitMetrics(1, 0.0, 8.0, True, 1.0, ActivityState.WALKING, 100.0)
    with pytest.raises(ValueError, match="track"):
        gait_payload(metrics, Assessment(2, GaitLabel.NORMAL, 0.1), camera="bay1", identity=IDENTITY, clock=CLOCK)


def test_status_payloads() -> None:
    online = json.loads(host_status_payload("online", IDENTITY, 1_700_000_000.0))
    assert online == {
        "schema": "gaitwatch.status/1",
        "state": "online",
        "site": "stmarys",
        "host": "ward3-pc1",
        "boot_id": "0badcafe",
        "version": "0.1.0",
        "time": "2023-11-14T22:13:20.000Z",
    }
    cam = json.loads(camera_status_payload("offline", "bay1", IDENTITY, 1_700_000_000.0, 21.5, zone="bay 1"))
    assert cam["schema"] == "gaitwatch.camera-status/1" and cam["state"] == "offline"
    assert cam["camera"] == "bay1" and cam["last_frame_age_s"] == 21.5 and cam["zone"] == "bay 1"
    never = json.loads(camera_status_payload("offline", "bay1", IDENTITY, 0.0, None))
    assert never["last_frame_age_s"] is None


def test_status_payloads_validate_against_the_status_schema() -> None:
    validate(host_status_payload("online", IDENTITY, 1_700_000_000.0), STATUS_SCHEMA)
    validate(host_status_payload("offline", IDENTITY, 1_700_000_000.0), STATUS_SCHEMA)
    validate(camera_status_payload("online", "bay1", IDENTITY, 1_700_000_000.0, 0.04), STATUS_SCHEMA)
    validate(camera_status_payload("offline", "bay1", IDENTITY, 1_700_000_000.0, None), STATUS_SCHEMA)


def test_active_alerts_snapshot_lists_open_incidents_oldest_first() -> None:
    topics = Topics(site="stmarys", host="ward3-pc1")
    assert topics.active_alerts == "gaitwatch/v1/stmarys/ward3-pc1/active_alerts"
    assert topics.ack == "gaitwatch/v1/stmarys/ward3-pc1/ack"
    assert ACTIVE_ALERTS_DELIVERY.retain and ACTIVE_ALERTS_DELIVERY.qos == 1
    late = alert_body(
        clinical_alert(t_start=1010.0),
        camera="bay1",
        zone="bay 1",
        identity=IDENTITY,
        clock=CLOCK,
        alert_id="ward3-pc1:0badcafe:7",
        incident_id="ward3-pc1:0badcafei:3",
    )
    early = technical_alert_body(
        "camera_offline",
        AlertPhase.START,
        camera="bay2",
        identity=IDENTITY,
        clock=CLOCK,
        t_start=1000.0,
        t_observed=1001.0,
        alert_id="ward3-pc1:0badcafe:2",
        incident_id="ward3-pc1:0badcafei:1",
    )
    entries = [active_alert_entry(late), active_alert_entry(early)]
    snapshot = validate(active_alerts_payload(entries, IDENTITY, 1_700_000_100.0), STATUS_SCHEMA)
    assert [a["type"] for a in snapshot["alerts"]] == ["camera_offline", "abnormal_gait"]
    assert snapshot["alerts"][1]["subject"] == "bay1:0badcafe:17"
    empty = validate(active_alerts_payload([], IDENTITY, 1_700_000_100.0), STATUS_SCHEMA)
    assert empty["alerts"] == []
    with pytest.raises(ValueError, match="not a gaitwatch alert"):
        active_alert_entry(b'{"schema": "gaitwatch.gait/1"}')


def test_ack_forms_an_integrator_may_send() -> None:
    def pairs(payload: bytes) -> list[tuple[str, str]]:
        return [(c.alert_id, c.ack_token) for c in parse_ack(payload)]

    assert pairs(b'{"schema": "gaitwatch.ack/2", "alert_id": "h:b:1", "ack_token": "t1"}') == [("h:b:1", "t1")]
    many = b'{"schema": "gaitwatch.ack/2", "acks": [{"alert_id": "h:b:1", "ack_token": "t1"}, ' + (
        b'{"alert_id": "h:b:2", "ack_token": "t2"}, {"alert_id": "h:b:1", "ack_token": "t1"}], "by": "desk"}'
    )
    assert pairs(many) == [("h:b:1", "t1"), ("h:b:2", "t2")]
    alerts = [{"alert_id": "a", "ack_token": "ta", "type": "fall"}, {"alert_id": "b", "ack_token": "tb"}]
    assert pairs(ack_payload(*alerts)) == [("a", "ta"), ("b", "tb")]


def test_every_alert_body_carries_its_own_ack_token_and_the_snapshot_does_not() -> None:
    bodies = [
        technical_alert_body(
            "test",
            AlertPhase.START,
            camera=None,
            identity=IDENTITY,
            clock=ClockMap(0.0),
            t_start=1.0,
            t_observed=2.0,
            alert_id=f"h:b:{i}",
            incident_id="i",
        )
        for i in range(2)
    ]
    tokens = [json.loads(b)["ack_token"] for b in bodies]
    assert len(set(tokens)) == 2 and all(len(t) >= 22 for t in tokens), "128 random bits each"
    assert json.loads(stamp_alert(bodies[0], seq=1, emitted_wall_s=3.0, delayed=False))["ack_token"] == tokens[0]
    assert "ack_token" not in active_alert_entry(bodies[0])


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"h:b:1", "not JSON"),
        (b'["h:b:1"]', "JSON object"),
        (b'{"schema": "gaitwatch.alert/1", "alert_id": "h:b:1"}', "schema"),
        (b'{"alert_id": "h:b:1"}', "v1 acks"),
        (b'{"schema": "gaitwatch.ack/1", "alert_ids": ["h:b:1"]}', "v1 acks"),
        (b'{"schema": "gaitwatch.ack/2"}', "names no alert"),
        (b'{"schema": "gaitwatch.ack/2", "acks": "h:b:1"}', "list"),
        (b'{"schema": "gaitwatch.ack/2", "alert_id": "h:b:1"}', "ack_token"),
        (b'{"schema": "gaitwatch.ack/2", "alert_id": 17, "ack_token": "t"}', "non-empty"),
        (b'{"schema": "gaitwatch.ack/2", "acks": [{"alert_id": "", "ack_token": "t"}]}', "non-empty"),
        (b'{"schema": "gaitwatch.ack/2", "acks": [["h:b:1", "t"]]}', "non-empty"),
        (b'{"schema": "gaitwatch.ack/2", "alert_id": "h", "ack_token": "' + b"t" * 300 + b'"}', "at most 256"),
        (
            json.dumps(
                {
                    "schema": "gaitwatch.ack/2",
                    "acks": [{"alert_id": f"h:b:{i}", "ack_token": "t"} for i in range(MAX_ACK_IDS + 1)],
                }
            ).encode(),
            "at most",
        ),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b'{"a": ' * 9_000 + b"1" + b"}" * 9_000, "nested too deeply"),
        (b" " * (64 * 1024 + 1), "bytes; at most"),
        (b"[" * 100_000 + b"]" * 100_000, "bytes; at most"),
        (b'{"schema": "gaitwatch.ack/2", "acks": ["' + b"x" * (10 * 1024 * 1024) + b'"]}', "bytes; at most"),
        (b"\xff\xfe", "not JSON"),
        (b'{"schema": "gaitwatch.ack/2", "alert_id": "h:b:1", "ack_token": "\xff"}', "not JSON"),
        (b"null", "JSON object"),
        (b"17", "JSON object"),
        (b'{"schema": 2, "alert_id": "h:b:1", "ack_token": "t"}', "schema"),
        (b'{"schema": "gaitwatch.ack/2", "acks": [17, null]}', "non-empty"),
        (b'{"schema": "gaitwatch.ack/2", "acks": [{"alert_id": "h:b:1", "ack_token": ["t"]}]}', "non-empty"),
        (b'{"schema": "gaitwatch.ack/2", "acks": {"alert_id": "h:b:1", "ack_token": "t"}}', "list"),
    ],
)
def test_bad_acks_are_rejected_with_a_reason(payload: bytes, problem: str) -> None:
    with pytest.raises(AckError, match=problem):
        parse_ack(payload)


def test_the_schemas_list_exactly_the_values_named_in_the_code() -> None:
    """Alert types, phases, categories, activity states and gait labels are named once, as enums in the code;
    the published schemas list exactly those values. Adding an alert type: a member of ``AlertType`` (clinical)
    or ``TechnicalAlertType``, the code that raises it, and its value and meaning in config/alert.schema.json."""
    by_category = {
        rule["if"]["properties"]["category"]["const"]: rule["then"]["properties"]["type"]["enum"]
        for rule in ALERT_SCHEMA["allOf"]
    }
    assert by_category == {"clinical": [t.value for t in AlertType], "technical": [t.value for t in TechnicalAlertType]}
    assert {category: frozenset(types) for category, types in by_category.items()} == ALERT_TYPES
    described = ALERT_SCHEMA["properties"]["type"]["description"]
    assert [t for t in [*AlertType, *TechnicalAlertType] if f" {t.value} (" not in described] == []
    assert ALERT_SCHEMA["properties"]["category"]["enum"] == list(get_args(Category))
    assert ALERT_SCHEMA["properties"]["phase"]["enum"] == [p.value for p in AlertPhase]
    active = STATUS_SCHEMA["$defs"]["active_alerts"]["properties"]["alerts"]["items"]["properties"]
    assert active["category"]["enum"] == list(get_args(Category))
    assert GAIT_SCHEMA["properties"]["state"]["enum"] == [s.value for s in ActivityState]
    labels = GAIT_SCHEMA["properties"]["classification"]["oneOf"][1]["properties"]["label"]["enum"]
    assert labels == [label.value for label in GaitLabel]


def test_an_alert_of_an_unlisted_type_is_refused() -> None:
    """An integrator's software switches on the type: a type no enum names would be a message nobody handles."""
    with pytest.raises(ValueError, match="no technical alert type"):
        technical_alert_body(
            "camera_on_fire",
            AlertPhase.START,
            camera="bay1",
            identity=IDENTITY,
            clock=CLOCK,
            t_start=1000.0,
            t_observed=1001.0,
            alert_id="h:b:1",
            incident_id="h:b:1",
        )
    with pytest.raises(ValueError, match="no clinical alert type"):
        alert_body(
            clinical_alert(type="camera_offline"),
            camera="bay1",
            zone="",
            identity=IDENTITY,
            clock=CLOCK,
            alert_id="h:b:2",
            incident_id="h:b:2",
        )
