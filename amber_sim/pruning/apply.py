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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern
from amber_sim.pruning import kernels
from amber_sim.pruning.criteria import CRITERIA, clact_factors, column_factor
from amber_sim.pruning.layer_roles import LINEAR_ROLES, PUBLISHED_SKIP_LAYERS, SKIPPABLE_ROLES, paper_rule_sparsifies

POLICIES = ("all", "amber-paper", "calibrated")
MITIGATIONS = ("none", "median-shift", "variance-correction", "median-shift+variance-correction")
_MODULE_ROLE = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
                "down_proj": "down"}


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

    def validated(self) -> "AmberConfig":
        pattern = parse_pattern(self.pattern, "amber config", "pattern")
        if pattern.kind == "dense" or (pattern.kind == "nm" and pattern.n >= pattern.m):
            raise InputError("amber config", "pattern", f"expected N:M with N < M or unstructured, got {self.pattern!r}")
        for name, value, allowed in (("criterion", self.criterion, CRITERIA), ("policy", self.policy, POLICIES),
                                     ("mitigation", self.mitigation, MITIGATIONS)):
            if value not in allowed:
                raise InputError("amber config", name, f"expected one of {', '.join(allowed)}, got {value!r}")
        for item in self.skip_linears:
            if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], int)
                    or item[1] not in SKIPPABLE_ROLES):
                raise InputError("amber config", "skip_linears", f"expected (layer, 'q' or 'gate') pairs, got {item!r}")
        if self.policy == "calibrated" and self.skip_layers is None:
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
    _hooks: list = field(default_factory=list, repr=False)

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def __enter__(self) -> "AmberHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    @property
    def pruned_names(self) -> list[str]:
        return list(self.stats)


def find_decoder_linears(model) -> list[tuple[str, int, str, object]]:
    """(name, layer index, role, module) of every q/k/v/o/gate/up/down projection of the decoder layers."""
    import torch

    found = []
    seen_linear_names = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        seen_linear_names.append(name)
        parts = name.split(".")
        role = _MODULE_ROLE.get(parts[-1])
        layer = next((int(part) for part in reversed(parts[:-1]) if part.isdigit()), None)
        if role is not None and layer is not None:
            found.append((name, layer, role, module))
    if not found:
        shown = ", ".join(seen_linear_names[:8]) or "none"
        raise InputError("model", None, f"no q/k/v/o/gate/up/down projections found in decoder layers "
                         f"(linear modules found: {shown}); expected LLaMA/Qwen2-style module names")
    return found


def selected(role: str, layer: int, config: AmberConfig) -> bool:
    """The layer policy: which linears are pruned."""
    if config.policy == "all":
        return role in LINEAR_ROLES
    skip = config.skip_layers
    if skip is None:
        skip = PUBLISHED_SKIP_LAYERS.get(config.model_name or "", ())
    if (layer, role) in config.skip_linears:
        return False
    return paper_rule_sparsifies(role, layer, tuple(skip))


def _prune_rows(rows: np.ndarray, out: np.ndarray, config: AmberConfig, factor, name: str) -> kernels.PruneStats:
    pattern = parse_pattern(config.pattern)
    if pattern.kind == "unstructured":
        return kernels.prune_unstructured(rows, 0.5, factor, out=out, layer=name)
    return kernels.prune(rows, pattern.n, pattern.m, factor, out=out, layer=name)


def prune_activation(x, config: AmberConfig, factor, name: str):
    """Prune a [..., K] torch activation per ``config``; returns (tensor the linear should see, stats)."""
    import torch

    original_dtype = x.dtype
    work = x.detach().to(torch.float32).contiguous()
    rows = work.reshape(-1, work.shape[-1]).numpy()
    if config.criterion == "clact":
        factor = clact_factors(rows, name)
    shift = None
    if config.mitigation.startswith("median-shift"):
        shift = np.median(rows, axis=1, keepdims=True).astype(np.float32)
        source = rows - shift
    else:
        source = rows
    out = np.empty_like(source)
    stats = _prune_rows(np.ascontiguousarray(source), out, config, factor, name)
    if config.mitigation.endswith("variance-correction"):
        dense_std = source.std(axis=1, keepdims=True)
        pruned_std = out.std(axis=1, keepdims=True)
        out *= np.where(pruned_std > 0, dense_std / np.maximum(pruned_std, 1e-30), 1.0).astype(np.float32)
    if shift is not None:
        out += shift
    result = torch.from_numpy(out).reshape(x.shape).to(original_dtype)
    return result, stats


def apply_amber(model, config: AmberConfig) -> AmberHandle:
    """Prune the selected linears' input activations during prefill; return a removable handle."""
    config = config.validated()
    handle = AmberHandle(config=config)
    for name, layer, role, module in find_decoder_linears(model):
        if not selected(role, layer, config):
            continue
        weight = module.weight.detach().to("cpu").float().numpy()
        factor = column_factor(config.criterion, weight, f"layer {name}")  # once per layer, offline
        stats = handle.stats[name] = LayerStats(name=name, layer=layer, role=role)

        def hook(_module, args, kwargs=None, *, _name=name, _factor=factor, _stats=stats):
            x = args[0]
            if x.dim() < 2 or (x.dim() >= 3 and x.shape[-2] == 1) or (x.dim() == 2 and x.shape[0] == 1):
                return None  # decode: one new token stays dense
            if _name in handle.bypass:
                return None
            pruned, result = prune_activation(x, config, _factor, _name)
            _stats.calls += 1
            _stats.total += result.total
            _stats.kept += result.kept_count
            _stats.natural_zeros += result.natural_zero_count
            return (pruned,) + tuple(args[1:])

        handle._hooks.append(module.register_forward_pre_hook(hook))
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


__all__ = ["AmberConfig", "AmberHandle", "LayerStats", "apply_amber", "find_decoder_linears", "prune_activation",
           "selected", "sparsified_linear_flop_share", "SKIPPABLE_ROLES"]


def layer_output_errors(model, input_ids, config: AmberConfig, captured=None) -> dict[tuple[int, str], float]:
    """See :func:`amber_sim.pruning.calibrate.layer_output_errors` (kept importable from here)."""
    from amber_sim.pruning.calibrate import layer_output_errors as output_errors

    return output_errors(model, input_ids, config, captured)


def calibrate_skip_layers(model, input_ids, config: AmberConfig, target_error: float | None = None,
                          target_flop_share: float | None = None,
                          captured=None) -> tuple[tuple[int, ...], dict[tuple[int, str], float]]:
    """See :func:`amber_sim.pruning.calibrate.calibrate_skip_layers` (kept importable from here)."""
    from amber_sim.pruning.calibrate import calibrate_skip_layers as calibrate

    return calibrate(model, input_ids, config, target_error, target_flop_share, captured)
