"""Simulation speed: all runs of traces/llama.json on each bundled hardware config.

Prints, per config, the first call (Numba kernels loaded from the on-disk cache, mapping searches
done) and a cold repeat with the in-process caches cleared (what one new hardware point in a sweep
costs), and the ratio to the issue-4 target of one second. Run: .venv/bin/python benchmarks/bench_sim.py
"""

from __future__ import annotations

import time

from amber_sim.hw.config import load_hardware
from amber_sim.paths import TRACE_DIR, bundled_hw_configs
from amber_sim.sim import engine
from amber_sim.trace import load_trace

TARGET_SECONDS = 1.0


def clear_caches() -> None:
    engine.clear_caches()


def main() -> None:
    trace = load_trace(TRACE_DIR / "llama.json")
    ops = sum(len(run.ops) for run in trace.runs)
    print(f"trace llama.json: {len(trace.runs)} runs, {ops} ops")
    print(f"{'config':14s} {'first s':>8s} {'cold s':>8s} {'cold / 1 s target':>18s}")
    for path in bundled_hw_configs():
        hw = load_hardware(path)
        clear_caches()
        start = time.perf_counter()
        engine.simulate_trace(hw, trace)
        first = time.perf_counter() - start
        clear_caches()
        start = time.perf_counter()
        engine.simulate_trace(hw, trace)
        cold = time.perf_counter() - start
        print(f"{hw.name:14s} {first:8.2f} {cold:8.2f} {cold / TARGET_SECONDS:18.2f}")


if __name__ == "__main__":
    main()
