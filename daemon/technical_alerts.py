"""The daemon's own (technical) alert types, named once here; payloads carry the value.

Adding one touches three files: a member here, the part of the daemon that raises it, and its value and meaning
in config/alert.schema.json (a test checks the schema lists exactly these)."""

from __future__ import annotations

from enum import StrEnum


class TechnicalAlertType(StrEnum):
    CAMERA_OFFLINE = "camera_offline"  # no frame for the camera's stale_after_s
    CAMERA_DEGRADED = "camera_degraded"  # frames arrive, but fewer than min_processed_fps get processed
    OUTBOX_FULL = "outbox_full"  # alerts refused: max_rows undelivered alerts fill the outbox
    OUTBOX_UNAVAILABLE = "outbox_unavailable"  # the disk refuses commits: alerts held in memory
    TEST = "test"  # raised by tools and fault-injection tests through Service.emit_technical_alert
