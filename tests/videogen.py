"""Generated test videos: frames whose index can be read back from the decoded image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

BITS = 10
BLOCK = 32


def numbered_frame(index: int, width: int = 320, height: int = 240) -> NDArray[np.uint8]:
    """A grey frame with ``index`` written as BITS black/white blocks across the top row."""
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        image[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = value
    return image


def read_index(image: NDArray[np.uint8]) -> int:
    index = 0
    for bit in range(BITS):
        block = image[4 : BLOCK - 4, bit * BLOCK + 4 : (bit + 1) * BLOCK - 4]
        if float(block.mean()) > 128:
            index |= 1 << bit
    return index


def write_numbered_video(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (320, 240))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for i in range(frames):
        writer.write(numbered_frame(i))
    writer.release()
    return path
