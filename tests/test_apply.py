"""apply_amber on a small random LLaMA: real masks in prefill, dense decode, policies, mitigations, removal."""

from __future__ import annotations

import numpy as np
import pytest
import torch_stack  # skips without torch; under CI=true that fails (tests/torch_stack.py)

torch = torch_stack.importorskip("torch")
transformers = torch_stack.importorskip("transformers")

from amber_sim.errors import InputError  # noqa: E402
from amber_sim.pruning.apply import AmberConfig, apply_amber, sparsified_linear_flop_share  # noqa: E402
from amber_sim.pruning.calibrate import calibrate_skip_layers  # noqa: E402


def _pruned_forward(model, name, config, ids):
    """One prefill of ``ids`` under ``config``: (input of module ``name`` as computed, input it actually used,
    the removed AmberHandle, whose stats stay readable)."""
    module = dict(model.named_modules())[name]
    seen = {}
    hooks = (module.register_forward_pre_hook(lambda _m, args: seen.__setitem__("before", args[0].detach().clone()),
                                              prepend=True),
             module.register_forward_hook(lambda _m, args, _out: seen.__setitem__("after", args[0].detach().clone())))
    try:
        with apply_amber(model, config) as handle:
            with torch.no_grad():
                model(input_ids=ids)
    finally:
        for hook in hooks:
            hook.remove()
    return seen["before"], seen["after"], handle


def test_prefill_inputs_are_n_of_m_and_kept_values_unchanged(tiny_llama, ids):
    name = "model.layers.1.mlp.down_proj"
    before, after, handle = _pruned_forward(tiny_llama, name, AmberConfig(pattern="2:4", criterion="magnitude",
                                                                          policy="all"), ids)
    before = before.reshape(-1, 128).numpy()
    after = after.reshape(-1, 128).numpy()
    groups = after.reshape(after.shape[0], -1, 4)
    assert ((groups != 0).sum(axis=2) == 2).all()
    kept = after != 0
    assert np.array_equal(after[kept], before[kept])
    # the kept two of each four are the two largest magnitudes (random inputs: no ties)
    magnitude = np.abs(before.reshape(before.shape[0], -1, 4))
    threshold = np.sort(magnitude, axis=2)[:, :, 2:3]
    assert np.array_equal(magnitude >= threshold, groups != 0)
    assert handle.stats[name].density == 0.5 and handle.stats[name].calls == 1


def test_var_weight_keeps_the_top_scores_of_a_pure_torch_reference(tiny_llama, ids):
    """var-weight: score |x_tj| · Var(W[:, j]) (ddof 1, as torch.var); the kept two of each four are the two
    largest scores (random inputs and weights: no ties), and the kept values are unchanged."""
    name = "model.layers.0.mlp.down_proj"
    weight = dict(tiny_llama.named_modules())[name].weight.detach().double()
    before, after, _ = _pruned_forward(tiny_llama, name, AmberConfig(pattern="2:4", criterion="var-weight",
                                                                     policy="all"), ids)
    channels = before.shape[-1]
    score = before.reshape(-1, channels).double().abs() * torch.var(weight, dim=0)
    groups = score.reshape(score.shape[0], -1, 4)
    keep = groups >= groups.sort(dim=2).values[:, :, 2:3]
    kept = after.reshape(-1, channels) != 0
    assert torch.equal(kept, keep.reshape(kept.shape))
    assert torch.equal(after.reshape(-1, channels)[kept], before.reshape(-1, channels)[kept])


def test_global_top_k_golden_and_pure_torch_reference():
    """Global bound: the round(0.5 · 8) = 4 largest |x| of the whole [2, 4] tensor: 9, 8, 7 and 6, three of them
    in row 0 (a per-token top-2 keeps 2 per row). With a factor [1, 1, 1, 10] the scores of column 3 become
    10 and 20 and lead. On random data (no ties) it equals torch.topk over the flattened scores."""
    from amber_sim.pruning.apply import global_top_k

    x = torch.tensor([[9.0, -8.0, 1.0, 7.0], [0.5, 6.0, -2.0, 2.0]])
    out, stats = global_top_k(x, 0.5, None)
    assert out.tolist() == [[9.0, -8.0, 0.0, 7.0], [0.0, 6.0, 0.0, 0.0]]
    assert (stats.total, stats.kept_count, stats.natural_zero_count) == (8, 4, 0)
    out, _ = global_top_k(x, 0.5, np.array([1.0, 1.0, 1.0, 10.0], np.float32))
    assert out.tolist() == [[9.0, -8.0, 0.0, 7.0], [0.0, 0.0, 0.0, 2.0]]
    ties, _ = global_top_k(torch.ones(2, 3), 0.5, None)  # ties at the threshold: the lower flat indices
    assert ties.tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    rows = torch.randn(64, 96)
    factor = np.random.default_rng(3).uniform(0.5, 2.0, 96).astype(np.float32)
    out, stats = global_top_k(rows, 0.5, factor)
    score = rows.double().abs() * torch.from_numpy(factor).double()
    reference = torch.zeros(rows.numel(), dtype=torch.bool)
    reference[torch.topk(score.reshape(-1), 64 * 48).indices] = True
    assert torch.equal(out != 0, reference.reshape(rows.shape)) and torch.equal(out[out != 0], rows[out != 0])
    assert stats.kept_count == 64 * 48


