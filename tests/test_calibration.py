"""The calibrated policy: FLOP-share arithmetic, the exact selection within the budget, the loss metric."""

from __future__ import annotations

import dataclasses

import pytest
import torch_stack  # skips without torch; under CI=true that fails (tests/torch_stack.py)

torch = torch_stack.importorskip("torch")
transformers = torch_stack.importorskip("transformers")

from amber_sim.errors import InputError  # noqa: E402
from amber_sim.pruning import calibrate  # noqa: E402
from amber_sim.pruning.apply import AmberConfig, apply_amber, sparsified_linear_flop_share  # noqa: E402
from amber_sim.pruning.calibrate import (calibrate_skip_layers, calibrate_skip_linears, flop_budget,  # noqa: E402
                                         knapsack_select, layer_output_errors, loss_benefits, skip_candidates)


@pytest.fixture(scope="module")
def smollm2_shape(build_tiny_llama):
    """SmolLM2-135M's shapes without its weights (meta tensors)."""
    return build_tiny_llama(576, 1536, 30, 9, 3, vocab=49152, device="meta")


def test_smollm2_share_arithmetic(smollm2_shape):
    config = AmberConfig(pattern="8:16", policy="amber-paper", skip_layers=())
    assert sparsified_linear_flop_share(smollm2_shape, config) == pytest.approx(0.59375)  # q + gate + down
    budget = flop_budget(smollm2_shape, config, 0.55)
    assert budget.total_features == 30 * 3_538_944 and budget.pruned_features == 30 * 2_101_248
    assert budget.skippable_features == 4_644_864 == 14 * 331_776  # 42 units of 110,592 in·out features
    # whole layers (q + gate, 1,216,512 each) fit 3 times; single gates 5 times
    assert sparsified_linear_flop_share(smollm2_shape, AmberConfig(policy="calibrated", skip_layers=(0, 1, 2))) >= 0.55
    assert sparsified_linear_flop_share(smollm2_shape, AmberConfig(policy="calibrated", skip_layers=(0, 1, 2, 3))) < 0.55
    five_gates = tuple((layer, "gate") for layer in range(5))
    share = sparsified_linear_flop_share(smollm2_shape, AmberConfig(policy="calibrated", skip_layers=(),
                                                                    skip_linears=five_gates))
    assert share == pytest.approx(530 / 960) and share >= 0.55  # in units of 110,592: 570 − 5·8 of 960


def test_knapsack_picks_the_best_subset_within_the_budget():
    costs = {(0, "q"): 3, (0, "gate"): 8, (1, "q"): 3, (1, "gate"): 8, (2, "q"): 3, (2, "gate"): 8}
    benefits = {(0, "q"): 0.01, (0, "gate"): 0.05, (1, "q"): 0.03, (1, "gate"): 0.02, (2, "q"): 0.025,
                (2, "gate"): -0.01}
    # budget 11: best is gate0 + q1 (0.08); the greedy-by-benefit order (gate0, then q1) agrees here
    assert knapsack_select(benefits, costs, 11) == ((0, "gate"), (1, "q"))
    # budget 9: gate0 alone (0.05) loses to q1 + q2 + q0 (0.065)
    assert knapsack_select(benefits, costs, 9) == ((0, "q"), (1, "q"), (2, "q"))
    # non-positive benefits are never taken, even with room to spare
    assert (2, "gate") not in knapsack_select(benefits, costs, 1000)
    assert knapsack_select(benefits, costs, 2) == ()
    assert knapsack_select({key: -1.0 for key in costs}, costs, 100) == ()


def test_calibrated_loss_metric_respects_the_share_and_takes_the_largest_benefits(tiny_llama, ids, monkeypatch):
    config = AmberConfig(pattern="2:4", criterion="amber", mitigation="variance-correction")
    known = {(c.layer, c.role): 0.001 for c in skip_candidates(tiny_llama)}
    known[(1, "gate")] = 0.5
    known[(2, "q")] = 0.2
    monkeypatch.setattr(calibrate, "loss_benefits", lambda *_args, **_kw: (3.0, known))
    base_share = sparsified_linear_flop_share(tiny_llama, AmberConfig(policy="amber-paper", skip_layers=()))
    # tiny: q 64·64 = 4096, gate 64·128 = 8192, per layer total 4096·2 + 2048·2 + 8192·3 = 36,864
    target = base_share - (8192 + 4096) / (3 * 36_864)
    skip, benefits = calibrate_skip_linears(tiny_llama, ids, config, target)
    assert skip == ((1, "gate"), (2, "q")) and benefits is known
    share = sparsified_linear_flop_share(tiny_llama, AmberConfig(policy="calibrated", skip_layers=(),
                                                                 skip_linears=skip))
    assert share == pytest.approx(target) and share >= target - 1e-12
    skip_small, _ = calibrate_skip_linears(tiny_llama, ids, config, target + 1e-3)  # gate 1 + a q no longer fit
    assert skip_small == ((1, "gate"),)


def test_loss_benefits_are_measured_by_leaving_one_linear_dense(tiny_llama, ids):
    config = AmberConfig(pattern="2:4", criterion="magnitude")
    pruned_loss, benefits = loss_benefits(tiny_llama, ids, config)
    assert set(benefits) == {(layer, role) for layer in range(3) for role in ("q", "gate")}
    with apply_amber(tiny_llama, AmberConfig(pattern="2:4", criterion="magnitude", policy="calibrated", skip_layers=(),
                                             skip_linears=((1, "gate"),))):
        direct = calibrate.mean_token_loss(tiny_llama, ids)
    assert pruned_loss - direct == pytest.approx(benefits[(1, "gate")], abs=1e-6)
    with apply_amber(tiny_llama, AmberConfig(pattern="2:4", criterion="magnitude", policy="amber-paper",
                                             skip_layers=())):
        assert calibrate.mean_token_loss(tiny_llama, ids) == pytest.approx(pruned_loss, abs=1e-6)


