"""Capture of a pretrained model: one real Amber-pruned prefill per run, accuracy on the same tokens.

Tokens: the first ``seq_len`` tokens of the BBC evaluation split (docs/models.md). The calibrated policy
and the W8A8 smoothing statistics use the first ``calibration_tokens`` tokens of the calibration split,
never the evaluation tokens.
"""

from __future__ import annotations

import math

from amber_sim.capture.capture import (CaptureSpec, Progress, RunSpec, build_run,
                                       check_patterns_fit, model_config_of, trace_of)
from amber_sim.capture.recorder import ShapeRecorder, check_linear_ops
from amber_sim.errors import InputError
from amber_sim.trace import ModelInfo, Trace


def decoder_layers(model) -> list:
    """The decoder layer modules (``model.model.layers`` for LLaMA/Qwen2 in transformers)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise InputError("model", "model.layers", "expected a LLaMA/Qwen2-style model with model.layers")
    return list(layers)


def _check_not_weightless(name: str) -> None:
    from amber_sim.models.architectures import ARCHITECTURES
    from amber_sim.models.loading import known_models

    if name.lower() in ARCHITECTURES and name.lower() not in known_models():
        raise InputError("--model", None, f"no pretrained weights for {name} here (only its architecture is "
                         f"bundled); capture it with --init random")


def _window(split: str, tokenizer, tokens: int, what: str):
    import torch

    from amber_sim.models.corpus import load_split, token_windows

    ids = load_split(split, tokenizer)
    if tokens > len(ids):
        raise InputError(what, None, f"{tokens} tokens requested but the BBC {split} split has only {len(ids)}")
    return torch.as_tensor(token_windows(ids, tokens, 1))


def _nll_and_argmax(logits, ids):
    """(mean next-token NLL over the window, arg-max predictions) from [1, T, vocab] logits."""
    import torch

    predicted = logits[0, :-1].float()
    nll = float(torch.nn.functional.cross_entropy(predicted, ids[0, 1:], reduction="mean"))
    return nll, predicted.argmax(dim=-1)


def calibrated_skips(model, calibration, spec: CaptureSpec, pattern: str, model_name: str) -> dict:
    """The calibrated policy's skip list for one pattern, as AmberConfig fields (docs/pruning.md)."""
    from amber_sim.pruning.apply import AmberConfig
    from amber_sim.pruning.calibrate import calibrate_skip_layers, calibrate_skip_linears

    base = AmberConfig(pattern=pattern, criterion=spec.criterion, mitigation=spec.mitigation, model_name=model_name)
    if spec.calibration_metric == "loss":
        linears, _benefits = calibrate_skip_linears(model, calibration, base, spec.target_share)
        return {"skip_layers": (), "skip_linears": tuple(linears)}
    layers, _errors = calibrate_skip_layers(model, calibration, base, target_flop_share=spec.target_share)
    return {"skip_layers": tuple(layers)}


def describe_skips(skip: dict) -> str:
    if skip.get("skip_linears"):
        return "dense " + ", ".join(f"{role}@{layer}" for layer, role in skip["skip_linears"])
    return f"q/gate dense in layers {list(skip.get('skip_layers', ()))}"


def hooked_linears(model) -> dict[str, tuple[int, str, object]]:
    """Module name → (layer index, role, module) of every decoder linear, for :class:`ShapeRecorder`."""
    from amber_sim.pruning.apply import find_decoder_linears

    return {name: (layer, role, module) for name, layer, role, module in find_decoder_linears(model)}


def prefill_run(model, ids, amber, linears, layers, tick, activation_absmax=None):
    """One capturing prefill: a single forward of ``ids`` with the shape hooks, and Amber Pruner's hooks
    unless ``amber`` is None. Returns (logits, pruning stats by (layer, role), observed GEMM shapes)."""
    import torch

    from amber_sim.pruning.apply import apply_amber

    with torch.no_grad(), ShapeRecorder(linears, layers, tick) as recorder:
        if amber is None:
            return model(input_ids=ids).logits, {}, recorder.by_layer_role()
        with apply_amber(model, amber, activation_absmax=activation_absmax) as handle:
            logits = model(input_ids=ids).logits
    return logits, {(s.layer, s.role): s for s in handle.stats.values()}, recorder.by_layer_role()


