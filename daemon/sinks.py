"""Alert sinks: the places committed alerts are delivered to (an MQTT broker, a FHIR server, a nurse-call
gateway, ...), all behind one interface.

An ``AlertSink`` receives outbox rows in ``seq`` order and says which of them its receiver took for good. It
knows nothing about the outbox: a ``SinkDrainer`` (``gaitwatch.daemon.drainer``) per sink reads that sink's
pending rows, calls ``deliver`` and records the answer in the outbox's per-sink delivery state, so one sink's
outage delays only that sink's deliveries and never another's. Adding a sink is one module implementing this
protocol plus its settings section; the outbox needs no change (each sink is a ``SinkPolicy`` name).

Contract of ``deliver``: ``delivered`` and ``rejected`` together are a prefix of ``rows`` (nothing after the
first failure counts, even if it arrived, so a retry re-sends from the first failure on: duplicates, never
gaps). ``rejected`` is for a receiver that refused a row for good (retrying the same request cannot succeed,
e.g. an HTTP 4xx about the resource); the drainer logs it and stops offering that row to this sink, while
the other sinks still deliver it. Transient failures (unreachable, timed out, 5xx, not authorized yet) stop the
prefix and set ``error``: the drainer retries with capped exponential backoff. Receivers must de-duplicate on
``alert_id`` (MQTT integrators) or be made idempotent by the sink (FHIR conditional create).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gaitwatch.daemon.outbox import MQTT_SINK, OutboxRow, SinkPolicy
from gaitwatch.daemon.settings import Settings

__all__ = ["AlertSink", "DeliveryReport", "configured_sinks"]

# The FHIR sink's outbox name (``gaitwatch.daemon.fhir_sink``).
FHIR_SINK = "fhir"


def configured_sinks(settings: Settings) -> list[SinkPolicy]:
    """The sinks the outbox owes new alerts to: MQTT (with integrator acks in ack mode) and, when ``[fhir]`` is
    enabled, FHIR. With MQTT switched off and no other sink, alerts still wait for MQTT, as they always did
    (nothing is dropped because no sink is configured)."""
    mqtt, fhir = settings.mqtt, settings.fhir
    sinks: list[SinkPolicy] = []
    if mqtt.enabled or not fhir.enabled:
        sinks.append(SinkPolicy(MQTT_SINK, ack_required=mqtt.enabled and mqtt.ack_topic is not None))
    if fhir.enabled:
        sinks.append(SinkPolicy(FHIR_SINK))
    return sinks


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one ``AlertSink.deliver`` call achieved (see the module docstring for the prefix rule)."""

    delivered: tuple[int, ...] = ()  # seqs the receiver took, in order
    rejected: Mapping[int, str] = field(default_factory=dict)  # seq -> why the receiver refused it for good
    error: str | None = None  # why delivery stopped before the end of ``rows`` (transient; retried)

    def finished(self) -> int:
        """How many rows (from the first) the sink is done with, delivered or refused."""
        return len(self.delivered) + len(self.rejected)


class AlertSink(Protocol):
    """One destination for alerts. ``name`` is its outbox sink name (``mqtt``, ``fhir``); ``available`` is
    False while the sink knows it cannot deliver (no broker connection), so its drainer waits for
    ``wait_available`` instead of failing and backing off. ``close`` releases what the sink owns."""

    @property
    def name(self) -> str: ...

    @property
    def available(self) -> bool: ...

    async def wait_available(self, timeout_s: float | None = None) -> bool: ...

    async def deliver(self, rows: Sequence[OutboxRow]) -> DeliveryReport: ...

    async def close(self) -> None: ...
