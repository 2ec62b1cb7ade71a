"""Tensor-parallel prefill (sim/parallel.py): the sharding rules, the all-reduces, TP = 1 as the single chip."""

from __future__ import annotations

import dataclasses
import math

import pytest

from amber_sim.cli import main
from amber_sim.errors import InputError
from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR, bundled_traces
from amber_sim.sim.collectives import collective_cost
from amber_sim.sim.engine import simulate_ops, simulate_trace
from amber_sim.sim.parallel import check_tp, shard_ops, shard_trace
from amber_sim.trace import Op, load_trace


@pytest.fixture(scope="module")
def llama():
    return load_trace(bundled_traces()[[p.name for p in bundled_traces()].index("llama.json")])


@pytest.fixture(scope="module")
def a100():
    return load_hardware(HW_CONFIG_DIR / "a100_like.yaml")


def test_tp_1_is_the_single_chip_exactly(llama, a100):
    assert shard_trace(llama, 1) is llama
    assert simulate_trace(a100, shard_trace(llama, 1)).runs[1].totals == simulate_trace(a100, llama).runs[1].totals


def test_golden_sharding_of_a_llama_layer(llama):
    """LLaMA-3.1-8B (hidden 4096, MLP 14336, 32 heads / 8 KV heads, 2048 tokens) over 8 chips: q N 4096 → 512,
    k/v 1024 → 128, gate/up 14336 → 1792; o K 4096 → 512 and down K 14336 → 1792 (2:4 groups still whole),
    each followed by an all-reduce of 2048 × 4096 × 2 B = 16 MiB; attention 32 → 4 heads over 8 → 1 KV heads;
    SiLU·mul's 29,360,128 elements → 3,670,016; norms and residuals whole."""
    run = llama.runs[1]  # 2:4 fp16
    ops = {op.name: op for op in shard_ops(run.ops, 8)}
    assert (ops["layers.0.self_attn.q_proj"].N, ops["layers.0.self_attn.k_proj"].N) == (512, 128)
    assert (ops["layers.0.mlp.gate_proj"].N, ops["layers.0.mlp.up_proj"].N) == (1792, 1792)
    assert (ops["layers.0.self_attn.o_proj"].K, ops["layers.0.mlp.down_proj"].K) == (512, 1792)
    assert ops["layers.0.mlp.down_proj"].pattern == "2:4" and ops["layers.0.mlp.down_proj"].N == 4096
    reduce = ops["layers.0.mlp.down_proj.all_reduce"]
    assert (reduce.kind, reduce.role, reduce.bytes_in, reduce.batch) == ("collective", "all_reduce", 16 * 2**20, 8)
    scores = ops["layers.0.self_attn.scores"]
    assert (scores.batch, scores.operand_b_batch) == (4, 1)
    assert ops["layers.0.mlp.act_mul"].elements == 29_360_128 // 8
    assert ops["layers.0.input_layernorm"] == {op.name: op for op in run.ops}["layers.0.input_layernorm"]
    layers = {op.layer for op in run.ops if op.layer >= 0}
    assert sum(op.kind == "collective" for op in ops.values()) == 2 * len(layers)


def test_a_collective_costs_what_the_collective_model_says(llama, a100):
    """The 16 MiB all-reduce on a100_like's board: collective_cost's seconds × 1.41 GHz, rounded up."""
    result = simulate_trace(a100, shard_trace(llama, 8)).runs[1]
    op = next(o for o in result.ops if o.name == "layers.0.mlp.down_proj.all_reduce")
    seconds = collective_cost(a100.system, "all_reduce", 16 * 2**20, chips=8).seconds
    assert op.cycles == math.ceil(seconds * 1.41e9 - 1e-9) and op.bound == "collective"
    assert result.totals.cycles_by_category["collective"] == sum(o.cycles for o in result.ops if o.kind == "collective")


