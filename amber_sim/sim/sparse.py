"""Sparsity rules: pattern compatibility, execution modes, stored activation bytes, the sparsifier's cost.

docs/model.md §4. For a linear whose activation is pruned (N:M or unstructured, measured density):
- **compatibility** (:func:`runs_natively`): data N:M runs natively on hardware Nh:Mh iff every N:M-valid
  mask is Nh:Mh-valid, i.e. the worst case over every aligned hardware group of the kept values that can
  land in it is ≤ Nh (computed over all alignments, :func:`worst_case_kept_in_hw_group`);
- **modes** (:func:`candidate_modes`): ``native`` on each accepting hardware pattern, else
  ``compressed-io``, else ``dense``;
- **stored bytes** (:func:`stored_activation_bytes`): the one formula for an activation's bytes in a
  compressed format, used by the simulator and by ``trace_summary``;
- **the sparsifier** (:func:`selection_cycles`, :func:`fused_selection`, :func:`own_pass`): what the
  top-N-of-M selection costs, fused with the producer or as its own pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from amber_sim.hw.config import HardwareConfig
from amber_sim.patterns import Pattern, parse_pattern
from amber_sim.sim.memory import kernel_overhead_cycles, latency_cycles, streaming_cycles

# ---------------------------------------------------------------- compatibility


@lru_cache(maxsize=4096)
def worst_case_kept_in_hw_group(n: int, m: int, mh: int) -> int:
    """Most kept values of N:M data that can land in one aligned group of ``mh`` channels.

    A hardware group starting at offset ``o`` inside a data group overlaps consecutive data groups, each
    contributing at most ``min(N, overlap)`` kept values; the worst offset over one period decides."""
    period = math.lcm(m, mh)
    worst = 0
    for start in range(0, period, mh):
        kept, position, end = 0, start, start + mh
        while position < end:
            group_end = (position // m + 1) * m
            overlap = min(end, group_end) - position
            kept += min(n, overlap)
            position += overlap
        worst = max(worst, kept)
    return worst


def runs_natively(data: Pattern, hardware: Pattern) -> bool:
    """True when every mask valid for ``data`` is valid for ``hardware`` (both N:M)."""
    if data.kind != "nm" or hardware.kind != "nm":
        return False
    return worst_case_kept_in_hw_group(data.n, data.m, hardware.m) <= hardware.n


def native_hardware_patterns(data: Pattern, hardware_patterns: tuple[Pattern, ...]) -> tuple[Pattern, ...]:
    """Hardware patterns that accept the data natively and actually skip work (Nh < Mh)."""
    return tuple(hw for hw in hardware_patterns if hw.n < hw.m and runs_natively(data, hw))


# ---------------------------------------------------------------- stored bytes

def index_metadata_bits(m: int) -> int:
    """Bits of in-group index stored per kept value: ⌈log₂ M⌉."""
    return max(1, math.ceil(math.log2(m))) if m > 1 else 0


def stored_bytes_per_element(kept_fraction: float, dtype_bytes: float, m: int, metadata: str) -> float:
    """Bytes per *dense* activation element in a compressed format: kept values plus metadata.

    values: kept_fraction · dtype_bytes; metadata ``index``: ⌈log₂ M⌉ bits per kept value; ``bitmask``:
    1 bit per dense element (docs/model.md §4)."""
    if metadata == "index":
        metadata_bits = kept_fraction * index_metadata_bits(m)
    elif metadata == "bitmask":
        metadata_bits = 1.0
    else:
        raise ValueError(f"unknown metadata format {metadata!r}")
    return kept_fraction * dtype_bytes + metadata_bits / 8.0


def stored_activation_bytes(elements: float, kept_fraction: float, dtype_bytes: float, pattern: Pattern,
                            metadata: str) -> float:
    """Bytes of an activation of ``elements`` dense entries stored compressed in ``pattern``'s format.

    Unstructured data always carries a bitmask (an index needs a group); dense data is stored dense."""
    if pattern.kind == "dense":
        return elements * dtype_bytes
    if pattern.kind == "unstructured":
        return elements * stored_bytes_per_element(kept_fraction, dtype_bytes, 2, "bitmask")
    return elements * stored_bytes_per_element(kept_fraction, dtype_bytes, pattern.m, metadata)


# ---------------------------------------------------------------- modes

@dataclass(frozen=True)
class ExecutionMode:
    """How one pruned linear executes on the hardware."""

    mode: str                   # native | compressed-io | dense
    hw_pattern: Pattern | None  # the hardware N:M pattern used natively
    rule: str                   # why, in words
    a_bytes_per_element: float  # stored bytes per dense activation element (values + metadata)
    k_compute_ratio: float      # fraction of K the matrix unit computes (Nh/Mh native, else 1)
    k_unit: int                 # K tiles are multiples of this (the hardware group M when native)
    overhead_cycles_per_step: int
    rate_fraction: float = 1.0  # native: sparsity.sustained_fraction, the share of the nominal rate it sustains


def dense_mode(dtype_bytes: float, rule: str = "dense op") -> ExecutionMode:
    return ExecutionMode("dense", None, rule, dtype_bytes, 1.0, 1, 0)


def _native_rate_note(hw: HardwareConfig) -> str:
    fraction = hw.sparsity.sustained_fraction
    return "" if fraction >= 1.0 else f", at {fraction:g} of the nominal rate (sparsity.sustained_fraction)"


def candidate_modes(hw: HardwareConfig, pattern: str, density: float, dtype_bytes: float) -> tuple[ExecutionMode, ...]:
    """Every way the hardware can execute an activation of ``pattern`` (first rule that applies):
    1. ``native``: the sparse operand is the activation and hardware patterns accept the data; one mode per
       accepting pattern, the activation stored in that pattern's format, K shrunk to Nh/Mh, computed at the
       sparse instruction's sustained fraction of its nominal rate;
    2. ``compressed-io``: dense compute, the activation travels in its own compressed format;
    3. ``dense``."""
    data = parse_pattern(pattern)
    if data.kind == "dense":
        return (dense_mode(dtype_bytes),)
    sparsity = hw.sparsity
    if sparsity.operand == "activation":
        natives = native_hardware_patterns(data, sparsity.parsed_patterns())
        if natives:
            return tuple(
                ExecutionMode("native", hw_pattern,
                              f"{pattern} data fits hardware {hw_pattern} (every {pattern} mask is "
                              f"{hw_pattern}-valid): compute shrinks to {hw_pattern.n}/{hw_pattern.m} of K"
                              f"{_native_rate_note(hw)}, "
                              f"activations stored in the {hw_pattern} format",
                              stored_bytes_per_element(hw_pattern.n / hw_pattern.m, dtype_bytes, hw_pattern.m,
                                                       sparsity.metadata),
                              hw_pattern.n / hw_pattern.m, hw_pattern.m, sparsity.overhead_cycles_per_tile,
                              sparsity.sustained_fraction)
                for hw_pattern in natives)
    if sparsity.compressed_io:
        if data.kind == "unstructured":
            why = "unstructured data is never native; "
        elif sparsity.operand == "activation":
            why = f"no hardware pattern accepts {pattern} data; "
        else:
            why = f"the sparse datapath takes the {sparsity.operand} operand; "
        a_bytes = stored_activation_bytes(1.0, density, dtype_bytes, data, sparsity.metadata)
        return (ExecutionMode("compressed-io", None, why + "dense compute, compressed activation traffic "
                              "(decompressed on chip)", a_bytes, 1.0, 1, 0),)
    return (dense_mode(dtype_bytes, f"{pattern} not executable natively and no compressed I/O: dense"),)


# ---------------------------------------------------------------- the sparsifier

def selection_cycles(hw: HardwareConfig, elements: float) -> int:
    """Cycles of the top-N-of-M selection over ``elements`` activation entries on the whole chip
    (0 for ``none``; a dedicated unit at elements_per_cycle per core; the vector unit at
    vector_ops_per_element operations each)."""
    sparsifier = hw.sparsity.sparsifier
    if sparsifier.kind == "none":
        return 0
    if sparsifier.kind == "dedicated":
        return int(math.ceil(elements / (sparsifier.elements_per_cycle * hw.cores)))
    return int(math.ceil(elements * sparsifier.vector_ops_per_element / (hw.vector.elements_per_cycle * hw.cores)))


def fuses_with(hw: HardwareConfig, producer_kind: str | None) -> bool:
    """The selection runs inside the producing op when the config says ``fused`` and the producer is a vector
    op (a norm or SiLU·mul streams the activation anyway); otherwise it is its own pass."""
    sparsifier = hw.sparsity.sparsifier
    return sparsifier.kind != "none" and sparsifier.fused and producer_kind == "vector"


@dataclass(frozen=True)
class SparsifierCost:
    cycles: int          # cycles the selection adds to the prefill
    dram_bytes: float    # DRAM bytes it adds
    rule: str


NO_SPARSIFIER = SparsifierCost(0, 0.0, "")


def own_pass(hw: HardwareConfig, elements: float, dtype_bytes: float, stored_bytes: float) -> SparsifierCost:
    """The selection as its own pass, a kernel of its own: its fixed overhead and the DRAM latency, then it reads
    the dense activation and writes the selected form, limited by the slower of the selection and the streaming."""
    kind = hw.sparsity.sparsifier.kind
    if kind == "none":
        return SparsifierCost(0, 0.0, "sparsifier: none (activations arrive pruned)")
    pass_bytes = elements * dtype_bytes + stored_bytes
    cycles = (kernel_overhead_cycles(hw) + latency_cycles(hw)
              + max(selection_cycles(hw, elements), streaming_cycles(hw, pass_bytes)))
    return SparsifierCost(cycles, pass_bytes, f"sparsifier: {kind}, own pass (reads dense, writes selected)")


def fused_selection(hw: HardwareConfig, producer_compute_cycles: int, producer_memory_cycles: int,
                    consumers: tuple[tuple[float, float], ...], dense_consumers: bool) -> SparsifierCost:
    """What fusing the selections of a producer's sparse consumers adds to the producer (docs/model.md §4).

    ``consumers``: (activation elements, stored bytes) of each sparse consumer; each needs its own selection
    (its mask depends on its own weights under the amber criteria). The producer writes the selected forms
    as it streams: the first replaces its dense output unless some consumer reads the dense form
    (``dense_consumers``), every other one is an extra write. With the producer's vector cycles C and
    streaming cycles S (its DRAM latency excluded: paid before any data arrives, it hides nothing), the
    fused op takes max(C + Σ select, S + W) with a vector sparsifier and max(C, Σ select, S + W) with a
    dedicated one; it adds that minus max(C, S), never a negative number."""
    kind = hw.sparsity.sparsifier.kind
    select = sum(selection_cycles(hw, elements) for elements, _ in consumers)
    extra_bytes = sum(stored for _, stored in (consumers if dense_consumers else consumers[1:]))
    memory = producer_memory_cycles + streaming_cycles(hw, extra_bytes)
    if kind == "dedicated":
        fused = max(producer_compute_cycles, select, memory)
    else:
        fused = max(producer_compute_cycles + select, memory)
    added = fused - max(producer_compute_cycles, producer_memory_cycles)
    plural = "s" if len(consumers) > 1 else ""
    return SparsifierCost(added, extra_bytes, f"sparsifier: {kind}, fused here for {len(consumers)} pruned "
                                              f"consumer{plural}")
