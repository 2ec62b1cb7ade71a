"""Synthetic traces: shapes from the architecture, the paper's layer rule, agreement with the captured trace."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from amber_sim.cli import main
from amber_sim.paths import TRACE_DIR
from amber_sim.trace import Op, load_trace, migrate_v1_ops
from amber_sim.trace_summary import summarize_run

V2_FIELDS = ("causal", "precision", "producer", "input_from", "output_to", "sparse_overhead")


def synthetic_llama(tmp_path):
    out = tmp_path / "llama-synthetic.json"
    assert main(["synth", "--model", "llama-3.1-8b", "--seq-len", "2048", "--precision", "fp16,w8a8",
                 "--created", "2026-11-22T00:00:00+00:00", "--out", str(out)]) == 0
    return load_trace(out)


def test_synthetic_llama_agrees_with_the_captured_one_except_for_what_was_measured(tmp_path):
    """Same runs, ops, shapes and sparsified linears; the captured densities are the measured ones: at most
    the synthetic N/M (or 0.5), short of it by at most the natural zeros, equal to it when there are none."""
    synthetic, captured = synthetic_llama(tmp_path), load_trace(TRACE_DIR / "llama.json")
    assert synthetic.is_synthetic and synthetic.model.weights == "none"
    assert not captured.is_synthetic and captured.model.weights == "random-init"
    assert [run.id for run in synthetic.runs] == [run.id for run in captured.runs]
    for assumed, measured in zip(synthetic.runs, captured.runs):
        assumed_ops = [(op.name, op.M, op.K, op.N, op.batch, op.pattern, op.dtype_bytes) for op in assumed.ops]
        assert assumed_ops == [(op.name, op.M, op.K, op.N, op.batch, op.pattern, op.dtype_bytes)
                               for op in measured.ops]
        for assumed_op, measured_op in zip(assumed.ops, measured.ops):
            if not measured_op.is_sparse:
                continue
            natural_zeros = measured_op.natural_zero_fraction
            assert assumed_op.density - natural_zeros - 1e-12 <= measured_op.density <= assumed_op.density + 1e-12
            if natural_zeros == 0.0:
                assert measured_op.density == pytest.approx(assumed_op.density, abs=1e-12)


def test_synthetic_ops_carry_what_migration_infers_from_the_v1_capture(tmp_path):
    """amber-trace/2 fields: the op builder (``amber-sim synth``, and capture through the same builder) sets
    exactly what ``migrate_v1_ops`` infers from the LLaMA-3.1-8B capture as it was written in amber-trace/1
    (tests/data/v1), op for op: producers, precision (int8 for W8A8 linears), causal modes, on-chip attention."""
    synthetic = synthetic_llama(tmp_path)
    v1 = json.loads(gzip.decompress((Path(__file__).parent / "data" / "v1" / "llama.json.gz").read_bytes()))
    assert v1["schema"] == "amber-trace/1" and [run["id"] for run in v1["runs"]] == [run.id for run in synthetic.runs]
    for built, v1_run in zip(synthetic.runs, v1["runs"]):
        migrated = [Op(**op) for op in migrate_v1_ops(v1_run["ops"])]
        assert [(op.name, *(getattr(op, key) for key in V2_FIELDS)) for op in built.ops] == \
            [(op.name, *(getattr(op, key) for key in V2_FIELDS)) for op in migrated], built.id
    # spot checks of what that means, in words
    ops = {op.name: op for op in synthetic.run("2:4/amber/amber-paper/w8a8").ops}
    assert ops["layers.3.mlp.down_proj"].producer == "layers.3.mlp.act_mul"
    assert ops["layers.3.self_attn.o_proj"].producer == "layers.3.self_attn.context"
    assert ops["lm_head"].producer == "norm" and ops["lm_head"].precision == "int8"
    assert ops["layers.3.self_attn.scores"].precision == "fp16"  # W8A8 covers the linears only


def test_llama_trace_numbers(tmp_path):
    trace = synthetic_llama(tmp_path)
    dense, sparse = summarize_run(trace.runs[0]), summarize_run(trace.run("8:16/amber/amber-paper/fp16"))
    # 2·T·(params of the 32 layers' linears) + attention 2·2·T²·d·layers + LM head on one token
    linear_per_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336
    attention = 2 * 2 * 2048 * 2048 * 128 * 32 * 32
    expected = 2 * 2048 * linear_per_layer * 32 + attention + 2 * 4096 * 128256
    assert dense.gemm_flops == expected  # about 30.8 TFLOP
    # the paper's published share for LLaMA-3.1-8B with skip list 19, 21, 28, 30, 31 is 56.1%
    assert round(sparse.sparsified_linear_flop_share, 3) == 0.561
    layer0 = [op for op in trace.runs[0].ops if op.layer == 0]
    assert [op.kind for op in layer0].count("linear") == 7 and [op.kind for op in layer0].count("attention") == 2
    skipped = {op.layer for op in trace.run("2:4/amber/amber-paper/fp16").ops if op.role == "q" and not op.is_sparse}
    assert skipped == {19, 21, 28, 30, 31}


def test_unknown_architecture_lists_the_known_ones(capsys, tmp_path):
    assert main(["synth", "--model", "llama-9b", "--seq-len", "16", "--out", str(tmp_path / "x.json")]) == 2
    assert "known: llama-2-7b, llama-3.1-70b, llama-3.1-8b, qwen2-7b, smollm2-135m" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
