"""Replay a trace on a hardware config: per-op results, per-run totals, metrics against a baseline.

Ops run one after another, each using the whole chip (docs/model.md §1). The rules live in their own
modules: mapper/pipeline/compute/memory time a GEMM, sparse decides how a pruned op executes and what
its sparsifier costs, schedule reads producer groups and fusion from the trace, metrics defines totals.

Identical ops are simulated once. An op's result depends on the op without its name, layer and
producer name, and on its producer group (:class:`OpKey`); :func:`compile_trace` finds the distinct keys
of a trace once (llama.json: 104 keys among 6,180 ops), :func:`simulate_keys` simulates them on
one hardware point, and the per-op results of every run are copies of those.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

from amber_sim.hw.config import HardwareConfig
from amber_sim.sim import metrics
from amber_sim.sim.compute import peak_macs_per_cycle
from amber_sim.sim.mapper import GemmResult, GemmWork, NoMappingFits, simulate_gemm
from amber_sim.sim.memory import kernel_overhead_cycles, latency_cycles, streaming_cycles
from amber_sim.sim.metrics import RunMetrics, Totals
from amber_sim.sim.schedule import (baseline_run, dense_twin_ops, producer_groups, producer_index, reads_dram_input,
                                    writes_dram_output)
from amber_sim.sim.sparse import (NO_SPARSIFIER, ExecutionMode, SparsifierCost, candidate_modes, fused_selection,
                                  fuses_with, own_pass)
from amber_sim.trace import Op, Run, Trace

OUTPUT_BYTES = 2.0  # every op writes fp16 (int8 GEMMs dequantise their int32 sums)
TWIN = "all-dense twin"


@dataclass(frozen=True)
class OpResult:
    name: str
    layer: int
    role: str
    kind: str
    mode: str                  # dense | native | compressed-io | vector
    data_pattern: str
    hw_pattern: str | None     # the hardware N:M pattern used natively
    rule: str                  # which rules decided the mode and the sparsifier, in words
    mapping: str | None
    cycles: int                # everything: the op, and the sparsifier charged to it
    compute_cycles: int
    load_cycles: int
    store_cycles: int
    latency_cycles: int
    kernel_overhead_cycles: int  # the fixed cost of a kernel, when this op starts one (it reads DRAM input)
    sparsifier_cycles: int     # cycles a selection adds here: its own pass (linear) or fused into this producer
    blocks: int
    waves: int
    tail_blocks: int
    activation_bytes: float    # DRAM bytes of the sparse-able operand (A of linears), metadata included
    weight_bytes: float        # DRAM bytes of B
    output_bytes: float        # DRAM bytes written by the op
    other_bytes: float         # vector-op traffic and the sparsifier's own traffic
    sparsifier_bytes: float    # the part of other_bytes the sparsifier adds
    l2_bytes: float
    useful_macs: float         # MACs on kept activations only
    issued_macs: float         # MACs the matrix unit executes (padding included)
    peak_macs_per_cycle: float # of the whole chip, at this op's precision
    bound: str                 # compute | memory | sparsifier | vector | collective
    energy_pj: float | None
    link_bytes: float = 0.0    # bytes this chip sends over its links (collectives only)
    hidden_cycles: int = 0     # a collective's cycles hidden behind the GEMMs it overlaps (not in ``cycles``)

    @property
    def dram_bytes(self) -> float:
        return self.activation_bytes + self.weight_bytes + self.output_bytes + self.other_bytes

    @property
    def ideal_cycles(self) -> float:
        return self.useful_macs / self.peak_macs_per_cycle if self.peak_macs_per_cycle else 0.0


@dataclass(frozen=True)
class RunResult:
    run: Run
    ops: tuple[OpResult, ...]
    totals: Totals
    baseline_totals: Totals  # the baseline's (the trace's dense run of this precision, or the twin)
    baseline: str            # the baseline run's id, or TWIN
    time_ms: float
    clock_ghz: float

    @property
    def numbers(self) -> RunMetrics:
        """The run's metrics against its baseline (docs/metrics.md; sim.metrics.run_metrics)."""
        return metrics.run_metrics(self.totals, self.baseline_totals, self.clock_ghz)

    @property
    def speedup_end_to_end(self) -> float:
        return self.numbers.end_to_end_speedup

    @property
    def speedup_linear(self) -> float:
        return self.numbers.linear_speedup

    @property
    def activation_io_savings(self) -> float:
        return self.numbers.activation_io_savings

    @property
    def io_savings(self) -> float:
        return self.numbers.io_savings


