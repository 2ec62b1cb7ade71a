"""Compute rules: cycles of one tile on the matrix unit, the int8 rate, the native sparse K shrink.

docs/model.md §2 "Compute per tile". A tile is ``rows × cols`` outputs over ``k_dense`` input channels.
- cube (m×n×k MACs per cycle): ⌈rows/m⌉ · ⌈cols/n⌉ · ⌈k_eff / k'⌉, with k' = k (fp16) or
  k · int8_macs_per_fp16_mac (int8);
- systolic R×C (SCALE-Sim v3 CALC mode): folds run one after another, each paying fill and drain;
- on native N:M data the matrix unit computes k_eff = ⌈k_dense · Nh/Mh⌉ channels;
- a tuned kernel sustains a fraction f of the peak rate (``compute.sustained_fraction``), and a native N:M
  step a further fraction s of its nominal rate (``sparsity.sustained_fraction``): a tile takes
  ⌈peak-rate cycles / (f·s)⌉ (f = s = 1: the peak-rate cycles, as SCALE-Sim).

The Numba functions read a :data:`GEMM_PARAMS` record (named fields, built by ``mapper.gemm_params``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from amber_sim.hw.config import HardwareConfig

KIND_CUBE, KIND_SYSTOLIC = 0, 1
DATAFLOW_OS, DATAFLOW_WS, DATAFLOW_IS = 0, 1, 2
CAUSAL_NONE, CAUSAL_OUTPUT, CAUSAL_REDUCTION = 0, 1, 2

# Everything the GEMM kernels read, by name. Sizes are elements, bytes are per element, rates per cycle.
GEMM_PARAMS = np.dtype([
    # the GEMM (mapper.GemmWork)
    ("M", np.int64), ("K", np.int64), ("N", np.int64), ("batch", np.int64), ("b_batch", np.int64),
    ("causal", np.int64),                     # CAUSAL_*
    ("a_bytes_per_element", np.float64),      # stored bytes per dense A element from memory (0: on chip)
    ("b_bytes_per_element", np.float64),
    ("out_bytes_per_element", np.float64),    # 0: the output stays on chip
    ("k_compute_ratio", np.float64),          # Nh/Mh on native sparse data, else 1
    ("overhead_cycles_per_step", np.int64),   # sparse datapath overhead per compute tile
    # the matrix unit (compute)
    ("unit_kind", np.int64),                  # KIND_*
    ("unit_m", np.int64), ("unit_n", np.int64),  # cube m, n; systolic rows, cols
    ("cube_k_per_cycle", np.int64),           # cube: k' at this precision
    ("systolic_depth_rate", np.float64),      # systolic: int8 MACs per fp16 MAC (1 for fp16)
    ("dataflow", np.int64),                   # DATAFLOW_* (systolic)
    ("sustained_fraction", np.float64),       # share of the peak rate sustained: compute's, times sparsity's (native)
    # memory (memory.py)
    ("cores", np.int64),
    ("latency_cycles", np.int64),
    ("dram_bytes_per_cycle", np.float64),
    ("l2_bytes_per_cycle", np.float64),       # inf without an L2
    ("l2_bytes", np.float64),                 # 0 without an L2
    ("l1_bytes_per_cycle", np.float64),       # 0 without an L1
])


@njit(cache=True, inline="always")
def cdiv(a, b):
    return -(-a // b)


@njit(cache=True, inline="always")
def padded(value, unit):
    return cdiv(value, unit) * unit


@njit(cache=True)
def sparse_k(p, k_dense):  # pragma: no cover - compiled
    """Input channels the matrix unit computes for ``k_dense`` dense channels (native N:M: ⌈k · Nh/Mh⌉)."""
    return math.ceil(k_dense * p.k_compute_ratio - 1e-9)


@njit(cache=True)
def peak_rate_tile_cycles(p, rows, cols, k_dense):  # pragma: no cover - compiled
    """Matrix-unit cycles of one tile at the unit's peak rate."""
    k_eff = sparse_k(p, k_dense)
    if p.unit_kind == KIND_CUBE:
        return cdiv(rows, p.unit_m) * cdiv(cols, p.unit_n) * cdiv(k_eff, p.cube_k_per_cycle)
    r = p.unit_m
    c = p.unit_n
    k_eff = math.ceil(k_eff / p.systolic_depth_rate - 1e-9)
    # SCALE-Sim v3 (CALC mode): folds run one after another, each paying its fill and drain;
    # os: M on rows, N on cols, K streamed, T + R + C - 2 per fold;
    # ws: K on rows, N on cols, M streamed, T + 2R + C - 2; is: K on rows, M on cols, N streamed, likewise.
    if p.dataflow == DATAFLOW_OS:
        return cdiv(rows, r) * cdiv(cols, c) * (k_eff + r + c - 2)
    if p.dataflow == DATAFLOW_WS:
        return cdiv(k_eff, r) * cdiv(cols, c) * (rows + 2 * r + c - 2)
    return cdiv(k_eff, r) * cdiv(rows, c) * (cols + 2 * r + c - 2)


