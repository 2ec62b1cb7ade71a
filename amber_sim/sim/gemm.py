"""One GEMM on the modelled machine: mapping search, traffic, and the tile pipeline.

The GEMM is C[M, N] = A[M, K] · B[K, N], repeated ``batch`` times (attention heads). A is the
activation (the sparse operand), B the weight (or Kᵀ / V for attention), C the output. A core computes
one output block (tm × tn) at a time, streaming K in chunks of tk through double-buffered staging
buffers; blocks are dealt to cores round-robin in waves. See docs/model.md for every rule.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from amber_sim.errors import InputError
from amber_sim.hw.config import HardwareConfig, SparsityConfig, VectorConfig
from amber_sim.sim import kernel

ACCUMULATOR_BYTES = 4  # fp32 / int32 partial sums in L0C
KIB = 1024
MIB = 1024 * 1024
MAX_K_STEPS = 64  # candidate K chunks are at least K / 64 channels
_VIEW_VECTOR = VectorConfig(elements_per_cycle=1)   # placeholders in gemm_view: GEMM timing never reads them
_VIEW_SPARSITY = SparsityConfig(operand="none")


@dataclass(frozen=True)
class GemmWork:
    """Hardware-facing description of one GEMM (what the op needs, after the sparsity rule)."""

    M: int
    K: int
    N: int
    batch: int
    b_batch: int                   # distinct B operands (GQA: kv heads)
    causal: str                    # "none" | "score" (skip blocks above the diagonal) | "value" (K limited by row)
    a_bytes_per_element: float     # stored bytes per dense A element, values + metadata
    b_bytes: float
    out_bytes: float
    k_compute_ratio: float         # fraction of K the matrix unit computes (Nh/Mh when native sparse)
    k_unit: int                    # tk granularity in dense channels
    int8: bool
    a_on_chip: bool                # A never comes from memory (attention probabilities, fused)
    out_on_chip: bool              # C never goes to memory (attention scores, fused)
    overhead_cycles_per_step: int  # sparse datapath overhead per compute tile


@dataclass(frozen=True)
class Mapping:
    tm: int
    tn: int
    tk: int
    order: str  # "rows": N blocks innermost (A block-row reused); "cols": M blocks innermost
    accumulator_buffers: int = 2  # 2: output store overlaps the next block; 1: bigger blocks, no overlap

    def __str__(self) -> str:
        return f"{self.tm}x{self.tn}x{self.tk}/{self.order}/acc{self.accumulator_buffers}"


@dataclass(frozen=True)
class GemmResult:
    mapping: Mapping
    cycles: int
    load_cycles: int       # busy cycles of the critical core's memory queue for loads
    compute_cycles: int    # busy cycles of its matrix unit
    store_cycles: int
    latency_cycles: int
    blocks: int
    waves: int
    tail_blocks: int       # blocks in the last, partial wave (0 when the last wave is full)
    steps_per_core: int
    dram_read_a_bytes: float
    dram_read_b_bytes: float
    dram_write_bytes: float
    l2_read_bytes: float
    issued_macs: float     # MACs the matrix units execute, padding included (after the sparse K shrink)


def _pow2_multiples(unit: int, limit: int) -> list[int]:
    """unit, 2·unit, 4·unit, ... up to the first value >= limit (so one candidate covers the dimension)."""
    values, value = [], unit
    while True:
        values.append(value)
        if value >= limit:
            return values
        value *= 2


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit



def _cube_k_per_cycle(hw: HardwareConfig, int8: bool) -> int:
    factor = hw.compute.int8_macs_per_fp16_mac if int8 else 1.0
    return max(1, int(round(hw.compute.cube.k * factor)))


def _compute_unit(hw: HardwareConfig, work: GemmWork) -> tuple[int, int, int]:
    """(m, n, k) granularity of tiles: multiples of the compute shape (and of the hardware group M)."""
    if hw.compute.kind == "cube":
        cube = hw.compute.cube
        return cube.m, cube.n, math.lcm(work.k_unit, cube.k)
    array = hw.compute.systolic
    if array.dataflow == "os":   # M on rows, N on columns, K streamed
        return array.rows, array.cols, work.k_unit
    if array.dataflow == "ws":   # K on rows, N on columns, M streamed
        return array.rows, array.cols, math.lcm(work.k_unit, array.rows)
    return array.cols, array.rows, math.lcm(work.k_unit, array.rows)  # is: K on rows, M on columns, N streamed


def _k_slice(hw: HardwareConfig, work: GemmWork) -> int:
    """Dense channels of A in one L0 slice when an L1 stages the chunks: one compute step's depth."""
    if hw.compute.kind == "cube":
        return max(1, math.ceil(_cube_k_per_cycle(hw, work.int8) / work.k_compute_ratio))
    return hw.compute.systolic.rows


