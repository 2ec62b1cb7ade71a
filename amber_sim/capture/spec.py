"""What a capture is asked for and how its runs become trace runs (torch-free; docs/capture.md).

The spec (:class:`CaptureSpec`), its checks, the runs it implies, and the assembly of a trace run from the
measured statistics; the two capture paths (``pretrained.py``, ``random_init.py``) build on it, and
``capture.py`` dispatches between them, so no module of the package imports one that imports it back.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass

from amber_sim import __version__
from amber_sim.capture.prefill_ops import LinearChoice, prefill_ops
from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern
from amber_sim.trace import CaptureInfo, ModelConfig, ModelInfo, Run, Trace
from amber_sim.trace_summary import summarize_run

PRECISIONS = ("fp16", "w8a8")
INITS = ("pretrained", "random")

# (done, total, what) after each decoder layer of each run
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class CaptureSpec:
    model: str = "smollm2-135m"
    seq_len: int = 2048
    patterns: tuple[str, ...] = ("dense", "2:4", "4:8", "8:16", "16:32", "unstructured")
    precisions: tuple[str, ...] = ("fp16",)
    criterion: str = "amber"
    policy: str = "amber-paper"
    mitigation: str = "none"
    init: str = "pretrained"       # pretrained | random
    target_share: float = 0.55     # calibrated policy: keep at least this share of linear FLOPs sparsified
    calibration_metric: str = "output-error"  # calibrated policy: output-error (whole layers) or loss (linears)
    calibration_tokens: int = 2048  # calibration-split tokens for the calibrated policy and W8A8 smoothing
    seed: int = 0                  # random-init weights and inputs
    tokenizer: str | None = None   # pretrained: a tokenizer directory to use instead of the model's own
    command: str | None = None
    created: str | None = None


@dataclass(frozen=True)
class RunSpec:
    """One run of the trace: a pattern at a precision (dense fp16 is the baseline of everything)."""

    pattern: str
    precision: str

    @property
    def is_dense(self) -> bool:
        return self.pattern == "dense"

    def run_id(self, criterion: str, policy: str) -> str:
        if self.is_dense:
            return f"dense/none/none/{self.precision}"
        return f"{self.pattern}/{criterion}/{policy}/{self.precision}"


def run_specs(spec: CaptureSpec) -> list[RunSpec]:
    """Dense fp16 first (the accuracy baseline), then every precision × pattern."""
    patterns = [str(parse_pattern(text, "--patterns")) for text in spec.patterns]
    for precision in spec.precisions:
        if precision not in PRECISIONS:
            raise InputError("--precision", None, f"expected fp16 or w8a8, got {precision!r}")
    if "dense" not in patterns or "fp16" not in spec.precisions:
        raise InputError("--patterns", None, "must include dense and --precision must include fp16 (the "
                         "dense fp16 run is the accuracy and speedup baseline)")
    runs = [RunSpec("dense", "fp16")]
    for precision in spec.precisions:
        for pattern in patterns:
            candidate = RunSpec(pattern, precision)
            if candidate not in runs:
                runs.append(candidate)
    return runs


def check_spec(spec: CaptureSpec) -> None:
    from amber_sim.pruning.names import (CALIBRATED_CRITERIA, CALIBRATION_METRICS, CRITERIA, LEARNABLE_MITIGATIONS,
                                         MITIGATIONS, POLICIES, STATIC_SHIFT_MITIGATIONS)

    for name, value, allowed in (("--init", spec.init, INITS), ("--policy", spec.policy, POLICIES),
                                 ("--criterion", spec.criterion, CRITERIA),
                                 ("--mitigation", spec.mitigation, MITIGATIONS)):
        if value not in allowed:
            raise InputError(name, None, f"expected one of {', '.join(allowed)}, got {value!r}")
    if spec.init == "random" and (spec.criterion in CALIBRATED_CRITERIA or spec.mitigation == "scaling"
                                  or spec.mitigation in STATIC_SHIFT_MITIGATIONS
                                  or spec.mitigation in LEARNABLE_MITIGATIONS):
        what = (f"--criterion {spec.criterion}" if spec.criterion in CALIBRATED_CRITERIA
                else f"--mitigation {spec.mitigation}")
        raise InputError(what.split()[0], None, f"{what.split()[1]} is measured on calibration text, which a "
                         "random-init capture does not read; use a pretrained model")
    if (spec.mitigation in LEARNABLE_MITIGATIONS and "w8a8" in spec.precisions
            and any(parse_pattern(text, "--patterns").kind != "dense" for text in spec.patterns)):
        raise InputError("--mitigation", None, f"{spec.mitigation} is trained on fp16 outputs; it is not offered "
                         "with --precision w8a8 (capture it at fp16, or use another mitigation with w8a8)")
    if spec.tokenizer is not None and spec.init == "random":
        raise InputError("--tokenizer", None, "applies to pretrained captures only (a random-init capture "
                         "tokenizes no text: its inputs are drawn at random)")
    if spec.calibration_metric not in CALIBRATION_METRICS:
        raise InputError("--calibration-metric", None, f"expected one of {', '.join(CALIBRATION_METRICS)}, got "
                         f"{spec.calibration_metric!r}")
    if not 0.0 < spec.target_share <= 1.0:
        raise InputError("--target-share", None, f"expected a share in (0, 1], got {spec.target_share}")
    if spec.calibration_tokens < 2:
        raise InputError("--calibration-tokens", None, f"expected at least 2 tokens, got {spec.calibration_tokens}")
    if spec.seq_len < 2:
        raise InputError("--seq-len", None, f"expected at least 2 tokens, got {spec.seq_len}")
    for text in spec.patterns:
        pattern = parse_pattern(text, "--patterns")
        if pattern.kind == "nm" and not 0 < pattern.n < pattern.m:
            raise InputError("--patterns", None, f"expected N:M with 0 < N < M, got {text!r}")


def check_patterns_fit(patterns: list[RunSpec], config: ModelConfig, where: str) -> None:
    """Every N:M pattern's M must divide the K of every linear it may prune (else the kernels refuse)."""
    from amber_sim.capture.prefill_ops import decoder_linear_shapes

    for run in patterns:
        pattern = parse_pattern(run.pattern)
        if pattern.kind != "nm":
            continue
        for role, (k, _n) in decoder_linear_shapes(config).items():
            if k % pattern.m:
                raise InputError("--patterns", None, f"{run.pattern}: {where}'s {role}_proj has K = {k} input "
                                 f"channels, not a multiple of M = {pattern.m}")


