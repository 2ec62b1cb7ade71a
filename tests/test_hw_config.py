"""Hardware config YAML: every bundled config loads and round-trips; each class of bad input is one clear error."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from amber_sim.errors import InputError
from amber_sim.hw.config import (HardwareConfig, field_table, hardware_from_dict, hardware_to_dict, load_hardware)
from amber_sim.paths import PROJECT_ROOT, bundled_hw_configs, resolve_hw_config

ASCEND = PROJECT_ROOT / "hw_configs" / "ascend_like.yaml"


@pytest.fixture
def ascend_dict():
    return yaml.safe_load(ASCEND.read_text("utf-8"))


def test_ascend_like_numbers():
    config = load_hardware(ASCEND)
    assert config.compute.fp16_macs_per_cycle == 16 * 16 * 16
    peak_tflops = 2 * config.compute.fp16_macs_per_cycle * config.cores * config.clock_ghz * 1e9 / 1e12
    assert peak_tflops == pytest.approx(353.9, abs=0.1)  # within the published 313-376 TFLOPS range of 910B parts
    assert config.memory.l0a.size_kb == 64 and config.memory.l0c.size_kb == 128 and config.memory.l1.size_kb == 512
    assert config.sparsity.patterns == ("2:4", "4:8", "8:16")
    assert config.sources and config.assumptions


@pytest.mark.parametrize("path", bundled_hw_configs(), ids=lambda p: p.name)
def test_every_bundled_config_round_trips(path):
    config = load_hardware(path)
    assert hardware_from_dict(hardware_to_dict(config)) == config
    assert config.name == path.stem


def test_bare_name_resolves_to_bundled_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_hw_config("ascend_like.yaml") == ASCEND
    assert resolve_hw_config("ascend_like") == ASCEND
    local = tmp_path / "ascend_like.yaml"
    local.write_text("x: 1", "utf-8")
    assert resolve_hw_config("ascend_like.yaml") == local.relative_to(tmp_path)  # an existing path wins


def _error(data) -> str:
    with pytest.raises(InputError) as info:
        hardware_from_dict(data, "hw.yaml")
    return str(info.value)


def test_unknown_key_suggests_closest(ascend_dict):
    ascend_dict["memory"]["dram"]["bandwith_gb_s"] = ascend_dict["memory"]["dram"].pop("bandwidth_gb_s")
    assert _error(ascend_dict) == "hw.yaml: memory.dram.bandwith_gb_s: unknown key; did you mean 'bandwidth_gb_s'?"


def test_wrong_type(ascend_dict):
    ascend_dict["cores"] = "many"
    assert _error(ascend_dict) == "hw.yaml: cores: expected integer, got str 'many'"
    ascend_dict["cores"] = True
    assert "cores: expected integer" in _error(ascend_dict)


@pytest.mark.parametrize("path,value", [
    (("clock_ghz",), 0), (("clock_ghz",), -1.0), (("cores",), 0),
    (("memory", "dram", "bandwidth_gb_s"), 0), (("memory", "l0a", "size_kb"), -64),
    (("compute", "cube", "m"), 0),
])
def test_zero_or_negative_values(ascend_dict, path, value):
    node = ascend_dict
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert re.search(rf"{'.'.join(path)}: expected a value > 0, got {value}", _error(ascend_dict))


@pytest.mark.parametrize("pattern,expected", [
    ("3:2", "needs 0 < N <= M"), ("0:4", "needs 0 < N <= M"), ("a:b", "expected a pattern"),
    ("4:128", "above the maximum M = 64"), ("dense", "expected an N:M pattern"),
])
def test_bad_patterns(ascend_dict, pattern, expected):
    ascend_dict["sparsity"]["patterns"] = ["2:4", pattern]
    message = _error(ascend_dict)
    assert message.startswith("hw.yaml: sparsity.patterns[1]:") and expected in message


def test_missing_required_and_kind_specific_blocks(ascend_dict):
    broken = copy.deepcopy(ascend_dict)
    del broken["memory"]["l0b"]
    assert _error(broken).startswith("hw.yaml: memory.l0b: missing required key")
    ascend_dict["compute"] = {"kind": "systolic"}
    assert "compute.systolic: missing: kind is systolic" in _error(ascend_dict)


def test_choices_and_cross_field_rules(ascend_dict):
    broken = copy.deepcopy(ascend_dict)
    broken["compute"]["kind"] = "tensor"
    assert _error(broken) == "hw.yaml: compute.kind: expected one of cube, systolic, got 'tensor'"
    ascend_dict["sparsity"]["operand"] = "none"
    assert "sparsity.patterns: must be empty" in _error(ascend_dict)


def test_not_a_mapping_and_non_finite():
    assert _error([1, 2]) == "hw.yaml: $: expected a mapping, got list [1, 2]"
    data = yaml.safe_load(ASCEND.read_text("utf-8"))
    data["clock_ghz"] = float("nan")
    assert "clock_ghz: expected a finite number" in _error(data)


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ncompute: {kind: cube\n", "utf-8")
    with pytest.raises(InputError, match=r"bad.yaml: line \d+ column \d+: invalid YAML"):
        load_hardware(path)
    with pytest.raises(InputError, match="no such hardware config"):
        load_hardware(tmp_path / "missing.yaml")


def test_docs_document_every_field():
    doc = (PROJECT_ROOT / "docs" / "hardware-config.md").read_text("utf-8")
    for path, *_ in field_table(HardwareConfig):
        assert f"`{path}`" in doc, f"docs/hardware-config.md does not document {path}"


def test_mi210_like_is_its_public_specification():
    """AnandTech's MI210 table: 104 CUs at 1.7 GHz, 181 TFLOPS fp16 matrix and 181 TOPS int8 (same rate), HBM2e
    at 3.2 Gbps on 4096 bits = 1638.4 GB/s; ROCm's spec table: 8 MiB L2, 64 KiB LDS. No sparse datapath."""
    from amber_sim.paths import HW_CONFIG_DIR

    hw = load_hardware(HW_CONFIG_DIR / "mi210_like.yaml")
    peak_tflops = 2 * hw.compute.fp16_macs_per_cycle * hw.cores * hw.clock_ghz * 1e9 / 1e12
    assert abs(peak_tflops / 181.0 - 1) < 0.001  # the spec rounds to 181
    assert hw.compute.int8_macs_per_fp16_mac == 1 and hw.sparsity.operand == "none"
    assert hw.memory.dram.bandwidth_gb_s == 3.2 * 4096 / 8
    assert (hw.memory.l2.size_mb, hw.memory.l1.size_kb) == (8, 64)