def _params(hw: HardwareConfig, work: GemmWork) -> np.ndarray:
    """The float64 parameter vector the Numba kernels read (field indices in kernel.py)."""
    p = np.zeros(kernel.N_PARAMS)
    p[kernel.P_M], p[kernel.P_K], p[kernel.P_N] = work.M, work.K, work.N
    p[kernel.P_BATCH], p[kernel.P_B_BATCH] = work.batch, work.b_batch
    p[kernel.P_CAUSAL] = {"none": kernel.CAUSAL_NONE, "score": kernel.CAUSAL_SCORE, "value": kernel.CAUSAL_VALUE}[work.causal]
    p[kernel.P_A_BPE] = 0.0 if work.a_on_chip else work.a_bytes_per_element
    p[kernel.P_B_BYTES] = work.b_bytes
    p[kernel.P_OUT_BYTES] = 0.0 if work.out_on_chip else work.out_bytes
    p[kernel.P_K_RATIO] = work.k_compute_ratio
    p[kernel.P_OVERHEAD] = work.overhead_cycles_per_step
    if hw.compute.kind == "cube":
        cube = hw.compute.cube
        p[kernel.P_KIND] = kernel.KIND_CUBE
        p[kernel.P_U0], p[kernel.P_U1], p[kernel.P_U2] = cube.m, cube.n, _cube_k_per_cycle(hw, work.int8)
    else:
        array = hw.compute.systolic
        p[kernel.P_KIND] = kernel.KIND_SYSTOLIC
        p[kernel.P_U0], p[kernel.P_U1] = array.rows, array.cols
        p[kernel.P_U2] = hw.compute.int8_macs_per_fp16_mac if work.int8 else 1.0
        p[kernel.P_DATAFLOW] = {"os": kernel.DATAFLOW_OS, "ws": kernel.DATAFLOW_WS, "is": kernel.DATAFLOW_IS}[array.dataflow]
    p[kernel.P_L1_BPC] = hw.memory.l1.bandwidth_bytes_per_cycle if hw.memory.l1 is not None else 0.0
    p[kernel.P_CORES] = hw.cores
    p[kernel.P_LATENCY] = math.ceil(hw.memory.dram.latency_ns * hw.clock_ghz)
    p[kernel.P_DRAM_BPC] = hw.memory.dram.bandwidth_gb_s / hw.clock_ghz
    p[kernel.P_L2_BPC] = hw.memory.l2.bandwidth_gb_s / hw.clock_ghz if hw.memory.l2 is not None else np.inf
    p[kernel.P_L2_BYTES] = hw.memory.l2.size_mb * MIB if hw.memory.l2 is not None else 0.0
    return p


def _candidates(hw: HardwareConfig, work: GemmWork) -> tuple[np.ndarray, ...]:
    """Every (tm, tn, tk, accumulator buffers, order): power-of-two multiples of the compute shape."""
    unit_m, unit_n, unit_k = _compute_unit(hw, work)
    tms = _pow2_multiples(unit_m, _round_up(work.M, unit_m))
    tns = _pow2_multiples(unit_n, _round_up(work.N, unit_n))
    # K chunks of at least K/MAX_K_STEPS: smaller chunks only shorten the first load, which is already
    # negligible, while multiplying the steps to simulate. The set depends on K alone, not on buffers.
    tks = [tk for tk in _pow2_multiples(unit_k, _round_up(work.K, unit_k)) if tk * MAX_K_STEPS >= work.K] or [unit_k]
    return tuple(arr.ravel() for arr in np.meshgrid(tms, tns, tks, (2, 1), (True, False), indexing="ij"))


def _fits(hw: HardwareConfig, work: GemmWork, tm, tn, tk, acc):
    """Candidates whose operand chunks fit double-buffered and whose accumulators fit ``acc`` times."""
    memory = hw.memory
    a_bpe = 0.0 if work.a_on_chip else work.a_bytes_per_element
    fits_c = acc * tm * tn * ACCUMULATOR_BYTES <= memory.l0c.size_kb * KIB
    a_chunk, b_chunk = tm * tk * a_bpe, tk * tn * work.b_bytes
    if memory.l1 is not None:
        k_slice = _k_slice(hw, work)
        return (fits_c & (2 * (a_chunk + b_chunk) <= memory.l1.size_kb * KIB)
                & (2 * tm * k_slice * work.a_bytes_per_element <= memory.l0a.size_kb * KIB)
                & (2 * k_slice * tn * work.b_bytes <= memory.l0b.size_kb * KIB))
    return fits_c & (2 * a_chunk <= memory.l0a.size_kb * KIB) & (2 * b_chunk <= memory.l0b.size_kb * KIB)