def test_unstructured_global_prunes_a_prefill_and_its_pattern_reads_back(tiny_llama, ids):
    from amber_sim.patterns import parse_pattern

    name = "model.layers.1.mlp.down_proj"
    before, after, handle = _pruned_forward(tiny_llama, name, AmberConfig(pattern="unstructured-global",
                                                                          criterion="magnitude", policy="all"), ids)
    assert handle.stats[name].density == 0.5
    kept = after != 0
    assert torch.equal(after[kept], before[kept])
    per_row = kept.reshape(-1, before.shape[-1]).sum(dim=1)
    assert per_row.sum() == kept.numel() // 2 and per_row.min() < per_row.max()  # rows keep different counts
    assert str(parse_pattern("unstructured-global")) == "unstructured-global"
    assert parse_pattern("unstructured-global").kind == "unstructured"


def test_golden_static_median_shift_against_the_per_token_one():
    """Row [3, 1.5, 0.9, 1.2], 2:4 magnitude. Static η = 1 (calibrated): x − η = [2, 0.5, −0.1, 0.2] keeps 2 and
    0.5; adding η back gives [3, 1.5, 1, 1]. The per-token median is 1.35: x − 1.35 = [1.65, 0.15, −0.45, −0.15]
    keeps 1.65 and −0.45, giving [3, 1.35, 0.9, 1.35]."""
    from amber_sim.pruning.apply import prune_activation

    x = torch.tensor([[3.0, 1.5, 0.9, 1.2]])
    static = AmberConfig(pattern="2:4", criterion="magnitude", policy="all", mitigation="static-median-shift",
                         static_shifts=(("lin", 1.0),)).validated()
    out, _ = prune_activation(x, static, None, "lin")
    assert torch.allclose(out, torch.tensor([[3.0, 1.5, 1.0, 1.0]]))
    dynamic = AmberConfig(pattern="2:4", criterion="magnitude", policy="all", mitigation="median-shift")
    out, _ = prune_activation(x, dynamic, None, "lin")
    assert torch.allclose(out, torch.tensor([[3.0, 1.35, 0.9, 1.35]]))
    with pytest.raises(InputError, match="layer other: static_shifts: no calibrated"):
        prune_activation(x, static, None, "other")


def test_static_shifts_are_the_mean_of_per_token_medians_of_the_dense_inputs(tiny_llama, ids):
    """collect_static_shifts against a reference taken with torch.quantile(0.5) (the averaged median, as
    NumPy's) on the input a forward hook records: every pruned linear of the policy, none of the others."""
    from amber_sim.pruning.calibrate import collect_static_shifts

    config = AmberConfig(pattern="8:16", criterion="amber", policy="amber-paper", skip_layers=(),
                         mitigation="static-median-shift", static_shifts=(("x", 0.0),))
    shifts = dict(collect_static_shifts(tiny_llama, ids, config))
    assert set(shifts) == {name for name, _ in tiny_llama.named_modules()
                           if name.endswith(("q_proj", "gate_proj", "down_proj"))}
    name = "model.layers.2.mlp.down_proj"
    seen = {}
    hook = dict(tiny_llama.named_modules())[name].register_forward_pre_hook(
        lambda _m, args: seen.__setitem__("x", args[0].detach().double()))
    with torch.no_grad():
        tiny_llama(input_ids=ids)
    hook.remove()
    rows = seen["x"].reshape(-1, seen["x"].shape[-1])
    assert shifts[name] == pytest.approx(float(torch.quantile(rows, 0.5, dim=1).mean()), rel=1e-6)


