"""Replay a trace on a hardware config: per-op results, per-run totals, speedups against dense.

Ops run one after another, each using the whole chip (no overlap between ops). For each op the
sparsity rule (docs/model.md §Sparsity) picks how it executes: natively on a compatible hardware
N:M pattern, dense compute with compressed activation traffic, or dense. Sparse ops also pay for the
sparsifier that selects the kept values.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

from amber_sim.hw.config import HardwareConfig
from amber_sim.patterns import Pattern, index_metadata_bits, parse_pattern
from amber_sim.sim.compat import native_hardware_patterns
from amber_sim.sim.gemm import GemmResult, GemmWork, simulate_gemm
from amber_sim.trace import Op, Run, Trace

OUTPUT_BYTES = 2.0  # every op writes fp16 (int8 GEMMs dequantise their int32 sums)


@dataclass(frozen=True)
class OpResult:
    name: str
    layer: int
    role: str
    kind: str
    mode: str                  # dense | native | compressed-io | vector
    data_pattern: str
    hw_pattern: str | None     # the hardware N:M pattern used natively
    rule: str                  # which rule decided the mode, in words
    mapping: str | None
    cycles: int                # everything: op + its sparsifier
    compute_cycles: int
    load_cycles: int
    store_cycles: int
    latency_cycles: int
    sparsifier_cycles: int     # cycles the selection adds to the prefill (after overlap with the producer)
    blocks: int
    waves: int
    tail_blocks: int
    activation_bytes: float    # DRAM bytes of the sparse-able operand (A of linears), metadata included
    weight_bytes: float        # DRAM bytes of B
    output_bytes: float        # DRAM bytes written by the op
    other_bytes: float         # vector-op traffic and the sparsifier's own traffic
    l2_bytes: float
    useful_macs: float         # MACs on kept activations only
    issued_macs: float         # MACs the matrix unit executes (padding included)
    peak_macs_per_cycle: float # of the whole chip, at this op's precision
    bound: str                 # compute | memory | sparsifier | vector
    energy_pj: float | None

    @property
    def dram_bytes(self) -> float:
        return self.activation_bytes + self.weight_bytes + self.output_bytes + self.other_bytes

    @property
    def ideal_cycles(self) -> float:
        return self.useful_macs / self.peak_macs_per_cycle if self.peak_macs_per_cycle else 0.0


@dataclass(frozen=True)
class Totals:
    cycles: int
    linear_cycles: int
    dram_bytes: float
    activation_bytes: float  # linear ops' activation traffic + sparsifier traffic
    useful_macs: float
    ideal_cycles: float      # Σ useful MACs / peak MACs per cycle (per op precision)
    energy_pj: float | None
    cycles_by_bound: dict[str, int]

    @property
    def compute_utilization(self) -> float:
        return self.ideal_cycles / self.cycles if self.cycles else 0.0

    @property
    def dominant_bound(self) -> str:
        return max(sorted(self.cycles_by_bound), key=lambda bound: self.cycles_by_bound[bound])


@dataclass(frozen=True)
class RunResult:
    run: Run
    ops: tuple[OpResult, ...]
    totals: Totals
    dense: Totals            # the same run with every op dense, on the same hardware
    time_ms: float

    @property
    def speedup_end_to_end(self) -> float:
        return self.dense.cycles / self.totals.cycles

    @property
    def speedup_linear(self) -> float:
        return self.dense.linear_cycles / self.totals.linear_cycles if self.totals.linear_cycles else 1.0

    @property
    def activation_io_savings(self) -> float:
        return 1.0 - self.totals.activation_bytes / self.dense.activation_bytes if self.dense.activation_bytes else 0.0

    @property
    def io_savings(self) -> float:
        return 1.0 - self.totals.dram_bytes / self.dense.dram_bytes if self.dense.dram_bytes else 0.0


@dataclass(frozen=True)
class TraceResult:
    hardware: HardwareConfig
    trace: Trace
    runs: tuple[RunResult, ...]


# ---------------------------------------------------------------- helpers

def _dram_bytes_per_cycle(hw: HardwareConfig) -> float:
    return hw.memory.dram.bandwidth_gb_s / hw.clock_ghz


def _latency_cycles(hw: HardwareConfig) -> int:
    return int(math.ceil(hw.memory.dram.latency_ns * hw.clock_ghz))


def _peak_macs_per_cycle(hw: HardwareConfig, int8: bool) -> float:
    rate = hw.compute.int8_macs_per_fp16_mac if int8 else 1.0
    return hw.compute.fp16_macs_per_cycle * hw.cores * rate


def _vector_rate(hw: HardwareConfig) -> float:
    return float(hw.vector.elements_per_cycle * hw.cores)


def densified(op: Op) -> Op:
    if not op.is_gemm or not op.is_sparse:
        return op
    return dataclasses.replace(op, pattern="dense", sparse_operand=None, density=1.0)


def _useful_macs(op: Op) -> float:
    macs = float(op.M) * op.K * op.N * op.batch
    if op.causal:  # only the lower triangle (diagonal included) of the T×T matrix is real work
        tokens = op.M
        macs *= (tokens + 1) / (2 * tokens)
    return macs * (op.density if op.is_sparse else 1.0)


def _metadata_bytes_per_element(kept_fraction: float, m: int, metadata: str) -> float:
    if metadata == "bitmask":
        return 1.0 / 8.0
    return kept_fraction * index_metadata_bits(m) / 8.0


# ---------------------------------------------------------------- the sparsity rule

@dataclass(frozen=True)
class _Mode:
    mode: str
    hw_pattern: Pattern | None
    rule: str
    a_bytes_per_element: float
    k_compute_ratio: float
    k_unit: int
    overhead: int


def _candidate_modes(hw: HardwareConfig, op: Op) -> list[_Mode]:
    b = op.dtype_bytes
    dense = _Mode("dense", None, "dense op", b, 1.0, 1, 0)
    if not op.is_sparse:
        return [dense]
    data = parse_pattern(op.pattern)
    sparsity = hw.sparsity
    if sparsity.operand == "activation":
        natives = native_hardware_patterns(data, sparsity.parsed_patterns())
        if natives:
            modes = []
            for hw_pattern in natives:
                ratio = hw_pattern.n / hw_pattern.m
                a_bpe = ratio * b + _metadata_bytes_per_element(ratio, hw_pattern.m, sparsity.metadata)
                modes.append(_Mode("native", hw_pattern,
                                   f"{op.pattern} data fits hardware {hw_pattern} (every {op.pattern} mask is "
                                   f"{hw_pattern}-valid): compute shrinks to {hw_pattern.n}/{hw_pattern.m} of K, "
                                   f"activations stored in the {hw_pattern} format",
                                   a_bpe, ratio, hw_pattern.m, sparsity.overhead_cycles_per_tile))
            return modes
    if sparsity.compressed_io:
        if data.kind == "unstructured":
            meta = 1.0 / 8.0
            why = "unstructured data is never native; "
        else:
            meta = _metadata_bytes_per_element(op.density, data.m, sparsity.metadata)
            why = (f"no hardware pattern accepts {op.pattern} data; " if sparsity.operand == "activation"
                   else f"the sparse datapath takes the {sparsity.operand} operand; ")
        return [_Mode("compressed-io", None, why + "dense compute, compressed activation traffic "
                      "(decompressed on chip)", op.density * b + meta, 1.0, 1, 0)]
    return [dataclasses.replace(dense, rule=f"{op.pattern} not executable natively and no compressed I/O: dense")]


def _gemm_work(op: Op, mode: _Mode, out_bytes: float) -> GemmWork:
    causal = "none"
    if op.causal:
        causal = "value" if op.role == "attn_value" else "score"
    return GemmWork(
        M=op.M, K=op.K, N=op.N, batch=op.batch, b_batch=op.operand_b_batch or op.batch, causal=causal,
        a_bytes_per_element=mode.a_bytes_per_element,
        b_bytes=op.dtype_bytes, out_bytes=out_bytes, k_compute_ratio=mode.k_compute_ratio, k_unit=mode.k_unit,
        int8=op.dtype_bytes <= 1.0 and op.kind == "linear", a_on_chip=op.role == "attn_value",
        out_on_chip=op.role == "attn_score", overhead_cycles_per_step=mode.overhead,
    )


# ---------------------------------------------------------------- sparsifier

@dataclass(frozen=True)
class _Producer:
    """The vector op that produces a linear's activation: its vector-unit and DRAM-streaming cycles.

    Its DRAM latency is not here: it is paid before any data arrives, so nothing can overlap with it."""
    compute_cycles: int
    memory_cycles: int

    @property
    def busy_cycles(self) -> int:
        return max(self.compute_cycles, self.memory_cycles)


def producer_of(result: OpResult) -> _Producer:
    return _Producer(result.compute_cycles, result.load_cycles)


def _fused_added_cycles(kind: str, select_cycles: int, producer: _Producer, extra_write_cycles: int) -> int:
    """Cycles a fused sparsifier adds to its producer (docs/model.md §4); never negative.

    The fused op streams as the producer does, after the same DRAM latency: its memory time grows by the
    extra write, and either the vector unit does the selection too (``vector``: its compute grows) or a
    dedicated unit runs beside it. Only the growth of the slower of the two is added."""
    memory_cycles = producer.memory_cycles + extra_write_cycles
    if kind == "dedicated":
        fused_cycles = max(producer.compute_cycles, select_cycles, memory_cycles)
    else:
        fused_cycles = max(producer.compute_cycles + select_cycles, memory_cycles)
    return fused_cycles - producer.busy_cycles


def _sparsifier_cost(hw: HardwareConfig, op: Op, stored_activation_bytes: float, producer: _Producer | None,
                     has_dense_siblings: bool) -> tuple[int, float, str]:
    """(added cycles, added DRAM bytes, description) of selecting op's kept activations."""
    sparsifier = hw.sparsity.sparsifier
    elements = float(op.M) * op.K * op.batch
    if sparsifier.kind == "none":
        return 0, 0.0, "sparsifier: none (activations arrive pruned)"
    if sparsifier.kind == "dedicated":
        select_cycles = int(math.ceil(elements / (sparsifier.elements_per_cycle * hw.cores)))
    else:
        select_cycles = int(math.ceil(elements * sparsifier.vector_ops_per_element / _vector_rate(hw)))
    if sparsifier.fused and producer is not None:
        extra_bytes = stored_activation_bytes if has_dense_siblings else 0.0
        extra_write = int(math.ceil(extra_bytes / _dram_bytes_per_cycle(hw)))
        added = _fused_added_cycles(sparsifier.kind, select_cycles, producer, extra_write)
        return added, extra_bytes, f"sparsifier: {sparsifier.kind}, fused with the producer"
    pass_bytes = elements * op.dtype_bytes + stored_activation_bytes
    memory_cycles = int(math.ceil(pass_bytes / _dram_bytes_per_cycle(hw)))
    return (_latency_cycles(hw) + max(select_cycles, memory_cycles), pass_bytes,
            f"sparsifier: {sparsifier.kind}, own pass (reads dense, writes selected)")


