"""The accelerator model: hand-computed golden cases and the invariants of docs/model.md."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from amber_sim.errors import InputError
from amber_sim.hw.config import hardware_from_dict, load_hardware
from amber_sim.patterns import parse_pattern
from amber_sim.paths import bundled_hw_configs, bundled_traces
from amber_sim.sim.sparse import runs_natively, worst_case_kept_in_hw_group
from amber_sim.sim.engine import compile_trace, simulate_keys, simulate_ops, simulate_run, simulate_trace
from amber_sim.sim.compute import tile_cycles
from amber_sim.sim.mapper import GemmWork, gemm_params, simulate_gemm, time_mapping
from amber_sim.sim.memory import l2_rule, step_cost, store_cycles
from amber_sim.trace import Op, load_trace
from amber_sim.trace_summary import compressed_op_activation_bytes


def tiny_hw(**overrides):
    """One core, 1 GHz, a cube of the given shape, no L1/L2, DRAM bandwidth in bytes per cycle."""
    data = {
        "name": "tiny", "clock_ghz": 1.0, "cores": overrides.pop("cores", 1),
        "compute": {"kind": "cube", "cube": overrides.pop("cube", {"m": 4, "n": 4, "k": 4})},
        "vector": {"elements_per_cycle": 8},
        "memory": {"dram": {"bandwidth_gb_s": overrides.pop("dram_bytes_per_cycle", 4.0),
                            "latency_ns": overrides.pop("latency_ns", 0.0)},
                   "l0a": {"size_kb": 64}, "l0b": {"size_kb": 64}, "l0c": {"size_kb": 64}},
    }
    data.update(overrides)
    return hardware_from_dict(data, "tiny.yaml")


def dense_work(M, K, N, batch=1):
    return GemmWork(M=M, K=K, N=N, batch=batch, b_batch=batch, causal="none", a_bytes_per_element=2.0, b_bytes=2.0,
                    out_bytes=2.0, k_compute_ratio=1.0, k_unit=1, int8=False, a_on_chip=False, out_on_chip=False,
                    overhead_cycles_per_step=0)


# ---------------------------------------------------------------- golden cases

def test_golden_single_tile():
    """4×4×4 fp16 on one 4×4×4 cube at 4 B/cycle: the only tile is the whole GEMM.

    load A+B = (16 + 16)·2 B / 4 = 16 cycles; compute 1 cube step; store 16·2 B / 4 = 8 cycles;
    latency 10 ns at 1 GHz = 10 cycles before the first load. 10 + 16 + 1 + 8 = 35.
    """
    result = simulate_gemm(tiny_hw(latency_ns=10.0), dense_work(4, 4, 4))
    assert result.cycles == 35
    assert (result.load_cycles, result.compute_cycles, result.store_cycles) == (16, 1, 8)


def test_golden_double_buffering_hides_compute():
    """4×8×4 (M×K×N) on a 2×2×2 cube at 4 B/cycle: K streams in chunks of tk.

    tk = 8: load 128 B = 32, compute 2·2·4 = 16, store 32 B = 8 → 56.
    tk = 4: load0 0-16, compute0 16-24, load1 16-32, compute1 32-40, store 40-48 → 48.
    tk = 2: loads of 32 B take 8 cycles and computes 4; load0 0-8, c0 8-12, load1 8-16, c1 16-20,
            load2 16-24 (its buffer freed at 12), c2 24-28, load3 24-32, c3 32-36, store 36-44 → 44.
    Splitting M or N only adds traffic on one core, so the best is 4×4×2 at 44 cycles.
    """
    result = simulate_gemm(tiny_hw(cube={"m": 2, "n": 2, "k": 2}), dense_work(4, 8, 4))
    assert result.cycles == 44
    assert (result.mapping.tm, result.mapping.tn, result.mapping.tk) == (4, 4, 2)


def test_golden_waves_share_bandwidth():
    """8×4×4 on two cores sharing 8 B/cycle.

    tm = 8: one block on core 0 alone: load (64 + 32) B at 8 B/cycle = 12, compute 2, store 64 B = 8 → 22.
    tm = 4: two blocks in one wave, each core gets 4 B/cycle: load 64 B = 16, compute 1, store 32 B = 8 → 25.
    """
    result = simulate_gemm(tiny_hw(cores=2, dram_bytes_per_cycle=8.0), dense_work(8, 4, 4))
    assert result.cycles == 22 and result.mapping.tm == 8 and result.waves == 1


# ---------------------------------------------------------------- pattern compatibility

@pytest.mark.parametrize("data,hw,native", [
    ("2:4", "8:16", True), ("8:16", "2:4", False), ("2:4", "2:4", True), ("1:4", "2:4", True),
    ("4:8", "2:4", False), ("2:4", "4:8", True), ("2:8", "2:4", True), ("3:8", "2:4", False),
    ("2:3", "2:4", False), ("16:32", "8:16", False), ("4:16", "1:4", False), ("1:8", "1:4", True), ("2:16", "2:8", True),
])
def test_compatibility_rule(data, hw, native):
    assert runs_natively(parse_pattern(data), parse_pattern(hw)) is native


def test_worst_case_is_computed_over_alignments():
    # 2:3 data, hardware groups of 4: [0, 4) holds 2 + min(2, 1) = 3 kept values, but [4, 8) overlaps
    # two channels of group [3, 6) and two of [6, 9): 2 + 2 = 4. The worst alignment decides.
    assert worst_case_kept_in_hw_group(2, 3, 4) == 4
    # M = k·Mh: min(N, Mh); Mh = k·M: k·N.
    assert worst_case_kept_in_hw_group(8, 16, 4) == 4 and worst_case_kept_in_hw_group(2, 4, 16) == 8


# ---------------------------------------------------------------- invariants

@pytest.fixture(scope="module")
def llama_trace():
    return load_trace(bundled_traces()[[p.name for p in bundled_traces()].index("llama.json")])


@pytest.fixture(scope="module")
def configs():
    return {path.stem: load_hardware(path) for path in bundled_hw_configs()}


def _representative_ops(trace):
    """Layer 0 and the LM head of the dense run and of the 2:4 run (every op kind and role)."""
    ops = []
    for run in trace.runs:
        if run.precision == "fp16" and run.pattern in ("dense", "2:4", "16:32"):
            ops += [op for op in run.ops if op.layer in (0, -1)]
    return tuple(ops)


def test_no_op_beats_its_roofline(llama_trace, configs):
    for name, hw in configs.items():
        dram_bytes_per_cycle = hw.memory.dram.bandwidth_gb_s / hw.clock_ghz
        for result in simulate_ops(hw, _representative_ops(llama_trace)):
            assert result.cycles >= result.ideal_cycles - 1e-6, (name, result.name)
            traffic = result.activation_bytes + result.weight_bytes + result.output_bytes
            assert result.cycles >= traffic / dram_bytes_per_cycle - 1, (name, result.name)


def _scaled(hw, path: tuple[str, ...], factor: float):
    def replace(obj, keys):
        if len(keys) == 1:
            return dataclasses.replace(obj, **{keys[0]: getattr(obj, keys[0]) * factor})
        return dataclasses.replace(obj, **{keys[0]: replace(getattr(obj, keys[0]), keys[1:])})
    return replace(hw, path)


@pytest.mark.parametrize("config", ["ascend_like", "edge_npu", "tpu_like", "a100_like"])
@pytest.mark.parametrize("path", [
    ("memory", "dram", "bandwidth_gb_s"), ("memory", "l2", "bandwidth_gb_s"), ("memory", "l2", "size_mb"),
    ("memory", "l1", "size_kb"), ("memory", "l1", "bandwidth_bytes_per_cycle"), ("memory", "l0a", "size_kb"),
    ("memory", "l0b", "size_kb"), ("memory", "l0c", "size_kb"),
])
def test_more_bandwidth_or_sram_never_slows_an_op(llama_trace, configs, config, path):
    hw = configs[config]
    node = hw
    for key in path:
        node = getattr(node, key, None)
        if node is None:
            pytest.skip(f"{config} has no {'.'.join(path)}")
    ops = tuple(op for op in _representative_ops(llama_trace) if op.layer == 0)
    before = simulate_ops(hw, ops)
    after = simulate_ops(_scaled(hw, path, 2.0), ops)
    for slow, fast in zip(before, after):
        assert fast.cycles <= slow.cycles, (config, path, fast.name, slow.cycles, fast.cycles)


def _ideal(hw):
    """Same compute, memory so fast it never limits (and no sparsifier cost)."""
    memory = dataclasses.replace(hw.memory, dram=dataclasses.replace(hw.memory.dram, bandwidth_gb_s=1e9, latency_ns=0.0),
                                 l2=None, l1=None)
    sparsity = dataclasses.replace(hw.sparsity, sparsifier=dataclasses.replace(hw.sparsity.sparsifier, kind="none"),
                                   overhead_cycles_per_tile=0)
    return dataclasses.replace(hw, memory=memory, sparsity=sparsity)


def _linear(pattern="dense", density=1.0, M=2048, K=4096, N=4096):
    sparse = pattern != "dense"
    return Op(name="x", layer=0, role="down", kind="linear", M=M, K=K, N=N, batch=1,
              sparse_operand="activation" if sparse else None, pattern=pattern, density=density,
              natural_zero_fraction=0.0, dtype_bytes=2.0)


@pytest.mark.parametrize("pattern,bound", [("2:4", 2.0), ("4:8", 2.0), ("8:16", 2.0)])
def test_native_speedup_approaches_m_over_n_and_never_exceeds_it(configs, pattern, bound):
    hw = _ideal(configs["flexible_nm"])
    dense = simulate_ops(hw, (_linear(),))[0]
    sparse = simulate_ops(hw, (_linear(pattern, 0.5),))[0]
    assert sparse.mode == "native"
    speedup = dense.cycles / sparse.cycles
    assert 0.97 * bound <= speedup <= bound  # the remainder is pipeline fill (first load, last store)


def test_fallbacks_follow_the_rule(configs):
    ops = (_linear("4:8", 0.5),)
    assert simulate_ops(configs["a100_like"], ops)[0].mode == "compressed-io"   # 2:4-only hardware
    assert simulate_ops(configs["tpu_like"], ops)[0].mode == "dense"           # no sparse datapath
    on_ascend = simulate_ops(configs["ascend_like"], (_linear("2:4", 0.5),))[0]
    assert on_ascend.mode == "native" and on_ascend.hw_pattern == "2:4"        # the fastest of 2:4, 4:8, 8:16
    assert simulate_ops(configs["ascend_like"], (_linear("16:32", 0.5),))[0].mode == "compressed-io"
    assert simulate_ops(configs["ascend_like"], (_linear("unstructured", 0.5),))[0].mode == "compressed-io"


def test_compressed_activation_bytes_match_the_formula(configs):
    hw = configs["ascend_like"]  # 192 MB L2: the activation is read from DRAM exactly once
    op = _linear("2:4", 0.5, M=256, K=1024, N=1024)
    result = simulate_ops(hw, (op,))[0]
    # values 0.5·2 B + index metadata ceil(log2 4) = 2 bits per kept value, per dense element
    assert result.activation_bytes == 256 * 1024 * (0.5 * 2 + 0.5 * 2 / 8)
    compressed_op = _linear("4:8", 0.5, M=256, K=1024, N=1024)
    compressed_only = simulate_ops(configs["a100_like"], (compressed_op,))[0]
    assert compressed_only.activation_bytes == 256 * 1024 * (0.5 * 2 + 0.5 * 3 / 8)
    # `amber-sim inspect` sizes compressed activations with the simulator's formula, not a copy of it
    assert compressed_op_activation_bytes(compressed_op) == compressed_only.activation_bytes


def test_dense_run_does_not_depend_on_the_sparse_runs(llama_trace, configs):
    hw = configs["ascend_like"]
    dense_run = llama_trace.runs[0]
    alone = simulate_run(hw, dense_run)
    together = simulate_trace(hw, llama_trace).runs[0]
    assert alone.totals == together.totals and alone.ops == together.ops
    assert together.speedup_end_to_end == 1.0 and together.io_savings == 0.0


def test_a_sparse_op_can_be_slower_than_dense(configs):
    hw = configs["a100_like"]
    slow_sparsifier = dataclasses.replace(hw, sparsity=dataclasses.replace(
        hw.sparsity, patterns=(), compressed_io=False,
        sparsifier=dataclasses.replace(hw.sparsity.sparsifier, fused=False)))
    producer = Op(name="norm", layer=0, role="rmsnorm", kind="vector", elements=2048 * 4096, ops_per_element=4.0,
                  bytes_in=2 * 2048 * 4096, bytes_out=2 * 2048 * 4096)
    dense = simulate_ops(slow_sparsifier, (producer, _linear()))[1]
    sparse = simulate_ops(slow_sparsifier, (producer, _linear("2:4", 0.5)))[1]
    assert sparse.mode == "dense" and sparse.sparsifier_cycles > 0
    assert sparse.cycles > dense.cycles


def test_buffer_too_small_names_the_buffer():
    hw = tiny_hw(cube={"m": 64, "n": 64, "k": 64})
    with pytest.raises(InputError, match=r"tiny.yaml: memory\.l0c\.size_kb: 8 KiB cannot hold even one minimal "
                                          r"64x64x64 tile of op 'x'.*needs at least 16 KiB"):
        simulate_ops(dataclasses.replace(hw, memory=dataclasses.replace(
            hw.memory, l0c=dataclasses.replace(hw.memory.l0c, size_kb=8))), (_linear(M=64, K=64, N=64),))


@pytest.mark.slow
@pytest.mark.parametrize("trace_path", bundled_traces(), ids=lambda p: p.name)
def test_every_config_runs_on_every_shipped_trace(trace_path, configs):
    trace = load_trace(trace_path)
    for name, hw in configs.items():
        result = simulate_trace(hw, trace)
        for run in result.runs:
            assert run.totals.cycles > 0 and 0 < run.totals.compute_utilization <= 1.0, (name, run.run.id)
            if run.run.pattern == "dense":
                assert run.speedup_end_to_end == 1.0


def test_energy_follows_the_config_model(configs):
    hw = configs["edge_npu"]  # has an energy model
    energy = hw.energy
    result = simulate_ops(hw, (_linear(M=256, K=1024, N=1024),))[0]
    dram = result.activation_bytes + result.weight_bytes + result.output_bytes
    expected = (result.issued_macs * energy.mac_fp16_pj + dram * energy.dram_pj_per_byte
                + result.l2_bytes * (energy.l2_pj_per_byte + energy.sram_pj_per_byte))
    assert result.energy_pj == pytest.approx(expected)
    assert simulate_ops(configs["a100_like"], (_linear(M=256, K=1024, N=1024),))[0].energy_pj is None


# ---------------------------------------------------------------- fused sparsifier (docs/model.md §4)

@pytest.mark.parametrize("trace_name", ["llama.json", "smollm2-135m.json"])
def test_sparsifier_cycles_are_never_negative(trace_name, configs):
    trace = load_trace(next(path for path in bundled_traces() if path.name == trace_name))
    for name, hw in configs.items():
        for run in simulate_trace(hw, trace).runs:
            for op in run.ops:
                assert op.sparsifier_cycles >= 0, (name, run.run.id, op.name, op.sparsifier_cycles)
                assert op.cycles - op.sparsifier_cycles > 0, (name, run.run.id, op.name)


def _fused_hw(sparsifier: dict, fused: bool = True):
    """tiny_hw (1 core, 1 GHz, 8 vector lanes, 4 B/cycle DRAM) with 100 cycles of DRAM latency and a
    2:4 activation datapath (index metadata) whose sparsifier is fused with the producer."""
    return tiny_hw(latency_ns=100.0, sparsity={"operand": "activation", "patterns": ["2:4"], "compressed_io": True,
                                               "metadata": "index", "sparsifier": {**sparsifier, "fused": fused}})


_PRODUCER = Op(name="norm", layer=0, role="rmsnorm", kind="vector", elements=16 * 64, ops_per_element=1.0,
               bytes_in=2 * 16 * 64, bytes_out=2 * 16 * 64)


def _consumer(name: str, pattern: str = "dense") -> Op:
    return dataclasses.replace(_linear(pattern, 0.5 if pattern != "dense" else 1.0, M=16, K=64, N=16), name=name,
                               producer="norm")


@pytest.mark.parametrize("sparsifier,consumers,expected", [
    # vector, 2 ops/element: select = 1024·2/8 = 256 cycles; the vector unit then works 128 + 256 = 384 < 1024:
    # hidden under the producer's memory time.
    ({"kind": "vector", "vector_ops_per_element": 2}, ("2:4",), 0),
    # vector, 8 ops/element: select = 1024 cycles; 128 + 1024 = 1152 > 1024: adds 128, the part of the selection
    # that does not fit the producer's memory slack (1024 − 128 = 896).
    ({"kind": "vector", "vector_ops_per_element": 8}, ("2:4",), 128),
    # vector, 2 ops/element, the producer also feeds a dense linear: the selected form (1024 · 1.125 B = 1152 B)
    # is an extra write of 288 cycles; memory 1024 + 288 = 1312 > 384 of compute: adds 288.
    ({"kind": "vector", "vector_ops_per_element": 2}, ("2:4", "dense"), 288),
    # dedicated, 2 elements/cycle: select = 512 cycles beside the producer; max(128, 512, 1024 + 288) − 1024 = 288.
    ({"kind": "dedicated", "elements_per_cycle": 2}, ("2:4", "dense"), 288),
    # two pruned consumers, no dense one: two selections (512 cycles of vector work) and the second selected
    # form is an extra write (288 cycles): max(128 + 512, 1024 + 288) − 1024 = 288. Charging each consumer
    # alone against the same producer (the old rule) gave 0 + 0: the group's cost was lost.
    ({"kind": "vector", "vector_ops_per_element": 2}, ("2:4", "2:4"), 288),
    # vector, 8 ops/element, two pruned consumers: max(128 + 2048, 1024 + 288) − 1024 = 1152.
    ({"kind": "vector", "vector_ops_per_element": 8}, ("2:4", "2:4"), 1152),
])
def test_golden_fused_sparsifier_is_charged_to_the_producer(sparsifier, consumers, expected):
    """Producer: 16×64 = 1024 elements, 1 op each on 8 lanes = 128 compute cycles; 4096 B at 4 B/cycle = 1024
    memory cycles (+100 latency): memory-bound with 896 cycles of vector-unit slack. The fused selections add
    max(compute + Σ select (vector) or max(compute, Σ select) (dedicated), memory + extra writes)
    − max(compute, memory) to the producer, and nothing to the linears; the latency hides nothing."""
    hw = _fused_hw(sparsifier)
    ops = (_PRODUCER,) + tuple(_consumer(f"l{i}", pattern) for i, pattern in enumerate(consumers))
    results = simulate_ops(hw, ops)
    producer, linears = results[0], results[1:]
    assert (producer.compute_cycles, producer.load_cycles) == (128, 1024)
    assert producer.sparsifier_cycles == expected and producer.cycles == 100 + 1024 + expected
    extra_writes = len(consumers) - 1  # the first selected form replaces the dense output unless a dense consumer reads it
    assert producer.sparsifier_bytes == extra_writes * 16 * 64 * 1.125
    for linear in linears:
        assert linear.sparsifier_cycles == 0 and linear.sparsifier_bytes == 0
        assert linear.mode == ("native" if linear.data_pattern == "2:4" else "dense")


def test_a_consumer_reading_the_dense_form_makes_the_selected_form_an_extra_write():
    """Mitigation work (variance correction) reads the dense activation: the producer must still write it, so
    the pruned linear's selected form (1152 B, 288 cycles at 4 B/cycle) is an extra write."""
    hw = _fused_hw({"kind": "vector", "vector_ops_per_element": 2})
    mitigation = Op(name="l0.mitigation", layer=0, role="mitigation", kind="vector", elements=16 * 64,
                    ops_per_element=5.0, bytes_in=2 * 16 * 64, bytes_out=0, producer="norm", sparse_overhead=True)
    producer = simulate_ops(hw, (_PRODUCER, mitigation, _consumer("l0", "2:4")))[0]
    assert producer.sparsifier_cycles == 288 and producer.sparsifier_bytes == 1152


