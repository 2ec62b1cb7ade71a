"""The learnable mitigations (learnable-shift, learnable-scale-shift): a per-output-channel correction
y' = a ⊙ y + b of each pruned linear's output, trained with AdamW against the dense output on calibration tokens
(amber_sim.pruning.learnable), applied by apply_amber's forward hooks, stored on disk by policy.Calibrator,
offered by eval and capture (docs/pruning.md)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch_stack  # skips without torch; under CI=true that fails (tests/torch_stack.py)

torch = torch_stack.importorskip("torch")
transformers = torch_stack.importorskip("transformers")

from amber_sim.errors import InputError  # noqa: E402
from amber_sim.pruning import learnable  # noqa: E402
from amber_sim.pruning.apply import (AmberConfig, CalibrationStats, OutputCorrection, apply_amber,  # noqa: E402
                                     find_decoder_linears, selected)
from amber_sim.pruning.learnable import LearnSettings, OutputSums, fit_on_outputs  # noqa: E402

FEW = dict(steps=60, lr=3e-2, warmup=5)  # enough to lower every loss on the tiny model, fast


def _synthetic(seed=0, tokens=256, channels=12):
    """P [T, N] with per-channel offsets and spreads, and Y = a_true ⊙ P + b_true + noise (float32)."""
    generator = torch.Generator().manual_seed(seed)
    p = torch.randn(tokens, channels, generator=generator) * torch.linspace(0.5, 2.0, channels) + torch.linspace(
        -1.0, 1.0, channels)
    a_true = torch.linspace(0.8, 1.3, channels)
    b_true = torch.linspace(0.7, -0.9, channels)
    y = a_true * p + b_true + 0.1 * torch.randn(tokens, channels, generator=generator)
    return p, y


# ---------------------------------------------------------------- (a) golden: the closed forms

def test_the_expanded_loss_is_the_elementwise_mse_and_so_is_its_gradient():
    """Training evaluates the MSE from five per-channel sums; on synthetic tensors it equals the direct
    (1 / (T·N)) Σ (a P + b − Y)² and its autograd gradient (float64: to 1e-12 relative)."""
    p, y = (t.double() for t in _synthetic())
    sums = OutputSums.of(p, y)
    scale = torch.linspace(0.9, 1.1, p.shape[1], dtype=torch.float64, requires_grad=True)
    shift = torch.linspace(-0.2, 0.3, p.shape[1], dtype=torch.float64, requires_grad=True)
    expanded = sums.loss(scale, shift)
    direct = ((scale * p + shift - y) ** 2).mean()
    assert expanded.item() == pytest.approx(direct.item(), rel=1e-12)
    g_expanded = torch.autograd.grad(expanded, (scale, shift))
    g_direct = torch.autograd.grad(direct, (scale, shift))
    for mine, reference in zip(g_expanded, g_direct):
        assert torch.allclose(mine, reference, rtol=1e-10, atol=1e-15)
    assert float(sums.loss(None, torch.zeros(p.shape[1], dtype=torch.float64))) == pytest.approx(
        float(((p - y) ** 2).mean()), rel=1e-12)
    halves = OutputSums.of(p[:100], y[:100]).add(OutputSums.of(p[100:], y[100:]))  # a linear called twice
    assert halves.tokens == sums.tokens
    for field in ("mean_p", "cpp", "cpd", "d", "dd"):
        assert torch.allclose(getattr(halves, field), getattr(sums, field), rtol=1e-12, atol=1e-12), field


def test_golden_shift_converges_to_the_mean_residual_and_scale_shift_to_least_squares():
    """The shift alone converges to mean_t(Y − P) per channel; scale and shift to the per-channel least-squares
    line (np.polyfit). Tolerance 1e-4 absolute on a and b: the optima lie within 2 of the start (a = 1, b = 0),
    the shift's loss is isotropic (Adam gets it to 3e-8), and the worst scale-and-shift channel (mean(P) = −1,
    std 0.5: its quadratic in (a, b) has condition number ≈ 18) needs about 1,000 steps at lr 3e-2, after which
    the error measured here is 1e-5; float32 storage adds 1e-7. The losses reach the closed-form minimum to 1e-6."""
    p, y = _synthetic()
    settings = LearnSettings(steps=1000, lr=3e-2, warmup=20)
    shift_only, record = fit_on_outputs(p, y, with_scale=False, settings=settings)
    reference = (y.double() - p.double()).mean(0).numpy()
    assert shift_only.scale is None and shift_only.shift.dtype == np.float32
    assert np.abs(reference).max() > 0.3  # a real offset to find
    assert np.allclose(shift_only.shift, reference, atol=1e-4, rtol=0)
    assert record.final_loss < record.initial_loss and record.final_loss == pytest.approx(record.optimal_loss,
                                                                                          rel=1e-6)
    both, record = fit_on_outputs(p, y, with_scale=True, settings=settings)
    fits = np.array([np.polyfit(p[:, n].double().numpy(), y[:, n].double().numpy(), 1) for n in range(p.shape[1])])
    assert np.allclose(both.scale, fits[:, 0], atol=1e-4, rtol=0)
    assert np.allclose(both.shift, fits[:, 1], atol=1e-4, rtol=0)
    assert record.final_loss == pytest.approx(record.optimal_loss, rel=1e-6)
    assert record.optimal_loss < 0.011  # the noise: 0.1² per element


def test_the_learning_rate_warms_up_then_follows_the_schedule():
    cosine = LearnSettings(steps=10, lr=1.0, warmup=2)
    assert [cosine.learning_rate_factor(s) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert cosine.learning_rate_factor(9) == pytest.approx(0.5 * (1 + np.cos(np.pi * 7 / 8)))
    assert LearnSettings(steps=10, warmup=2, schedule="constant").learning_rate_factor(9) == 1.0
    for bad in (dict(steps=0), dict(lr=-1.0), dict(warmup=11, steps=10), dict(schedule="linear")):
        with pytest.raises(InputError):
            LearnSettings(**bad).validated()


# ---------------------------------------------------------------- (b) training on the tiny model

def _config(mitigation="learnable-shift", pattern="2:4", **fields):
    return AmberConfig(pattern=pattern, criterion="magnitude", policy="amber-paper", mitigation=mitigation, **fields)


@pytest.mark.parametrize("mitigation", ["learnable-shift", "learnable-scale-shift"])
def test_training_lowers_every_loss_reproducibly_and_leaves_the_model_alone(tiny_llama, ids, mitigation):
    config = _config(mitigation)
    before = {name: value.clone() for name, value in tiny_llama.state_dict().items()}
    flags = [p.requires_grad for p in tiny_llama.parameters()]
    corrections, records = learnable.train_output_corrections(tiny_llama, ids, config, **FEW)
    expected = [name for name, layer, role, _m in find_decoder_linears(tiny_llama) if selected(role, layer, config)]
    assert list(corrections) == expected == list(records) and len(expected) == 9  # q, gate, down × 3 layers
    for name, record in records.items():
        assert record.final_loss < record.initial_loss, name
        assert record.optimal_loss <= record.final_loss * (1 + 1e-9) and record.tokens == ids.numel()
        assert (corrections[name].scale is None) is (mitigation == "learnable-shift")
    again, records_again = learnable.train_output_corrections(tiny_llama, ids, config, **FEW)
    for name in corrections:  # bit for bit
        assert np.array_equal(corrections[name].shift, again[name].shift)
        assert (corrections[name].scale is None or np.array_equal(corrections[name].scale, again[name].scale))
        assert records[name] == records_again[name]
    assert all(torch.equal(value, before[name]) for name, value in tiny_llama.state_dict().items())
    assert [p.requires_grad for p in tiny_llama.parameters()] == flags
    assert all(p.grad is None for p in tiny_llama.parameters())


def test_training_refuses_other_mitigations_and_w8a8(tiny_llama, ids):
    with pytest.raises(InputError, match="expected one of learnable-shift"):
        learnable.train_output_corrections(tiny_llama, ids, _config("none"), **FEW)
    with pytest.raises(InputError, match="not offered with precision w8a8"):
        learnable.train_output_corrections(tiny_llama, ids, _config(precision="w8a8"), **FEW)
    AmberConfig(pattern="dense", precision="w8a8", mitigation="learnable-shift").validated()  # masks nothing: fine


# ---------------------------------------------------------------- (c) the hooks against a pure-torch reference

@pytest.fixture(scope="module")
def biased_llama():
    """A 2-layer random LLaMA whose linears have biases (attention_bias, mlp_bias)."""
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, vocab_size=101, max_position_embeddings=128,
                                      attention_bias=True, mlp_bias=True)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for _name, _layer, _role, module in find_decoder_linears(model):
            module.bias.normal_(0.0, 0.5)
    return model


def _magnitude_2_4(x):
    """Pure-torch 2:4 magnitude mask of [T, K]: keep the 2 largest |x| of every group of 4 (no ties here)."""
    groups = x.abs().reshape(x.shape[0], -1, 4)
    keep = groups >= groups.sort(dim=2).values[:, :, 2:3]
    return x * keep.reshape(x.shape)


def test_hooks_match_a_pure_torch_reference_with_bias_and_decode_is_untouched(biased_llama, ids):
    """With the hooks on, layer 1's gate_proj outputs a ⊙ (pruned(x)·Wᵀ + c) + b computed by hand (mask by
    torch top-2-of-4, the trained a and b); the trained correction is the least-squares fit of P = pruned(x)·Wᵀ + c
    on the dense model's input to the dense x·Wᵀ + c (within 2e-3: 400 steps; the biases, N(0, 0.5), dwarf the
    outputs' spread, the case the change of variables is for); a decode forward gives the dense logits exactly."""
    model = biased_llama
    config = _config("learnable-scale-shift")
    name = "model.layers.1.mlp.gate_proj"
    module = dict(model.named_modules())[name]
    corrections, _records = learnable.train_output_corrections(model, ids, config, steps=400, lr=3e-2, warmup=20)
    calibration = CalibrationStats(output_corrections=corrections)
    seen = {}
    with apply_amber(model, config, calibration=calibration) as handle:
        hooks = [module.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0].detach().clone()),
                                                  prepend=True),
                 module.register_forward_hook(lambda _m, _a, out: seen.__setitem__("y", out.detach().clone()))]
        with torch.no_grad():
            model(input_ids=ids)
        for hook in hooks:
            hook.remove()
        with torch.no_grad():
            decoded = model(input_ids=ids[:, :1]).logits
    assert handle.stats[name].calls == 1
    x = seen["x"].reshape(-1, module.in_features)
    weight, bias = module.weight.detach(), module.bias.detach()
    a, b = (torch.from_numpy(corrections[name].scale), torch.from_numpy(corrections[name].shift))
    reference = a * (_magnitude_2_4(x) @ weight.t() + bias) + b
    assert torch.allclose(seen["y"].reshape(reference.shape), reference, rtol=1e-5, atol=1e-5)
    # the training used P (bias included) on the dense model's input against the dense output: the per-channel
    # least-squares line (upstream linears are dense in that forward)
    hook = module.register_forward_pre_hook(lambda _m, args: seen.__setitem__("dense x", args[0].detach().clone()))
    with torch.no_grad():
        model(input_ids=ids)
    hook.remove()
    x = seen["dense x"].reshape(-1, module.in_features)
    p = (_magnitude_2_4(x) @ weight.t() + bias).double().numpy()
    dense = (x @ weight.t() + bias).double().numpy()
    fits = np.array([np.polyfit(p[:, n], dense[:, n], 1) for n in range(p.shape[1])])
    assert np.allclose(corrections[name].scale, fits[:, 0], atol=2e-3)
    assert np.allclose(corrections[name].shift, fits[:, 1], atol=2e-3)
    with torch.no_grad():
        assert torch.equal(decoded, model(input_ids=ids[:, :1]).logits)


