"""The calibrated layer policy: which q_proj / gate_proj linears stay dense.

The Amber Pruner rule (arXiv 2508.02128) always prunes down_proj, never k/v/o/up, and prunes q_proj and
gate_proj except in a few sensitive layers. The calibrated policy picks those on calibration text
(never on the evaluation split), under one of two metrics:

- ``output-error`` (the paper's): the relative output error e = ‖Y − Y′‖₂ / (‖Y‖₂ + ε) of each q_proj and
  gate_proj when its input alone is pruned (one dense forward records the inputs); layers are ranked by
  the worse of their two errors and both q and gate stay dense in the worst layers: every layer with
  e above a target error, or as many of the worst as possible while the sparsified share of linear FLOPs
  stays at least a target (``calibrate_skip_layers``).
- ``loss``: the end-to-end effect. With every selected linear pruned, the mean next-token loss (nats) on
  the calibration tokens is measured once, then once more with each single q_proj or gate_proj left
  dense; its benefit is the loss reduction. The skipped set is the subset of single linears with the
  largest total benefit whose in·out features fit the budget (pruned features − target share × all
  features): an exact 0/1 knapsack, since gate_proj and q_proj cost different FLOP shares
  (``calibrate_skip_linears``). Costs 1 + 2·layers forwards on the calibration tokens.

Shares count in·out features: every decoder linear sees the same tokens, so FLOPs are proportional.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from amber_sim.errors import InputError
from amber_sim.pruning.apply import (AmberConfig, CalibrationStats, apply_amber, find_decoder_linears,
                                     make_linear_pruner, selected, sparsified_linear_flop_share)
from amber_sim.pruning.layer_roles import SKIPPABLE_ROLES
from amber_sim.pruning.names import CALIBRATION_METRICS

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SkipCandidate:
    """One q_proj or gate_proj that the calibrated policy may leave dense."""

    name: str
    layer: int
    role: str
    in_out_features: int  # ∝ its FLOPs


@dataclass(frozen=True)
class FlopBudget:
    """In·out features of all decoder linears, of the pruned ones under the unskipped rule, and how many
    may be given back (left dense) while the sparsified share stays ≥ target_share."""

    total_features: int
    pruned_features: int
    target_share: float

    @property
    def base_share(self) -> float:
        return self.pruned_features / self.total_features

    @property
    def skippable_features(self) -> int:
        allowed = self.pruned_features - self.target_share * self.total_features
        return max(0, int(math.floor(allowed + 1e-9 * self.total_features)))


def _unskipped(config: AmberConfig) -> AmberConfig:
    """``config`` with the amber-paper rule and nothing skipped, in fp16 (skip lists are chosen on fp16 masks)."""
    return dataclasses.replace(config, policy="amber-paper", skip_layers=(), skip_linears=(), precision="fp16")


def skip_candidates(model) -> list[SkipCandidate]:
    return [SkipCandidate(name, layer, role, module.in_features * module.out_features)
            for name, layer, role, module in find_decoder_linears(model) if role in SKIPPABLE_ROLES]


def flop_budget(model, config: AmberConfig, target_share: float) -> FlopBudget:
    if not 0.0 <= target_share <= 1.0:
        raise InputError("calibrated policy", "target_flop_share", f"expected a share in [0, 1], got {target_share}")
    base = _unskipped(config)
    total = pruned = 0
    for _name, layer, role, module in find_decoder_linears(model):
        features = module.in_features * module.out_features
        total += features
        pruned += features if selected(role, layer, base) else 0
    return FlopBudget(total, pruned, target_share)


def capture_linear_inputs(model, input_ids, roles=SKIPPABLE_ROLES) -> dict[str, object]:
    """Inputs of every decoder linear with a role in ``roles`` in one dense forward (reusable across configs)."""
    import torch

    captured: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_pre_hook(lambda _m, args, _n=name: captured.__setitem__(_n, args[0].detach()))
             for name, _layer, role, module in find_decoder_linears(model) if role in roles]
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def layer_output_errors(model, input_ids, config: AmberConfig, captured: dict[str, object] | None = None,
                        calibration: CalibrationStats | None = None) -> dict[tuple[int, str], float]:
    """Relative output error e = ‖Y − Y′‖₂ / (‖Y‖₂ + ε) of each q_proj and gate_proj when its input alone is
    pruned, on the calibration tokens (one dense forward records the inputs, unless ``captured`` already
    holds them from :func:`capture_linear_inputs`)."""
    import torch

    if captured is None:
        captured = capture_linear_inputs(model, input_ids)
    modules = dict(model.named_modules())
    errors = {}
    with torch.no_grad():
        for candidate in skip_candidates(model):
            x = captured[candidate.name]
            weight = modules[candidate.name].weight.detach().float()
            pruned, _ = make_linear_pruner(weight, config, candidate.name, calibration=calibration)(x)
            dense_y = torch.nn.functional.linear(x.float(), weight)
            sparse_y = torch.nn.functional.linear(pruned.float(), weight)
            errors[(candidate.layer, candidate.role)] = float(
                torch.linalg.vector_norm(dense_y - sparse_y) / (torch.linalg.vector_norm(dense_y) + 1e-12))
    return errors


def calibrate_skip_layers(model, input_ids, config: AmberConfig, target_error: float | None = None,
                          target_flop_share: float | None = None, captured: dict[str, object] | None = None,
                          calibration: CalibrationStats | None = None
                          ) -> tuple[tuple[int, ...], dict[tuple[int, str], float]]:
    """The calibrated policy, output-error metric: rank layers by the worse of their q_proj / gate_proj errors
    and keep q/gate dense in the worst ones, either every layer whose error exceeds ``target_error``, or as
    many of the worst as possible while the sparsified share of linear FLOPs stays at least
    ``target_flop_share`` (stopping at the first layer that would go below it)."""
    if (target_error is None) == (target_flop_share is None):
        raise InputError("calibrated policy", None, "give exactly one of target_error or target_flop_share")
    base = _unskipped(config)
    errors = layer_output_errors(model, input_ids, base, captured, calibration)
    per_layer: dict[int, float] = {}
    for (layer, _role), error in errors.items():
        per_layer[layer] = max(per_layer.get(layer, 0.0), error)
    ranked = sorted(per_layer, key=lambda layer: (-per_layer[layer], layer))
    skip: list[int] = []
    for layer in ranked:
        if target_error is not None:
            if per_layer[layer] <= target_error:
                break
            skip.append(layer)
            continue
        trial = AmberConfig(pattern=base.pattern, criterion=base.criterion, policy="amber-paper",
                            mitigation=base.mitigation, skip_layers=tuple(skip + [layer]))
        if sparsified_linear_flop_share(model, trial) < target_flop_share:
            break
        skip.append(layer)
    return tuple(sorted(skip)), errors


def collect_static_shifts(model, input_ids, config: AmberConfig) -> tuple[tuple[str, float], ...]:
    """η of every linear ``config`` prunes, measured once on calibration tokens for a static median shift:
    the mean over tokens of the per-token median of the linear's dense input (arXiv 2509.22166's code takes
    the mean of the per-batch means of per-token medians). One dense forward; (name, η) in module order."""
    import torch

    wanted = {name: module for name, layer, role, module in find_decoder_linears(model) if selected(role, layer, config)}
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}

    def record(name):
        def hook(_module, args):
            rows = args[0].detach().to("cpu", torch.float32).reshape(-1, args[0].shape[-1]).numpy()
            sums[name] = sums.get(name, 0.0) + float(np.median(rows, axis=1).astype(np.float64).sum())
            counts[name] = counts.get(name, 0) + rows.shape[0]
        return hook

    hooks = [module.register_forward_pre_hook(record(name)) for name, module in wanted.items()]
    try:
        with torch.no_grad():
            model(input_ids=torch.as_tensor(input_ids))
    finally:
        for hook in hooks:
            hook.remove()
    return tuple((name, sums[name] / counts[name]) for name in wanted if counts.get(name))


def collect_gradient_factors(model, input_ids, config: AmberConfig) -> dict[str, np.ndarray]:
    """The gradient criterion's static factors: for every linear ``config`` prunes, the mean over calibration
    tokens of |∂L/∂x_tj|, L the mean next-token loss of the dense model on ``input_ids``, normalised by the
    smallest nonzero mean (float32 [K]). One forward and one backward; weights get no gradients (the input
    embeddings are the leaf), and every parameter's requires_grad is restored.

    arXiv 2509.22166's code accumulates the signed gradient per token position and scores |x·g| at the same
    position; a factor static per channel needs the token axis reduced, and a signed sum would cancel, so the
    mean absolute gradient is taken."""
    import torch

    from amber_sim.pruning.criteria import normalise_by_min
    from amber_sim.pruning.evaluate import next_token_loss

    wanted = {name: module for name, layer, role, module in find_decoder_linears(model) if selected(role, layer, config)}
    sums: dict[str, object] = {}
    counts: dict[str, int] = {}

    def record(name):
        def hook(_module, grad_input, _grad_output):
            rows = grad_input[0].detach().reshape(-1, grad_input[0].shape[-1]).abs().to(torch.float64)
            sums[name] = sums[name] + rows.sum(dim=0) if name in sums else rows.sum(dim=0)
            counts[name] = counts.get(name, 0) + rows.shape[0]
        return hook

    parameters = list(model.parameters())
    trainable = [p.requires_grad for p in parameters]
    hooks = [module.register_full_backward_hook(record(name)) for name, module in wanted.items()]
    hooks.append(model.get_input_embeddings().register_forward_hook(lambda _m, _a, out: out.requires_grad_(True)))
    try:
        for p in parameters:
            p.requires_grad_(False)
        ids = torch.as_tensor(input_ids)
        with torch.enable_grad():
            next_token_loss(model(input_ids=ids).logits, ids).backward()
    finally:
        for hook in hooks:
            hook.remove()
        for p, flag in zip(parameters, trainable):
            p.requires_grad_(flag)
    return {name: normalise_by_min((sums[name] / counts[name]).numpy()) for name in wanted if name in sums}


def mean_token_loss(model, input_ids) -> float:
    """Mean next-token negative log-likelihood (nats) of ``input_ids`` [batch, tokens]."""
    import torch

    from amber_sim.pruning.evaluate import next_token_loss

    with torch.no_grad():
        return float(next_token_loss(model(input_ids=input_ids).logits, input_ids))


def loss_benefits(model, input_ids, config: AmberConfig, progress: Progress | None = None,
                  calibration: CalibrationStats | None = None) -> tuple[float, dict[tuple[int, str], float]]:
    """(calibration loss with every selected linear pruned, {(layer, role): loss reduction in nats when that one
    q_proj / gate_proj alone is left dense}). One pruned forward plus one per candidate."""
    base = _unskipped(config)
    candidates = skip_candidates(model)
    benefits: dict[tuple[int, str], float] = {}
    with apply_amber(model, base, calibration=calibration) as handle:
        pruned_loss = mean_token_loss(model, input_ids)
        if progress:
            progress(1, len(candidates) + 1, "calibration loss, all pruned")
        for index, candidate in enumerate(candidates):
            handle.bypass = {candidate.name}
            benefits[(candidate.layer, candidate.role)] = pruned_loss - mean_token_loss(model, input_ids)
            if progress:
                progress(index + 2, len(candidates) + 1, f"calibration loss, layer {candidate.layer} {candidate.role}")
    return pruned_loss, benefits


def knapsack_select(benefits: dict[tuple[int, str], float], costs: dict[tuple[int, str], int],
                    budget: int) -> tuple[tuple[int, str], ...]:
    """The subset with the largest total positive benefit whose total cost is ≤ ``budget`` (exact 0/1 knapsack
    over cost units of gcd(costs); ties prefer fewer, then earlier, items). Items with benefit ≤ 0 are never
    chosen."""
    items = sorted(key for key in benefits if benefits[key] > 0 and costs[key] <= budget)
    if not items or budget <= 0:
        return ()
    unit = math.gcd(*(costs[key] for key in items))
    capacity = budget // unit
    if capacity > 2_000_000:
        raise InputError("calibrated policy", "target_flop_share", f"FLOP budget of {capacity} cost units is too "
                         "fine-grained for the exact selection")
    best = np.zeros(capacity + 1)
    taken = np.zeros((len(items), capacity + 1), dtype=bool)
    for index, key in enumerate(items):
        weight = costs[key] // unit
        if weight > capacity:
            continue
        with_item = best[:capacity + 1 - weight] + benefits[key]
        better = with_item > best[weight:] + 1e-15
        taken[index, weight:] = better
        best[weight:] = np.where(better, with_item, best[weight:])
    chosen, room = [], capacity
    for index in range(len(items) - 1, -1, -1):
        if taken[index, room]:
            chosen.append(items[index])
            room -= costs[items[index]] // unit
    return tuple(sorted(chosen))


def calibrate_skip_linears(model, input_ids, config: AmberConfig, target_flop_share: float,
                           progress: Progress | None = None, calibration: CalibrationStats | None = None
                           ) -> tuple[tuple[tuple[int, str], ...], dict[tuple[int, str], float]]:
    """The calibrated policy, loss metric: the (layer, role) q_proj / gate_proj linears to leave dense, chosen
    by :func:`knapsack_select` on :func:`loss_benefits` within the FLOP budget of ``target_flop_share``."""
    budget = flop_budget(model, config, target_flop_share)
    _pruned_loss, benefits = loss_benefits(model, input_ids, config, progress, calibration)
    costs = {(c.layer, c.role): c.in_out_features for c in skip_candidates(model)}
    return knapsack_select(benefits, costs, budget.skippable_features), benefits


__all__ = ["CALIBRATION_METRICS", "FlopBudget", "SkipCandidate", "calibrate_skip_layers", "calibrate_skip_linears",
           "capture_linear_inputs", "flop_budget", "knapsack_select", "layer_output_errors", "loss_benefits",
           "mean_token_loss", "skip_candidates"]
