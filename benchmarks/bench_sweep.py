"""Sweep speed: 1,000 hardware points × traces/llama.json (all its runs), target under 60 s; and a worst case.

Axes (10 × 5 × 4 × 5 = 1,000 points on ascend_like): DRAM bandwidth, L1 size, the native pattern set
and the sparsifier's throughput. Every point simulates all 12 runs of the trace. Prints the wall time
and points per second; a second line repeats the sweep on the finished table (the resume path: nothing
recomputed). The worst case then sweeps DRAM bandwidth alone over 200 values, so every point changes
every GEMM's timing and nothing is reused between points (target: at least 50 points/s). Last, the
multi-chip target: tp ∈ {1, 2, 4, 8} on traces/llama-3.1-70b.json (6 patterns × 2 precisions = 12 runs) on
ascend_like's 8-chip system, from loading the trace to the finished table with the simulator's caches
cleared (target under 30 s).
Run: .venv/bin/python benchmarks/bench_sweep.py [--workers N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR, TRACE_DIR
from amber_sim.study.axes import parse_axes
from amber_sim.study.store import DB_NAME
from amber_sim.study.sweep import default_workers, prepare_job, run_sweep
from amber_sim.trace import load_trace

TARGET_SECONDS = 60.0
TP_TARGET_SECONDS = 30.0
TP_AXES = ["tp=1,2,4,8"]
WORST_CASE_TARGET_POINTS_S = 50.0
WORST_CASE_AXES = ["memory.dram.bandwidth_gb_s=400:3200:x1.0105"]  # 200 distinct bandwidths
AXES = [
    "memory.dram.bandwidth_gb_s=400,600,800,1000,1200,1600,2000,2400,2800,3200",
    "memory.l1.size_kb=128:2048:x2",
    "sparsity.patterns=[2:4],[2:4,4:8],[2:4,4:8,8:16],[2:4,4:8,8:16,16:32]",
    "sparsity.sparsifier.elements_per_cycle=64:1024:x2",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    trace = load_trace(TRACE_DIR / "llama.json")
    base = load_hardware(HW_CONFIG_DIR / "ascend_like.yaml")
    start = time.perf_counter()
    job = prepare_job(base, trace, parse_axes(AXES), (), 10_000)
    prepare_s = time.perf_counter() - start
    points = len(job.keys)
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / DB_NAME
        start = time.perf_counter()
        outcome = run_sweep(job, db, workers=args.workers)
        sweep_s = time.perf_counter() - start
        start = time.perf_counter()
        again = run_sweep(job, db, workers=args.workers)
        resume_s = time.perf_counter() - start
    total_s = prepare_s + sweep_s
    print(f"{points} hardware points x llama.json ({len(trace.runs)} runs) on {args.workers} worker(s): "
          f"prepare {prepare_s:.1f} s + sweep {sweep_s:.1f} s = {total_s:.1f} s, "
          f"{outcome.computed / sweep_s:.1f} points/s (target {TARGET_SECONDS:.0f} s: "
          f"{'met' if total_s < TARGET_SECONDS else 'NOT met'})")
    print(f"rerun on the finished table: {again.reused} reused, {again.computed} computed in {resume_s:.1f} s")
    worst = prepare_job(base, trace, parse_axes(WORST_CASE_AXES), (), 10_000)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        outcome = run_sweep(worst, Path(scratch) / DB_NAME, workers=args.workers)
        worst_s = time.perf_counter() - start
    rate = outcome.computed / worst_s
    print(f"worst case, every point changes every GEMM ({len(worst.keys)} DRAM bandwidths): {worst_s:.1f} s, "
          f"{rate:.1f} points/s (target {WORST_CASE_TARGET_POINTS_S:.0f}: "
          f"{'met' if rate >= WORST_CASE_TARGET_POINTS_S else 'NOT met'})")

    tp_sweep(base, args.workers)


def tp_sweep(base, workers: int) -> None:
    from amber_sim.sim.engine import clear_caches

    clear_caches()
    start = time.perf_counter()
    trace = load_trace(TRACE_DIR / "llama-3.1-70b.json")
    job = prepare_job(base, trace, parse_axes(TP_AXES), (), 10_000)
    with tempfile.TemporaryDirectory() as scratch:
        run_sweep(job, Path(scratch) / DB_NAME, workers=workers)
    total_s = time.perf_counter() - start
    print(f"tp 1,2,4,8 x llama-3.1-70b.json ({len(trace.runs)} runs, {len(trace.runs[0].ops)} ops each) on "
          f"{workers} worker(s), load to table: {total_s:.1f} s (target {TP_TARGET_SECONDS:.0f} s: "
          f"{'met' if total_s < TP_TARGET_SECONDS else 'NOT met'})")


if __name__ == "__main__":
    main()
