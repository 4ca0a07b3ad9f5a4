"""Several pose backends behind one thread-safe ``PoseBackend``, so inference threads can run crops at once.

A pose interpreter is not thread-safe and one interpreter on one thread uses one core at most (LiteRT releases
the GIL while it runs, so two interpreters on two threads really use two cores). The daemon keeps one
interpreter per inference thread in a pool: a call borrows an idle one for the duration of one frame's crops.
"""

from __future__ import annotations

import queue
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.types import Poses


class PoseBackendPool:
    """``size`` backends made by ``make``; ``estimate`` may be called from up to ``size`` threads at once
    without waiting (more callers wait for a backend to come back)."""

    def __init__(self, make: Callable[[], PoseBackend], size: int) -> None:
        if size < 1:
            raise ValueError(f"PoseBackendPool needs at least one backend; got size={size}")
        self._backends = [make() for _ in range(size)]
        first = self._backends[0]
        self._name = first.name
        self._model_version = first.model_version
        self._idle: queue.SimpleQueue[PoseBackend] = queue.SimpleQueue()
        for backend in self._backends:
            self._idle.put(backend)

    @property
    def size(self) -> int:
        return len(self._backends)

    @property
    def name(self) -> str:
        return self._name

    @property
    def model_version(self) -> str:
        return self._model_version

    def estimate(self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
        backend = self._idle.get()
        try:
            return backend.estimate(image, track_ids, xyxy)
        finally:
            self._idle.put(backend)