def test_a_bypassed_linear_gets_no_correction_and_a_missing_one_is_refused(tiny_llama, ids):
    """In one prefill with layer 0's down_proj bypassed: it outputs x·Wᵀ of the input it saw (no correction),
    while layer 0's gate_proj outputs pruned(x)·Wᵀ + b. A missing or mismatched correction is refused before
    anything is hooked."""
    import torch.nn.functional as F

    config = _config("learnable-shift")
    corrections, _ = learnable.train_output_corrections(tiny_llama, ids, config, **FEW)
    modules = dict(tiny_llama.named_modules())
    bypassed, corrected = "model.layers.0.mlp.down_proj", "model.layers.0.mlp.gate_proj"
    seen = {}
    with apply_amber(tiny_llama, config, calibration=CalibrationStats(output_corrections=corrections)) as handle:
        handle.bypass = {bypassed}
        hooks = [modules[name].register_forward_hook(
            lambda _m, args, out, _n=name: seen.__setitem__(_n, (args[0].detach(), out.detach())))
            for name in (bypassed, corrected)]  # after apply_amber's: the input it masked, the corrected output
        with torch.no_grad():
            tiny_llama(input_ids=ids)
        for hook in hooks:
            hook.remove()
    assert handle.stats[bypassed].calls == 0 and handle.stats[corrected].calls == 1
    x, y = seen[bypassed]
    assert torch.equal(y, F.linear(x, modules[bypassed].weight))
    x, y = seen[corrected]
    assert torch.equal(y, F.linear(x, modules[corrected].weight) + torch.from_numpy(corrections[corrected].shift))
    missing = {k: v for k, v in corrections.items() if k != bypassed}
    with pytest.raises(InputError, match=f"layer {bypassed}: output_corrections: .*train_output_corrections"):
        apply_amber(tiny_llama, config, calibration=CalibrationStats(output_corrections=missing))
    with pytest.raises(InputError, match="output_corrections"):
        apply_amber(tiny_llama, config)
    wrong = {k: OutputCorrection(scale=np.ones_like(v.shift), shift=v.shift) for k, v in corrections.items()}
    with pytest.raises(InputError, match="expects a shift only"):
        apply_amber(tiny_llama, config, calibration=CalibrationStats(output_corrections=wrong))
    assert not any(module._forward_hooks or module._forward_pre_hooks
                   for _n, _l, _r, module in find_decoder_linears(tiny_llama))  # nothing left hooked


