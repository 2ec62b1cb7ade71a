"""Relative hardware cost (mm²) of a config for co-design studies (docs/studies.md §Cost model).

Uses the config's optional ``area`` section; a config without one gets DEFAULT_AREA (assumptions
stated in docs/studies.md). Every term:

- dense datapath: cores × dense_core_mm2 (logic only: the core's buffers are not in it)
- SRAM: sram_mm2_per_mb × (L2 MiB + cores × (L1 + L0A + L0B + L0C) MiB); every buffer is charged here and
  only here, so configs that differ in buffer sizes differ in cost by exactly the SRAM they add
- N:M selection network: cores × MAC lanes × M_max × mux_mm2_per_lane_input (each lane picks 1 of M_max
  inputs, M_max the largest supported hardware M)
- metadata: cores × MAC lanes × bits × metadata_mm2_per_bit_lane, bits = ⌈log₂ M_max⌉ (index) or M_max
  (bitmask)
- sparsifier: cores × sparsifier_mm2 when the sparsifier is dedicated
- DRAM interface: DRAM_INTERFACE_MM2_PER_GB_S × DRAM bandwidth
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amber_sim.hw.config import AreaConfig, HardwareConfig

# Assumptions (docs/studies.md): ascend_like.yaml's area numbers, the core scaled by its MAC count.
REFERENCE_LANES = 4096
DEFAULT_AREA = AreaConfig(dense_core_mm2=8.0, sram_mm2_per_mb=0.45, mux_mm2_per_lane_input=0.00002,
                          metadata_mm2_per_bit_lane=0.00001, sparsifier_mm2=0.05)
DRAM_INTERFACE_MM2_PER_GB_S = 0.03  # HBM2e-class PHY + controller: about 12 mm² per 410 GB/s stack
KIB_PER_MIB = 1024.0


@dataclass(frozen=True)
class CostBreakdown:
    dense_mm2: float
    sram_mm2: float
    mux_mm2: float
    metadata_mm2: float
    sparsifier_mm2: float
    dram_interface_mm2: float
    area_source: str  # "config" | "default assumptions"

    @property
    def sparse_mm2(self) -> float:
        return self.mux_mm2 + self.metadata_mm2 + self.sparsifier_mm2

    @property
    def total_mm2(self) -> float:
        return (self.dense_mm2 + self.sram_mm2 + self.mux_mm2 + self.metadata_mm2 + self.sparsifier_mm2
                + self.dram_interface_mm2)


def largest_hardware_m(hw: HardwareConfig) -> int:
    if hw.sparsity.operand == "none" or not hw.sparsity.patterns:
        return 0
    return max(pattern.m for pattern in hw.sparsity.parsed_patterns())


def metadata_bits_per_lane(hw: HardwareConfig) -> int:
    m_max = largest_hardware_m(hw)
    if m_max == 0:
        return 0
    return m_max if hw.sparsity.metadata == "bitmask" else math.ceil(math.log2(m_max))


def _area(hw: HardwareConfig) -> tuple[AreaConfig, str]:
    if hw.area is not None:
        return hw.area, "config"
    lanes = hw.compute.fp16_macs_per_cycle
    scaled = AreaConfig(dense_core_mm2=DEFAULT_AREA.dense_core_mm2 * lanes / REFERENCE_LANES,
                        sram_mm2_per_mb=DEFAULT_AREA.sram_mm2_per_mb,
                        mux_mm2_per_lane_input=DEFAULT_AREA.mux_mm2_per_lane_input,
                        metadata_mm2_per_bit_lane=DEFAULT_AREA.metadata_mm2_per_bit_lane,
                        sparsifier_mm2=DEFAULT_AREA.sparsifier_mm2)
    return scaled, "default assumptions"


def per_core_buffer_mib(hw: HardwareConfig) -> float:
    """L0A + L0B + L0C + L1 of one core (not part of dense_core_mm2)."""
    memory = hw.memory
    per_core_kib = memory.l0a.size_kb + memory.l0b.size_kb + memory.l0c.size_kb
    if memory.l1 is not None:
        per_core_kib += memory.l1.size_kb
    return per_core_kib / KIB_PER_MIB


def sram_mib(hw: HardwareConfig) -> float:
    l2_mib = hw.memory.l2.size_mb if hw.memory.l2 is not None else 0.0
    return l2_mib + hw.cores * per_core_buffer_mib(hw)


def hardware_cost(hw: HardwareConfig) -> CostBreakdown:
    area, source = _area(hw)
    lanes = hw.compute.fp16_macs_per_cycle * hw.cores
    dedicated = hw.sparsity.sparsifier.kind == "dedicated" and hw.sparsity.operand != "none"
    return CostBreakdown(
        dense_mm2=hw.cores * area.dense_core_mm2,
        sram_mm2=area.sram_mm2_per_mb * sram_mib(hw),
        mux_mm2=lanes * largest_hardware_m(hw) * area.mux_mm2_per_lane_input,
        metadata_mm2=lanes * metadata_bits_per_lane(hw) * area.metadata_mm2_per_bit_lane,
        sparsifier_mm2=hw.cores * area.sparsifier_mm2 if dedicated else 0.0,
        dram_interface_mm2=DRAM_INTERFACE_MM2_PER_GB_S * hw.memory.dram.bandwidth_gb_s,
        area_source=source,
    )
