"""Mapping a GEMM onto the chip: candidate tiles, buffer fits, blocks and cores, bounds, the exact search.

The GEMM is C[M, N] = A[M, K] · B[K, N], repeated ``batch`` times (attention heads). A is the activation
(the sparse operand), B the weight (or Kᵀ / V for attention), C the output. A core computes one output
block (tm × tn) at a time, streaming K in chunks of tk; blocks are dealt to cores round-robin in waves
(docs/model.md §2 "Mapping", "Blocks, waves, cores", "Search").

:func:`simulate_gemm` returns the fastest mapping over every candidate that fits, timed exactly by the
pipeline (pipeline.py); a candidate is skipped only when a valid lower bound proves it slower than the
best found, so more bandwidth or a bigger buffer can never make the result slower.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from amber_sim.errors import InputError
from amber_sim.hw.config import HardwareConfig, SparsityConfig, VectorConfig
from amber_sim.sim.blocks import (add_to_residues, block_at, block_k, block_layout, block_shape, segment_classes,
                                  work_per_core)
from amber_sim.sim.compute import (CAUSAL_NONE, CAUSAL_OUTPUT, CAUSAL_REDUCTION, GEMM_PARAMS, cdiv, compute_unit,
                                   k_slice, padded, padding_units, set_compute_params, sparse_k, tile_cycles)
from amber_sim.sim.memory import cycles_per_loaded_byte, dram_bytes, fill_bytes, latency_cycles, set_memory_params
from amber_sim.sim.pipeline import T_COMPUTE, T_END, T_LOAD, T_STEPS, T_STORE, core_timeline

ACCUMULATOR_BYTES = 4  # fp32 / int32 partial sums in L0C
KIB = 1024
MAX_K_STEPS = 256  # candidate K chunks are at least K / 256 channels (docs/model.md: why not K / 64)
SEARCH_SEEDS = 4  # candidates timed first, in the caller's estimated order, to find a good incumbent
_VIEW_VECTOR = VectorConfig(elements_per_cycle=1)   # placeholders in gemm_view: GEMM timing never reads them
_VIEW_SPARSITY = SparsityConfig(operand="none")
_CAUSAL_CODES = {"none": CAUSAL_NONE, "output": CAUSAL_OUTPUT, "reduction": CAUSAL_REDUCTION}

# Fields of the search result vector.
R_CYCLES, R_LOAD, R_COMPUTE, R_STORE, R_STEPS, R_BLOCKS, R_WAVES, R_TAIL = 0, 1, 2, 3, 4, 5, 6, 7
R_DRAM_A, R_DRAM_B, R_DRAM_OUT, R_FILL, R_ISSUED = 8, 9, 10, 11, 12
N_RESULTS = 13


@dataclass(frozen=True)
class GemmWork:
    """Hardware-facing description of one GEMM (what the op needs, after the sparsity rule)."""

    M: int
    K: int
    N: int
    batch: int
    b_batch: int                   # distinct B operands (GQA: kv heads)
    causal: str                    # "none" | "output" (skip blocks above the diagonal) | "reduction" (K limited by row)
    a_bytes_per_element: float     # stored bytes per dense A element, values + metadata
    b_bytes: float
    out_bytes: float
    k_compute_ratio: float         # fraction of K the matrix unit computes (Nh/Mh when native sparse)
    k_unit: int                    # tk granularity in dense channels
    int8: bool
    a_on_chip: bool                # A never comes from memory (attention probabilities, fused)
    out_on_chip: bool              # C never goes to memory (attention scores, fused)
    overhead_cycles_per_step: int  # sparse datapath overhead per compute tile
    rate_fraction: float = 1.0     # share of the matrix unit's nominal rate a native sparse step sustains


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
    fill_bytes: float      # bytes loaded into the per-core buffers (from L2, or from DRAM without one)
    l2_read_bytes: float   # fill bytes served by the L2 (0 without an L2)
    issued_macs: float     # MACs the matrix units execute, padding included (after the sparse K shrink)


# ---------------------------------------------------------------- blocks and one mapping (compiled)

@njit(cache=True)
def _block_compute(p, rows_p, cols_p, k_len, tk):  # pragma: no cover - compiled
    """Matrix-unit cycles of one block: its full K chunks and the remainder."""
    full = k_len // tk; rest = k_len - full * tk
    work = full * (tile_cycles(p, rows_p, cols_p, tk) + p.overhead_cycles_per_step)
    if rest > 0:
        work += tile_cycles(p, rows_p, cols_p, rest) + p.overhead_cycles_per_step
    return work


@njit(cache=True)
def _block_work(p, tm, tn, tk, unit_m, unit_n, rows, cols, k_len):  # pragma: no cover - compiled
    """(matrix-unit cycles, issued MACs) of one block: compute is padded to the compute shape."""
    rows_p = min(tm, padded(rows, unit_m)); cols_p = min(tn, padded(cols, unit_n))
    return _block_compute(p, rows_p, cols_p, k_len, tk), rows_p * cols_p * sparse_k(p, k_len)


@njit(cache=True)
def _segment_sums(p, tm, tn, tk, lo, hi, order_rows, o, first, per_byte, residue_work,
                  residue_port):  # pragma: no cover - compiled
    """Add the blocks of outer index ``o`` (global block indices from ``first``) to the residue sums; return
    (output bytes, issued MACs, the most memory-queue cycles of one block)."""
    unit_m, unit_n = padding_units(p)
    cores = p.cores
    per_stored_byte = cores / p.dram_bytes_per_cycle
    out_total = 0.0; issued = 0.0; largest_port = 0.0
    classes = segment_classes(p, tm, tn, lo, hi, order_rows, o)
    walk = classes[0] < 0  # shapes vary block by block
    for c in range(hi[o] - lo[o] if walk else classes[0]):
        if walk:
            inner = lo[o] + c
            rows, cols, k_len = block_shape(p, tm, tn, o if order_rows else inner, inner if order_rows else o)
            count = 1
        else:
            count, rows, cols, k_len = classes[1 + 4 * c], classes[2 + 4 * c], classes[3 + 4 * c], classes[4 + 4 * c]
        work, block_issued = _block_work(p, tm, tn, tk, unit_m, unit_n, rows, cols, k_len)
        port = ((rows * p.a_bytes_per_element + cols * p.b_bytes_per_element) * k_len * per_byte
                + rows * cols * p.out_bytes_per_element * per_stored_byte)
        largest_port = max(largest_port, port)
        out_total += count * rows * cols * p.out_bytes_per_element
        issued += count * block_issued
        add_to_residues(residue_work, first, count, work, cores)
        add_to_residues(residue_port, first, count, port, cores)
        first += count
    return out_total, issued, largest_port


@njit(cache=True)
def block_accounting(p, tm, tn, tk, lo, hi, start, order_rows, dram_fraction):  # pragma: no cover - compiled
    """Per-block sums of a mapping, each class of equal blocks at once (core c holds blocks g ≡ c mod cores):
    (matrix-unit cycles per core, memory-queue cycles per core at full contention, the most such cycles of
    one block, output bytes, issued MACs). The memory-queue cycles are the block's loads and store as the
    pipeline charges them when every core is active, before rounding up.

    Without causality every outer index but the last holds the same blocks, so one of them is summed and
    repeated: outer index o starts at block o·L, which only shifts its residues by o·L mod cores."""
    cores = p.cores
    per_byte = cycles_per_loaded_byte(p, cores, dram_fraction)
    residue_work = np.zeros(cores, dtype=np.int64)  # one batch element's block work by block index mod cores
    residue_port = np.zeros(cores)
    n_outer = lo.shape[0]
    out_total = 0.0; issued = 0.0; largest_port = 0.0
    first_walked = 0
    if p.causal == CAUSAL_NONE and n_outer > 2:
        repeated = n_outer - 1
        one_work = np.zeros(cores, dtype=np.int64)
        one_port = np.zeros(cores)
        out_one, issued_one, largest_port = _segment_sums(p, tm, tn, tk, lo, hi, order_rows, 0, 0, per_byte,
                                                          one_work, one_port)
        out_total = out_one * repeated
        issued = issued_one * repeated
        length = start[1]
        shifts = np.zeros(cores, dtype=np.int64)  # how many repeated outer indices start at each residue
        period = cores // math.gcd(length % cores, cores) if length % cores else 1
        for o in range(min(repeated, period)):
            shifts[(o * length) % cores] += (repeated - 1 - o) // period + 1
        for shift in range(cores):
            if shifts[shift]:
                for r in range(cores):
                    residue_work[(r + shift) % cores] += shifts[shift] * one_work[r]
                    residue_port[(r + shift) % cores] += shifts[shift] * one_port[r]
        first_walked = repeated
    for o in range(first_walked, n_outer):
        out_o, issued_o, largest_o = _segment_sums(p, tm, tn, tk, lo, hi, order_rows, o, start[o], per_byte,
                                                   residue_work, residue_port)
        out_total += out_o
        issued += issued_o
        largest_port = max(largest_port, largest_o)
    core_work = work_per_core(residue_work, start[-1], p.batch, cores)
    core_port = work_per_core(residue_port, start[-1], p.batch, cores)
    return core_work, core_port, largest_port, out_total * p.batch, issued * p.batch


@njit(cache=True)
def _core_bound(p, core_work, core_port, largest_port, core):  # pragma: no cover - compiled
    """A lower bound on one core's timeline (0 for a core without blocks): the DRAM latency, then the larger of
    its tile work and its memory-queue time (all its blocks but one at full contention: only the last wave
    can have fewer active cores, and a core has at most one block in it)."""
    if core_work[core] == 0:
        return 0
    port = (core_port[core] - largest_port) * (1 - 1e-9)
    return p.latency_cycles + max(core_work[core], int(math.floor(max(port, 0.0))))


@njit(cache=True)
def _last_wave_port(p, tm, tn, lo, start, order_rows, per_batch, total_blocks, dram_fraction,
                    core_port):  # pragma: no cover - compiled
    """Per-core memory-queue time before rounding, exact: ``core_port`` (every block at full contention) with
    the blocks of a partial last wave recharged at the bandwidth share they really get."""
    cores = p.cores
    active = total_blocks % cores
    exact = core_port.copy()
    if active == 0:
        return exact
    full = cycles_per_loaded_byte(p, cores, dram_fraction)
    share = cycles_per_loaded_byte(p, active, dram_fraction)
    for g in range(total_blocks - active, total_blocks):
        mi, ni = block_at(lo, start, order_rows, g % per_batch)
        rows, cols, k_len = block_shape(p, tm, tn, mi, ni)
        load_bytes = (rows * p.a_bytes_per_element + cols * p.b_bytes_per_element) * k_len
        store_bytes = rows * cols * p.out_bytes_per_element
        exact[g % cores] -= (load_bytes * (full - share)
                             + store_bytes * (cores - active) / p.dram_bytes_per_cycle)
    return exact


@njit(cache=True)
def critical_cores(p, core_work, core_port, total_blocks):  # pragma: no cover - compiled
    """The cores whose timelines are simulated, without repeats (-1 marks a repeat): core 0, the core with the
    most tile work, the core holding the last block and the core with the most memory-queue time.

    When every block has the same shape this is exact: every core then runs one of two timelines (with or
    without a block in the last, partial wave) and core 0 runs the longer. Otherwise other cores could end
    later; the four cover the compute-bound and memory-bound cases (docs/model.md §2)."""
    cores = p.cores
    heaviest = 0; busiest = 0
    for c in range(cores):
        if core_work[c] > core_work[heaviest]:
            heaviest = c
        if core_port[c] > core_port[busiest]:
            busiest = c
    chosen = np.array([0, heaviest, (total_blocks - 1) % cores, busiest], dtype=np.int64)
    for i in range(1, 4):
        for j in range(i):
            if chosen[i] == chosen[j]:
                chosen[i] = -1
    return chosen


@njit(cache=True)
def _proven_cycles(p, core_work, core_port, largest_port, cores):  # pragma: no cover - compiled
    """A lower bound on the op's cycles: the largest lower bound of its critical cores (the op lasts as long
    as the longest of them)."""
    bound = 0
    for i in range(cores.shape[0]):
        if cores[i] >= 0:
            bound = max(bound, _core_bound(p, core_work, core_port, largest_port, cores[i]))
    return bound


@njit(cache=True)
def time_mapping(p, tm, tn, tk, acc, order_rows, out, prune_above):  # pragma: no cover - compiled
    """Fill ``out`` with the mapping's result; return False (out untouched) when a valid lower bound on its
    cycles (``_proven_cycles``) already exceeds ``prune_above``.

    The op's cycles are the longest timeline among the critical cores (``critical_cores``), its busy
    counters those of that core."""
    batch = p.batch
    lo, hi, start = block_layout(p, tm, tn, order_rows)
    per_batch = start[-1]
    total_blocks = per_batch * batch
    a_fill, b_fill = fill_bytes(p, tm, tn, lo, hi, order_rows)
    dram_a, dram_b, dram_fraction = dram_bytes(p, tm, tn, order_rows, a_fill, b_fill)
    core_work, core_port, largest_port, out_total, issued = block_accounting(p, tm, tn, tk, lo, hi, start, order_rows,
                                                                             dram_fraction)
    cores = critical_cores(p, core_work, _last_wave_port(p, tm, tn, lo, start, order_rows, per_batch, total_blocks,
                                                         dram_fraction, core_port), total_blocks)
    if _proven_cycles(p, core_work, core_port, largest_port, cores) > prune_above:
        return False
    best = np.full(5, -1, dtype=np.int64)
    for i in range(4):
        if cores[i] < 0:
            continue
        timeline = core_timeline(p, tm, tn, tk, acc, cores[i], lo, start, order_rows, per_batch, total_blocks,
                                 dram_fraction)
        if timeline[T_END] > best[T_END]:
            best[:] = timeline
    out[R_CYCLES] = best[T_END]; out[R_LOAD] = best[T_LOAD]; out[R_COMPUTE] = best[T_COMPUTE]
    out[R_STORE] = best[T_STORE]; out[R_STEPS] = best[T_STEPS]; out[R_BLOCKS] = total_blocks
    out[R_WAVES] = cdiv(total_blocks, p.cores); out[R_TAIL] = total_blocks % p.cores
    out[R_DRAM_A] = dram_a; out[R_DRAM_B] = dram_b; out[R_DRAM_OUT] = out_total
    out[R_FILL] = a_fill + b_fill; out[R_ISSUED] = issued
    return True


# ---------------------------------------------------------------- bounds and search (compiled)

@njit(cache=True)
def quick_bound(p, tm, tn, tk):  # pragma: no cover - compiled
    """Cheap lower bound on the cycles of every mapping with these tiles, used to order candidates and to
    stop the search early.

    The larger of: core 0's ceil(blocks/cores) blocks each costed as the smallest block (compute, and
    loads at the L2 rate with no DRAM share); for causal ops, the average compute per core, which the
    heaviest core (always simulated) reaches. (``time_mapping`` also drops a candidate by
    :func:`_proven_cycles`, the critical cores' own bounds, before timing it.)
    """
    M = p.M; N = p.N; batch = p.batch; cores = p.cores; causal = p.causal
    unit_m, unit_n = padding_units(p)
    mb = cdiv(M, tm); nb = cdiv(N, tn)
    per_batch = mb * nb
    average = 0
    if causal != CAUSAL_NONE:
        per_batch = 0
        work = 0
        for mi in range(mb):
            blocks = min(nb, ((mi + 1) * tm - 1) // tn + 1) if causal == CAUSAL_OUTPUT else nb
            per_batch += blocks
            rows_p = min(tm, padded(min(tm, M - mi * tm), unit_m))
            k_row = block_k(p, tm, mi)
            edge = 1 if blocks == nb else 0  # the last column block may be narrower
            for narrow in range(2):
                cols_p = min(tn, padded(N - (nb - 1) * tn, unit_n)) if narrow == 1 else tn
                count = edge if narrow == 1 else blocks - edge
                work += count * _block_compute(p, rows_p, cols_p, k_row, tk)
        average = (work * batch) // cores
    total = per_batch * batch
    q = cdiv(total, cores)
    rows = min(tm, M - (mb - 1) * tm); cols = min(tn, N - (nb - 1) * tn)
    k_len = block_k(p, tm, 0)  # the smallest block: row 0
    rows_p = min(tm, padded(rows, unit_m)); cols_p = min(tn, padded(cols, unit_n))
    compute = _block_compute(p, rows_p, cols_p, k_len, tk)
    block_bytes = (rows * p.a_bytes_per_element + cols * p.b_bytes_per_element) * k_len
    bandwidth = p.l2_bytes_per_cycle if p.l2_bytes > 0 else p.dram_bytes_per_cycle
    memory = block_bytes * (total - q + 1) / bandwidth  # core 0: q-1 blocks at full contention, one at the tail
    return max(q * compute, average, math.floor(memory * (1 - 1e-9)))


@njit(cache=True)
def _better(out, best_out, i, best):  # pragma: no cover - compiled
    """The order that decides the optimum: fewer cycles, then less DRAM traffic, then fewer steps, then the
    earlier candidate. It is total, so the result does not depend on the order the search visits them."""
    if best < 0:
        return True
    if out[R_CYCLES] != best_out[R_CYCLES]:
        return out[R_CYCLES] < best_out[R_CYCLES]
    traffic = out[R_DRAM_A] + out[R_DRAM_B] + out[R_DRAM_OUT]
    best_traffic = best_out[R_DRAM_A] + best_out[R_DRAM_B] + best_out[R_DRAM_OUT]
    if traffic != best_traffic:
        return traffic < best_traffic
    if out[R_STEPS] != best_out[R_STEPS]:
        return out[R_STEPS] < best_out[R_STEPS]
    return i < best


@njit(cache=True)
def search(p, tm, tn, tk, acc, order_rows):  # pragma: no cover - compiled
    """Branch and bound over the candidates; the result is the exact optimum.

    The first few candidates (the caller orders them by a steady-state estimate) are timed first to find a
    good incumbent; the rest are tried in order of ``quick_bound``, stopping when that bound exceeds the
    best time found; a candidate whose heaviest core cannot finish in time is dropped inside
    ``time_mapping``. Only candidates proven slower are skipped, and ties follow :func:`_better`, so the
    result is the optimum over the whole candidate set. Returns (index of the best, its result vector).
    """
    n = tm.shape[0]
    bounds = np.empty(n)
    for i in range(n):
        bounds[i] = quick_bound(p, tm[i], tn[i], tk[i])
    order = np.argsort(bounds, kind="mergesort")
    best = -1
    best_out = np.zeros(N_RESULTS)
    out = np.zeros(N_RESULTS)
    seeds = min(n, SEARCH_SEEDS)
    for i in range(seeds):
        if time_mapping(p, tm[i], tn[i], tk[i], acc[i], order_rows[i], out, 9.0e18) and _better(out, best_out, i, best):
            best = i
            best_out[:] = out
    for position in range(n):
        i = order[position]
        if i < seeds:
            continue
        if bounds[i] > best_out[R_CYCLES]:
            break
        if not time_mapping(p, tm[i], tn[i], tk[i], acc[i], order_rows[i], out, best_out[R_CYCLES]):
            continue
        if _better(out, best_out, i, best):
            best = i
            best_out[:] = out
    return best, best_out


# ---------------------------------------------------------------- candidates and fits (Python)

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


def gemm_params(hw: HardwareConfig, work: GemmWork):
    """The GEMM_PARAMS record the compiled kernels read."""
    p = np.zeros(1, dtype=GEMM_PARAMS)[0]
    p["M"], p["K"], p["N"], p["batch"], p["b_batch"] = work.M, work.K, work.N, work.batch, work.b_batch
    p["causal"] = _CAUSAL_CODES[work.causal]
    p["a_bytes_per_element"] = 0.0 if work.a_on_chip else work.a_bytes_per_element
    p["b_bytes_per_element"] = work.b_bytes
    p["out_bytes_per_element"] = 0.0 if work.out_on_chip else work.out_bytes
    p["k_compute_ratio"] = work.k_compute_ratio
    p["overhead_cycles_per_step"] = work.overhead_cycles_per_step
    set_compute_params(p, hw, work.int8)
    p["sustained_fraction"] *= work.rate_fraction
    set_memory_params(p, hw)
    return p


def candidates(hw: HardwareConfig, work: GemmWork) -> tuple[np.ndarray, ...]:
    """Every (tm, tn, tk, accumulator buffers, order): power-of-two multiples of the compute shape."""
    unit_m, unit_n, unit_k = compute_unit(hw, work.k_unit)
    tms = _pow2_multiples(unit_m, _round_up(work.M, unit_m))
    tns = _pow2_multiples(unit_n, _round_up(work.N, unit_n))
    # K chunks of at least K/MAX_K_STEPS bound the search's cost; the limit must stay low enough that the
    # largest tiles' chunks still fit the staging buffers at long K. The set depends on K alone, not on buffers.
    tks = [tk for tk in _pow2_multiples(unit_k, _round_up(work.K, unit_k)) if tk * MAX_K_STEPS >= work.K] or [unit_k]
    return tuple(arr.ravel() for arr in np.meshgrid(tms, tns, tks, (2, 1), (True, False), indexing="ij"))


def _buffer_needs(hw: HardwareConfig, work: GemmWork, tm, tn, tk, acc) -> list[tuple[str, object, float]]:
    """(buffer field, bytes needed, KiB available) of a mapping: accumulators ``acc`` times in L0C; operand
    chunks double-buffered in L1 (and one compute step's slice in L0A/L0B), or in L0A/L0B without an L1."""
    memory = hw.memory
    a_bpe = 0.0 if work.a_on_chip else work.a_bytes_per_element
    a_chunk, b_chunk = tm * tk * a_bpe, tk * tn * work.b_bytes
    needs = [("memory.l0c.size_kb", acc * tm * tn * ACCUMULATOR_BYTES, memory.l0c.size_kb)]
    if memory.l1 is not None:
        depth = k_slice(hw, work.int8, work.k_compute_ratio)
        return needs + [("memory.l1.size_kb", 2 * (a_chunk + b_chunk), memory.l1.size_kb),
                        ("memory.l0a.size_kb", 2 * tm * depth * work.a_bytes_per_element, memory.l0a.size_kb),
                        ("memory.l0b.size_kb", 2 * depth * tn * work.b_bytes, memory.l0b.size_kb)]
    return needs + [("memory.l0a.size_kb", 2 * a_chunk, memory.l0a.size_kb),
                    ("memory.l0b.size_kb", 2 * b_chunk, memory.l0b.size_kb)]


def fits(hw: HardwareConfig, work: GemmWork, tm, tn, tk, acc):
    """Which candidates fit every buffer (works on arrays of candidates)."""
    result = True
    for _, need_bytes, have_kb in _buffer_needs(hw, work, tm, tn, tk, acc):
        result = result & (need_bytes <= have_kb * KIB)
    return result


class NoMappingFits(InputError):
    """No candidate tile fits the buffers; the message names the buffer and the op (see :meth:`for_op`)."""

    def __init__(self, where: str, field: str | None, template: str, op_name: str) -> None:
        self.template = template
        super().__init__(where, field, template.format(op=repr(op_name)))

    def for_op(self, op_name: str) -> "NoMappingFits":
        return NoMappingFits(self.where, self.field, self.template, op_name)


def minimal_tile_error(hw: HardwareConfig, work: GemmWork, op_name: str) -> NoMappingFits:
    """Name the buffer that cannot hold the smallest tile, with the size it would need."""
    tm, tn, tk = compute_unit(hw, work.k_unit)
    for field, need_bytes, have_kb in _buffer_needs(hw, dataclasses.replace(work, a_on_chip=False), tm, tn, tk, 1):
        if need_bytes > have_kb * KIB:
            return NoMappingFits(hw.source_path or hw.name, field,
                                 f"{have_kb:g} KiB cannot hold even one minimal {tm}x{tn}x{tk} tile of op {{op}} "
                                 f"(double-buffered operands); needs at least {math.ceil(need_bytes / KIB)} KiB", op_name)
    return NoMappingFits(hw.source_path or hw.name, None, "no mapping fits op {op}", op_name)


def _try_order(hw: HardwareConfig, work: GemmWork, tm, tn, tk) -> np.ndarray:
    """Cheap steady-state estimate used only to try likely-fast mappings first (pruning works better)."""
    unit_m, unit_n, _ = compute_unit(hw, work.k_unit)
    blocks = np.ceil(work.M / tm) * np.ceil(work.N / tn) * work.batch
    per_core = np.ceil(blocks / hw.cores)
    k_steps = np.ceil(work.K / tk)
    compute = k_steps * np.ceil(tm / unit_m) * np.ceil(tn / unit_n)
    fill = work.K * (tm * work.a_bytes_per_element + tn * work.b_bytes)
    return per_core * np.maximum(compute * tk, fill)


# ---------------------------------------------------------------- entry point

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
        raise minimal_tile_error(hw, work, op_name)
    return result


@lru_cache(maxsize=65536)
def _simulate_gemm_cached(hw: HardwareConfig, work: GemmWork) -> GemmResult | None:
    tm, tn, tk, acc, rows = candidates(hw, work)
    fitting = fits(hw, work, tm, tn, tk, acc)
    if not np.any(fitting):
        return None
    tm, tn, tk, acc, rows = tm[fitting], tn[fitting], tk[fitting], acc[fitting], rows[fitting]
    order = np.lexsort((-tk, -(tm * tn), _try_order(hw, work, tm, tn, tk)))
    tm, tn, tk, acc, rows = tm[order], tn[order], tk[order], acc[order], rows[order]
    best, out = search(gemm_params(hw, work), tm.astype(np.int64), tn.astype(np.int64), tk.astype(np.int64),
                       acc.astype(np.int64), rows)
    mapping = Mapping(int(tm[best]), int(tn[best]), int(tk[best]), "rows" if rows[best] else "cols", int(acc[best]))
    fill = float(out[R_FILL])
    return GemmResult(
        mapping=mapping, cycles=int(out[R_CYCLES]), load_cycles=int(out[R_LOAD]),
        compute_cycles=int(out[R_COMPUTE]), store_cycles=int(out[R_STORE]),
        latency_cycles=latency_cycles(hw), blocks=int(out[R_BLOCKS]),
        waves=int(out[R_WAVES]), tail_blocks=int(out[R_TAIL]), steps_per_core=int(out[R_STEPS]),
        dram_read_a_bytes=float(out[R_DRAM_A]), dram_read_b_bytes=float(out[R_DRAM_B]),
        dram_write_bytes=float(out[R_DRAM_OUT]), fill_bytes=fill,
        l2_read_bytes=fill if hw.memory.l2 is not None else 0.0,
        issued_macs=float(out[R_ISSUED]),
    )


def clear_caches() -> None:
    """Forget every GEMM result (benchmarks measure cold simulation with this)."""
    _simulate_gemm_cached.cache_clear()