# ---------------------------------------------------------------- ops

def _energy(hw: HardwareConfig, int8: bool, macs: float, dram: float, l2: float, sram: float, vector_ops: float):
    energy = hw.energy
    if energy is None:
        return None
    mac = energy.mac_int8_pj if int8 else energy.mac_fp16_pj
    return (macs * mac + dram * energy.dram_pj_per_byte + l2 * energy.l2_pj_per_byte + sram * energy.sram_pj_per_byte
            + vector_ops * energy.vector_pj_per_op)


@lru_cache(maxsize=65536)
def _simulate_vector(hw: HardwareConfig, op: Op) -> OpResult:
    fused_in_attention = op.role == "attn_softmax"  # FlashAttention-style: scores never leave the chip
    traffic = 0.0 if fused_in_attention else float(op.bytes_in + op.bytes_out)
    operations = float(op.elements) * op.ops_per_element
    compute = int(math.ceil(operations / _vector_rate(hw)))
    memory = int(math.ceil(traffic / _dram_bytes_per_cycle(hw)))
    latency = 0 if fused_in_attention else _latency_cycles(hw)
    bound = "vector" if compute >= memory else "memory"
    return OpResult(
        name=op.name, layer=op.layer, role=op.role, kind=op.kind, mode="vector", data_pattern="dense", hw_pattern=None,
        rule="vector unit; scores stay on chip (fused attention)" if fused_in_attention else "vector unit, streamed from DRAM",
        mapping=None, cycles=latency + max(compute, memory), compute_cycles=compute, load_cycles=memory, store_cycles=0,
        latency_cycles=latency, sparsifier_cycles=0, blocks=0, waves=0, tail_blocks=0, activation_bytes=0.0,
        weight_bytes=0.0, output_bytes=0.0, other_bytes=traffic, l2_bytes=0.0, useful_macs=0.0, issued_macs=0.0,
        peak_macs_per_cycle=_peak_macs_per_cycle(hw, False), bound=bound,
        energy_pj=_energy(hw, False, 0.0, traffic, 0.0, 0.0, operations),
    )


