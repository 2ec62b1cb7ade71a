"""Memory rules: the L2 reuse rule, bandwidth shared by the active cores, DRAM latency, one step cost.

docs/model.md §2 "Memory traffic and the L2 rule" and "Bandwidth".
- Fill bytes are what the cores load (each block: its A rows × K and its B K × columns); DRAM bytes
  follow from the L2 rule (:func:`l2_rule`).
- A load of ``bytes`` by a core whose wave has ``active`` cores takes
  ⌈bytes · active · max(1 / L2_B_per_cycle, f / DRAM_B_per_cycle)⌉ cycles, f = DRAM bytes / fill bytes
  (:func:`cycles_per_loaded_byte`, :func:`step_cost`); a store ⌈bytes · active / DRAM_B_per_cycle⌉
  (:func:`store_cycles`); the first load of each core also waits the DRAM latency.
- With an L1, a step's compute takes at least its bytes / L1 bandwidth (the L1 → L0 transfers).
"""

from __future__ import annotations

import math

from numba import njit

from amber_sim.hw.config import HardwareConfig
from amber_sim.sim.blocks import block_shape, segment_classes
from amber_sim.sim.compute import CAUSAL_NONE, cdiv, tile_cycles

MIB = 1024 * 1024


@njit(cache=True)
def l2_rule(l2_bytes, reused_unique, reused_fill, streamed_unique, streamed_fill, panel_bytes,
            streamed_one_bytes, panels):  # pragma: no cover - compiled
    """(reused, streamed) DRAM bytes under L2 tiling, docs/model.md "L2".

    The *reused* operand is walked panel by panel (a block-row of A for order ``rows``); the *streamed*
    operand is read once per panel unless the L2 keeps it. Half of the L2 holds panels, half the streamed
    operand. Branches, in order:
    1. no L2: every fill comes from DRAM;
    2. a panel does not fit half the L2: every fill of the reused operand misses; the streamed one comes
       once if it fits the other half, else once per fill;
    3. panels and the whole streamed operand fit: both come once;
    4. panels fit, the streamed operand does not: it comes once per group of ⌊(L2/2) / panel⌋ panels.
    """
    if l2_bytes <= 0:
        return reused_fill, streamed_fill
    half = l2_bytes / 2
    if panel_bytes > half:
        return reused_fill, streamed_unique if streamed_one_bytes <= half else streamed_fill
    if streamed_one_bytes <= half:
        return reused_unique, streamed_unique
    group = max(1.0, math.floor(half / panel_bytes)) if panel_bytes > 0 else panels
    passes = math.ceil(panels / group)
    return reused_unique, min(streamed_fill, streamed_unique * passes)


@njit(cache=True)
def fill_bytes(p, tm, tn, lo, hi, order_rows):  # pragma: no cover - compiled
    """Exact A and B bytes loaded into the cores over all blocks (edge blocks move only real bytes).

    Every block loads its A rows × k_len and its B k_len × columns; without causality that is A once per
    block column and B once per block row."""
    M = p.M; K = p.K; N = p.N; batch = p.batch
    if p.causal == CAUSAL_NONE:
        return (M * K * p.a_bytes_per_element * cdiv(N, tn) * batch,
                K * N * p.b_bytes_per_element * cdiv(M, tm) * batch)
    a_fill = 0.0; b_fill = 0.0
    for o in range(lo.shape[0]):
        classes = segment_classes(p, tm, tn, lo, hi, order_rows, o)
        if classes[0] >= 0:
            for c in range(classes[0]):
                count, rows, cols, k_len = classes[1 + 4 * c], classes[2 + 4 * c], classes[3 + 4 * c], classes[4 + 4 * c]
                a_fill += count * rows * k_len * p.a_bytes_per_element
                b_fill += count * k_len * cols * p.b_bytes_per_element
            continue
        for inner in range(lo[o], hi[o]):
            mi = o if order_rows else inner
            ni = inner if order_rows else o
            rows, cols, k_len = block_shape(p, tm, tn, mi, ni)
            a_fill += rows * k_len * p.a_bytes_per_element; b_fill += k_len * cols * p.b_bytes_per_element
    return a_fill * batch, b_fill * batch


