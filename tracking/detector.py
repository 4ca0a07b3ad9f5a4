"""The person-detector interface the daemon calls; backends (HOG, ONNX) live in their own modules."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from gaitwatch.tracking.types import Detections


class PersonDetector(Protocol):
    """Finds people in one full camera frame.

    ``image`` is the whole frame, BGR uint8 HxWx3 as OpenCV decodes it. The returned boxes are in that frame's
    pixel coordinates (whatever the backend resizes internally), with scores in [0, 1] where higher means more
    certain; the tracker's score thresholds are written against that scale. Implementations are synchronous
    and may be slow (tens of milliseconds). They must be safe to call from several threads at once: the daemon
    shares one detector between its detection threads, which run different cameras' frames side by side.
    """

    def detect(self, image: NDArray[np.uint8]) -> Detections: ...
