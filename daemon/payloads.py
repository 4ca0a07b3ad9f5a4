"""MQTT contract v1: topics and JSON payloads, as pure functions (no I/O, no clock reads).

Topics live under ``<root>/<site>/<host>/`` with ``root = "gaitwatch/v1"`` by default:

======================== ===== ====== =====================================================================
topic                    QoS   retain payload
======================== ===== ====== =====================================================================
``status``               1     yes    ``gaitwatch.status/1``: host online/offline; "offline" is also the Will
``camera/<cam>/status``  1     yes    ``gaitwatch.camera-status/1``: online/offline and last frame age
``gait/<cam>``           0     no     ``gaitwatch.gait/1``: one person's metrics for one window
``alert/<cam>``          1     no     ``gaitwatch.alert/1``: a clinical or camera technical alert
``alert``                1     no     ``gaitwatch.alert/1``: a host-level technical alert (e.g. outbox full)
``active_alerts``        1     yes    ``gaitwatch.active-alerts/1``: the incidents open right now (a snapshot)
``ack`` (suggested)      1     no     ``gaitwatch.ack/2``: written by integrators, read by the daemon
======================== ===== ====== =====================================================================

A subscriber to ``gaitwatch/v1/+/+/alert/#`` receives both alert topics (``#`` also matches the parent level).
Alerts are never retained: a retained alert would be re-delivered as new to every integrator that reconnects.
What an integrator that (re)connects needs instead is *state*: the retained ``active_alerts`` snapshot lists
every incident that has started and not yet ended (its latest message's ``alert_id``, ``incident_id``, type,
camera, subject), republished on every (re)connect and whenever the set changes. After a crash it is stale
until the daemon is back; the host ``status`` (the Will says "offline") tells integrators so.

Ack mode (``mqtt.ack_topic``): an integrator acknowledges each alert it has durably taken over by
publishing ``{"schema": "gaitwatch.ack/2", "acks": [{"alert_id": "<id>", "ack_token": "<token>"}]}`` to the
ack topic, for every copy it receives, duplicates included. ``ack_token`` is a per-alert secret found only in
that alert's payload: alert ids are predictable, so an ack counts only for an alert already published and only
with its own token (checked by the outbox). The daemon re-sends an alert with the same ``alert_id`` until it is
acknowledged.

Alerts travel through the outbox in two steps. The pipeline builds an alert *body* (``alert_body`` or
``technical_alert_body``): everything known when the alert is raised. The outbox drainer completes it at each
transmission with ``stamp_alert``: ``seq`` (the outbox's per-host sequence number), ``emitted_at`` (when
this copy was sent) and ``delayed`` (it waited in the outbox longer than the drainer's threshold). A re-sent
alert keeps its ``alert_id``, so integrators de-duplicate on it; ``incident_id`` is shared by the
start/update/end phases of one condition. Times inside the pipeline are ``time.monotonic()`` seconds;
``ClockMap`` converts them to UTC with an offset captured once, so the same inputs always give the same bytes.

``subject`` is a track id ``<camera>:<boot_id>:<track counter>`` and never a name: nothing here identifies a
person beyond "the same track". Non-finite numbers are written as ``null`` (JSON has no NaN), because an alert
must never fail to be built over a NaN in its evidence.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal

from gaitwatch.daemon.technical_alerts import TechnicalAlertType
from gaitwatch.gait.types import Alert, AlertPhase, AlertType, Assessment, FloorReading, GaitMetrics

ALERT_SCHEMA: Final = "gaitwatch.alert/1"
GAIT_SCHEMA: Final = "gaitwatch.gait/1"
STATUS_SCHEMA: Final = "gaitwatch.status/1"
CAMERA_STATUS_SCHEMA: Final = "gaitwatch.camera-status/1"
ACTIVE_ALERTS_SCHEMA: Final = "gaitwatch.active-alerts/1"
# v2 (issue 14): an ack names each alert with its ``ack_token``, a per-alert secret that appears only in that
# alert's payload, so only a client that received the alert can acknowledge it. v1 acks (bare alert ids, which
# anyone could predict from the retained boot_id) are refused.
ACK_SCHEMA: Final = "gaitwatch.ack/2"
DEFAULT_ROOT: Final = "gaitwatch/v1"

Category = Literal["clinical", "technical"]
# The alert types of each category, from their enums; config/alert.schema.json lists the same (a test checks).
ALERT_TYPES: Final[Mapping[Category, frozenset[str]]] = MappingProxyType(
    {"clinical": frozenset(AlertType), "technical": frozenset(TechnicalAlertType)}
)
OnlineState = Literal["online", "offline"]
# A camera can also be "degraded": frames arrive, but too few get processed for gait analysis.
CameraStatusState = Literal["online", "degraded", "offline"]

# One topic level: no '/', no wildcards, nothing a shell or a dashboard would have to escape.
_LEVEL = re.compile(r"^[A-Za-z0-9_.-]+$")
_ROOT = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
# Significant digits kept for floats: features are float32-derived, more digits would only be noise.
_SIG_DIGITS = 7
# Canonical key order of an alert message (JSON objects are unordered, but people read payloads).
_ALERT_KEYS: Final = (
    "schema",
    "alert_id",
    "incident_id",
    "seq",
    "phase",
    "category",
    "type",
    "pattern",
    "priority",
    "confidence",
    "site",
    "ward",
    "host",
    "camera",
    "zone",
    "subject",
    "observed_start",
    "observed_end",
    "emitted_at",
    "delayed",
    "evidence",
    "quality",
    "software_version",
    "model_versions",
    "ack_token",
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a kind of message is published."""

    qos: int
    retain: bool