def test_faster_links_never_slow_a_tensor_parallel_prefill(llama, a100):
    faster = dataclasses.replace(a100, system=dataclasses.replace(a100.system, link_bandwidth_gb_s=50))
    sharded = shard_trace(llama, 4)
    for slow, fast in zip(simulate_trace(a100, sharded).runs, simulate_trace(faster, sharded).runs):
        assert fast.totals.cycles <= slow.totals.cycles


def test_what_cannot_be_sharded_is_refused(a100):
    down = Op(name="l.down", layer=0, role="down", kind="linear", M=16, K=48, N=32, sparse_operand="activation",
              pattern="8:16", density=0.5)
    with pytest.raises(InputError, match="need K per chip \\(48/2 = 24\\) to be a multiple of 16"):
        shard_ops((down,), 2)
    with pytest.raises(InputError, match="does not split over 5 chips"):
        shard_ops((dataclasses.replace(down, pattern="dense", sparse_operand=None, density=1.0),), 5)
    with pytest.raises(InputError, match="fewer than --tp 16"):
        check_tp(16, a100.system, "a100_like")
    with pytest.raises(InputError, match="describes a single chip"):
        check_tp(2, None, "ascend_like")


def test_the_main_job_takes_tp(tmp_path, capsys):
    assert main(["--hw", "a100_like.yaml", "--trace", "smollm2-135m.json", "--tp", "3", "--out",
                 str(tmp_path / "r")]) == 0
    assert "tensor parallel over 3 chips" in capsys.readouterr().out
    assert main(["--hw", "tpu_like.yaml", "--trace", "llama.json", "--tp", "2"]) == 2  # a single-chip config


def test_golden_sequence_parallel_layer(llama):
    """--sp at TP 8: an all-gather of the 2048 × 4096 fp16 norm output (16 MiB) before q/k/v and one before
    gate/up, a reduce-scatter of 16 MiB after o and after down (no all-reduce), and the norms on 2048/8 tokens
    (8,388,608 → 1,048,576 elements)."""
    run = llama.runs[1]
    ops = shard_ops(run.ops, 8, sp=True)
    names = [op.name for op in ops]
    gather = ops[names.index("layers.0.input_layernorm.all_gather")]
    assert (gather.role, gather.bytes_in, gather.batch) == ("all_gather", 16 * 2**20, 8)
    assert names.index("layers.0.input_layernorm.all_gather") == names.index("layers.0.self_attn.q_proj") - 1
    assert "layers.0.post_attention_layernorm.all_gather" in names
    assert ops[names.index("layers.0.mlp.down_proj.reduce_scatter")].bytes_in == 16 * 2**20
    assert not any(op.role == "all_reduce" for op in ops)
    assert ops[names.index("layers.0.input_layernorm")].elements == 8_388_608 // 8
    layers = {op.layer for op in run.ops if op.layer >= 0}
    assert sum(op.role == "all_gather" for op in ops) == 2 * len(layers) + 1  # + the LM head's input
    assert sum(op.role == "reduce_scatter" for op in ops) == 2 * len(layers)


def test_golden_compressed_all_gather():
    """A norm read by three 2:4-pruned linears (M 8, K 64) gathers their compressed form: 512 entries × (half of
    2 B + half of 2 bits) = 576 B instead of 1,024 B; one dense reader (k) needs the dense form."""
    from amber_sim.sim.parallel import gather_bytes

    def linear(role, pattern):
        sparse = pattern != "dense"
        return Op(name=f"l.{role}", layer=0, role=role, kind="linear", M=8, K=64, N=64, producer="norm",
                  sparse_operand="activation" if sparse else None, pattern=pattern, density=0.5 if sparse else 1.0)

    all_pruned = [linear("q", "2:4"), linear("k", "2:4"), linear("v", "2:4")]
    assert gather_bytes(all_pruned, compressed=True, metadata="index") == 576
    assert gather_bytes(all_pruned, compressed=False, metadata="index") == 1024
    assert gather_bytes([linear("q", "2:4"), linear("k", "dense")], compressed=True, metadata="index") == 1024


def test_sp_needs_tp(capsys):
    assert main(["--hw", "a100_like.yaml", "--trace", "llama.json", "--sp"]) == 2
    assert "--sp" in capsys.readouterr().err


