"""One sweep or study point: the engine's numbers for every run of a trace, as table rows.

A :class:`TracePlan` is the trace compiled once by the engine (``engine.compile_trace``: each distinct op
once) plus what the rows carry besides simulation (accuracy, FLOP share). A hardware point then costs one
engine call per distinct op (about a hundred) instead of one per op (thousands); the metrics are the engine's
(``sim.metrics.run_metrics``), so a sweep row and the main job's report agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amber_sim.hw.config import HardwareConfig
from amber_sim.sim.engine import Program, compile_trace, program_totals, simulate_keys
from amber_sim.sim.metrics import CATEGORIES, run_metrics
from amber_sim.trace import Trace
from amber_sim.trace_summary import summarize_run

__all__ = ["CATEGORIES", "TracePlan", "build_plan", "evaluate_point"]


@dataclass(frozen=True)
class RunInfo:
    """What a row says about a run besides its simulation."""

    run_id: str
    pattern: str
    criterion: str
    policy: str
    mitigation: str
    precision: str
    perplexity: float | None
    top1_agreement: float | None
    sparsified_linear_flop_share: float


@dataclass(frozen=True)
class TracePlan:
    program: Program
    runs: tuple[RunInfo, ...]
    seq_len: int
    tokens: int
    tp: int = 1          # chips the prefill is split over (the trace is one chip's share when > 1)
    sp: bool = False     # sequence parallelism


def build_plan(trace: Trace, tp: int = 1, sp: bool = False) -> TracePlan:
    """The plan of ``trace``; ``tp``/``sp`` say how it was sharded (sim.parallel.shard_trace), for the rows."""
    infos = []
    for run in trace.runs:
        measured = run.metrics or {}
        infos.append(RunInfo(
            run_id=run.id, pattern=run.pattern, criterion=run.criterion, policy=run.policy,
            mitigation=run.mitigation, precision=run.precision, perplexity=measured.get("perplexity"),
            top1_agreement=measured.get("top1_agreement"),
            sparsified_linear_flop_share=summarize_run(run).sparsified_linear_flop_share))
    return TracePlan(program=compile_trace(trace), runs=tuple(infos), seq_len=trace.capture.seq_len,
                     tokens=trace.capture.tokens, tp=tp, sp=sp)


def evaluate_point(hw: HardwareConfig, plan: TracePlan) -> list[dict[str, Any]]:
    """One row per run (the metrics of docs/metrics.md and docs/studies.md)."""
    results = simulate_keys(hw, plan.program)
    rows = []
    for info, program in zip(plan.runs, plan.program.runs):
        totals = program_totals(results, program.counts())
        baseline = program_totals(results, program.baseline_counts())
        numbers = run_metrics(totals, baseline, hw.clock_ghz)
        row: dict[str, Any] = {
            "run_id": info.run_id, "pattern": info.pattern, "criterion": info.criterion, "policy": info.policy,
            "mitigation": info.mitigation, "precision": info.precision, "seq_len": plan.seq_len, "tp": plan.tp,
            "sp": plan.sp,
            "baseline": program.baseline,
            "prefill_cycles": numbers.prefill_cycles, "baseline_cycles": numbers.baseline_cycles,
            "prefill_ms": numbers.prefill_ms, "end_to_end_speedup": numbers.end_to_end_speedup,
            "linear_speedup": numbers.linear_speedup, "compute_utilization": numbers.compute_utilization,
            "dram_bytes": numbers.dram_bytes, "useful_macs": numbers.useful_macs,
            "activation_io_savings": numbers.activation_io_savings, "io_savings": numbers.io_savings,
            "energy_mj": numbers.energy_mj, "dominant_bound": numbers.dominant_bound,
            "collective_share": numbers.collective_share, "link_bytes": numbers.link_bytes,
            "link_savings": numbers.link_savings,
            "perplexity": info.perplexity, "top1_agreement": info.top1_agreement,
            "sparsified_linear_flop_share": info.sparsified_linear_flop_share,
        }
        for name in CATEGORIES:
            row[f"{name}_cycles"] = totals.cycles_by_category[name]
            row[f"baseline_{name}_cycles"] = baseline.cycles_by_category[name]
        rows.append(row)
    return rows
