"""What each mitigation adds to a trace (capture.prefill_ops.mitigation_op) and what the simulator charges
for it: a static median shift is nearly free, the per-token one is not (arXiv 2509.22166's point)."""

from __future__ import annotations

import pytest

from amber_sim.capture.prefill_ops import mitigation_op
from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR
from amber_sim.sim.engine import simulate_ops
from amber_sim.trace import Op

LINEAR = Op(name="l", layer=0, role="down", kind="linear", M=2048, K=1536, N=576, batch=1,
            sparse_operand="activation", pattern="8:16", density=0.5, natural_zero_fraction=0.0, dtype_bytes=2.0,
            producer="silu")


def test_golden_mitigation_ops():
    """Per-token median shift: 4 ops per activation element (median by selection, subtract) + 2 per output
    (y += η·rowsum(W)); it reads the activation (2048·1536·2 B), the output and rowsum(W) ((2048·576 + 576)·2 B)
    and writes the output (2048·576·2 B). The static shift: 1 op per activation element, on chip, no bytes."""
    dynamic = mitigation_op(LINEAR, "median-shift", 2.0)
    elements, outputs = 2048 * 1536, 2048 * 576
    assert dynamic.elements == elements
    assert dynamic.ops_per_element * elements == pytest.approx(4 * elements + 2 * outputs)
    assert (dynamic.bytes_in, dynamic.bytes_out) == (elements * 2 + (outputs + 576) * 2, outputs * 2)
    static = mitigation_op(LINEAR, "static-median-shift", 2.0)
    assert (static.elements, static.ops_per_element, static.bytes_in, static.bytes_out) == (elements, 1.0, 0, 0)
    assert (static.input_from, static.output_to, static.sparse_overhead) == ("on_chip", "on_chip", True)
    both = mitigation_op(LINEAR, "static-median-shift+variance-correction", 2.0)
    assert both.ops_per_element == pytest.approx(1.0 + 5.0) and both.bytes_in == elements * 2
    assert mitigation_op(LINEAR, "none", 2.0) is None and mitigation_op(LINEAR, "scaling", 2.0) is None


@pytest.mark.parametrize("config", ["ascend_like.yaml", "a100_like.yaml"])
def test_a_static_shift_costs_a_fraction_of_the_per_token_one(config):
    """On the modelled hardware the per-token shift streams the activation and the output again; the static
    one is vector work inside the producer: under a tenth of the per-token cost, and no kernel overhead."""
    hw = load_hardware(HW_CONFIG_DIR / config)
    dynamic, static = simulate_ops(hw, (mitigation_op(LINEAR, "median-shift", 2.0),
                                        mitigation_op(LINEAR, "static-median-shift", 2.0)))
    assert static.cycles < 0.1 * dynamic.cycles
    assert static.kernel_overhead_cycles == 0 and static.other_bytes == 0
