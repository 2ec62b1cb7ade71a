"""Apply Amber Pruner to a model: one call, a handle that removes itself (torchao-style).

``apply_amber(model, config)`` registers a forward pre-hook on every selected ``nn.Linear`` of the
decoder layers. During prefill (a forward with more than one token per sequence) the hook prunes
the linear's input activation with the Numba kernels (real masks on the real activations) and
records, per layer, what was kept; decode forwards (one new token) stay dense.

Mitigations (arXiv 2509.22166), applied around the N:M selection of each token row x:
- ``median-shift``: η = median(x); prune x − η; the linear sees pruned(x − η) + η, i.e.
  y = pruned(x − η)·Wᵀ + η·rowsum(W) (+ bias): the sparse GEMM plus a rank-one correction;
- ``variance-correction``: the kept values are rescaled by std(x) / std(pruned) (population std over
  the row, zeros included) so the row's variance matches the dense row's;
- ``median-shift+variance-correction``: both, the variance measured on the shifted row.
- ``learnable-shift`` / ``learnable-scale-shift``: the input is masked as without a mitigation, and a forward
  hook corrects the linear's output on the same calls, y' = a ⊙ y + b per output channel (a = 1 for the shift
  only), with a and b trained on calibration tokens (:mod:`amber_sim.pruning.learnable`) and passed in
  ``CalibrationStats.output_corrections``.

Precision ``w8a8`` (Outstanding-sparse, arXiv 2509.22166; docs/pruning.md): every decoder linear gets int8
per-output-channel weights and int8 per-token dynamic activations (fake quant, :mod:`amber_sim.pruning.quant`);
the pruned linears are first inverse-smoothed (x·s, W/s). Per linear the order is smooth → score/mask
(+ mitigation) → quantise the kept values (:class:`LinearPruner`). lm_head is not quantised.

Activations reach the kernels in their own dtype (float32, float16, bfloat16 bit patterns; no float32
conversion pass without mitigations); a non-contiguous tensor is copied once; other dtypes are an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern
from amber_sim.pruning import kernels
from amber_sim.pruning.criteria import CRITERIA, clact_factors, column_factor
from amber_sim.pruning.layer_roles import PUBLISHED_SKIP_LAYERS, SKIPPABLE_ROLES, paper_rule_sparsifies
from amber_sim.pruning.names import (LEARNABLE_MITIGATIONS, MITIGATIONS, POLICIES, PRECISIONS,
                                     STATIC_SHIFT_MITIGATIONS)
from amber_sim.roles import LINEAR_ROLES

UNSTRUCTURED_DENSITY = 0.5  # both unstructured bounds keep half of the entries, as 2:4 and 8:16 do


@dataclass(frozen=True)
class OutputCorrection:
    """A learnable mitigation's correction of one pruned linear's output, y' = scale ⊙ y + shift per output
    channel: ``shift`` float32 [N_out], ``scale`` float32 [N_out] or None (``learnable-shift``: scale 1)."""

    scale: np.ndarray | None
    shift: np.ndarray


@dataclass(frozen=True)
class CalibrationStats:
    """Per-linear numbers measured on calibration tokens that some configurations need (name → array):
    ``activation_absmax`` max|X_:,j| (w8a8 smoothing, the scaling mitigation; collect_activation_absmax),
    ``gradient_factors`` mean |∂L/∂x_:,j| (the gradient criterion; calibrate.collect_gradient_factors) and
    ``output_corrections`` name → :class:`OutputCorrection` (the learnable mitigations;
    learnable.train_output_corrections)."""

    activation_absmax: dict | None = None
    gradient_factors: dict | None = None
    output_corrections: dict | None = None


@dataclass(frozen=True)
class AmberConfig:
    """What to prune and how. ``skip_layers``: layers whose q_proj/gate_proj stay dense (amber-paper and
    calibrated policies); None means the published list for ``model_name`` (or none). ``skip_linears``:
    single (layer, role) q/gate linears that also stay dense (role "q" or "gate"; the calibrated policy's
    per-linear loss metric, amber_sim.pruning.calibrate)."""

    pattern: str = "8:16"
    criterion: str = "amber"
    policy: str = "amber-paper"
    mitigation: str = "none"
    skip_layers: tuple[int, ...] | None = None
    model_name: str | None = None
    skip_linears: tuple[tuple[int, str], ...] = ()
    #: "fp16" (activations pruned, no quantisation) or "w8a8" (Outstanding-sparse: every decoder linear
    #: int8 weights per output channel and int8 activations per token, pruned linears inverse-smoothed)
    precision: str = "fp16"
    #: α of the inverted SmoothQuant scales s_j = max|X_:,j|^α / max|W_:,j|^(1−α) (w8a8 only)
    smooth_alpha: float = 0.1
    #: (linear name, η) of every pruned linear under a static median shift: one scalar per linear measured
    #: once on calibration data (amber_sim.pruning.calibrate.collect_static_shifts), no per-token median
    static_shifts: tuple[tuple[str, float], ...] = ()

    def validated(self) -> "AmberConfig":
        if self.precision not in PRECISIONS:
            raise InputError("amber config", "precision", f"expected one of {', '.join(PRECISIONS)}, "
                             f"got {self.precision!r}")
        if not (isinstance(self.smooth_alpha, (int, float)) and 0.0 <= self.smooth_alpha <= 1.0):
            raise InputError("amber config", "smooth_alpha", f"expected 0 <= alpha <= 1, got {self.smooth_alpha!r}")
        pattern = parse_pattern(self.pattern, "amber config", "pattern")
        dense_ok = pattern.kind == "dense" and self.precision == "w8a8"  # the dense int8 baseline
        if (pattern.kind == "dense" and not dense_ok) or (pattern.kind == "nm" and pattern.n >= pattern.m):
            raise InputError("amber config", "pattern", f"expected N:M with N < M or unstructured (dense only with "
                             f"precision 'w8a8'), got {self.pattern!r}")
        for name, value, allowed in (("criterion", self.criterion, CRITERIA), ("policy", self.policy, POLICIES),
                                     ("mitigation", self.mitigation, MITIGATIONS)):
            if value not in allowed:
                raise InputError("amber config", name, f"expected one of {', '.join(allowed)}, got {value!r}")
        for item in self.skip_linears:
            if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], int)
                    or item[1] not in SKIPPABLE_ROLES):
                raise InputError("amber config", "skip_linears", f"expected (layer, 'q' or 'gate') pairs, got {item!r}")
        if self.mitigation in LEARNABLE_MITIGATIONS and self.precision == "w8a8" and pattern.kind != "dense":
            raise InputError("amber config", "mitigation", f"{self.mitigation} is trained on fp16 outputs; it is not "
                             "offered with precision w8a8 (use fp16, or another mitigation with w8a8)")
        if self.policy == "calibrated" and self.skip_layers is None and pattern.kind != "dense":  # dense: no mask
            raise InputError("amber config", "skip_layers", "the calibrated policy needs the skip list that "
                             "calibrate_skip_layers() returns")
        return self


@dataclass
class LayerStats:
    """Per pruned linear: counts accumulated over the prefill forwards it saw."""

    name: str
    layer: int
    role: str
    calls: int = 0
    total: int = 0
    kept: int = 0
    natural_zeros: int = 0

    def add(self, result: kernels.PruneStats) -> None:
        """Count one pruning pass (one forward's activation of this linear)."""
        self.calls += 1
        self.total += result.total
        self.kept += result.kept_count
        self.natural_zeros += result.natural_zero_count

    @property
    def density(self) -> float:
        return self.kept / self.total if self.total else 0.0

    @property
    def natural_zero_fraction(self) -> float:
        return self.natural_zeros / self.total if self.total else 0.0


@dataclass
class AmberHandle:
    """Returned by apply_amber: ``remove()`` (or leaving the ``with`` block) restores the dense model."""

    config: AmberConfig
    stats: dict[str, LayerStats] = field(default_factory=dict)
    #: names of selected linears whose input is left dense for now (calibration sweeps toggle it)
    bypass: set[str] = field(default_factory=set)
    #: the LinearPruner of every hooked linear (w8a8: every decoder linear; fp16: the pruned ones)
    pruners: dict[str, "LinearPruner"] = field(default_factory=dict)
    _hooks: list = field(default_factory=list, repr=False)
    #: (module, original weight Parameter) of every linear whose weight was swapped (w8a8)
    _swapped: list = field(default_factory=list, repr=False)

    def remove(self) -> None:
        """Remove the hooks and put the original weight Parameters back (the same objects: bit-identical)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        for module, original in reversed(self._swapped):
            module.weight = original
        self._swapped.clear()

    def __enter__(self) -> "AmberHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    @property
    def pruned_names(self) -> list[str]:
        return list(self.stats)


def find_decoder_linears(model) -> list[tuple[str, int, str, object]]:
    """(name, layer index, role, module) of every q/k/v/o/gate/up/down projection of the decoder layers, in
    module order. Names that are not LLaMA/Qwen2-style, or a layer without all seven, are an InputError
    listing the linears found (:func:`amber_sim.roles.find_linear_roles`)."""
    from amber_sim.roles import find_linear_roles

    modules = dict(model.named_modules())
    return [(name, layer, role, modules[name]) for name, (layer, role) in find_linear_roles(model).items()]


def selected(role: str, layer: int, config: AmberConfig) -> bool:
    """The layer policy: which linears are pruned (none under a dense pattern)."""
    if _pattern_is_dense(config):
        return False
    if config.policy == "all":
        return role in LINEAR_ROLES
    skip = config.skip_layers
    if skip is None:
        skip = PUBLISHED_SKIP_LAYERS.get(config.model_name or "", ())
    if (layer, role) in config.skip_linears:
        return False
    return paper_rule_sparsifies(role, layer, tuple(skip))


def _pattern_is_dense(config: AmberConfig) -> bool:
    return parse_pattern(config.pattern).kind == "dense"


def _kernel_rows(x, name: str):
    """x detached, on the CPU, C-contiguous (one copy only if it was not), as [rows, K]; InputError for
    dtypes other than float32 / float16 / bfloat16."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise InputError(f"layer {name}", "activation", f"expected a torch tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise InputError(f"layer {name}", "activation", f"expected a float32, float16 or bfloat16 tensor, got {x.dtype}")
    if x.dim() == 0:
        raise InputError(f"layer {name}", "activation", "expected a [..., K] tensor, got a 0-d tensor")
    work = x.detach().to("cpu").contiguous()  # no copy when already a contiguous CPU tensor
    return work.reshape(-1, work.shape[-1])


def _numpy_bits(t):
    """(NumPy view of a contiguous CPU tensor's storage, kernel dtype argument): no copy."""
    import torch

    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy(), "bfloat16"
    return t.numpy(), None


def _kernel_mask(rows, config: AmberConfig, factor, name: str):
    """N:M (or unstructured) mask of [rows, K] in its own dtype by the Numba kernels: (pruned tensor, stats)."""
    import torch

    pattern = parse_pattern(config.pattern)
    source, kernel_dtype = _numpy_bits(rows)
    out = torch.empty_like(rows)
    target, _ = _numpy_bits(out)
    if config.criterion == "clact":  # this forward's factor, times a static one (scaling) when there is one
        dynamic = clact_factors(source, name, dtype=kernel_dtype)
        factor = dynamic if factor is None else dynamic * factor
    if pattern.kind == "unstructured" and pattern.scope == "tensor":
        return global_top_k(rows, UNSTRUCTURED_DENSITY, factor)
    if pattern.kind == "unstructured":
        stats = kernels.prune_unstructured(source, UNSTRUCTURED_DENSITY, factor, out=target, layer=name,
                                           dtype=kernel_dtype)
    else:
        stats = kernels.prune(source, pattern.n, pattern.m, factor, out=target, layer=name, dtype=kernel_dtype)
    return out, stats.detached()


def global_top_k(rows, density: float, factor):
    """The global unstructured bound: keep the round(density · entries) largest scores |x_tj|·factor_j of the
    whole [rows, K] activation (scores in float64; ties at the threshold go to the lower flat index), values
    unchanged: (pruned tensor, stats). Every token competes with every other, so it is looser than the
    per-token top-k of ``unstructured``."""
    import torch

    flat_score = rows.abs().to(torch.float64)
    if factor is not None:
        flat_score = flat_score * torch.from_numpy(np.asarray(factor, np.float64))
    flat_score = flat_score.reshape(-1)
    keep = int(round(flat_score.numel() * float(density)))
    mask = torch.zeros(flat_score.numel(), dtype=torch.bool)
    if keep > 0:
        threshold = torch.kthvalue(flat_score, flat_score.numel() - keep + 1).values
        mask = flat_score > threshold
        ties = torch.nonzero(flat_score == threshold).reshape(-1)
        mask[ties[:keep - int(mask.sum())]] = True
    out = torch.where(mask.reshape(rows.shape), rows, torch.zeros((), dtype=rows.dtype))
    total = rows.numel()
    natural_zeros = total - int(rows.count_nonzero())
    stats = kernels.PruneStats(total=total, kept_count=int(out.count_nonzero()), natural_zero_count=natural_zeros,
                               rows=rows.shape[0], channels=rows.shape[1])
    return out, stats


def _mask_rows(rows, config: AmberConfig, factor, name: str):
    """Mask [rows, K] with the configured mitigation: (sparse part, per-row shift or None, stats).

    Without a mitigation the kernels read and write the tensor's own dtype (float32, float16 or bfloat16
    bit patterns: no conversion pass). Mitigations need float32 arithmetic (median, std): for float16 /
    bfloat16 input that costs one float32 copy of the activation (4 bytes per entry) plus the float32
    output; the caller casts back. The linear sees ``sparse + shift``.
    """
    import torch

    # scaling lives in the factor (make_linear_pruner); a learnable mitigation corrects the output (apply_amber)
    if config.mitigation in ("none", "scaling") or config.mitigation in LEARNABLE_MITIGATIONS:
        sparse, stats = _kernel_mask(rows, config, factor, name)
        return sparse, None, stats
    work = rows.to(torch.float32)  # no copy for float32 input (not modified below)
    factor_rows = work
    shift = None
    if config.mitigation.startswith("median-shift"):
        shift = torch.from_numpy(np.median(work.numpy(), axis=1, keepdims=True).astype(np.float32))
        work = work - shift
    elif config.mitigation in STATIC_SHIFT_MITIGATIONS:
        shift = torch.full((1, 1), static_shift(config, name), dtype=torch.float32)
        work = work - shift
    if config.criterion == "clact":  # the CLACT factor is measured on the unshifted activation
        dynamic = clact_factors(factor_rows.numpy(), name)
        factor = dynamic if factor is None else dynamic * factor
    sparse, stats = _kernel_mask(work, dataclasses.replace(config, criterion="magnitude")
                                 if config.criterion == "clact" else config, factor, name)
    if config.mitigation.endswith("variance-correction"):  # NumPy float32 std, as before (same numbers)
        source, out = work.numpy(), sparse.numpy()  # views: ``out *=`` rescales ``sparse`` in place
        dense_std = source.std(axis=1, keepdims=True)
        pruned_std = out.std(axis=1, keepdims=True)
        out *= np.where(pruned_std > 0, dense_std / np.maximum(pruned_std, 1e-30), 1.0).astype(np.float32)
    return sparse, shift, stats


def static_shift(config: AmberConfig, name: str) -> float:
    """The calibrated η of linear ``name`` (InputError when calibration did not measure it)."""
    for linear, eta in config.static_shifts:
        if linear == name:
            return float(eta)
    raise InputError(f"layer {name}", "static_shifts", "no calibrated η for this linear; measure them with "
                     "calibrate.collect_static_shifts() under the same policy")


def _count_stats(rows) -> kernels.PruneStats:
    """Stats of an unmasked activation: every nonzero entry counts as kept."""
    total = rows.numel()
    nonzero = int(rows.count_nonzero())
    return kernels.PruneStats(total=total, kept_count=nonzero, natural_zero_count=total - nonzero,
                              rows=rows.shape[0], channels=rows.shape[1])


def prune_activation(x, config: AmberConfig, factor, name: str):
    """Mask a [..., K] torch activation per ``config`` (pattern, criterion, mitigation; no smoothing or
    quantisation: see :class:`LinearPruner` for w8a8): (tensor the linear should see, PruneStats).

    float32 / float16 / bfloat16 go to the kernels as they are; a non-contiguous tensor is copied once
    to a contiguous one; other dtypes are an InputError. The result has x's shape, dtype and device.
    """
    rows = _kernel_rows(x, name)
    sparse, shift, stats = _mask_rows(rows, config, factor, name)
    if shift is not None:
        sparse = sparse + shift
    return sparse.to(x.dtype).reshape(x.shape).to(x.device), stats


@dataclass(frozen=True)
class LinearPruner:
    """What one linear's input goes through, and the weight it must use (:func:`make_linear_pruner`).

    Order for an input x [..., K] (each step only where configured):
    1. smooth: x·s (w8a8, pruned linears; s from :func:`amber_sim.pruning.quant.smoothing_scales`);
    2. score and mask: the N:M kernels on the smoothed x, the criterion's column factor computed from
       the smoothed weight W/s (the operands the GEMM multiplies; for ``amber`` the product
       |x_j·s_j|·‖W_:,j/s_j‖ equals the unsmoothed score, so the smoothing moves the mask only under
       ``magnitude``, ``clact`` and, slightly, ``amber-robust``), then the mitigation (median shift /
       variance correction); the stats are taken here;
    3. quantise: int8 per token, symmetric, of the kept values (w8a8; fake quant, dequantised);
       a median shift η is added back after quantisation (the rank-one term η·rowsum(Ŵ) stays in float).
    The linear then multiplies by ``effective_weight``: the original weight (fp16) or the int8 per
    output channel fake-quantised W/s (w8a8; W without /s on linears that are not smoothed).
    """

    name: str
    config: AmberConfig
    masks: bool
    factor: np.ndarray | None = field(repr=False)
    smoothing: object = field(repr=False)  # torch float32 [K] or None
    effective_weight: object = field(repr=False)  # torch tensor, the weight's dtype
    bias: object = field(default=None, repr=False)  # unchanged (not quantised)

    def __call__(self, x, *, mask: bool = True):
        """(tensor the linear should see in place of x: same shape, dtype, device; PruneStats of the mask).

        ``mask=False`` skips step 2 (decode forwards, bypassed linears): w8a8 still smooths and quantises,
        fp16 returns x itself. Stats then count x's nonzeros as kept.
        """
        import torch

        from amber_sim.pruning.quant import quantize_activation_per_token

        quantises = self.config.precision == "w8a8"
        if not quantises and not (mask and self.masks):
            return x, _count_stats(_kernel_rows(x, self.name))
        rows = _kernel_rows(x, self.name)
        if self.smoothing is not None:
            rows = rows.to(torch.float32) * self.smoothing  # NaN/Inf: the kernels' error names the layer
        shift = None
        if mask and self.masks:
            sparse, shift, stats = _mask_rows(rows, self.config, self.factor, self.name)
        else:
            sparse, stats = rows, _count_stats(rows)
        if quantises:
            q, scale = quantize_activation_per_token(sparse)
            if not bool(torch.isfinite(scale).all()):  # [rows] values: the check costs nothing
                raise InputError(f"layer {self.name}", "activation", "contains NaN/Inf (per-token int8 scale)")
            sparse = q.to(torch.float32) * scale
        if shift is not None:
            sparse = sparse + shift
        return sparse.to(x.dtype).reshape(x.shape).to(x.device), stats


def output_correction(calibration: CalibrationStats | None, name: str, channels: int, mitigation: str):
    """The trained output correction of linear ``name`` as float32 torch tensors (scale or None, shift [channels]);
    InputError naming the layer when calibration holds none (or one of another shape or mitigation)."""
    import torch

    corrections = calibration.output_corrections if calibration is not None else None
    if not corrections or name not in corrections:
        raise InputError(f"layer {name}", "output_corrections", f"mitigation {mitigation!r} needs this linear's "
                         "trained output correction; train it for the run's pruned linears with "
                         "learnable.train_output_corrections (or resolve the run with policy.Calibrator)")
    correction = corrections[name]
    shift = np.asarray(correction.shift, dtype=np.float32)
    scale = None if correction.scale is None else np.asarray(correction.scale, dtype=np.float32)
    if shift.shape != (channels,) or (scale is not None and scale.shape != (channels,)):
        raise InputError(f"layer {name}", "output_corrections", f"expected shape ({channels},), got "
                         f"{shift.shape}" + ("" if scale is None else f" and {scale.shape}"))
    if (scale is None) != (mitigation == "learnable-shift"):
        raise InputError(f"layer {name}", "output_corrections", f"{mitigation!r} expects "
                         f"{'a shift only' if mitigation == 'learnable-shift' else 'a scale and a shift'}, got "
                         f"{'a shift only' if scale is None else 'a scale and a shift'}")
    return (None if scale is None else torch.from_numpy(scale.copy())), torch.from_numpy(shift.copy())


def _absmax_for(activation_absmax, name: str, channels: int) -> np.ndarray:
    if activation_absmax is None:
        raise InputError(f"layer {name}", "activation_absmax", "w8a8 pruning and the scaling mitigation need the "
                         "per-input-channel max|X| from calibration text (collect_activation_absmax)")
    if isinstance(activation_absmax, dict):
        if name not in activation_absmax:
            raise InputError(f"layer {name}", "activation_absmax", f"no entry for {name!r} "
                             f"({len(activation_absmax)} linears given)")
        activation_absmax = activation_absmax[name]
    values = np.asarray(activation_absmax, dtype=np.float32)
    if values.shape != (channels,):
        raise InputError(f"layer {name}", "activation_absmax", f"expected shape ({channels},), got {values.shape}")
    return values


def make_linear_pruner(weight, config: AmberConfig, name: str, activation_absmax=None, bias=None, *,
                       masks: bool | None = None, calibration: CalibrationStats | None = None) -> LinearPruner:
    """The :class:`LinearPruner` of one linear with ``weight`` [N_out, K] (torch or NumPy).

    ``activation_absmax``: max|X_:,j| float32 [K], or a dict name → [K] (:func:`collect_activation_absmax`);
    needed when the linear is masked under w8a8 (the smoothing). ``masks``: whether the input is masked
    (default: unless the pattern is dense); apply_amber passes False for the w8a8 linears that the
    policy leaves dense (quantised, not smoothed). The criterion factor is computed once, here.
    """
    import torch

    config = config.validated()
    if calibration is not None and activation_absmax is None:
        activation_absmax = calibration.activation_absmax
    if masks is None:
        masks = not _pattern_is_dense(config)
    if masks and _pattern_is_dense(config):
        raise InputError(f"layer {name}", "pattern", "a dense pattern has nothing to mask")
    w = weight.detach() if isinstance(weight, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(weight))
    if w.dim() != 2:
        raise InputError(f"layer {name}", "weight", f"expected [N_out, K], got shape {tuple(w.shape)}")
    w32 = w.to("cpu").to(torch.float32)
    smoothing, effective = None, weight if isinstance(weight, torch.Tensor) else w
    if config.precision == "w8a8" and masks:
        from amber_sim.pruning.quant import smoothing_scales, weight_column_absmax

        absmax = _absmax_for(activation_absmax, name, w.shape[1])
        scales = smoothing_scales(absmax, weight_column_absmax(w32), config.smooth_alpha, f"layer {name}")
        smoothing = torch.from_numpy(scales)
        w32 = w32 / smoothing
    factor = None
    if masks and config.criterion == "gradient":  # static, measured; scaling leaves it unchanged (s cancels)
        factor = gradient_factor(calibration, name, w.shape[1])
    elif masks and config.mitigation == "scaling":
        factor = scaling_factor(w32, config, name, activation_absmax)
    elif masks:  # from the weight the GEMM multiplies: W/s under w8a8 (before its int8 rounding)
        factor = column_factor(config.criterion, w32.numpy(), f"layer {name}")
    if config.precision == "w8a8":
        from amber_sim.pruning.quant import fake_quantize_weight

        effective = fake_quantize_weight(w32).to(dtype=w.dtype, device=w.device)
    if isinstance(effective, torch.Tensor):
        effective = effective.detach()
    return LinearPruner(name=name, config=config, masks=masks, factor=factor, smoothing=smoothing,
                        effective_weight=effective, bias=bias)


def gradient_factor(calibration: CalibrationStats | None, name: str, channels: int) -> np.ndarray:
    """The gradient criterion's factor of linear ``name`` (InputError when calibration did not measure it)."""
    factors = calibration.gradient_factors if calibration is not None else None
    if not factors or name not in factors:
        raise InputError(f"layer {name}", "gradient_factors", "criterion 'gradient' needs the mean |dL/dx| per "
                         "channel measured on calibration text (calibrate.collect_gradient_factors)")
    values = np.asarray(factors[name], dtype=np.float32)
    if values.shape != (channels,):
        raise InputError(f"layer {name}", "gradient_factors", f"expected shape ({channels},), got {values.shape}")
    return values


def scaling_factor(w32, config: AmberConfig, name: str, activation_absmax) -> np.ndarray:
    """The column factor under the ``scaling`` transformation (arXiv 2509.22166): prune x/s with
    s_j = √(max|X_:,j| / max|W_:,j|) (calibration maxima) and multiply W·s. Its score |x_j/s_j| · f(W·s)_j is
    |x_j| times f(W·s)_j / s_j, so the scaling is a factor and the kept values stay x's own (the GEMM's
    (x/s)·(W·s)ᵀ equals x·Wᵀ; folding 1/s into the producer's weights costs nothing at inference).
    magnitude: 1/s; amber: ‖W_:,j‖ (unchanged: s cancels); clact: the per-forward ‖(X/s)_:,j‖ / s_j, so
    1/s² here times ‖X_:,j‖ per forward. Unlike Outstanding-sparse's inverted smoothing (x·s with
    s = max|X|^0.1 / max|W|^0.9, which changes the values the GEMM multiplies and is then quantised), this
    divides by √(max|X| / max|W|), SmoothQuant's direction at α = 0.5, and changes only the mask."""
    import torch

    from amber_sim.pruning.quant import smoothing_scales, weight_column_absmax

    if config.precision == "w8a8":
        raise InputError(f"layer {name}", "mitigation", "scaling and w8a8's inverted smoothing are alternatives; "
                         "use one")
    absmax = _absmax_for(activation_absmax, name, w32.shape[1])
    scales = smoothing_scales(absmax, weight_column_absmax(w32), 0.5, f"layer {name}").astype(np.float64)
    if config.criterion == "clact":
        return (1.0 / scales ** 2).astype(np.float32)
    base = column_factor(config.criterion, (w32 * torch.from_numpy(scales.astype(np.float32))).numpy(),
                         f"layer {name}")
    return ((1.0 if base is None else base.astype(np.float64)) / scales).astype(np.float32)


def collect_activation_absmax(model, input_ids) -> dict[str, np.ndarray]:
    """max|X_:,j| over every token of one dense forward of ``input_ids`` ([tokens] or [batch, tokens]),
    per input channel of every decoder linear: linear module name → float32 [K]."""
    import torch

    ids = torch.as_tensor(np.asarray(input_ids) if not isinstance(input_ids, torch.Tensor) else input_ids,
                          dtype=torch.long)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    maxima: dict[str, object] = {}
    hooks = []

    def record(name):
        def hook(_module, args):
            x = args[0].detach()
            current = x.reshape(-1, x.shape[-1]).abs().amax(dim=0).to(torch.float32).cpu()
            maxima[name] = current if name not in maxima else torch.maximum(maxima[name], current)
        return hook

    try:
        for name, _layer, _role, module in find_decoder_linears(model):
            hooks.append(module.register_forward_pre_hook(record(name)))
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: value.numpy() for name, value in maxima.items()}


