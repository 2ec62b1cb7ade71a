"""The per-core tile pipeline, in integer cycles (Numba).

One core runs a sequence of steps; each step loads an A chunk and a B chunk into one of two staging
buffers (double buffering) and then computes on them. After the last step of an output block the
block's accumulators are stored; with two accumulator buffers the store overlaps the next block's
compute, with one it does not (the mapping search tries both). Loads and stores share the core's one memory queue and are served in the order they
are requested: the load of step s+1 is requested when its buffer frees (compute of s-1 ends), before
the store of step s's block (requested when compute of s ends). The first load pays the memory
latency (the prologue); the last store is the epilogue.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def pipeline_cycles(step_load, step_compute, step_block, block_store, latency_cycles, accumulator_buffers):  # pragma: no cover - compiled
    """Return (total, load_busy, compute_busy, store_busy) cycles of one core's step sequence.

    ``step_block[s]`` is the output block (0..B-1, non-decreasing) that step s belongs to;
    ``block_store[b]`` the cycles to store block b. With one accumulator buffer a block's compute
    waits until the previous block has been stored; with two the store overlaps.
    """
    n_steps = step_load.shape[0]
    if n_steps == 0:
        return 0, 0, 0, 0
    stage_free = np.zeros(2, dtype=np.int64)
    accumulator_free = np.zeros(2, dtype=np.int64)
    load_end = latency_cycles + step_load[0]
    port_free = load_end
    compute_end = 0
    end = 0
    for s in range(n_steps):
        block = step_block[s]
        start = max(load_end, compute_end)
        if s == 0 or step_block[s - 1] != block:
            start = max(start, accumulator_free[block % accumulator_buffers])
        compute_end = start + step_compute[s]
        stage_free[s % 2] = compute_end
        if s + 1 < n_steps:
            load_start = max(port_free, stage_free[(s + 1) % 2])
            load_end = load_start + step_load[s + 1]
            port_free = load_end
        if s == n_steps - 1 or step_block[s + 1] != block:
            store_end = max(compute_end, port_free) + block_store[block]
            port_free = store_end
            accumulator_free[block % accumulator_buffers] = store_end
            end = max(end, store_end)
    return max(end, compute_end), step_load.sum(), step_compute.sum(), block_store.sum()
