"""Left/right label repair for one gait window, at any frame rate, from the rhythm of the stride.

Pose models often exchange a person's left and right leg labels for a frame or two (measured on BlazePose full
over the real pedestrians of PETS09-S2L1 at 7 fps, people 55-90 px tall: 14 % of the frames where the feet
were clearly apart had the ankles' labels exchanged, in runs of 1 (75 %), 2 (17 %) or 3 frames; the knees
went with the ankles in 70 % of them). A label swap flips the sign of the left-minus-right separation, which
every side-dependent measure reads (the stride spectrum, heel strikes per foot, step asymmetry). The pose
stage's own online repair (``gaitwatch.pose.temporal``) predicts each limb with constant velocity and must
stand aside below ~10 Hz, where a swinging foot moves too far between frames.

Here the whole window is known, and so is the stride frequency (from a swap-invariant signal, see
``gaitwatch.gait.features``). Between two feet the separation follows the stride: over a couple of strides
around any sample it is well described by ``c + a cos(w t) + b sin(w t)`` (c: the feet's constant lateral
offset, visible in frontal views; a, b: the swing). Each sample is predicted from its neighbours by that model
(a weighted least-squares fit leaving the sample out) and its labels are exchanged when the exchanged
separation lies on the predicted side by more than twice the fit's own residual noise. Fits and decisions are
iterated a few times so that neighbouring swaps stop pulling the fits. Without a stride (a person standing)
the model is a constant over about a second, which repairs the lateral flicker of a standing person's feet.
Measured on generated walkers (jitter 1 % of height, 12 % of frames swapped, side / oblique / frontal views,
step-time CV up to 12 %): of the samples with the feet apart and the labels wrong, 10 % remained at 7 fps,
6 % at 15 fps and 3 % at 30 fps; on clean labels it exchanged none.

Feet (ankle, heel, toe), knees and arms are decided separately, each from its own separation (ankles, knees,
wrists), and image and world landmarks are exchanged together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gaitwatch.gait.types import GaitWindow
from gaitwatch.pose.keypoints import FOOT_PAIRS, KNEE_PAIRS, Landmark

L = Landmark

# Each group: the pairs exchanged together, and the pair whose separation decides.
ARM_PAIRS: tuple[tuple[Landmark, Landmark], ...] = (
    (L.LEFT_ELBOW, L.RIGHT_ELBOW),
    (L.LEFT_WRIST, L.RIGHT_WRIST),
    (L.LEFT_PINKY, L.RIGHT_PINKY),
    (L.LEFT_INDEX, L.RIGHT_INDEX),
    (L.LEFT_THUMB, L.RIGHT_THUMB),
)
GROUPS: tuple[tuple[str, tuple[tuple[Landmark, Landmark], ...], tuple[Landmark, Landmark]], ...] = (
    ("feet", FOOT_PAIRS, (L.LEFT_ANKLE, L.RIGHT_ANKLE)),
    ("knees", KNEE_PAIRS, (L.LEFT_KNEE, L.RIGHT_KNEE)),
    ("arms", ARM_PAIRS, (L.LEFT_WRIST, L.RIGHT_WRIST)),
)

# How many residual noise standard deviations the exchanged labels must fit better by before a sample is
# exchanged: 2 keeps clean data untouched (about 2 % of samples near a crossing, where both labellings put
# the feet in nearly the same place, could flip on noise alone, and such a flip moves nothing much).
_DECISION_SIGMAS = 2.0
_ITERATIONS = 4
# Half-width of the neighbourhood used to predict a sample: this many strides (the tricube weights fall to
# zero there). Measured on generated walkers with 12 % of frames swapped (jitter 1 % of height, step-time CV
# 2-12 %): at 7 fps +-1 stride (about 8 effective samples for 6 unknowns) left 60-70 % of the wrong labels
# where the feet were apart, +-2 strides left 5-10 %; at 15 and 30 fps both left < 2 %, and the wider span
# did not suffer from the stride-to-stride drift of a 12 % CV.
_SPAN_STRIDES = 2.0
# Without a stride (standing), the separation is modelled as constant over +-this many seconds.
_STILL_SPAN_S = 0.6


@dataclass(frozen=True, slots=True)
class SwapRepair:
    """A window with its left/right labels repaired.

    ``window``: the repaired copy (the input itself when nothing was exchanged); ``exchanged`` maps each group
    name ("feet", "knees", "arms") to an (M,) bool array of the samples whose labels were exchanged back;
    ``foot_fraction``: the share of the samples where both ankles were seen that had the feet exchanged (a
    measure of how well the pose model tells the legs apart; 0 on clean data).
    """

    window: GaitWindow
    exchanged: dict[str, NDArray[np.bool_]]
    foot_fraction: float

    @property
    def count(self) -> int:
        return int(sum(int(np.count_nonzero(v)) for v in self.exchanged.values()))


def _loo_predict(
    t: NDArray[np.float64], y: NDArray[np.float64], ok: NDArray[np.bool_], omega: float | None, half_s: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Leave-one-out prediction of every sample of ``y`` (M, C) from its neighbours within ``half_s`` seconds
    (tricube weights), by a constant plus, when ``omega`` is given, one sinusoid of that angular frequency.
    Returns the predictions (M, C) and where a prediction was possible (enough neighbours)."""
    dt = t[None, :] - t[:, None]  # (M, M): neighbour j relative to sample i
    u = np.clip(np.abs(dt) / half_s, 0.0, 1.0)
    w = (1.0 - u**3) ** 3
    w = w * ok[None, :]
    np.fill_diagonal(w, 0.0)
    # The span of {1, cos, sin} does not depend on where the phase is counted from, so one basis in absolute
    # time serves every sample's fit: the normal equations become two matrix products.
    tc = t - t[0]
    basis = (
        np.ones((t.shape[0], 1))
        if omega is None
        else np.stack([np.ones_like(tc), np.cos(omega * tc), np.sin(omega * tc)], axis=1)
    )
    k = basis.shape[1]
    yz = np.where(ok[:, None], y, 0.0)
    a = (w @ (basis[:, :, None] * basis[:, None, :]).reshape(-1, k * k)).reshape(-1, k, k)
    b = (w @ (basis[:, :, None] * yz[:, None, :]).reshape(-1, k * y.shape[1])).reshape(-1, k, y.shape[1])
    weight_sum = w.sum(axis=1)
    # A small ridge keeps one-sided neighbourhoods (the window's ends) solvable.
    a = a + (1e-3 * np.maximum(weight_sum, 1e-9))[:, None, None] * np.eye(k)[None]
    coef = np.linalg.solve(a, b)  # (M, k, C)
    pred: NDArray[np.float64] = np.einsum("ik,ikc->ic", basis, coef)
    # Tricube weights sum to ~0.8 per neighbour inside the span on average: 2.5 k is a few neighbours per
    # parameter; fewer (a sample alone at the edge of a gap) is not predicted.
    enough = weight_sum >= 2.5 * k
    return pred, enough


