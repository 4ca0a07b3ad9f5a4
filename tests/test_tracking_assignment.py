"""Specification of the gated assignment: optimal, gated after solving, input untouched, nothing lost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from gaitwatch.tracking.assignment import assign

costs = st.integers(0, 12).flatmap(
    lambda rows: st.integers(0, 12).flatmap(
        lambda cols: arrays(
            np.float64,
            (rows, cols),
            elements=st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False),
        )
    )
)


def _check_partition(cost: NDArray[np.float64], max_cost: float) -> None:
    before = cost.copy()
    matches, rows, cols = assign(cost, max_cost)
    np.testing.assert_array_equal(cost, before)  # never mutates the caller's matrix
    assert matches.dtype == np.int64 and rows.dtype == np.int64 and cols.dtype == np.int64
    assert matches.shape[1] == 2
    if len(matches):
        assert np.all(cost[matches[:, 0], matches[:, 1]] <= max_cost)
    row_seen = np.concatenate([matches[:, 0], rows])
    col_seen = np.concatenate([matches[:, 1], cols])
    np.testing.assert_array_equal(np.sort(row_seen), np.arange(cost.shape[0]))
    np.testing.assert_array_equal(np.sort(col_seen), np.arange(cost.shape[1]))


@settings(max_examples=300, deadline=None)
@given(cost=costs, max_cost=st.floats(0.0, 2.0))
def test_gate_and_partition_hold_for_any_matrix(cost: NDArray[np.float64], max_cost: float) -> None:
    _check_partition(cost, max_cost)


@settings(max_examples=100, deadline=None)
@given(cost=costs)
def test_without_gate_the_solution_is_optimal(cost: NDArray[np.float64]) -> None:
    matches, _, _ = assign(cost, max_cost=np.inf)
    rows, cols = linear_sum_assignment(cost)
    assert len(matches) == min(cost.shape)
    assert cost[matches[:, 0], matches[:, 1]].sum() == pytest.approx(cost[rows, cols].sum())


def test_gate_is_applied_after_solving() -> None:
    # Optimum of the real costs: (0,1)+(1,0) = 0.55 beats (0,0)+(1,1) = 1.3. The gate then drops (0,1)
    # (0.45 > 0.42) and keeps (1,0); row 0 is not re-paired with column 0 behind the solver's back.
    cost = np.array([[0.4, 0.45], [0.1, 0.9]])
    matches, rows, cols = assign(cost, max_cost=0.42)
    np.testing.assert_array_equal(matches, [[1, 0]])
    np.testing.assert_array_equal(rows, [0])
    np.testing.assert_array_equal(cols, [1])


def test_empty_matrices() -> None:
    for shape in [(0, 0), (0, 3), (4, 0)]:
        matches, rows, cols = assign(np.zeros(shape), 0.5)
        assert matches.shape == (0, 2)
        np.testing.assert_array_equal(rows, np.arange(shape[0]))
        np.testing.assert_array_equal(cols, np.arange(shape[1]))


def test_non_finite_costs_are_never_matched() -> None:
    cost = np.array([[np.inf, 0.1], [0.2, np.nan]])
    before = cost.copy()
    matches, _, _ = assign(cost, max_cost=1e9)
    np.testing.assert_array_equal(matches, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(np.isnan(cost), np.isnan(before))


def test_large_matrices_use_the_same_contract() -> None:
    # Above 100x100 the lap solver is used: same optimum, same gate, same partition.
    rng = np.random.default_rng(3)
    cost = rng.uniform(0.0, 1.0, size=(130, 110))
    _check_partition(cost, 0.3)
    matches, _, _ = assign(cost, max_cost=np.inf)
    rows, cols = linear_sum_assignment(cost)
    assert cost[matches[:, 0], matches[:, 1]].sum() == pytest.approx(cost[rows, cols].sum())


def test_rejects_non_matrix() -> None:
    with pytest.raises(ValueError, match="2-D"):
        assign(np.zeros(3), 0.5)
