"""Column factors of the scoring criteria against pure-torch references and hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch_stack  # skips without torch; under CI=true that fails (tests/torch_stack.py)

from amber_sim.errors import InputError
from amber_sim.pruning import criteria as C


@pytest.fixture(scope="module")
def torch():
    return torch_stack.importorskip("torch")


def torch_amber(torch, w):
    norms = torch.linalg.vector_norm(torch.from_numpy(w).double(), dim=0)
    return (norms / norms[norms > 0].min()).float().numpy()


def torch_robust(torch, w):
    wt = torch.from_numpy(w).double()
    q = torch.quantile(wt.flatten(), torch.tensor([0.005, 0.995], dtype=torch.float64))
    inside = wt[(wt >= q[0]) & (wt <= q[1])]
    w_hat = (wt - inside.mean()) / inside.std(correction=0)
    norms = torch.linalg.vector_norm(w_hat, dim=0)
    return (norms / norms[norms > 0].min()).float().numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_factors_match_torch(torch, seed, dtype):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((300, 64)) * rng.uniform(0.1, 4.0, 64) + 0.05).astype(dtype)
    w[rng.integers(0, 300, 5), rng.integers(0, 64, 5)] = 40.0  # outliers
    np.testing.assert_array_equal(C.amber_factors(w), torch_amber(torch, w))
    np.testing.assert_array_equal(C.robust_norm_factors(w), torch_robust(torch, w))
    assert C.amber_factors(w).dtype == np.float32 and C.amber_factors(w).min() == 1.0
    # var-weight: torch.var over the output rows (ddof 1, as the paper's code); float64 sums in another order,
    # then float32: within a few float32 ulps
    variance = torch.var(torch.from_numpy(w).double(), dim=0)
    np.testing.assert_allclose(C.weight_variance_factors(w), (variance / variance[variance > 0].min()).numpy(),
                               rtol=3e-7)


def test_var_weight_golden():
    """Columns [1, 3] and [2, 2] and [0, 4]: variances (ddof 1) 2, 0 and 8; normalised by the smallest nonzero
    (2): 1, 0, 4. A single output row has no variance: every factor 1."""
    w = np.array([[1.0, 2.0, 0.0], [3.0, 2.0, 4.0]])
    np.testing.assert_array_equal(C.weight_variance_factors(w), [1.0, 0.0, 4.0])
    np.testing.assert_array_equal(C.column_factor("var-weight", w), [1.0, 0.0, 4.0])
    np.testing.assert_array_equal(C.weight_variance_factors(np.ones((1, 3))), np.ones(3, np.float32))


def test_robust_stats_exclude_outliers_but_do_not_clip_them():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((200, 16)) + 0.5
    w = base.copy()
    w[0, 3] = 1e4  # one huge weight: outside the 99.5 % quantile
    flat = w.ravel()
    lo, hi = np.quantile(flat, [0.005, 0.995])
    inside = flat[(flat >= lo) & (flat <= hi)]
    assert 1e4 not in inside
    mean, std = inside.mean(), inside.std()
    norms = np.sqrt((((w - mean) / std) ** 2).sum(axis=0))
    np.testing.assert_allclose(C.robust_norm_factors(w), norms / norms.min(), rtol=1e-6)
    # not clipped: the outlier column still dominates
    assert np.argmax(C.robust_norm_factors(w)) == 3
    # the statistics barely move with the outlier; a plain mean would
    assert abs(mean - base.mean()) < 0.05 and abs(w.mean() - base.mean()) > 1.0


def test_robust_differs_from_amber_when_weights_have_an_offset():
    w = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.2, 2.2]])
    amber = C.amber_factors(w)
    robust = C.robust_norm_factors(w)
    assert amber[1] > 1.5 and not np.allclose(amber, robust)


def test_zero_columns_guard():
    w = np.array([[0.0, 3.0, 4.0], [0.0, 4.0, 3.0]])
    np.testing.assert_array_equal(C.amber_factors(w), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(C.amber_factors(np.zeros((3, 4))), np.ones(4, np.float32))
    np.testing.assert_array_equal(C.normalise_by_min(np.array([0.0, 2.0, 6.0])), [0.0, 1.0, 3.0])
    # constant weights: std of the kept entries is 0 -> taken as 1, all columns (W - mean) = 0 -> ones
    np.testing.assert_array_equal(C.robust_norm_factors(np.full((4, 3), 2.0)), np.ones(3, np.float32))


def test_column_factor_dispatch_and_errors():
    w = np.random.default_rng(0).standard_normal((8, 4))
    assert C.column_factor("magnitude", w) is None
    assert C.column_factor("clact") is None
    np.testing.assert_array_equal(C.column_factor("amber", w), C.amber_factors(w))
    np.testing.assert_array_equal(C.column_factor("amber-robust", w), C.robust_norm_factors(w))
    with pytest.raises(InputError, match="expected one of magnitude, amber, amber-robust, clact, var-weight"):
        C.column_factor("wanda", w)
    with pytest.raises(InputError, match="needs the layer weight"):
        C.column_factor("amber")
    bad = w.copy()
    bad[1, 1] = np.nan
    with pytest.raises(InputError, match="NaN or Inf"):
        C.amber_factors(bad)
    with pytest.raises(InputError, match="2-D array"):
        C.amber_factors(np.ones(5))
    with pytest.raises(InputError, match="float array"):
        C.robust_norm_factors(np.ones((2, 2), np.int32))
    with pytest.raises(InputError, match="quantiles"):
        C.robust_norm_factors(w, quantiles=(0.9, 0.1))


def test_clact_factors_match_torch(torch):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((50, 32)).astype(np.float16)
    ref = torch.linalg.vector_norm(torch.from_numpy(x).double(), dim=0).float().numpy()
    np.testing.assert_array_equal(C.clact_factors(x, "layer0"), ref)
    bits = (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    tb = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
    ref_bf = torch.linalg.vector_norm(tb.double(), dim=0).float().numpy()
    np.testing.assert_array_equal(C.clact_factors(bits, "layer0", dtype="bfloat16"), ref_bf)
