"""Output blocks of a mapping: their traversal order, their shapes, and how they are dealt to cores.

docs/model.md §2 "Blocks, waves, cores". A batch element's blocks are walked in ``rows`` order (block
rows outer, N blocks inner) or ``cols`` order; causal-output ops (attention scores) skip the blocks
entirely above the diagonal. Block g of the op (batch element g // per_batch) goes to core g mod cores
in wave g // cores.

The blocks are never listed one by one: a *layout* keeps, per outer index, the range of inner indices
and the count of blocks before it, so a 131,072-token attention (hundreds of millions of blocks) costs
arrays of a few thousand entries. :func:`identical_run` tells how many of a core's next blocks have the
same shape and the same number of active cores, which lets the pipeline (pipeline.py) and the bounds
(mapper.py) treat such a run in closed form.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from amber_sim.sim.compute import CAUSAL_OUTPUT, CAUSAL_REDUCTION, cdiv


@njit(cache=True)
def block_layout(p, tm, tn, order_rows):  # pragma: no cover - compiled
    """(lo, hi, start) of one batch element: outer index o (a block row in ``rows`` order, a block column in
    ``cols`` order) holds inner indices lo[o] .. hi[o] − 1; start[o] blocks come before it (start[-1]: all)."""
    mb = cdiv(p.M, tm); nb = cdiv(p.N, tn)
    n_outer = mb if order_rows else nb
    lo = np.zeros(n_outer, dtype=np.int64)
    hi = np.empty(n_outer, dtype=np.int64)
    start = np.empty(n_outer + 1, dtype=np.int64)
    start[0] = 0
    for o in range(n_outer):
        if p.causal == CAUSAL_OUTPUT:  # keep block (mi, ni) iff ni·tn ≤ (mi + 1)·tm − 1
            if order_rows:
                hi[o] = min(nb, ((o + 1) * tm - 1) // tn + 1)
            else:
                lo[o] = min(mb, max(0, cdiv(o * tn + 1, tm) - 1))
                hi[o] = mb
        else:
            hi[o] = nb if order_rows else mb
        start[o + 1] = start[o] + hi[o] - lo[o]
    return lo, hi, start


@njit(cache=True)
def block_at(lo, start, order_rows, j):  # pragma: no cover - compiled
    """(mi, ni) of the j-th block of a batch element in traversal order."""
    o = np.searchsorted(start, j, side="right") - 1
    inner = lo[o] + j - start[o]
    if order_rows:
        return o, inner
    return inner, o


@njit(cache=True)
def block_k(p, tm, mi):  # pragma: no cover - compiled
    """Input channels block row mi reduces over: K, or for causal-reduction ops (P·V) the first (mi + 1)·tm
    positions."""
    return min(p.K, (mi + 1) * tm) if p.causal == CAUSAL_REDUCTION else p.K


@njit(cache=True)
def block_shape(p, tm, tn, mi, ni):  # pragma: no cover - compiled
    """(rows, cols, k_len) of block (mi, ni): edge blocks hold only the real rows and columns (block_k)."""
    return min(tm, p.M - mi * tm), min(tn, p.N - ni * tn), block_k(p, tm, mi)


@njit(cache=True)
def uniform_blocks(p, tm, tn):  # pragma: no cover - compiled
    """True when every block has the same shape: no causal reduction, and in each dimension either no edge
    block or a single block."""
    return ((p.M % tm == 0 or p.M <= tm) and (p.N % tn == 0 or p.N <= tn)
            and p.causal != CAUSAL_REDUCTION)


@njit(cache=True)
def active_cores(total_blocks, cores, g):  # pragma: no cover - compiled
    """Cores loading in block g's wave (all but the last, partial, wave have every core)."""
    return min(cores, total_blocks - (g // cores) * cores)


@njit(cache=True)
def identical_run(p, tm, tn, lo, start, order_rows, per_batch, total_blocks, g):  # pragma: no cover - compiled
    """How many of the blocks g + cores, g + 2·cores, ... (the same core's next blocks) follow in a row with
    the shape and the active-core count of block g."""
    cores = p.cores
    active = active_cores(total_blocks, cores, g)
    if uniform_blocks(p, tm, tn):
        limit = total_blocks if active < cores else (total_blocks // cores) * cores
        return max(0, (limit - 1 - g) // cores)
    mi, ni = block_at(lo, start, order_rows, g % per_batch)
    rows, cols, k_len = block_shape(p, tm, tn, mi, ni)
    count = 0
    following = g + cores
    while following < total_blocks and active_cores(total_blocks, cores, following) == active:
        mi, ni = block_at(lo, start, order_rows, following % per_batch)
        shape = block_shape(p, tm, tn, mi, ni)
        if shape[0] != rows or shape[1] != cols or shape[2] != k_len:
            break
        count += 1
        following += cores
    return count


@njit(cache=True)
def segment_classes(p, tm, tn, lo, hi, order_rows, o):  # pragma: no cover - compiled
    """The blocks of outer index ``o`` as at most two classes of equal shape: the interior blocks and the
    last inner block when it is the matrix edge. Returns (n_classes, count0, rows0, cols0, k0, count1,
    rows1, cols1, k1); n_classes = -1 when the shapes vary block by block (``cols`` order with a causal
    reduction: k_len grows with the row), so the caller walks the blocks one by one."""
    count = hi[o] - lo[o]
    if count <= 0:
        return 0, 0, 0, 0, 0, 0, 0, 0, 0
    if not order_rows and p.causal == CAUSAL_REDUCTION:
        return -1, 0, 0, 0, 0, 0, 0, 0, 0
    last_inner = cdiv(p.N, tn) - 1 if order_rows else cdiv(p.M, tm) - 1
    edge = 1 if hi[o] - 1 == last_inner else 0
    inner = hi[o] - 1
    mi = o if order_rows else inner
    ni = inner if order_rows else o
    rows1, cols1, k1 = block_shape(p, tm, tn, mi, ni)
    if edge == 0 or count == 1:
        return 1, count, rows1, cols1, k1, 0, 0, 0, 0
    mi = o if order_rows else lo[o]
    ni = lo[o] if order_rows else o
    rows0, cols0, k0 = block_shape(p, tm, tn, mi, ni)
    return 2, count - 1, rows0, cols0, k0, 1, rows1, cols1, k1


@njit(cache=True)
def add_to_residues(residue_work, first, count, work, cores):  # pragma: no cover - compiled
    """Add ``work`` to residue_work[j mod cores] for each of the ``count`` blocks j = first, first + 1, ..."""
    full, rest = count // cores, count % cores
    if full:
        for r in range(cores):
            residue_work[r] += full * work
    for i in range(rest):
        residue_work[(first + i) % cores] += work


@njit(cache=True)
def work_per_core(residue_work, per_batch, batch, cores):  # pragma: no cover - compiled
    """Σ of block work per core, from the work of one batch element summed by block index mod cores: batch
    element b starts at global block b·per_batch, which shifts its residues by b·per_batch mod cores."""
    out = np.zeros(cores, dtype=np.int64)
    for b in range(batch):
        shift = (b * per_batch) % cores
        for r in range(cores):
            out[(r + shift) % cores] += residue_work[r]
    return out
