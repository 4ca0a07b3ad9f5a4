"""The person-detector interface the daemon calls; backends (HOG, ONNX) live in their own modules."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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


@runtime_checkable
class RegionAwareDetector(PersonDetector, Protocol):
    """A detector that scans search regions (``gaitwatch.tracking.search_regions``) otherwise than whole frames:
    ``detect_region`` runs on each region's crop, ``frame_height`` being the height of the frame it was cut
    from (so the detector can tell a region that may hold a near person from one around a far one)."""

    def detect_region(self, crop: NDArray[np.uint8], frame_height: int) -> Detections: ...


@runtime_checkable
class BetweenScansDetector(PersonDetector, Protocol):
    """A detector whose every-detection part looks at the whole frame, while other parts wait for the search-region
    planner's whole-frame scans: ``detect_between_scans`` runs in place of the region scans. For a network whose
    pass costs the same on a region's crop as on a frame, scanning regions would only multiply its passes."""

    def detect_between_scans(self, image: NDArray[np.uint8]) -> Detections: ...
