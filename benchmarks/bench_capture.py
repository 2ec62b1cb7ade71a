"""Capture targets (issue #5), measured in one run and printed as ratios:

1. overhead: a capturing Amber-pruned prefill of SmolLM2-135M at 2,048 tokens (8:16, amber, amber-paper:
   pruning hooks + shape hooks + progress hooks) against the plain dense prefill of the same tokens;
   target at most 1.3x. The two are interleaved, `--repeats` times each, and medians compared.
2. memory and time: `amber-sim capture --model llama-3.1-8b --init random --seq-len 2048` (fp16 and w8a8,
   six patterns) in a child process; targets: peak resident memory below 6 GB, wall time below 10 minutes.
   Skip it with --skip-llama (it takes several minutes).

    .venv/bin/python benchmarks/bench_capture.py [--repeats 3] [--skip-llama]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OVERHEAD_TARGET = 1.3
MEMORY_TARGET_GB = 6.0
TIME_TARGET_S = 600.0


def measure_overhead(repeats: int) -> tuple[float, float]:
    import torch

    from amber_sim.capture.pretrained import decoder_layers, hooked_linears, prefill_run
    from amber_sim.models.corpus import load_split, token_windows
    from amber_sim.models.loading import load_model
    from amber_sim.pruning.apply import AmberConfig

    loaded = load_model("smollm2-135m")
    model = loaded.model
    ids = torch.as_tensor(token_windows(load_split("evaluation", loaded.tokenizer), 2048, 1))
    linears, layers = hooked_linears(model), decoder_layers(model)
    config = AmberConfig(pattern="8:16", criterion="amber", policy="amber-paper", model_name=loaded.name)

    def dense() -> None:
        with torch.no_grad():
            model(input_ids=ids)

    def capturing() -> None:  # what `amber-sim capture` runs for one run, progress ticks included
        prefill_run(model, ids, config, linears, layers, lambda: None)

    dense_s, capture_s = [], []
    dense(), capturing()  # warm-up: Numba compilation, allocator
    for _ in range(repeats):
        for runner, times in ((dense, dense_s), (capturing, capture_s)):
            started = time.perf_counter()
            runner()
            times.append(time.perf_counter() - started)
    return statistics.median(dense_s), statistics.median(capture_s)


def measure_llama_capture() -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "llama.json"
        command = [str(Path(sys.executable).parent / "amber-sim"), "capture", "--model", "llama-3.1-8b",
                   "--init", "random", "--seq-len", "2048", "--precision", "fp16,w8a8", "--out", str(out)]
        started = time.perf_counter()
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "COLUMNS": "120"})
        wall_s = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"capture failed ({result.returncode}): {result.stderr.strip()[-500:]}")
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
        return wall_s, peak_kib * 1024 / 1e9, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-llama", action="store_true")
    args = parser.parse_args()
    dense_s, capture_s = measure_overhead(args.repeats)
    ratio = capture_s / dense_s
    print(f"SmolLM2-135M prefill, 2048 tokens: dense {dense_s:.2f} s, capturing 8:16 amber {capture_s:.2f} s "
          f"(medians of {args.repeats})")
    print(f"  capture overhead: {ratio:.2f}x the dense prefill (target <= {OVERHEAD_TARGET}x): "
          f"{'met' if ratio <= OVERHEAD_TARGET else 'NOT met'}")
    if args.skip_llama:
        return
    wall_s, peak_gb, size_bytes = measure_llama_capture()
    print(f"LLaMA-3.1-8B random-init capture, 2048 tokens, 12 runs: {wall_s:.0f} s, peak RSS {peak_gb:.2f} GB, "
          f"trace {size_bytes / 2**20:.2f} MiB")
    print(f"  time: {wall_s / TIME_TARGET_S:.2f}x the 10-minute target: {'met' if wall_s <= TIME_TARGET_S else 'NOT met'}")
    print(f"  memory: {peak_gb / MEMORY_TARGET_GB:.2f}x the 6 GB target: "
          f"{'met' if peak_gb < MEMORY_TARGET_GB else 'NOT met'}")


if __name__ == "__main__":
    main()
