"""Capture of a pretrained model: one real Amber-pruned prefill per run, accuracy on the same tokens.

Tokens: the first ``seq_len`` tokens of the BBC evaluation split (docs/models.md). The calibrated policy
and the W8A8 smoothing statistics use the first ``calibration_tokens`` tokens of the calibration split,
never the evaluation tokens.

Supported checkpoints share LLaMA's decoder layout (LLaMA, Mistral, Qwen2, Qwen3; docs/models.md). Qwen3's
per-head q/k RMSNorms are found on the model (``self_attn.q_norm`` / ``k_norm``), recorded as ``qk_norm``
vector ops and checked against what those modules produced. Sliding-window attention (Mistral) is plain
causal attention for prompts no longer than the window; a longer ``seq_len`` is refused, since the trace's
attention ops model full causal attention only.
"""

from __future__ import annotations

import math

from amber_sim.capture.recorder import ShapeRecorder, check_linear_ops, check_vector_ops
from amber_sim.capture.spec import (CaptureSpec, Progress, RunSpec, build_run,
                                    check_patterns_fit, model_config_of, trace_of)
from amber_sim.errors import InputError
from amber_sim.trace import ModelInfo, Trace


def decoder_layers(model) -> list:
    """The decoder layer modules (``model.model.layers`` for LLaMA/Mistral/Qwen2/Qwen3 in transformers)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise InputError("model", "model.layers", "expected a LLaMA-style model with model.layers")
    return list(layers)


QK_NORM_ROLES = frozenset({"qk_norm"})


def qk_norm_modules(layers: list) -> dict[str, object]:
    """Op name → module of every per-head query/key RMSNorm (Qwen3's ``self_attn.q_norm`` and ``k_norm``);
    empty for a model without them. A layer with only one of the two, or only some layers with them, is
    refused: the op list assumes every layer is alike."""
    found: dict[str, object] = {}
    with_norms = []
    for index, layer in enumerate(layers):
        attention = getattr(layer, "self_attn", None)
        norms = {which: getattr(attention, f"{which}_norm", None) for which in ("q", "k")}
        present = [which for which, module in norms.items() if module is not None]
        if len(present) == 1:
            raise InputError("model", f"layer {index}", f"has {present[0]}_norm but no "
                             f"{'k' if present[0] == 'q' else 'q'}_norm; expected both or neither")
        if present:
            with_norms.append(index)
            for which, module in norms.items():
                found[f"layers.{index}.self_attn.{which}_norm"] = module
    if with_norms and len(with_norms) != len(layers):
        raise InputError("model", "self_attn.q_norm", f"only layers {with_norms[:6]} of {len(layers)} have q/k "
                         "norms; expected all or none")
    return found


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
    from amber_sim.pruning.evaluate import next_token_loss

    return float(next_token_loss(logits, ids)), logits[0, :-1].float().argmax(dim=-1)


def _measured(config, calibration) -> set[str]:
    """What calibration measured for this run, in words (the trace's notes)."""
    found = set()
    if calibration.activation_absmax is not None:
        found.add("Smoothing/scaling statistics (max|X| per channel)")
    if calibration.gradient_factors is not None:
        found.add("Gradient-criterion factors (mean |dL/dx| per channel)")
    if config.static_shifts:
        found.add("Static median shifts (one η per pruned linear)")
    if calibration.output_corrections is not None:
        what = "scale a and shift b" if config.mitigation == "learnable-scale-shift" else "shift b"
        found.add(f"Learned output corrections ({config.mitigation}: a per-output-channel {what} of each pruned "
                  f"linear's output, AdamW against the dense output, {len(calibration.output_corrections)} linears; "
                  "stored under the cache's learned/ folder and reused)")
    return found


def describe_skips(skip: dict) -> str:
    if skip.get("skip_linears"):
        return "dense " + ", ".join(f"{role}@{layer}" for layer, role in skip["skip_linears"])
    return f"q/gate dense in layers {list(skip.get('skip_layers', ()))}"


def hooked_linears(model) -> dict[str, tuple[int, str, object]]:
    """Module name → (layer index, role, module) of every decoder linear, for :class:`ShapeRecorder`."""
    from amber_sim.pruning.apply import find_decoder_linears

    return {name: (layer, role, module) for name, layer, role, module in find_decoder_linears(model)}


def prefill_run(model, ids, amber, linears, layers, tick, calibration=None, vectors=None):
    """One capturing prefill: a single forward of ``ids`` with the shape hooks, and Amber Pruner's hooks
    unless ``amber`` is None. Returns (logits, pruning stats by (layer, role), observed GEMM shapes,
    elements produced by the ``vectors`` modules (op name → module) by op name)."""
    import torch

    from amber_sim.pruning.apply import apply_amber

    with torch.no_grad(), ShapeRecorder(linears, layers, tick, vectors) as recorder:
        if amber is None:
            logits, stats = model(input_ids=ids).logits, {}
        else:
            with apply_amber(model, amber, calibration=calibration) as handle:
                logits = model(input_ids=ids).logits
            stats = {(s.layer, s.role): s for s in handle.stats.values()}
    return logits, stats, recorder.by_layer_role(), recorder.vector_elements


def capture_pretrained(spec: CaptureSpec, runs: list[RunSpec], progress: Progress | None) -> Trace:
    from amber_sim.models.loading import load_model
    from amber_sim.pruning.apply import AmberConfig

    _check_not_weightless(spec.model)
    loaded = load_model(spec.model, tokenizer=spec.tokenizer)
    config = model_config_of(loaded.config)
    if spec.seq_len > loaded.config["max_position"]:
        raise InputError("--seq-len", None, f"{spec.seq_len} is beyond {loaded.name}'s context of "
                         f"{loaded.config['max_position']} tokens")
    if loaded.sliding_window is not None and spec.seq_len > loaded.sliding_window:
        raise InputError("--seq-len", None, f"{spec.seq_len} is longer than {loaded.name}'s sliding attention "
                         f"window of {loaded.sliding_window} tokens; the trace models full causal attention "
                         f"only, which equals the window's up to {loaded.sliding_window} tokens")
    check_patterns_fit(runs, config, loaded.name)
    ids = _window("evaluation", loaded.tokenizer, spec.seq_len, "--seq-len")
    model = loaded.model
    linears = hooked_linears(model)
    layers = decoder_layers(model)
    qk_norms = qk_norm_modules(layers)
    total_steps, done = len(runs) * len(layers), [0]
    label = [""]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total_steps, label[0])

    from amber_sim.pruning.policy import Calibrator, needs_calibration

    configs = [None if run.is_dense and run.precision == "fp16" else
               AmberConfig(pattern=run.pattern, criterion=spec.criterion, policy=spec.policy,
                           mitigation=spec.mitigation, model_name=loaded.name, precision=run.precision,
                           skip_layers=() if run.is_dense and spec.policy == "calibrated" else None)
               for run in runs]  # a dense w8a8 run masks nothing: no skip list
    calibrator = None
    if any(config is not None and needs_calibration(config) for config in configs):
        calibrator = Calibrator(model, _window("calibration", loaded.tokenizer, min(
            spec.calibration_tokens, loaded.config["max_position"]), "--calibration-tokens"))
    trace_runs, dense_nll, dense_argmax = [], None, None
    skip_lists: dict[str, dict] = {}  # pattern -> its calibrated skip list, for the notes
    measured: set[str] = set()        # what calibration measured, for the notes
    for run, amber in zip(runs, configs):
        label[0] = run.run_id(spec.criterion, spec.policy)
        calibration = None
        if amber is not None and calibrator is not None and needs_calibration(amber):
            if spec.policy == "calibrated" and not run.is_dense and progress is not None:
                progress(done[0], total_steps, f"calibrating {run.pattern} ({spec.calibration_metric} metric)")
            amber, calibration = calibrator.resolve(amber, spec.calibration_metric, spec.target_share)
            measured |= _measured(amber, calibration)
            if spec.policy == "calibrated" and not run.is_dense:
                skip_lists[run.pattern] = {"skip_layers": amber.skip_layers, "skip_linears": amber.skip_linears}
        logits, stats, observed, vector_elements = prefill_run(model, ids, amber, linears, layers, tick, calibration,
                                                               qk_norms)
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
        trace_run = build_run(run, spec, config, stats, metrics, spec.policy, qk_norm=bool(qk_norms))
        check_linear_ops(trace_run.ops, observed, loaded.name)
        check_vector_ops(trace_run.ops, vector_elements, QK_NORM_ROLES, loaded.name)
        trace_runs.append(trace_run)
    skipped = "; ".join(f"{pattern}: {describe_skips(skip)}" for pattern, skip in skip_lists.items())
    notes = (f"Pretrained weights. Every run is one real prefill of the first {spec.seq_len} tokens of the BBC "
             "evaluation split with Amber Pruner applied (Numba kernels, real masks); densities and natural zeros "
             "are counted by the kernels, GEMM shapes by forward hooks; accuracy is measured on the same "
             "window against the dense fp16 run. Ops are recorded with fp16 operands (w8a8 linears: int8); "
             "LM head on the last token only."
             + (f" Calibrated policy (target share {spec.target_share}, {spec.calibration_tokens} calibration tokens, "
                f"metric {spec.calibration_metric}): {skipped}." if skipped else "")
             + "".join(f" {what} from {spec.calibration_tokens} calibration tokens." for what in sorted(measured))
             + (" Per-head query/key RMSNorms (q_norm, k_norm) recorded as qk_norm vector ops." if qk_norms else "")
             + (f" Sliding attention window {loaded.sliding_window} tokens >= the {spec.seq_len}-token prompt: "
                "plain causal attention." if loaded.sliding_window is not None else "")
             + (f" Tokenizer from {loaded.tokenizer_source.rstrip('/').split('/')[-1]}."
                if loaded.tokenizer_source else ""))
    model_info = ModelInfo(name=loaded.name, family=loaded.family, weights="pretrained",
                           source=loaded.source.split("/")[-1], config=config)
    return trace_of(spec, model_info, trace_runs, f"BBC evaluation split, tokens 0..{spec.seq_len}", notes)
