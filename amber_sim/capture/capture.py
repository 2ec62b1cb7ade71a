"""Capture: an ``amber-trace/2`` file from a real Amber-pruned prefill (docs/capture.md).

Two ways, one trace format:

- **pretrained** (``smollm2-135m``, a .gguf file, a local HF directory of a LLaMA, Mistral, Qwen2 or
  Qwen3 model; ``tokenizer`` names a tokenizer directory when the model's has none): for every run (pattern ×
  precision) the whole model runs the prefill once with Amber Pruner applied through ``apply_amber``
  (Numba kernels, real masks). The pruning hooks count, in that same forward, the kept values and
  natural zeros of every pruned activation; shape hooks record the GEMM every linear ran; the forward's
  logits give perplexity and top-1 agreement with the dense fp16 run on the same tokens.
- **random-init** (a bundled architecture such as ``llama-3.1-8b`` with ``--init random``): weights that
  are not here are drawn at random and the model is built and run one decoder layer at a time
  (``random_init.py``), so memory stays near one layer. Accuracy is null: it is never invented.

The op list itself follows the model config (``prefill_ops``); every linear op is checked against the
shapes the hooks saw, and its density and natural zeros are the measured ones. The model runs in fp32
on the CPU; ops are recorded with the operand width the accelerator is assumed to use (fp16: 2 bytes;
w8a8 linears: int8, 1 byte). The LM head is recorded for the last token only (serving prefill), while
accuracy uses every position of the window.
"""

from __future__ import annotations

from amber_sim.capture.spec import (INITS, PRECISIONS, CaptureSpec, Progress, RunSpec, build_run,  # noqa: F401
                                    check_spec, run_specs)
from amber_sim.trace import Trace

__all__ = ["INITS", "PRECISIONS", "CaptureSpec", "Progress", "RunSpec", "build_run", "capture_trace", "check_spec",
           "run_specs"]


def capture_trace(spec: CaptureSpec, progress: Progress | None = None) -> Trace:
    """Run the captures the spec asks for and return the trace (the caller saves it atomically)."""
    check_spec(spec)
    runs = run_specs(spec)
    if spec.init == "random":
        from amber_sim.capture.random_init import capture_random_init

        return capture_random_init(spec, runs, progress)
    from amber_sim.capture.pretrained import capture_pretrained

    return capture_pretrained(spec, runs, progress)