def test_a_consumer_fed_on_chip_does_not_force_the_dense_form_to_dram():
    """A static median shift runs inside the producer's pass (input on chip): unlike the DRAM-reading mitigation
    above, it does not make the producer write the dense form, so the selection adds what it adds with the
    pruned linear alone (0 cycles here: 2 ops/element hide in the producer's memory time)."""
    hw = _fused_hw({"kind": "vector", "vector_ops_per_element": 2})
    fused_shift = Op(name="l0.mitigation", layer=0, role="mitigation", kind="vector", elements=16 * 64,
                     ops_per_element=1.0, producer="norm", input_from="on_chip", output_to="on_chip",
                     sparse_overhead=True)
    alone = simulate_ops(hw, (_PRODUCER, _consumer("l0", "2:4")))[0]
    with_shift = simulate_ops(hw, (_PRODUCER, fused_shift, _consumer("l0", "2:4")))[0]
    assert with_shift.sparsifier_cycles == alone.sparsifier_cycles == 0 and with_shift.sparsifier_bytes == 0


def test_golden_unfused_sparsifier_pays_the_dram_latency():
    """fused: false: the selection is its own pass on the linear: DRAM latency (100) + max(select, streaming).
    Vector, 2 ops/element: select = 1024·2/8 = 256; it reads 2048 B dense and writes 1152 B selected:
    3200 B at 4 B/cycle = 800 cycles. Cost 100 + 800 = 900 cycles, 3200 B."""
    hw = _fused_hw({"kind": "vector", "vector_ops_per_element": 2}, fused=False)
    producer, linear = simulate_ops(hw, (_PRODUCER, _consumer("l0", "2:4")))
    assert producer.sparsifier_cycles == 0
    assert linear.sparsifier_cycles == 900 and linear.sparsifier_bytes == 3200


