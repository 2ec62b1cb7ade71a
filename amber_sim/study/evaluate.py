"""Fast per-point evaluation of a whole trace: the engine's numbers, with repeated ops computed once.

``engine.simulate_run`` simulates every op of every run and of its all-dense twin. An op's result
depends only on its shape, pattern, density, precision and role, on the vector op that produces its
activation (the sparsifier may fuse with it) and on whether that producer also feeds dense linears;
not on its name or layer. A :class:`TracePlan` (built once per trace) keeps each distinct such key
once with how often it occurs in each run, so a hardware point costs one engine call per distinct
key (tens) instead of one per op (thousands). The totals equal ``engine.simulate_run``'s (integers
exactly, floats to rounding; tests/test_study_evaluate.py holds this).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from amber_sim.hw.config import HardwareConfig
from amber_sim.sim import engine
from amber_sim.sim.engine import OpResult
from amber_sim.trace import Op, Run, Trace
from amber_sim.trace_summary import summarize_run

CATEGORIES = ("compute", "memory", "sparsifier", "vector")


@dataclass(frozen=True)
class PlanEntry:
    op: Op                  # name and layer blanked: they do not change the result
    producer: Op | None     # the vector op before a linear (None for attention and vector ops)
    dense_siblings: bool    # the producer also feeds a dense linear (the sparse form is an extra write)


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    pattern: str
    criterion: str
    policy: str
    mitigation: str
    precision: str
    perplexity: float | None
    top1_agreement: float | None
    sparsified_linear_flop_share: float
    counts: tuple[tuple[int, int], ...]        # (entry index, occurrences) of the run
    dense_counts: tuple[tuple[int, int], ...]  # the same for its all-dense twin


@dataclass(frozen=True)
class TracePlan:
    entries: tuple[PlanEntry, ...]
    runs: tuple[RunPlan, ...]
    seq_len: int
    tokens: int


@dataclass(frozen=True)
class RunTotals:
    cycles: int
    linear_cycles: int
    dram_bytes: float
    activation_bytes: float
    useful_macs: float
    ideal_cycles: float
    energy_pj: float | None
    cycles_by_bound: dict[str, int]
    cycles_by_category: dict[str, int]


def _blank(op: Op) -> Op:
    return dataclasses.replace(op, name="", layer=0)


def _entries_of(ops: tuple[Op, ...]) -> list[PlanEntry]:
    """The same walk as engine.simulate_ops: producer groups start at each vector op."""
    feeds_dense: dict[int, bool] = {}
    group = -1
    for op in ops:
        if op.kind == "vector":
            group += 1
        elif op.kind == "linear" and not op.is_sparse:
            feeds_dense[group] = True
    entries, group, producer = [], -1, None
    for op in ops:
        if op.kind == "vector":
            group += 1
            producer = _blank(op)
            entries.append(PlanEntry(producer, None, False))
        elif op.kind == "linear":
            entries.append(PlanEntry(_blank(op), producer, feeds_dense.get(group, False)))
        else:
            entries.append(PlanEntry(_blank(op), None, feeds_dense.get(group, False)))
    return entries


def build_plan(trace: Trace) -> TracePlan:
    index: dict[PlanEntry, int] = {}

    def counted(ops: tuple[Op, ...]) -> tuple[tuple[int, int], ...]:
        counts: dict[int, int] = {}
        for entry in _entries_of(ops):
            position = index.setdefault(entry, len(index))
            counts[position] = counts.get(position, 0) + 1
        return tuple(sorted(counts.items()))

    runs = []
    for run in trace.runs:
        metrics = run.metrics or {}
        runs.append(RunPlan(
            run_id=run.id, pattern=run.pattern, criterion=run.criterion, policy=run.policy,
            mitigation=run.mitigation, precision=run.precision, perplexity=metrics.get("perplexity"),
            top1_agreement=metrics.get("top1_agreement"),
            sparsified_linear_flop_share=summarize_run(run).sparsified_linear_flop_share,
            counts=counted(run.ops), dense_counts=counted(tuple(engine.densified(op) for op in run.ops))))
    entries = tuple(sorted(index, key=index.__getitem__))
    return TracePlan(entries=entries, runs=tuple(runs), seq_len=trace.capture.seq_len, tokens=trace.capture.tokens)


def _producer(hw: HardwareConfig, op: Op | None):
    if op is None:
        return None
    return engine.producer_of(engine._simulate_vector(hw, op))


def simulate_entry(hw: HardwareConfig, entry: PlanEntry) -> OpResult:
    if entry.op.kind == "vector":
        return engine._simulate_vector(hw, entry.op)
    producer = _producer(hw, entry.producer) if entry.op.kind == "linear" else None
    return engine._simulate_gemm_op(hw, entry.op, producer, entry.dense_siblings)


def category_cycles(result: OpResult) -> dict[str, int]:
    """Where an op's cycles go (docs/studies.md §Bottleneck): GEMM work by its compute/memory bound,
    the sparsifier's added cycles, vector ops by theirs (vector unit or memory)."""
    if result.kind == "vector":
        return {"vector" if result.bound == "vector" else "memory": result.cycles}
    gemm_cycles = result.cycles - result.sparsifier_cycles
    gemm_bound = "compute" if result.compute_cycles >= result.load_cycles + result.store_cycles else "memory"
    out = {gemm_bound: gemm_cycles}
    if result.sparsifier_cycles:
        out["sparsifier"] = result.sparsifier_cycles
    return out


