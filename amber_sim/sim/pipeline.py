"""The double-buffered pipeline of one core, in integer cycles (docs/model.md §2 "The pipeline of one core").

Each step (one K chunk of one block) loads its A and B chunk into one of two staging buffers, then
computes on it:
- the load of step s starts when the core's memory queue is free and its buffer was released (the
  compute of step s−2 ended); the core's first load also waits the DRAM latency;
- the compute of step s starts when its load ended and the compute of step s−1 ended; the first step of
  a block also waits for a free accumulator buffer;
- after a block's last step its store is queued behind the loads already issued and frees the
  accumulator buffer when done.
Loads and stores share one memory queue per core, served in request order.

Runs of identical steps are periodic: once the state after a step equals the state two steps earlier
plus a constant, the timeline jumps ahead by whole periods, which is exact.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from amber_sim.sim.blocks import active_cores, block_at, block_shape, identical_run
from amber_sim.sim.compute import cdiv, padded, padding_units
from amber_sim.sim.memory import cycles_per_loaded_byte, step_cost, store_cycles

# Fields of the timeline result (a small int64 array).
T_END, T_LOAD, T_COMPUTE, T_STORE, T_STEPS = 0, 1, 2, 3, 4


@njit(cache=True)
def core_timeline(p, tm, tn, tk, acc, core, lo, start, order_rows, per_batch, total_blocks,
                  dram_fraction):  # pragma: no cover - compiled
    """Timeline of ``core``: it runs blocks core, core + cores, ... of the op (block g is block g mod
    per_batch of batch element g // per_batch). Returns [end, load busy, compute busy, store busy, steps].

    Two periodic regimes are jumped exactly. Within a block, identical full steps: once the state after a
    step equals the state two steps earlier plus a constant, whole pairs of steps are skipped. Across
    blocks, a run of identical blocks (same shape, same active cores): the timeline is a max-plus system
    that commutes with adding a constant to every time, so once the state after a block equals the state
    two blocks earlier (the buffer and accumulator parities repeat every two blocks) plus a constant, every
    further pair of identical blocks adds that constant again."""
    cores = p.cores
    unit_m, unit_n = padding_units(p)
    stage_free0 = 0; stage_free1 = 0; acc_free0 = 0; acc_free1 = 0
    port_free = 0; compute_end = 0; end = 0
    load_busy = 0; compute_busy = 0; store_busy = 0
    step = 0
    # state after the previous two blocks (7 times, 4 counters), for the block-level periodicity check
    prev1 = np.full(11, -1, dtype=np.int64); prev2 = np.full(11, -1, dtype=np.int64)
    run_left = 0       # blocks still to come in the current run of identical blocks (after this one)
    run_position = 0   # blocks of the current run done so far
    g = core
    while g < total_blocks:
        j = g % per_batch
        wave = g // cores
        active = active_cores(total_blocks, cores, g)
        per_byte = cycles_per_loaded_byte(p, active, dram_fraction)
        mi, ni = block_at(lo, start, order_rows, j)
        rows, cols, k_len = block_shape(p, tm, tn, mi, ni)
        if run_left == 0:
            run_left = identical_run(p, tm, tn, lo, start, order_rows, per_batch, total_blocks, g)
            run_position = 0
        else:
            run_left -= 1
        run_position += 1
        rows_p = min(tm, padded(rows, unit_m)); cols_p = min(tn, padded(cols, unit_n))
        n_steps = cdiv(k_len, tk)
        full_steps = k_len // tk
        # state two steps back (port, compute end, stage buffers), for the step-level periodicity check
        h_port = -1; h_comp = -1; h_s0 = -1; h_s1 = -1
        g_port = -1; g_comp = -1; g_s0 = -1; g_s1 = -1
        s = 0
        while s < n_steps:
            k = min(tk, k_len - s * tk)
            load, compute = step_cost(p, rows, cols, rows_p, cols_p, k, per_byte)
            buffer_free = stage_free0 if step % 2 == 0 else stage_free1
            load_start = max(port_free, buffer_free)
            load_end = load_start + load + (p.latency_cycles if step == 0 else 0)
            port_free = load_end
            start_cycle = max(load_end, compute_end)
            if s == 0:
                start_cycle = max(start_cycle, acc_free0 if wave % acc == 0 else acc_free1)
            compute_end = start_cycle + compute
            if step % 2 == 0:
                stage_free0 = compute_end
            else:
                stage_free1 = compute_end
            load_busy += load; compute_busy += compute
            step += 1
            s += 1
            if s >= 3 and s < full_steps:
                delta = port_free - h_port
                if (delta > 0 and compute_end - h_comp == delta and stage_free0 - h_s0 == delta
                        and stage_free1 - h_s1 == delta):
                    pairs = (full_steps - s) // 2
                    if pairs > 0:
                        port_free += pairs * delta; compute_end += pairs * delta
                        stage_free0 += pairs * delta; stage_free1 += pairs * delta
                        load_busy += 2 * pairs * load; compute_busy += 2 * pairs * compute
                        step += 2 * pairs; s += 2 * pairs
                        g_port = -1
            h_port = g_port; h_comp = g_comp; h_s0 = g_s0; h_s1 = g_s1
            g_port = port_free; g_comp = compute_end; g_s0 = stage_free0; g_s1 = stage_free1
        store = store_cycles(p, rows, cols, active)
        store_end = max(compute_end, port_free) + store
        port_free = store_end
        store_busy += store
        if wave % acc == 0:
            acc_free0 = store_end
        else:
            acc_free1 = store_end
        end = max(end, store_end)
        g += cores
        # block-level jump: the last two blocks belong to the run, and the state moved by one constant
        if run_position >= 2 and run_left >= 2 and prev2[0] >= 0:
            delta = port_free - prev2[0]
            if (delta > 0 and compute_end - prev2[1] == delta and stage_free0 - prev2[2] == delta
                    and stage_free1 - prev2[3] == delta and acc_free0 - prev2[4] == delta
                    and (acc == 1 or acc_free1 - prev2[5] == delta) and end - prev2[6] == delta):
                pairs = run_left // 2
                port_free += pairs * delta; compute_end += pairs * delta
                stage_free0 += pairs * delta; stage_free1 += pairs * delta
                acc_free0 += pairs * delta; end += pairs * delta
                if acc == 2:  # with one accumulator buffer acc_free1 is never used
                    acc_free1 += pairs * delta
                load_busy += pairs * (load_busy - prev2[7]); compute_busy += pairs * (compute_busy - prev2[8])
                store_busy += pairs * (store_busy - prev2[9]); step += pairs * (step - prev2[10])
                g += 2 * pairs * cores
                run_left -= 2 * pairs
                run_position += 2 * pairs
                prev1[0] = -1; prev2[0] = -1
                continue
        prev2[:] = prev1
        prev1[0] = port_free; prev1[1] = compute_end; prev1[2] = stage_free0; prev1[3] = stage_free1
        prev1[4] = acc_free0; prev1[5] = acc_free1; prev1[6] = end
        prev1[7] = load_busy; prev1[8] = compute_busy; prev1[9] = store_busy; prev1[10] = step
    out = np.empty(5, dtype=np.int64)
    out[T_END] = max(end, compute_end); out[T_LOAD] = load_busy; out[T_COMPUTE] = compute_busy
    out[T_STORE] = store_busy; out[T_STEPS] = step
    return out