def _slow_sparsifier_variants(configs):
    """Every shipped config, plus, for those with a sparsifier, slow variants: a dedicated unit at 8 elements per
    cycle per core (fused and own pass) and a vector top-k at 64 operations per element."""
    for name, hw in configs.items():
        yield name, hw
        if hw.sparsity.operand == "none":
            continue
        spars = hw.sparsity.sparsifier
        for label, changes in (("dedicated-8", {"kind": "dedicated", "elements_per_cycle": 8}),
                               ("dedicated-8-own-pass", {"kind": "dedicated", "elements_per_cycle": 8, "fused": False}),
                               ("vector-64", {"kind": "vector", "vector_ops_per_element": 64.0})):
            yield f"{name}/{label}", dataclasses.replace(hw, sparsity=dataclasses.replace(
                hw.sparsity, sparsifier=dataclasses.replace(spars, **changes)))


@pytest.mark.parametrize("trace_name", ["llama.json", "smollm2-135m.json"])
def test_more_dram_bandwidth_never_slows_any_op_even_with_a_slow_sparsifier(trace_name, configs):
    """Fault fixed: the fused selection was charged to the consumer linear as (fused producer − producer), so
    more bandwidth shrank the producer's slack and made the linear slower (590 ops of llama.json on ascend_like
    with a dedicated sparsifier at 8 elements/cycle). Charged to the producer, every op is monotone."""
    trace = load_trace(next(path for path in bundled_traces() if path.name == trace_name))
    program = compile_trace(trace)
    for name, hw in _slow_sparsifier_variants(configs):
        faster = _scaled(hw, ("memory", "dram", "bandwidth_gb_s"), 2.0)
        for key, slow, fast in zip(program.keys, simulate_keys(hw, program), simulate_keys(faster, program)):
            assert fast.cycles <= slow.cycles, (name, program.names[program.keys.index(key)], slow.cycles, fast.cycles)