STATUS_DELIVERY: Final = Delivery(qos=1, retain=True)
CAMERA_STATUS_DELIVERY: Final = Delivery(qos=1, retain=True)
GAIT_DELIVERY: Final = Delivery(qos=0, retain=False)
ALERT_DELIVERY: Final = Delivery(qos=1, retain=False)
ACTIVE_ALERTS_DELIVERY: Final = Delivery(qos=1, retain=True)
# An ack message may name at most this many alerts: a bound on what one message can make the daemon do.
MAX_ACK_IDS: Final = 1000


def check_topic_level(name: str, what: str) -> str:
    """Return ``name`` if it is a safe single topic level (letters, digits, ``_ . -``); else ValueError."""
    if not _LEVEL.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a valid MQTT topic level (use letters, digits, _ . -)")
    return name


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one daemon (one site, one host)."""

    site: str
    host: str
    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        check_topic_level(self.site, "site")
        check_topic_level(self.host, "host")
        if not _ROOT.fullmatch(self.root):
            raise ValueError(f"topic root {self.root!r} must be '/'-separated levels of letters, digits, _.-")

    @property
    def base(self) -> str:
        return f"{self.root}/{self.site}/{self.host}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def camera_status(self, camera: str) -> str:
        return f"{self.base}/camera/{check_topic_level(camera, 'camera')}/status"

    def gait(self, camera: str) -> str:
        return f"{self.base}/gait/{check_topic_level(camera, 'camera')}"

    def alert(self, camera: str | None) -> str:
        """``alert/<camera>``, or ``alert`` for a host-level technical alert (``camera=None``)."""
        if camera is None:
            return f"{self.base}/alert"
        return f"{self.base}/alert/{check_topic_level(camera, 'camera')}"

    @property
    def active_alerts(self) -> str:
        """Retained snapshot of the open incidents (not under ``alert/``: it is state, not an event)."""
        return f"{self.base}/active_alerts"

    @property
    def ack(self) -> str:
        """The suggested integrator ack topic for this host (``mqtt.ack_topic`` may name any other)."""
        return f"{self.base}/ack"


@dataclass(frozen=True, slots=True)
class ClockMap:
    """Maps the pipeline's monotonic seconds to wall-clock seconds: ``wall = monotonic + offset_s``.

    Capture it once at start-up: the monotonic clock never jumps, so intervals inside the pipeline stay right
    even when NTP steps the wall clock; the price is that a step after start-up is not followed (restart the
    daemon, or capture a new map, to pick it up).
    """

    offset_s: float

    @classmethod
    def capture(
        cls, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic
    ) -> ClockMap:
        return cls(offset_s=wall() - monotonic())

    def wall(self, t_monotonic: float) -> float:
        return t_monotonic + self.offset_s

    def utc(self, t_monotonic: float) -> str:
        return utc_iso(self.wall(t_monotonic))


def utc_iso(wall_s: float) -> str:
    """Wall-clock seconds since the epoch as ISO 8601 UTC with milliseconds and a ``Z``."""
    text = datetime.fromtimestamp(wall_s, tz=UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def new_boot_id() -> str:
    """A short random id for this daemon run; with a per-run counter it makes ids unique across restarts."""
    return secrets.token_hex(4)


def subject_id(camera: str, boot_id: str, track_id: int) -> str:
    """The payload form of a track id: ``<camera>:<boot_id>:<counter>`` (globally unique, never a name)."""
    return f"{camera}:{boot_id}:{track_id}"


@dataclass(slots=True)
class AlertIds:
    """Issues alert ids ``<host>:<boot_id>:<n>`` from a per-instance counter (no class-level state).

    Unique across restarts because ``boot_id`` is new on every run; ``n`` restarts at 1.
    """

    host: str
    boot_id: str
    _next: int = field(default=1, init=False)

    def next(self) -> str:
        n = self._next
        self._next += 1
        return f"{self.host}:{self.boot_id}:{n}"


@dataclass(frozen=True, slots=True)
class PublisherIdentity:
    """Who publishes: fixed for the daemon's lifetime and copied into every alert."""

    site: str
    host: str
    boot_id: str
    software_version: str
    ward: str = ""
    model_versions: Mapping[str, str] = field(default_factory=dict)


