"""What runs where, read from the trace's explicit fields: producer groups, fused attention, baselines.

docs/model.md §1, §4, §5. Nothing here depends on the hardware, and nothing reads meaning from role
strings or op order:
- a **producer group** is an op and the ops whose ``producer`` it is; a fused sparsifier runs inside a
  vector producer for its pruned linear consumers (:func:`producer_groups`); a consumer that reads the dense
  output from DRAM forces the producer to write it, one fed on chip (a static median shift inside the
  producer's pass, a learnable correction in a GEMM's epilogue) does not;
- **fusion of attention**: an op's ``input_from`` / ``output_to`` say whether its input and output stay
  on chip (:func:`reads_dram_input`, :func:`writes_dram_output`);
- the **dense twin** of a run drops the work that exists only because the run is sparse
  (``sparse_overhead``) and makes every op dense (:func:`dense_twin_ops`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from amber_sim.trace import Op, Run, Trace


@dataclass(frozen=True)
class ProducerGroup:
    """An op (by index in its run) and its consumers: the pruned linears whose selection it may fuse, and
    whether any consumer reads its dense output."""

    producer: int
    sparse_consumers: tuple[int, ...]
    dense_consumers: bool


def producer_groups(ops: tuple[Op, ...]) -> dict[int, ProducerGroup]:
    """Producer index → its group, for every op that some other op names as ``producer``."""
    sparse: dict[int, list[int]] = {}
    dense: dict[int, bool] = {}
    for position, (op, source) in enumerate(zip(ops, producer_index(ops))):
        if source is None:
            continue
        if op.kind == "linear" and op.is_sparse:
            sparse.setdefault(source, []).append(position)
        elif reads_dram_input(op):  # a consumer fed on chip runs in the producer's pass: no dense copy in DRAM
            dense[source] = True
        else:
            dense.setdefault(source, False)
    return {source: ProducerGroup(source, tuple(sparse.get(source, ())), dense.get(source, False))
            for source in sorted(set(sparse) | set(dense))}


def producer_index(ops: tuple[Op, ...]) -> list[int | None]:
    """For each op, the index of its producer in the run (None when it has none)."""
    index = {op.name: position for position, op in enumerate(ops)}
    return [index.get(op.producer) if op.producer is not None else None for op in ops]


def reads_dram_input(op: Op) -> bool:
    return op.input_from == "dram"


def writes_dram_output(op: Op) -> bool:
    return op.output_to == "dram"


def densified(op: Op) -> Op:
    """The op with its activation dense."""
    if not op.is_gemm or not op.is_sparse:
        return op
    return dataclasses.replace(op, pattern="dense", sparse_operand=None, density=1.0)


def dense_twin_ops(ops: tuple[Op, ...]) -> tuple[Op, ...]:
    """The run as it would be dense: sparse-only work (mitigation) dropped, every activation dense."""
    return tuple(densified(op) for op in ops if not op.sparse_overhead)


def baseline_run(trace: Trace, run: Run) -> Run | None:
    """The trace's dense run of the same precision: the baseline of ``run``'s speedups (None if it has none).
    A dense run is its own baseline, even when the trace holds several of that precision."""
    if run.pattern == "dense":
        return run
    for candidate in trace.runs:
        if candidate.pattern == "dense" and candidate.precision == run.precision:
            return candidate
    return None
