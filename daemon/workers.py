"""The inference and detection threads, watched: each busy thread records when its current job began, so the
watchdog can tell a hung model from a slow queue.

Each camera has at most one frame in flight, so the inference threads run different cameras side by side and
every camera's tracker and trajectories still see its frames in order. Person detection has its own threads
(as many, sharing the thread-safe detector): one camera's HOG pass overlaps other cameras' pose inference, and
a camera never waits for a busy detector while a core could take it; per camera, frames still go through
detect -> process in order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class WatchedWorkers:
    """``threads`` inference threads and as many detection threads (``service.inference_threads``)."""

    def __init__(self, threads: int) -> None:
        self._inference = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inference")
        self._detection = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="detection")
        # When each busy thread began its current job, by thread id (written only by that thread).
        self._started: dict[int, float] = {}

    async def infer(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (pose, tracking, gait) on an inference thread."""
        return await self._run(self._inference, fn)

    async def detect(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (person detection) on a detection thread."""
        return await self._run(self._detection, fn)

    def oldest_job_started(self) -> float | None:
        """When the longest-running job now in progress began (``time.monotonic()``); None when all are idle.
        The thread itself records it, so a hung job shows even while other cameras' jobs queue behind it."""
        # copy(): one atomic step, while the threads add and remove their entries.
        return min(self._started.copy().values(), default=None)

    def shutdown(self) -> None:
        """Wait for the jobs in progress, then stop the threads."""
        self._inference.shutdown(wait=True)
        self._detection.shutdown(wait=True)

    async def _run(self, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        def job() -> T:
            thread = threading.get_ident()
            self._started[thread] = time.monotonic()
            try:
                return fn()
            finally:
                del self._started[thread]

        return await asyncio.get_running_loop().run_in_executor(executor, job)