def _totals(results: list[OpResult], counts: tuple[tuple[int, int], ...]) -> RunTotals:
    cycles = linear = 0
    dram = activation = useful = ideal = 0.0
    energy: float | None = 0.0
    by_bound: dict[str, int] = {}
    by_category = {name: 0 for name in CATEGORIES}
    for position, count in counts:
        op = results[position]
        cycles += op.cycles * count
        if op.kind == "linear":
            linear += op.cycles * count
            activation += (op.activation_bytes + op.other_bytes) * count
        dram += op.dram_bytes * count
        useful += op.useful_macs * count
        ideal += op.ideal_cycles * count
        energy = None if energy is None or op.energy_pj is None else energy + op.energy_pj * count
        by_bound[op.bound] = by_bound.get(op.bound, 0) + op.cycles * count
        for name, value in category_cycles(op).items():
            by_category[name] += value * count
    return RunTotals(cycles=cycles, linear_cycles=linear, dram_bytes=dram, activation_bytes=activation,
                     useful_macs=useful, ideal_cycles=ideal, energy_pj=energy, cycles_by_bound=by_bound,
                     cycles_by_category=by_category)


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return numerator / denominator if denominator else empty


def evaluate_point(hw: HardwareConfig, plan: TracePlan) -> list[dict[str, Any]]:
    """One row per run (the metrics of docs/metrics.md and docs/studies.md)."""
    results = [simulate_entry(hw, entry) for entry in plan.entries]
    rows = []
    for run in plan.runs:
        totals, dense = _totals(results, run.counts), _totals(results, run.dense_counts)
        dominant = max(sorted(totals.cycles_by_bound), key=lambda bound: totals.cycles_by_bound[bound])
        row: dict[str, Any] = {
            "run_id": run.run_id, "pattern": run.pattern, "criterion": run.criterion, "policy": run.policy,
            "mitigation": run.mitigation, "precision": run.precision, "seq_len": plan.seq_len,
            "prefill_cycles": totals.cycles, "dense_cycles": dense.cycles,
            "prefill_ms": totals.cycles / (hw.clock_ghz * 1e6),
            "end_to_end_speedup": dense.cycles / totals.cycles,
            "linear_speedup": _ratio(dense.linear_cycles, totals.linear_cycles, 1.0),
            "compute_utilization": _ratio(totals.ideal_cycles, totals.cycles, 0.0),
            "dram_bytes": totals.dram_bytes, "useful_macs": totals.useful_macs,
            "activation_io_savings": 1.0 - _ratio(totals.activation_bytes, dense.activation_bytes, 1.0),
            "io_savings": 1.0 - _ratio(totals.dram_bytes, dense.dram_bytes, 1.0),
            "energy_mj": None if totals.energy_pj is None else totals.energy_pj * 1e-9,
            "dominant_bound": dominant,
            "perplexity": run.perplexity, "top1_agreement": run.top1_agreement,
            "sparsified_linear_flop_share": run.sparsified_linear_flop_share,
        }
        for name in CATEGORIES:
            row[f"{name}_cycles"] = totals.cycles_by_category[name]
            row[f"dense_{name}_cycles"] = dense.cycles_by_category[name]
        rows.append(row)
    return rows


def run_totals(hw: HardwareConfig, trace: Trace, run: Run) -> RunTotals:
    """Totals of one run through the plan (used by tests to compare with engine.simulate_run)."""
    plan = build_plan(dataclasses.replace(trace, runs=(run,)))
    results = [simulate_entry(hw, entry) for entry in plan.entries]
    return _totals(results, plan.runs[0].counts)
