"""Scoring criteria of the Amber Pruner as per-channel column factors (pure NumPy).

The score of activation entry x[t, j] is ``|x[t, j]| * factor[j]`` (docs/pruning.md):

- ``magnitude``: no factor (``None``): the papers' naive top-k on |x|.
- ``amber`` (arXiv 2508.02128): ``||W[:, j]||_2 / min_k ||W[:, k]||_2``, once per layer, offline.
- ``amber-robust`` (Robust-Norm Scoring, arXiv 2509.22166): mean and std of W computed only over
  the entries inside the [0.5 %, 99.5 %] quantiles (inclusive, linear interpolation as
  ``np.quantile``), population std (ddof = 0); *every* entry is then standardised,
  Ŵ = (W − mean) / std -- the outliers are not clipped, they only do not distort the statistics --
  and the factor is ``||Ŵ[:, j]||_2 / min_k ||Ŵ[:, k]||_2``.
- ``clact``: ``||X[:, j]||_2`` over the tokens of the current forward, computed per call by the
  one-pass kernel :func:`amber_sim.pruning.kernels.column_norms` (:func:`clact_factors`).
- ``var-weight`` (arXiv 2509.22166's public code): the variance of W's column j over the output rows,
  ``Var(W[:, j])`` with ddof = 1 (torch.var's default there), divided by the smallest nonzero one.
- ``gradient`` (arXiv 2509.22166): the mean over calibration tokens of |∂L/∂x_tj|, the calibration loss's
  gradient with respect to the linear's input, measured once
  (:func:`amber_sim.pruning.calibrate.collect_gradient_factors`): static per channel at inference.

W is ``[N_out, K]`` (``y = x Wᵀ``); factors are float32 arrays of length K. Norms are accumulated
in float64 over blocks of rows (no full float64 copy of W); the division by the minimum only keeps
numbers in range, the ranking is unchanged.

Zero columns: a column of W with norm 0 gets factor 0 (its channel contributes nothing to y and
scores 0); the minimum is taken over the nonzero norms; if every norm is 0 the factors are all 1.
"""

from __future__ import annotations

import numpy as np

from amber_sim.errors import InputError
from amber_sim.pruning.names import CRITERIA

__all__ = [
    "CRITERIA",
    "column_factor",
    "amber_factors",
    "robust_norm_factors",
    "clact_factors",
    "weight_variance_factors",
    "normalise_by_min",
]

#: Quantiles outside of which weights are left out of the Robust-Norm mean/std.
ROBUST_QUANTILES = (0.005, 0.995)

_ROW_BLOCK = 1024  # rows of W per float64 block


def _check_weight(w: object, where: str) -> np.ndarray:
    if not isinstance(w, np.ndarray):
        raise InputError(where, "weight", f"expected a numpy array [N_out, K] (use w.float().numpy()), got {type(w).__name__}")
    if w.ndim != 2 or w.size == 0:
        raise InputError(where, "weight", f"expected a non-empty 2-D array [N_out, K], got shape {w.shape}")
    if w.dtype.kind != "f":
        raise InputError(where, "weight", f"expected a float array (float16/32/64), got {w.dtype}")
    for start in range(0, w.shape[0], _ROW_BLOCK):
        if not np.all(np.isfinite(w[start:start + _ROW_BLOCK])):
            raise InputError(where, "weight", "contains NaN or Inf")
    return w


