"""Tensor-parallel prefill: one chip's share of a captured trace, with the collectives it adds (docs/model.md §8).

Megatron-style tensor parallelism over ``tp`` chips, a simulation choice on a captured trace (no trace change):
- column-parallel linears (q, k, v, gate, up, and the LM head over its vocabulary): each chip computes N/tp of
  the output features from the whole activation;
- row-parallel linears (o, down): each chip reduces over K/tp of the input features (its share of the
  activation, already sharded by the column-parallel linear before it) and an **all-reduce** of the M×N fp16
  output follows; a pruned row-parallel linear keeps its N:M groups only if K/tp is a multiple of M;
- attention: heads (and KV heads) are split over the chips; rope, softmax and SiLU·mul work on the chip's
  heads or features (elements and bytes / tp); norms, residual adds and the embedding are replicated;
- mitigation work follows its linear: work on the activation of a column-parallel linear (replicated) or on
  the output of a row-parallel one (before its all-reduce) is whole, the rest is split;
- sequence parallelism (``sp``): a reduce-scatter replaces each all-reduce, an all-gather of the activation
  precedes each group of column-parallel linears reading one producer, and norms, residual adds and the
  embedding work on 1/tp of the tokens. The activation can cross the links in its compressed N:M form
  (``compressed_allgather``) when every linear of the group is pruned alike, which no single dense reader
  allows (under the paper's policy k, v and up stay dense). The selection is still charged on the gathered
  activation (an upper bound: under SP it runs on the chip's shard before the gather).

These are the only rules in ``sim`` that read op roles: which linear is column- or row-parallel is a property of
the model's layers, which the documented roles name (docs/trace-format.md). A collective op is
``kind="collective"``, ``role`` the collective, ``bytes_in`` the buffer it moves and ``batch`` the chips taking
part; the engine prices it with :func:`amber_sim.sim.collectives.collective_cost`.
"""

from __future__ import annotations

import dataclasses

from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern
from amber_sim.trace import Op, Trace

COLUMN_PARALLEL = ("q", "k", "v", "gate", "up", "lm_head")
ROW_PARALLEL = ("o", "down")
HEAD_SPLIT = ("attn_score", "attn_value")
SPLIT_VECTOR = ("rope", "attn_softmax", "silu_mul", "qk_norm")
REPLICATED = ("embedding", "rmsnorm", "residual")
OUTPUT_BYTES = 2  # every op writes fp16: the all-reduced outputs are fp16


def _divide(value: int, tp: int, what: str, op: Op) -> int:
    if value % tp:
        raise InputError(op.name, what, f"{value} does not split over {tp} chips; choose a --tp that divides it")
    return value // tp


