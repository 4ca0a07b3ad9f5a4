"""The BlazePose 33-landmark schema (names and indices), shared by every pose backend and by gait analysis."""

from __future__ import annotations

from enum import IntEnum


class Landmark(IntEnum):
    """BlazePose GHUM landmark indices, in the model's output order."""

    NOSE = 0
    LEFT_EYE_INNER = 1
    LEFT_EYE = 2
    LEFT_EYE_OUTER = 3
    RIGHT_EYE_INNER = 4
    RIGHT_EYE = 5
    RIGHT_EYE_OUTER = 6
    LEFT_EAR = 7
    RIGHT_EAR = 8
    MOUTH_LEFT = 9
    MOUTH_RIGHT = 10
    LEFT_SHOULDER = 11
    RIGHT_SHOULDER = 12
    LEFT_ELBOW = 13
    RIGHT_ELBOW = 14
    LEFT_WRIST = 15
    RIGHT_WRIST = 16
    LEFT_PINKY = 17
    RIGHT_PINKY = 18
    LEFT_INDEX = 19
    RIGHT_INDEX = 20
    LEFT_THUMB = 21
    RIGHT_THUMB = 22
    LEFT_HIP = 23
    RIGHT_HIP = 24
    LEFT_KNEE = 25
    RIGHT_KNEE = 26
    LEFT_ANKLE = 27
    RIGHT_ANKLE = 28
    LEFT_HEEL = 29
    RIGHT_HEEL = 30
    LEFT_FOOT_INDEX = 31
    RIGHT_FOOT_INDEX = 32


NUM_LANDMARKS = len(Landmark)

# The head's landmarks (eyes, ears, mouth, nose): they move with the head, not with the limbs.
FACE: tuple[Landmark, ...] = (
    Landmark.NOSE,
    Landmark.LEFT_EYE_INNER,
    Landmark.LEFT_EYE,
    Landmark.LEFT_EYE_OUTER,
    Landmark.RIGHT_EYE_INNER,
    Landmark.RIGHT_EYE,
    Landmark.RIGHT_EYE_OUTER,
    Landmark.LEFT_EAR,
    Landmark.RIGHT_EAR,
    Landmark.MOUTH_LEFT,
    Landmark.MOUTH_RIGHT,
)

# Left/right pairs of the legs: the landmarks a pose model most often exchanges between the legs (seen from the
# side they cross twice per stride, and the far leg is occluded). Swap repair (``gaitwatch.pose.temporal``,
# ``gaitwatch.gait.swaps``) and the synthetic pose noise that imitates it (``gaitwatch.gait.offline.synthetic``)
# all read these, so a landmark added here is repaired and simulated alike.
KNEE_PAIRS: tuple[tuple[Landmark, Landmark], ...] = ((Landmark.LEFT_KNEE, Landmark.RIGHT_KNEE),)
FOOT_PAIRS: tuple[tuple[Landmark, Landmark], ...] = (
    (Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE),
    (Landmark.LEFT_HEEL, Landmark.RIGHT_HEEL),
    (Landmark.LEFT_FOOT_INDEX, Landmark.RIGHT_FOOT_INDEX),
)
LEG_PAIRS: tuple[tuple[Landmark, Landmark], ...] = KNEE_PAIRS + FOOT_PAIRS

# Bones drawn by the demo's renderer (pairs of landmark indices).
SKELETON: tuple[tuple[Landmark, Landmark], ...] = (
    (Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER),
    (Landmark.LEFT_SHOULDER, Landmark.LEFT_ELBOW),
    (Landmark.LEFT_ELBOW, Landmark.LEFT_WRIST),
    (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_ELBOW),
    (Landmark.RIGHT_ELBOW, Landmark.RIGHT_WRIST),
    (Landmark.LEFT_SHOULDER, Landmark.LEFT_HIP),
    (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_HIP),
    (Landmark.LEFT_HIP, Landmark.RIGHT_HIP),
    (Landmark.LEFT_HIP, Landmark.LEFT_KNEE),
    (Landmark.LEFT_KNEE, Landmark.LEFT_ANKLE),
    (Landmark.LEFT_ANKLE, Landmark.LEFT_HEEL),
    (Landmark.LEFT_HEEL, Landmark.LEFT_FOOT_INDEX),
    (Landmark.RIGHT_HIP, Landmark.RIGHT_KNEE),
    (Landmark.RIGHT_KNEE, Landmark.RIGHT_ANKLE),
    (Landmark.RIGHT_ANKLE, Landmark.RIGHT_HEEL),
    (Landmark.RIGHT_HEEL, Landmark.RIGHT_FOOT_INDEX),
)