def _num(x: float | None) -> float | None:
    """A JSON-safe number: None for missing or non-finite, else rounded to significant digits."""
    if x is None:
        return None
    f = float(x)
    if not math.isfinite(f):
        return None
    return float(f"{f:.{_SIG_DIGITS}g}")


def _numbers(values: Mapping[str, float]) -> dict[str, float | None]:
    return {str(k): _num(v) for k, v in sorted(values.items())}


def _dumps(obj: Mapping[str, Any]) -> bytes:
    # allow_nan=False: a NaN that slipped past _num is a bug to surface, not invalid JSON to send.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def host_status_payload(state: OnlineState, identity: PublisherIdentity, wall_s: float) -> bytes:
    """Retained host status; the "offline" payload built at connect time is also the Last Will (its ``time``
    is then when the Will was registered, not when the daemon died)."""
    return _dumps(
        {
            "schema": STATUS_SCHEMA,
            "state": state,
            "site": identity.site,
            "host": identity.host,
            "boot_id": identity.boot_id,
            "version": identity.software_version,
            "time": utc_iso(wall_s),
        }
    )


def camera_status_payload(
    state: CameraStatusState,
    camera: str,
    identity: PublisherIdentity,
    wall_s: float,
    last_frame_age_s: float | None,
    zone: str = "",
) -> bytes:
    """Retained per-camera status; ``last_frame_age_s`` is None when no frame was ever received."""
    return _dumps(
        {
            "schema": CAMERA_STATUS_SCHEMA,
            "state": state,
            "site": identity.site,
            "host": identity.host,
            "camera": camera,
            "zone": zone,
            "last_frame_age_s": _num(last_frame_age_s),
            "time": utc_iso(wall_s),
        }
    )


