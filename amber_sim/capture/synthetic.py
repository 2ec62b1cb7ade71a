"""Synthetic traces: shapes from a model config and a sequence length, masks *assumed*, not measured.

For tests and for the demo before a real capture exists. The file says ``"origin": "synthetic"``
in its capture section, densities are the nominal N/M (0.5 for unstructured), natural zeros are 0,
and metrics are null: nothing here was measured. Reports print that the trace is synthetic.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from amber_sim import __version__
from amber_sim.capture.prefill_ops import LinearChoice, prefill_ops
from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern
from amber_sim.pruning.layer_roles import PUBLISHED_SKIP_LAYERS, paper_rule_sparsifies
from amber_sim.trace import CaptureInfo, ModelConfig, ModelInfo, Run, Trace

UNSTRUCTURED_ASSUMED_DENSITY = 0.5


@dataclass(frozen=True)
class SyntheticSpec:
    model_name: str
    family: str
    config: ModelConfig
    seq_len: int
    patterns: tuple[str, ...] = ("dense", "2:4", "4:8", "8:16", "16:32", "unstructured")
    precisions: tuple[str, ...] = ("fp16",)
    policy: str = "amber-paper"  # "amber-paper" or "all"
    criterion: str = "amber"
    batch: int = 1
    created: str | None = None


def _run_id(pattern: str, criterion: str, policy: str, precision: str) -> str:
    return f"{pattern}/{criterion}/{policy}/{precision}"


def _build_run(spec: SyntheticSpec, pattern_text: str, precision: str) -> Run:
    pattern = parse_pattern(pattern_text, "synthetic trace", "patterns")
    dense = pattern.kind == "dense" or (pattern.kind == "nm" and pattern.n == pattern.m)
    density = UNSTRUCTURED_ASSUMED_DENSITY if pattern.kind == "unstructured" else pattern.density
    skip_layers = PUBLISHED_SKIP_LAYERS.get(spec.model_name, ()) if spec.policy == "amber-paper" else ()

    def choose(layer: int, role: str, tokens: int, k: int, n: int) -> LinearChoice:
        if dense:
            return LinearChoice()
        sparsify = True if spec.policy == "all" else paper_rule_sparsifies(role, layer, skip_layers)
        if pattern.kind == "nm" and k % pattern.m:
            sparsify = False
        return LinearChoice(str(pattern), density) if sparsify else LinearChoice()

    tokens = spec.seq_len * spec.batch
    ops = prefill_ops(spec.config, tokens, choose, precision=precision, logits_tokens=spec.batch)
    criterion = "none" if dense else spec.criterion
    policy = "none" if dense else spec.policy
    return Run(id=_run_id(str(pattern), criterion, policy, precision), pattern=str(pattern), criterion=criterion,
               policy=policy, mitigation="none", precision=precision, metrics=None, ops=tuple(ops))


def synthetic_trace(spec: SyntheticSpec) -> Trace:
    if spec.policy not in ("amber-paper", "all"):
        raise InputError("synthetic trace", "policy", f"expected amber-paper or all, got {spec.policy!r}")
    for precision in spec.precisions:
        if precision not in ("fp16", "w8a8"):
            raise InputError("synthetic trace", "precision", f"expected fp16 or w8a8, got {precision!r}")
    runs = tuple(_build_run(spec, pattern, precision) for precision in spec.precisions for pattern in spec.patterns)
    created = spec.created or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    skip = PUBLISHED_SKIP_LAYERS.get(spec.model_name)
    notes = ("SYNTHETIC: shapes from the model config, masks assumed (density = N/M, unstructured 0.5, no natural "
             "zeros), no accuracy measured. Policy " + spec.policy +
             (f" with the published skip list {list(skip)}" if skip and spec.policy == "amber-paper" else "") + ".")
    return Trace(
        model=ModelInfo(name=spec.model_name, family=spec.family, weights="none", source="architecture config",
                        config=spec.config),
        capture=CaptureInfo(origin="synthetic", seq_len=spec.seq_len, batch=spec.batch, dtype="fp16", corpus=None,
                            tokens=spec.seq_len * spec.batch, amber_sim_version=__version__, created=created,
                            notes=notes),
        runs=runs,
    )
