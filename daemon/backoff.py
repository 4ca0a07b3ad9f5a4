"""Capped exponential backoff with full jitter, shared by every reconnect loop (cameras, MQTT)."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(initial_s: float, max_s: float, rng: random.Random | None = None) -> Iterator[float]:
    """Yield reconnect delays: the ceiling doubles from ``initial_s`` up to ``max_s``; each delay is drawn
    uniformly from [ceiling / 2, ceiling] so that many daemons restarted together do not hammer a camera or a
    broker in lock-step, while a delay never falls below half the ceiling (no busy reconnects)."""
    if initial_s <= 0 or max_s < initial_s:
        raise ValueError(f"need 0 < initial_s <= max_s; got initial_s={initial_s}, max_s={max_s}")
    rng = rng or random.Random()
    ceiling = initial_s
    while True:
        yield rng.uniform(ceiling / 2.0, ceiling)
        ceiling = min(max_s, ceiling * 2.0)
