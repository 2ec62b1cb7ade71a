"""The calibrated policy: FLOP-share arithmetic, the exact selection within the budget, the loss metric."""

from __future__ import annotations

import pytest
import torch_stack  # skips without torch; under CI=true that fails (tests/torch_stack.py)

torch = torch_stack.importorskip("torch")
transformers = torch_stack.importorskip("transformers")

from amber_sim.errors import InputError  # noqa: E402
from amber_sim.pruning import calibrate  # noqa: E402
from amber_sim.pruning.apply import (AmberConfig, apply_amber, calibrate_skip_layers,  # noqa: E402
                                     layer_output_errors, sparsified_linear_flop_share)
from amber_sim.pruning.calibrate import (calibrate_skip_linears, flop_budget, knapsack_select,  # noqa: E402
                                         loss_benefits, skip_candidates)


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


def test_output_error_reuses_captured_inputs_and_old_names_still_import(tiny_llama, ids):
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