def _is_decode(x) -> bool:
    return x.dim() < 2 or (x.dim() >= 3 and x.shape[-2] == 1) or (x.dim() == 2 and x.shape[0] == 1)


def apply_amber(model, config: AmberConfig, activation_absmax=None,
                calibration: CalibrationStats | None = None) -> AmberHandle:
    """Prune the selected linears' input activations during prefill; return a removable handle.

    ``precision="w8a8"``: every decoder linear is W8A8 (weights swapped for their fake-quantised int8
    versions until ``remove()``; activations quantised per token in prefill and decode), and the pruned
    ones are also inverse-smoothed, which needs ``activation_absmax`` (:func:`collect_activation_absmax`
    on calibration text). lm_head is never touched.

    A learnable mitigation also registers a forward hook on each pruned linear that corrects its output,
    y' = a ⊙ y + b (``calibration.output_corrections``; y includes the linear's bias), in y's dtype, on exactly
    the calls whose input was masked (prefill, not decode, not bypassed).
    """
    config = config.validated()
    if calibration is not None and activation_absmax is None:
        activation_absmax = calibration.activation_absmax
    handle = AmberHandle(config=config)
    w8a8 = config.precision == "w8a8"
    linears = find_decoder_linears(model)
    needs_absmax = w8a8 or config.mitigation == "scaling"
    if needs_absmax and activation_absmax is None and any(selected(role, layer, config)
                                                          for _n, layer, role, _m in linears):
        raise InputError("apply_amber", "activation_absmax", f"{'precision w8a8' if w8a8 else 'the scaling mitigation'} "
                         "with pruning needs the per-input-channel max|X| from calibration text: "
                         "collect_activation_absmax(model, ids)")
    corrections = {}
    if config.mitigation in LEARNABLE_MITIGATIONS:  # every pruned linear needs its correction: refuse before hooking
        corrections = {name: output_correction(calibration, name, module.out_features, config.mitigation)
                       for name, layer, role, module in linears if selected(role, layer, config)}
    try:
        for name, layer, role, module in linears:
            masks = selected(role, layer, config)
            if not masks and not w8a8:
                continue
            pruner = handle.pruners[name] = make_linear_pruner(module.weight, config, name, activation_absmax,
                                                               module.bias, masks=masks, calibration=calibration)
            stats = None
            if masks:
                stats = handle.stats[name] = LayerStats(name=name, layer=layer, role=role)
            if w8a8:
                import torch

                handle._swapped.append((module, module.weight))
                module.weight = torch.nn.Parameter(pruner.effective_weight, requires_grad=False)

            masked = [False]  # whether this call's input was masked: the output correction applies then only

            def hook(_module, args, *, _name=name, _pruner=pruner, _stats=stats, _masked=masked):
                x = args[0]
                mask = _stats is not None and not _is_decode(x) and _name not in handle.bypass  # decode stays dense
                _masked[0] = mask
                if not mask and not w8a8:
                    return None
                seen, result = _pruner(x, mask=mask)
                if mask:
                    _stats.add(result)
                return (seen,) + tuple(args[1:])

            handle._hooks.append(module.register_forward_pre_hook(hook))
            if name in corrections:
                scale, shift = corrections[name]

                def correct(_module, _args, output, *, _scale=scale, _shift=shift, _masked=masked):
                    if not _masked[0]:
                        return None
                    _masked[0] = False
                    b = _shift.to(device=output.device, dtype=output.dtype)
                    if _scale is None:
                        return output + b
                    return output * _scale.to(device=output.device, dtype=output.dtype) + b

                handle._hooks.append(module.register_forward_hook(correct))
    except BaseException:
        handle.remove()
        raise
    return handle


def sparsified_linear_flop_share(model, config: AmberConfig) -> float:
    """Share of the decoder linears' FLOPs (∝ in·out features, same tokens for all) whose input is pruned."""
    total = pruned = 0
    for _name, layer, role, module in find_decoder_linears(model):
        flops = module.in_features * module.out_features
        total += flops
        if selected(role, layer, config):
            pruned += flops
    return pruned / total if total else 0.0


__all__ = ["AmberConfig", "AmberHandle", "CalibrationStats", "LayerStats", "LinearPruner", "OutputCorrection",
           "PRECISIONS", "apply_amber", "collect_activation_absmax", "find_decoder_linears", "make_linear_pruner",
           "output_correction", "prune_activation", "selected", "sparsified_linear_flop_share", "SKIPPABLE_ROLES"]