@dataclass(frozen=True)
class TraceResult:
    hardware: HardwareConfig
    trace: Trace
    runs: tuple[RunResult, ...]


# ---------------------------------------------------------------- what an op's result depends on

@dataclass(frozen=True)
class OpKey:
    """One op with everything its result depends on besides the hardware (name, layer, producer blanked)."""

    op: Op
    producer_kind: str | None = None         # linears: the kind of the op that produces the activation
    fused_consumers: tuple[Op, ...] = ()     # producers: the pruned linears whose selection may fuse here
    dense_consumers: bool = False            # producers: some consumer reads the dense output
    overlap_partners: tuple["OpKey", ...] = ()  # SP collectives: the GEMMs they can overlap (docs/model.md §8)


def _blank(op: Op) -> Op:
    return dataclasses.replace(op, name="", layer=0, producer=None)


def op_keys(ops: tuple[Op, ...]) -> list[OpKey]:
    """The key of every op of a run, in order."""
    groups = producer_groups(ops)
    sources = producer_index(ops)
    blanked = [_blank(op) for op in ops]
    keys = []
    for position, op in enumerate(ops):
        source = sources[position]
        producer_kind = ops[source].kind if source is not None and op.kind == "linear" else None
        group = groups.get(position)
        fused = tuple(blanked[c] for c in group.sparse_consumers) if group is not None else ()
        keys.append(OpKey(blanked[position], producer_kind, fused, group.dense_consumers if group else False))
    for position, op in enumerate(ops):
        partners = overlap_partner_positions(ops, position)
        if partners:
            keys[position] = dataclasses.replace(keys[position], overlap_partners=tuple(keys[i] for i in partners))
    return keys


def overlap_partner_positions(ops: tuple[Op, ...], position: int) -> tuple[int, ...]:
    """The GEMMs a sequence-parallel collective can overlap, by where sim.parallel.shard_ops puts it: a
    reduce-scatter right after the row-parallel linear whose output it reduces; an all-gather right before the
    linears that read what it gathers (the linears after it with the first one's producer, mitigation work
    between them skipped)."""
    op = ops[position]
    if op.kind != "collective":
        return ()
    if op.role == "reduce_scatter":
        return (position - 1,) if position > 0 and ops[position - 1].kind == "linear" else ()
    if op.role != "all_gather" or position + 1 >= len(ops) or ops[position + 1].kind != "linear":
        return ()
    producer, partners = ops[position + 1].producer, []
    for later in range(position + 1, len(ops)):
        if ops[later].kind == "linear" and ops[later].producer == producer:
            partners.append(later)
        elif not ops[later].sparse_overhead:  # a mitigation between the readers does not end the group
            break
    return tuple(partners)


# ---------------------------------------------------------------- one GEMM op

def _energy(hw: HardwareConfig, int8: bool, macs: float, dram: float, l2: float, sram: float, vector_ops: float):
    energy = hw.energy
    if energy is None:
        return None
    mac = energy.mac_int8_pj if int8 else energy.mac_fp16_pj
    return (macs * mac + dram * energy.dram_pj_per_byte + l2 * energy.l2_pj_per_byte + sram * energy.sram_pj_per_byte
            + vector_ops * energy.vector_pj_per_op)


def _selection_vector_ops(hw: HardwareConfig, elements: float) -> float:
    sparsifier = hw.sparsity.sparsifier
    return elements * sparsifier.vector_ops_per_element if sparsifier.kind == "vector" else 0.0


def _activation_elements(op: Op) -> float:
    return float(op.M) * op.K * op.batch


def _useful_macs(op: Op) -> float:
    macs = float(op.M) * op.K * op.N * op.batch
    if op.is_causal:  # only the lower triangle (diagonal included) of the T×T matrix is real work
        macs *= (op.M + 1) / (2 * op.M)
    return macs * (op.density if op.is_sparse else 1.0)