def test_golden_scaling_moves_the_mask_and_keeps_the_values():
    """Weight column maxima 1 and calibration maxima [1, 16, 9, 4]: s = √(max|X| / max|W|) = [1, 4, 3, 2].
    x = [1, 2, 3, 4] scores |x|/s = [1, 0.5, 1, 2] under magnitude; 2:4 keeps 4 and the tie at 1 goes to the
    lower index: [1, 0, 0, 4] (unscaled magnitude keeps [0, 0, 3, 4]). Under amber s cancels: the scaled
    factor ‖W_:,j s_j‖ / s_j is ‖W_:,j‖, the same mask as amber's."""
    from amber_sim.pruning.apply import make_linear_pruner

    weight = torch.tensor([[1.0, -1.0, 0.5, 1.0], [0.5, 0.25, 1.0, -0.5]])
    absmax = np.array([1.0, 16.0, 9.0, 4.0], np.float32)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    scaled = make_linear_pruner(weight, AmberConfig(pattern="2:4", criterion="magnitude", policy="all",
                                                    mitigation="scaling"), "l", absmax)
    assert scaled(x)[0].tolist() == [[1.0, 0.0, 0.0, 4.0]]
    plain = make_linear_pruner(weight, AmberConfig(pattern="2:4", criterion="magnitude", policy="all"), "l")
    assert plain(x)[0].tolist() == [[0.0, 0.0, 3.0, 4.0]]
    rows = torch.randn(32, 4)
    amber_scaled = make_linear_pruner(weight, AmberConfig(pattern="2:4", criterion="amber", policy="all",
                                                          mitigation="scaling"), "l", absmax)
    amber = make_linear_pruner(weight, AmberConfig(pattern="2:4", criterion="amber", policy="all"), "l")
    assert torch.equal(amber_scaled(rows)[0] != 0, amber(rows)[0] != 0)
    with pytest.raises(InputError, match="activation_absmax"):
        make_linear_pruner(weight, AmberConfig(pattern="2:4", mitigation="scaling", policy="all"), "l")
    with pytest.raises(InputError, match="alternatives"):
        make_linear_pruner(weight, AmberConfig(pattern="2:4", mitigation="scaling", policy="all", precision="w8a8"),
                           "l", absmax)


def test_scaling_matches_the_papers_pure_torch_form(tiny_llama, ids):
    """The public code's scaling: out = pruner(x / s) @ (W·s)ᵀ with s = √(max|X| / max|W|); on the tiny LLaMA's
    down_proj input (magnitude, 8:16) the kept positions are the same as ours and the output equals x·Wᵀ on them
    within float32 rounding (x/s·s is not bitwise x)."""
    from amber_sim.pruning.apply import collect_activation_absmax, make_linear_pruner

    name = "model.layers.1.mlp.down_proj"
    module = dict(tiny_llama.named_modules())[name]
    absmax = collect_activation_absmax(tiny_llama, ids)
    seen = {}
    hook = module.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0].detach()))
    with torch.no_grad():
        tiny_llama(input_ids=ids)
    hook.remove()
    x = seen["x"].reshape(-1, module.in_features).float()
    weight = module.weight.detach().float()
    s = torch.sqrt(torch.from_numpy(absmax[name]).float() / weight.abs().amax(dim=0))
    scaled = x / s
    groups = scaled.abs().reshape(scaled.shape[0], -1, 16)
    keep = (groups >= groups.sort(dim=2).values[:, :, 8:9]).reshape(x.shape)
    reference = (scaled * keep) @ (weight * s).t()
    pruner = make_linear_pruner(module.weight, AmberConfig(pattern="8:16", criterion="magnitude", policy="all",
                                                           mitigation="scaling"), name, absmax)
    ours, _ = pruner(x)
    assert torch.equal(ours != 0, keep)
    assert torch.allclose(ours @ weight.t(), reference, rtol=1e-5, atol=1e-5)


def test_decode_stays_dense_and_remove_restores(tiny_llama, ids):
    with torch.no_grad():
        dense = tiny_llama(input_ids=ids).logits
    handle = apply_amber(tiny_llama, AmberConfig(pattern="8:16", criterion="amber", policy="all"))
    with torch.no_grad():
        sparse = tiny_llama(input_ids=ids).logits
        calls = {name: stats.calls for name, stats in handle.stats.items()}
        tiny_llama(input_ids=ids[:, :1])  # one new token: decode
    assert {name: stats.calls for name, stats in handle.stats.items()} == calls
    assert not torch.allclose(dense, sparse)
    handle.remove()
    with torch.no_grad():
        assert torch.equal(tiny_llama(input_ids=ids).logits, dense)


def test_amber_paper_policy_and_flop_share(tiny_llama, ids):
    config = AmberConfig(pattern="8:16", policy="amber-paper", skip_layers=(2,))
    with apply_amber(tiny_llama, config) as handle:
        pruned = {(stats.layer, stats.role) for stats in handle.stats.values()}
    assert pruned == {(0, "q"), (0, "gate"), (0, "down"), (1, "q"), (1, "gate"), (1, "down"), (2, "down")}
    # per layer: q 64·64, k,v 64·32, o 64·64, gate, up, down 64·128; pruned q+gate+down (layer 2: down only)
    per_layer = 64 * 64 * 2 + 64 * 32 * 2 + 64 * 128 * 3
    expected = (2 * (64 * 64 + 2 * 64 * 128) + 64 * 128) / (3 * per_layer)
    assert sparsified_linear_flop_share(tiny_llama, config) == pytest.approx(expected)