# ---------------------------------------------------------------- the speedup baseline (docs/metrics.md)

@pytest.fixture(scope="module")
def smollm_trace():
    return load_trace(next(path for path in bundled_traces() if path.name == "smollm2-135m.json"))


def test_speedup_is_against_the_traces_dense_run_of_the_same_precision(smollm_trace, configs):
    """Fault fixed: the baseline was the run's all-dense twin, which kept the run's mitigation ops, so on
    smollm2-135m.json 2:4 fp16 on ascend_like showed 1.070× while its prefill was only 1.013× faster than the
    trace's real dense run. The expected numbers here come from simulating the two runs separately."""
    hw = configs["ascend_like"]
    result = simulate_trace(hw, smollm_trace)
    for run in result.runs:
        dense = next(r for r in smollm_trace.runs if r.pattern == "dense" and r.precision == run.run.precision)
        dense_alone = simulate_run(hw, dense, dense)
        assert run.baseline == dense.id
        assert run.baseline_totals.cycles == dense_alone.totals.cycles
        assert run.speedup_end_to_end == dense_alone.totals.cycles / run.totals.cycles
        assert run.io_savings == pytest.approx(1 - run.totals.dram_bytes / dense_alone.totals.dram_bytes, rel=1e-12)


def test_mitigation_work_is_a_cost_of_the_sparse_run(smollm_trace, configs):
    """On hardware without a sparse datapath (tpu_like) a pruned run does the dense GEMMs plus its mitigation
    (variance correction), so it must be slower than the dense run: speedup < 1. Against the all-dense twin,
    which kept the mitigation ops, it showed exactly 1.000."""
    for run in simulate_trace(configs["tpu_like"], smollm_trace).runs:
        if run.run.pattern != "dense":
            assert run.run.mitigation != "none" and run.speedup_end_to_end < 1.0, run.run.id