def _gemm_bound(result: GemmResult) -> str:
    return "compute" if result.compute_cycles >= result.load_cycles + result.store_cycles else "memory"


def _simulate_gemm_op(hw: HardwareConfig, op: Op, producer: _Producer | None, has_dense_siblings: bool) -> OpResult:
    best: tuple[GemmResult, _Mode, int, float, str] | None = None
    for mode in _candidate_modes(hw, op):
        work = _gemm_work(op, mode, OUTPUT_BYTES)
        result = simulate_gemm(hw, work, op.name)
        spars_cycles, spars_bytes, spars_rule = 0, 0.0, ""
        if op.is_sparse:
            stored = op.M * op.K * op.batch * mode.a_bytes_per_element
            spars_cycles, spars_bytes, spars_rule = _sparsifier_cost(hw, op, stored, producer, has_dense_siblings)
        if best is None or result.cycles + spars_cycles < best[0].cycles + best[2]:
            best = (result, mode, spars_cycles, spars_bytes, spars_rule)
    assert best is not None
    result, mode, spars_cycles, spars_bytes, spars_rule = best
    work_int8 = op.dtype_bytes <= 1.0 and op.kind == "linear"
    bound = _gemm_bound(result)
    if spars_cycles > max(result.compute_cycles, result.load_cycles + result.store_cycles):
        bound = "sparsifier"
    dram = result.dram_read_a_bytes + result.dram_read_b_bytes + result.dram_write_bytes + spars_bytes
    fill = result.l2_read_bytes
    return OpResult(
        name=op.name, layer=op.layer, role=op.role, kind=op.kind, mode=mode.mode, data_pattern=op.pattern,
        hw_pattern=str(mode.hw_pattern) if mode.hw_pattern else None,
        rule=mode.rule + (f"; {spars_rule}" if spars_rule else ""), mapping=str(result.mapping),
        cycles=result.cycles + spars_cycles, compute_cycles=result.compute_cycles, load_cycles=result.load_cycles,
        store_cycles=result.store_cycles, latency_cycles=result.latency_cycles, sparsifier_cycles=spars_cycles,
        blocks=result.blocks, waves=result.waves, tail_blocks=result.tail_blocks,
        activation_bytes=result.dram_read_a_bytes, weight_bytes=result.dram_read_b_bytes,
        output_bytes=result.dram_write_bytes, other_bytes=spars_bytes, l2_bytes=fill,
        useful_macs=_useful_macs(op), issued_macs=result.issued_macs,
        peak_macs_per_cycle=_peak_macs_per_cycle(hw, work_int8), bound=bound,
        energy_pj=_energy(hw, work_int8, result.issued_macs, dram, fill, fill, 0.0),
    )