def gait_payload(
    metrics: GaitMetrics,
    assessment: Assessment | None,
    *,
    camera: str,
    identity: PublisherIdentity,
    clock: ClockMap,
) -> bytes:
    """One person's gait metrics for one window (QoS 0: the next window supersedes a lost one)."""
    classification: dict[str, Any] | None = None
    if assessment is not None:
        if assessment.track_id != metrics.track_id:
            raise ValueError(
                f"assessment of track {assessment.track_id} given with metrics of track {metrics.track_id}"
            )
        classification = {
            "label": str(assessment.label),
            "p_abnormal": _num(assessment.p_abnormal),
            "pattern": assessment.pattern,
        }
    floor = metrics.floor if metrics.floor is not None else FloorReading()
    return _dumps(
        {
            "schema": GAIT_SCHEMA,
            "site": identity.site,
            "host": identity.host,
            "camera": camera,
            "subject": subject_id(camera, identity.boot_id, metrics.track_id),
            "window_start": clock.utc(metrics.t_start),
            "window_end": clock.utc(metrics.t_end),
            "valid": bool(metrics.valid),
            "quality": _num(metrics.quality),
            "state": str(metrics.state),
            "cadence_spm": _num(metrics.cadence_spm),
            # In metres from the camera's floor calibration, and the room zone: null without them.
            "speed_mps": _num(floor.speed_mps),
            "step_length_m": _num(floor.step_length_m),
            "stride_length_m": _num(floor.stride_length_m),
            "distance_m": _num(floor.distance_m),
            "floor_xy": [_num(v) for v in floor.floor_xy] if floor.floor_xy is not None else None,
            "zone": floor.zone,
            "features": _numbers(metrics.features),
            "classification": classification,
        }
    )


def _body(
    *,
    alert_id: str,
    incident_id: str,
    phase: str,
    category: Category,
    type_: str,
    pattern: str,
    priority: str,
    confidence: float | None,
    identity: PublisherIdentity,
    camera: str | None,
    zone: str,
    subject: str | None,
    observed_start: str,
    observed_end: str,
    evidence: Mapping[str, float],
    quality: float | None,
) -> dict[str, Any]:
    if type_ not in ALERT_TYPES[category]:
        # An integrator's software switches on the type: an unlisted one would be a message nobody handles.
        raise ValueError(f"{type_!r} is no {category} alert type (gaitwatch.gait.types / daemon.technical_alerts)")
    if not priority:
        raise ValueError("an alert needs a non-empty priority")
    return {
        "schema": ALERT_SCHEMA,
        "alert_id": alert_id,
        "incident_id": incident_id,
        "phase": phase,
        "category": category,
        "type": type_,
        "pattern": pattern,
        "priority": priority,
        "confidence": _num(confidence),
        "site": identity.site,
        "ward": identity.ward,
        "host": identity.host,
        "camera": camera,
        "zone": zone,
        "subject": subject,
        "observed_start": observed_start,
        "observed_end": observed_end,
        "evidence": _numbers(evidence),
        "quality": _num(quality),
        "software_version": identity.software_version,
        "model_versions": dict(sorted(identity.model_versions.items())),
        "ack_token": new_ack_token(),
    }


def new_ack_token() -> str:
    """A per-alert secret for ack mode: 128 random bits, URL-safe (see ``ACK_SCHEMA``)."""
    return secrets.token_urlsafe(16)


