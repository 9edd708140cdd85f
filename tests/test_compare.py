"""The numbers parity reports, on arrays whose differences are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envrepro.compare import EXACT, Tolerance, compare_output, default_tolerance, max_ulp

F32 = default_tolerance("float32")


def probs(rows: int = 6, classes: int = 4, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).random((rows, classes)).astype(np.float32)
    return x / x.sum(axis=1, keepdims=True)


def test_identical_outputs_pass_with_zero_error():
    ref = probs()
    result = compare_output("probs", ref, ref.copy(), F32)
    assert result.passed
    assert result.max_abs_error == 0.0
    assert result.max_ulp == 0
    assert result.min_passing_atol == 0.0
    assert result.argmax_agreement == 1.0


def test_a_one_ulp_change_is_measured_as_one_ulp():
    ref = np.array([1.0, 2.0, -3.0], dtype=np.float32)
    cand = np.nextafter(ref, np.float32(np.inf))
    result = compare_output("y", ref, cand, EXACT)
    assert result.max_ulp == 1
    assert not result.passed
    assert result.min_passing_atol == pytest.approx(float(np.spacing(np.float32(3.0))))


def test_ulp_distance_across_zero_counts_both_sides():
    assert max_ulp(np.float32([0.0]), np.float32([-0.0])) == 0
    tiny = np.float32([np.finfo(np.float32).smallest_subnormal])
    assert max_ulp(tiny, -tiny) == 2


def test_smallest_passing_atol_is_exactly_the_threshold():
    ref = np.array([0.0, 10.0], dtype=np.float32)
    cand = np.array([1e-4, 10.0 + 5e-3], dtype=np.float32)
    result = compare_output("y", ref, cand, Tolerance(atol=0.0, rtol=1e-4))
    # element 1 needs 5e-3 - 1e-4*10 = 4e-3; element 0 needs 1e-4
    assert result.min_passing_atol == pytest.approx(4e-3, rel=1e-3)
    assert not result.passed
    assert compare_output("y", ref, cand, Tolerance(atol=4.01e-3, rtol=1e-4)).passed


def test_zeros_in_the_reference_do_not_explode_the_relative_error():
    ref = np.zeros(4, dtype=np.float32)
    cand = np.full(4, 1e-7, dtype=np.float32)
    result = compare_output("y", ref, cand, F32)
    assert result.passed
    assert result.max_rel_error == pytest.approx(1e-7 / F32.atol, rel=1e-3)
    assert math.isfinite(result.max_rel_error)


def test_nan_in_different_places_fails_and_is_counted():
    ref = np.array([1.0, np.nan, 3.0], dtype=np.float32)
    cand = np.array([1.0, 2.0, np.nan], dtype=np.float32)
    result = compare_output("y", ref, cand, F32)
    assert not result.passed
    assert result.reason == "NaN in different places"
    assert (result.reference_nan, result.candidate_nan) == (1, 1)
    assert math.isinf(result.min_passing_atol)


def test_nan_in_the_same_places_passes():
    ref = np.array([1.0, np.nan], dtype=np.float32)
    assert compare_output("y", ref, ref.copy(), F32).passed


def test_inf_with_another_sign_fails():
    ref = np.array([np.inf, 1.0], dtype=np.float32)
    cand = np.array([-np.inf, 1.0], dtype=np.float32)
    result = compare_output("y", ref, cand, F32)
    assert result.reason == "Inf in different places"


def test_a_shape_change_fails_without_measuring():
    result = compare_output("y", np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32), F32)
    assert not result.passed
    assert result.reason == "shape differs"
    assert result.candidate_shape == (4, 2)


def test_classifier_outputs_report_argmax_and_topk_agreement():
    ref = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], dtype=np.float32)
    cand = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    result = compare_output("probs", ref, cand, F32)
    assert result.argmax_agreement == 0.5
    assert result.top_k == 2
    assert result.topk_agreement == 1.0  # {1, 2} in both rows' top 2
    assert not result.passed


def test_integer_outputs_must_match_exactly():
    ref = np.array([1, 2, 3], dtype=np.int64)
    result = compare_output("ids", ref, np.array([1, 2, 4], dtype=np.int64), default_tolerance("int64"))
    assert not result.passed
    assert result.reason == "1 of 3 values differ"


def test_the_onednn_sized_drift_passes_the_float32_default():
    ref = probs(64, 10)
    cand = (ref.astype(np.float64) + 5.96e-8).astype(np.float32)
    result = compare_output("probs", ref, cand, F32)
    assert result.passed
    assert 0 < result.max_abs_error < 1e-7
