"""The pose backend pool: several inference threads at once, each crop estimated by an interpreter no other
thread is using, results identical to one backend run frame by frame."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from gaitwatch.pose.backend import PoseBackend
from gaitwatch.pose.blazepose import BlazePoseBackend, BlazePoseSettings
from gaitwatch.pose.pool import PoseBackendPool
from gaitwatch.pose.types import Poses
from gaitwatch.tools.demo import shipped_clip
from gaitwatch.tracking.hog import HogPersonDetector

Sample = tuple[NDArray[np.uint8], NDArray[np.float64]]


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    """Real frames of the shipped demo clip with the boxes of the people HOG finds in them."""
    capture = cv2.VideoCapture(str(shipped_clip()))
    detector = HogPersonDetector()
    out: list[Sample] = []
    while len(out) < 12:
        ok, read = capture.read()
        assert ok, "the demo clip ended before 12 frames with people"
        image = np.asarray(read, dtype=np.uint8)
        boxes = detector.detect(image).xyxy
        if len(boxes) >= 2:
            out.append((image, boxes))
    capture.release()
    return out


def _lite() -> PoseBackend:
    return BlazePoseBackend(BlazePoseSettings(model="lite"))


def _estimate(backend: PoseBackend, sample: Sample) -> Poses:
    image, boxes = sample
    return backend.estimate(image, np.arange(len(boxes), dtype=np.int64), boxes)


def test_pool_called_from_threads_matches_one_backend_sequentially(samples: list[Sample]) -> None:
    """If two threads ever shared an interpreter, one thread's input tensor would be overwritten by the other's
    and its landmarks would belong to another person's crop."""
    expected = [_estimate(_lite(), s) for s in samples]
    pool = PoseBackendPool(_lite, 2)
    start = threading.Barrier(4)

    def worker(offset: int) -> list[tuple[int, Poses]]:
        start.wait()
        done = []
        for _ in range(3):
            for i in range(offset, len(samples), 4):
                done.append((i, _estimate(pool, samples[i])))
        return done

    with ThreadPoolExecutor(max_workers=4) as threads:
        results = [r for rs in threads.map(worker, range(4)) for r in rs]
    assert len(results) == 3 * len(samples)
    for i, poses in results:
        np.testing.assert_allclose(poses.keypoints, expected[i].keypoints, atol=1e-3)
        np.testing.assert_array_equal(poses.track_ids, expected[i].track_ids)


def test_pool_lends_each_backend_to_one_caller_at_a_time(samples: list[Sample]) -> None:
    """With as many threads as backends, every thread gets its own interpreter: a thread's calls never find
    the backend they borrowed in use by another thread."""
    in_use: set[int] = set()
    clash = threading.Event()
    guard = threading.Lock()

    class Watched:
        """A real backend that notes who is inside it."""

        def __init__(self) -> None:
            self.inner = _lite()
            self.name, self.model_version = self.inner.name, self.inner.model_version

        def estimate(self, image: NDArray[np.uint8], ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
            with guard:
                if id(self) in in_use:
                    clash.set()
                in_use.add(id(self))
            try:
                return self.inner.estimate(image, ids, xyxy)
            finally:
                with guard:
                    in_use.discard(id(self))

    pool = PoseBackendPool(Watched, 2)
    assert pool.size == 2 and pool.name == "blazepose-lite"
    with ThreadPoolExecutor(max_workers=3) as threads:
        list(threads.map(lambda s: _estimate(pool, s), samples * 2))
    assert not clash.is_set()


def test_one_callers_crops_split_across_idle_backends_come_back_in_order(samples: list[Sample]) -> None:
    """One camera's frame with several people uses both interpreters when the other inference thread is idle:
    the crops run on two threads at once and the rows come back as one backend would give them."""
    threads_seen: dict[int, set[str]] = {}

    class Noted:
        """A real backend that notes which thread runs it."""

        def __init__(self) -> None:
            self.inner = _lite()
            self.name, self.model_version = self.inner.name, self.inner.model_version
            threads_seen[id(self)] = set()

        def estimate(self, image: NDArray[np.uint8], ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
            threads_seen[id(self)].add(threading.current_thread().name)
            return self.inner.estimate(image, ids, xyxy)

    single = _lite()
    split = PoseBackendPool(Noted, 2)
    for sample in samples:
        expected, got = _estimate(single, sample), _estimate(split, sample)
        np.testing.assert_array_equal(got.track_ids, expected.track_ids)
        np.testing.assert_allclose(got.keypoints, expected.keypoints, atol=1e-3)
        np.testing.assert_allclose(got.presence, expected.presence, atol=1e-4)
        assert split.helper_cpu_s() > 0.0, "the helper thread's share of the work is reported to the caller"
    names = set().union(*threads_seen.values())
    assert any(n.startswith("inference-pose-split") for n in names) and threading.current_thread().name in names

    whole = PoseBackendPool(Noted, 2, split_idle=False)
    _estimate(whole, samples[0])
    assert whole.helper_cpu_s() == 0.0


def test_pool_needs_a_backend() -> None:
    with pytest.raises(ValueError, match="at least one backend"):
        PoseBackendPool(_lite, 0)
