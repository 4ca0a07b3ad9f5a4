"""The seam between the pipeline and any pose model (BlazePose via LiteRT now, a torch/ONNX student later)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from gaitwatch.pose.types import Poses


class PoseBackend(Protocol):
    """Estimates one person's landmarks inside each given box of a frame.

    Implementations keep model state (an interpreter, a session) and are NOT thread-safe: one backend instance
    belongs to one inference thread, which may serve crops from several cameras in turn.
    """

    @property
    def name(self) -> str:
        """Short backend identifier for payloads and metrics labels, e.g. ``"blazepose-full"``."""
        ...

    @property
    def model_version(self) -> str:
        """Identifies the exact weights (e.g. a short sha256 of the model file), so results can be traced."""
        ...

    def estimate(self, image: NDArray[np.uint8], track_ids: NDArray[np.int64], xyxy: NDArray[np.float64]) -> Poses:
        """Landmarks for each box of ``image`` (the full BGR HxWx3 frame), one crop per box.

        ``track_ids`` (N,) and ``xyxy`` (N, 4) pixels describe the people to look at. The result has exactly
        one row per input box, in input order, with ``keypoints`` in pixels of ``image``; rows whose crop held
        no person have a low ``presence`` and the caller filters them out.
        """
        ...
