"""Rescale a trace to another sequence length (docs/studies.md §Sequence length).

The rule, with T the trace's tokens and T' = seq_len × batch the new ones (r = T'/T):

- linear ops: M scales with tokens when M = T (every token's row); an M ≠ T (the LM head on the last
  token) is kept. K and N are weight shapes and stay.
- attention: scores [T, d] × [d, T] → M and N become T'; context [T, T] × [T, d] → M and K become T'.
- vector ops: elements and bytes scale by r (per-token work), the softmax over the T×T scores by r²;
  ops whose work does not come from the token dimension (none in captured traces) are kept.
- densities, patterns and the natural-zero fraction are kept: the masks measured at T are assumed to
  hold at T'. Accuracy metrics were measured at T and are kept as they are.

The rescaled trace records it: ``capture.rescaled_from_seq_len`` holds T's sequence length and
``capture.notes`` says so.
"""

from __future__ import annotations

import dataclasses

from amber_sim.errors import InputError
from amber_sim.trace import Op, Trace

QUADRATIC_VECTOR_ROLES = frozenset({"attn_softmax"})


def _scaled(value: int, numerator: int, denominator: int) -> int:
    return (value * numerator + denominator // 2) // denominator


def rescale_op(op: Op, old_tokens: int, new_tokens: int) -> Op:
    if op.kind == "linear":
        return dataclasses.replace(op, M=new_tokens) if op.M == old_tokens else op
    if op.kind == "attention":
        if op.role == "attn_value":
            return dataclasses.replace(op, M=new_tokens if op.M == old_tokens else op.M,
                                       K=new_tokens if op.K == old_tokens else op.K)
        return dataclasses.replace(op, M=new_tokens if op.M == old_tokens else op.M,
                                   N=new_tokens if op.N == old_tokens else op.N)
    if op.role in QUADRATIC_VECTOR_ROLES:
        num, den = new_tokens * new_tokens, old_tokens * old_tokens
    else:
        num, den = new_tokens, old_tokens
    return dataclasses.replace(op, elements=_scaled(op.elements, num, den), bytes_in=_scaled(op.bytes_in, num, den),
                               bytes_out=_scaled(op.bytes_out, num, den))


def rescale_trace(trace: Trace, seq_len: int) -> Trace:
    """The trace at ``seq_len`` tokens per sequence; the same object when nothing changes."""
    capture = trace.capture
    if seq_len == capture.seq_len:
        return trace
    if seq_len <= 0:
        raise InputError("--seq-len", None, f"expected a positive sequence length, got {seq_len}")
    max_position = trace.model.config.max_position
    if max_position is not None and seq_len > max_position:
        raise InputError("--seq-len", None, f"{seq_len} exceeds {trace.model.name}'s max_position {max_position}")
    old_tokens, new_tokens = capture.tokens, seq_len * capture.batch
    runs = tuple(dataclasses.replace(run, ops=tuple(rescale_op(op, old_tokens, new_tokens) for op in run.ops))
                 for run in trace.runs)
    original = capture.rescaled_from_seq_len or capture.seq_len
    note = (f"RESCALED by amber-sim from seq_len {capture.seq_len} to {seq_len} (rule: docs/studies.md; "
            "masks and accuracy as measured at the original length).")
    notes = f"{capture.notes} {note}" if capture.notes else note
    new_capture = dataclasses.replace(capture, seq_len=seq_len, tokens=new_tokens, rescaled_from_seq_len=original,
                                      notes=notes)
    return dataclasses.replace(trace, capture=new_capture, runs=runs)
