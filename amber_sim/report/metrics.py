"""The per-run numbers the report prints, computed once from simulation results (docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass

from amber_sim.hw.config import HardwareConfig
from amber_sim.sim.engine import TWIN, RunResult, TraceResult, mitigation_free_cycles
from amber_sim.trace_summary import summarize_run


@dataclass(frozen=True)
class RunRow:
    run_id: str
    pattern: str
    criterion: str
    policy: str
    mitigation: str
    precision: str
    baseline: str          # the run the speedups and savings are against (docs/metrics.md)
    prefill_ms: float
    prefill_cycles: int
    baseline_cycles: int
    linear_speedup: float
    end_to_end_speedup: float
    compute_utilization: float
    dram_bytes: float
    activation_io_savings: float
    io_savings: float
    sparsified_linear_flop_share: float
    perplexity: float | None
    top1_agreement: float | None
    dominant_bound: str
    energy_mj: float | None
    collective_share: float = 0.0  # tensor parallelism: share of the chip's prefill in collectives
    link_bytes: float = 0.0        # bytes each chip sends over its links
    link_savings: float = 0.0      # against the baseline's link bytes
    mitigation_share: float = 0.0  # 1 − prefill cycles without the mitigation ops / with them (docs/metrics.md)


def baseline_phrase(rows: list[RunRow]) -> str:
    """What the speedups of ``rows`` are against, in words, from the runs' baselines."""
    twins = {row.baseline == TWIN for row in rows}
    if twins == {True}:
        return "the same run with every op dense"
    if twins == {False}:
        return "the trace's dense run of the same precision"
    return "the trace's dense run of the same precision (the run itself all-dense where the trace has none)"


def mitigation_share(hw: HardwareConfig, result: RunResult) -> float:
    """1 − the run's prefill cycles without its mitigation ops / with them (0 when it has none)."""
    if not result.totals.cycles or not any(op.sparse_overhead for op in result.run.ops):
        return 0.0
    return 1.0 - mitigation_free_cycles(hw, result.run) / result.totals.cycles


def run_row(result: RunResult, hw: HardwareConfig) -> RunRow:
    run = result.run
    accuracy = run.metrics or {}
    numbers = result.numbers
    return RunRow(
        run_id=run.id, pattern=run.pattern, criterion=run.criterion, policy=run.policy, mitigation=run.mitigation,
        precision=run.precision, baseline=result.baseline, prefill_ms=numbers.prefill_ms,
        prefill_cycles=numbers.prefill_cycles, baseline_cycles=numbers.baseline_cycles,
        linear_speedup=numbers.linear_speedup, end_to_end_speedup=numbers.end_to_end_speedup,
        compute_utilization=numbers.compute_utilization, dram_bytes=numbers.dram_bytes,
        activation_io_savings=numbers.activation_io_savings, io_savings=numbers.io_savings,
        sparsified_linear_flop_share=summarize_run(run).sparsified_linear_flop_share,
        perplexity=accuracy.get("perplexity"), top1_agreement=accuracy.get("top1_agreement"),
        dominant_bound=numbers.dominant_bound, energy_mj=numbers.energy_mj,
        collective_share=numbers.collective_share, link_bytes=numbers.link_bytes, link_savings=numbers.link_savings,
        mitigation_share=mitigation_share(hw, result),
    )


def mitigation_phrase(rows: list[RunRow]) -> str:
    """Which mitigation the sparse runs use, in words, for the caption of the ``mitig.`` column."""
    used: dict[str, list[str]] = {}
    for row in rows:
        if row.pattern != "dense":
            used.setdefault(row.mitigation, []).append(row.run_id)
    if len(used) <= 1:
        return next(iter(used), "none")
    return "; ".join(f"{name} ({', '.join(ids)})" for name, ids in used.items())


def run_rows(result: TraceResult) -> list[RunRow]:
    return [run_row(run, result.hardware) for run in result.runs]


@dataclass(frozen=True)
class LayerRow:
    layer: int
    cycles: int
    share: float
    slowest_op: str
    slowest_op_cycles: int
    bound: str
    cycles_by_role: dict[str, int]


def layer_rows(result: RunResult) -> list[LayerRow]:
    """Per decoder layer (-1: ops outside the layers), slowest first."""
    layers: dict[int, list] = {}
    for op in result.ops:
        layers.setdefault(op.layer, []).append(op)
    total = result.totals.cycles or 1
    rows = []
    for layer, ops in layers.items():
        slowest = max(ops, key=lambda op: op.cycles)
        by_role: dict[str, int] = {}
        for op in ops:
            by_role[op.role] = by_role.get(op.role, 0) + op.cycles
        cycles = sum(op.cycles for op in ops)
        rows.append(LayerRow(layer=layer, cycles=cycles, share=cycles / total, slowest_op=slowest.name,
                             slowest_op_cycles=slowest.cycles, bound=slowest.bound, cycles_by_role=by_role))
    return sorted(rows, key=lambda row: (-row.cycles, row.layer))


def choose_run(result: TraceResult, run_id: str | None) -> RunResult:
    """The run whose layers are detailed: the one named, else the fastest non-dense run, else the first."""
    if run_id is not None:
        for run in result.runs:
            if run.run.id == run_id:
                return run
        from amber_sim.errors import InputError

        raise InputError("--run", None, f"no run {run_id!r} in the trace (runs: {', '.join(r.run.id for r in result.runs)})")
    sparse = [run for run in result.runs if run.run.pattern != "dense"]
    if not sparse:
        return result.runs[0]
    return min(sparse, key=lambda run: (run.totals.cycles, run.run.id))