def _column_sq_norms(w: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """float64 [K]: sum over rows of (w - shift)², in blocks of rows."""
    total = np.zeros(w.shape[1], np.float64)
    for start in range(0, w.shape[0], _ROW_BLOCK):
        block = w[start:start + _ROW_BLOCK].astype(np.float64)
        if shift:
            block -= shift
        total += np.einsum("ij,ij->j", block, block)
    return total


def normalise_by_min(norms: np.ndarray) -> np.ndarray:
    """float32 ``norms / min(nonzero norms)``; zero norms stay 0; all zero → ones."""
    norms = np.asarray(norms, dtype=np.float64)
    nonzero = norms[norms > 0]
    if nonzero.size == 0:
        return np.ones(norms.shape, np.float32)
    return (norms / nonzero.min()).astype(np.float32)


def amber_factors(w: np.ndarray, where: str = "weight") -> np.ndarray:
    """Amber column factors: ``||W[:, j]||_2 / min_k ||W[:, k]||_2`` (float32 [K])."""
    w = _check_weight(w, where)
    return normalise_by_min(np.sqrt(_column_sq_norms(w)))


def robust_norm_factors(w: np.ndarray, where: str = "weight",
                        quantiles: tuple[float, float] = ROBUST_QUANTILES) -> np.ndarray:
    """Robust-Norm Scoring column factors (float32 [K]); see the module docstring.

    If the kept entries have zero spread (std = 0) the std is taken as 1; it cancels in the
    normalisation by the minimum anyway.
    """
    w = _check_weight(w, where)
    lo_q, hi_q = quantiles
    if not 0.0 <= lo_q < hi_q <= 1.0:
        raise InputError(where, "quantiles", f"expected 0 <= low < high <= 1, got {quantiles!r}")
    flat = w.reshape(-1)
    lo, hi = np.quantile(flat.astype(np.float64), [lo_q, hi_q])
    inside = flat[(flat >= lo) & (flat <= hi)].astype(np.float64)
    mean = float(inside.mean())
    std = float(inside.std())
    if not std > 0.0:
        std = 1.0
    norms = np.sqrt(_column_sq_norms(w, shift=mean)) / std
    return normalise_by_min(norms)


def weight_variance_factors(w: np.ndarray, where: str = "weight") -> np.ndarray:
    """var-weight column factors: ``Var(W[:, j])`` (ddof = 1; 0 for a single row) / the smallest nonzero one
    (float32 [K]), accumulated in float64 over blocks of rows."""
    w = _check_weight(w, where)
    rows = w.shape[0]
    if rows < 2:
        return np.ones(w.shape[1], np.float32)
    means = np.zeros(w.shape[1], np.float64)
    for start in range(0, rows, _ROW_BLOCK):
        means += w[start:start + _ROW_BLOCK].astype(np.float64).sum(axis=0)
    means /= rows
    squared = np.zeros(w.shape[1], np.float64)  # two passes: no cancellation of sum² − (sum)²/n
    for start in range(0, rows, _ROW_BLOCK):
        block = w[start:start + _ROW_BLOCK].astype(np.float64) - means
        squared += np.einsum("ij,ij->j", block, block)
    return normalise_by_min(squared / (rows - 1))


def clact_factors(x: np.ndarray, layer: str = "?", *, dtype: object = None) -> np.ndarray:
    """CLACT factors of the current activation: ``||X[:, j]||_2`` over all its rows (float32 [K])."""
    from amber_sim.pruning.kernels import column_norms

    return column_norms(x, layer, dtype=dtype)


def column_factor(criterion: str, w: np.ndarray | None = None, where: str = "criterion") -> np.ndarray | None:
    """Offline factor for ``criterion`` from the layer weight ``w``.

    ``magnitude`` → None; ``amber`` / ``amber-robust`` / ``var-weight`` → float32 [K] from ``w``; ``clact`` → None
    here, because its factor depends on each forward's activation: call :func:`clact_factors`.
    """
    if criterion not in CRITERIA:
        raise InputError(where, None, f"expected one of {', '.join(CRITERIA)}, got {criterion!r}")
    if criterion in ("magnitude", "clact"):
        return None
    if criterion == "gradient":
        raise InputError(where, None, "criterion 'gradient' is measured on calibration data "
                         "(calibrate.collect_gradient_factors), not read from the weight")
    if w is None:
        raise InputError(where, None, f"criterion {criterion!r} needs the layer weight [N_out, K]")
    if criterion == "amber":
        return amber_factors(w, where)
    if criterion == "var-weight":
        return weight_variance_factors(w, where)
    return robust_norm_factors(w, where)
