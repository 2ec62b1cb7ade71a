"""N:M activation-pruning kernels: exact agreement with a pure-torch reference, properties, errors.

References live here: ``torch_prune`` (torch.sort with stable keys per group: exact with ties
too), ``torch_topk_prune`` (torch.topk: only for tie-free inputs) and a NumPy stable-sort
reference used by the hypothesis properties.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import torch_stack  # skips without torch; under CI=true that fails (tests/torch_stack.py)

from amber_sim.errors import InputError
from amber_sim.pruning import kernels as K
from amber_sim.pruning.criteria import amber_factors, robust_norm_factors
from amber_sim.pruning.patterns import parse_pattern

PATTERNS = [(2, 4), (4, 8), (8, 16), (16, 32), (1, 4), (3, 8), (5, 64)]
DTYPES = ["float32", "float16", "bfloat16"]
CRITERIA = ["magnitude", "amber", "amber-robust", "clact"]
ABS_MASK = {"float32": 0x7FFFFFFF, "float16": 0x7FFF, "bfloat16": 0x7FFF}
PROPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- helpers / fixtures


@pytest.fixture(scope="module")
def torch():
    return torch_stack.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    K.warmup()  # compile / load the on-disk cache once, outside the timed hypothesis examples


def to_dtype(values_f32: np.ndarray, dtype: str) -> tuple[np.ndarray, str | None]:
    """(array the kernels take, dtype argument): bf16 as uint16 bits (round toward zero)."""
    if dtype == "float32":
        return np.ascontiguousarray(values_f32, np.float32), None
    if dtype == "float16":
        return np.ascontiguousarray(values_f32, np.float16), None
    bits = (np.ascontiguousarray(values_f32, np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return bits, "bfloat16"


def to_f32(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (x.astype(np.uint32) << 16).view(np.float32)
    return x.astype(np.float32)


def bits(x: np.ndarray) -> np.ndarray:
    return x.view(np.uint32 if x.dtype.itemsize == 4 else np.uint16)


def to_torch(torch, x: np.ndarray, dtype: str):
    t = torch.from_numpy(x.copy())
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


def from_torch(torch, t, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def torch_prune(torch, x_t, n, m, factor=None):
    """Pure-torch N:M reference: stable descending sort per group, first n kept (lower index wins)."""
    rows, k = x_t.shape
    score = x_t.abs().float()
    if factor is not None:
        score = score * torch.as_tensor(factor, dtype=torch.float32)
    groups = score.reshape(rows, k // m, m)
    idx = torch.sort(groups, dim=-1, descending=True, stable=True).indices[..., :n]
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, idx, True).reshape(rows, k)
    return torch.where(mask, x_t, torch.zeros((), dtype=x_t.dtype))


def torch_topk_prune(torch, x_t, n, m, factor=None):
    """The natural torch.topk formulation (tie order unspecified: tie-free inputs only)."""
    rows, k = x_t.shape
    score = x_t.abs().float()
    if factor is not None:
        score = score * torch.as_tensor(factor, dtype=torch.float32)
    groups = score.reshape(rows, k // m, m)
    idx = torch.topk(groups, n, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, idx, True).reshape(rows, k)
    return torch.where(mask, x_t, torch.zeros((), dtype=x_t.dtype))


def torch_factor(torch, criterion, w, x_t):
    """Pure-torch column factor of each criterion (float64 math, float32 result)."""
    if criterion == "magnitude":
        return None
    if criterion == "clact":
        return torch.linalg.vector_norm(x_t.double(), dim=0).float().numpy()
    wt = torch.from_numpy(w).double()
    if criterion == "amber-robust":
        q = torch.quantile(wt.flatten(), torch.tensor([0.005, 0.995], dtype=torch.float64))
        inside = wt[(wt >= q[0]) & (wt <= q[1])]
        wt = (wt - inside.mean()) / inside.std(correction=0)
    norms = torch.linalg.vector_norm(wt, dim=0)
    return (norms / norms[norms > 0].min()).float().numpy()


def kernel_factor(criterion, w, x, dtype):
    if criterion == "magnitude":
        return None
    if criterion == "clact":
        return K.column_norms(x, dtype=dtype)
    return amber_factors(w) if criterion == "amber" else robust_norm_factors(w)


def tie_free_activation(rng, rows, k, m, dtype):
    """Each group holds distinct magnitudes (1..m times a power of two per row), random signs."""
    mags = np.stack([rng.permutation(m) + 1 for _ in range(rows * (k // m))]).reshape(rows, k).astype(np.float32)
    mags *= 2.0 ** rng.integers(-3, 4, size=(rows, 1))
    return to_dtype(mags * rng.choice([-1.0, 1.0], size=(rows, k)), dtype)


def assert_tie_free(torch, x_t, m, factor):
    score = x_t.abs().float()
    if factor is not None:
        score = score * torch.as_tensor(factor)
    srt = torch.sort(score.reshape(score.shape[0], -1, m), dim=-1).values
    assert bool((srt[..., 1:] > srt[..., :-1]).all()), "test input has ties; the topk reference needs none"


def numpy_prune(x, dtype, n, m, factor=None):
    """NumPy reference with the kernels' tie rule (stable sort), any input."""
    score = np.abs(to_f32(x, dtype)) * (np.float32(1) if factor is None else factor.astype(np.float32))
    rows, k = x.shape
    g = score.reshape(rows, k // m, m)
    order = np.argsort(-g, axis=-1, kind="stable")[..., :n]
    mask = np.zeros(g.shape, bool)
    np.put_along_axis(mask, order, True, axis=-1)
    mask = mask.reshape(rows, k)
    return np.where(mask, bits(x), 0).astype(bits(x).dtype), mask


# ----------------------------------------------------------------------------- torch reference


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("n,m", PATTERNS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch_reference_exactly(torch, dtype, n, m, criterion):
    rng = np.random.default_rng(zlib.crc32(f"{dtype} {n}:{m} {criterion}".encode()))
    rows, k = 6, 3 * 64
    x, dt = tie_free_activation(rng, rows, k, m, dtype)
    w = rng.standard_normal((40, k)).astype(np.float32) * rng.uniform(0.2, 3.0, size=k).astype(np.float32)
    x_t = to_torch(torch, x, dtype)

    ref_factor = torch_factor(torch, criterion, w, x_t)
    factor = kernel_factor(criterion, w, x, dt)
    if ref_factor is None:
        assert factor is None
    else:
        np.testing.assert_array_equal(factor, ref_factor)  # criteria agree exactly in float32
    assert_tie_free(torch, x_t, m, ref_factor)

    stats = K.prune(x, n, m, factor, dtype=dt)
    ref = from_torch(torch, torch_topk_prune(torch, x_t, n, m, ref_factor), dtype)
    np.testing.assert_array_equal(bits(stats.out), bits(ref))
    np.testing.assert_array_equal(bits(ref), bits(from_torch(torch, torch_prune(torch, x_t, n, m, ref_factor), dtype)))
    assert stats.kept_count == rows * k * n // m  # tie-free inputs have no zeros
    assert stats.density == pytest.approx(n / m)

    values, indices, cstats = K.compress(x, n, m, factor, dtype=dt)
    assert values.shape == indices.shape == (rows, k // m * n)
    np.testing.assert_array_equal(bits(K.decompress(values, indices, m, k)), bits(ref))
    assert cstats == stats


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_normal_fp_matches_torch(torch, dtype):
    """Realistic data (ties allowed): the stable-sort torch reference is exact with ties too."""
    rng = np.random.default_rng(7)
    x, dt = to_dtype(rng.standard_normal((33, 448)).astype(np.float32), dtype)
    factor = (rng.random(448) + 0.5).astype(np.float32)
    x_t = to_torch(torch, x, dtype)
    for n, m in [(2, 4), (8, 16), (16, 32), (3, 7)]:
        if 448 % m:
            continue
        stats = K.prune(x, n, m, factor, dtype=dt)
        np.testing.assert_array_equal(bits(stats.out), bits(from_torch(torch, torch_prune(torch, x_t, n, m, factor), dtype)))


def test_unstructured_matches_torch_topk(torch):
    rng = np.random.default_rng(3)
    rows, k = 9, 320
    x = rng.standard_normal((rows, k)).astype(np.float32)
    factor = (rng.random(k) + 0.5).astype(np.float32)
    stats = K.prune_unstructured(x, 0.5, factor)
    x_t = torch.from_numpy(x)
    idx = torch.topk(x_t.abs() * torch.from_numpy(factor), 160, dim=-1).indices
    ref = torch.zeros_like(x_t).scatter_(-1, idx, x_t.gather(-1, idx)).numpy()
    np.testing.assert_array_equal(stats.out, ref)
    assert stats.kept_count == rows * 160


# ----------------------------------------------------------------------------- properties


@st.composite
def activations(draw, patterns=((2, 4), (8, 16), (1, 2), (3, 8), (5, 64), (2, 6), (3, 12), (7, 48), (16, 32))):
    dtype = draw(st.sampled_from(DTYPES))
    n, m = draw(st.sampled_from(patterns))
    rows = draw(st.integers(1, 4))
    groups = draw(st.integers(1, 9))
    # few distinct values: many ties and natural zeros, the hard cases for the tie rule
    pool = draw(st.sampled_from([[-2.0, -1.0, 0.0, -0.0, 1.0, 2.0], [0.0], [0.5, -0.5, 3.0], None]))
    shape = (rows, groups * m)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vals = rng.standard_normal(shape).astype(np.float32) if pool is None else rng.choice(np.array(pool, np.float32), shape)
    x, dt = to_dtype(vals, dtype)
    factor = None
    if draw(st.booleans()):
        factor = rng.choice(np.array([0.0, 0.5, 1.0, 2.0, 1.25], np.float32), groups * m)
    return x, dt, dtype, n, m, factor


@PROPS
@given(activations())
def test_property_prune_exact_n_per_group_and_bitwise(case):
    x, dt, dtype, n, m, factor = case
    rows, k = x.shape
    stats = K.prune(x, n, m, factor, dtype=dt)
    ref, mask = numpy_prune(x, dtype, n, m, factor)
    np.testing.assert_array_equal(bits(stats.out), ref)  # tie rule: stable order = lower index wins
    values, indices, cstats = K.compress(x, n, m, factor, dtype=dt)
    # exactly n positions per group, ascending, and they are the kept ones
    idx = indices.reshape(rows, k // m, n).astype(np.int64)
    assert (np.diff(idx, axis=-1) > 0).all() and idx.max() < m
    pos = idx + (np.arange(k // m) * m)[None, :, None]
    kept = np.zeros((rows, k), bool)
    np.put_along_axis(kept, pos.reshape(rows, -1), True, axis=1)
    np.testing.assert_array_equal(kept, mask)
    # kept values bit for bit, the rest +0
    np.testing.assert_array_equal(bits(stats.out)[kept], bits(x)[kept])
    assert (bits(stats.out)[~kept] == 0).all()
    np.testing.assert_array_equal(bits(values).reshape(rows, -1), bits(x)[kept].reshape(rows, -1))
    # compress then decompress == prune
    np.testing.assert_array_equal(bits(K.decompress(values, indices, m, k)), bits(stats.out))
    # stats from the same pass == recomputation
    absm = ABS_MASK[dtype]
    assert stats.total == x.size
    assert stats.kept_count == int(np.count_nonzero(bits(stats.out) & absm))
    assert stats.natural_zero_count == int(np.count_nonzero((bits(x) & absm) == 0))
    assert cstats == stats


@PROPS
@given(activations(), st.sampled_from(["new", "inplace", "given"]))
def test_property_out_modes_agree(case, mode):
    x, dt, dtype, n, m, factor = case
    expected = K.prune(x, n, m, factor, dtype=dt).out
    if mode == "inplace":
        work = x.copy()
        stats = K.prune(work, n, m, factor, out=work, dtype=dt)
        assert stats.out is work
    elif mode == "given":
        buf = np.full_like(x, 7)
        stats = K.prune(x, n, m, factor, out=buf, dtype=dt)
        assert stats.out is buf
    else:
        stats = K.prune(x, n, m, factor, dtype=dt)
    np.testing.assert_array_equal(bits(stats.out), bits(expected))


@PROPS
@given(st.sampled_from(DTYPES), st.integers(1, 4), st.integers(1, 200), st.floats(0.0, 1.0),
       st.integers(0, 2**32 - 1), st.booleans())
def test_property_unstructured_keeps_k_per_row(dtype, rows, k, density, seed, ties):
    rng = np.random.default_rng(seed)
    vals = rng.choice(np.array([0.0, 1.0, -1.0, 2.0], np.float32), (rows, k)) if ties \
        else rng.standard_normal((rows, k)).astype(np.float32)
    x, dt = to_dtype(vals, dtype)
    stats = K.prune_unstructured(x, density, dtype=dt)
    keep_k = round(k * density)
    score = np.abs(to_f32(x, dtype))
    order = np.argsort(-score, axis=1, kind="stable")[:, :keep_k]
    mask = np.zeros((rows, k), bool)
    np.put_along_axis(mask, order, True, axis=1)
    np.testing.assert_array_equal(bits(stats.out), np.where(mask, bits(x), 0))
    assert stats.kept_count == int(np.count_nonzero(bits(stats.out) & ABS_MASK[dtype]))


# ----------------------------------------------------------------------------- explicit cases


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(2, 4), (8, 16), (5, 64), (2, 6)])
def test_all_equal_keeps_first_n(dtype, n, m):
    x, dt = to_dtype(np.full((3, 2 * m), -1.5, np.float32), dtype)
    stats = K.prune(x, n, m, dtype=dt)
    expected = np.zeros((3, 2 * m), bool)
    expected[:, :n] = True
    expected[:, m:m + n] = True
    np.testing.assert_array_equal(bits(stats.out) != 0, expected)
    _, indices, _ = K.compress(x, n, m, np.full(2 * m, 3.0, np.float32), dtype=dt)
    np.testing.assert_array_equal(indices, np.tile(np.arange(n), (3, 2)))


def test_tie_with_higher_values_elsewhere():
    x = np.array([[1, 3, 1, 1, 2, 2, 2, 5]], np.float32)
    out = K.prune(x, 2, 4).out
    np.testing.assert_array_equal(out, [[1, 3, 0, 0, 2, 0, 0, 5]])  # lower index wins the tie
    # a factor can break or create ties
    out = K.prune(x, 2, 4, np.array([1, 1, 1, 2, 1, 1, 1, 1], np.float32)).out
    np.testing.assert_array_equal(out, [[0, 3, 0, 1, 2, 0, 0, 5]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n,m,k", [(8, 16, 128), (2, 6, 36), (2, 4, 10)])
def test_nan_inf_error_names_layer_and_position(dtype, bad, n, m, k):
    vals = np.ones((4, k), np.float32)
    vals[2, k - 1] = bad
    vals[3, 1] = bad
    x, dt = to_dtype(vals, dtype)
    layer = "model.layers.3.mlp.down_proj"
    calls = [lambda: K.prune(x, n, m, dtype=dt, layer=layer, tail="dense"),
             lambda: K.compress(x, n, m, dtype=dt, layer=layer, tail="dense"),
             lambda: K.prune_unstructured(x, 0.5, dtype=dt, layer=layer),
             lambda: K.column_norms(x, layer, dtype=dt)]
    for call in calls:
        with pytest.raises(InputError, match=rf"^layer {layer}: activation contains NaN/Inf at row 2, column {k - 1}; "):
            call()


def test_nan_error_reports_index_of_leading_dims():
    x = np.ones((2, 3, 16), np.float32)
    x[1, 2, 5] = np.nan
    with pytest.raises(InputError, match=r"row 5, column 5 \(index \(1, 2, 5\)\)"):
        K.prune(x, 2, 4, layer="l")


@pytest.mark.parametrize("text,fragment", [("3:2", "needs 0 < N <= M"), ("0:4", "needs 0 < N <= M"),
                                           ("a:b", "expected"), ("4:128", "above the maximum M = 64"),
                                           ("4:4", "use 'dense'"), ("", "expected"), ("-1:4", "expected"),
                                           (24, "expected")])
def test_bad_patterns(text, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        parse_pattern(text)
    assert repr(text) in str(info.value)


def test_good_patterns():
    p = parse_pattern(" 8:16 ")
    assert (p.kind, p.n, p.m, p.density, str(p)) == ("nm", 8, 16, 0.5, "8:16")
    assert parse_pattern("Dense").density == 1.0
    assert parse_pattern("unstructured").density is None
    assert parse_pattern("5:64").density == 5 / 64


@pytest.mark.parametrize("n,m", [(3, 2), (0, 4), (4, 4), (4, 128), (True, 4), (2.0, 4)])
def test_bad_nm_arguments(n, m):
    with pytest.raises(InputError, match="layer L: pattern"):
        K.prune(np.ones((1, 128), np.float32), n, m, layer="L")


def test_k_not_multiple_of_m():
    x = np.arange(1, 23, dtype=np.float32)[None, :]
    with pytest.raises(InputError, match=r"K = 22 channels is not a multiple of M = 8; pass tail='dense'"):
        K.prune(x, 2, 8)
    with pytest.raises(InputError, match="tail"):
        K.prune(x, 2, 8, tail="drop")
    stats = K.prune(x, 2, 8, tail="dense")
    expected = np.zeros(22, np.float32)
    expected[[6, 7, 14, 15]] = [7, 8, 15, 16]
    expected[16:] = x[0, 16:]  # the last 22 % 8 = 6 channels stay dense
    np.testing.assert_array_equal(stats.out[0], expected)
    assert stats.kept_count == 10
    values, indices, _ = K.compress(x, 2, 8, tail="dense")
    np.testing.assert_array_equal(indices[0], [6, 7, 6, 7, 0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(K.decompress(values, indices, 8, 22), stats.out)


def test_input_validation():
    good = np.ones((2, 16), np.float32)
    with pytest.raises(InputError, match="dtype='bfloat16'"):
        K.prune(good.view(np.uint32).astype(np.uint16), 2, 4)
    with pytest.raises(InputError, match="got float64"):
        K.prune(good.astype(np.float64), 2, 4)
    with pytest.raises(InputError, match="C-contiguous"):
        K.prune(np.ones((16, 4), np.float32).T, 2, 4)
    with pytest.raises(InputError, match="scalar"):
        K.prune(np.array(1.0, np.float32), 2, 4)
    with pytest.raises(InputError, match="numpy array"):
        K.prune([[1.0] * 4], 2, 4)
    with pytest.raises(InputError, match="dtype 'bfloat16' needs"):
        K.prune(good, 2, 4, dtype="bfloat16")
    with pytest.raises(InputError, match="expected 'float32'"):
        K.prune(good, 2, 4, dtype="int8")
    with pytest.raises(InputError, match=r"col_factor: expected shape \(16,\)"):
        K.prune(good, 2, 4, np.ones(8, np.float32))
    with pytest.raises(InputError, match="finite factors >= 0"):
        K.prune(good, 2, 4, -np.ones(16, np.float32))
    with pytest.raises(InputError, match="finite factors >= 0"):
        K.prune(good, 2, 4, np.full(16, np.nan, np.float32))
    with pytest.raises(InputError, match="out: expected shape"):
        K.prune(good, 2, 4, out=np.empty((2, 8), np.float32))
    with pytest.raises(InputError, match="out: expected shape"):
        K.prune(good, 2, 4, out=np.empty((2, 16), np.float16))
    big = np.ones(40, np.float32)
    with pytest.raises(InputError, match="overlaps x partially"):
        K.prune(big[:32].reshape(2, 16), 2, 4, out=big[8:40].reshape(2, 16))
    with pytest.raises(InputError, match="density"):
        K.prune_unstructured(good, 1.5)


def test_shapes_1d_and_leading_dims():
    rng = np.random.default_rng(5)
    x3 = rng.standard_normal((2, 3, 32)).astype(np.float32)
    s3 = K.prune(x3, 2, 4)
    s2 = K.prune(x3.reshape(6, 32), 2, 4)
    assert s3.out.shape == x3.shape and s3.rows == 6
    np.testing.assert_array_equal(s3.out.reshape(6, 32), s2.out)
    s1 = K.prune(x3[0, 0].copy(), 2, 4)
    np.testing.assert_array_equal(s1.out, s2.out[0])
    values, indices, _ = K.compress(x3, 2, 4)
    assert values.shape == (2, 3, 16)
    np.testing.assert_array_equal(K.decompress(values, indices, 4, 32), s3.out)
    empty = K.prune(np.empty((0, 16), np.float32), 2, 4)
    assert empty.total == 0 and empty.density == 0.0


def test_decompress_rejects_bad_indices():
    values, indices, _ = K.compress(np.arange(1, 17, dtype=np.float32)[None, :], 2, 4)
    bad = indices.copy()
    bad[0, 3] = bad[0, 2]  # not strictly increasing in group 1
    with pytest.raises(InputError, match="row 0, position 3"):
        K.decompress(values, bad, 4, 16)
    bad = indices.copy()
    bad[0, 0] = 9
    with pytest.raises(InputError, match="row 0, position 0"):
        K.decompress(values, bad, 4, 16)
    with pytest.raises(InputError, match="width 8 does not fit"):
        K.decompress(values, indices, 4, 20)


def test_column_norms_exact_and_thread_independent(torch):
    import numba

    rng = np.random.default_rng(11)
    x = rng.standard_normal((700, 96)).astype(np.float32) * 10
    ref = torch.linalg.vector_norm(torch.from_numpy(x).double(), dim=0).float().numpy()
    got = K.column_norms(x)
    np.testing.assert_array_equal(got, ref)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        np.testing.assert_array_equal(K.column_norms(x), got)
    finally:
        numba.set_num_threads(old)


def test_half_decoding_subnormals_and_extremes():
    """fp16 decoded in-kernel: subnormals, the largest finite value and signed zeros rank exactly."""
    vals = np.array([[6.0e-8, 5.9e-8 * 2, 65504.0, -0.0, 1.2e-7, -6.1e-5, 6.0e-5, 0.0]], np.float16)
    stats = K.prune(vals, 1, 2)
    score = np.abs(vals.astype(np.float32)).reshape(4, 2)
    expected = np.where(np.arange(2)[None, :] == np.argmax(score, axis=1)[:, None], vals.reshape(4, 2), 0)
    np.testing.assert_array_equal(stats.out.reshape(4, 2).view(np.uint16), expected.view(np.uint16))
    assert stats.natural_zero_count == 2


def test_torch_views_zero_copy_including_bf16(torch):
    rng = np.random.default_rng(2)
    t = torch.from_numpy(rng.standard_normal((8, 64)).astype(np.float32)).to(torch.bfloat16)
    ref = torch_prune(torch, t, 8, 16)
    view = t.view(torch.int16).numpy().view(np.uint16)
    stats = K.prune(view, 8, 16, out=view, dtype="bfloat16", layer="q_proj")  # in place through the view
    assert np.shares_memory(view, t.view(torch.int16).numpy())
    assert torch.equal(t.view(torch.int16), ref.view(torch.int16))
    assert stats.out is view
    t32 = torch.from_numpy(rng.standard_normal((4, 32)).astype(np.float32))
    out = torch.empty_like(t32)
    K.prune(t32.numpy(), 2, 4, out=out.numpy())
    assert torch.equal(out, torch_prune(torch, t32, 2, 4))
    t16 = t32.half()
    assert torch.equal(torch.from_numpy(K.prune(t16.numpy(), 2, 4).out), torch_prune(torch, t16, 2, 4))


def test_stats_detached_and_density():
    stats = K.prune(np.array([[0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0]], np.float32), 2, 4)
    assert (stats.kept_count, stats.natural_zero_count, stats.total) == (3, 5, 8)
    assert stats.density == 3 / 8 and stats.natural_zero_fraction == 5 / 8
    assert stats.detached().out is None and stats.detached() == stats
