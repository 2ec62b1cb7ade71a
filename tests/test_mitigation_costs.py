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


def test_golden_learnable_output_corrections():
    """A learnable correction works on the linear's OUTPUT in the GEMM's epilogue: M·N = 2048·576 elements,
    1 op each (y + b) or 2 (a·y + b, a multiply-add), on chip on both sides (no bytes, no kernel of its own),
    sparse overhead, with its linear's producer."""
    outputs = 2048 * 576
    for mitigation, ops in (("learnable-shift", 1.0), ("learnable-scale-shift", 2.0)):
        op = mitigation_op(LINEAR, mitigation, 2.0)
        assert (op.name, op.kind, op.role) == ("l.mitigation", "vector", "mitigation")
        assert (op.elements, op.ops_per_element, op.bytes_in, op.bytes_out) == (outputs, ops, 0, 0)
        assert (op.input_from, op.output_to, op.sparse_overhead, op.producer) == ("on_chip", "on_chip", True, "silu")


@pytest.mark.parametrize("config", ["ascend_like.yaml", "a100_like.yaml"])
def test_a_learnable_correction_is_nearly_free(config):
    """On the modelled hardware the epilogue's multiply-add costs under 5% of its own sparse GEMM's cycles (2.5% on
    ascend_like, 0.2% on a100_like here) and under a tenth of the per-token median shift, with no traffic and no
    kernel overhead; the shift alone costs half of the scale and shift."""
    hw = load_hardware(HW_CONFIG_DIR / config)
    linear, shift, scale_shift, dynamic = simulate_ops(hw, (LINEAR, mitigation_op(LINEAR, "learnable-shift", 2.0),
                                                            mitigation_op(LINEAR, "learnable-scale-shift", 2.0),
                                                            mitigation_op(LINEAR, "median-shift", 2.0)))
    assert scale_shift.cycles < 0.05 * linear.cycles and scale_shift.cycles < 0.1 * dynamic.cycles
    assert shift.cycles <= scale_shift.cycles <= 2 * shift.cycles
    for result in (shift, scale_shift):
        assert result.kernel_overhead_cycles == 0 and result.other_bytes == 0
