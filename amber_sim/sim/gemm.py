"""One GEMM on the modelled machine: mapping search, traffic, and the tile pipeline.

The GEMM is C[M, N] = A[M, K] · B[K, N], repeated ``batch`` times (attention heads). A is the
activation (the sparse operand), B the weight (or Kᵀ / V for attention), C the output. A core computes
one output block (tm × tn) at a time, streaming K in chunks of tk through double-buffered staging
buffers; blocks are dealt to cores round-robin in waves. See docs/model.md for every rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from amber_sim.errors import InputError
from amber_sim.hw.config import HardwareConfig
from amber_sim.sim.timeline import pipeline_cycles

ACCUMULATOR_BYTES = 4  # fp32 / int32 partial sums in L0C
KIB = 1024
MIB = 1024 * 1024
CANDIDATES_TIMED = 4  # mappings whose full timeline is simulated after the closed-form pre-ranking


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
    a_values_fraction: float       # fraction of A's dense elements stored as values (compute-side)
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


# ---------------------------------------------------------------- compute per tile

def _cube_k_per_cycle(hw: HardwareConfig, int8: bool) -> int:
    assert hw.compute.cube is not None
    factor = hw.compute.int8_macs_per_fp16_mac if int8 else 1.0
    return max(1, int(round(hw.compute.cube.k * factor)))


def tile_compute_cycles(hw: HardwareConfig, work: GemmWork, rows, cols, k_dense):
    """Matrix-unit cycles for tiles of rows × cols outputs over k_dense channels (numpy-vectorised).

    cube: ceil(rows/m)·ceil(cols/n)·ceil(k_eff/k) with k_eff = ceil(k_dense·Nh/Mh) on native sparse
    data and k scaled by the int8 rate for W8A8. systolic: see ``_systolic_tile_cycles``.
    """
    k_eff = np.ceil(np.asarray(k_dense) * work.k_compute_ratio - 1e-9)
    if hw.compute.kind == "cube":
        cube = hw.compute.cube
        return (np.ceil(np.asarray(rows) / cube.m) * np.ceil(np.asarray(cols) / cube.n)
                * np.ceil(k_eff / _cube_k_per_cycle(hw, work.int8))).astype(np.int64)
    return _systolic_tile_cycles(hw, work, np.asarray(rows), np.asarray(cols), k_eff)


def _systolic_tile_cycles(hw: HardwareConfig, work: GemmWork, rows, cols, k_eff):
    """SCALE-Sim-style folds: each fold maps an R×C slice of the tile onto the array (docs/model.md)."""
    array = hw.compute.systolic
    R, C = array.rows, array.cols
    rate = hw.compute.int8_macs_per_fp16_mac if work.int8 else 1.0
    k_eff = np.ceil(k_eff / rate)
    if array.dataflow == "os":      # outputs stationary: rows×cols on the array, K streams
        folds = np.ceil(rows / R) * np.ceil(cols / C)
        per_fold = 2 * R + C + k_eff - 2
    elif array.dataflow == "ws":    # weights stationary: K×cols on the array, rows stream
        folds = np.ceil(k_eff / R) * np.ceil(cols / C)
        per_fold = 2 * R + C + rows - 2
    else:                           # inputs stationary: K×rows on the array, cols stream
        folds = np.ceil(k_eff / R) * np.ceil(rows / C)
        per_fold = 2 * R + C + cols - 2
    return (folds * per_fold).astype(np.int64)


def _compute_unit(hw: HardwareConfig, work: GemmWork) -> tuple[int, int, int]:
    """(m, n, k) granularity of tiles: multiples of the compute shape."""
    if hw.compute.kind == "cube":
        cube = hw.compute.cube
        k_unit = math.lcm(work.k_unit, cube.k)
        return cube.m, cube.n, k_unit
    array = hw.compute.systolic
    return array.rows if array.dataflow != "is" else 1, array.cols, math.lcm(work.k_unit, 1)


# ---------------------------------------------------------------- buffers

def _buffer_limits(hw: HardwareConfig, work: GemmWork, tm, tn, tk, acc, k_slice: int):
    """Boolean mask of candidates whose operand chunks fit double-buffered and accumulators fit ``acc`` times."""
    memory = hw.memory
    fits_c = acc * tm * tn * ACCUMULATOR_BYTES <= memory.l0c.size_kb * KIB
    a_chunk = tm * tk * work.a_bytes_per_element
    b_chunk = tk * tn * work.b_bytes
    if memory.l1 is not None:
        fits_stage = 2 * (a_chunk + b_chunk) <= memory.l1.size_kb * KIB
        fits_a = 2 * tm * k_slice * work.a_bytes_per_element <= memory.l0a.size_kb * KIB
        fits_b = 2 * k_slice * tn * work.b_bytes <= memory.l0b.size_kb * KIB
        return fits_c & fits_stage & fits_a & fits_b
    fits_a = 2 * a_chunk <= memory.l0a.size_kb * KIB
    fits_b = 2 * b_chunk <= memory.l0b.size_kb * KIB
    return fits_c & fits_a & fits_b


def _minimal_tile_error(hw: HardwareConfig, work: GemmWork, tm: int, tn: int, tk: int, op_name: str) -> InputError:
    memory = hw.memory
    needs = [("memory.l0c.size_kb", 2 * tm * tn * ACCUMULATOR_BYTES, memory.l0c.size_kb)]
    a_chunk, b_chunk = tm * tk * work.a_bytes_per_element, tk * tn * work.b_bytes
    if memory.l1 is not None:
        needs.append(("memory.l1.size_kb", 2 * (a_chunk + b_chunk), memory.l1.size_kb))
    needs += [("memory.l0a.size_kb", 2 * a_chunk, memory.l0a.size_kb), ("memory.l0b.size_kb", 2 * b_chunk, memory.l0b.size_kb)]
    for field, need_bytes, have_kb in needs:
        if need_bytes > have_kb * KIB:
            return InputError(hw.source_path or hw.name, field,
                              f"{have_kb:g} KiB cannot hold even one minimal {tm}x{tn}x{tk} tile of op {op_name!r} "
                              f"double-buffered; needs at least {math.ceil(need_bytes / KIB)} KiB")
    return InputError(hw.source_path or hw.name, None, f"no mapping fits op {op_name!r}")


# ---------------------------------------------------------------- blocks and traffic

def _valid_blocks(work: GemmWork, tm: int, tn: int) -> tuple[np.ndarray, np.ndarray]:
    """(mi, ni) of the output blocks one batch element computes (causal scores skip the upper triangle)."""
    mb, nb = -(-work.M // tm), -(-work.N // tn)
    mi, ni = np.meshgrid(np.arange(mb), np.arange(nb), indexing="ij")
    mi, ni = mi.ravel(), ni.ravel()
    if work.causal == "score":
        keep = ni * tn <= (mi + 1) * tm - 1
        mi, ni = mi[keep], ni[keep]
    return mi, ni


def _block_k(work: GemmWork, mi: np.ndarray, tm: int) -> np.ndarray:
    if work.causal == "value":  # row block mi only attends to the first (mi+1)·tm positions
        return np.minimum(work.K, (mi + 1) * tm)
    return np.full(mi.shape, work.K)


@dataclass(frozen=True)
class _Traffic:
    dram_a: float
    dram_b: float
    dram_out: float
    fill_bytes: float  # bytes loaded into the cores (from L2, or DRAM when there is no L2)
    dram_fraction: float


def _traffic(hw: HardwareConfig, work: GemmWork, mapping: Mapping, mi, ni, rows, cols, k_len) -> _Traffic:
    """DRAM and fill bytes of one mapping. Edge blocks move only their real bytes (no padding)."""
    batch = work.batch
    a_fill = 0.0 if work.a_on_chip else float(np.sum(rows * k_len)) * work.a_bytes_per_element * batch
    b_fill = float(np.sum(k_len * cols)) * work.b_bytes * batch
    out = 0.0 if work.out_on_chip else float(np.sum(rows * cols)) * work.out_bytes * batch
    a_unique = 0.0 if work.a_on_chip else work.M * work.K * work.a_bytes_per_element * batch
    b_unique = work.K * work.N * work.b_bytes * work.b_batch
    # B blocks needed by batch elements that share one B (GQA) are fetched from L2 after the first.
    l2_bytes = hw.memory.l2.size_mb * MIB if hw.memory.l2 is not None else 0.0
    if l2_bytes <= 0:
        dram_a, dram_b = a_fill, b_fill
    elif mapping.order == "rows":
        # A block-row (tm × K) is reused while the N blocks sweep; B is swept once per block-row.
        dram_a = a_unique if mapping.tm * work.K * work.a_bytes_per_element <= l2_bytes else a_fill
        dram_b = b_unique if work.K * work.N * work.b_bytes <= l2_bytes else b_fill
    else:
        dram_b = b_unique if work.K * mapping.tn * work.b_bytes <= l2_bytes else b_fill
        dram_a = a_unique if work.M * work.K * work.a_bytes_per_element <= l2_bytes else a_fill
    fill = a_fill + b_fill
    return _Traffic(dram_a, dram_b, out, fill, (dram_a + dram_b) / fill if fill else 0.0)


def _bytes_per_cycle(hw: HardwareConfig) -> tuple[float, float]:
    """(DRAM, L2) bandwidth of the whole chip in bytes per core clock cycle."""
    dram = hw.memory.dram.bandwidth_gb_s / hw.clock_ghz
    l2 = hw.memory.l2.bandwidth_gb_s / hw.clock_ghz if hw.memory.l2 is not None else math.inf
    return dram, l2


def _cycles_per_fill_byte(hw: HardwareConfig, dram_fraction: float, active_cores) -> np.ndarray:
    """Cycles per byte loaded by one core when ``active_cores`` load at once (bandwidth shared equally).

    Fill data streams from L2 (all of it) and from DRAM (the ``dram_fraction`` that misses L2)
    concurrently, so the slower of the two limits the rate.
    """
    dram_bpc, l2_bpc = _bytes_per_cycle(hw)
    active = np.asarray(active_cores, dtype=np.float64)
    if hw.memory.l2 is None:
        return active / dram_bpc
    return np.maximum(active / l2_bpc, dram_fraction * active / dram_bpc)


# ---------------------------------------------------------------- search and timeline

def _candidates(hw: HardwareConfig, work: GemmWork) -> tuple[np.ndarray, ...]:
    unit_m, unit_n, unit_k = _compute_unit(hw, work)
    tms = _pow2_multiples(unit_m, _round_up(work.M, unit_m))
    tns = _pow2_multiples(unit_n, _round_up(work.N, unit_n))
    tks = _pow2_multiples(unit_k, _round_up(work.K, unit_k))
    return tuple(arr.ravel() for arr in np.meshgrid(tms, tns, tks, (2, 1), indexing="ij"))


def _k_slice(hw: HardwareConfig, work: GemmWork) -> int:
    """Dense channels of A in one L0 slice: one cube k-step (more on native sparse data)."""
    if hw.compute.kind == "cube":
        return max(1, math.ceil(_cube_k_per_cycle(hw, work.int8) / work.k_compute_ratio))
    return 1


def _estimate(hw: HardwareConfig, work: GemmWork, tm, tn, tk, acc) -> np.ndarray:
    """Closed-form steady-state cycles per candidate, used only to pre-rank mappings."""
    mb, nb = np.ceil(work.M / tm), np.ceil(work.N / tn)
    blocks = mb * nb * work.batch
    if work.causal == "score":
        blocks = blocks * 0.5 + mb * 0.5 * work.batch
    per_core = np.ceil(blocks / hw.cores)
    k_steps = np.ceil(work.K / tk) * (0.5 if work.causal == "value" else 1.0)
    compute = tile_compute_cycles(hw, work, tm, tn, tk) + work.overhead_cycles_per_step
    fill_per_step = (0 if work.a_on_chip else tm * tk * work.a_bytes_per_element) + tk * tn * work.b_bytes
    active = np.minimum(blocks, hw.cores)
    cpb = _cycles_per_fill_byte(hw, 0.5, active)
    load = fill_per_step * cpb
    store = 0 if work.out_on_chip else tm * tn * work.out_bytes * active / _bytes_per_cycle(hw)[0]
    exposed_store = np.where(acc == 2, 0.0, store)  # one accumulator buffer: the store is not hidden
    return per_core * (k_steps * np.maximum(load, compute) + exposed_store) + load


def _timeline(hw: HardwareConfig, work: GemmWork, mapping: Mapping) -> GemmResult:
    tm, tn, tk = mapping.tm, mapping.tn, mapping.tk
    mi, ni = _valid_blocks(work, tm, tn)
    if mapping.order == "cols":
        order = np.lexsort((mi, ni))
        mi, ni = mi[order], ni[order]
    rows = np.minimum(tm, work.M - mi * tm)
    cols = np.minimum(tn, work.N - ni * tn)
    k_len = _block_k(work, mi, tm)
    traffic = _traffic(hw, work, mapping, mi, ni, rows, cols, k_len)

    per_batch = mi.size
    total_blocks = per_batch * work.batch
    cores = hw.cores
    waves = -(-total_blocks // cores)
    tail = total_blocks % cores
    block_ids = np.arange(total_blocks)
    local = block_ids % per_batch
    k_steps_per_block = -(-k_len[local] // tk)
    # Work per core (in steps) to find the critical core; simulate it and core 0.
    core_of_block = block_ids % cores
    work_per_core = np.bincount(core_of_block, weights=k_steps_per_block, minlength=cores)
    critical = {0, int(np.argmax(work_per_core)), int((total_blocks - 1) % cores)}
    dram_bpc, _ = _bytes_per_cycle(hw)
    latency = int(math.ceil(hw.memory.dram.latency_ns * hw.clock_ghz))
    a_bpe = 0.0 if work.a_on_chip else work.a_bytes_per_element
    best = None
    for core in sorted(critical):
        mine = block_ids[core::cores]
        if mine.size == 0:
            continue
        wave = mine // cores
        active = np.minimum(cores, total_blocks - wave * cores)
        cpb = _cycles_per_fill_byte(hw, traffic.dram_fraction, active)
        loc = local[mine]
        nsteps = k_steps_per_block[mine]
        step_block = np.repeat(np.arange(mine.size), nsteps)
        # k length of each step: full tk chunks and a final partial chunk per block.
        step_in_block = np.arange(step_block.size) - np.repeat(np.cumsum(nsteps) - nsteps, nsteps)
        step_k = np.minimum(tk, np.repeat(k_len[loc], nsteps) - step_in_block * tk)
        step_rows = np.repeat(rows[loc], nsteps)
        step_cols = np.repeat(cols[loc], nsteps)
        step_bytes = step_rows * step_k * a_bpe + step_k * step_cols * work.b_bytes
        step_load = np.ceil(step_bytes * np.repeat(cpb, nsteps) - 1e-9).astype(np.int64)
        padded_rows = np.repeat(np.full(mine.size, tm), nsteps)
        padded_cols = np.repeat(np.full(mine.size, tn), nsteps)
        step_compute = tile_compute_cycles(hw, work, np.minimum(padded_rows, _round_up_arr(step_rows, hw, "m")),
                                           np.minimum(padded_cols, _round_up_arr(step_cols, hw, "n")), step_k)
        step_compute = step_compute + work.overhead_cycles_per_step
        if hw.memory.l1 is not None:  # L1 -> L0 operand traffic of the step
            l1_cycles = np.ceil(step_bytes / hw.memory.l1.bandwidth_bytes_per_cycle - 1e-9).astype(np.int64)
            step_compute = np.maximum(step_compute, l1_cycles)
        if work.out_on_chip:
            block_store = np.zeros(mine.size, dtype=np.int64)
        else:
            block_store = np.ceil(rows[loc] * cols[loc] * work.out_bytes * active / dram_bpc - 1e-9).astype(np.int64)
        total, load_busy, compute_busy, store_busy = pipeline_cycles(
            step_load, step_compute.astype(np.int64), step_block.astype(np.int64), block_store, latency,
            mapping.accumulator_buffers)
        candidate = (int(total), int(load_busy), int(compute_busy), int(store_busy), int(step_block.size))
        if best is None or candidate[0] > best[0]:
            best = candidate
    issued = _issued_macs(hw, work, rows, cols, k_len)
    return GemmResult(mapping=mapping, cycles=best[0], load_cycles=best[1], compute_cycles=best[2],
                      store_cycles=best[3], latency_cycles=latency, blocks=total_blocks, waves=waves,
                      tail_blocks=tail, steps_per_core=best[4], dram_read_a_bytes=traffic.dram_a,
                      dram_read_b_bytes=traffic.dram_b, dram_write_bytes=traffic.dram_out,
                      l2_read_bytes=traffic.fill_bytes if hw.memory.l2 is not None else 0.0, issued_macs=issued)


def _round_up_arr(values: np.ndarray, hw: HardwareConfig, axis: str) -> np.ndarray:
    """Edge tiles compute padded to the compute shape (lost utilization), not to the full tile."""
    if hw.compute.kind == "cube":
        unit = hw.compute.cube.m if axis == "m" else hw.compute.cube.n
        return -(-values // unit) * unit
    return values


def _issued_macs(hw: HardwareConfig, work: GemmWork, rows, cols, k_len) -> float:
    """MACs the matrix unit performs: padded edges, K shrunk to Nh/Mh on native sparse data."""
    rows_p = _round_up_arr(rows, hw, "m")
    cols_p = _round_up_arr(cols, hw, "n")
    return float(np.sum(rows_p * cols_p * np.ceil(k_len * work.k_compute_ratio - 1e-9))) * work.batch


def simulate_gemm(hw: HardwareConfig, work: GemmWork, op_name: str = "?") -> GemmResult:
    """Search mappings (pre-ranked in closed form), time the best few exactly, keep the fastest.

    Ties go to the mapping with the least DRAM traffic.
    """
    result = _simulate_gemm_cached(hw, work)
    if result is None:
        unit_m, unit_n, unit_k = _compute_unit(hw, work)
        raise _minimal_tile_error(hw, work, unit_m, unit_n, unit_k, op_name)
    return result


@lru_cache(maxsize=65536)
def _simulate_gemm_cached(hw: HardwareConfig, work: GemmWork) -> GemmResult | None:
    tm, tn, tk, acc = _candidates(hw, work)
    fits = _buffer_limits(hw, work, tm, tn, tk, acc, _k_slice(hw, work))
    if not fits.any():
        return None
    tm, tn, tk, acc = tm[fits], tn[fits], tk[fits], acc[fits]
    estimate = _estimate(hw, work, tm, tn, tk, acc)
    # Pre-rank by the estimate; among equal estimates prefer bigger tiles (fewer, larger transfers).
    chosen = np.lexsort((-tk, -(tm * tn), estimate))[:CANDIDATES_TIMED]
    best, best_key = None, None
    for index in chosen:
        for order in ("rows", "cols"):
            mapping = Mapping(int(tm[index]), int(tn[index]), int(tk[index]), order, int(acc[index]))
            result = _timeline(hw, work, mapping)
            # Fastest wins; ties: least DRAM traffic, then fewest steps.
            key = (result.cycles, result.dram_read_a_bytes + result.dram_read_b_bytes + result.dram_write_bytes,
                   result.steps_per_core)
            if best_key is None or key < best_key:
                best, best_key = result, key
    return best