def test_the_trained_shift_gives_the_dense_channel_means(tiny_llama, ids):
    """Trained on these tokens with the run's own masking: on each pruned linear's dense input x,
    pruned(x)·Wᵀ + b has the dense output x·Wᵀ's mean per channel (the shift's optimum is mean(Y − P))."""
    from amber_sim.pruning.apply import make_linear_pruner

    config = _config("learnable-shift")
    corrections, _ = learnable.train_output_corrections(tiny_llama, ids, config, steps=300, lr=3e-2, warmup=20)
    modules = dict(tiny_llama.named_modules())
    inputs = {}
    hooks = [modules[name].register_forward_pre_hook(lambda _m, args, _n=name: inputs.__setitem__(_n, args[0]))
             for name in corrections]
    with torch.no_grad():
        tiny_llama(input_ids=ids)
    for hook in hooks:
        hook.remove()
    for name, correction in corrections.items():
        x = inputs[name].reshape(-1, modules[name].in_features)
        pruned, _ = make_linear_pruner(modules[name].weight, config, name)(x)
        weight = modules[name].weight.detach()
        corrected = pruned @ weight.t() + torch.from_numpy(correction.shift)
        assert torch.allclose(corrected.mean(0), (x @ weight.t()).mean(0), atol=1e-4), name


