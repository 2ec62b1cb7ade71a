"""Outstanding-sparse W8A8: int8 fake quantisation, inverted smoothing, the order smooth → mask → quantise,
apply_amber's weight swap, LinearPruner, and fp16 / bf16 activations going to the kernels as they are."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch_stack  # skips without torch; under CI=true that fails (tests/torch_stack.py)

torch = torch_stack.importorskip("torch")
transformers = torch_stack.importorskip("transformers")

from amber_sim.errors import InputError  # noqa: E402
from amber_sim.pruning.apply import (AmberConfig, apply_amber, collect_activation_absmax,  # noqa: E402
                                     make_linear_pruner, prune_activation)
from amber_sim.pruning.quant import (fake_quantize_activation, fake_quantize_weight,  # noqa: E402
                                     quantize_activation_per_token, quantize_weight_per_channel, smoothing_scales)


@pytest.fixture(scope="module")
def tiny_llama(build_tiny_llama):
    return build_tiny_llama(layers=2, max_positions=64)


@pytest.fixture
def ids():
    return torch.randint(0, 101, (1, 16), generator=torch.Generator().manual_seed(3))


def torch_nm_reference(x, n, m, factor=None):
    """Pure-torch N:M: stable descending sort of |x|·factor per group (lower index wins), first n kept."""
    rows, k = x.shape
    score = x.abs().float() * (torch.as_tensor(factor) if factor is not None else 1.0)
    order = torch.sort(score.reshape(rows, k // m, m), dim=-1, descending=True, stable=True).indices[..., :n]
    keep = torch.zeros(rows, k // m, m, dtype=torch.bool).scatter_(-1, order, True).reshape(rows, k)
    return torch.where(keep, x, torch.zeros_like(x))


# ----------------------------------------------------------------------------- quantisation


def test_weight_int8_per_output_channel():
    weight = torch.randn(6, 40, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 7).unsqueeze(1)
    weight[3] = 0.0
    q, scale = quantize_weight_per_channel(weight)
    assert q.dtype == torch.int8 and scale.shape == (6,)
    nonzero_rows = [0, 1, 2, 4, 5]
    assert q[nonzero_rows].abs().amax(dim=1).tolist() == [127] * 5
    assert torch.equal(scale[nonzero_rows], weight[nonzero_rows].abs().amax(dim=1) / 127)
    assert scale[3] == 1.0 and int(q[3].abs().max()) == 0
    fake = fake_quantize_weight(weight)
    assert float((fake - weight).abs().max(dim=1).values.div(scale).max()) <= 0.5 + 1e-6  # half a step per row


def test_activation_int8_per_token():
    x = torch.tensor([[0.5, -2.54, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [3.0, 1.5, -0.75, 0.01]])
    q, scale = quantize_activation_per_token(x)
    assert scale.shape == (3, 1)
    assert scale[:, 0].tolist() == pytest.approx([2.54 / 127, 1.0, 3.0 / 127])
    assert q.tolist() == [[25, -127, 50, 0], [0, 0, 0, 0], [127, 64, -32, 0]]  # 63.5 → 64, 31.75 → 32
    assert torch.allclose(fake_quantize_activation(x), q.float() * scale)


def test_fake_quant_equals_integer_matmul():
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(5, 48, generator=generator) * 3
    weight = torch.randn(7, 48, generator=generator) * 0.1
    qx, sx = quantize_activation_per_token(x)
    qw, sw = quantize_weight_per_channel(weight)
    accumulated = qx.to(torch.int32) @ qw.to(torch.int32).T  # int32 accumulation, exact
    integer_result = accumulated.to(torch.float64) * sx.double() * sw.double().unsqueeze(0)
    fake_result = torch.nn.functional.linear(fake_quantize_activation(x), fake_quantize_weight(weight))
    assert torch.allclose(fake_result.double(), integer_result, rtol=1e-5, atol=1e-6)
    assert int(accumulated.abs().max()) < 2 ** 31


def test_smoothing_scales_are_the_inverted_formula():
    x_max = np.array([8.0, 1.0, 0.0, 2.0], np.float32)
    w_max = np.array([0.5, 0.25, 0.3, 0.0], np.float32)
    scales = smoothing_scales(x_max, w_max, 0.1)
    assert scales[0] == pytest.approx(8.0 ** 0.1 / 0.5 ** 0.9)
    assert scales[1] == pytest.approx(1.0 / 0.25 ** 0.9)
    assert scales[2] == 1.0 and scales[3] == 1.0  # never-active channel / zero weight column
    with pytest.raises(InputError, match="matching the weight"):
        smoothing_scales(x_max[:3], w_max, 0.1)


# ----------------------------------------------------------------------------- order smooth → mask → quantise


def test_smooth_before_mask_changes_the_mask():
    # absmax 1 everywhere: s_j = 1 / max|W_:,j|^0.9; column 0 has a 4× larger weight → s_0 = 4^-0.9
    weight = torch.tensor([[4.0, 1.0, 1.0, 1.0], [1.0, 0.5, 0.5, 0.5]])
    config = AmberConfig(pattern="2:4", criterion="magnitude", policy="all", precision="w8a8")
    pruner = make_linear_pruner(weight, config, "toy", activation_absmax=np.ones(4, np.float32))
    s = torch.tensor([4.0 ** -0.9, 1.0, 1.0, 1.0])
    assert torch.allclose(pruner.smoothing, s)
    x = torch.tensor([[1.0, 0.9, 0.8, 0.05]])
    seen, stats = pruner(x)
    smoothed = x * pruner.smoothing
    expected = fake_quantize_activation(torch_nm_reference(smoothed, 2, 4))
    assert torch.equal(seen, expected)
    assert (seen != 0).tolist() == [[False, True, True, False]]  # smoothing first: column 0 (0.287) dropped
    assert pruner.factor is None  # magnitude
    mask_first = fake_quantize_activation(torch_nm_reference(x, 2, 4) * pruner.smoothing)
    assert (mask_first != 0).tolist() == [[True, True, False, False]]  # the other order keeps column 0
    assert stats.kept_count == 2 and stats.total == 4
    # the weight side: int8 per output channel of W / s
    assert torch.equal(pruner.effective_weight, fake_quantize_weight(weight / pruner.smoothing))


def test_mask_before_quantise_changes_the_values():
    # amber criterion (factor from W/s; one output row): column 0's tiny weight gives it a large s and a
    # large smoothed value (the dense row max) but a small score, so it is dropped before quantisation
    weight = torch.tensor([[0.01, 1.0, 1.0, 1.0]])
    config = AmberConfig(pattern="2:4", criterion="amber", policy="all", precision="w8a8")
    pruner = make_linear_pruner(weight, config, "toy", activation_absmax=np.ones(4, np.float32))
    x = torch.tensor([[0.1, 0.9, 0.8, 0.05]])
    seen, _ = pruner(x)
    smoothed = x * pruner.smoothing
    assert float(smoothed[0, 0]) == pytest.approx(0.1 / 0.01 ** 0.9, rel=1e-6)  # 6.31, the row max
    from amber_sim.pruning.criteria import amber_factors

    assert np.array_equal(pruner.factor, amber_factors((weight / pruner.smoothing).numpy()))
    masked = torch_nm_reference(smoothed, 2, 4, pruner.factor)
    assert (masked != 0).tolist() == [[False, True, True, False]]
    assert torch.equal(seen, fake_quantize_activation(masked))
    assert float(seen[0, 1]) == pytest.approx(0.9, rel=1e-6)  # per-token scale from the kept values: 0.9/127
    quantise_first = torch_nm_reference(fake_quantize_activation(smoothed), 2, 4, pruner.factor)
    assert float(quantise_first[0, 1]) == pytest.approx(18 * float(smoothed[0, 0]) / 127, rel=1e-6)  # 0.894
    assert not torch.allclose(seen, quantise_first, rtol=1e-3)


# ----------------------------------------------------------------------------- apply_amber with w8a8


def test_w8a8_dense_accepted_fp16_dense_rejected_absmax_required(tiny_llama, ids):
    AmberConfig(pattern="dense", precision="w8a8").validated()
    AmberConfig(pattern="dense", precision="w8a8", policy="calibrated").validated()  # nothing pruned: no skip list
    with pytest.raises(InputError, match="dense only with precision 'w8a8'"):
        AmberConfig(pattern="dense").validated()
    with pytest.raises(InputError, match="precision"):
        AmberConfig(precision="int4").validated()
    with pytest.raises(InputError, match="smooth_alpha"):
        AmberConfig(precision="w8a8", smooth_alpha=1.5).validated()
    with pytest.raises(InputError, match="activation_absmax"):
        apply_amber(tiny_llama, AmberConfig(pattern="8:16", precision="w8a8", policy="all"))
    with pytest.raises(InputError, match="no entry for 'model.layers.0.self_attn.q_proj'"):
        apply_amber(tiny_llama, AmberConfig(pattern="8:16", precision="w8a8", policy="all"), activation_absmax={})
    # the failed call left no swapped weight behind
    assert all(type(p) is torch.nn.Parameter and p.requires_grad for p in tiny_llama.parameters())


def test_w8a8_swaps_weights_quantises_every_linear_and_remove_restores(tiny_llama, ids):
    originals = {name: (p, p.detach().clone()) for name, p in tiny_llama.named_parameters()}
    with torch.no_grad():
        dense = tiny_llama(input_ids=ids).logits
    absmax = collect_activation_absmax(tiny_llama, ids)
    assert len(absmax) == 2 * 7 and absmax["model.layers.0.mlp.down_proj"].shape == (128,)
    assert absmax["model.layers.0.mlp.down_proj"].dtype == np.float32
    modules = dict(tiny_llama.named_modules())
    name = "model.layers.1.self_attn.o_proj"  # not pruned under amber-paper: quantised, not smoothed
    seen = {}
    probe = modules[name].register_forward_hook(lambda _m, args, _o: seen.__setitem__("x", args[0].detach().clone()))
    before = {}
    first = modules[name].register_forward_pre_hook(lambda _m, args: before.__setitem__("x", args[0].detach().clone()),
                                                    prepend=True)
    config = AmberConfig(pattern="8:16", criterion="amber", policy="amber-paper", precision="w8a8")
    with apply_amber(tiny_llama, config, activation_absmax=absmax) as handle:
        assert sorted(s.role for s in handle.stats.values()) == ["down", "down", "gate", "gate", "q", "q"]
        assert handle.pruners[name].smoothing is None and handle.pruners["model.layers.1.mlp.down_proj"].smoothing is not None
        assert torch.equal(modules[name].weight, fake_quantize_weight(originals[name + ".weight"][1]))
        assert tiny_llama.lm_head.weight is originals["lm_head.weight"][0]
        with torch.no_grad():
            sparse = tiny_llama(input_ids=ids).logits
            decode_calls = {n: s.calls for n, s in handle.stats.items()}
            tiny_llama(input_ids=ids[:, :1])  # decode: quantised, not masked
        assert {n: s.calls for n, s in handle.stats.items()} == decode_calls
        assert handle.stats["model.layers.0.mlp.down_proj"].density == pytest.approx(0.5)
    probe.remove()
    first.remove()
    assert torch.equal(seen["x"], fake_quantize_activation(before["x"]))  # the decode forward's input
    assert not torch.allclose(dense, sparse)
    for pname, parameter in tiny_llama.named_parameters():
        assert parameter is originals[pname][0] and torch.equal(parameter, originals[pname][1])  # bit-identical
    with torch.no_grad():
        assert torch.equal(tiny_llama(input_ids=ids).logits, dense)


def test_w8a8_dense_baseline_is_close_and_has_no_stats(tiny_llama, ids):
    with torch.no_grad():
        dense = tiny_llama(input_ids=ids).logits
        with apply_amber(tiny_llama, AmberConfig(pattern="dense", precision="w8a8")) as handle:
            quantised = tiny_llama(input_ids=ids).logits
    assert handle.stats == {} and len(handle.pruners) == 14
    relative = float((quantised - dense).norm() / dense.norm())
    assert 0 < relative < 0.05


def test_linear_pruner_fp16_precision_is_the_plain_mask(tiny_llama):
    weight = dict(tiny_llama.named_modules())["model.layers.0.mlp.down_proj"].weight
    config = AmberConfig(pattern="8:16", criterion="amber", policy="all")
    pruner = make_linear_pruner(weight, config, "down")
    assert pruner.effective_weight.data_ptr() == weight.data_ptr() and pruner.smoothing is None  # no copy
    x = torch.randn(2, 5, 128, generator=torch.Generator().manual_seed(2))
    seen, stats = pruner(x)
    assert torch.equal(seen, torch_nm_reference(x.reshape(-1, 128), 8, 16, pruner.factor).reshape(x.shape))
    assert (stats.total, stats.kept_count, stats.natural_zero_count) == (1280, 640, 0)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("criterion", ["magnitude", "amber"])
def test_half_precision_activations_go_to_the_kernels_as_they_are(dtype, criterion):
    generator = torch.Generator().manual_seed(11)
    x32 = torch.randn(12, 64, generator=generator)
    x = x32.to(dtype)
    weight = torch.randn(32, 64, generator=generator)
    pruner = make_linear_pruner(weight, AmberConfig(pattern="4:8", criterion=criterion, policy="all"), "half")
    seen, stats = pruner(x)
    assert seen.dtype == dtype
    reference = torch_nm_reference(x, 4, 8, pruner.factor)  # scores from the half values widened exactly
    assert torch.equal(seen.view(torch.int16), reference.view(torch.int16))  # bit for bit
    assert stats.kept_count == 12 * 32
    # non-contiguous input: one contiguous copy, same answer
    wide = torch.zeros(64, 12, dtype=dtype)
    wide.copy_(x.T)
    seen_t, _ = prune_activation(wide.T, AmberConfig(pattern="4:8", criterion=criterion, policy="all"),
                                 pruner.factor, "half")
    assert torch.equal(seen_t.view(torch.int16), seen.view(torch.int16))


def test_half_precision_with_mitigation_and_w8a8_keep_dtype():
    x = torch.randn(6, 32, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    weight = torch.randn(16, 32, generator=torch.Generator().manual_seed(5))
    config = AmberConfig(pattern="2:4", criterion="magnitude", policy="all", mitigation="variance-correction")
    seen, _ = prune_activation(x, config, None, "bf16")
    assert seen.dtype == torch.bfloat16
    pruned32 = torch_nm_reference(x.float(), 2, 4)
    expected = pruned32 * (x.float().std(dim=1, unbiased=False, keepdim=True)
                           / pruned32.std(dim=1, unbiased=False, keepdim=True))
    assert torch.equal(seen, expected.to(torch.bfloat16))
    w8a8 = AmberConfig(pattern="2:4", criterion="magnitude", policy="all", precision="w8a8")
    pruner = make_linear_pruner(weight, w8a8, "bf16", activation_absmax=np.full(32, 2.0, np.float32))
    seen, _ = pruner(x)
    assert seen.dtype == torch.bfloat16 and pruner.effective_weight.dtype == torch.float32


def test_bad_dtypes_and_nan_name_the_layer():
    config = AmberConfig(pattern="2:4", criterion="magnitude", policy="all")
    with pytest.raises(InputError, match="layer odd: activation: expected a float32, float16 or bfloat16"):
        prune_activation(torch.zeros(2, 8, dtype=torch.float64), config, None, "odd")
    with pytest.raises(InputError, match="layer odd"):
        prune_activation(torch.zeros(2, 8, dtype=torch.int32), config, None, "odd")
    bad = torch.ones(2, 8, dtype=torch.float16)
    bad[1, 5] = float("nan")
    with pytest.raises(InputError, match="layer nan-layer.*NaN/Inf at row 1, column 5"):
        prune_activation(bad, config, None, "nan-layer")
    w8a8 = AmberConfig(pattern="dense", precision="w8a8")
    pruner = make_linear_pruner(torch.ones(4, 8), w8a8, "q-layer")
    with pytest.raises(InputError, match="layer q-layer.*NaN/Inf"):
        pruner(torch.full((2, 8), float("inf")))


# ----------------------------------------------------------------------------- CLI


def test_eval_precision_is_checked_before_loading(capsys):
    from amber_sim.cli import main

    assert main(["eval", "--precision", "fp16,int4"]) == 2
    assert "--precision: expected fp16 or w8a8, got 'int4'" in capsys.readouterr().err
    assert main(["eval", "--patterns", "dense", "--precision", "fp16"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_smollm2_w8a8_perplexity_on_128_tokens():
    """Measured on this window: dense 28.49, W8A8 dense 28.15 (top-1 0.866), W8A8 8:16 amber +
    variance-correction 38.15 (~20 s on a quiet 2-core machine: 4 forwards of 128 tokens and the model load)."""
    from amber_sim.models.corpus import load_split, token_windows
    from amber_sim.models.loading import load_model
    from amber_sim.pruning.evaluate import dense_reference, evaluate_with_stats

    loaded = load_model("smollm2-135m")
    windows = token_windows(load_split("evaluation", loaded.tokenizer), 128, 1)
    calibration = token_windows(load_split("calibration", loaded.tokenizer), 128, 1)
    absmax = collect_activation_absmax(loaded.model, calibration)
    dense, dense_argmax = dense_reference(loaded.model, windows)
    int8, int8_stats = evaluate_with_stats(loaded.model, windows, AmberConfig(pattern="dense", precision="w8a8"),
                                           dense_argmax, activation_absmax=absmax)
    sparse, sparse_stats = evaluate_with_stats(
        loaded.model, windows, AmberConfig(pattern="8:16", criterion="amber", mitigation="variance-correction",
                                           precision="w8a8", model_name=loaded.name),
        dense_argmax, activation_absmax=absmax)
    assert int8_stats == {} and int8.sparsified_linear_flop_share == 0.0
    assert abs(int8.perplexity / dense.perplexity - 1) < 0.05
    assert int8.top1_agreement > 0.85
    assert math.isfinite(sparse.perplexity) and sparse.perplexity > int8.perplexity
    assert sparse.perplexity / dense.perplexity < 2.0
    assert sparse.sparsified_linear_flop_share == pytest.approx(0.594, abs=0.001)
    densities = [stats.density for stats in sparse_stats.values()]
    assert len(densities) == 90 and all(0.45 < density <= 0.5 for density in densities)
