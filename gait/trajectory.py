"""Per-track keypoint history, bounded in seconds, from which gait windows are cut."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.types import GaitWindow
from gaitwatch.pose.keypoints import NUM_LANDMARKS

# Initial ring capacity in samples; the ring doubles when a burst of frames (a faster camera than expected)
# fills it before old samples age out, so the bound is always in seconds, never in frames.
_INITIAL_CAPACITY = 256


class TrajectoryBuffer:
    """A ring of one track's (t, keypoints, world) samples, holding at most ``max_seconds`` of history.

    Storage is three preallocated numpy arrays (no per-sample Python objects). Samples older than
    ``t_last - max_seconds`` are dropped on every append. ``max_seconds`` trades memory for the longest window
    that can be served: keep it at least ``window_s + hop_s``.
    """

    __slots__ = ("_head", "_kp", "_max_seconds", "_size", "_t", "_world", "track_id")

    def __init__(self, max_seconds: float, track_id: int = 0) -> None:
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0; got {max_seconds}")
        self._max_seconds = float(max_seconds)
        self.track_id = track_id
        self._t = np.zeros(_INITIAL_CAPACITY, dtype=np.float64)
        self._kp = np.zeros((_INITIAL_CAPACITY, NUM_LANDMARKS, 3), dtype=np.float32)
        self._world = np.zeros((_INITIAL_CAPACITY, NUM_LANDMARKS, 3), dtype=np.float32)
        self._head = 0  # index of the oldest sample
        self._size = 0

    @property
    def max_seconds(self) -> float:
        return self._max_seconds

    def __len__(self) -> int:
        return self._size

    @property
    def t_first(self) -> float | None:
        return float(self._t[self._head]) if self._size else None

    @property
    def t_last(self) -> float | None:
        return float(self._t[(self._head + self._size - 1) % self._t.shape[0]]) if self._size else None

    def clear(self) -> None:
        """Forget every sample (e.g. at a track re-birth, so a window never spans two lives)."""
        self._head = 0
        self._size = 0

    def append(self, t: float, keypoints: NDArray[np.float32], world: NDArray[np.float32]) -> None:
        """Add one sample. ``t`` must be finite and later than the last sample's (raises ValueError
        otherwise); ``keypoints`` (33, 3) image x, y px and visibility; ``world`` (33, 3) metres."""
        if keypoints.shape != (NUM_LANDMARKS, 3) or world.shape != (NUM_LANDMARKS, 3):
            raise ValueError(
                f"keypoints and world must be ({NUM_LANDMARKS}, 3); got {keypoints.shape} and {world.shape}"
            )
        if not np.isfinite(t):
            raise ValueError(f"t must be finite; got {t}")
        last = self.t_last
        if last is not None and t <= last:
            raise ValueError(f"t must increase: {t} after {last}")
        self._evict_before(t - self._max_seconds)
        cap = self._t.shape[0]
        if self._size == cap:
            self._grow()
            cap = self._t.shape[0]
        i = (self._head + self._size) % cap
        self._t[i] = t
        self._kp[i] = keypoints
        self._world[i] = world
        self._size += 1

    def times(self) -> NDArray[np.float64]:
        """All held sample times, oldest first (a copy)."""
        return self._t[self._order()]

    def window(self, duration_s: float, end_t: float) -> GaitWindow | None:
        """The samples with ``end_t - duration_s <= t <= end_t`` as a GaitWindow (copies), or None when fewer
        than two samples fall in it. A window reaching back past ``max_seconds`` is silently shorter."""
        if self._size < 2:
            return None
        order = self._order()
        t = self._t[order]
        lo = int(np.searchsorted(t, end_t - duration_s, side="left"))
        hi = int(np.searchsorted(t, end_t, side="right"))
        if hi - lo < 2:
            return None
        idx = order[lo:hi]
        return GaitWindow(
            track_id=self.track_id,
            t=t[lo:hi].copy(),
            keypoints=self._kp[idx],
            world=self._world[idx],
        )

    def _order(self) -> NDArray[np.intp]:
        return (self._head + np.arange(self._size)) % self._t.shape[0]

    def _evict_before(self, t_min: float) -> None:
        # Amortised O(1): each sample is dropped once, usually one per append at a steady frame rate.
        cap = self._t.shape[0]
        while self._size and self._t[self._head] < t_min:
            self._head = (self._head + 1) % cap
            self._size -= 1

    def _grow(self) -> None:
        order = self._order()
        cap = 2 * self._t.shape[0]
        t = np.zeros(cap, dtype=np.float64)
        kp = np.zeros((cap, NUM_LANDMARKS, 3), dtype=np.float32)
        world = np.zeros((cap, NUM_LANDMARKS, 3), dtype=np.float32)
        t[: self._size] = self._t[order]
        kp[: self._size] = self._kp[order]
        world[: self._size] = self._world[order]
        self._t, self._kp, self._world = t, kp, world
        self._head = 0