def ack_token_of(body: bytes) -> str | None:
    """The ``ack_token`` of a stored alert body (None for a body without one)."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    token = obj.get("ack_token") if isinstance(obj, dict) else None
    return token if isinstance(token, str) else None


def with_ack_token(body: bytes) -> bytes:
    """An alert body stored before ack tokens existed, given one (outbox migration); others unchanged."""
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return body
    if not isinstance(obj, dict) or obj.get("schema") != ALERT_SCHEMA or isinstance(obj.get("ack_token"), str):
        return body
    obj["ack_token"] = new_ack_token()
    return _dumps(obj)


def alert_body(
    alert: Alert,
    *,
    camera: str,
    zone: str,
    identity: PublisherIdentity,
    clock: ClockMap,
    alert_id: str,
    incident_id: str,
) -> bytes:
    """The outbox body of a clinical alert about one track (complete it with ``stamp_alert`` to send)."""
    return _dumps(
        _body(
            alert_id=alert_id,
            incident_id=incident_id,
            phase=str(alert.phase),
            category="clinical",
            type_=alert.type,
            pattern=alert.pattern,
            priority=alert.priority,
            confidence=alert.confidence,
            identity=identity,
            camera=camera,
            zone=zone,
            subject=subject_id(camera, identity.boot_id, alert.track_id),
            observed_start=clock.utc(alert.t_start),
            observed_end=clock.utc(alert.t_observed),
            evidence=alert.evidence,
            quality=alert.quality,
        )
    )


def technical_alert_body(
    type_: str,
    phase: AlertPhase,
    *,
    camera: str | None,
    identity: PublisherIdentity,
    clock: ClockMap,
    t_start: float,
    t_observed: float,
    alert_id: str,
    incident_id: str,
    priority: str = "high",
    zone: str = "",
    evidence: Mapping[str, float] | None = None,
) -> bytes:
    """The outbox body of a technical alert (camera offline, outbox overflow, ...): no subject, certain
    (confidence 1), about a camera or, with ``camera=None``, about the host."""
    return _dumps(
        _body(
            alert_id=alert_id,
            incident_id=incident_id,
            phase=str(phase),
            category="technical",
            type_=type_,
            pattern="",
            priority=priority,
            confidence=1.0,
            identity=identity,
            camera=camera,
            zone=zone,
            subject=None,
            observed_start=clock.utc(t_start),
            observed_end=clock.utc(t_observed),
            evidence=evidence or {},
            quality=None,
        )
    )


def stamp_alert(body: bytes, *, seq: int, emitted_wall_s: float, delayed: bool) -> bytes:
    """Complete an alert body for one transmission: ``seq``, ``emitted_at``, ``delayed``.

    A payload that is not an alert body (not a JSON object with schema ``gaitwatch.alert/1``) is returned
    unchanged, so the outbox can carry other messages too.
    """
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body
    if not isinstance(obj, dict) or obj.get("schema") != ALERT_SCHEMA:
        return body
    obj["seq"] = int(seq)
    obj["emitted_at"] = utc_iso(emitted_wall_s)
    obj["delayed"] = bool(delayed)
    ordered = {k: obj[k] for k in _ALERT_KEYS if k in obj}
    ordered.update((k, v) for k, v in obj.items() if k not in ordered)
    return _dumps(ordered)


# -- the open incidents, and integrator acknowledgements ----------------------------------------------------

# What the active-alerts snapshot keeps of an alert message: enough to show and to look the alert up, nothing
# that changes between its updates except the latest alert_id and observed_end.
_ACTIVE_KEYS: Final = (
    "alert_id",
    "incident_id",
    "phase",
    "category",
    "type",
    "pattern",
    "priority",
    "camera",
    "zone",
    "subject",
    "observed_start",
    "observed_end",
)


def active_alert_entry(body: bytes) -> dict[str, Any]:
    """The active-alerts snapshot's entry for an alert body (``alert_body``/``technical_alert_body``)."""
    obj = json.loads(body)
    if not isinstance(obj, dict) or obj.get("schema") != ALERT_SCHEMA:
        raise ValueError("not a gaitwatch alert body")
    return {k: obj.get(k) for k in _ACTIVE_KEYS}


def active_alerts_payload(entries: Sequence[Mapping[str, Any]], identity: PublisherIdentity, wall_s: float) -> bytes:
    """Retained snapshot of the incidents open now (``entries`` from ``active_alert_entry``), ordered by
    when they started. An empty list means nothing is open on this host."""
    ordered = sorted(entries, key=lambda e: (str(e.get("observed_start")), str(e.get("incident_id"))))
    return _dumps(
        {
            "schema": ACTIVE_ALERTS_SCHEMA,
            "site": identity.site,
            "host": identity.host,
            "boot_id": identity.boot_id,
            "time": utc_iso(wall_s),
            "alerts": [dict(e) for e in ordered],
        }
    )