# ---------------------------------------------------------------- runs

def simulate_ops(hw: HardwareConfig, ops: tuple[Op, ...]) -> tuple[OpResult, ...]:
    """Simulate ops in order; a sparse linear's producer is the last vector op before it."""
    results: list[OpResult] = []
    producer: _Producer | None = None
    consumers_dense: dict[int, bool] = {}
    group = -1
    for op in ops:  # which producer groups also feed dense linears (then the sparse form is an extra write)
        if op.kind == "vector":
            group += 1
        elif op.kind == "linear" and not op.is_sparse:
            consumers_dense[group] = True
    group = -1
    for op in ops:
        if op.kind == "vector":
            group += 1
            result = _simulate_vector(hw, op)
            producer = producer_of(result)
        else:
            result = _simulate_gemm_op(hw, op, producer if op.kind == "linear" else None,
                                       consumers_dense.get(group, False))
        results.append(result)
    return tuple(results)


def _totals(ops: tuple[OpResult, ...]) -> Totals:
    by_bound: dict[str, int] = {}
    for op in ops:
        by_bound[op.bound] = by_bound.get(op.bound, 0) + op.cycles
    energies = [op.energy_pj for op in ops]
    linear = [op for op in ops if op.kind == "linear"]
    return Totals(
        cycles=sum(op.cycles for op in ops),
        linear_cycles=sum(op.cycles for op in linear),
        dram_bytes=sum(op.dram_bytes for op in ops),
        activation_bytes=sum(op.activation_bytes + op.other_bytes for op in linear),
        useful_macs=sum(op.useful_macs for op in ops),
        ideal_cycles=sum(op.ideal_cycles for op in ops),
        energy_pj=None if any(energy is None for energy in energies) else sum(energies),
        cycles_by_bound=by_bound,
    )


def simulate_run(hw: HardwareConfig, run: Run) -> RunResult:
    ops = simulate_ops(hw, run.ops)
    dense_ops = simulate_ops(hw, tuple(densified(op) for op in run.ops))
    totals = _totals(ops)
    return RunResult(run=run, ops=ops, totals=totals, dense=_totals(dense_ops),
                     time_ms=totals.cycles / (hw.clock_ghz * 1e6))


def simulate_trace(hw: HardwareConfig, trace: Trace) -> TraceResult:
    return TraceResult(hardware=hw, trace=trace, runs=tuple(simulate_run(hw, run) for run in trace.runs))