# ---------------------------------------------------------------- (d) the on-disk cache

def test_calibrator_stores_reuses_and_keys_the_corrections(tiny_llama, ids, tmp_path, monkeypatch):
    from amber_sim.pruning.policy import Calibrator, needs_calibration

    monkeypatch.setenv("AMBER_SIM_CACHE", str(tmp_path))
    calls = {"train": 0}
    original = learnable.train_output_corrections

    def counting(*args, **kwargs):
        calls["train"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(learnable, "train_output_corrections", counting)
    settings = LearnSettings(**FEW)
    config = _config("learnable-scale-shift")
    assert needs_calibration(config)
    resolved, stats = Calibrator(tiny_llama, ids, learning=settings).resolve(config)
    files = sorted((tmp_path / "learned").glob("*.npz"))
    assert calls["train"] == 1 and len(files) == 1 and len(stats.output_corrections) == 9
    assert resolved.mitigation == "learnable-scale-shift"

    fresh = Calibrator(tiny_llama, ids, learning=settings)  # a later eval/capture: nothing in memory
    _, reused = fresh.resolve(config)
    assert calls["train"] == 1 and fresh.learned_log[-1]["trained"] is False
    for name, correction in stats.output_corrections.items():
        assert np.array_equal(correction.shift, reused.output_corrections[name].shift)
        assert np.array_equal(correction.scale, reused.output_corrections[name].scale)
    fresh.resolve(config)  # in memory: no file read, no training
    assert calls["train"] == 1 and len(fresh.learned_log) == 1

    fresh.resolve(dataclasses.replace(config, pattern="8:16"))  # another masking
    fresh.resolve(dataclasses.replace(config, mitigation="learnable-shift"))
    fresh.resolve(config, "output-error")  # same: memory
    Calibrator(tiny_llama, ids, learning=dataclasses.replace(settings, steps=61)).resolve(config)  # hyper-parameter
    Calibrator(tiny_llama, ids[:, :20], learning=settings).resolve(config)  # other calibration tokens
    assert calls["train"] == 5 and len(list((tmp_path / "learned").glob("*.npz"))) == 5
    identity = json.loads(str(np.load(files[0])["identity"]))
    assert identity["training"] == dataclasses.asdict(settings) and identity["pattern"] == "2:4"
    assert identity["pruned"][0] == "model.layers.0.self_attn.q_proj"
    files[0].write_bytes(b"not a zip")  # a damaged file is retrained and rewritten
    _, repaired = Calibrator(tiny_llama, ids, learning=settings).resolve(config)
    name = "model.layers.2.mlp.down_proj"
    assert calls["train"] == 6 and np.array_equal(repaired.output_corrections[name].shift,
                                                  stats.output_corrections[name].shift)


def test_a_calibrated_policy_trains_for_its_final_skip_list(tiny_llama, ids, tmp_path, monkeypatch):
    from amber_sim.pruning.policy import Calibrator

    monkeypatch.setenv("AMBER_SIM_CACHE", str(tmp_path))
    config = AmberConfig(pattern="2:4", criterion="magnitude", policy="calibrated", mitigation="learnable-shift")
    resolved, stats = Calibrator(tiny_llama, ids, learning=LearnSettings(**FEW)).resolve(config, "output-error", 0.4)
    assert resolved.skip_layers  # something skipped at this share
    expected = {name for name, layer, role, _m in find_decoder_linears(tiny_llama) if selected(role, layer, resolved)}
    assert set(stats.output_corrections) == expected
    with apply_amber(tiny_llama, resolved, calibration=stats) as handle, torch.no_grad():
        tiny_llama(input_ids=ids)
    assert set(handle.stats) == expected


# ---------------------------------------------------------------- (e) eval and capture from the command line

def _byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {symbol: index for index, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny LLaMA directory (2 layers, hidden 64, byte tokenizer) and a cache folder for its corpus tokens."""
    torch_stack.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("learnable")
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, vocab_size=256, max_position_embeddings=256)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(root / "tiny-llama")
    _byte_tokenizer().save_pretrained(root / "tiny-llama")
    return root


def test_eval_accepts_the_learnable_mitigations_and_stores_their_corrections(checkpoint, tmp_path, monkeypatch):
    from amber_sim.cli import main

    monkeypatch.setenv("AMBER_SIM_CACHE", str(checkpoint / "cache"))
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(checkpoint / "tiny-llama"), "--seq-len", "32", "--patterns", "2:4",
            "--criteria", "amber-robust", "--mitigations", "none,learnable-shift,learnable-scale-shift",
            "--calibration-tokens", "64", "--out", str(out)]
    assert main(argv) == 0
    rows = {row["mitigation"]: row for row in json.loads((out / "accuracy.json").read_text())["rows"]}
    assert set(rows) == {"none", "learnable-shift", "learnable-scale-shift"}
    assert len({rows[m]["perplexity"] for m in rows}) == 3  # the corrections change the outputs
    assert len(list((checkpoint / "cache" / "learned").glob("*.npz"))) == 2
    with pytest.MonkeyPatch.context() as patch:  # a second eval reuses both files
        patch.setattr(learnable, "train_output_corrections", lambda *a, **k: pytest.fail("trained again"))
        assert main([*argv[:-1], str(tmp_path / "again")]) == 0
    again = {row["mitigation"]: row for row in json.loads((tmp_path / "again" / "accuracy.json").read_text())["rows"]}
    assert all(again[m]["perplexity"] == rows[m]["perplexity"] for m in rows)
    assert main([*argv[:10], "learnable-shift", "--precision", "w8a8", "--out", str(tmp_path / "w8a8")]) == 2


def test_capture_records_the_correction_in_the_epilogue(checkpoint, tmp_path, monkeypatch):
    from amber_sim.cli import main
    from amber_sim.trace import load_trace

    monkeypatch.setenv("AMBER_SIM_CACHE", str(checkpoint / "cache"))
    out = tmp_path / "t.json"
    assert main(["capture", "--model", str(checkpoint / "tiny-llama"), "--seq-len", "16", "--patterns", "dense,2:4",
                 "--mitigation", "learnable-scale-shift", "--calibration-tokens", "64",
                 "--created", "2026-01-01T00:00:00+00:00", "--out", str(out)]) == 0
    trace = load_trace(out)
    sparse = trace.runs[1]
    names = [op.name for op in sparse.ops]
    corrections = [op for op in sparse.ops if op.role == "mitigation"]
    linears = {op.name: op for op in sparse.ops if op.kind == "linear" and op.is_sparse}
    assert len(corrections) == len(linears) == 6
    for op in corrections:
        linear = linears[op.name.removesuffix(".mitigation")]
        assert names.index(op.name) == names.index(linear.name) + 1  # right after its GEMM: the epilogue
        assert (op.elements, op.ops_per_element, op.bytes_in, op.bytes_out) == (linear.M * linear.N, 2.0, 0, 0)
        assert (op.input_from, op.output_to, op.sparse_overhead, op.producer) == ("on_chip", "on_chip", True,
                                                                                  linear.producer)
    assert "Learned output corrections (learnable-scale-shift" in trace.capture.notes
    assert "from 64 calibration tokens" in trace.capture.notes


@pytest.mark.parametrize("metric", ["output-error", "loss"])
def test_a_calibrated_learnable_run_chooses_its_skip_list_without_the_correction(tiny_llama, ids, tmp_path,
                                                                                 monkeypatch, metric):
    """The calibrated policy with a learnable mitigation (which failed: the calibration's candidate sets had no
    trained correction) picks the skip list the same run without mitigation picks, then trains the correction
    once, for the linears that list leaves pruned."""
    from amber_sim.pruning.policy import Calibrator

    monkeypatch.setenv("AMBER_SIM_CACHE", str(tmp_path))
    calibrator = Calibrator(tiny_llama, ids, learning=LearnSettings(**FEW))
    learned = dataclasses.replace(_config("learnable-shift"), policy="calibrated")
    resolved, stats = calibrator.resolve(learned, metric, target_share=0.4)
    plain, _ = calibrator.resolve(dataclasses.replace(learned, mitigation="none"), metric, target_share=0.4)
    assert (resolved.skip_layers, resolved.skip_linears) == (plain.skip_layers, plain.skip_linears)
    assert resolved.skip_layers or resolved.skip_linears  # 0.4 of 0.594 (the paper's share): something is kept dense
    pruned = {name for name, _module in learnable.pruned_linears(tiny_llama, resolved)}
    assert set(stats.output_corrections) == pruned and len(calibrator.learned_log) == 1
