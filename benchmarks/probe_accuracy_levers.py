"""Accuracy levers beyond the issue's definitions, probed on SmolLM2-135M (docs/accuracy.md, "Levers probed").

Not part of the tool: these are the experiments behind the statement that the #3 accuracy targets are out
of reach here. Each prints the numbers docs/accuracy.md quotes; all use amber-robust + variance-correction
(the pair of the target check) unless said otherwise, 1,024 calibration tokens, and 2,048-token evaluation windows.

    .venv/bin/python benchmarks/probe_accuracy_levers.py roles             # ~1 min: loss cost of each role
    .venv/bin/python benchmarks/probe_accuracy_levers.py single-linear     # ~10 min: all-role knapsack
    .venv/bin/python benchmarks/probe_accuracy_levers.py fisher            # ~2 min: gradient-weighted factor
    .venv/bin/python benchmarks/probe_accuracy_levers.py ls-compensation   # ~1 min: refitted weights

- roles: mean calibration loss increase (nats) when one role's input is pruned in all 30 layers.
- single-linear: each of the 210 decoder linears pruned alone (its calibration-loss cost), then the exact
  knapsack (amber_sim.pruning.calibrate.knapsack_select) leaves dense the set with the largest total cost
  within the FLOP budget of the target share, over all seven roles (the calibrated policy only skips
  q/gate); prints the calibration loss increase and the evaluation perplexity ratio of that choice.
- fisher: a calibrated criterion: column factor c_j = sqrt(sum_i F_i W_ij^2), F_i the mean squared loss
  gradient of output i on calibration text (one backward), against plain amber, both under amber-paper.
- ls-compensation: a closed-form weight refit W' = W E[x x'^T] (E[x' x'^T] + lambda I)^-1 that predicts the
  dense output from the pruned input x' (fit on 4 x 1,024 calibration tokens, tested on the next 1,024):
  relative output error of W x' and of W' x' against W x for 4 layers x 5 roles; also of W x' + W E[x - x']
  (a static bias correction, fit on the same tokens).
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections import Counter
from unittest import mock

import numpy as np

CALIBRATION_TOKENS = 1024
CRITERION, MITIGATION = "amber-robust", "variance-correction"


def _setup(eval_windows: int):
    import torch

    from amber_sim.models.corpus import load_split, token_windows
    from amber_sim.models.loading import load_model

    loaded = load_model("smollm2-135m")
    calibration = torch.as_tensor(token_windows(load_split("calibration", loaded.tokenizer), CALIBRATION_TOKENS, 1))
    evaluation = torch.as_tensor(token_windows(load_split("evaluation", loaded.tokenizer), 2048, eval_windows)) \
        if eval_windows else None
    return loaded, calibration, evaluation


def _window_losses(model, windows) -> list[float]:
    from amber_sim.pruning.calibrate import mean_token_loss

    return [mean_token_loss(model, windows[i:i + 1]) for i in range(windows.shape[0])]


def _eval_ratio(model, windows, config, *, dense=None, bypass=frozenset(), patch_factor=None) -> float:
    """exp(mean pruned loss − mean dense loss) over the windows: the perplexity ratio (equal-length windows).
    ``dense``: the dense model's window losses when already measured."""
    from amber_sim.pruning import apply as apply_module

    dense = _window_losses(model, windows) if dense is None else dense
    patcher = mock.patch.object(apply_module, "column_factor", patch_factor) if patch_factor else contextlib.nullcontext()
    with patcher, apply_module.apply_amber(model, config) as handle:
        handle.bypass = set(bypass)
        pruned = _window_losses(model, windows)
    return math.exp(float(np.mean(pruned)) - float(np.mean(dense)))