@njit(cache=True)
def dram_bytes(p, tm, tn, order_rows, a_fill, b_fill):  # pragma: no cover - compiled
    """(DRAM bytes of A, of B, DRAM share f of the fill bytes) under the L2 rule."""
    M = p.M; K = p.K; N = p.N
    a_bpe = p.a_bytes_per_element; b_bpe = p.b_bytes_per_element
    a_unique = M * K * a_bpe * p.batch
    b_unique = K * N * b_bpe * p.b_batch
    if order_rows:
        dram_a, dram_b = l2_rule(p.l2_bytes, a_unique, a_fill, b_unique, b_fill, tm * K * a_bpe,
                                 K * N * b_bpe, cdiv(M, tm))
    else:
        dram_b, dram_a = l2_rule(p.l2_bytes, b_unique, b_fill, a_unique, a_fill, tn * K * b_bpe,
                                 M * K * a_bpe, cdiv(N, tn))
    fill = a_fill + b_fill
    return dram_a, dram_b, (dram_a + dram_b) / fill if fill > 0 else 0.0


@njit(cache=True)
def cycles_per_loaded_byte(p, active, dram_fraction):  # pragma: no cover - compiled
    """Cycles per byte one core loads while ``active`` cores share the L2 and DRAM (they stream concurrently;
    the slower limits)."""
    return max(active / p.l2_bytes_per_cycle, dram_fraction * active / p.dram_bytes_per_cycle)


@njit(cache=True)
def step_cost(p, rows, cols, rows_p, cols_p, k, per_byte):  # pragma: no cover - compiled
    """(load cycles, compute cycles) of one step: the A and B chunk of a rows × cols block over k channels.

    ``rows_p``/``cols_p`` are the block padded to the compute shape; the compute of a step takes at least
    its bytes over the L1 → L0 bandwidth when an L1 stages the chunks."""
    step_bytes = (rows * p.a_bytes_per_element + cols * p.b_bytes_per_element) * k
    load = int(math.ceil(step_bytes * per_byte - 1e-9))
    compute = tile_cycles(p, rows_p, cols_p, k) + p.overhead_cycles_per_step
    if p.l1_bytes_per_cycle > 0:
        compute = max(compute, int(math.ceil(step_bytes / p.l1_bytes_per_cycle - 1e-9)))
    return load, compute


@njit(cache=True)
def store_cycles(p, rows, cols, active):  # pragma: no cover - compiled
    """Cycles of one block's output store while ``active`` cores share DRAM (0 when the output stays on chip)."""
    if p.out_bytes_per_element == 0:
        return 0
    return int(math.ceil(rows * cols * p.out_bytes_per_element * active / p.dram_bytes_per_cycle - 1e-9))


# ---------------------------------------------------------------- Python side

def dram_bytes_per_cycle(hw: HardwareConfig) -> float:
    """The DRAM bandwidth every rule streams at: the peak times the fraction a real kernel sustains."""
    dram = hw.memory.dram
    return dram.bandwidth_gb_s * dram.sustained_fraction / hw.clock_ghz


def latency_cycles(hw: HardwareConfig) -> int:
    """DRAM latency in cycles, paid once per op before its first data arrives."""
    return int(math.ceil(hw.memory.dram.latency_ns * hw.clock_ghz))


def kernel_overhead_cycles(hw: HardwareConfig) -> int:
    """Cycles of ``kernel_overhead_us``, the fixed time a kernel adds (launch, prologue, completion)."""
    return int(math.ceil(hw.kernel_overhead_us * 1e3 * hw.clock_ghz - 1e-9))


def streaming_cycles(hw: HardwareConfig, traffic_bytes: float) -> int:
    """Cycles to stream ``traffic_bytes`` through DRAM at full bandwidth (vector ops, sparsifier passes)."""
    return int(math.ceil(traffic_bytes / dram_bytes_per_cycle(hw)))


def set_memory_params(p, hw: HardwareConfig) -> None:
    """Fill the memory fields of a GEMM_PARAMS record."""
    memory = hw.memory
    p["cores"] = hw.cores
    p["latency_cycles"] = latency_cycles(hw)
    p["dram_bytes_per_cycle"] = dram_bytes_per_cycle(hw)
    p["l2_bytes_per_cycle"] = memory.l2.bandwidth_gb_s / hw.clock_ghz if memory.l2 is not None else math.inf
    p["l2_bytes"] = memory.l2.size_mb * MIB if memory.l2 is not None else 0.0
    p["l1_bytes_per_cycle"] = memory.l1.bandwidth_bytes_per_cycle if memory.l1 is not None else 0.0
