"""Simulation speed: all runs of traces/llama.json on each bundled hardware config, at 2,048 and 131,072 tokens.

Prints, per config: the first call (Numba kernels loaded from the on-disk cache, mapping searches done),
a cold repeat with the in-process caches cleared (what one new hardware point in a sweep costs), the same
trace rescaled to 131,072 tokens (LLaMA-3.1-8B's maximum context; `study.rescale`), cold, and the
131k / 2k ratio. The long-prompt target is "about what 2,048 tokens cost": the ratio should stay a small
single-digit number (it was 19x on vegeta_like, 40 s vs 2.1 s, before the block-level closed form).
Run: .venv/bin/python benchmarks/bench_sim.py
"""

from __future__ import annotations

import time

from amber_sim.hw.config import load_hardware
from amber_sim.paths import TRACE_DIR, bundled_hw_configs
from amber_sim.sim import engine
from amber_sim.study.rescale import rescale_trace
from amber_sim.trace import load_trace

LONG_TOKENS = 131_072


def cold_seconds(hw, trace) -> float:
    engine.clear_caches()
    start = time.perf_counter()
    engine.simulate_trace(hw, trace)
    return time.perf_counter() - start


def main() -> None:
    trace = load_trace(TRACE_DIR / "llama.json")
    long_trace = rescale_trace(trace, LONG_TOKENS)
    ops = sum(len(run.ops) for run in trace.runs)
    print(f"trace llama.json: {len(trace.runs)} runs, {ops} ops; long: the same rescaled to {LONG_TOKENS} tokens")
    print(f"{'config':14s} {'first s':>8s} {'cold 2k s':>10s} {'cold 131k s':>12s} {'131k / 2k':>10s}")
    for path in bundled_hw_configs():
        hw = load_hardware(path)
        first = cold_seconds(hw, trace)
        short = cold_seconds(hw, trace)
        long = cold_seconds(hw, long_trace)
        print(f"{hw.name:14s} {first:8.2f} {short:10.2f} {long:12.2f} {long / short:10.1f}")


if __name__ == "__main__":
    main()