def _gemm_work(op: Op, mode: ExecutionMode) -> GemmWork:
    return GemmWork(
        M=op.M, K=op.K, N=op.N, batch=op.batch, b_batch=op.operand_b_batch or op.batch, causal=op.causal,
        a_bytes_per_element=mode.a_bytes_per_element, b_bytes=op.dtype_bytes, out_bytes=OUTPUT_BYTES,
        k_compute_ratio=mode.k_compute_ratio, k_unit=mode.k_unit, int8=op.precision == "int8",
        a_on_chip=not reads_dram_input(op), out_on_chip=not writes_dram_output(op),
        overhead_cycles_per_step=mode.overhead_cycles_per_step, rate_fraction=mode.rate_fraction,
    )


@lru_cache(maxsize=65536)
def _gemm_choice(hw: HardwareConfig, op: Op, fused: bool) -> tuple[GemmResult, ExecutionMode, SparsifierCost]:
    """The fastest mode (ties: the first) with the sparsifier cost it carries here: none when the selection is
    fused into the producer (the producer is charged), its own pass otherwise."""
    modes = candidate_modes(hw, op.pattern, op.density, op.dtype_bytes)  # a dense op: its one dense mode
    best = None
    for mode in modes:
        result = simulate_gemm(hw, _gemm_work(op, mode), op.name)
        cost = NO_SPARSIFIER
        if op.is_sparse and not fused:
            elements = _activation_elements(op)
            cost = own_pass(hw, elements, op.dtype_bytes, elements * mode.a_bytes_per_element)
        if best is None or result.cycles + cost.cycles < best[0].cycles + best[2].cycles:
            best = (result, mode, cost)
    assert best is not None
    return best


def _simulate_gemm_op(hw: HardwareConfig, key: OpKey) -> OpResult:
    op = key.op
    fused = op.is_sparse and fuses_with(hw, key.producer_kind)
    result, mode, cost = _gemm_choice(hw, op, fused)
    rule = mode.rule
    if fused:
        rule += f"; sparsifier: {hw.sparsity.sparsifier.kind}, fused with the producer (charged there)"
    elif cost.rule:
        rule += f"; {cost.rule}"
    int8 = op.precision == "int8"
    bound = "compute" if result.compute_cycles >= result.load_cycles + result.store_cycles else "memory"
    if cost.cycles > max(result.compute_cycles, result.load_cycles + result.store_cycles):
        bound = "sparsifier"
    dram = result.dram_read_a_bytes + result.dram_read_b_bytes + result.dram_write_bytes + cost.dram_bytes
    selection_ops = _selection_vector_ops(hw, _activation_elements(op)) if cost.cycles else 0.0
    kernel = _kernel_cycles(hw, op)
    return OpResult(
        name=op.name, layer=op.layer, role=op.role, kind=op.kind, mode=mode.mode, data_pattern=op.pattern,
        hw_pattern=str(mode.hw_pattern) if mode.hw_pattern else None, rule=rule, mapping=str(result.mapping),
        cycles=kernel + result.cycles + cost.cycles, compute_cycles=result.compute_cycles,
        load_cycles=result.load_cycles, store_cycles=result.store_cycles, latency_cycles=result.latency_cycles,
        kernel_overhead_cycles=kernel, sparsifier_cycles=cost.cycles,
        blocks=result.blocks, waves=result.waves, tail_blocks=result.tail_blocks,
        activation_bytes=result.dram_read_a_bytes, weight_bytes=result.dram_read_b_bytes,
        output_bytes=result.dram_write_bytes, other_bytes=cost.dram_bytes, sparsifier_bytes=cost.dram_bytes,
        l2_bytes=result.l2_read_bytes, useful_macs=_useful_macs(op), issued_macs=result.issued_macs,
        peak_macs_per_cycle=peak_macs_per_cycle(hw, int8), bound=bound,
        energy_pj=_energy(hw, int8, result.issued_macs, dram, result.l2_read_bytes, result.fill_bytes, selection_ops),
    )