def _minimal_tile_error(hw: HardwareConfig, work: GemmWork, op_name: str) -> InputError:
    """Name the buffer that cannot hold the smallest tile, with the size it would need."""
    tm, tn, tk = _compute_unit(hw, work)
    memory = hw.memory
    a_chunk, b_chunk = tm * tk * work.a_bytes_per_element, tk * tn * work.b_bytes
    needs = [("memory.l0c.size_kb", tm * tn * ACCUMULATOR_BYTES, memory.l0c.size_kb)]
    if memory.l1 is not None:
        k_slice = _k_slice(hw, work)
        needs += [("memory.l1.size_kb", 2 * (a_chunk + b_chunk), memory.l1.size_kb),
                  ("memory.l0a.size_kb", 2 * tm * k_slice * work.a_bytes_per_element, memory.l0a.size_kb),
                  ("memory.l0b.size_kb", 2 * k_slice * tn * work.b_bytes, memory.l0b.size_kb)]
    else:
        needs += [("memory.l0a.size_kb", 2 * a_chunk, memory.l0a.size_kb),
                  ("memory.l0b.size_kb", 2 * b_chunk, memory.l0b.size_kb)]
    for field, need_bytes, have_kb in needs:
        if need_bytes > have_kb * KIB:
            return InputError(hw.source_path or hw.name, field,
                              f"{have_kb:g} KiB cannot hold even one minimal {tm}x{tn}x{tk} tile of op {op_name!r} "
                              f"(double-buffered operands); needs at least {math.ceil(need_bytes / KIB)} KiB")
    return InputError(hw.source_path or hw.name, None, f"no mapping fits op {op_name!r}")


def _try_order(hw: HardwareConfig, work: GemmWork, tm, tn, tk) -> np.ndarray:
    """Cheap steady-state estimate used only to try likely-fast mappings first (pruning works better)."""
    blocks = np.ceil(work.M / tm) * np.ceil(work.N / tn) * work.batch
    per_core = np.ceil(blocks / hw.cores)
    k_steps = np.ceil(work.K / tk)
    compute = k_steps * np.ceil(tm / _compute_unit(hw, work)[0]) * np.ceil(tn / _compute_unit(hw, work)[1])
    fill = work.K * (tm * work.a_bytes_per_element + tn * work.b_bytes)
    return per_core * np.maximum(compute * tk, fill)


@lru_cache(maxsize=64)
def gemm_view(hw: HardwareConfig) -> HardwareConfig:
    """The config with only what a GEMM's timing reads (clock, cores, compute, memory): configs that differ
    elsewhere (sparsity, vector unit, energy, area, names) share one cache entry per GemmWork, which
    is what makes sweeps over those fields cheap."""
    return dataclasses.replace(hw, name="", description="", sources=(), assumptions=(), energy=None, area=None,
                               vector=_VIEW_VECTOR, sparsity=_VIEW_SPARSITY, source_path=None)


def simulate_gemm(hw: HardwareConfig, work: GemmWork, op_name: str = "?") -> GemmResult:
    """The fastest mapping over every candidate that fits, timed exactly (ties: least DRAM traffic)."""
    result = _simulate_gemm_cached(gemm_view(hw), work)
    if result is None:
        raise _minimal_tile_error(hw, work, op_name)
    return result


@lru_cache(maxsize=65536)
def _simulate_gemm_cached(hw: HardwareConfig, work: GemmWork) -> GemmResult | None:
    tm, tn, tk, acc, rows = _candidates(hw, work)
    fits = _fits(hw, work, tm, tn, tk, acc)
    if not fits.any():
        return None
    tm, tn, tk, acc, rows = tm[fits], tn[fits], tk[fits], acc[fits], rows[fits]
    order = np.lexsort((-tk, -(tm * tn), _try_order(hw, work, tm, tn, tk)))
    tm, tn, tk, acc, rows = tm[order], tn[order], tk[order], acc[order], rows[order]
    best, out = kernel.search(_params(hw, work), tm.astype(np.int64), tn.astype(np.int64), tk.astype(np.int64),
                              acc.astype(np.int64), rows)
    mapping = Mapping(int(tm[best]), int(tn[best]), int(tk[best]), "rows" if rows[best] else "cols", int(acc[best]))
    return GemmResult(
        mapping=mapping, cycles=int(out[kernel.R_CYCLES]), load_cycles=int(out[kernel.R_LOAD]),
        compute_cycles=int(out[kernel.R_COMPUTE]), store_cycles=int(out[kernel.R_STORE]),
        latency_cycles=int(math.ceil(hw.memory.dram.latency_ns * hw.clock_ghz)), blocks=int(out[kernel.R_BLOCKS]),
        waves=int(out[kernel.R_WAVES]), tail_blocks=int(out[kernel.R_TAIL]), steps_per_core=int(out[kernel.R_STEPS]),
        dram_read_a_bytes=float(out[kernel.R_DRAM_A]), dram_read_b_bytes=float(out[kernel.R_DRAM_B]),
        dram_write_bytes=float(out[kernel.R_DRAM_OUT]),
        l2_read_bytes=float(out[kernel.R_FILL]) if hw.memory.l2 is not None else 0.0,
        issued_macs=float(out[kernel.R_ISSUED]),
    )