def test_output_error_reuses_captured_inputs(tiny_llama, ids):
    config = AmberConfig(pattern="2:4", criterion="amber", policy="amber-paper", skip_layers=())
    captured = calibrate.capture_linear_inputs(tiny_llama, ids)
    assert layer_output_errors(tiny_llama, ids, config) == layer_output_errors(tiny_llama, ids, config, captured)
    skip, _ = calibrate_skip_layers(tiny_llama, ids, config, target_flop_share=0.0, captured=captured)
    assert skip == (0, 1, 2)


def test_bad_skip_linears_and_targets_are_input_errors(tiny_llama, ids):
    with pytest.raises(InputError, match="skip_linears"):
        AmberConfig(policy="calibrated", skip_layers=(), skip_linears=((1, "down"),)).validated()
    with pytest.raises(InputError, match="target_flop_share"):
        calibrate_skip_linears(tiny_llama, ids, AmberConfig(), 1.5)


@pytest.mark.slow
def test_real_model_loss_calibration_beats_no_skipping_on_its_tokens():
    from amber_sim.models.corpus import load_split, token_windows
    from amber_sim.models.loading import load_model

    loaded = load_model("smollm2-135m")
    cal = torch.as_tensor(token_windows(load_split("calibration", loaded.tokenizer), 64, 1))
    config = AmberConfig(pattern="2:4", criterion="magnitude", model_name=loaded.name)
    skip, benefits = calibrate_skip_linears(loaded.model, cal, config, 0.55)
    assert len(benefits) == 60 and skip
    assert all(benefits[key] > 0 for key in skip)
    chosen = AmberConfig(pattern="2:4", criterion="magnitude", policy="calibrated", skip_layers=(), skip_linears=skip,
                         model_name=loaded.name)
    assert 0.55 <= sparsified_linear_flop_share(loaded.model, chosen) < 0.56  # the budget is spent, not exceeded
    with apply_amber(loaded.model, chosen):
        chosen_loss = calibrate.mean_token_loss(loaded.model, cal)
    with apply_amber(loaded.model, config):
        unskipped_loss = calibrate.mean_token_loss(loaded.model, cal)
    assert chosen_loss < unskipped_loss - max(benefits[key] for key in skip) / 2


def test_gradient_factors_match_an_independent_autograd_reference(tiny_llama, ids):
    """collect_gradient_factors against x.grad of a leaf put in place of one linear's input (a second, separate
    forward and backward of the same mean next-token loss): mean |∂L/∂x| over tokens, normalised by its minimum.
    Every pruned linear gets one, and the weights get no gradient."""
    config = AmberConfig(pattern="2:4", policy="all")
    factors = calibrate.collect_gradient_factors(tiny_llama, ids, config)
    assert len(factors) == 3 * 7
    assert all(p.grad is None for p in tiny_llama.parameters())
    name = "model.layers.1.self_attn.o_proj"
    module = dict(tiny_llama.named_modules())[name]
    leaf = {}

    def swap(_module, args):
        leaf["x"] = args[0].detach().clone().requires_grad_(True)
        return (leaf["x"],)

    hook = module.register_forward_pre_hook(swap)
    try:
        logits = tiny_llama(input_ids=ids).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
    finally:
        hook.remove()
        tiny_llama.zero_grad(set_to_none=True)
    mean_abs = leaf["x"].grad.reshape(-1, module.in_features).abs().double().mean(dim=0)
    reference = (mean_abs / mean_abs[mean_abs > 0].min()).float().numpy()
    assert factors[name] == pytest.approx(reference, rel=1e-5)


def test_the_gradient_criterion_needs_its_calibration(tiny_llama, ids):
    with pytest.raises(InputError, match="gradient_factors"):
        apply_amber(tiny_llama, AmberConfig(pattern="2:4", criterion="gradient", policy="all"))


def test_calibrator_resolves_every_calibrated_piece_once(tiny_llama, ids, monkeypatch):
    """A calibrated policy with a static shift and the gradient criterion: one skip list per pattern, criterion,
    mitigation and metric (a w8a8 run reuses its fp16 twin's), the static shifts of every pruned linear, the
    gradient factors; each measured once."""
    from amber_sim.pruning.policy import Calibrator, needs_calibration

    calls = {"skip": 0}
    original = calibrate.calibrate_skip_layers

    def counting(*args, **kwargs):
        calls["skip"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(calibrate, "calibrate_skip_layers", counting)
    calibrator = Calibrator(tiny_llama, ids)
    base = AmberConfig(pattern="2:4", criterion="gradient", policy="calibrated", mitigation="static-median-shift")
    assert needs_calibration(base) and not needs_calibration(AmberConfig(pattern="dense", precision="w8a8"))
    config, stats = calibrator.resolve(base, "output-error", 0.5)
    assert config.skip_layers is not None and stats.gradient_factors is not None
    assert stats.activation_absmax is None  # fp16 without scaling reads no max|X|
    pruned = {name for name, _ in config.static_shifts}
    assert {"model.layers.0.mlp.down_proj", "model.layers.2.self_attn.q_proj"} <= pruned
    with apply_amber(tiny_llama, config, calibration=stats) as handle, torch.no_grad():
        tiny_llama(input_ids=ids)
    assert handle.stats and all(s.density == 0.5 for s in handle.stats.values())
    w8a8, w8a8_stats = calibrator.resolve(dataclasses.replace(base, precision="w8a8"), "output-error", 0.5)
    assert calls["skip"] == 1 and w8a8.skip_layers == config.skip_layers and w8a8_stats.activation_absmax
