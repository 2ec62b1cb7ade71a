"""N:M activation-pruning kernels (Numba).

Activation ``x`` is ``[rows, K]`` (leading dimensions of a C-contiguous array are folded into
rows); every row is cut into consecutive groups of ``m`` channels and each group keeps the
``n`` entries with the highest score ``|x| * col_factor`` (``|x|`` without a factor), the rest
become +0. Ties: the lower channel index wins. See docs/kernels.md for the algorithms and the
measured speed.

Dtypes: float32, float16 and bfloat16. Every kernel works on the *bit pattern* (uint32 for
float32, uint16 for float16 / bfloat16), decoding magnitudes to float32 in registers, so there is
no conversion pass and kept values are copied bit for bit. NumPy has no bfloat16: pass the bits
as a uint16 (or int16) array plus ``dtype="bfloat16"``.

Public API: :func:`prune`, :func:`prune_unstructured`, :func:`compress`, :func:`decompress`,
:func:`column_norms`, :func:`warmup`, :class:`PruneStats`. Bad input raises
:class:`amber_sim.errors.InputError`; the library never prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from llvmlite import ir
from numba import literally, njit, prange, types
from numba.extending import intrinsic

from amber_sim.errors import InputError

__all__ = [
    "PruneStats",
    "prune",
    "prune_unstructured",
    "compress",
    "decompress",
    "column_norms",
    "warmup",
    "MAX_M",
]

MAX_M = 64

# Element kinds (runtime argument of the kernels).
KIND_FP32 = 0
KIND_FP16 = 1
KIND_BF16 = 2

# Rows per partial sum in column_norms: fixed, so the float64 summation order (and the result)
# does not depend on the number of threads.
_NORM_CHUNK_ROWS = 256

_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()


# --------------------------------------------------------------------------------------------
# LLVM intrinsics: bit casts, popcount / count-trailing-zeros and the vector group selection.
# --------------------------------------------------------------------------------------------


@intrinsic
def _bits_f32(typingctx, v):
    """Reinterpret the low 32 bits of an integer as float32 (no conversion)."""
    if not isinstance(v, types.Integer):
        return None
    sig = types.float32(v)

    def codegen(context, builder, signature, args):
        val = args[0]
        width = val.type.width
        if width > 32:
            val = builder.trunc(val, _I32)
        elif width < 32:
            val = builder.zext(val, _I32)
        return builder.bitcast(val, _F32)

    return sig, codegen


@intrinsic
def _f32_bits(typingctx, v):
    """Reinterpret a float32 as uint32."""
    if v != types.float32:
        return None
    sig = types.uint32(v)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _I32)

    return sig, codegen


@intrinsic
def _popcount(typingctx, v):
    """Number of set bits of a uint64, as int64."""
    if not isinstance(v, types.Integer):
        return None
    sig = types.int64(v)

    def codegen(context, builder, signature, args):
        val = context.cast(builder, args[0], signature.args[0], types.uint64)
        fn = builder.module.declare_intrinsic("llvm.ctpop", [_I64])
        return builder.call(fn, [val])

    return sig, codegen


@intrinsic
def _ctz(typingctx, v):
    """Index of the lowest set bit of a nonzero uint64, as int64."""
    if not isinstance(v, types.Integer):
        return None
    sig = types.int64(v)

    def codegen(context, builder, signature, args):
        val = context.cast(builder, args[0], signature.args[0], types.uint64)
        fn = builder.module.declare_intrinsic("llvm.cttz", [_I64, _I1])
        return builder.call(fn, [val, ir.Constant(_I1, 0)])

    return sig, codegen


def _lanes(mp: int) -> int:
    """Vector lanes per step for group width ``mp``: 16 (several small groups) or, from mp = 16
    on, 64 (1-4 groups; independent groups give the latency-bound sorting network parallel work)."""
    return 64 if mp >= 16 else 16


def _vector_ptr(context, builder, aryty, ary, offset, vtype):
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [offset]), vtype.as_pointer())


@intrinsic
def _group_masks(typingctx, x, off, fac, foff, n, kind, mp, ties):
    """Select n of every mp lanes in V = _lanes(mp) consecutive lanes of ``x`` from ``off``.

    Returns three uint64 lane masks (bit i = lane i): kept, exactly zero (±0), NaN/Inf.
    Score = |x| (decoded to float32 in registers) * fac[foff + lane].

    ``ties`` = 0 (fast path): mp >= 16 sorts each group with a bitonic network and keeps
    score >= the N-th largest; mp <= 8 keeps a lane when fewer than n lanes of its group score
    strictly higher. Both are exact unless a tie straddles the N-th place, which shows as a
    group keeping more than n lanes: the caller counts and then calls ``ties`` = 1, which ranks
    with "higher score, or equal score at a lower index" (a strict total order, so exactly n).
    """
    if not isinstance(mp, types.IntegerLiteral) or not isinstance(ties, types.IntegerLiteral):
        return None
    if not isinstance(x, types.Array) or x.dtype not in (types.uint16, types.uint32):
        return None
    MP = mp.literal_value
    TIES = bool(ties.literal_value)
    V = _lanes(MP)
    W = x.dtype.bitwidth
    sig = types.UniTuple(types.uint64, 3)(x, off, fac, foff, n, kind, mp, ties)

    def codegen(context, builder, signature, args):
        x_, off_, fac_, foff_, n_, kind_, _, _ = args
        off_ = context.cast(builder, off_, signature.args[1], types.int64)
        foff_ = context.cast(builder, foff_, signature.args[3], types.int64)
        iw = ir.IntType(W)
        vi = ir.VectorType(iw, V)
        vf = ir.VectorType(_F32, V)
        v32 = ir.VectorType(_I32, V)
        xv = builder.load(_vector_ptr(context, builder, signature.args[0], x_, off_, vi), align=W // 8)
        fv = builder.load(_vector_ptr(context, builder, signature.args[2], fac_, foff_, vf), align=4)

        def const(vt, value):
            return ir.Constant(vt, [value] * V)

        if W == 32:
            mag = builder.and_(xv, const(vi, 0x7FFFFFFF))
            val = builder.bitcast(mag, vf)
            expm = const(vi, 0x7F800000)
        else:
            mag = builder.and_(xv, const(vi, 0x7FFF))
            m32 = builder.zext(mag, v32)
            bf = builder.bitcast(builder.shl(m32, const(v32, 16)), vf)
            # half -> float without denormals: normal = bits << 13 rebased by 112 in the exponent;
            # subnormal = mantissa * 2^-24 (exact in float32).
            normal = builder.bitcast(builder.add(builder.shl(m32, const(v32, 13)), const(v32, 0x38000000)), vf)
            sub = builder.fmul(builder.uitofp(m32, vf), ir.Constant(vf, [2.0 ** -24] * V))
            is_sub = builder.icmp_unsigned("<", mag, const(vi, 0x0400))
            half = builder.select(is_sub, sub, normal)
            kind64 = context.cast(builder, kind_, signature.args[5], types.int64)
            is_half = builder.icmp_signed("==", kind64, ir.Constant(_I64, KIND_FP16))
            val = builder.select(is_half, half, bf)
            expm = builder.select(is_half, const(vi, 0x7C00), const(vi, 0x7F80))
        zero = builder.icmp_unsigned("==", mag, const(vi, 0))
        bad = builder.icmp_unsigned("==", builder.and_(xv, expm), expm)
        score = builder.fmul(val, fv)

        undef = ir.Constant(vf, ir.Undefined)
        n64 = context.cast(builder, n_, signature.args[4], types.int64)
        if not TIES and MP >= 16:
            # per group: bitonic sort (ascending) of a copy, threshold t = N-th largest,
            # keep = score >= t; exact unless a tie straddles t (the caller sees the count != N)
            srt = score
            k = 2
            while k <= MP:
                j = k // 2
                while j >= 1:
                    partner = builder.shuffle_vector(srt, undef, ir.Constant(ir.VectorType(_I32, V), [i ^ j for i in range(V)]))
                    lt = builder.fcmp_ordered("<", srt, partner)
                    lo = builder.select(lt, srt, partner)
                    hi = builder.select(lt, partner, srt)
                    take_lo = ir.Constant(ir.VectorType(_I1, V), [1 if (k == MP or (i & k) == 0) == ((i & j) == 0) else 0 for i in range(V)])
                    srt = builder.select(take_lo, lo, hi)
                    j //= 2
                k *= 2
            pos = builder.trunc(builder.sub(ir.Constant(_I64, MP), n64), _I32)
            tv = undef
            for seg in range(V // MP):
                t = builder.extract_element(srt, builder.add(pos, ir.Constant(_I32, seg * MP)))
                tv = builder.insert_element(tv, t, ir.Constant(_I32, seg * MP))
            tvec = builder.shuffle_vector(tv, undef, ir.Constant(ir.VectorType(_I32, V), [(i // MP) * MP for i in range(V)]))
            keep = builder.fcmp_ordered(">=", score, tvec)
        else:
            # rank = number of lanes of the same group that beat this one; keep rank < N
            v8 = ir.VectorType(_I8, V)
            rank = ir.Constant(v8, [0] * V)
            for j in range(MP):
                pick = ir.Constant(ir.VectorType(_I32, V), [(i // MP) * MP + j for i in range(V)])
                sj = builder.shuffle_vector(score, undef, pick)
                beats = builder.fcmp_ordered(">", sj, score)
                if TIES and j < MP - 1:
                    later = ir.Constant(ir.VectorType(_I1, V), [1 if i % MP > j else 0 for i in range(V)])
                    eq = builder.fcmp_ordered("==", sj, score)
                    beats = builder.or_(beats, builder.and_(eq, later))
                rank = builder.add(rank, builder.zext(beats, v8))
            n8 = builder.trunc(n64, _I8)
            nvec = builder.shuffle_vector(
                builder.insert_element(ir.Constant(v8, ir.Undefined), n8, ir.Constant(_I32, 0)),
                ir.Constant(v8, ir.Undefined),
                ir.Constant(ir.VectorType(_I32, V), [0] * V),
            )
            keep = builder.icmp_unsigned("<", rank, nvec)

        def to_u64(mask):
            return builder.zext(builder.bitcast(mask, ir.IntType(V)), _I64) if V < 64 else builder.bitcast(mask, _I64)

        return context.make_tuple(builder, signature.return_type, [to_u64(keep), to_u64(zero), to_u64(bad)])

    return sig, codegen


@intrinsic
def _store_kept(typingctx, x, off, out, keep, mp):
    """out[off:off+V] = x[off:off+V] where the lane bit of ``keep`` is set, else 0 (one vector store)."""
    if not isinstance(mp, types.IntegerLiteral):
        return None
    V = _lanes(mp.literal_value)
    sig = types.void(x, off, out, keep, mp)

    def codegen(context, builder, signature, args):
        x_, off_, out_, keep_, _ = args
        off_ = context.cast(builder, off_, signature.args[1], types.int64)
        W = signature.args[0].dtype.bitwidth
        vi = ir.VectorType(ir.IntType(W), V)
        xv = builder.load(_vector_ptr(context, builder, signature.args[0], x_, off_, vi), align=W // 8)
        k64 = context.cast(builder, keep_, signature.args[3], types.uint64)
        kbits = builder.trunc(k64, ir.IntType(V)) if V < 64 else k64
        mask = builder.bitcast(kbits, ir.VectorType(_I1, V))
        res = builder.select(mask, xv, ir.Constant(vi, [0] * V))
        builder.store(res, _vector_ptr(context, builder, signature.args[2], out_, off_, vi), align=W // 8)
        return context.get_dummy_value()

    return sig, codegen


# --------------------------------------------------------------------------------------------
# Scalar helpers
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _exp_mask(kind):
    if kind == KIND_FP32:
        return np.uint32(0x7F800000)
    if kind == KIND_FP16:
        return np.uint32(0x7C00)
    return np.uint32(0x7F80)


@njit(cache=True, inline="always")
def _abs_mask(kind):
    if kind == KIND_FP32:
        return np.uint32(0x7FFFFFFF)
    return np.uint32(0x7FFF)


@njit(cache=True, inline="always")
def _magnitude(b, kind):
    """|value| of the bit pattern ``b`` as float32 (exact for all three dtypes)."""
    if kind == KIND_FP32:
        return _bits_f32(np.uint32(b) & np.uint32(0x7FFFFFFF))
    mag = np.uint32(b) & np.uint32(0x7FFF)
    if kind == KIND_BF16:
        return _bits_f32(mag << np.uint32(16))
    if mag < np.uint32(0x400):
        return np.float32(mag) * np.float32(2.0 ** -24)
    return _bits_f32((mag << np.uint32(13)) + np.uint32(0x38000000))


_ALL_LANES = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _low_lanes(count):
    """uint64 mask with the lowest ``count`` (1..64) bits set."""
    return _ALL_LANES >> np.uint64(64 - count)


# --------------------------------------------------------------------------------------------
# Row kernels (MP = group width rounded up to a power of two, a compile-time literal)
# --------------------------------------------------------------------------------------------

MODE_PRUNE = 0
MODE_COMPRESS = 1
MODE_UNSTRUCTURED = 2


@njit(cache=True)
def _fill_scratch(xr, fac, g, ng, m, xs, fs, MP):
    """Copy groups g .. g+ng-1 into the scratch vectors, each padded from m to MP lanes with +0.

    Padding lanes score 0 and sit after the group's real lanes, so with n < m they never win.
    """
    V = xs.shape[0]
    for lane in range(V):
        s = lane // MP
        i = lane - s * MP
        if s < ng and i < m:
            src = (g + s) * m + i
            xs[lane] = xr[src]
            fs[lane] = fac[src]
        else:
            xs[lane] = 0
            fs[lane] = 0.0


@njit(cache=True)
def _nm_row(xr, orow, vrow, irow, fac, n, m, kind, tail, compress, xs, fs, MP):
    """One row of N:M pruning: writes ``orow`` (prune) or ``vrow``/``irow`` (compress).

    Returns (kept nonzero, exact zeros, first NaN/Inf column or -1), all from this one pass.
    """
    literally(MP)
    V = xs.shape[0]
    gpv = V // MP
    K = xr.shape[0]
    G = (K - tail) // m
    kept = 0
    zeros = 0
    badcol = -1
    w = 0
    g = 0
    one = np.uint64(1)
    broken = False
    if m == MP:
        # groups straight from x, V lanes (gpv groups) per step
        nvec = G // gpv
        for v in range(nvec):
            off = v * V
            keep, zero, bad = _group_masks(xr, off, fac, off, n, kind, MP, 0)
            if _popcount(keep) != n * gpv:  # a tie straddles the N-th place in some group
                keep, zero, bad = _group_masks(xr, off, fac, off, n, kind, MP, 1)
                if _popcount(keep) != n * gpv and bad == 0:
                    keep = np.uint64(0)  # cannot happen (strict order); never overrun vrow
                    broken = True
            if bad != 0:
                # NaN breaks the ordering (a group could keep more than n): keep nothing here,
                # so compress cannot run past its row; the caller raises anyway
                keep = np.uint64(0)
                if badcol < 0:
                    badcol = off + _ctz(bad)
            kept += _popcount(keep & ~zero)
            zeros += _popcount(zero)
            if compress:
                while keep != 0:
                    lane = _ctz(keep)
                    vrow[w] = xr[off + lane]
                    irow[w] = lane & (MP - 1)
                    w += 1
                    keep &= keep - one
            else:
                _store_kept(xr, off, orow, keep, MP)
        g = nvec * gpv
    absm = _abs_mask(kind)
    expm = _exp_mask(kind)
    while g < G:
        # M not a power of two, or the last groups of a row: through the padded scratch vectors
        ng = min(gpv, G - g)
        _fill_scratch(xr, fac, g, ng, m, xs, fs, MP)
        keep, zero, bad = _group_masks(xs, 0, fs, 0, n, kind, MP, 0)
        if _popcount(keep & _low_lanes(ng * MP)) != n * ng:
            keep, zero, bad = _group_masks(xs, 0, fs, 0, n, kind, MP, 1)
            if _popcount(keep & _low_lanes(ng * MP)) != n * ng and bad == 0:
                keep = np.uint64(0)
                broken = True
        if bad != 0:
            keep = np.uint64(0)
        for s in range(ng):
            for i in range(m):
                lane = s * MP + i
                c = (g + s) * m + i
                b = xr[c]
                mag = np.uint32(b) & absm
                if (keep >> np.uint64(lane)) & one:
                    kept += mag != 0
                    if compress:
                        vrow[w] = b
                        irow[w] = i
                        w += 1
                    else:
                        orow[c] = b
                elif not compress:
                    orow[c] = 0
                zeros += mag == 0
                if (np.uint32(b) & expm) == expm and badcol < 0:
                    badcol = c
        g += ng
    for c in range(K - tail, K):
        # tail="dense": the last K % m channels are kept as they are
        b = xr[c]
        mag = np.uint32(b) & absm
        if compress:
            vrow[w] = b
            irow[w] = c - (K - tail)
            w += 1
        else:
            orow[c] = b
        kept += mag != 0
        zeros += mag == 0
        if (np.uint32(b) & expm) == expm and badcol < 0:
            badcol = c
    if broken and badcol < 0:
        badcol = -2
    return kept, zeros, badcol


@njit(cache=True)
def _topk_row(xr, orow, fac, k, kind, keys, hist, cand):
    """Per-row top-k by score (radix select on the float32 score bits); lower index wins ties.

    Pass 1 computes the keys and a histogram of their top 12 bits; the keys in the threshold's
    bin are gathered (pass 2) and the low 20 bits resolved on that short list; pass 3 writes.
    """
    K = xr.shape[0]
    absm = _abs_mask(kind)
    expm = _exp_mask(kind)
    zeros = 0
    badcol = -1
    for d in range(4096):
        hist[d] = 0
    for c in range(K):
        b = xr[c]
        # non-negative float32: the order of the bits is the order of the values
        key = _f32_bits(_magnitude(b, kind) * fac[c])
        keys[c] = key
        hist[(key >> np.uint32(20)) & np.uint32(0xFFF)] += 1
        zeros += (np.uint32(b) & absm) == 0
        if (np.uint32(b) & expm) == expm and badcol < 0:
            badcol = c
    # threshold T = k-th largest key; `remaining` ends as the number of keys equal to T that
    # are kept (the first ones by channel index)
    prefix = np.int64(0)
    remaining = k
    if 0 < k < K:
        d = 4095
        while hist[d] < remaining:
            remaining -= hist[d]
            d -= 1
        prefix = np.int64(d) << 20
        nc = 0
        for c in range(K):
            key = np.int64(keys[c])
            if ((key >> 20) & 0xFFF) == d:
                cand[nc] = key
                nc += 1
        for shift, width in ((8, 12), (0, 8)):
            mask = (1 << width) - 1
            for dd in range(mask + 1):
                hist[dd] = 0
            high = shift + width
            for t in range(nc):
                key = cand[t]
                if (key >> high) == (prefix >> high):
                    hist[(key >> shift) & mask] += 1
            dd = mask
            while hist[dd] < remaining:
                remaining -= hist[dd]
                dd -= 1
            prefix |= np.int64(dd) << shift
    kept = 0
    for c in range(K):
        b = xr[c]
        key = np.int64(keys[c])
        if k >= K:
            keep = True
        elif k <= 0:
            keep = False
        elif key > prefix:
            keep = True
        elif key == prefix and remaining > 0:
            keep = True
            remaining -= 1
        else:
            keep = False
        if keep:
            orow[c] = b
            kept += (np.uint32(b) & absm) != 0
        else:
            orow[c] = 0
    return kept, zeros, badcol


@njit(cache=True)
def _row_any(xr, orow, vrow, irow, fac, n, m, mp, kind, tail, mode, xs, fs, keys, hist, cand):
    if mode == MODE_UNSTRUCTURED:
        return _topk_row(xr, orow, fac, n, kind, keys, hist, cand)
    compress = mode == MODE_COMPRESS
    if mp == 2:
        return _nm_row(xr, orow, vrow, irow, fac, n, m, kind, tail, compress, xs, fs, 2)
    if mp == 4:
        return _nm_row(xr, orow, vrow, irow, fac, n, m, kind, tail, compress, xs, fs, 4)
    if mp == 8:
        return _nm_row(xr, orow, vrow, irow, fac, n, m, kind, tail, compress, xs, fs, 8)
    if mp == 16:
        return _nm_row(xr, orow, vrow, irow, fac, n, m, kind, tail, compress, xs, fs, 16)
    if mp == 32:
        return _nm_row(xr, orow, vrow, irow, fac, n, m, kind, tail, compress, xs, fs, 32)
    return _nm_row(xr, orow, vrow, irow, fac, n, m, kind, tail, compress, xs, fs, 64)


# --------------------------------------------------------------------------------------------
# Parallel kernels (prange over rows)
# --------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def _rows_kernel(x, out, vals, idxs, fac, n, m, mp, kind, tail, mode):
    """prune (mode 0: ``out``), compress (1: ``vals``/``idxs``) or per-row top-n (2: ``out``).

    Returns per-row kept nonzero counts, exact-zero counts and first NaN/Inf column (-1: none).
    """
    rows, K = x.shape
    kept = np.zeros(rows, np.int64)
    zeros = np.zeros(rows, np.int64)
    badcol = np.full(rows, -1, np.int64)
    V = 64 if mp >= 16 else 16
    nkeys = K if mode == MODE_UNSTRUCTURED else 0
    for r in prange(rows):
        xs = np.empty(V, x.dtype)
        fs = np.empty(V, np.float32)
        keys = np.empty(nkeys, np.uint32)
        cand = np.empty(nkeys, np.int64)
        hist = np.empty(4096 if nkeys else 0, np.int64)
        k, z, b = _row_any(x[r], out[r], vals[r], idxs[r], fac, n, m, mp, kind, tail, mode, xs, fs, keys, hist, cand)
        kept[r] = k
        zeros[r] = z
        badcol[r] = b
    return kept, zeros, badcol


@njit(parallel=True, cache=True)
def _decompress_kernel(vals, idxs, out, n, m, tail):
    """Scatter values back; returns per row the first bad value position (index out of order) or -1."""
    rows, K = out.shape
    G = (K - tail) // m
    badpos = np.full(rows, -1, np.int64)
    for r in prange(rows):
        orow = out[r]
        vrow = vals[r]
        irow = idxs[r]
        for c in range(K):
            orow[c] = 0
        w = 0
        for g in range(G):
            prev = -1
            for t in range(n):
                i = np.int64(irow[w])
                if i <= prev or i >= m:
                    if badpos[r] < 0:
                        badpos[r] = w
                else:
                    orow[g * m + i] = vrow[w]
                    prev = i
                w += 1
        for t in range(tail):
            if np.int64(irow[w]) != t and badpos[r] < 0:
                badpos[r] = w
            orow[G * m + t] = vrow[w]
            w += 1
    return badpos


@njit(parallel=True, cache=True)
def _column_norms_kernel(x, kind, chunk_rows):
    """Column L2 norms over rows, float64 partial sums per fixed chunk of rows, then summed in order."""
    rows, K = x.shape
    nch = (rows + chunk_rows - 1) // chunk_rows
    part = np.zeros((max(nch, 1), K), np.float64)
    badcol = np.full(rows, -1, np.int64)
    expm = _exp_mask(kind)
    for ch in prange(nch):
        p = part[ch]
        r1 = min(rows, (ch + 1) * chunk_rows)
        for r in range(ch * chunk_rows, r1):
            xr = x[r]
            bad = False
            for c in range(K):
                b = xr[c]
                v = np.float64(_magnitude(b, kind))
                p[c] += v * v
                bad |= (np.uint32(b) & expm) == expm
            if bad:
                for c in range(K):
                    if (np.uint32(xr[c]) & expm) == expm:
                        badcol[r] = c
                        break
    total = np.zeros(K, np.float64)
    for ch in range(nch):
        for c in range(K):
            total[c] += part[ch, c]
    res = np.empty(K, np.float32)
    for c in range(K):
        res[c] = np.float32(math.sqrt(total[c]))
    return res, badcol


# --------------------------------------------------------------------------------------------
# Python wrappers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneStats:
    """Counts from the pruning pass itself.

    ``kept_count``: nonzero entries of the output; ``natural_zero_count``: entries of the input
    that were exactly ±0; ``total``: elements. ``out`` is the array written (the new array when
    ``out=None`` was passed); it is excluded from comparisons and repr: use :meth:`detached`
    before keeping stats around so the activation can be freed.
    """

    total: int
    kept_count: int
    natural_zero_count: int
    rows: int
    channels: int
    out: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def density(self) -> float:
        """Measured density: nonzero kept entries / total entries (0.0 for an empty input)."""
        return self.kept_count / self.total if self.total else 0.0

    @property
    def natural_zero_fraction(self) -> float:
        return self.natural_zero_count / self.total if self.total else 0.0

    def detached(self) -> "PruneStats":
        """The same counts without the reference to the output array."""
        return replace(self, out=None)


_DTYPE_ALIASES = {
    "float32": KIND_FP32, "fp32": KIND_FP32, "f32": KIND_FP32,
    "float16": KIND_FP16, "fp16": KIND_FP16, "half": KIND_FP16, "f16": KIND_FP16,
    "bfloat16": KIND_BF16, "bf16": KIND_BF16,
}


def _kind_of(x: np.ndarray, dtype: object, where: str) -> int:
    """Element kind of ``x`` (optionally told by ``dtype``); InputError if they do not fit."""
    dt = x.dtype
    if dtype is not None:
        name = str(getattr(dtype, "name", dtype)).lower().replace("torch.", "")
        if name not in _DTYPE_ALIASES:
            raise InputError(where, "dtype", f"expected 'float32', 'float16' or 'bfloat16', got {dtype!r}")
        kind = _DTYPE_ALIASES[name]
        if kind == KIND_FP32 and dt not in (np.float32, np.uint32, np.int32):
            raise InputError(where, "dtype", f"dtype 'float32' needs a float32 array (or its uint32 bits), got {dt}")
        if kind == KIND_FP16 and dt not in (np.float16, np.uint16, np.int16):
            raise InputError(where, "dtype", f"dtype 'float16' needs a float16 array (or its uint16 bits), got {dt}")
        if kind == KIND_BF16 and not (dt in (np.uint16, np.int16) or dt.name == "bfloat16"):
            raise InputError(where, "dtype", f"dtype 'bfloat16' needs the bits as a uint16/int16 array, got {dt}")
        return kind
    if dt == np.float32:
        return KIND_FP32
    if dt == np.float16:
        return KIND_FP16
    if dt.name == "bfloat16" and dt.itemsize == 2:  # ml_dtypes.bfloat16
        return KIND_BF16
    if dt in (np.uint16, np.int16):
        raise InputError(where, "dtype", f"a {dt} array needs dtype='bfloat16' (or 'float16') to say what its bits are")
    raise InputError(where, "x", f"expected a float32, float16 or bfloat16 (uint16 bits + dtype='bfloat16') array, got {dt}")


def _as_rows(x: object, dtype: object, where: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(x as given, 2-D bit view [rows, K] without copy, kind)."""
    if not isinstance(x, np.ndarray):
        raise InputError(where, "x", f"expected a numpy array (use t.numpy() for a CPU torch tensor), got {type(x).__name__}")
    kind = _kind_of(x, dtype, where)
    if x.ndim == 0:
        raise InputError(where, "x", "expected an array with at least 1 dimension [..., K], got a scalar")
    if not x.flags.c_contiguous:
        raise InputError(where, "x", "expected a C-contiguous array (np.ascontiguousarray / t.contiguous() copies it)")
    bits = x.view(np.uint32 if kind == KIND_FP32 else np.uint16)
    k = x.shape[-1]
    rows = x.size // k if k else int(np.prod(x.shape[:-1]))
    return x, bits.reshape(rows, k), kind


