"""W8A8 fake quantisation and the inverted SmoothQuant smoothing of Outstanding-sparse (arXiv 2509.22166).

Everything here is simulated in floating point ("fake quant": quantise → dequantise), so a linear fed
``fake_quantize_activation(x)`` with weight ``fake_quantize_weight(w)`` computes, up to float32
rounding, what an int8 × int8 GEMM with int32 accumulation followed by the dequantisation
``y[t, n] = scale_x[t] · scale_w[n] · Σ_j q_x[t, j] q_w[n, j]`` computes.

- Weights: int8 per output channel, symmetric: ``scale_w[n] = max_j |W[n, j]| / 127``,
  ``q_w = clamp(round(W / scale_w), −127, 127)`` (round half to even); an all-zero row gets scale 1.
- Activations: int8 per token (per row of [..., K]), symmetric, dynamic (the scale comes from the row
  itself at run time): ``scale_x[t] = max_j |x[t, j]| / 127``, same rounding and clamp; −128 is never
  used.
- Inverted smoothing: ``s_j = max|X_:,j|^α / max|W_:,j|^(1−α)`` (α = 0.1 by default), X multiplied
  by s and W divided by s, so x·s · (W/s)ᵀ = x·Wᵀ exactly in real arithmetic. Standard SmoothQuant
  (arXiv 2211.10438) uses the same s but divides X by it (flattening activation outliers for
  quantisation); multiplying instead makes the channels with large max|X| (and small max|W|) larger
  still, so the N:M top-k that follows keeps them (arXiv 2509.22166). A channel whose max|X| or
  max|W| is 0 gets s_j = 1 (it never contributes to y; no division by zero).

The functions take and return torch tensors (float32 math; the caller casts back).
"""

from __future__ import annotations

import numpy as np

from amber_sim.errors import InputError

__all__ = ["INT8_MAX", "smoothing_scales", "weight_column_absmax", "quantize_weight_per_channel",
           "quantize_activation_per_token", "fake_quantize_weight", "fake_quantize_activation"]

#: symmetric int8 range used: [−127, 127]
INT8_MAX = 127


def weight_column_absmax(weight) -> np.ndarray:
    """max_n |W[n, j]| per input channel j, float32 [K] (W is [N_out, K], torch or NumPy)."""
    import torch

    w = torch.as_tensor(weight).detach()
    return w.abs().amax(dim=0).to(torch.float32).cpu().numpy()


def smoothing_scales(activation_absmax: np.ndarray, weight_absmax: np.ndarray, alpha: float,
                     where: str = "smoothing") -> np.ndarray:
    """s_j = max|X_:,j|^α / max|W_:,j|^(1−α) as float32 [K] (computed in float64); 1 where either max is 0."""
    x_max = np.asarray(activation_absmax, dtype=np.float64)
    w_max = np.asarray(weight_absmax, dtype=np.float64)
    if x_max.ndim != 1 or x_max.shape != w_max.shape:
        raise InputError(where, "activation_absmax", f"expected a [K] array matching the weight's {w_max.shape[0]} "
                         f"input channels, got shape {x_max.shape}")
    if not (np.all(np.isfinite(x_max)) and np.all(x_max >= 0)):
        raise InputError(where, "activation_absmax", "expected finite values >= 0")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(where, "smooth_alpha", f"expected 0 <= alpha <= 1, got {alpha}")
    active = (x_max > 0) & (w_max > 0)
    scales = np.ones_like(x_max)
    scales[active] = x_max[active] ** alpha / w_max[active] ** (1.0 - alpha)
    if not np.all(np.isfinite(scales)) or not np.all(scales > 0):
        raise InputError(where, "smoothing", "scales overflow float64 (activation or weight maxima out of range)")
    scales32 = scales.astype(np.float32)
    if not np.all(np.isfinite(scales32)) or not np.all(scales32 > 0):
        raise InputError(where, "smoothing", "scales do not fit float32")
    return scales32


def _symmetric(values, dim: int):
    """(q int8, scale float32 with ``dim`` kept as size 1): max |q| = 127 along ``dim`` unless all zero."""
    import torch

    v = values.to(torch.float32)
    scale = v.abs().amax(dim=dim, keepdim=True) / INT8_MAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(v / scale), -INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def quantize_weight_per_channel(weight):
    """(q int8 [N_out, K], scale float32 [N_out]): symmetric, one scale per output channel (row)."""
    import torch

    w = torch.as_tensor(weight).detach()
    if w.dim() != 2:
        raise InputError("quantize_weight_per_channel", "weight", f"expected [N_out, K], got shape {tuple(w.shape)}")
    q, scale = _symmetric(w, dim=1)
    return q, scale.reshape(-1)


def quantize_activation_per_token(x):
    """(q int8 [..., K], scale float32 [..., 1]): symmetric, one dynamic scale per token row."""
    import torch

    return _symmetric(torch.as_tensor(x).detach(), dim=-1)


def fake_quantize_weight(weight):
    """Dequantised int8 per-output-channel weight, float32 [N_out, K]."""
    q, scale = quantize_weight_per_channel(weight)
    return q.to(scale.dtype) * scale.unsqueeze(1)


def fake_quantize_activation(x):
    """Dequantised int8 per-token activation, float32 [..., K]."""
    q, scale = quantize_activation_per_token(x)
    return q.to(scale.dtype) * scale