def test_without_a_dense_run_the_baseline_is_the_all_dense_twin_without_sparse_only_work(smollm_trace, configs):
    """The twin drops sparse_overhead ops (mitigation) and densifies the rest: for a run on hardware that cannot
    use sparsity, the twin then equals the trace's dense run op for op (same shapes, same precision)."""
    hw = configs["tpu_like"]
    sparse = next(r for r in smollm_trace.runs if r.pattern == "2:4" and r.precision == "fp16")
    dense = next(r for r in smollm_trace.runs if r.pattern == "dense" and r.precision == "fp16")
    alone = simulate_run(hw, sparse)
    assert alone.baseline == "all-dense twin"
    assert alone.baseline_totals.cycles == simulate_run(hw, dense, dense).totals.cycles


# ---------------------------------------------------------------- memory rules, golden cases

@pytest.mark.parametrize("case,l2_bytes,panel,streamed_one,expected", [
    # (reused unique 100, reused fill 400, streamed unique 1000, streamed fill 8000, 8 panels)
    ("no L2: every fill from DRAM", 0.0, 50.0, 1000.0, (400.0, 8000.0)),
    ("panel > L2/2: reused misses, streamed fits the other half: once", 200.0, 150.0, 90.0, (400.0, 1000.0)),
    ("panel > L2/2: reused misses, streamed does not fit: every fill", 200.0, 150.0, 1000.0, (400.0, 8000.0)),
    ("both fit: each comes once", 4000.0, 50.0, 1000.0, (100.0, 1000.0)),
    # half = 100, panel = 30: a group holds floor(100/30) = 3 panels, 8 panels take ceil(8/3) = 3 passes of the
    # streamed operand: 3000 B (ceil(100/30) = 4 panels per group would give 2 passes, 2000 B).
    ("panels fit, streamed does not: once per group of floor((L2/2)/panel) panels", 200.0, 30.0, 1000.0, (100.0, 3000.0)),
    # a group can never stream more than the fills themselves: panel 1 → 100 panels per group, 1 pass.
    ("group passes capped by the fill", 200.0, 1.0, 1000.0, (100.0, 1000.0)),
])
def test_golden_l2_rule(case, l2_bytes, panel, streamed_one, expected):
    assert l2_rule(l2_bytes, 100.0, 400.0, 1000.0, 8000.0, panel, streamed_one, 8) == expected, case


