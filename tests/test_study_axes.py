"""Axis parsing, point products and bad input of ``amber-sim sweep`` (amber_sim/study/axes.py)."""

import pytest

from amber_sim.errors import InputError
from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR
from amber_sim.study.axes import (apply_point, check_point_count, parse_axes, parse_axis, parse_seq_lens,
                                  range_values, sweep_points)


@pytest.fixture(scope="module")
def base():
    return load_hardware(HW_CONFIG_DIR / "ascend_like.yaml")


def test_geometric_range_includes_both_ends():
    assert parse_axis("memory.dram.bandwidth_gb_s=400:3200:x2").values == (400.0, 800.0, 1600.0, 3200.0)


def test_geometric_range_stops_below_stop_when_not_reached():
    assert range_values("1:10:x3") == [1.0, 3.0, 9.0]


def test_linear_range_on_integer_field_gives_integers():
    axis = parse_axis("cores=8:32:+8")
    assert axis.values == (8, 16, 24, 32)
    assert all(isinstance(value, int) for value in axis.values)


def test_list_of_numbers_and_floating_step_without_drift():
    assert parse_axis("memory.l1.size_kb=256,512,1024").values == (256, 512, 1024)
    assert range_values("0.1:0.3:+0.1") == [0.1, 0.2, 0.3]  # 0.1 + 2·0.1 is 0.30000000000000004 unrounded


def test_pattern_lists_are_lists_not_ranges():
    axis = parse_axis("sparsity.patterns='[2:4]','[2:4,4:8,8:16]'")
    assert axis.values == (["2:4"], ["2:4", "4:8", "8:16"])


def test_booleans_and_strings():
    assert parse_axis("sparsity.compressed_io=true,false").values == (True, False)
    assert parse_axis("sparsity.sparsifier.kind=vector,dedicated").values == ("vector", "dedicated")


def test_product_order_last_axis_fastest():
    axes = parse_axes(["memory.dram.bandwidth_gb_s=400,800", "memory.l1.size_kb=256,512,1024"])
    points = sweep_points(axes)
    assert len(points) == 6
    assert points[0].as_dict() == {"memory.dram.bandwidth_gb_s": 400, "memory.l1.size_kb": 256}
    assert points[1].as_dict() == {"memory.dram.bandwidth_gb_s": 400, "memory.l1.size_kb": 512}
    assert points[-1].as_dict() == {"memory.dram.bandwidth_gb_s": 800, "memory.l1.size_kb": 1024}


def test_apply_point_changes_only_the_field(base):
    point = sweep_points(parse_axes(["memory.dram.bandwidth_gb_s=800"]))[0]
    hw = apply_point(base, point)
    assert hw.memory.dram.bandwidth_gb_s == 800.0
    assert hw.memory.l2 == base.memory.l2 and hw.compute == base.compute and hw.sparsity == base.sparsity


def test_seq_lens():
    assert parse_seq_lens("512,2048,8192") == (512, 2048, 8192)
    with pytest.raises(InputError, match="positive integers"):
        parse_seq_lens("512,abc")


def test_unknown_path_suggests_the_closest():
    with pytest.raises(InputError, match="did you mean memory.dram.bandwidth_gb_s"):
        parse_axis("memory.dram.bandwith_gb_s=400,800")


def test_section_path_is_refused():
    with pytest.raises(InputError, match="is a section"):
        parse_axis("memory.dram=1")


def test_empty_range_says_so():
    with pytest.raises(InputError, match="yields no points"):
        parse_axis("memory.dram.bandwidth_gb_s=3200:400:x2")


def test_cap_states_the_count():
    axes = parse_axes(["memory.dram.bandwidth_gb_s=1:1024:x2", "memory.l1.size_kb=1:1000:+1"])
    with pytest.raises(InputError, match=r"11,000 points .*cap of 10,000"):
        check_point_count(axes, (), 10_000)
    assert check_point_count(axes, (512, 1024), 100_000) == 22_000


def test_wrong_type_names_field_and_value(base):
    point = sweep_points(parse_axes(["memory.dram.bandwidth_gb_s=fast"]))[0]
    with pytest.raises(InputError) as error:
        apply_point(base, point)
    assert error.value.field == "memory.dram.bandwidth_gb_s"
    assert "expected number" in str(error.value) and "'fast'" in str(error.value)


def test_out_of_bounds_value_is_refused(base):
    point = sweep_points(parse_axes(["cores=0"]))[0]
    with pytest.raises(InputError, match="expected a value > 0"):
        apply_point(base, point)


def test_pattern_list_must_be_bracketed():
    with pytest.raises(InputError, match="bracketed"):
        parse_axis("sparsity.patterns=2:4")
