"""Totals and run metrics, defined once (docs/metrics.md) and used by the report and the studies alike.

- Totals sum per-op results over a run (each distinct op counted as often as it occurs).
- Linear cycles are the linear ops' cycles plus the selections fused into their producers: the
  sparsifier is work done for the linears wherever the model charges it.
- Activation bytes are the linear ops' A-operand DRAM reads (metadata included) plus all sparsifier
  traffic (own passes and the extra writes of fused selections).
- A run's speedups and I/O savings are against its *baseline*: the trace's dense run of the same
  precision, on the same hardware (mitigation work is a cost of the sparse run, never of its baseline);
  only a trace without such a run falls back to the run's all-dense twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

CATEGORIES = ("compute", "memory", "sparsifier", "vector", "collective")


class _Result(Protocol):  # the fields of engine.OpResult that totals read
    kind: str
    cycles: int
    compute_cycles: int
    load_cycles: int
    store_cycles: int
    sparsifier_cycles: int
    activation_bytes: float
    sparsifier_bytes: float
    useful_macs: float
    bound: str
    energy_pj: float | None

    @property
    def dram_bytes(self) -> float: ...

    @property
    def ideal_cycles(self) -> float: ...


@dataclass(frozen=True)
class Totals:
    cycles: int
    linear_cycles: int       # linear ops + selections fused into their producers
    dram_bytes: float
    activation_bytes: float  # linear ops' activation reads + all sparsifier traffic
    useful_macs: float
    ideal_cycles: float      # Σ useful MACs / peak MACs per cycle (per op precision)
    energy_pj: float | None
    cycles_by_bound: dict[str, int]
    cycles_by_category: dict[str, int]
    link_bytes: float = 0.0  # bytes each chip sends over its links (the collectives of a tensor-parallel prefill)

    @property
    def compute_utilization(self) -> float:
        return self.ideal_cycles / self.cycles if self.cycles else 0.0

    @property
    def dominant_bound(self) -> str:
        return max(sorted(self.cycles_by_bound), key=lambda bound: self.cycles_by_bound[bound])


def op_categories(result: _Result) -> dict[str, int]:
    """Where an op's cycles go (docs/studies.md §Bottleneck): its own work by its compute/memory (GEMMs) or
    vector/memory (vector ops) bound, a collective's to collective (tensor parallelism), and the cycles its
    sparsifier (own pass or fused selection) adds."""
    own = result.cycles - result.sparsifier_cycles
    if result.kind == "collective":
        return {"collective": own}
    if result.kind == "vector":
        out = {"vector" if result.compute_cycles >= result.load_cycles else "memory": own}
    else:
        out = {"compute" if result.compute_cycles >= result.load_cycles + result.store_cycles else "memory": own}
    if result.sparsifier_cycles:
        out["sparsifier"] = result.sparsifier_cycles
    return out


def totals(counted: Iterable[tuple[_Result, int]]) -> Totals:
    """Totals over (result, occurrences) pairs."""
    cycles = linear = 0
    dram = activation = useful = ideal = link = 0.0
    energy: float | None = 0.0
    by_bound: dict[str, int] = {}
    by_category = {name: 0 for name in CATEGORIES}
    for result, count in counted:
        cycles += result.cycles * count
        if result.kind == "linear":
            linear += result.cycles * count
            activation += result.activation_bytes * count
        else:
            linear += result.sparsifier_cycles * count
        activation += result.sparsifier_bytes * count
        dram += result.dram_bytes * count
        link += getattr(result, "link_bytes", 0.0) * count
        useful += result.useful_macs * count
        ideal += result.ideal_cycles * count
        energy = None if energy is None or result.energy_pj is None else energy + result.energy_pj * count
        by_bound[result.bound] = by_bound.get(result.bound, 0) + result.cycles * count
        for name, value in op_categories(result).items():
            by_category[name] += value * count
    return Totals(cycles=cycles, linear_cycles=linear, dram_bytes=dram, activation_bytes=activation,
                  useful_macs=useful, ideal_cycles=ideal, energy_pj=energy, cycles_by_bound=by_bound,
                  cycles_by_category=by_category, link_bytes=link)


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return numerator / denominator if denominator else empty


@dataclass(frozen=True)
class RunMetrics:
    """The numbers printed for one run (docs/metrics.md)."""

    prefill_cycles: int
    baseline_cycles: int
    prefill_ms: float
    linear_speedup: float
    end_to_end_speedup: float
    compute_utilization: float
    dram_bytes: float
    useful_macs: float
    activation_io_savings: float
    io_savings: float
    dominant_bound: str
    energy_mj: float | None
    collective_share: float = 0.0  # share of the prefill in collectives (tensor parallelism; 0 on one chip)
    link_bytes: float = 0.0        # bytes each chip sends over its links
    link_savings: float = 0.0      # 1 − link bytes / the baseline's (0 when the baseline sends none)


def run_metrics(run_totals: Totals, baseline: Totals, clock_ghz: float) -> RunMetrics:
    return RunMetrics(
        prefill_cycles=run_totals.cycles, baseline_cycles=baseline.cycles,
        prefill_ms=run_totals.cycles / (clock_ghz * 1e6),
        linear_speedup=_ratio(baseline.linear_cycles, run_totals.linear_cycles, 1.0),
        end_to_end_speedup=_ratio(baseline.cycles, run_totals.cycles, 1.0),
        compute_utilization=run_totals.compute_utilization, dram_bytes=run_totals.dram_bytes,
        useful_macs=run_totals.useful_macs,
        activation_io_savings=1.0 - _ratio(run_totals.activation_bytes, baseline.activation_bytes, 1.0),
        io_savings=1.0 - _ratio(run_totals.dram_bytes, baseline.dram_bytes, 1.0),
        dominant_bound=run_totals.dominant_bound,
        energy_mj=None if run_totals.energy_pj is None else run_totals.energy_pj * 1e-9,
        collective_share=_ratio(run_totals.cycles_by_category.get("collective", 0), run_totals.cycles, 0.0),
        link_bytes=run_totals.link_bytes,
        link_savings=1.0 - _ratio(run_totals.link_bytes, baseline.link_bytes, 1.0),
    )
