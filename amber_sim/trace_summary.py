"""What a trace says before any hardware is involved: op counts, FLOPs, sparsified share, activation bytes.

Definitions (docs/metrics.md):
- GEMM FLOPs: 2·M·K·N·batch summed over linear and attention ops (causal attention counted in full).
- sparsified linear FLOP share: FLOPs of linear ops with a sparse activation / FLOPs of all linear ops.
- linear activation bytes, dense: M·K·dtype_bytes summed over all linear ops.
- linear activation bytes, compressed: the same, with every sparse op's activation replaced by its
  compressed size (values M·K·density·b plus index metadata, ceil(log2 M) bits per kept value; a
  bitmask, 1 bit per element, for unstructured ops).
- activation bytes saved if compressed: 1 − compressed / dense. A property of the masks alone, not the
  main job's "act. DRAM traffic saved" (simulated DRAM traffic, sparsifier traffic included).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from amber_sim.patterns import parse_pattern
from amber_sim.sim.sparse import stored_activation_bytes
from amber_sim.trace import Op, Run


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    pattern: str
    precision: str
    op_counts: dict[str, int]
    gemm_flops: int
    linear_flops: int
    sparsified_linear_flops: int
    linear_activation_bytes_dense: float
    linear_activation_bytes_compressed: float

    @property
    def sparsified_linear_flop_share(self) -> float:
        return self.sparsified_linear_flops / self.linear_flops if self.linear_flops else 0.0

    @property
    def activation_bytes_saved_if_compressed(self) -> float:
        if not self.linear_activation_bytes_dense:
            return 0.0
        return 1.0 - self.linear_activation_bytes_compressed / self.linear_activation_bytes_dense


def compressed_op_activation_bytes(op: Op, metadata: str = "index") -> float:
    """Activation bytes of one linear op as it would travel compressed in its own pattern's format (dense ops:
    M·K·b); the simulator's formula (sim.sparse.stored_activation_bytes)."""
    return stored_activation_bytes(float(op.M) * op.K * op.batch, op.density, op.dtype_bytes, parse_pattern(op.pattern),
                                   metadata)


def summarize_run(run: Run) -> RunSummary:
    linear_ops = [op for op in run.ops if op.kind == "linear"]
    return RunSummary(
        run_id=run.id,
        pattern=run.pattern,
        precision=run.precision,
        op_counts=dict(Counter(op.kind for op in run.ops)),
        gemm_flops=sum(op.flops for op in run.ops),
        linear_flops=sum(op.flops for op in linear_ops),
        sparsified_linear_flops=sum(op.flops for op in linear_ops if op.is_sparse),
        linear_activation_bytes_dense=float(sum(op.M * op.K * op.batch * op.dtype_bytes for op in linear_ops)),
        linear_activation_bytes_compressed=sum(compressed_op_activation_bytes(op) for op in linear_ops),
    )