def test_interconnect_numbers_of_a_tensor_parallel_run(llama, a100):
    """link_bytes sums what each chip sends in its collectives: at TP 8 without SP, 2 all-reduces per layer of a
    16 MiB fp16 output, each 2·7/8 of it sent (direct algorithm): 64 layers' worth × 29,360,128 B; the collective
    share is the collective category over the prefill; nothing is compressed, so nothing is saved."""
    from amber_sim.report.metrics import run_rows

    result = simulate_trace(a100, shard_trace(llama, 8))
    rows = {row.run_id: row for row in run_rows(result)}
    row = rows["2:4/amber/amber-paper/fp16"]
    layers = len({op.layer for op in llama.runs[1].ops if op.layer >= 0})
    assert row.link_bytes == pytest.approx(2 * layers * 2 * 7 / 8 * 16 * 2**20)
    run = next(r for r in result.runs if r.run.id == row.run_id)
    assert row.collective_share == pytest.approx(run.totals.cycles_by_category["collective"] / run.totals.cycles)
    assert row.link_savings == 0.0
    single = {row.run_id: row for row in run_rows(simulate_trace(a100, llama))}
    assert single[row.run_id].link_bytes == 0.0 and single[row.run_id].collective_share == 0.0


def test_compressed_all_gathers_save_link_bytes_when_every_reader_is_pruned(a100):
    """A run whose q, k and v are all 2:4-pruned gathers its norm output compressed under --sp with
    compressed_allgather: it sends fewer link bytes than its dense baseline."""
    from amber_sim.trace import Run

    def ops(pattern):
        sparse = pattern != "dense"
        norm = Op(name="norm", layer=0, role="rmsnorm", kind="vector", elements=2048 * 4096, ops_per_element=4.0,
                  bytes_in=2 * 2048 * 4096, bytes_out=2 * 2048 * 4096)
        linears = tuple(Op(name=f"l.{role}", layer=0, role=role, kind="linear", M=2048, K=4096, N=4096,
                           producer="norm", sparse_operand="activation" if sparse else None, pattern=pattern,
                           density=0.5 if sparse else 1.0) for role in ("q", "k", "v"))
        return (norm,) + linears

    system = dataclasses.replace(a100.system, compressed_allgather=True)
    hw = dataclasses.replace(a100, system=system)
    dense = shard_ops(ops("dense"), 8, sp=True, compressed_allgather=True)
    sparse = shard_ops(ops("2:4"), 8, sp=True, compressed_allgather=True)
    gather = [op for op in sparse if op.role == "all_gather"][0]
    assert gather.bytes_in == 2048 * 4096 * 1.125 and [op for op in dense if op.role == "all_gather"][0].bytes_in == \
        2048 * 4096 * 2
    result = simulate_trace(hw, dataclasses.replace(load_trace(bundled_traces()[0]), runs=(
        Run(id="dense/x/x/fp16", pattern="dense", criterion="none", policy="none", mitigation="none",
            precision="fp16", metrics=None, ops=dense),
        Run(id="2:4/x/x/fp16", pattern="2:4", criterion="x", policy="x", mitigation="none", precision="fp16",
            metrics=None, ops=sparse))))
    assert result.runs[1].numbers.link_savings == pytest.approx(1 - 1.125 / 2)


# ---------------------------------------------------------------- overlap of collectives with GEMMs

def _overlap_layer():
    """A norm read by q and k (a mitigation of q between them), and o, row-parallel, reading q's output."""
    norm = Op(name="norm", layer=0, role="rmsnorm", kind="vector", elements=2048 * 4096, ops_per_element=4.0,
              bytes_in=2 * 2048 * 4096, bytes_out=2 * 2048 * 4096)
    q = Op(name="q", layer=0, role="q", kind="linear", M=2048, K=4096, N=4096, producer="norm")
    mitigation = Op(name="q.mitigation", layer=0, role="mitigation", kind="vector", elements=2048 * 4096,
                    ops_per_element=1.0, bytes_in=2 * 2048 * 4096, bytes_out=2 * 2048 * 4096, sparse_overhead=True)
    k = Op(name="k", layer=0, role="k", kind="linear", M=2048, K=4096, N=1024, producer="norm")
    o = Op(name="o", layer=0, role="o", kind="linear", M=2048, K=4096, N=4096, producer="q")
    return (norm, q, mitigation, k, o)