class AckError(ValueError):
    """An ack message that is not a valid ``gaitwatch.ack/2`` message (the reason never echoes the payload)."""


@dataclass(frozen=True, slots=True)
class AckClaim:
    """One acknowledged alert: its id and the ``ack_token`` from its payload."""

    alert_id: str
    ack_token: str


# Bounds on what an integrator (or anyone allowed on the ack topic) can make the daemon parse.
MAX_ACK_BYTES: Final = 64 * 1024
MAX_ACK_FIELD_CHARS: Final = 256


def parse_ack(payload: bytes) -> tuple[AckClaim, ...]:
    """The alerts an integrator acknowledges in one ack message.

    Accepted: a JSON object with ``schema`` ``gaitwatch.ack/2`` and ``acks``, a list of ``{"alert_id": ...,
    "ack_token": ...}`` (or one such pair at the top level); other keys (who acknowledged, when) are the
    integrator's own and ignored. Bounded: at most ``MAX_ACK_BYTES``, ``MAX_ACK_IDS`` acks, strings of at most
    ``MAX_ACK_FIELD_CHARS``; nesting too deep for the parser is refused like any malformed message. Anything
    else raises ``AckError``, whose message says what is wrong.
    """
    if len(payload) > MAX_ACK_BYTES:
        raise AckError(f"ack is {len(payload)} bytes; at most {MAX_ACK_BYTES}")
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AckError("ack is not JSON") from None
    except RecursionError:
        raise AckError("ack is nested too deeply") from None
    if not isinstance(obj, dict):
        raise AckError("ack must be a JSON object")
    if obj.get("schema") != ACK_SCHEMA:
        raise AckError(
            f"ack schema must be {ACK_SCHEMA!r} with an ack_token per alert (v1 acks by bare alert id are no longer "
            "accepted)"
        )
    entries: list[object] = []
    if "alert_id" in obj or "ack_token" in obj:
        entries.append({"alert_id": obj.get("alert_id"), "ack_token": obj.get("ack_token")})
    many = obj.get("acks", [])
    if not isinstance(many, list):
        raise AckError("acks must be a list of {alert_id, ack_token} objects")
    if len(many) + len(entries) > MAX_ACK_IDS:
        raise AckError(f"ack names {len(many) + len(entries)} alerts; at most {MAX_ACK_IDS} per message")
    entries.extend(many)
    if not entries:
        raise AckError("ack names no alert")
    claims: dict[str, AckClaim] = {}
    for entry in entries:
        alert_id = entry.get("alert_id") if isinstance(entry, dict) else None
        token = entry.get("ack_token") if isinstance(entry, dict) else None
        if not (isinstance(alert_id, str) and isinstance(token, str) and alert_id and token):
            raise AckError("every ack needs a non-empty alert_id and ack_token (strings)")
        if len(alert_id) > MAX_ACK_FIELD_CHARS or len(token) > MAX_ACK_FIELD_CHARS:
            raise AckError(f"alert_id and ack_token are at most {MAX_ACK_FIELD_CHARS} characters")
        claims.setdefault(alert_id, AckClaim(alert_id, token))
    return tuple(claims.values())


def ack_payload(*alerts: Mapping[str, Any]) -> bytes:
    """What an integrator publishes to acknowledge alerts it received (``alerts``: the decoded payloads): their
    ``alert_id`` and ``ack_token``. For tests, the soak benchmark and integrator examples."""
    acks = [{"alert_id": str(a["alert_id"]), "ack_token": str(a["ack_token"])} for a in alerts]
    return _dumps({"schema": ACK_SCHEMA, "acks": acks})