def _kernel_cycles(hw: HardwareConfig, op: Op) -> int:
    """The kernel's fixed cost, charged to the op that starts it: one reading its input from DRAM (an op fed on
    chip, as inside fused attention, runs in its producer's kernel)."""
    return kernel_overhead_cycles(hw) if reads_dram_input(op) else 0


# ---------------------------------------------------------------- one vector op

def _simulate_vector_op(hw: HardwareConfig, key: OpKey) -> OpResult:
    """Vector unit: DRAM latency (when it touches DRAM) + max(vector cycles, streaming cycles), plus the
    selections of its pruned consumers when the sparsifier fuses here (sparse.fused_selection)."""
    op = key.op
    traffic = (op.bytes_in if reads_dram_input(op) else 0) + (op.bytes_out if writes_dram_output(op) else 0)
    operations = float(op.elements) * op.ops_per_element
    compute = int(math.ceil(operations / (hw.vector.elements_per_cycle * hw.cores)))
    memory = streaming_cycles(hw, traffic)
    latency = latency_cycles(hw) if traffic else 0
    kernel = _kernel_cycles(hw, op)
    rule = "vector unit, streamed from DRAM" if traffic else "vector unit; input and output stay on chip (fused attention)"
    cost = NO_SPARSIFIER
    fused = key.fused_consumers if fuses_with(hw, "vector") else ()
    selection_ops = 0.0
    if fused:
        consumers = []
        for consumer in fused:
            _, mode, _ = _gemm_choice(hw, consumer, True)
            elements = _activation_elements(consumer)
            consumers.append((elements, elements * mode.a_bytes_per_element))
            selection_ops += _selection_vector_ops(hw, elements)
        cost = fused_selection(hw, compute, memory, tuple(consumers), key.dense_consumers)
        rule += f"; {cost.rule}"
    bound = "vector" if compute >= memory else "memory"
    if cost.cycles > max(compute, memory):
        bound = "sparsifier"
    return OpResult(
        name=op.name, layer=op.layer, role=op.role, kind=op.kind, mode="vector", data_pattern="dense", hw_pattern=None,
        rule=rule, mapping=None, cycles=kernel + latency + max(compute, memory) + cost.cycles, compute_cycles=compute,
        load_cycles=memory, store_cycles=0, latency_cycles=latency, kernel_overhead_cycles=kernel,
        sparsifier_cycles=cost.cycles, blocks=0, waves=0,
        tail_blocks=0, activation_bytes=0.0, weight_bytes=0.0, output_bytes=0.0,
        other_bytes=float(traffic) + cost.dram_bytes, sparsifier_bytes=cost.dram_bytes, l2_bytes=0.0,
        useful_macs=0.0, issued_macs=0.0, peak_macs_per_cycle=peak_macs_per_cycle(hw, False), bound=bound,
        energy_pj=_energy(hw, False, 0.0, traffic + cost.dram_bytes, 0.0, 0.0, operations + selection_ops),
    )