def _system(hw, **changes):
    return dataclasses.replace(hw, system=dataclasses.replace(hw.system, **changes))


def test_overlap_partners_are_the_gemms_next_to_each_sp_collective():
    from amber_sim.sim.engine import overlap_partner_positions

    ops = shard_ops(_overlap_layer(), 8, sp=True)
    assert [op.name for op in ops] == ["norm", "norm.all_gather", "q", "q.mitigation", "k", "o", "o.reduce_scatter"]
    assert overlap_partner_positions(ops, 1) == (2, 4)  # q and k; the mitigation between them is skipped
    assert overlap_partner_positions(ops, 6) == (5,)
    assert overlap_partner_positions(ops, 2) == ()
    plain = shard_ops(_overlap_layer(), 8)  # without SP: an all-reduce, which nothing overlaps
    assert overlap_partner_positions(plain, [op.role for op in plain].index("all_reduce")) == ()


def test_golden_overlap_with_slow_links(a100):
    """Links so slow (1 ms per step) that no GEMM can hide a whole collective: the pair of a collective C and
    its GEMMs G, both in 8 chunks, takes C + G/8, so the collective's exposed time is C − 7/8 · G: the
    all-gather loses ⌊7/8 (G_q + G_k)⌋ cycles, the reduce-scatter ⌊7/8 G_o⌋, and nothing else changes."""
    ops = shard_ops(_overlap_layer(), 8, sp=True)
    slow = _system(a100, latency_us=1000.0)
    off = {op.name: op for op in simulate_ops(slow, ops)}
    on = {op.name: op for op in simulate_ops(_system(slow, overlap_collectives=True), ops)}
    gather_gemms = off["q"].cycles + off["k"].cycles
    assert on["norm.all_gather"].cycles == off["norm.all_gather"].cycles - gather_gemms * 7 // 8
    assert on["norm.all_gather"].hidden_cycles == gather_gemms * 7 // 8
    assert on["o.reduce_scatter"].cycles == off["o.reduce_scatter"].cycles - off["o"].cycles * 7 // 8
    for name in ("norm", "q", "q.mitigation", "k", "o"):
        assert on[name].cycles == off[name].cycles
    assert on["norm.all_gather"].link_bytes == off["norm.all_gather"].link_bytes  # hidden, not removed


def test_overlap_with_fast_links_hides_every_collective(a100):
    """Links 100× faster than NVLink: each collective is shorter than 7/8 of its GEMMs, so none is exposed."""
    ops = shard_ops(_overlap_layer(), 8, sp=True)
    fast = _system(a100, link_bandwidth_gb_s=2500.0, latency_us=0.0, overlap_collectives=True)
    results = {op.name: op for op in simulate_ops(fast, ops)}
    assert results["norm.all_gather"].cycles == 0 and results["norm.all_gather"].hidden_cycles > 0
    assert results["o.reduce_scatter"].cycles == 0


def test_overlap_never_slows_a_prefill_and_leaves_all_reduces_alone(llama, a100):
    overlapped = _system(a100, overlap_collectives=True)
    with_sp = shard_trace(llama, 8, sp=True)
    for off, on in zip(simulate_trace(a100, with_sp).runs, simulate_trace(overlapped, with_sp).runs):
        assert on.totals.cycles < off.totals.cycles
        assert on.totals.cycles >= off.totals.cycles - off.totals.cycles_by_category["collective"]
        assert on.totals.link_bytes == off.totals.link_bytes
    without_sp = shard_trace(llama, 8)
    assert [run.totals for run in simulate_trace(a100, without_sp).runs] == \
        [run.totals for run in simulate_trace(overlapped, without_sp).runs]
