"""What one daemon run did, counted by the service's parts (cameras, delivery, reloads) in one place."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ServiceCounters:
    """What the daemon did, for the demo's summary line, benchmarks and tests."""

    frames: int = 0
    frame_errors: int = 0
    gait_windows: int = 0
    alerts: int = 0  # alert messages raised (every phase, clinical and technical), stored or not
    alerts_stored: int = 0  # of those, committed to the outbox
    alerts_held: int = 0  # of those, held in memory because the outbox could not commit them
    reloads: int = 0  # SIGHUP reloads applied
    reloads_refused: int = 0  # SIGHUP reloads refused (invalid config)
    confirmed_tracks: set[tuple[str, int]] = field(default_factory=set)