def _split_vector(op: Op, tp: int) -> Op:
    return dataclasses.replace(op, elements=op.elements // tp, bytes_in=op.bytes_in // tp, bytes_out=op.bytes_out // tp)


def _row_parallel(op: Op, tp: int) -> Op:
    k = _divide(op.K, tp, "K", op)
    pattern = parse_pattern(op.pattern)
    if op.is_sparse and pattern.kind == "nm" and k % pattern.m:
        raise InputError(op.name, "K", f"its {op.pattern} groups need K per chip ({op.K}/{tp} = {k}) to be a "
                         f"multiple of {pattern.m}; choose another --tp")
    return dataclasses.replace(op, K=k)


def collective_op(name: str, layer: int, collective: str, message_bytes: int, chips: int) -> Op:
    """A collective between ``chips`` chips moving a buffer of ``message_bytes``."""
    return Op(name=name, layer=layer, role=collective, kind="collective", bytes_in=int(message_bytes), batch=chips)


def _mitigation(op: Op, linear: Op, tp: int) -> Op:
    on_output = op.elements == linear.M * linear.N and op.elements != linear.M * linear.K
    whole = (linear.role in COLUMN_PARALLEL) != on_output  # activation of column-parallel, output of row-parallel
    return op if whole else _split_vector(op, tp)


def gather_bytes(consumers: list[Op], compressed: bool, metadata: str) -> int:
    """What the all-gather before ``consumers`` (the column-parallel linears reading one producer) moves: their
    activation dense, or, with ``compressed`` and every consumer pruned alike, in its compressed N:M form
    (values and metadata, sim.sparse.stored_activation_bytes): one dense consumer needs the dense form."""
    from amber_sim.sim.sparse import stored_activation_bytes

    first = consumers[0]
    elements = first.M * first.K * first.batch
    alike = all(op.is_sparse and (op.pattern, op.density) == (first.pattern, first.density) for op in consumers)
    if compressed and alike:
        return int(stored_activation_bytes(elements, first.density, first.dtype_bytes, parse_pattern(first.pattern),
                                           metadata))
    return int(elements * first.dtype_bytes)


def shard_ops(ops: tuple[Op, ...], tp: int, sp: bool = False, compressed_allgather: bool = False,
              metadata: str = "index") -> tuple[Op, ...]:
    """One chip's ops of a ``tp``-way tensor-parallel prefill, with an all-reduce after every row-parallel linear;
    with ``sp`` (sequence parallelism) a reduce-scatter there instead, an all-gather of each column-parallel
    group's input before it (compressed when ``compressed_allgather`` and every reader is pruned alike), and the
    norms, residual adds and embedding on the chip's 1/tp of the tokens. ``tp`` = 1 returns the ops unchanged."""
    if tp == 1:
        return ops
    linears = {op.name: op for op in ops if op.kind == "linear"}
    readers: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind == "linear" and op.role in COLUMN_PARALLEL and op.producer is not None:
            readers.setdefault(op.producer, []).append(op)
    gathered: set[str] = set()
    out = []
    for op in ops:
        if sp and op.kind == "linear" and op.role in COLUMN_PARALLEL and op.producer is not None \
                and op.producer not in gathered:
            gathered.add(op.producer)
            out.append(collective_op(f"{op.producer}.all_gather", op.layer, "all_gather",
                                     gather_bytes(readers[op.producer], compressed_allgather, metadata), tp))
        if op.kind == "linear" and op.role in COLUMN_PARALLEL:
            out.append(dataclasses.replace(op, N=_divide(op.N, tp, "N", op)))
        elif op.kind == "linear" and op.role in ROW_PARALLEL:
            out.append(_row_parallel(op, tp))
            collective = "reduce_scatter" if sp else "all_reduce"
            out.append(collective_op(f"{op.name}.{collective}", op.layer, collective,
                                     op.M * op.N * op.batch * OUTPUT_BYTES, tp))
        elif op.role in HEAD_SPLIT:
            batch = _divide(op.batch, tp, "heads", op)
            b_batch = _divide(op.operand_b_batch or op.batch, tp, "KV heads", op)
            out.append(dataclasses.replace(op, batch=batch, operand_b_batch=b_batch))
        elif op.role in SPLIT_VECTOR:
            out.append(_split_vector(op, tp))
        elif op.role == "mitigation":
            out.append(_mitigation(op, linears[op.name.removesuffix(".mitigation")], tp))
        elif op.role in REPLICATED:
            out.append(_split_vector(op, tp) if sp else op)
        else:
            raise InputError(op.name, "role", f"{op.role!r} has no tensor-parallel rule (docs/model.md §8)")
    return tuple(out)


def shard_trace(trace: Trace, tp: int, sp: bool = False, compressed_allgather: bool = False,
                metadata: str = "index") -> Trace:
    """The trace as one chip of a ``tp``-way tensor-parallel system runs it (every run, baselines included);
    ``sp``, ``compressed_allgather`` and ``metadata`` (the hardware's metadata format) as :func:`shard_ops`."""
    if tp == 1:
        return trace
    runs = tuple(dataclasses.replace(run, ops=shard_ops(run.ops, tp, sp, compressed_allgather, metadata))
                 for run in trace.runs)
    return dataclasses.replace(trace, runs=runs)


def check_tp(tp: int, system, hw_name: str) -> None:
    """``tp`` must be at least 1 and fit the config's system."""
    if tp < 1:
        raise InputError("--tp", None, f"expected a number of chips >= 1, got {tp}")
    if tp > 1 and system is None:
        raise InputError("--tp", None, f"{hw_name} describes a single chip; tensor parallelism needs its system "
                         "section (chips, links: docs/hardware-config.md)")
    if system is not None and tp > system.chips:
        raise InputError("--tp", None, f"{hw_name}'s system has {system.chips} chips, fewer than --tp {tp}")


__all__ = ["COLUMN_PARALLEL", "ROW_PARALLEL", "check_tp", "collective_op", "gather_bytes", "shard_ops", "shard_trace"]
