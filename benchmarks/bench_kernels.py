"""Speed of the N:M pruning kernels against a plain copy and against the natural torch code.

X = 2048 x 14336 float32 (a LLaMA-3-8B down_proj input at 2048 tokens), random normal.
Targets: prune <= 3x np.copyto into a preallocated array; >= 20x faster than torch.topk per
group + scatter. Prints one line per measurement; ``--strict`` exits 1 when a target is missed.

    .venv/bin/python benchmarks/bench_kernels.py [--reps 5] [--rows 2048] [--strict]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from amber_sim.pruning import kernels as K
from amber_sim.pruning.criteria import amber_factors

COPY_TARGET = 3.0
TORCH_TARGET = 20.0


def best_of(fn, reps: int) -> float:
    fn()  # warm (compilation / page faults) outside the timing
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def check_against_torch(ref: np.ndarray, got: np.ndarray, x: np.ndarray, factor: np.ndarray, n: int, m: int) -> None:
    """Equal, except in groups where torch.topk broke an exact score tie differently (unspecified
    order in torch; the kernels keep the lower channel index)."""
    rows = x.shape[0]
    differ = (ref != got).reshape(rows, -1, m).any(axis=-1)
    if not differ.any():
        return
    r, g = np.nonzero(differ)
    scores = (np.abs(x) * factor).reshape(rows, -1, m)[r, g]
    srt = -np.sort(-scores, axis=-1)
    if not np.all(srt[:, n - 1] == srt[:, n]):
        raise AssertionError("kernel and torch reference disagree outside of score ties")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--k", type=int, default=14336)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--torch-reps", type=int, default=3)
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()

    import numba

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.k), dtype=np.float32)
    w = rng.standard_normal((512, args.k), dtype=np.float32) * rng.uniform(0.5, 2.0, args.k).astype(np.float32)
    factor = amber_factors(w)  # offline, once per layer: not timed
    out = np.empty_like(x)
    K.warmup()

    try:
        import torch
    except ImportError:
        torch = None

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"X {args.rows} x {args.k} float32 ({x.nbytes / 2**20:.0f} MiB); best of {args.reps}; "
          f"numba threads {numba.get_num_threads()}, torch threads {torch.get_num_threads() if torch else '-'}, "
          f"cpus {os.cpu_count()}, load average {load:.2f}")
    t_copy = best_of(lambda: np.copyto(out, x), args.reps)
    print(f"np.copyto                          {t_copy * 1e3:8.1f} ms  ({2 * x.nbytes / t_copy / 1e9:.1f} GB/s read+write)")

    missed = []

    def torch_prune(xt, ft, n, m):
        s = (xt.abs() * ft).view(xt.shape[0], -1, m)
        idx = s.topk(n, dim=-1).indices
        mask = torch.zeros_like(s).scatter_(-1, idx, 1.0)
        return xt * mask.view_as(xt)

    def torch_compress(xt, ft, n, m):
        s = (xt.abs() * ft).view(xt.shape[0], -1, m)
        idx = s.topk(n, dim=-1).indices.sort(dim=-1).values
        return xt.view(xt.shape[0], -1, m).gather(-1, idx), idx.to(torch.uint8)

    xt = torch.from_numpy(x) if torch else None
    ft = torch.from_numpy(factor) if torch else None
    for n, m in [(8, 16), (2, 4)]:
        t = best_of(lambda: K.prune(x, n, m, factor, out=out), args.reps)
        ratio = t / t_copy
        ok = ratio <= COPY_TARGET
        missed += [] if ok else [f"prune {n}:{m} vs copy"]
        print(f"prune {n}:{m} amber (out=)            {t * 1e3:8.1f} ms  {ratio:5.2f}x copy   "
              f"(target <= {COPY_TARGET:.0f}x: {'ok' if ok else 'MISSED'})")
        if torch:
            check_against_torch(torch_prune(xt, ft, n, m).numpy(), out, x, factor, n, m)
            tt = best_of(lambda: torch_prune(xt, ft, n, m), args.torch_reps)
            ok = tt / t >= TORCH_TARGET
            missed += [] if ok else [f"prune {n}:{m} vs torch"]
            print(f"  torch topk+scatter {n}:{m}            {tt * 1e3:8.1f} ms  kernel {tt / t:5.1f}x faster "
                  f"(target >= {TORCH_TARGET:.0f}x: {'ok' if ok else 'MISSED'})")

    for n, m in [(8, 16), (2, 4)]:
        t = best_of(lambda: K.compress(x, n, m, factor), args.reps)
        print(f"compress {n}:{m} amber (new arrays)   {t * 1e3:8.1f} ms  {t / t_copy:5.2f}x copy")
        if torch:
            values, indices, _ = K.compress(x, n, m, factor)
            tv, ti = torch_compress(xt, ft, n, m)
            dense_ref = torch.zeros(x.shape[0], args.k // m, m).scatter_(-1, ti.long(), tv).view(x.shape).numpy()
            check_against_torch(dense_ref, K.decompress(values, indices, m, args.k), x, factor, n, m)
            tt = best_of(lambda: torch_compress(xt, ft, n, m), args.torch_reps)
            print(f"  torch topk+sort+gather {n}:{m}        {tt * 1e3:8.1f} ms  kernel {tt / t:5.1f}x faster")

    # half precision (bit-pattern kernels): against a copy of the same 2-byte data
    xh = x.astype(np.float16)
    oh = np.empty_like(xh)
    xb = (x.view(np.uint32) >> 16).astype(np.uint16)
    ob = np.empty_like(xb)
    t_copy16 = best_of(lambda: np.copyto(oh, xh), args.reps)
    print(f"np.copyto (2-byte data)            {t_copy16 * 1e3:8.1f} ms")
    t = best_of(lambda: K.prune(xh, 8, 16, factor, out=oh), args.reps)
    print(f"prune 8:16 amber float16          {t * 1e3:8.1f} ms  {t / t_copy16:5.2f}x copy (2-byte)")
    t = best_of(lambda: K.prune(xb, 8, 16, factor, out=ob, dtype="bfloat16"), args.reps)
    print(f"prune 8:16 amber bfloat16         {t * 1e3:8.1f} ms  {t / t_copy16:5.2f}x copy (2-byte)")
    t = best_of(lambda: K.prune_unstructured(x, 0.5, factor, out=out), max(1, args.reps // 2))
    print(f"prune unstructured 50% amber      {t * 1e3:8.1f} ms  {t / t_copy:5.2f}x copy")
    t = best_of(lambda: K.column_norms(x), args.reps)
    print(f"column_norms (clact factor)       {t * 1e3:8.1f} ms  {t / t_copy:5.2f}x copy")

    if missed:
        print("targets missed: " + ", ".join(missed) + " (the machine may be shared: check the load average)")
        return 1 if args.strict else 0
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
