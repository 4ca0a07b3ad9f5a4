"""Several pose backends behind one thread-safe ``PoseBackend``, so inference threads can run crops at once.

A pose interpreter is not thread-safe and one interpreter on one thread uses one core at most (LiteRT releases
the GIL while it runs, so two interpreters on two threads really use two cores). The daemon keeps one
interpreter per inference thread in a pool: a call borrows an idle one for the duration of one frame's crops.

A frame with several crops also borrows the backends that are idle at that moment and splits its crops across
them (``split_idle``): one camera whose frames come one at a time (its frames go through one inference thread,
in order) then uses both cores when the other inference thread has nothing to do, instead of being capped at
one core. With several busy cameras no backend is idle and nothing changes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.types import Poses


class PoseBackendPool:
    """``size`` backends made by ``make``; ``estimate`` may be called from up to ``size`` threads at once
    without waiting (more callers wait for a backend to come back). ``split_idle``: a call's crops are split
    across the backends idle when it starts, run by the pool's own helper threads beside the caller."""

    def __init__(self, make: Callable[[], PoseBackend], size: int, split_idle: bool = True) -> None:
        if size < 1:
            raise ValueError(f"PoseBackendPool needs at least one backend; got size={size}")
        self._backends = [make() for _ in range(size)]
        first = self._backends[0]
        self._name = first.name
        self._model_version = first.model_version
        self._idle: queue.SimpleQueue[PoseBackend] = queue.SimpleQueue()
        for backend in self._backends:
            self._idle.put(backend)
        # Named like the inference threads: their CPU is the inference threads' (the bench's thread roles).
        self._helpers = (
            ThreadPoolExecutor(max_workers=size - 1, thread_name_prefix="inference-pose-split")
            if split_idle and size > 1
            else None
        )
        # Per calling thread: the CPU seconds helper threads spent on its last call (the caller's own thread
        # time does not include them).
        self._local = threading.local()

    @property
    def size(self) -> int:
        return len(self._backends)

    @property
    def name(self) -> str:
        return self._name

    @property
    def model_version(self) -> str:
        return self._model_version

    def helper_cpu_s(self) -> float:
        """CPU seconds the helper threads spent on this thread's last ``estimate`` call."""
        return float(getattr(self._local, "helper_cpu_s", 0.0))

    def estimate(self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
        self._local.helper_cpu_s = 0.0
        backend = self._idle.get()
        extra: list[PoseBackend] = []
        futures: list[Future[tuple[Poses, float]]] = []
        try:
            n = int(track_ids.shape[0])
            while self._helpers is not None and len(extra) + 1 < min(self.size, n):
                try:
                    extra.append(self._idle.get_nowait())
                except queue.Empty:
                    break
            if not extra:
                return backend.estimate(image, track_ids, xyxy)
            # Contiguous chunks, so the rows come back in input order.
            chunks = np.array_split(np.arange(n), len(extra) + 1)
            helpers = self._helpers
            assert helpers is not None
            futures = [
                helpers.submit(_timed, other, image, track_ids[rows], xyxy[rows])
                for other, rows in zip(extra, chunks[1:], strict=True)
            ]
            parts = [backend.estimate(image, track_ids[chunks[0]], xyxy[chunks[0]])]
            for future in futures:
                poses, cpu_s = future.result()
                parts.append(poses)
                self._local.helper_cpu_s += cpu_s
            return Poses(
                np.concatenate([p.track_ids for p in parts]),
                np.concatenate([p.keypoints for p in parts]),
                np.concatenate([p.world for p in parts]),
                np.concatenate([p.presence for p in parts]),
            )
        finally:
            wait(futures)  # a backend goes back only once no thread runs it any more (also after an error)
            self._idle.put(backend)
            for other in extra:
                self._idle.put(other)


def _timed(
    backend: PoseBackend, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64]
) -> tuple[Poses, float]:
    started = time.thread_time()
    poses = backend.estimate(image, track_ids, xyxy)
    return poses, time.thread_time() - started