def test_bitmask_metadata_costs_one_bit_per_dense_element():
    """8:16 data on 8:16 hardware, activation read once (large L2): index metadata stores ⌈log₂ 16⌉ = 4 bits per
    kept value, 0.5·2 + 0.5·4/8 = 1.25 B per dense element; a bitmask 1 bit per element, 0.5·2 + 1/8 = 1.125 B."""
    def activation_bytes(metadata):
        hw = tiny_hw(memory={"dram": {"bandwidth_gb_s": 4.0, "latency_ns": 0.0}, "l0a": {"size_kb": 64},
                             "l0b": {"size_kb": 64}, "l0c": {"size_kb": 64},
                             "l2": {"size_mb": 64, "bandwidth_gb_s": 64.0}},
                     sparsity={"operand": "activation", "patterns": ["8:16"], "metadata": metadata})
        return simulate_ops(hw, (_linear("8:16", 0.5, M=64, K=256, N=64),))[0].activation_bytes
    assert activation_bytes("index") == 64 * 256 * 1.25
    assert activation_bytes("bitmask") == 64 * 256 * 1.125


def test_buffer_energy_counts_fills_without_an_l2():
    """Fault fixed: SRAM energy used L2 bytes, 0 on a config without an L2. One 4×4×4 fp16 tile on the tiny
    config: the core loads A (32 B) and B (32 B) into its buffers: 64 B at 1 pJ/B = 64 pJ, the only energy."""
    hw = tiny_hw(energy={"mac_fp16_pj": 0.0, "mac_int8_pj": 0.0, "dram_pj_per_byte": 0.0, "sram_pj_per_byte": 1.0})
    result = simulate_ops(hw, (_linear(M=4, K=4, N=4),))[0]
    assert hw.memory.l2 is None and result.l2_bytes == 0.0
    assert result.energy_pj == 64.0


# ---------------------------------------------------------------- the fast-forwards are exact