def probe_roles(args) -> None:
    from amber_sim.pruning.apply import AmberConfig, apply_amber, find_decoder_linears
    from amber_sim.pruning.calibrate import mean_token_loss
    from amber_sim.roles import LINEAR_ROLES

    loaded, calibration, _ = _setup(0)
    model = loaded.model
    linears = find_decoder_linears(model)
    total = sum(module.in_features * module.out_features for *_, module in linears)
    dense = mean_token_loss(model, calibration)
    print(f"dense calibration loss {dense:.4f} nats")
    for pattern in args.patterns.split(","):
        config = AmberConfig(pattern=pattern, criterion=CRITERION, mitigation=MITIGATION, policy="all")
        with apply_amber(model, config) as handle:
            for role in LINEAR_ROLES:
                handle.bypass = {name for name, _layer, other, _m in linears if other != role}
                share = sum(m.in_features * m.out_features for _n, _l, r, m in linears if r == role) / total
                cost = mean_token_loss(model, calibration) - dense
                print(f"{pattern} {role:>4}: +{cost:.4f} nats, {share:5.1%} of linear FLOPs, "
                      f"{cost / (100 * share):.4f} nats per percent")


def probe_single_linear(args) -> None:
    from amber_sim.pruning.apply import AmberConfig, apply_amber, find_decoder_linears
    from amber_sim.pruning.calibrate import knapsack_select, mean_token_loss

    loaded, calibration, evaluation = _setup(args.windows)
    model = loaded.model
    linears = find_decoder_linears(model)
    features = {(layer, role): m.in_features * m.out_features for _n, layer, role, m in linears}
    names = {(layer, role): name for name, layer, role, _m in linears}
    config = AmberConfig(pattern=args.pattern, criterion=CRITERION, mitigation=MITIGATION, policy="all")
    dense = mean_token_loss(model, calibration)
    costs = {}
    with apply_amber(model, config) as handle:
        for key, name in names.items():
            handle.bypass = set(names.values()) - {name}
            costs[key] = mean_token_loss(model, calibration) - dense
    budget = int(math.floor((1 - args.target_share) * sum(features.values())))
    left_dense = set(knapsack_select(costs, features, budget))
    pruned = [key for key in features if key not in left_dense]
    share = sum(features[key] for key in pruned) / sum(features.values())
    print(f"{args.pattern}: single-linear costs sum {sum(costs.values()):.4f} nats; chosen share {share:.1%}, "
          f"predicted {sum(costs[key] for key in pruned):+.4f} nats; pruned per role "
          f"{dict(Counter(role for _layer, role in pruned))}")
    bypass = {names[key] for key in left_dense}
    with apply_amber(model, config) as handle:
        handle.bypass = bypass
        measured = mean_token_loss(model, calibration) - dense
    print(f"calibration: {measured:+.4f} nats ({math.exp(measured):.3f} x); evaluation {args.windows} x 2,048 "
          f"tokens: {_eval_ratio(model, evaluation, config, bypass=bypass):.3f} x dense perplexity")


def _output_fisher_factors(model, calibration, linears) -> dict[str, np.ndarray]:
    import torch

    squared: dict[str, torch.Tensor] = {}

    def hook(_module, _grad_in, grad_out, *, _name):
        g = grad_out[0].detach().float().reshape(-1, grad_out[0].shape[-1])
        squared[_name] = squared.get(_name, 0) + (g * g).sum(0)

    hooks = [m.register_full_backward_hook(lambda *a, _n=name: hook(*a, _name=_n)) for name, _l, _r, m in linears]
    embedding = model.get_input_embeddings()
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        embedding.weight.requires_grad_(True)  # so the backward reaches every linear
        logits = model(input_ids=calibration).logits[:, :-1].float()
        torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), calibration[:, 1:].reshape(-1)).backward()
    finally:
        for h in hooks:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
            p.grad = None
    factors = {}
    for name, _layer, _role, module in linears:
        weight = module.weight.detach().float()
        fisher = squared[name] / squared[name].mean()
        column = torch.sqrt((fisher[:, None] * weight * weight).sum(0))
        factors[name] = (column / column.min()).numpy().astype(np.float32)
    return factors