def model_config_of(summary: dict) -> ModelConfig:
    return ModelConfig(**{key: summary[key] for key in ("hidden", "layers", "heads", "kv_heads", "intermediate",
                                                        "vocab", "head_dim", "max_position")})


def choices_from_stats(stats: dict[tuple[int, str], object], pattern: str, mitigation: str):
    """The chooser ``prefill_ops`` asks per linear: measured density where pruned, dense elsewhere."""
    def choose(layer: int, role: str, _tokens: int, _k: int, _n: int) -> LinearChoice:
        found = stats.get((layer, role))
        if found is None:
            return LinearChoice()
        return LinearChoice(pattern, found.density, found.natural_zero_fraction, mitigation)
    return choose


def build_run(run: RunSpec, spec: CaptureSpec, config: ModelConfig, stats: dict, metrics: dict | None,
              policy_label: str, qk_norm: bool = False) -> Run:
    """A trace run from measured per-linear stats ({(layer, role): stats with density/natural_zero_fraction});
    ``qk_norm``: the model normalises each query and key head before RoPE (Qwen3)."""
    mitigation = "none" if run.is_dense else spec.mitigation
    choose = choices_from_stats(stats, run.pattern, mitigation)
    ops = tuple(prefill_ops(config, spec.seq_len, choose, precision=run.precision, qk_norm=qk_norm))
    criterion = "none" if run.is_dense else spec.criterion
    policy = "none" if run.is_dense else policy_label
    result = Run(id=run.run_id(criterion, policy), pattern=run.pattern, criterion=criterion, policy=policy,
                 mitigation=mitigation, precision=run.precision, metrics=metrics, ops=ops)
    if metrics is not None:
        # the trace's own definition (docs/metrics.md): share of the prefill's linear FLOPs, LM head included
        metrics["sparsified_linear_flop_share"] = summarize_run(result).sparsified_linear_flop_share
    return result


def created_now(spec: CaptureSpec) -> str:
    return spec.created or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def trace_of(spec: CaptureSpec, model: ModelInfo, runs: list[Run], corpus: str | None, notes: str) -> Trace:
    return Trace(model=model,
                 capture=CaptureInfo(origin="captured", seq_len=spec.seq_len, batch=1, dtype="fp32", corpus=corpus,
                                     tokens=spec.seq_len, amber_sim_version=__version__, created=created_now(spec),
                                     command=spec.command, notes=notes),
                 runs=tuple(runs))