def _simulate_collective_op(hw: HardwareConfig, key: OpKey) -> OpResult:
    """A collective between the chips of the config's system (sim.parallel inserts them): its time by the
    collective model (sim.collectives: α–β, per protocol when the system gives protocols), on the interconnect:
    no DRAM traffic, no MACs, no energy model."""
    from amber_sim.errors import InputError
    from amber_sim.sim.collectives import collective_cost

    op = key.op
    if hw.system is None:
        raise InputError(hw.name, "system", f"op {op.name or op.role} is a collective, but the config describes a "
                         "single chip")
    cost = collective_cost(hw.system, op.role, op.bytes_in, chips=op.batch)
    cycles = int(math.ceil(cost.seconds * hw.clock_ghz * 1e9 - 1e-9))
    rule = f"{op.role} of {op.bytes_in:,} bytes over {op.batch} chips, {cost.algorithm} algorithm"
    if cost.protocol:
        spec = getattr(hw.system.protocols, cost.protocol)
        rule += (f", {cost.protocol} protocol (docs/model.md §8): {spec.base_latency_us:g} µs + {cost.steps} steps "
                 f"of {hw.system.latency_us + spec.step_latency_us:g} µs + {cost.sent_bytes_per_chip:,.0f} bytes per "
                 f"chip over {spec.bandwidth_share:g} of the links' sustained bandwidth")
    else:
        rule += (f": {cost.steps} steps of {hw.system.latency_us:g} µs + {cost.sent_bytes_per_chip:,.0f} bytes per "
                 "chip over the links")
    hidden = 0
    if hw.system.overlap_collectives and key.overlap_partners and cycles:
        gemm_cycles = sum(simulate_key(hw, partner).cycles for partner in key.overlap_partners)
        hidden = min(cycles, hideable_cycles(gemm_cycles, op.batch))
        cycles -= hidden
        rule += (f"; {hidden:,} cycles hidden behind {len(key.overlap_partners)} GEMM(s) of {gemm_cycles:,} cycles "
                 f"split into {op.batch} chunks")
    return OpResult(
        name=op.name, layer=op.layer, role=op.role, kind="collective", mode="collective", data_pattern="dense",
        hw_pattern=None, rule=rule, mapping=None, cycles=cycles, compute_cycles=0, load_cycles=0, store_cycles=0,
        latency_cycles=0, kernel_overhead_cycles=0, sparsifier_cycles=0, blocks=0, waves=0, tail_blocks=0,
        activation_bytes=0.0, weight_bytes=0.0, output_bytes=0.0, other_bytes=0.0, sparsifier_bytes=0.0,
        l2_bytes=0.0, useful_macs=0.0, issued_macs=0.0, peak_macs_per_cycle=peak_macs_per_cycle(hw, False),
        bound="collective", energy_pj=None if hw.energy is None else 0.0, link_bytes=cost.sent_bytes_per_chip,
        hidden_cycles=hidden,
    )


def hideable_cycles(gemm_cycles: int, chips: int) -> int:
    """What a collective split into ``chips`` chunks can hide behind GEMMs of ``gemm_cycles`` split alike: all
    but one chunk of the GEMM runs while a chunk moves (the first all-gather chunk is the chip's own, the last
    reduce-scatter chunk is computed before it is sent), so the pair takes max(G, C + G/p) and C − (p−1)/p · G
    of the collective stays exposed."""
    return (gemm_cycles * (chips - 1)) // chips


@lru_cache(maxsize=65536)
def simulate_key(hw: HardwareConfig, key: OpKey) -> OpResult:
    """The result of one distinct op (name and layer blank)."""
    if key.op.kind == "vector":
        return _simulate_vector_op(hw, key)
    if key.op.kind == "collective":
        return _simulate_collective_op(hw, key)
    return _simulate_gemm_op(hw, key)


def _simulate_named(hw: HardwareConfig, key: OpKey, op_name: str) -> OpResult:
    """simulate_key, with an error that names one op of the trace that has this key."""
    try:
        return simulate_key(hw, key)
    except NoMappingFits as error:
        raise error.for_op(op_name) from None


def clear_caches() -> None:
    """Forget every result (benchmarks measure cold simulation with this)."""
    from amber_sim.sim import mapper

    simulate_key.cache_clear()
    _gemm_choice.cache_clear()
    mapper.clear_caches()


# ---------------------------------------------------------------- programs: a trace compiled once

@dataclass(frozen=True)
class RunProgram:
    run: Run
    keys: tuple[int, ...]              # per op, the index of its key in Program.keys
    baseline: str                      # the baseline run's id, or TWIN
    baseline_keys: tuple[int, ...]     # per op of the baseline (that run's ops, or the twin's)

    def counts(self) -> tuple[tuple[int, int], ...]:
        return _counted(self.keys)

    def baseline_counts(self) -> tuple[tuple[int, int], ...]:
        return _counted(self.baseline_keys)


@dataclass(frozen=True)
class Program:
    """A trace compiled for simulation: its distinct op keys and each run as indices into them."""

    keys: tuple[OpKey, ...]
    names: tuple[str, ...]             # the name of one op with each key (for error messages)
    runs: tuple[RunProgram, ...]