def probe_fisher(args) -> None:
    from amber_sim.pruning.apply import AmberConfig, find_decoder_linears
    from amber_sim.pruning.criteria import column_factor

    loaded, calibration, evaluation = _setup(args.windows)
    model = loaded.model
    linears = find_decoder_linears(model)
    factors = _output_fisher_factors(model, calibration, linears)

    def fisher_factor(criterion, w, where="criterion"):
        return factors.get(where.removeprefix("layer "), None) if criterion == "amber" else column_factor(criterion, w, where)

    dense = _window_losses(model, evaluation)
    for pattern in args.patterns.split(","):
        config = AmberConfig(pattern=pattern, criterion="amber", mitigation=MITIGATION, policy="amber-paper", skip_layers=())
        plain = _eval_ratio(model, evaluation, config, dense=dense)
        weighted = _eval_ratio(model, evaluation, config, dense=dense, patch_factor=fisher_factor)
        print(f"{pattern} amber-paper, {args.windows} x 2,048 tokens: amber {plain:.3f} x, "
              f"gradient-weighted amber {weighted:.3f} x dense perplexity")


def probe_ls_compensation(args) -> None:
    import torch

    from amber_sim.models.corpus import load_split, token_windows
    from amber_sim.pruning.apply import AmberConfig, find_decoder_linears, prune_activation
    from amber_sim.pruning.calibrate import capture_linear_inputs
    from amber_sim.pruning.criteria import column_factor

    loaded, _, _ = _setup(0)
    model = loaded.model
    tokens = token_windows(load_split("calibration", loaded.tokenizer), CALIBRATION_TOKENS, 5)
    roles = {"q", "o", "gate", "up", "down"}
    fits = [capture_linear_inputs(model, torch.as_tensor(tokens[i:i + 1]), roles) for i in range(4)]
    test = capture_linear_inputs(model, torch.as_tensor(tokens[4:5]), roles)
    for pattern in args.patterns.split(","):
        config = AmberConfig(pattern=pattern, criterion=CRITERION, mitigation=MITIGATION, policy="all")
        plain_errors, refit_errors, bias_errors = [], [], []
        for name, layer, role, module in find_decoder_linears(model):
            if layer not in (2, 10, 20, 28) or role not in roles:
                continue
            weight = module.weight.detach().float()
            factor = column_factor(CRITERION, weight.numpy(), name)
            x = torch.cat([fit[name].reshape(-1, weight.shape[1]) for fit in fits]).float()
            x_pruned = prune_activation(x, config, factor, name)[0].float()
            gram = x_pruned.T @ x_pruned
            ridge = args.ridge * torch.diag(gram).mean() * torch.eye(weight.shape[1])
            refit = weight @ torch.linalg.solve(gram + ridge, x_pruned.T @ x).T
            x_test = test[name].reshape(-1, weight.shape[1]).float()
            x_test_pruned = prune_activation(x_test, config, factor, name)[0].float()
            bias = weight @ (x - x_pruned).mean(0)  # static bias correction: W·E[x − x′]
            y = x_test @ weight.T
            plain_errors.append(float((y - x_test_pruned @ weight.T).norm() / y.norm()))
            refit_errors.append(float((y - x_test_pruned @ refit.T).norm() / y.norm()))
            bias_errors.append(float((y - x_test_pruned @ weight.T - bias).norm() / y.norm()))
            print(f"{pattern} layer {layer:>2} {role:>4}: relative output error {plain_errors[-1]:.3f} pruned, "
                  f"{refit_errors[-1]:.3f} refitted, {bias_errors[-1]:.3f} bias-corrected")
        print(f"{pattern}: mean {np.mean(plain_errors):.3f} pruned, {np.mean(refit_errors):.3f} refitted "
              f"(ridge {args.ridge}), {np.mean(bias_errors):.3f} bias-corrected (held-out tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="probe", required=True)
    roles = sub.add_parser("roles")
    roles.add_argument("--patterns", default="8:16,2:4")
    single = sub.add_parser("single-linear")
    single.add_argument("--pattern", default="8:16")
    single.add_argument("--target-share", type=float, default=0.55)
    single.add_argument("--windows", type=int, default=4)
    fisher = sub.add_parser("fisher")
    fisher.add_argument("--patterns", default="8:16")
    fisher.add_argument("--windows", type=int, default=2)
    ls = sub.add_parser("ls-compensation")
    ls.add_argument("--patterns", default="8:16,2:4")
    ls.add_argument("--ridge", type=float, default=0.01)
    args = parser.parse_args()
    {"roles": probe_roles, "single-linear": probe_single_linear, "fisher": probe_fisher,
     "ls-compensation": probe_ls_compensation}[args.probe](args)


if __name__ == "__main__":
    main()
