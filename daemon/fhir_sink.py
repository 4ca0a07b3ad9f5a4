"""The FHIR sink: alerts and gait windows as HL7 FHIR R4 resources, POSTed to a hospital's FHIR server.

What is sent (built by pure functions, ``detected_issue`` and ``gait_observation``):

- an **alert** (every outbox row, with the outbox's guarantees: committed first, retried with capped backoff
  until the server takes it) becomes a ``DetectedIssue``: ``identifier`` = the alert id (and the incident id,
  which groups the start/update/end messages of one condition), ``code`` = the alert type, ``severity`` from
  the priority, ``identified[x]`` = the observed period, ``author`` = the gaitwatch host and camera (a logical
  ``Device`` reference), ``patient`` = the track (a logical reference by track id, never a name; absent for
  technical alerts), ``status`` ``preliminary`` while the condition lasts (start/update) and ``final`` at its
  end, ``detail`` = a one-line summary with the evidence numbers.
- a **gait window** (one walking person, one analysis window; best effort like the QoS 0 MQTT telemetry: a
  window that cannot be sent is dropped, the next supersedes it) becomes an ``Observation`` with category
  ``activity``, ``effectivePeriod`` = the window, the same ``subject``/``device`` references, and one
  ``component`` per metric the camera could measure: cadence (steps/min), walking speed (body heights/s),
  step length (leg lengths), stride- and step-time variability and step asymmetry (ratios), and, where the
  camera has a floor calibration, walking speed (m/s), step and stride length (m) and distance walked (m).
  What was not measured is left out, never guessed. Invalid and non-walking windows are not sent.

Why ``DetectedIssue`` for alerts: it is the R4 resource for "an actual or potential clinical issue" detected
by a system, with the fields an alert needs (an event time or period, a severity, a ``Device`` as author, an
identifier for de-duplication, a patient reference that may be absent, evidence). ``Flag`` describes a lasting
state of a patient ("fall risk") shown to every carer until it is withdrawn, not a timed event, and would
need a second request to end it. ``DeviceAlert`` (which names fall detectors in its scope) exists only from
FHIR R6 and no R4 server stores it; ``DetectedIssue`` maps onto it field by field (identifier, code,
severity -> priority, identified -> occurrence, author -> device, patient -> subject) when servers move on.

Codes: the relative speed and step length are in the person's own body heights and leg lengths, and the metre
figures exist only on calibrated cameras, so each has a code of its own (``walking-speed`` in
``{body_height}/s``, ``walking-speed-m`` in UCUM ``m/s``): one code for both would let a chart plot body
heights per second as metres per second. The codes,
identifiers and references therefore live under a configurable namespace (``FhirConfig.namespace``,
``urn:gaitwatch`` by default: ``urn:gaitwatch:alert-id``, ``:incident-id``, ``:alert-type``, ``:gait-metric``,
``:gait-window``, ``:track``, ``:device``), which a site maps to its terminology with a ConceptMap.

Idempotency: every POST is a conditional create, ``If-None-Exist: identifier=<system>|<id>``, so a retry
after a lost answer (the server stored the resource, the response never arrived) finds the resource and
creates nothing (200 instead of 201). Answers: 2xx delivered; 412 (several resources already carry the
identifier) delivered, with a warning; 400, 413 and 422 (the server refuses *this* resource; sending it again
gets the same answer) refused for good: logged at ERROR with the server's OperationOutcome, not retried by
this sink, still delivered by the others; everything else (unreachable, timeout, 401/403 credentials,
404/405 a wrong ``base_url``, 409, 429, 5xx) is transient: the alert stays pending and is retried with
backoff until an administrator fixes the cause.

Security: the bearer token is read from a file at start (never logged, never in ``repr``); ``ca_file``
verifies an https server signed by the hospital's own CA. The HTTP client is aiohttp; every request is
bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp

from gaitwatch.daemon.drainer import SinkDrainer
from gaitwatch.daemon.metrics import DaemonMetrics
from gaitwatch.daemon.outbox import Outbox, OutboxRow
from gaitwatch.daemon.payloads import ALERT_SCHEMA, GAIT_SCHEMA, ClockMap, PublisherIdentity, gait_payload
from gaitwatch.daemon.settings import ConfigError, FhirSettings, Settings
from gaitwatch.daemon.sinks import FHIR_SINK, DeliveryReport
from gaitwatch.gait.types import GaitResult

__all__ = [
    "FHIR_SINK",
    "FhirConfig",
    "FhirConfigError",
    "FhirLink",
    "FhirSink",
    "conditional_create_query",
    "detected_issue",
    "fhir_link",
    "gait_observation",
]

_LOG = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
# Answers about the resource itself: sending it again gets the same answer (see the module docstring).
REFUSED_FOR_GOOD: Final = frozenset({400, 413, 422})
# Gait windows waiting to be sent; beyond this the oldest is dropped (the newest says more about now).
GAIT_QUEUE: Final = 256

_SEVERITY: Final = {"high": "high", "critical": "high", "medium": "moderate", "moderate": "moderate", "low": "low"}


class FhirConfigError(ValueError):
    """The FHIR settings cannot work (bad URL, unreadable token or CA file); the message names the key."""


@dataclass(frozen=True, slots=True)
class FhirConfig:
    """Where and how to send.

    ``base_url``: the server's FHIR base (``https://fhir.example/r4``; resources go to ``<base>/DetectedIssue``
    and ``<base>/Observation``). ``timeout_s``: limit on each request; too short fails on a busy server, too
    long delays noticing a stalled one. ``token``: a bearer token (read from ``fhir.token_file``).
    ``ca_file``: the CA that signed an https server (None: the system's CAs). ``namespace``: prefix of the
    code systems and identifier systems. ``gait_observations``: also send walking windows as Observations.
    """

    base_url: str
    timeout_s: float = 10.0
    token: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    namespace: str = "urn:gaitwatch"
    gait_observations: bool = True

    @classmethod
    def from_settings(cls, settings: FhirSettings) -> FhirConfig:
        """The config of an enabled ``[fhir]`` section, its bearer token read from ``token_file`` (a bare name
        is looked up in ``$CREDENTIALS_DIRECTORY`` first). ``FhirConfigError`` names the key and the file, never
        the token."""
        if settings.base_url is None:
            raise FhirConfigError("fhir.base_url is required when fhir.enabled = true")
        token = _read_token(settings.token_file) if settings.token_file is not None else None
        return cls(
            settings.base_url,
            timeout_s=settings.timeout_s,
            token=token,
            ca_file=settings.ca_file,
            namespace=settings.namespace,
            gait_observations=settings.gait_observations,
        )

    def __post_init__(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
            raise FhirConfigError(f"fhir.base_url must be an http(s) URL without query; got {self.base_url!r}")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise FhirConfigError(f"fhir.timeout_s must be > 0; got {self.timeout_s}")
        if not self.namespace or any(c.isspace() or c in "|,$" for c in self.namespace):
            raise FhirConfigError(
                f"fhir.namespace must be a URI without spaces, '|', ',' or '$'; got {self.namespace!r}"
            )

    def system(self, what: str) -> str:
        """The code or identifier system for ``what`` (``alert-id``, ``track``, ...) under the namespace."""
        separator = "/" if self.namespace.startswith(("http://", "https://")) else ":"
        return f"{self.namespace.rstrip('/:')}{separator}{what}"


def _read_token(path: Path) -> str:
    candidates = [path]
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and not path.is_absolute() and len(path.parts) == 1:
        candidates.insert(0, Path(cred_dir) / path)
    for candidate in candidates:
        try:
            token = candidate.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise FhirConfigError(f"fhir.token_file: cannot read {candidate}: {exc}") from None
        if not token or any(c.isspace() for c in token):
            raise FhirConfigError(f"fhir.token_file: {candidate} must hold one token on one line")
        return token
    where = f" (also looked in $CREDENTIALS_DIRECTORY={cred_dir})" if cred_dir else ""
    raise FhirConfigError(f"fhir.token_file: {path} not found{where}")


# -- resources (pure) -------------------------------------------------------------------------------------------


def _identifier(config: FhirConfig, what: str, value: str) -> dict[str, str]:
    return {"system": config.system(what), "value": value}


def _device(config: FhirConfig, msg: Mapping[str, Any]) -> dict[str, Any]:
    """The gaitwatch host and camera that observed it, as a logical reference (by identifier)."""
    parts = [str(msg.get(k)) for k in ("site", "host", "camera") if msg.get(k)]
    camera = f" camera {msg['camera']}" if msg.get("camera") else ""
    return {
        "type": "Device",
        "identifier": _identifier(config, "device", "/".join(parts)),
        "display": f"gaitwatch {msg.get('host', '?')}{camera}",
    }


def _track(config: FhirConfig, subject: str) -> dict[str, Any]:
    """The person as the camera knows them: a track id (``camera:boot:counter``), never a name."""
    return {"identifier": _identifier(config, "track", subject), "display": f"anonymous track {subject}"}


def _concept(config: FhirConfig, what: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": config.system(what), "code": code, "display": display}], "text": display}


def _period(start: object, end: object) -> dict[str, str]:
    period = {"start": str(start)}
    if end:
        period["end"] = str(end)
    return period


def detected_issue(body: Mapping[str, Any], config: FhirConfig) -> dict[str, Any]:
    """A ``gaitwatch.alert/1`` body as a FHIR R4 ``DetectedIssue`` (see the module docstring)."""
    if body.get("schema") != ALERT_SCHEMA or not body.get("alert_id") or not body.get("type"):
        raise ValueError("not a gaitwatch alert (schema gaitwatch.alert/1 with alert_id and type)")
    type_ = str(body["type"])
    phase = str(body.get("phase") or "start")
    evidence = body.get("evidence") or {}
    numbers = ", ".join(f"{k}={v}" for k, v in sorted(evidence.items()) if v is not None)
    where = f" on camera {body['camera']}" if body.get("camera") else f" on host {body.get('host', '?')}"
    zone = f" (zone {body['zone']})" if body.get("zone") else ""
    confidence = f"; confidence {body['confidence']}" if body.get("confidence") is not None else ""
    pattern = f", pattern {body['pattern']}" if body.get("pattern") else ""
    detail = f"{phase} of {body.get('category', 'clinical')} alert {type_}{pattern}{where}{zone}{confidence}"
    if numbers:
        detail += f"; evidence: {numbers}"
    resource: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "identifier": [_identifier(config, "alert-id", str(body["alert_id"]))],
        "status": "final" if phase == "end" else "preliminary",
        "code": _concept(config, "alert-type", type_, type_.replace("_", " ")),
    }
    if body.get("incident_id"):
        resource["identifier"].append(_identifier(config, "incident-id", str(body["incident_id"])))
    severity = _SEVERITY.get(str(body.get("priority", "")).lower())
    if severity is not None:
        resource["severity"] = severity
    if body.get("subject"):
        resource["patient"] = _track(config, str(body["subject"]))
    if body.get("observed_start"):
        resource["identifiedPeriod"] = _period(body["observed_start"], body.get("observed_end"))
    resource["author"] = _device(config, body)
    resource["detail"] = detail
    return resource


# The Observation's components: (gait payload key, feature or top-level, code, display, unit, UCUM code).
_COMPONENTS: Final = (
    ("cadence_spm", "cadence", "Cadence", "steps/min", "/min"),
    ("speed_from_steps_bh_s", "walking-speed", "Walking speed", "body heights/s", "{body_height}/s"),
    ("step_length_ll", "step-length", "Step length", "leg lengths", "{leg_length}"),
    ("stride_time_cv", "stride-time-variability", "Stride time coefficient of variation", "ratio", "1"),
    ("step_time_cv", "step-time-variability", "Step time coefficient of variation", "ratio", "1"),
    ("step_asymmetry", "step-asymmetry", "Step time asymmetry", "ratio", "1"),
    # From the camera's floor calibration (top-level payload keys; null, hence left out, without one).
    ("speed_mps", "walking-speed-m", "Walking speed on the floor", "m/s", "m/s"),
    ("step_length_m", "step-length-m", "Step length on the floor", "m", "m"),
    ("stride_length_m", "stride-length-m", "Stride length on the floor", "m", "m"),
    ("distance_m", "distance-walked-m", "Distance walked in the window", "m", "m"),
)
# Gait payload keys outside ``features`` that components read.
_TOP_LEVEL: Final = ("cadence_spm", "speed_mps", "step_length_m", "stride_length_m", "distance_m")


def gait_observation(payload: Mapping[str, Any], config: FhirConfig) -> dict[str, Any] | None:
    """A ``gaitwatch.gait/1`` window as a FHIR R4 ``Observation`` with one component per measured metric;
    None for a window that is not worth a resource (invalid, not walking, no cadence)."""
    if payload.get("schema") != GAIT_SCHEMA or not payload.get("valid") or not payload.get("subject"):
        return None
    features: Mapping[str, Any] = payload.get("features") or {}
    values = {**features, **{key: payload.get(key) for key in _TOP_LEVEL}}
    components = [
        {
            "code": _concept(config, "gait-metric", code, display),
            "valueQuantity": {"value": round(float(v), 4), "unit": unit, "system": UCUM, "code": ucum},
        }
        for key, code, display, unit, ucum in _COMPONENTS
        if isinstance(v := values.get(key), int | float) and math.isfinite(v)
    ]
    if not components or components[0]["code"]["coding"][0]["code"] != "cadence":
        return None  # no stepping rhythm: nothing about gait to report
    subject = str(payload["subject"])
    return {
        "resourceType": "Observation",
        "identifier": [_identifier(config, "gait-window", f"{subject}@{payload.get('window_end')}")],
        "status": "final",
        "category": [
            {
                "coding": [{"system": OBSERVATION_CATEGORY, "code": "activity", "display": "Activity"}],
                "text": "Activity",
            }
        ],
        "code": _concept(config, "gait-metric", "gait-window", "Gait metrics of one walking window"),
        "subject": _track(config, subject),
        "effectivePeriod": _period(payload.get("window_start"), payload.get("window_end")),
        "device": _device(config, payload),
        "component": components,
    }


def tls_context(config: FhirConfig) -> ssl.SSLContext | None:
    """The TLS context of an https server (its ``ca_file``, else the system's CAs); None for http.
    ``FhirConfigError`` names ``fhir.ca_file`` when it cannot be loaded."""
    if urlsplit(config.base_url).scheme != "https":
        return None
    try:
        return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise FhirConfigError(f"fhir.ca_file {config.ca_file}: cannot load CA certificates: {exc}") from exc


def conditional_create_query(identifier: Mapping[str, str]) -> str:
    """The ``If-None-Exist`` value for a resource's identifier: ``identifier=<system>|<value>``, each part
    percent-encoded as a search parameter value (``|`` separates them; ``:`` and ``/`` are kept)."""
    return f"identifier={quote(identifier['system'], safe=':/')}|{quote(identifier['value'], safe=':/@')}"


# -- the sink ----------------------------------------------------------------------------------------------------


class _RefusedError(Exception):
    """The server refused this resource for good (400/413/422)."""


class _TransientError(Exception):
    """This try failed; the next one may not."""


class FhirSink:
    """The FHIR server as an ``AlertSink`` (name ``fhir``), plus best-effort gait Observations.

    ``deliver`` POSTs one ``DetectedIssue`` per row, in ``seq`` order, stopping at the first transient failure
    (see the module docstring for how answers are classified). Gait windows given to ``offer_gait`` wait in a
    bounded queue (oldest dropped first) and are sent by the task ``start`` runs; one try each.
    """

    def __init__(self, config: FhirConfig) -> None:
        self.config = config
        self._base = config.base_url.rstrip("/")
        self._ssl = tls_context(config)
        self._session: aiohttp.ClientSession | None = None
        self._gait: deque[dict[str, Any]] = deque(maxlen=GAIT_QUEUE)
        self._gait_ready = asyncio.Event()
        self._gait_task: asyncio.Task[None] | None = None
        self.gait_sent = 0
        self.gait_dropped = 0
        self._last_error: str | None = None

    @property
    def name(self) -> str:
        return FHIR_SINK

    @property
    def available(self) -> bool:
        # HTTP keeps no connection to watch: every try says whether the server is there (the drainer backs off).
        return True

    @property
    def last_error(self) -> str | None:
        """Why the last request failed; None after a success."""
        return self._last_error

    async def wait_available(self, timeout_s: float | None = None) -> bool:
        return True

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            self._session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True, limit=4),
            )
        return self._session

    # -- alerts ------------------------------------------------------------------------------------------------

    async def deliver(self, rows: Sequence[OutboxRow]) -> DeliveryReport:
        delivered: list[int] = []
        rejected: dict[int, str] = {}
        for row in rows:
            try:
                body = json.loads(row.payload)
                if not isinstance(body, dict):
                    raise ValueError("not a JSON object")
                resource = detected_issue(body, self.config)
            except (ValueError, UnicodeDecodeError) as exc:
                rejected[row.seq] = f"cannot be expressed in FHIR: {exc}"
                continue
            try:
                await self._create(resource)
            except _RefusedError as exc:
                rejected[row.seq] = str(exc)
                continue
            except _TransientError as exc:
                return DeliveryReport(tuple(delivered), rejected, error=str(exc))
            delivered.append(row.seq)
        return DeliveryReport(tuple(delivered), rejected)

    async def _create(self, resource: Mapping[str, Any]) -> None:
        """One conditional create; returns when the server holds the resource (new or already there)."""
        kind = str(resource["resourceType"])
        url = f"{self._base}/{kind}"
        headers = {"If-None-Exist": conditional_create_query(resource["identifier"][0]), "Prefer": "return=minimal"}
        try:
            # No redirects: aiohttp would follow a 302 with a GET, and a login page's 200 would count as delivered.
            post = self._client().post(url, data=json.dumps(resource).encode(), headers=headers, allow_redirects=False)
            async with post as response:
                status = response.status
                text = await response.text(errors="replace") if status >= 300 else ""
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._last_error = f"POST {url}: {type(exc).__name__}: {exc or 'timed out'}"
            raise _TransientError(self._last_error) from exc
        if 200 <= status < 300:
            self._last_error = None
            return
        outcome = _outcome_text(text)
        if status == 412:
            # Several resources already carry this identifier (created by someone else, or a server that raced
            # two retries): the alert is there; creating another would add a duplicate.
            _LOG.warning(
                "FHIR server holds this identifier more than once; not creating another",
                extra={"url": url, "identifier": resource["identifier"][0]["value"]},
            )
            self._last_error = None
            return
        message = f"POST {url}: HTTP {status}{': ' + outcome if outcome else ''}"
        if status in REFUSED_FOR_GOOD:
            raise _RefusedError(message)
        hint = {
            301: " (check fhir.base_url)",
            302: " (check fhir.base_url)",
            307: " (check fhir.base_url)",
            308: " (check fhir.base_url)",
            401: " (check fhir.token_file)",
            403: " (the token lacks create rights on this resource type)",
            404: " (check fhir.base_url)",
            405: " (check fhir.base_url)",
        }.get(status, "")
        self._last_error = message + hint
        raise _TransientError(self._last_error)

    # -- gait windows ------------------------------------------------------------------------------------------

    def offer_gait(self, payload: bytes) -> bool:
        """Queue one ``gaitwatch.gait/1`` payload as an Observation (True) or skip it (False: not a walking
        window, or gait observations are off). Never blocks; when the queue is full the oldest is dropped."""
        if not self.config.gait_observations:
            return False
        try:
            msg = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return False
        resource = gait_observation(msg, self.config) if isinstance(msg, dict) else None
        if resource is None:
            return False
        if len(self._gait) == self._gait.maxlen:
            self.gait_dropped += 1
        self._gait.append(resource)
        self._gait_ready.set()
        return True

    def start(self) -> None:
        """Start sending queued gait Observations (in the background, one try each)."""
        if self._gait_task is None:
            self._gait_task = asyncio.create_task(self._send_gait(), name="fhir-gait")

    async def _send_gait(self) -> None:
        while True:
            await self._gait_ready.wait()
            self._gait_ready.clear()
            while self._gait:
                resource = self._gait.popleft()
                try:
                    await self._create(resource)
                except (_RefusedError, _TransientError) as exc:
                    # Best effort, as QoS 0 telemetry: the next window supersedes this one.
                    self.gait_dropped += 1
                    _LOG.debug("gait observation not sent", extra={"error": str(exc)})
                    continue
                self.gait_sent += 1

    async def close(self) -> None:
        task, self._gait_task = self._gait_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _outcome_text(text: str, limit: int = 300) -> str:
    """The diagnostics of a FHIR ``OperationOutcome`` answer (or the start of whatever the server said)."""
    try:
        outcome = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:limit]
    if isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome":
        issues = outcome.get("issue") or []
        parts = [
            str(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code"))
            for i in issues
            if isinstance(i, dict)
        ]
        return "; ".join(parts)[:limit]
    return " ".join(text.split())[:limit]


# -- wiring ------------------------------------------------------------------------------------------------------


class FhirLink:
    """The FHIR sink as the service runs it: the sink, its outbox drainer, and the identity and clock that turn
    a gait window into its ``gaitwatch.gait/1`` payload (and so into an Observation)."""

    def __init__(self, sink: FhirSink, drainer: SinkDrainer, identity: PublisherIdentity, clock: ClockMap) -> None:
        self.sink = sink
        self.drainer = drainer
        self._identity = identity
        self._clock = clock

    def offer_gait(self, camera: str, result: GaitResult) -> None:
        """A gait window, sent as an Observation when it is a walking one (best effort, never blocks)."""
        if self.sink.config.gait_observations:
            payload = gait_payload(
                result.metrics, result.assessment, camera=camera, identity=self._identity, clock=self._clock
            )
            self.sink.offer_gait(payload)

    async def run(self) -> None:
        """Deliver alerts (the drainer) and gait Observations until cancelled."""
        self.sink.start()
        await self.drainer.run()

    async def close(self) -> None:
        self.drainer.stop()
        await self.sink.close()


def fhir_link(
    settings: Settings, outbox: Outbox, metrics: DaemonMetrics, identity: PublisherIdentity, clock: ClockMap
) -> FhirLink | None:
    """The FHIR sink and its drainer when ``[fhir]`` is enabled (None otherwise); not started. A token or CA
    file that cannot be used is a ``ConfigError`` (exit 78) naming the key."""
    if not settings.fhir.enabled:
        return None
    try:
        sink = FhirSink(FhirConfig.from_settings(settings.fhir))
    except FhirConfigError as exc:
        raise ConfigError(str(exc)) from None
    if sink.config.token and urlsplit(sink.config.base_url).scheme == "http":
        _LOG.warning(
            "config: fhir.token_file's bearer token goes to the FHIR server in clear text (http://); anyone on the "
            "network can read it: use https",
            extra={"base_url": sink.config.base_url},
        )
    # The outbox gauges are the MQTT drainer's to refresh (they count every sink); FHIR deliveries are not
    # PUBACKs, so they stay out of gaitwatch_outbox_published_total.
    drainer = SinkDrainer(
        outbox,
        sink,
        retry_initial_s=settings.fhir.retry_initial_s,
        retry_max_s=settings.fhir.retry_max_s,
        metrics=None if settings.mqtt.enabled else metrics,
        count_published=False,
    )
    return FhirLink(sink, drainer, identity, clock)
