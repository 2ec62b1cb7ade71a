"""amber-sim's systolic mode against SCALE-Sim v3 on the validation GEMM set (docs/validation.md).

Each case is run by amber-sim on a one-core systolic configuration with SCALE-Sim's array, dataflow
and GEMM orientation (activation-sparse cases are transposed, yᵀ = W·xᵀ, so the sparse activation is
SCALE-Sim's sparse filter operand; amber-sim shrinks the same K). Two memory settings:
- ``stall-free``: infinite bandwidth, zero latency and buffers large enough that no tiling split is
  forced, which is what SCALE-Sim's CALC mode assumes; this is the comparison the targets apply to;
- ``matched-sram``: infinite bandwidth but SCALE-Sim's SRAM sizes as amber-sim's double-buffered
  L0A/L0B/L0C, so amber-sim may have to split the GEMM into tiles (reported, not targeted).
SCALE-Sim reports the index of its last output write, one less than the cycle count, so amber-sim's
cycles − 1 are compared with SCALE-Sim's "Total Cycles".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from amber_sim.errors import InputError
from amber_sim.hw.config import (BufferConfig, ComputeConfig, DramConfig, HardwareConfig, MemoryConfig, SparsityConfig,
                                 SystolicConfig, VectorConfig)
from amber_sim.sim.mapper import GemmWork, simulate_gemm

UNBOUNDED_KB = 2.0**40


@dataclass(frozen=True)
class Comparison:
    case: str
    dataflow: str
    rows: int
    cols: int
    M: int
    K: int
    N: int
    pattern: str
    mapping: str
    scalesim_cycles: int
    amber_cycles: int            # in SCALE-Sim's convention (amber-sim cycles − 1)
    amber_matched_sram_cycles: int | None  # None: SCALE-Sim's SRAM cannot hold one double-buffered tile
    scalesim_util: float         # SCALE-Sim "Overall Util" as a fraction (dense MACs)
    amber_util: float            # dense MACs / (array PEs · amber-sim cycles), the same definition
    scalesim_wall_s: float

    @property
    def relative_error(self) -> float:
        return (self.amber_cycles - self.scalesim_cycles) / self.scalesim_cycles

    @property
    def matched_sram_relative_error(self) -> float | None:
        if self.amber_matched_sram_cycles is None:
            return None
        return (self.amber_matched_sram_cycles - self.scalesim_cycles) / self.scalesim_cycles


def systolic_hardware(rows: int, cols: int, dataflow: str, sram_kb: tuple[float, float, float] | None) -> HardwareConfig:
    """One array, 1 GHz, ideal memory; ``sram_kb`` (ifmap, filter, ofmap) or unbounded buffers."""
    ifmap, filt, ofmap = sram_kb if sram_kb is not None else (UNBOUNDED_KB,) * 3
    return HardwareConfig(
        name=f"systolic-{rows}x{cols}-{dataflow}", clock_ghz=1.0, cores=1,
        compute=ComputeConfig(kind="systolic", systolic=SystolicConfig(rows=rows, cols=cols, dataflow=dataflow),
                              int8_macs_per_fp16_mac=1.0),
        vector=VectorConfig(elements_per_cycle=1),
        memory=MemoryConfig(dram=DramConfig(bandwidth_gb_s=math.inf, latency_ns=0.0), l0a=BufferConfig(size_kb=ifmap),
                            l0b=BufferConfig(size_kb=filt), l0c=BufferConfig(size_kb=ofmap)),
        sparsity=SparsityConfig(operand="none"),
    )


def scalesim_gemm_work(M: int, N: int, K: int, pattern: str) -> GemmWork:
    """The GEMM in SCALE-Sim's orientation; N:M shrinks the reduction to K·n/m as SCALE-Sim's ELLPACK blocks do."""
    ratio, k_unit = 1.0, 1
    if pattern != "dense":
        n, m = (int(part) for part in pattern.split(":"))
        ratio, k_unit = n / m, m
    return GemmWork(M=M, K=K, N=N, batch=1, b_batch=1, causal="none", a_bytes_per_element=2.0, b_bytes=2.0,
                    out_bytes=2.0, k_compute_ratio=ratio, k_unit=k_unit, int8=False, a_on_chip=False,
                    out_on_chip=False, overhead_cycles_per_step=0)


def amber_cycles(M: int, N: int, K: int, rows: int, cols: int, dataflow: str, pattern: str,
                 sram_kb: tuple[float, float, float] | None) -> int:
    result = simulate_gemm(systolic_hardware(rows, cols, dataflow, sram_kb), scalesim_gemm_work(M, N, K, pattern))
    return result.cycles


def compare_rows(rows: list[dict[str, str]]) -> tuple[list[Comparison], float]:
    """Compare reference CSV rows (from scalesim_runner); returns the comparisons and amber-sim's wall time."""
    amber_cycles(8, 8, 8, 8, 8, "os", "dense", None)  # load the compiled kernels once, outside the timing
    comparisons = []
    start = time.perf_counter()
    for row in rows:
        M, N, K = int(row["scalesim_M"]), int(row["scalesim_N"]), int(row["scalesim_K"])
        array_rows, array_cols, dataflow = int(row["rows"]), int(row["cols"]), row["dataflow"]
        pattern = row["scalesim_sparsity"]
        sram = (float(row["ifmap_kb"]), float(row["filter_kb"]), float(row["ofmap_kb"]))
        stall_free = amber_cycles(M, N, K, array_rows, array_cols, dataflow, pattern, None) - 1
        try:
            matched: int | None = amber_cycles(M, N, K, array_rows, array_cols, dataflow, pattern, sram) - 1
        except InputError:
            matched = None
        comparisons.append(Comparison(
            case=row["case"], dataflow=dataflow, rows=array_rows, cols=array_cols, M=int(row["M"]), K=int(row["K"]),
            N=int(row["N"]), pattern=row["pattern"], mapping=row["mapping"],
            scalesim_cycles=int(row["total_cycles"]), amber_cycles=stall_free, amber_matched_sram_cycles=matched,
            scalesim_util=float(row["overall_util_pct"]) / 100.0,
            amber_util=M * N * K / (array_rows * array_cols * stall_free),
            scalesim_wall_s=float(row["wall_s"]),
        ))
    return comparisons, time.perf_counter() - start


@dataclass(frozen=True)
class Summary:
    cases: int
    dense_max_abs_error: float
    dense_mean_abs_error: float
    sparse_max_abs_error: float
    matched_sram_max_abs_error: float
    scalesim_wall_s: float
    amber_wall_s: float

    @property
    def speed_ratio(self) -> float:
        return self.scalesim_wall_s / self.amber_wall_s if self.amber_wall_s else math.inf


def summarize(comparisons: list[Comparison], amber_wall_s: float) -> Summary:
    dense = [abs(c.relative_error) for c in comparisons if c.pattern == "dense"]
    sparse = [abs(c.relative_error) for c in comparisons if c.pattern != "dense"]
    return Summary(
        cases=len(comparisons),
        dense_max_abs_error=max(dense, default=0.0),
        dense_mean_abs_error=sum(dense) / len(dense) if dense else 0.0,
        sparse_max_abs_error=max(sparse, default=0.0),
        matched_sram_max_abs_error=max((abs(c.matched_sram_relative_error) for c in comparisons
                                        if c.matched_sram_relative_error is not None), default=0.0),
        scalesim_wall_s=sum(c.scalesim_wall_s for c in comparisons),
        amber_wall_s=amber_wall_s,
    )