@njit(cache=True)
def tile_cycles(p, rows, cols, k_dense):  # pragma: no cover - compiled
    """Matrix-unit cycles of one tile (rows × cols outputs over k_dense input channels): its cycles at the
    peak rate, divided by the sustained fraction of that rate (1: exactly the peak-rate cycles)."""
    peak = peak_rate_tile_cycles(p, rows, cols, k_dense)
    if p.sustained_fraction >= 1.0:
        return peak
    return math.ceil(peak / p.sustained_fraction - 1e-9)


@njit(cache=True)
def padding_units(p):  # pragma: no cover - compiled
    """(m, n) granularity to which edge blocks are padded in compute (the cube shape; 1 for systolic)."""
    if p.unit_kind == KIND_CUBE:
        return p.unit_m, p.unit_n
    return 1, 1


# ---------------------------------------------------------------- Python side

def int8_rate(hw: HardwareConfig, int8: bool) -> float:
    """MACs per cycle relative to fp16: ``int8_macs_per_fp16_mac`` for int8 operands, else 1."""
    return hw.compute.int8_macs_per_fp16_mac if int8 else 1.0


def cube_k_per_cycle(hw: HardwareConfig, int8: bool) -> int:
    """k' of the cube: its reduction depth per cycle at this precision."""
    return max(1, int(round(hw.compute.cube.k * int8_rate(hw, int8))))


def peak_macs_per_cycle(hw: HardwareConfig, int8: bool) -> float:
    """Dense MACs per cycle of the whole chip at this precision."""
    return hw.compute.fp16_macs_per_cycle * hw.cores * int8_rate(hw, int8)


def compute_unit(hw: HardwareConfig, k_unit: int) -> tuple[int, int, int]:
    """(m, n, k) granularity of tiles: multiples of the compute shape (and of the hardware group M, ``k_unit``)."""
    if hw.compute.kind == "cube":
        cube = hw.compute.cube
        return cube.m, cube.n, math.lcm(k_unit, cube.k)
    array = hw.compute.systolic
    if array.dataflow == "os":   # M on rows, N on columns, K streamed
        return array.rows, array.cols, k_unit
    if array.dataflow == "ws":   # K on rows, N on columns, M streamed
        return array.rows, array.cols, math.lcm(k_unit, array.rows)
    return array.cols, array.rows, math.lcm(k_unit, array.rows)  # is: K on rows, M on columns, N streamed


def k_slice(hw: HardwareConfig, int8: bool, k_compute_ratio: float) -> int:
    """Dense channels of A in one L0 slice when an L1 stages the chunks: one compute step's depth."""
    if hw.compute.kind == "cube":
        return max(1, math.ceil(cube_k_per_cycle(hw, int8) / k_compute_ratio))
    return hw.compute.systolic.rows


def set_compute_params(p, hw: HardwareConfig, int8: bool) -> None:
    """Fill the matrix-unit fields of a GEMM_PARAMS record."""
    if hw.compute.kind == "cube":
        cube = hw.compute.cube
        p["unit_kind"] = KIND_CUBE
        p["unit_m"], p["unit_n"], p["cube_k_per_cycle"] = cube.m, cube.n, cube_k_per_cycle(hw, int8)
        p["systolic_depth_rate"] = 1.0
    else:
        array = hw.compute.systolic
        p["unit_kind"] = KIND_SYSTOLIC
        p["unit_m"], p["unit_n"] = array.rows, array.cols
        p["cube_k_per_cycle"] = 1
        p["systolic_depth_rate"] = int8_rate(hw, int8)
        p["dataflow"] = {"os": DATAFLOW_OS, "ws": DATAFLOW_WS, "is": DATAFLOW_IS}[array.dataflow]
    p["sustained_fraction"] = hw.compute.sustained_fraction
