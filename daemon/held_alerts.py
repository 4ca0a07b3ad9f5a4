"""Alerts the outbox could not commit (disk full, database locked, I/O errors), held in memory until it can.

Why: the outbox promises that an outage delays an alert and never loses it, but that promise rests on the
disk. When the disk itself fails, dropping the alert (as a log line nobody reads at 3 a.m.) is the worst
answer: the broker may be perfectly reachable. So an alert that cannot be committed is held here, delivered
at once to every sink that is available, and committed (with each sink's delivery recorded) when the disk
recovers.

Order: while anything is held, every new alert is held too, behind it, so alerts reach the outbox in the
order they were raised. Each held alert gets the sequence number the outbox would have given it (the next
after the outbox's last one), so the ``seq`` an integrator sees now is the one the outbox stores later.

Bounded: at most ``capacity`` alerts (~1 kB each); beyond that an alert is refused and the caller must count
and report it as lost. Not thread-safe: used from the event loop only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from gaitwatch.daemon.outbox import OutboxRow


@dataclass(slots=True)
class HeldAlert:
    """One alert waiting for the disk. ``delivered``: sink name -> when that sink took it; ``rejected``: sink
    name -> why that sink's receiver refused it for good."""

    topic: str
    body: bytes
    alert_id: str
    seq: int
    created_wall: float
    delivered: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    def finished_by(self, sink: str) -> bool:
        return sink in self.delivered or sink in self.rejected

    def finished_by_all(self, sinks: Iterable[str]) -> bool:
        return all(self.finished_by(s) for s in sinks)

    def row(self) -> OutboxRow:
        """As the outbox row it will become (same ``seq``), for a sink's ``deliver``."""
        return OutboxRow(self.seq, self.alert_id, self.topic, self.body, self.created_wall)


class HeldAlerts:
    """FIFO of alerts not yet committed to the outbox (see the module docstring)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1; got {capacity}")
        self.capacity = capacity
        self._queue: deque[HeldAlert] = deque()
        self._last_seq = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        return len(self._queue) >= self.capacity

    def committed_up_to(self, seq: int) -> None:
        """The outbox's newest sequence number (after each commit), so held alerts continue the sequence."""
        self._last_seq = max(self._last_seq, seq)

    def hold(self, topic: str, body: bytes, alert_id: str, created_wall: float) -> HeldAlert | None:
        """Hold an alert; None when full (the alert is lost: the caller must make that loud)."""
        if self.full:
            return None
        self._last_seq += 1
        held = HeldAlert(topic, body, alert_id, self._last_seq, created_wall)
        self._queue.append(held)
        return held

    def unfinished(self, sink: str) -> list[HeldAlert]:
        """Held alerts ``sink`` has neither delivered nor refused, oldest first."""
        return [h for h in self._queue if not h.finished_by(sink)]

    def first(self, n: int) -> list[HeldAlert]:
        """The ``n`` oldest alerts (fewer if fewer are held), oldest first."""
        return [self._queue[i] for i in range(min(n, len(self._queue)))]

    def pop_first(self, n: int = 1) -> None:
        """Remove the ``n`` oldest alerts once they are committed."""
        for _ in range(n):
            self._queue.popleft()
