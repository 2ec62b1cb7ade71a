"""Capture: a trace from a real Amber-pruned prefill of a real model.

For each run (one per pattern) the model runs the prefill once with Amber Pruner applied through
``apply_amber``; the pruning hooks measure, on that same forward, the density and natural zeros of
every pruned linear's activation, and the forward's logits give the accuracy on the same tokens
(perplexity, top-1 agreement with the dense run). The op list itself (shapes of every linear,
attention matmul and vector op) follows the model config (``prefill_ops``), with the measured numbers
filled in. The model runs in fp32 on the CPU; the ops are recorded with fp16 operands (2 bytes),
the precision the accelerator is assumed to run. The LM head is recorded for the last token only
(serving prefill), while accuracy uses every position of the window.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Callable

from amber_sim import __version__
from amber_sim.capture.prefill_ops import LinearChoice, prefill_ops
from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern
from amber_sim.pruning.apply import AmberConfig
from amber_sim.trace import CaptureInfo, ModelConfig, ModelInfo, Run, Trace
from amber_sim.trace_summary import summarize_run


@dataclass(frozen=True)
class CaptureSpec:
    model: str = "smollm2-135m"
    seq_len: int = 2048
    patterns: tuple[str, ...] = ("dense", "2:4", "4:8", "8:16", "16:32", "unstructured")
    criterion: str = "amber"
    policy: str = "amber-paper"
    mitigation: str = "none"
    command: str | None = None
    created: str | None = None


def _run_id(pattern: str, criterion: str, policy: str, precision: str) -> str:
    return f"{pattern}/{criterion}/{policy}/{precision}"


def capture_trace(spec: CaptureSpec, progress: Callable[[str], None] | None = None) -> Trace:
    from amber_sim.models.corpus import load_split, token_windows
    from amber_sim.models.loading import load_model
    from amber_sim.pruning.evaluate import dense_reference, evaluate_with_stats

    for pattern in spec.patterns:
        parse_pattern(pattern, "--patterns")
    if "dense" not in spec.patterns:
        raise InputError("--patterns", None, "must include dense (the accuracy baseline)")
    loaded = load_model(spec.model)
    if spec.seq_len <= 1 or spec.seq_len > loaded.config["max_position"]:
        raise InputError("--seq-len", None, f"expected 2..{loaded.config['max_position']} for {loaded.name}, "
                         f"got {spec.seq_len}")
    windows = token_windows(load_split("evaluation", loaded.tokenizer), spec.seq_len, 1)
    config = ModelConfig(**{key: loaded.config[key] for key in ("hidden", "layers", "heads", "kv_heads",
                                                                 "intermediate", "vocab", "head_dim", "max_position")})
    notify = progress or (lambda _message: None)
    notify("dense")
    dense, dense_argmax = dense_reference(loaded.model, windows)
    runs = []
    for pattern_text in spec.patterns:
        pattern = parse_pattern(pattern_text)
        if pattern.kind == "dense":
            metrics = {"perplexity": dense.perplexity, "top1_agreement": 1.0, "sparsified_linear_flop_share": 0.0,
                       "eval_tokens": float(dense.tokens)}
            ops = prefill_ops(config, spec.seq_len, lambda *_: LinearChoice())
            runs.append(Run(id=_run_id("dense", "none", "none", "fp16"), pattern="dense", criterion="none",
                            policy="none", mitigation="none", precision="fp16", metrics=metrics, ops=tuple(ops)))
            continue
        notify(str(pattern))
        amber = AmberConfig(pattern=str(pattern), criterion=spec.criterion, policy=spec.policy,
                            mitigation=spec.mitigation, model_name=loaded.name)
        accuracy, stats = evaluate_with_stats(loaded.model, windows, amber, dense_argmax)
        measured = {(layer_stats.layer, layer_stats.role): layer_stats for layer_stats in stats.values()}

        def choose(layer: int, role: str, tokens: int, k: int, n: int, _measured=measured, _pattern=str(pattern)):
            found = _measured.get((layer, role))
            if found is None:
                return LinearChoice()
            return LinearChoice(_pattern, found.density, found.natural_zero_fraction)

        ops = tuple(prefill_ops(config, spec.seq_len, choose))
        metrics = {"perplexity": accuracy.perplexity, "top1_agreement": accuracy.top1_agreement,
                   "eval_tokens": float(accuracy.tokens)}
        run = Run(id=_run_id(str(pattern), spec.criterion, spec.policy, "fp16"), pattern=str(pattern),
                  criterion=spec.criterion, policy=spec.policy, mitigation=spec.mitigation, precision="fp16",
                  metrics=metrics, ops=ops)
        # the trace's own definition (docs/metrics.md): share of the prefill's linear FLOPs, LM head included
        metrics["sparsified_linear_flop_share"] = summarize_run(run).sparsified_linear_flop_share
        runs.append(run)
    created = spec.created or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    return Trace(
        model=ModelInfo(name=loaded.name, family=loaded.family, weights="pretrained", source=loaded.source.split("/")[-1],
                        config=config),
        capture=CaptureInfo(origin="captured", seq_len=spec.seq_len, batch=1, dtype="fp32",
                            corpus=f"BBC evaluation split, tokens 0..{spec.seq_len}", tokens=spec.seq_len,
                            amber_sim_version=__version__, created=created, command=spec.command,
                            notes="Masks measured by the Numba kernels on the real activations of the pretrained "
                                  "model; accuracy measured on the same window; ops recorded with fp16 operands; "
                                  "LM head on the last token only."),
        runs=tuple(runs),
    )
