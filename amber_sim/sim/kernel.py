"""Numba kernels of the GEMM model: time one mapping exactly, and search all mappings.

``time_mapping`` enumerates the output blocks of a mapping, counts their exact traffic (edge blocks
move only real bytes; compute is padded to the compute shape), applies the L2 rule, picks the
critical cores and runs their double-buffered load / compute / store pipeline in integer cycles.
``search`` times every candidate mapping, skipping one only when a valid lower bound (its average
per-core compute) already exceeds the best time found, so the result is the exact optimum over the
candidate set: more bandwidth or a bigger buffer can never make it slower.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Fields of the float64 parameter vector (see gemm.py: _params).
P_M, P_K, P_N, P_BATCH, P_B_BATCH, P_CAUSAL = 0, 1, 2, 3, 4, 5
P_A_BPE, P_B_BYTES, P_OUT_BYTES, P_K_RATIO, P_OVERHEAD = 6, 7, 8, 9, 10
P_KIND, P_U0, P_U1, P_U2, P_DATAFLOW = 11, 12, 13, 14, 15
P_L1_BPC, P_CORES, P_LATENCY, P_DRAM_BPC, P_L2_BPC, P_L2_BYTES = 16, 17, 18, 19, 20, 21
N_PARAMS = 22

# Fields of the result vector.
R_CYCLES, R_LOAD, R_COMPUTE, R_STORE, R_STEPS, R_BLOCKS, R_WAVES, R_TAIL = 0, 1, 2, 3, 4, 5, 6, 7
R_DRAM_A, R_DRAM_B, R_DRAM_OUT, R_FILL, R_ISSUED = 8, 9, 10, 11, 12
N_RESULTS = 13

CAUSAL_NONE, CAUSAL_SCORE, CAUSAL_VALUE = 0, 1, 2
KIND_CUBE, KIND_SYSTOLIC = 0, 1
DATAFLOW_OS, DATAFLOW_WS, DATAFLOW_IS = 0, 1, 2


@njit(cache=True, inline="always")
def _cdiv(a, b):
    return -(-a // b)


@njit(cache=True)
def tile_cycles(p, rows, cols, k_dense):  # pragma: no cover - compiled
    """Matrix-unit cycles of one tile (rows × cols outputs over k_dense input channels)."""
    k_eff = math.ceil(k_dense * p[P_K_RATIO] - 1e-9)
    if p[P_KIND] == KIND_CUBE:
        return _cdiv(rows, int(p[P_U0])) * _cdiv(cols, int(p[P_U1])) * _cdiv(k_eff, int(p[P_U2]))
    # Systolic array R×C (u0, u1); u2 is the int8 rate multiplier folded into the streamed depth.
    r = int(p[P_U0])
    c = int(p[P_U1])
    k_eff = math.ceil(k_eff / p[P_U2] - 1e-9)
    dataflow = p[P_DATAFLOW]
    # SCALE-Sim v3 (CALC mode): folds run one after another, each paying its fill and drain;
    # os: M on rows, N on cols, K streamed, T + R + C - 2 per fold;
    # ws: K on rows, N on cols, M streamed, T + 2R + C - 2; is: K on rows, M on cols, N streamed, likewise.
    if dataflow == DATAFLOW_OS:
        return _cdiv(rows, r) * _cdiv(cols, c) * (k_eff + r + c - 2)
    if dataflow == DATAFLOW_WS:
        return _cdiv(k_eff, r) * _cdiv(cols, c) * (rows + 2 * r + c - 2)
    return _cdiv(k_eff, r) * _cdiv(rows, c) * (cols + 2 * r + c - 2)


@njit(cache=True, inline="always")
def _padded(value, unit):
    return _cdiv(value, unit) * unit


@njit(cache=True)
def _l2_rule(l2_bytes, reused_unique, reused_fill, streamed_unique, streamed_fill, panel_bytes,
             streamed_one_bytes, panels):  # pragma: no cover - compiled
    """(reused, streamed) DRAM bytes under L2 tiling; see docs/model.md "L2"."""
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
def block_list(p, tm, tn, order_rows):  # pragma: no cover - compiled
    """(mi, ni, count) of one batch element's output blocks in traversal order; causal scores skip the
    blocks entirely above the diagonal."""
    M = int(p[P_M]); N = int(p[P_N]); causal = int(p[P_CAUSAL])
    mb = _cdiv(M, tm); nb = _cdiv(N, tn)
    bm = np.empty(mb * nb, dtype=np.int64); bn = np.empty(mb * nb, dtype=np.int64)
    count = 0
    outer = mb if order_rows else nb
    inner = nb if order_rows else mb
    for o in range(outer):
        for i in range(inner):
            mi = o if order_rows else i
            ni = i if order_rows else o
            if causal == CAUSAL_SCORE and ni * tn > (mi + 1) * tm - 1:
                continue
            bm[count] = mi; bn[count] = ni
            count += 1
    return bm, bn, count


@njit(cache=True)
def _fills(p, tm, tn, bm, bn, count):  # pragma: no cover - compiled
    """Exact A and B bytes loaded into the cores over all blocks (edge blocks move only real bytes)."""
    M = int(p[P_M]); K = int(p[P_K]); N = int(p[P_N]); batch = int(p[P_BATCH]); causal = int(p[P_CAUSAL])
    if causal == CAUSAL_NONE:
        return M * K * p[P_A_BPE] * _cdiv(N, tn) * batch, K * N * p[P_B_BYTES] * _cdiv(M, tm) * batch
    a_fill = 0.0; b_fill = 0.0
    for j in range(count):
        rows = min(tm, M - bm[j] * tm); cols = min(tn, N - bn[j] * tn)
        k_len = min(K, (bm[j] + 1) * tm) if causal == CAUSAL_VALUE else K
        a_fill += rows * k_len * p[P_A_BPE]; b_fill += k_len * cols * p[P_B_BYTES]
    return a_fill * batch, b_fill * batch


@njit(cache=True)
def _dram_fraction(p, tm, tn, order_rows, a_fill, b_fill):  # pragma: no cover - compiled
    """(DRAM bytes of A, of B, DRAM share of the fill bytes) under the L2 rule."""
    M = int(p[P_M]); K = int(p[P_K]); N = int(p[P_N]); batch = int(p[P_BATCH])
    a_bpe = p[P_A_BPE]; b_bytes = p[P_B_BYTES]
    a_unique = M * K * a_bpe * batch
    b_unique = K * N * b_bytes * p[P_B_BATCH]
    if order_rows:
        dram_a, dram_b = _l2_rule(p[P_L2_BYTES], a_unique, a_fill, b_unique, b_fill, tm * K * a_bpe,
                                  K * N * b_bytes, _cdiv(M, tm))
    else:
        dram_b, dram_a = _l2_rule(p[P_L2_BYTES], b_unique, b_fill, a_unique, a_fill, tn * K * b_bytes,
                                  M * K * a_bpe, _cdiv(N, tn))
    fill = a_fill + b_fill
    return dram_a, dram_b, (dram_a + dram_b) / fill if fill > 0 else 0.0


@njit(cache=True)
def time_mapping(p, tm, tn, tk, acc, order_rows, out, prune_above):  # pragma: no cover - compiled
    """Fill ``out`` with the mapping's result; return False (out untouched) when its average per-core
    compute, a valid lower bound on its cycles, already exceeds ``prune_above``."""
    M = int(p[P_M]); K = int(p[P_K]); N = int(p[P_N]); batch = int(p[P_BATCH])
    causal = int(p[P_CAUSAL]); cores = int(p[P_CORES])
    a_bpe = p[P_A_BPE]; b_bytes = p[P_B_BYTES]; out_bytes = p[P_OUT_BYTES]
    overhead = int(p[P_OVERHEAD]); l1_bpc = p[P_L1_BPC]
    unit_m = int(p[P_U0]) if p[P_KIND] == KIND_CUBE else 1
    unit_n = int(p[P_U1]) if p[P_KIND] == KIND_CUBE else 1
    # ---- pass 1: the blocks of one batch element, in traversal order, and their work
    bm, bn, per_batch = block_list(p, tm, tn, order_rows)
    out_total = 0.0; issued = 0.0
    work_of_block = np.empty(per_batch, dtype=np.int64)
    for j in range(per_batch):
        rows = min(tm, M - bm[j] * tm); cols = min(tn, N - bn[j] * tn)
        k_len = min(K, (bm[j] + 1) * tm) if causal == CAUSAL_VALUE else K
        out_total += rows * cols * out_bytes
        rows_p = min(tm, _padded(rows, unit_m)); cols_p = min(tn, _padded(cols, unit_n))
        issued += rows_p * cols_p * math.ceil(k_len * p[P_K_RATIO] - 1e-9)
        full = k_len // tk; rest = k_len - full * tk
        work = full * (tile_cycles(p, rows_p, cols_p, tk) + overhead)
        if rest > 0:
            work += tile_cycles(p, rows_p, cols_p, rest) + overhead
        work_of_block[j] = work
    issued *= batch
    out_total *= batch
    a_fill, b_fill = _fills(p, tm, tn, bm, bn, per_batch)
    dram_a, dram_b, dram_fraction = _dram_fraction(p, tm, tn, order_rows, a_fill, b_fill)
    fill = a_fill + b_fill
    # ---- critical cores: core 0, the core with the most compute, the core with the last block
    total_blocks = per_batch * batch
    core_work = np.zeros(cores, dtype=np.int64)
    for g in range(total_blocks):
        core_work[g % cores] += work_of_block[g % per_batch]
    if (core_work.sum() + cores - 1) // cores > prune_above:
        return False
    heaviest = 0
    for c in range(cores):
        if core_work[c] > core_work[heaviest]:
            heaviest = c
    candidates = (0, heaviest, (total_blocks - 1) % cores)
    best_total = -1; best_load = 0; best_compute = 0; best_store = 0; best_steps = 0
    for ci in range(3):
        core = candidates[ci]
        if (ci == 1 and core == candidates[0]) or (ci == 2 and (core == candidates[0] or core == candidates[1])):
            continue
        # ---- pass 2: the double-buffered pipeline of this core (see timeline.py for the rules)
        stage_free0 = 0; stage_free1 = 0; acc_free0 = 0; acc_free1 = 0
        port_free = 0; compute_end = 0; end = 0
        load_busy = 0; compute_busy = 0; store_busy = 0
        step = 0
        g = core
        while g < total_blocks:
            j = g % per_batch
            wave = g // cores
            active = min(cores, total_blocks - wave * cores)
            cpb = max(active / p[P_L2_BPC], dram_fraction * active / p[P_DRAM_BPC])
            rows = min(tm, M - bm[j] * tm); cols = min(tn, N - bn[j] * tn)
            rows_p = min(tm, _padded(rows, unit_m)); cols_p = min(tn, _padded(cols, unit_n))
            k_len = min(K, (bm[j] + 1) * tm) if causal == CAUSAL_VALUE else K
            n_steps = _cdiv(k_len, tk)
            full_steps = k_len // tk
            # state two steps back (port, compute end, stage buffers), for the periodicity check
            h_port = -1; h_comp = -1; h_s0 = -1; h_s1 = -1
            g_port = -1; g_comp = -1; g_s0 = -1; g_s1 = -1
            s = 0
            while s < n_steps:
                k = min(tk, k_len - s * tk)
                step_bytes = rows * k * a_bpe + k * cols * b_bytes
                load = int(math.ceil(step_bytes * cpb - 1e-9))
                compute = tile_cycles(p, rows_p, cols_p, k) + overhead
                if l1_bpc > 0:
                    compute = max(compute, int(math.ceil(step_bytes / l1_bpc - 1e-9)))
                # the load of this step: issued when its staging buffer frees (compute of step-2 ends)
                buffer_free = stage_free0 if step % 2 == 0 else stage_free1
                load_start = max(port_free, buffer_free)
                load_end = load_start + load + (int(p[P_LATENCY]) if step == 0 else 0)
                port_free = load_end
                start = max(load_end, compute_end)
                if s == 0:
                    start = max(start, acc_free0 if (g // cores) % acc == 0 else acc_free1)
                compute_end = start + compute
                if step % 2 == 0:
                    stage_free0 = compute_end
                else:
                    stage_free1 = compute_end
                load_busy += load; compute_busy += compute
                step += 1
                s += 1
                # Identical full steps make the pipeline periodic: once the state after this step equals
                # the state two steps earlier plus a constant, jump an even number of steps exactly.
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
            store = 0 if out_bytes == 0 else int(math.ceil(rows * cols * out_bytes * active / p[P_DRAM_BPC] - 1e-9))
            store_end = max(compute_end, port_free) + store
            port_free = store_end
            store_busy += store
            if (g // cores) % acc == 0:
                acc_free0 = store_end
            else:
                acc_free1 = store_end
            end = max(end, store_end)
            g += cores
        total = max(end, compute_end)
        if total > best_total:
            best_total = total; best_load = load_busy; best_compute = compute_busy
            best_store = store_busy; best_steps = step
    out[R_CYCLES] = best_total; out[R_LOAD] = best_load; out[R_COMPUTE] = best_compute
    out[R_STORE] = best_store; out[R_STEPS] = best_steps; out[R_BLOCKS] = total_blocks
    out[R_WAVES] = _cdiv(total_blocks, cores); out[R_TAIL] = total_blocks % cores
    out[R_DRAM_A] = dram_a; out[R_DRAM_B] = dram_b; out[R_DRAM_OUT] = out_total
    out[R_FILL] = fill; out[R_ISSUED] = issued
    return True


@njit(cache=True)
def quick_bound(p, tm, tn, tk):  # pragma: no cover - compiled
    """Cheap lower bound, used to order candidates and to stop the search early.

    The larger of: core 0's ceil(blocks/cores) blocks each costed as the smallest block (compute, and
    loads at the L2 rate with no DRAM share); and, for causal ops, the average compute per core, which
    the heaviest core (always simulated) reaches.
    """
    M = int(p[P_M]); K = int(p[P_K]); N = int(p[P_N]); batch = int(p[P_BATCH]); cores = int(p[P_CORES])
    causal = int(p[P_CAUSAL]); overhead = int(p[P_OVERHEAD])
    unit_m = int(p[P_U0]) if p[P_KIND] == KIND_CUBE else 1
    unit_n = int(p[P_U1]) if p[P_KIND] == KIND_CUBE else 1
    mb = _cdiv(M, tm); nb = _cdiv(N, tn)
    per_batch = mb * nb
    average = 0
    if causal != CAUSAL_NONE:
        per_batch = 0
        work = 0
        for mi in range(mb):
            blocks = min(nb, ((mi + 1) * tm - 1) // tn + 1) if causal == CAUSAL_SCORE else nb
            per_batch += blocks
            rows_p = min(tm, _padded(min(tm, M - mi * tm), unit_m))
            k_row = min(K, (mi + 1) * tm) if causal == CAUSAL_VALUE else K
            full = k_row // tk; rest = k_row - full * tk
            edge = 1 if blocks == nb else 0  # the last column block may be narrower
            for narrow in range(2):
                cols_p = min(tn, _padded(N - (nb - 1) * tn, unit_n)) if narrow == 1 else tn
                count = edge if narrow == 1 else blocks - edge
                steps = full * (tile_cycles(p, rows_p, cols_p, tk) + overhead)
                if rest > 0:
                    steps += tile_cycles(p, rows_p, cols_p, rest) + overhead
                work += count * steps
        average = (work * batch) // cores
    total = per_batch * batch
    q = _cdiv(total, cores)
    rows = min(tm, M - (mb - 1) * tm); cols = min(tn, N - (nb - 1) * tn)
    k_len = min(K, tm) if causal == CAUSAL_VALUE else K
    rows_p = min(tm, _padded(rows, unit_m)); cols_p = min(tn, _padded(cols, unit_n))
    full = k_len // tk; rest = k_len - full * tk
    compute = full * (tile_cycles(p, rows_p, cols_p, tk) + overhead)
    if rest > 0:
        compute += tile_cycles(p, rows_p, cols_p, rest) + overhead
    block_bytes = (rows * p[P_A_BPE] + cols * p[P_B_BYTES]) * k_len
    bandwidth = p[P_L2_BPC] if p[P_L2_BYTES] > 0 else p[P_DRAM_BPC]
    memory = block_bytes * (total - q + 1) / bandwidth  # core 0: q-1 blocks at full contention, one at the tail
    return max(q * compute, average, math.floor(memory * (1 - 1e-9)))


@njit(cache=True)
def lower_bound(p, tm, tn, tk, order_rows):  # pragma: no cover - compiled
    """A valid lower bound on a mapping's cycles: core 0's compute busy or its memory-queue busy.

    Core 0 is always among the simulated cores and its timeline is at least the busy time of its
    matrix unit and of its memory queue, both summed here exactly over its blocks with the same
    per-step rounding as the pipeline.
    """
    M = int(p[P_M]); K = int(p[P_K]); N = int(p[P_N]); batch = int(p[P_BATCH]); cores = int(p[P_CORES])
    causal = int(p[P_CAUSAL]); overhead = int(p[P_OVERHEAD]); l1_bpc = p[P_L1_BPC]
    a_bpe = p[P_A_BPE]; b_bytes = p[P_B_BYTES]; out_bytes = p[P_OUT_BYTES]
    unit_m = int(p[P_U0]) if p[P_KIND] == KIND_CUBE else 1
    unit_n = int(p[P_U1]) if p[P_KIND] == KIND_CUBE else 1
    nb = _cdiv(N, tn); mb = _cdiv(M, tm)
    if causal == CAUSAL_NONE:
        bm = np.empty(0, dtype=np.int64); bn = np.empty(0, dtype=np.int64); per_batch = mb * nb
    else:
        bm, bn, per_batch = block_list(p, tm, tn, order_rows)
    total = per_batch * batch
    a_fill, b_fill = _fills(p, tm, tn, bm, bn, per_batch)
    dram_fraction = _dram_fraction(p, tm, tn, order_rows, a_fill, b_fill)[2]
    compute_busy = 0
    port_busy = 0
    g = 0
    while g < total:
        j = g % per_batch
        if causal == CAUSAL_NONE:
            mi = j // nb if order_rows else j % mb
            ni = j % nb if order_rows else j // mb
        else:
            mi = bm[j]; ni = bn[j]
        rows = min(tm, M - mi * tm); cols = min(tn, N - ni * tn)
        k_len = min(K, (mi + 1) * tm) if causal == CAUSAL_VALUE else K
        active = min(cores, total - (g // cores) * cores)
        per_byte = max(active / p[P_L2_BPC], dram_fraction * active / p[P_DRAM_BPC])
        rows_p = min(tm, _padded(rows, unit_m)); cols_p = min(tn, _padded(cols, unit_n))
        full = k_len // tk; rest = k_len - full * tk
        full_bytes = (rows * a_bpe + cols * b_bytes) * tk
        full_compute = tile_cycles(p, rows_p, cols_p, tk) + overhead
        if l1_bpc > 0:
            full_compute = max(full_compute, int(math.ceil(full_bytes / l1_bpc - 1e-9)))
        compute_busy += full * full_compute
        port_busy += full * int(math.ceil(full_bytes * per_byte - 1e-9))
        if rest > 0:
            rest_bytes = (rows * a_bpe + cols * b_bytes) * rest
            rest_compute = tile_cycles(p, rows_p, cols_p, rest) + overhead
            if l1_bpc > 0:
                rest_compute = max(rest_compute, int(math.ceil(rest_bytes / l1_bpc - 1e-9)))
            compute_busy += rest_compute
            port_busy += int(math.ceil(rest_bytes * per_byte - 1e-9))
        if out_bytes > 0:
            port_busy += int(math.ceil(rows * cols * out_bytes * active / p[P_DRAM_BPC] - 1e-9))
        g += cores
    return max(compute_busy, port_busy)


@njit(cache=True)
def search(p, tm, tn, tk, acc, order_rows):  # pragma: no cover - compiled
    """Best-first branch and bound over the candidates; the result is the exact optimum.

    Candidates are tried in order of ``quick_bound``; the search stops when that bound exceeds the best
    time found, skips a candidate whose exact ``lower_bound`` does, and times the rest.
    Returns (index of the best, its result vector). Ties: less DRAM traffic, then fewer steps.
    """
    n = tm.shape[0]
    bounds = np.empty(n)
    for i in range(n):
        bounds[i] = quick_bound(p, tm[i], tn[i], tk[i])
    order = np.argsort(bounds, kind="mergesort")
    best = -1
    best_out = np.zeros(N_RESULTS)
    out = np.zeros(N_RESULTS)
    for position in range(n):
        i = order[position]
        if best >= 0 and bounds[i] > best_out[R_CYCLES]:
            break
        if best >= 0 and lower_bound(p, tm[i], tn[i], tk[i], order_rows[i]) > best_out[R_CYCLES]:
            continue
        limit = best_out[R_CYCLES] if best >= 0 else 9.0e18
        if not time_mapping(p, tm[i], tn[i], tk[i], acc[i], order_rows[i], out, limit):
            continue
        if best < 0:
            better = True
        elif out[R_CYCLES] != best_out[R_CYCLES]:
            better = out[R_CYCLES] < best_out[R_CYCLES]
        else:
            traffic = out[R_DRAM_A] + out[R_DRAM_B] + out[R_DRAM_OUT]
            best_traffic = best_out[R_DRAM_A] + best_out[R_DRAM_B] + best_out[R_DRAM_OUT]
            better = traffic < best_traffic or (traffic == best_traffic and out[R_STEPS] < best_out[R_STEPS])
        if better:
            best = i
            best_out[:] = out
    return best, best_out