def _check_nm(n: object, m: object, where: str) -> tuple[int, int]:
    if isinstance(n, bool) or isinstance(m, bool) or not isinstance(n, (int, np.integer)) or not isinstance(m, (int, np.integer)):
        raise InputError(where, "pattern", f"expected integers N and M, got {n!r}:{m!r}")
    n, m = int(n), int(m)
    if not 0 < n < m <= MAX_M:
        raise InputError(where, "pattern", f"'{n}:{m}' needs integers 0 < N < M <= {MAX_M} (use 'dense' for N == M)")
    return n, m


def _tail_len(k: int, m: int, tail: str, where: str) -> int:
    if tail not in ("error", "dense"):
        raise InputError(where, "tail", f"expected 'error' or 'dense', got {tail!r}")
    rest = k % m
    if rest and tail == "error":
        raise InputError(where, "K", f"K = {k} channels is not a multiple of M = {m}; pass tail='dense' to leave "
                                     f"the last {rest} channels dense")
    return rest


def _factor(col_factor: object, k: int, where: str) -> np.ndarray:
    if col_factor is None:
        return np.ones(k, np.float32)
    try:
        f = np.ascontiguousarray(col_factor, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(where, "col_factor", f"expected a float array of length K = {k} ({exc})") from None
    if f.shape != (k,):
        raise InputError(where, "col_factor", f"expected shape ({k},) (one factor per channel), got {f.shape}")
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise InputError(where, "col_factor", "expected finite factors >= 0")
    return f


def _check_out(out: object, x: np.ndarray, where: str) -> np.ndarray:
    if out is None:
        return np.empty_like(x)
    if not isinstance(out, np.ndarray):
        raise InputError(where, "out", f"expected a numpy array, got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise InputError(where, "out", f"expected shape {x.shape} and dtype {x.dtype} like x, got {out.shape} {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InputError(where, "out", "expected a writeable C-contiguous array")
    if out is not x and np.may_share_memory(out, x):
        same = out.__array_interface__["data"][0] == x.__array_interface__["data"][0]
        if not same:
            raise InputError(where, "out", "out overlaps x partially; pass out=x for in-place or a separate array")
    return out


def _raise_bad(badcol: np.ndarray, shape: tuple, layer: str) -> None:
    rows = np.flatnonzero(badcol >= 0)
    if rows.size == 0:
        if np.any(badcol == -2):
            raise RuntimeError(f"layer {layer}: N:M selection kept a wrong number of entries (kernel bug)")
        return
    r = int(rows[0])
    c = int(badcol[r])
    at = f"row {r}, column {c}"
    if len(shape) > 2:
        at += f" (index {tuple(int(i) for i in np.unravel_index(r, shape[:-1])) + (c,)})"
    raise InputError(f"layer {layer}", None,
                     f"activation contains NaN/Inf at {at}; N:M pruning needs finite activations "
                     f"(look for an overflow in the layers before, e.g. fp16 range)")


def _stats(kept: np.ndarray, zeros: np.ndarray, rows: int, k: int, out: np.ndarray | None) -> PruneStats:
    return PruneStats(total=rows * k, kept_count=int(kept.sum()), natural_zero_count=int(zeros.sum()),
                      rows=rows, channels=k, out=out)


def _mp(m: int) -> int:
    return 1 << (m - 1).bit_length()


def prune(x: np.ndarray, n: int, m: int, col_factor: np.ndarray | None = None, out: np.ndarray | None = None,
          layer: str = "?", *, dtype: object = None, tail: str = "error") -> PruneStats:
    """Keep the ``n`` highest-scoring entries of every ``m`` consecutive channels, zero the rest.

    ``x``: C-contiguous [..., K] float32 / float16 array, or bfloat16 bits (uint16/int16 +
    ``dtype="bfloat16"``). Score = |x| * ``col_factor`` (float32 [K], >= 0) or |x|; ties go to the
    lower channel index. The result is written to ``out`` (same shape and dtype as ``x``; a new
    array when None; ``out=x`` prunes in place) and is also ``stats.out``. Kept values are copied
    bit for bit; dropped ones become +0. ``tail="dense"`` leaves the last K % m channels unpruned
    (otherwise K % m != 0 is an InputError). NaN/Inf in ``x`` raise InputError naming ``layer``
    (``out`` is then partly written). Returns :class:`PruneStats` counted in the same pass.
    """
    where = f"layer {layer}"
    n, m = _check_nm(n, m, where)
    x, bits, kind = _as_rows(x, dtype, where)
    rows, k = bits.shape
    t = _tail_len(k, m, tail, where)
    f = _factor(col_factor, k, where)
    out = _check_out(out, x, where)
    obits = out.view(bits.dtype).reshape(rows, k)
    empty_v = np.empty((rows, 0), bits.dtype)
    kept, zeros, badcol = _rows_kernel(bits, obits, empty_v, np.empty((rows, 0), np.uint8), f, n, m, _mp(m), kind, t,
                                       MODE_PRUNE)
    _raise_bad(badcol, x.shape if x.ndim > 1 else (1,) + x.shape, layer)
    return _stats(kept, zeros, rows, k, out)


def prune_unstructured(x: np.ndarray, density: float, col_factor: np.ndarray | None = None,
                       out: np.ndarray | None = None, layer: str = "?", *, dtype: object = None) -> PruneStats:
    """Per-row top-k (the unstructured upper bound): keep k = round(K * density) entries of every row.

    Same scores, tie rule, dtypes, ``out`` and errors as :func:`prune`. ``round`` is Python's
    (half to even); k is exactly N/M * K for a matching N:M pattern when K % M == 0.
    """
    where = f"layer {layer}"
    if isinstance(density, bool) or not isinstance(density, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(density) <= 1.0:
        raise InputError(where, "density", f"expected a number in [0, 1], got {density!r}")
    x, bits, kind = _as_rows(x, dtype, where)
    rows, k = bits.shape
    f = _factor(col_factor, k, where)
    out = _check_out(out, x, where)
    obits = out.view(bits.dtype).reshape(rows, k)
    keep_k = int(round(k * float(density)))
    kept, zeros, badcol = _rows_kernel(bits, obits, np.empty((rows, 0), bits.dtype), np.empty((rows, 0), np.uint8),
                                       f, keep_k, 2, 2, kind, 0, MODE_UNSTRUCTURED)
    _raise_bad(badcol, x.shape if x.ndim > 1 else (1,) + x.shape, layer)
    return _stats(kept, zeros, rows, k, out)


def compress(x: np.ndarray, n: int, m: int, col_factor: np.ndarray | None = None, layer: str = "?", *,
             dtype: object = None, tail: str = "error") -> tuple[np.ndarray, np.ndarray, PruneStats]:
    """N:M-compressed form of :func:`prune`'s result.

    Returns ``values`` [..., W] (dtype of ``x``), ``indices`` [..., W] uint8 (position 0..m-1
    inside the group, ascending) and the stats, with W = (K // m) * n + (K % m if
    ``tail="dense"``); the dense tail's indices are 0..K%m-1. ``decompress(values, indices, m,
    K)`` reproduces ``prune``'s output bit for bit.
    """
    where = f"layer {layer}"
    n, m = _check_nm(n, m, where)
    x, bits, kind = _as_rows(x, dtype, where)
    rows, k = bits.shape
    t = _tail_len(k, m, tail, where)
    f = _factor(col_factor, k, where)
    width = (k // m) * n + t
    values = np.empty(x.shape[:-1] + (width,), x.dtype) if x.ndim > 1 else np.empty(width, x.dtype)
    indices = np.empty(values.shape, np.uint8)
    vbits = values.view(bits.dtype).reshape(rows, width)
    kept, zeros, badcol = _rows_kernel(bits, np.empty((rows, 0), bits.dtype), vbits, indices.reshape(rows, width), f,
                                       n, m, _mp(m), kind, t, MODE_COMPRESS)
    _raise_bad(badcol, x.shape if x.ndim > 1 else (1,) + x.shape, layer)
    return values, indices, _stats(kept, zeros, rows, k, None)


def decompress(values: np.ndarray, indices: np.ndarray, m: int, k: int, out: np.ndarray | None = None) -> np.ndarray:
    """Dense [..., k] array from :func:`compress`'s ``values`` and ``indices`` (dtype of ``values``).

    n is inferred from the width W = (k // m) * n + k % m (a K % m tail is always dense).
    Indices must be strictly increasing and < m inside each group.
    """
    where = "decompress"
    if not isinstance(values, np.ndarray) or not isinstance(indices, np.ndarray):
        raise InputError(where, "values", "expected numpy arrays for values and indices")
    if values.shape != indices.shape or indices.dtype != np.uint8 or values.ndim == 0:
        raise InputError(where, "indices", f"expected uint8 indices of the values' shape {values.shape}, "
                                           f"got {indices.dtype} {indices.shape}")
    if not values.flags.c_contiguous or not indices.flags.c_contiguous:
        raise InputError(where, "values", "expected C-contiguous values and indices")
    if values.dtype.itemsize not in (2, 4):
        raise InputError(where, "values", f"expected 2- or 4-byte values, got {values.dtype}")
    if isinstance(m, bool) or not 1 < int(m) <= MAX_M or int(k) < 0:
        raise InputError(where, "m", f"expected 1 < m <= {MAX_M} and k >= 0, got m={m!r}, k={k!r}")
    m, k = int(m), int(k)
    width = values.shape[-1]
    groups, t = divmod(k, m)
    n = (width - t) // groups if groups else 0
    if width != groups * n + t or (groups and not 0 < n < m):
        raise InputError(where, "values", f"width {width} does not fit k = {k}, m = {m} "
                                          f"(expected (k // m) * n + k % m with 0 < n < m)")
    rows = values.size // width if width else int(np.prod(values.shape[:-1]))
    shape = values.shape[:-1] + (k,)
    if out is None:
        out = np.empty(shape, values.dtype)
    elif not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != values.dtype \
            or not out.flags.c_contiguous:
        raise InputError(where, "out", f"expected a C-contiguous {values.dtype} array of shape {shape}")
    ut = np.uint32 if values.dtype.itemsize == 4 else np.uint16
    badpos = _decompress_kernel(values.view(ut).reshape(rows, width), indices.reshape(rows, width),
                                out.view(ut).reshape(rows, k), n, m, t)
    bad_rows = np.flatnonzero(badpos >= 0)
    if bad_rows.size:
        r = int(bad_rows[0])
        raise InputError(where, "indices", f"row {r}, position {int(badpos[r])}: expected in-group indices "
                                           f"strictly increasing and < {m} (the dense tail 0..{t - 1})")
    return out


def column_norms(x: np.ndarray, layer: str = "?", *, dtype: object = None) -> np.ndarray:
    """float32 [K]: L2 norm of every channel over all rows (the ``clact`` factor), one pass.

    Accumulates in float64 over fixed chunks of rows, so the result does not depend on the
    number of threads. NaN/Inf raise InputError naming ``layer``.
    """
    where = f"layer {layer}"
    x, bits, kind = _as_rows(x, dtype, where)
    res, badcol = _column_norms_kernel(bits, kind, _NORM_CHUNK_ROWS)
    _raise_bad(badcol, x.shape if x.ndim > 1 else (1,) + x.shape, layer)
    return res


def warmup() -> None:
    """Compile (or load from the on-disk cache) every kernel for the uint32 and uint16 bit layouts."""
    for dt, kd in ((np.float32, None), (np.float16, None), (np.uint16, "bfloat16")):
        x = np.ones((2, 32), dt)
        prune(x, 1, 2, dtype=kd)
        prune_unstructured(x, 0.5, dtype=kd)
        v, i, _ = compress(x, 1, 2, dtype=kd)
        decompress(v, i, 2, 32)
        column_norms(x, dtype=kd)