def capture_pretrained(spec: CaptureSpec, runs: list[RunSpec], progress: Progress | None) -> Trace:
    from amber_sim.models.loading import load_model
    from amber_sim.pruning.apply import AmberConfig

    _check_not_weightless(spec.model)
    loaded = load_model(spec.model)
    config = model_config_of(loaded.config)
    if spec.seq_len > loaded.config["max_position"]:
        raise InputError("--seq-len", None, f"{spec.seq_len} is beyond {loaded.name}'s context of "
                         f"{loaded.config['max_position']} tokens")
    check_patterns_fit(runs, config, loaded.name)
    ids = _window("evaluation", loaded.tokenizer, spec.seq_len, "--seq-len")
    model = loaded.model
    linears = hooked_linears(model)
    layers = decoder_layers(model)
    total_steps, done = len(runs) * len(layers), [0]
    label = [""]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total_steps, label[0])

    calibration = None
    if spec.policy == "calibrated" or "w8a8" in spec.precisions:
        calibration = _window("calibration", loaded.tokenizer,
                              min(spec.calibration_tokens, loaded.config["max_position"]), "--calibration-tokens")
    absmax = None
    if "w8a8" in spec.precisions:
        from amber_sim.pruning.apply import collect_activation_absmax

        absmax = collect_activation_absmax(model, calibration)

    skip_lists: dict[str, dict] = {}  # pattern -> AmberConfig fields of its calibrated skip list
    trace_runs, dense_nll, dense_argmax = [], None, None
    for run in runs:
        label[0] = run.run_id(spec.criterion, spec.policy)
        amber = None
        if not (run.is_dense and run.precision == "fp16"):
            skip = {"skip_layers": ()} if spec.policy == "calibrated" else {}  # dense w8a8: nothing to skip
            if spec.policy == "calibrated" and not run.is_dense:
                if run.pattern not in skip_lists:
                    if progress is not None:
                        progress(done[0], total_steps, f"calibrating {run.pattern} ({spec.calibration_metric} metric)")
                    skip_lists[run.pattern] = calibrated_skips(model, calibration, spec, run.pattern, loaded.name)
                skip = skip_lists[run.pattern]
            amber = AmberConfig(pattern=run.pattern, criterion=spec.criterion, policy=spec.policy,
                                mitigation=spec.mitigation, model_name=loaded.name, precision=run.precision, **skip)
        logits, stats, observed = prefill_run(model, ids, amber, linears, layers, tick, absmax)
        if run.is_dense:
            stats = {}  # dense w8a8: quantised, nothing masked
        nll, argmax = _nll_and_argmax(logits, ids)
        del logits
        if dense_argmax is None:
            dense_nll, dense_argmax = nll, argmax
        if not math.isfinite(nll):
            raise InputError(loaded.name, run.run_id(spec.criterion, spec.policy), "the prefill produced "
                             "non-finite logits")
        metrics = {"perplexity": math.exp(nll), "top1_agreement": float((argmax == dense_argmax).float().mean()),
                   "perplexity_ratio": math.exp(nll - dense_nll), "eval_tokens": float(spec.seq_len - 1)}
        trace_run = build_run(run, spec, config, stats, metrics, spec.policy)
        check_linear_ops(trace_run.ops, observed, loaded.name)
        trace_runs.append(trace_run)
    skipped = "; ".join(f"{pattern}: {describe_skips(skip)}" for pattern, skip in skip_lists.items())
    notes = (f"Pretrained weights. Every run is one real prefill of the first {spec.seq_len} tokens of the BBC "
             "evaluation split with Amber Pruner applied (Numba kernels, real masks); densities and natural zeros "
             "are counted by the kernels, GEMM shapes by forward hooks; accuracy is measured on the same "
             "window against the dense fp16 run. Ops are recorded with fp16 operands (w8a8 linears: int8); "
             "LM head on the last token only."
             + (f" Calibrated policy (target share {spec.target_share}, {spec.calibration_tokens} calibration tokens, "
                f"metric {spec.calibration_metric}): {skipped}." if skipped else "")
             + (f" W8A8 smoothing statistics from {spec.calibration_tokens} calibration tokens." if absmax else ""))
    model_info = ModelInfo(name=loaded.name, family=loaded.family, weights="pretrained",
                           source=loaded.source.split("/")[-1], config=config)
    return trace_of(spec, model_info, trace_runs, f"BBC evaluation split, tokens 0..{spec.seq_len}", notes)