def _counted(indices: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    counts: dict[int, int] = {}
    for index in indices:
        counts[index] = counts.get(index, 0) + 1
    return tuple(sorted(counts.items()))


def compile_runs(runs: tuple[Run, ...], baselines: dict[str, Run | None]) -> Program:
    """Distinct keys of the runs and of their baselines (``baselines``: run id → baseline run or None)."""
    index: dict[OpKey, int] = {}
    names: list[str] = []

    def indices(ops: tuple[Op, ...]) -> tuple[int, ...]:
        found = []
        for key, op in zip(op_keys(ops), ops):
            position = index.setdefault(key, len(index))
            if position == len(names):
                names.append(op.name)
            found.append(position)
        return tuple(found)

    programs = []
    for run in runs:
        keys = indices(run.ops)
        base = baselines.get(run.id)
        if base is None:
            programs.append(RunProgram(run, keys, TWIN, indices(dense_twin_ops(run.ops))))
        else:
            programs.append(RunProgram(run, keys, base.id, keys if base is run else indices(base.ops)))
    return Program(tuple(sorted(index, key=index.__getitem__)), tuple(names), tuple(programs))


def compile_trace(trace: Trace) -> Program:
    """Compile every run of the trace; each run's baseline is the trace's dense run of its precision."""
    return compile_runs(trace.runs, {run.id: baseline_run(trace, run) for run in trace.runs})


def simulate_keys(hw: HardwareConfig, program: Program) -> tuple[OpResult, ...]:
    """The result of every distinct key of the program on one hardware point."""
    return tuple(_simulate_named(hw, key, name) for key, name in zip(program.keys, program.names))


def program_totals(results: tuple[OpResult, ...], counts: tuple[tuple[int, int], ...]) -> Totals:
    return metrics.totals((results[index], count) for index, count in counts)


def _named(result: OpResult, op: Op) -> OpResult:
    """A copy of a key's result under the op's name and layer (dataclasses.replace would re-run __init__ for
    each of the trace's thousands of ops; the fields are the same but two)."""
    named = object.__new__(OpResult)
    named.__dict__.update(result.__dict__)
    named.__dict__["name"] = op.name
    named.__dict__["layer"] = op.layer
    return named


def _run_result(hw: HardwareConfig, program: RunProgram, results: tuple[OpResult, ...]) -> RunResult:
    ops = tuple(_named(results[index], op) for index, op in zip(program.keys, program.run.ops))
    run_totals = program_totals(results, program.counts())
    baseline = program_totals(results, program.baseline_counts())
    return RunResult(run=program.run, ops=ops, totals=run_totals, baseline_totals=baseline, baseline=program.baseline,
                     time_ms=run_totals.cycles / (hw.clock_ghz * 1e6), clock_ghz=hw.clock_ghz)


# ---------------------------------------------------------------- public entry points

def simulate_ops(hw: HardwareConfig, ops: tuple[Op, ...]) -> tuple[OpResult, ...]:
    """Simulate one run's ops in order (producer groups from their ``producer`` fields)."""
    return tuple(_named(_simulate_named(hw, key, op.name), op) for key, op in zip(op_keys(ops), ops))


def simulate_run(hw: HardwareConfig, run: Run, baseline: Run | None = None) -> RunResult:
    """One run against ``baseline`` (a dense run of the same precision), or against its all-dense twin."""
    program = compile_runs((run,), {run.id: baseline})
    return _run_result(hw, program.runs[0], simulate_keys(hw, program))


def mitigation_free_cycles(hw: HardwareConfig, run: Run) -> int:
    """Prefill cycles of ``run`` with its mitigation ops taken out (``sparse_overhead``, the ops its dense twin and
    baseline drop too; role ``mitigation`` in captured traces): the run's cost less all that its mitigation costs,
    including what those ops force on others (a producer that must also write the dense activation a per-token
    correction reads; docs/metrics.md, ``mitig.``)."""
    kept = dataclasses.replace(run, ops=tuple(op for op in run.ops if not op.sparse_overhead))
    program = compile_runs((kept,), {kept.id: kept})  # its own baseline: no dense twin to simulate
    return program_totals(simulate_keys(hw, program), program.runs[0].counts()).cycles


def simulate_trace(hw: HardwareConfig, trace: Trace) -> TraceResult:
    program = compile_trace(trace)
    results = simulate_keys(hw, program)
    return TraceResult(hardware=hw, trace=trace, runs=tuple(_run_result(hw, run, results) for run in program.runs))