def _reference_timeline(p, tm, tn, tk, acc, order_rows, every_core=False):
    """The pipeline of docs/model.md §2 stepped one step at a time, with no periodic jump, no closed form
    and no block layout: the blocks are listed one by one. Returns (cycles, load, compute, store, steps) of
    the critical core: the longest timeline of core 0, the core with the most tile work, the last block's
    core and the core with the most memory-queue time (ties in that order)."""
    M, K, N, batch, cores = (int(p[name]) for name in ("M", "K", "N", "batch", "cores"))
    causal = int(p["causal"])
    mb, nb = -(-M // tm), -(-N // tn)
    blocks = []
    for outer in range(mb if order_rows else nb):
        for inner in range(nb if order_rows else mb):
            mi, ni = (outer, inner) if order_rows else (inner, outer)
            if causal == 1 and ni * tn > (mi + 1) * tm - 1:
                continue
            blocks.append((min(tm, M - mi * tm), min(tn, N - ni * tn), min(K, (mi + 1) * tm) if causal == 2 else K))
    unit_m, unit_n = (int(p["unit_m"]), int(p["unit_n"])) if int(p["unit_kind"]) == 0 else (1, 1)

    def padded(value, unit, limit):
        return min(limit, -(-value // unit) * unit)

    def chunks(k_len):
        return [min(tk, k_len - s) for s in range(0, k_len, tk)]

    total = len(blocks) * batch
    a_fill = sum(rows * k * float(p["a_bytes_per_element"]) for rows, _, k in blocks) * batch
    b_fill = sum(k * cols * float(p["b_bytes_per_element"]) for _, cols, k in blocks) * batch
    order = bool(order_rows)
    a_unique = M * K * float(p["a_bytes_per_element"]) * batch
    b_unique = K * N * float(p["b_bytes_per_element"]) * int(p["b_batch"])
    if order:
        dram_a, dram_b = l2_rule(float(p["l2_bytes"]), a_unique, a_fill, b_unique, b_fill,
                                 tm * K * float(p["a_bytes_per_element"]), K * N * float(p["b_bytes_per_element"]), mb)
    else:
        dram_b, dram_a = l2_rule(float(p["l2_bytes"]), b_unique, b_fill, a_unique, a_fill,
                                 tn * K * float(p["b_bytes_per_element"]), M * K * float(p["a_bytes_per_element"]), nb)
    fraction = (dram_a + dram_b) / (a_fill + b_fill)
    work = [0] * cores
    for g in range(total):
        rows, cols, k_len = blocks[g % len(blocks)]
        work[g % cores] += sum(tile_cycles(p, padded(rows, unit_m, tm), padded(cols, unit_n, tn), k)
                               + int(p["overhead_cycles_per_step"]) for k in chunks(k_len))
    heaviest = max(range(cores), key=lambda c: (work[c], -c))
    port = [0.0] * cores  # memory-queue time, before rounding
    for g in range(total):
        rows, cols, k_len = blocks[g % len(blocks)]
        active = min(cores, total - (g // cores) * cores)
        share = max(active / float(p["l2_bytes_per_cycle"]), fraction * active / float(p["dram_bytes_per_cycle"]))
        port[g % cores] += ((rows * float(p["a_bytes_per_element"]) + cols * float(p["b_bytes_per_element"])) * k_len
                            * share + rows * cols * float(p["out_bytes_per_element"]) * active
                            / float(p["dram_bytes_per_cycle"]))
    busiest = max(range(cores), key=lambda c: (port[c], -c))
    best = None
    for core in dict.fromkeys((0, heaviest, (total - 1) % cores, busiest, *(range(cores) if every_core else ()))):
        stage, acc_free, port, compute_end, end, step = [0, 0], [0, 0], 0, 0, 0, 0
        busy = [0, 0, 0]
        for g in range(core, total, cores):
            wave = g // cores
            active = min(cores, total - wave * cores)
            per_byte = max(active / float(p["l2_bytes_per_cycle"]), fraction * active / float(p["dram_bytes_per_cycle"]))
            rows, cols, k_len = blocks[g % len(blocks)]
            for s, k in enumerate(chunks(k_len)):
                load, compute = step_cost(p, rows, cols, padded(rows, unit_m, tm), padded(cols, unit_n, tn), k, per_byte)
                load_end = max(port, stage[step % 2]) + load + (int(p["latency_cycles"]) if step == 0 else 0)
                port = load_end
                start = max(load_end, compute_end, acc_free[wave % acc] if s == 0 else 0)
                compute_end = start + compute
                stage[step % 2] = compute_end
                busy[0] += load; busy[1] += compute
                step += 1
            store = store_cycles(p, rows, cols, active)
            port = max(compute_end, port) + store
            acc_free[wave % acc] = port
            busy[2] += store
            end = max(end, port)
        timeline = (max(end, compute_end), *busy, step)
        if best is None or timeline[0] > best[0]:
            best = timeline
    return best


@pytest.mark.parametrize("shape,causal,tiles", [
    ((64, 32, 64), "none", [(8, 8, 4), (16, 8, 8), (8, 32, 32)]),             # long runs of identical blocks
    ((60, 30, 52), "none", [(8, 8, 8), (16, 16, 4)]),                         # edge blocks in M, N and K
    ((64, 16, 64), "output", [(8, 8, 4), (8, 16, 8), (16, 8, 16)]),           # the causal triangle of scores
    ((64, 64, 16), "reduction", [(8, 8, 8), (16, 16, 4), (8, 16, 64)]),      # P·V: K grows with the row
])
@pytest.mark.parametrize("l2", [False, True])
def test_time_mapping_equals_a_plain_step_by_step_timeline(shape, causal, tiles, l2):
    """The periodic jumps (within a block, across identical blocks), the per-row block layout and the
    per-core work by residues must give exactly what stepping every step of every block gives."""
    M, K, N = shape
    overrides = {"cores": 3, "cube": {"m": 4, "n": 4, "k": 4}, "latency_ns": 10.0}
    if l2:
        overrides["memory"] = {"dram": {"bandwidth_gb_s": 4.0, "latency_ns": 10.0}, "l0a": {"size_kb": 64},
                               "l0b": {"size_kb": 64}, "l0c": {"size_kb": 64},
                               "l2": {"size_mb": 0.002, "bandwidth_gb_s": 16.0}}
    hw = tiny_hw(**overrides)
    work = dataclasses.replace(dense_work(M, K, N, batch=2), causal=causal)
    p = gemm_params(hw, work)
    for tm, tn, tk in tiles:
        for acc in (1, 2):
            for order_rows in (True, False):
                out = np.zeros(13)
                assert time_mapping(p, tm, tn, tk, acc, order_rows, out, 9.0e18)
                expected = _reference_timeline(p, tm, tn, tk, acc, order_rows)
                assert tuple(int(x) for x in out[:5]) == expected, (tm, tn, tk, acc, order_rows)


def test_nothing_outside_the_simulator_uses_its_private_names():
    """One engine: report/, study/, validate/, the CLI, tests and benchmarks use sim's public API only (a
    second engine built from private helpers is how totals and metrics drifted apart before)."""
    import ast

    from amber_sim.paths import PROJECT_ROOT

    offenders = []
    for folder in ("amber_sim", "tests", "benchmarks"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if path.is_relative_to(PROJECT_ROOT / "amber_sim" / "sim"):
                continue
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("amber_sim.sim"):
                    offenders += [f"{path.name}: {alias.name}" for alias in node.names if alias.name.startswith("_")]
                elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                      and isinstance(node.value, ast.Name) and node.value.id in ("engine", "mapper", "pipeline", "memory",
                                                                                 "compute", "sparse", "schedule", "blocks")):
                    offenders.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert not offenders, offenders


def test_a_core_with_a_contended_big_block_is_critical():
    """P·V-like causal reduction, 30×30×8 on 5 cores (1×4×4 cube, 1 B/cycle), tiles 5×8×4: block row r reduces
    over 5(r + 1) positions. Cores 0-4 take rows 0-4 in a full wave, then core 0 takes row 5 alone. Core 4's
    row (650 B) loads while 5 cores share the bandwidth and ends last, at 3660 cycles; core 0, the core with the
    most work and the last block's core, ends at 1930, which is what the old three-core rule reported. The
    core with the most memory-queue time is timed too, and here that is every core's maximum."""
    hw = tiny_hw(cores=5, cube={"m": 1, "n": 4, "k": 4}, dram_bytes_per_cycle=1.0)
    p = gemm_params(hw, dataclasses.replace(dense_work(30, 30, 8), causal="reduction"))
    out = np.zeros(13)
    assert time_mapping(p, 5, 8, 4, 2, True, out, 9.0e18)
    assert int(out[0]) == _reference_timeline(p, 5, 8, 4, 2, True, every_core=True)[0] == 3660


@pytest.mark.parametrize("shape,causal,tiles", [
    ((64, 32, 64), "none", [(8, 8, 4), (16, 8, 8), (16, 32, 32)]),
    ((64, 16, 64), "output", [(8, 8, 4), (16, 8, 16)]),
])
def test_with_alike_blocks_the_critical_cores_give_every_cores_maximum(shape, causal, tiles):
    """When every block has the same shape, every core runs one of two timelines and core 0 the longer: the
    reported cycles are the maximum over all cores (docs/model.md §2), checked against timing every core."""
    M, K, N = shape
    p = gemm_params(tiny_hw(cores=3, cube={"m": 4, "n": 4, "k": 4}, latency_ns=10.0),
                    dataclasses.replace(dense_work(M, K, N, batch=3), causal=causal))
    for tm, tn, tk in tiles:
        for acc in (1, 2):
            out = np.zeros(13)
            assert time_mapping(p, tm, tn, tk, acc, True, out, 9.0e18)
            assert int(out[0]) == _reference_timeline(p, tm, tn, tk, acc, True, every_core=True)[0]


def test_a_dense_run_is_its_own_baseline(smollm_trace, configs):
    """Two dense fp16 runs in one trace (say two captures): each is its own baseline (speedup exactly 1), not
    the first one's."""
    dense = next(r for r in smollm_trace.runs if r.pattern == "dense" and r.precision == "fp16")
    twin = dataclasses.replace(dense, id="dense/second", ops=dense.ops[:-1])  # a different dense run
    trace = dataclasses.replace(smollm_trace, runs=(dense, twin))
    for run in simulate_trace(configs["ascend_like"], trace).runs:
        assert run.baseline == run.run.id and run.speedup_end_to_end == 1.0


def test_sustained_dram_fraction_scales_every_stream():
    """4 B/cycle peak at a sustained fraction of 0.5 streams 2 B/cycle: the 4096 B producer of the fused tests
    takes 2048 memory cycles instead of 1024, and a GEMM's DRAM-bound loads slow down by as much."""
    hw = tiny_hw(memory={"dram": {"bandwidth_gb_s": 4.0, "latency_ns": 0.0, "sustained_fraction": 0.5},
                         "l0a": {"size_kb": 64}, "l0b": {"size_kb": 64}, "l0c": {"size_kb": 64}})
    assert simulate_ops(hw, (_PRODUCER,))[0].load_cycles == 2048
    full = simulate_ops(tiny_hw(), (_linear(M=4, K=4, N=4),))[0]
    half = simulate_ops(hw, (_linear(M=4, K=4, N=4),))[0]
    assert (full.load_cycles, half.load_cycles) == (16, 32) and (full.store_cycles, half.store_cycles) == (8, 16)


def test_a100_like_sustained_fraction_is_its_stated_fit():
    """a100_like's DRAM sustained fraction is fitted on one stated point: the largest GELU of the committed vector
    set (512 Mi fp16 elements read and written: 2 GiB) at its measured time, less its harness's host overhead
    (the smallest GELU's measured time less its device time: 2 µs kernel overhead + 0.5 µs DRAM latency + a 4 KiB
    stream of 4 cycles) and the large kernel's own 2.5 µs of overhead and latency, over the 2039 GB/s peak."""
    import csv

    from amber_sim.paths import PROJECT_ROOT

    rows = list(csv.DictReader((PROJECT_ROOT / "validation" / "gpu_vector_measurements.csv").open(encoding="utf-8")))
    gelus = sorted((r for r in rows if r["op"] == "gelu"), key=lambda r: int(r["shape"].split("=")[1]))
    small, large = gelus[0], gelus[-1]
    assert small["harness"] == large["harness"] and small["timing"] == "host_sync"
    fixed_ms = 0.002 + 0.0005
    host_ms = float(small["ms"]) - (fixed_ms + 4 / 1.41e6)
    elements = int(large["shape"].split("=")[1])
    streaming_s = (float(large["ms"]) - host_ms - fixed_ms) * 1e-3
    sustained = 2 * elements * 2 / streaming_s / 2039e9
    assert round(sustained, 3) == load_hardware(PROJECT_ROOT / "hw_configs" / "a100_like.yaml").memory.dram.sustained_fraction


def test_unstructured_global_runs_as_unstructured(configs):
    """The hardware sees the same bitmask-compressed activation whatever the top-k's scope: a global-bound op
    costs what a per-token one of the same density costs."""
    for hw in (configs["ascend_like"], configs["a100_like"]):
        per_token, global_scope = simulate_ops(hw, (_linear("unstructured", 0.5), _linear("unstructured-global", 0.5)))
        assert per_token.mode == global_scope.mode == "compressed-io"
        assert per_token.cycles == global_scope.cycles and per_token.activation_bytes == global_scope.activation_bytes