def _decide(
    t: NDArray[np.float64], sep: NDArray[np.float64], ok: NDArray[np.bool_], f_stride: float | None
) -> NDArray[np.bool_]:
    """Samples whose separation ``sep`` (M, C) is better explained exchanged (sign-flipped)."""
    flip = np.zeros(t.shape[0], dtype=bool)
    if np.count_nonzero(ok) < 6:
        return flip
    if f_stride is not None and f_stride > 0:
        omega: float | None = 2.0 * np.pi * f_stride
        half = _SPAN_STRIDES / f_stride
    else:
        omega, half = None, _STILL_SPAN_S
    for _ in range(_ITERATIONS):
        y = np.where(flip[:, None], -sep, sep)
        pred, enough = _loo_predict(t, y, ok, omega, half)
        use = ok & enough
        if np.count_nonzero(use) < 6:
            return np.zeros_like(flip)
        resid = np.linalg.norm(y - pred, axis=1)[use]
        # Median of a 2-D Gaussian residual's length is 1.177 sigma (Rayleigh).
        sigma = max(float(np.median(resid)) / 1.177, 1e-9)
        norm = np.linalg.norm(pred, axis=1)
        along = np.einsum("ic,ic->i", sep, pred) / np.maximum(norm, 1e-12)
        new = use & (along < -_DECISION_SIGMAS * sigma)
        if np.array_equal(new, flip):
            break
        flip = new
    return flip


def repair_swaps(window: GaitWindow, f_stride: float | None, min_visibility: float) -> SwapRepair:
    """Exchange back the left/right labels of feet, knees and arms where the stride rhythm says the pose model
    swapped them (see the module docstring). ``f_stride`` in Hz (None: the person is not stepping);
    landmarks seen with less than ``min_visibility`` take no part in a decision."""
    kp = window.keypoints
    t = window.t
    m = t.shape[0]
    exchanged: dict[str, NDArray[np.bool_]] = {}
    new_kp: NDArray[np.float32] | None = None
    new_world: NDArray[np.float32] | None = None
    foot_fraction = 0.0
    for name, pairs, (left, right) in GROUPS:
        ok = (kp[:, left, 2] >= min_visibility) & (kp[:, right, 2] >= min_visibility)
        sep = (kp[:, left, :2] - kp[:, right, :2]).astype(np.float64)
        flip = _decide(t, sep, ok, f_stride) if m >= 6 else np.zeros(m, dtype=bool)
        exchanged[name] = flip
        if name == "feet" and np.any(ok):
            foot_fraction = float(np.count_nonzero(flip & ok) / np.count_nonzero(ok))
        if not np.any(flip):
            continue
        if new_kp is None or new_world is None:
            new_kp, new_world = kp.copy(), window.world.copy()
        lefts = np.asarray([int(a) for a, _ in pairs], dtype=np.intp)
        rights = np.asarray([int(b) for _, b in pairs], dtype=np.intp)
        rows = np.flatnonzero(flip)
        for arr, src in ((new_kp, kp), (new_world, window.world)):
            arr[np.ix_(rows, lefts)] = src[np.ix_(rows, rights)]
            arr[np.ix_(rows, rights)] = src[np.ix_(rows, lefts)]
    if new_kp is None or new_world is None:
        return SwapRepair(window, exchanged, foot_fraction)
    repaired = GaitWindow(window.track_id, t, new_kp, new_world)
    return SwapRepair(repaired, exchanged, foot_fraction)