def test_mitigations_keep_their_promises(tiny_llama, ids):
    name = "model.layers.0.self_attn.q_proj"
    for mitigation in ("median-shift", "variance-correction"):
        before, after, _handle = _pruned_forward(tiny_llama, name, AmberConfig(
            pattern="2:4", criterion="magnitude", policy="all", mitigation=mitigation), ids)
        before = before.reshape(-1, 64).numpy().astype(np.float64)
        after = after.reshape(-1, 64).numpy().astype(np.float64)
        if mitigation == "median-shift":
            median = np.median(before, axis=1, keepdims=True)
            structured = (after - median).reshape(after.shape[0], -1, 4)
            assert (np.count_nonzero(np.abs(structured) > 1e-6, axis=2) <= 2).all()
        else:
            assert np.allclose(after.std(axis=1), before.std(axis=1), rtol=1e-4)


def test_calibrated_policy_skips_the_worst_layers(tiny_llama, ids):
    config = AmberConfig(pattern="2:4", criterion="amber")
    skip, errors = calibrate_skip_layers(tiny_llama, ids, config, target_flop_share=0.0)
    assert len(errors) == 6 and all(0 < error < 2 for error in errors.values())
    assert skip == (0, 1, 2)  # with no floor on the share every layer may be skipped
    worst = max(range(3), key=lambda layer: max(errors[(layer, "q")], errors[(layer, "gate")]))
    skip_one, _ = calibrate_skip_layers(tiny_llama, ids, config, target_error=sorted(
        max(errors[(layer, "q")], errors[(layer, "gate")]) for layer in range(3))[-2])
    assert skip_one == (worst,)


def test_bad_inputs(tiny_llama, ids):
    with pytest.raises(InputError, match="expected N:M with N < M"):
        apply_amber(tiny_llama, AmberConfig(pattern="4:4"))
    with pytest.raises(InputError, match="calibrated policy needs"):
        apply_amber(tiny_llama, AmberConfig(policy="calibrated"))
    with pytest.raises(InputError, match="expected LLaMA/Qwen2-style q_proj.*found: 0"):
        apply_amber(torch.nn.Sequential(torch.nn.Linear(4, 4)), AmberConfig())
    with apply_amber(tiny_llama, AmberConfig(pattern="1:48", policy="all")):  # K = 64 is not divisible by 48
        with pytest.raises(InputError, match="layer model.layers.0.self_attn.q_proj"):
            with torch.no_grad():
                tiny_llama(input_ids=ids)


def test_half_precision_model_is_pruned_in_its_own_dtype(tiny_llama, ids):
    """bf16 / fp16 activations reach the kernels as their bit patterns (no float32 round trip): the kept
    values are the input's own, the dtype is preserved and the mask is N:M."""
    import copy

    name = "model.layers.0.mlp.down_proj"
    for dtype in (torch.bfloat16, torch.float16):
        model = copy.deepcopy(tiny_llama).to(dtype)
        before, after, handle = _pruned_forward(model, name, AmberConfig(pattern="2:4", criterion="amber",
                                                                         policy="all"), ids)
        before, after = before.reshape(-1, 128), after.reshape(-1, 128)
        assert after.dtype == dtype
        kept = after != 0
        assert torch.equal(after[kept], before[kept])
        assert int((after.reshape(-1, 32, 4) != 0).sum(dim=2).max()) <= 2
        assert handle.stats[name].density == pytest.approx(0.5, abs=0.01)


def test_w8a8_apply_and_remove_on_the_tiny_model(tiny_llama, ids):
    from amber_sim.pruning.apply import collect_activation_absmax

    weights = {name: p.detach().clone() for name, p in tiny_llama.named_parameters()}
    absmax = collect_activation_absmax(tiny_llama, ids)
    with apply_amber(tiny_llama, AmberConfig(pattern="2:4", criterion="amber", policy="all", precision="w8a8"),
                     activation_absmax=absmax) as handle:
        q_proj = dict(tiny_llama.named_modules())["model.layers.0.self_attn.q_proj"]
        assert not torch.equal(q_proj.weight, weights["model.layers.0.self_attn.q_proj.weight"])
        with torch.no_grad():
            tiny_llama(input_ids=ids)
    assert len(handle.stats) == 21 and all(s.density == pytest.approx(0.5) for s in handle.stats.values())
    assert all(torch.equal(p, weights[name]) for name, p in tiny_llama.named_parameters())
