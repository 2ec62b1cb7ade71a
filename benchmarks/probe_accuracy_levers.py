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

Each probe also writes what it prints, with its settings and exact command line, to DIR/probe.json
(``--out DIR``, default reports/accuracy/probe-<probe>/; written atomically). docs/accuracy.md quotes those
committed files and tests/test_accuracy_docs.py checks that it does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import sys
from collections import Counter
from pathlib import Path
from unittest import mock

import numpy as np

CALIBRATION_TOKENS = 1024
CRITERION, MITIGATION = "amber-robust", "variance-correction"
MODEL = "smollm2-135m"
WINDOW_TOKENS = 2048
#: the roles the amber-paper policy prunes (in every layer but its skip list; all 30 layers in the roles probe)
AMBER_PAPER_ROLES = ("q", "gate", "down")
LS_LAYERS = (2, 10, 20, 28)  # the layers the ls-compensation probe fits


def _default_out(probe: str) -> Path:
    from amber_sim.paths import PROJECT_ROOT

    return PROJECT_ROOT / "reports" / "accuracy" / f"probe-{probe}"


def _write_probe(args, settings: dict, results: dict) -> Path:
    """DIR/probe.json: the probe, its exact command line, its settings and every number it printed."""
    import torch

    from amber_sim.atomic import atomic_write_text

    data = {"probe": args.probe, "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "settings": {"model": MODEL, "calibration_tokens": CALIBRATION_TOKENS, **settings},
            "torch": torch.__version__, "results": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_text(out / "probe.json", json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def _setup(eval_windows: int):
    import torch

    from amber_sim.models.corpus import load_split, token_windows
    from amber_sim.models.loading import load_model

    loaded = load_model(MODEL)
    calibration = torch.as_tensor(token_windows(load_split("calibration", loaded.tokenizer), CALIBRATION_TOKENS, 1))
    evaluation = torch.as_tensor(token_windows(load_split("evaluation", loaded.tokenizer), WINDOW_TOKENS, eval_windows)) \
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
    patterns = args.patterns.split(",")
    results = {"dense_calibration_loss": dense, "patterns": {}}
    for pattern in patterns:
        config = AmberConfig(pattern=pattern, criterion=CRITERION, mitigation=MITIGATION, policy="all")
        rows = results["patterns"][pattern] = {}
        with apply_amber(model, config) as handle:
            for role in LINEAR_ROLES:
                handle.bypass = {name for name, _layer, other, _m in linears if other != role}
                share = sum(m.in_features * m.out_features for _n, _l, r, m in linears if r == role) / total
                cost = mean_token_loss(model, calibration) - dense
                rows[role] = {"nats": cost, "flop_share": share, "nats_per_percent": cost / (100 * share)}
                print(f"{pattern} {role:>4}: +{cost:.4f} nats, {share:5.1%} of linear FLOPs, "
                      f"{cost / (100 * share):.4f} nats per percent")
            # the amber-paper roles together, in all 30 layers: do the single-role costs add up?
            handle.bypass = {name for name, _layer, other, _m in linears if other not in AMBER_PAPER_ROLES}
            share = sum(m.in_features * m.out_features for _n, _l, r, m in linears if r in AMBER_PAPER_ROLES) / total
            cost = mean_token_loss(model, calibration) - dense
            summed = sum(rows[role]["nats"] for role in AMBER_PAPER_ROLES)
            rows["amber-paper"] = {"roles": list(AMBER_PAPER_ROLES), "nats": cost, "flop_share": share,
                                   "nats_per_percent": cost / (100 * share), "summed_role_nats": summed}
            print(f"{pattern} {'+'.join(AMBER_PAPER_ROLES)} (amber-paper roles): +{cost:.4f} nats, {share:5.1%} of "
                  f"linear FLOPs, {cost / (100 * share):.4f} nats per percent (single roles sum to +{summed:.4f})")
    _write_probe(args, {"criterion": CRITERION, "mitigation": MITIGATION, "policy": "all (one role set unbypassed)",
                        "patterns": patterns}, results)


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
    predicted = sum(costs[key] for key in pruned)
    per_role = dict(Counter(role for _layer, role in pruned))
    print(f"{args.pattern}: single-linear costs sum {sum(costs.values()):.4f} nats; chosen share {share:.1%}, "
          f"predicted {predicted:+.4f} nats; pruned per role {per_role}")
    bypass = {names[key] for key in left_dense}
    with apply_amber(model, config) as handle:
        handle.bypass = bypass
        measured = mean_token_loss(model, calibration) - dense
    evaluation_ratio = _eval_ratio(model, evaluation, config, bypass=bypass)
    print(f"calibration: {measured:+.4f} nats ({math.exp(measured):.3f} x); evaluation {args.windows} x 2,048 "
          f"tokens: {evaluation_ratio:.3f} x dense perplexity")
    results = {"dense_calibration_loss": dense, "single_costs_sum_nats": sum(costs.values()),
               "sparsified_linear_flop_share": share, "pruned_per_role": per_role,
               "predicted_nats": predicted, "measured_calibration_nats": measured,
               "calibration_ratio": math.exp(measured), "evaluation_ratio": evaluation_ratio,
               "left_dense": [f"{layer}.{role}" for layer, role in sorted(left_dense)],
               "single_costs_nats": {f"{layer}.{role}": cost for (layer, role), cost in costs.items()}}
    _write_probe(args, {"criterion": CRITERION, "mitigation": MITIGATION, "policy": "all (knapsack leaves dense)",
                        "pattern": args.pattern, "target_share": args.target_share,
                        "evaluation_windows": args.windows, "window_tokens": WINDOW_TOKENS}, results)


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
    patterns = args.patterns.split(",")
    results = {"dense_window_losses": dense, "patterns": {}}
    for pattern in patterns:
        config = AmberConfig(pattern=pattern, criterion="amber", mitigation=MITIGATION, policy="amber-paper", skip_layers=())
        plain = _eval_ratio(model, evaluation, config, dense=dense)
        weighted = _eval_ratio(model, evaluation, config, dense=dense, patch_factor=fisher_factor)
        results["patterns"][pattern] = {"amber_ratio": plain, "gradient_weighted_ratio": weighted}
        print(f"{pattern} amber-paper, {args.windows} x 2,048 tokens: amber {plain:.3f} x, "
              f"gradient-weighted amber {weighted:.3f} x dense perplexity")
    _write_probe(args, {"criterion": "amber (plain) vs gradient-weighted amber", "mitigation": MITIGATION,
                        "policy": "amber-paper", "skip_layers": [], "patterns": patterns,
                        "evaluation_windows": args.windows, "window_tokens": WINDOW_TOKENS}, results)


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
    patterns = args.patterns.split(",")
    results = {"patterns": {}}
    for pattern in patterns:
        config = AmberConfig(pattern=pattern, criterion=CRITERION, mitigation=MITIGATION, policy="all")
        plain_errors, refit_errors, bias_errors, rows = [], [], [], []
        for name, layer, role, module in find_decoder_linears(model):
            if layer not in LS_LAYERS or role not in roles:
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
            rows.append({"layer": layer, "role": role, "pruned": plain_errors[-1], "refitted": refit_errors[-1],
                         "bias_corrected": bias_errors[-1]})
            print(f"{pattern} layer {layer:>2} {role:>4}: relative output error {plain_errors[-1]:.3f} pruned, "
                  f"{refit_errors[-1]:.3f} refitted, {bias_errors[-1]:.3f} bias-corrected")
        print(f"{pattern}: mean {np.mean(plain_errors):.3f} pruned, {np.mean(refit_errors):.3f} refitted "
              f"(ridge {args.ridge}), {np.mean(bias_errors):.3f} bias-corrected (held-out tokens)")
        results["patterns"][pattern] = {"mean_pruned": float(np.mean(plain_errors)),
                                        "mean_refitted": float(np.mean(refit_errors)),
                                        "mean_bias_corrected": float(np.mean(bias_errors)), "linears": rows}
    _write_probe(args, {"criterion": CRITERION, "mitigation": MITIGATION, "policy": "all", "patterns": patterns,
                        "ridge": args.ridge, "layers": list(LS_LAYERS), "roles": sorted(roles),
                        "fit_tokens": 4 * CALIBRATION_TOKENS, "held_out_tokens": CALIBRATION_TOKENS,
                        "metric": "relative output error ||W x - y'|| / ||W x|| on the held-out tokens"}, results)


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
    for name, probe in (("roles", roles), ("single-linear", single), ("fisher", fisher), ("ls-compensation", ls)):
        probe.add_argument("--out", metavar="DIR", default=None,
                           help=f"where probe.json goes (default reports/accuracy/probe-{name}/)")
    args = parser.parse_args()
    from amber_sim.atomic import check_output_dir
    from amber_sim.errors import InputError

    args.out = args.out or str(_default_out(args.probe))
    try:
        check_output_dir(args.out)  # before any work
    except InputError as error:
        parser.error(str(error))
    {"roles": probe_roles, "single-linear": probe_single_linear, "fisher": probe_fisher,
     "ls-compensation": probe_ls_compensation}[args.probe](args)


if __name__ == "__main__":
    main()
