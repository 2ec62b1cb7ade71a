"""Collectives between chips (sim/collectives.py): hand-computed α–β goldens, the algorithm choice, the
protocol-aware cost (min over algorithm × protocol), the system section of the hardware YAML, and the replay of
the published nccl-tests set (validate/collectives.py)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from amber_sim.errors import InputError
from amber_sim.hw.config import (ProtocolConfig, ProtocolsConfig, SystemConfig, hardware_from_dict,
                                  hardware_to_dict, load_hardware)
from amber_sim.paths import HW_CONFIG_DIR
from amber_sim.sim.collectives import bus_bandwidth_gb_s, collective_cost

# 8 chips on a switch, 12 links of 25 GB/s each way: B = 300 GB/s per chip; 2 µs per step.
SWITCH = SystemConfig(chips=8, topology="switch", link_bandwidth_gb_s=25.0, links_per_chip=12, latency_us=2.0)


def test_golden_all_reduce_algorithms():
    """1 GB on 8 chips, B = 300 GB/s, α = 2 µs:
    ring: 2·7 = 14 steps (28 µs) + 2·7/8·1e9 B / 3e11 B/s = 5.8333 ms → 5.8613 ms;
    direct: 2 steps (4 µs) + the same bytes → 5.8373 ms;
    tree: 2·⌈log₂ 8⌉ = 6 steps (12 µs) + 2e9 / 3e11 = 6.6667 ms → 6.6787 ms;
    in-switch (NVLink SHARP): 2 steps + 1e9 / 3e11 → 3.3373 ms."""
    expected = {"ring": 5.861333e-3, "direct": 5.837333e-3, "tree": 6.678667e-3}
    for algorithm, seconds in expected.items():
        assert collective_cost(SWITCH, "all_reduce", 1e9, algorithm=algorithm).seconds == pytest.approx(seconds,
                                                                                                       rel=1e-6)
    assert collective_cost(SWITCH, "all_reduce", 1e9).algorithm == "direct"  # auto: the fastest available
    sharp = dataclasses.replace(SWITCH, in_switch_reduction=True)
    best = collective_cost(sharp, "all_reduce", 1e9)
    assert (best.algorithm, best.seconds) == ("in_switch", pytest.approx(3.337333e-3, rel=1e-6))


def test_golden_all_gather_on_a_ring_and_small_messages():
    """A physical ring of 8 chips, 2 links of 25 GB/s: B = 50 GB/s. All-gather of 1 GB: 7 steps (14 µs) +
    7/8·1e9 / 5e10 = 17.5 ms; no direct algorithm on a ring. 1 kB all-reduce on the switch: latency decides,
    direct (4 µs + 5.8 ns) beats tree (12 µs) and ring (28 µs)."""
    ring = SystemConfig(chips=8, topology="ring", link_bandwidth_gb_s=25.0, links_per_chip=2, latency_us=2.0)
    cost = collective_cost(ring, "all_gather", 1e9)
    assert (cost.algorithm, cost.steps, cost.seconds) == ("ring", 7, pytest.approx(17.514e-3, rel=1e-9))
    with pytest.raises(InputError, match="'direct' is not available"):
        collective_cost(ring, "all_gather", 1e9, algorithm="direct")
    small = collective_cost(SWITCH, "all_reduce", 1e3)
    assert small.algorithm == "direct" and small.seconds == pytest.approx(4e-6 + 2 * 7 / 8 * 1e3 / 3e11)


def test_bus_bandwidth_is_nccl_tests_definition():
    """busbw = algbw · 2(p−1)/p for an all-reduce: the ring at 1 GB gives 1e9 / 5.8613 ms · 1.75 = 298.6 GB/s,
    just under B = 300 GB/s (the 28 µs of latency); all-gather busbw = algbw · (p−1)/p."""
    ring = collective_cost(SWITCH, "all_reduce", 1e9, algorithm="ring")
    assert bus_bandwidth_gb_s(ring) == pytest.approx(1e9 / 5.861333e-3 * 1.75 / 1e9, rel=1e-6)
    gather = collective_cost(SWITCH, "all_gather", 1e9, algorithm="ring")
    assert bus_bandwidth_gb_s(gather) == pytest.approx(1e9 / gather.seconds * 7 / 8 / 1e9)


def test_one_chip_or_nothing_moves_nothing_and_bad_input_is_refused():
    assert collective_cost(SWITCH, "all_reduce", 1e9, chips=1).seconds == 0.0
    assert collective_cost(SWITCH, "reduce_scatter", 0).seconds == 0.0
    with pytest.raises(InputError, match="expected 1 to 8 chips"):
        collective_cost(SWITCH, "all_reduce", 1e6, chips=16)
    with pytest.raises(InputError, match="expected one of all_reduce"):
        collective_cost(SWITCH, "broadcast", 1e6)
    with pytest.raises(InputError, match="finite size"):
        collective_cost(SWITCH, "all_reduce", float("nan"))


@pytest.mark.parametrize("collective", ["all_reduce", "all_gather", "reduce_scatter"])
def test_more_link_bandwidth_or_less_latency_never_slows_a_collective(collective):
    for size in (1e3, 1e6, 1e9):
        base = collective_cost(SWITCH, collective, size).seconds
        faster_links = dataclasses.replace(SWITCH, link_bandwidth_gb_s=50.0)
        quicker = dataclasses.replace(SWITCH, latency_us=1.0)
        assert collective_cost(faster_links, collective, size).seconds <= base
        assert collective_cost(quicker, collective, size).seconds <= base


def test_the_system_section_of_a_hardware_yaml():
    data = hardware_to_dict(load_hardware(HW_CONFIG_DIR / "a100_like.yaml"))
    data["system"] = {"chips": 8, "topology": "switch", "link_bandwidth_gb_s": 25, "links_per_chip": 12,
                      "latency_us": 2}
    assert hardware_from_dict(data, "x.yaml").system == dataclasses.replace(SWITCH)
    data["system"] = {**data["system"], "topology": "full_mesh", "links_per_chip": 3}
    with pytest.raises(InputError, match="system.links_per_chip: a full mesh of 8 chips needs at least 7"):
        hardware_from_dict(data, "x.yaml")
    data["system"] = {**data["system"], "topology": "ring", "links_per_chip": 2, "in_switch_reduction": True}
    with pytest.raises(InputError, match="system.in_switch_reduction: needs topology switch"):
        hardware_from_dict(data, "x.yaml")


# ---------------------------------------------------------------- protocols

# The same 8-chip switch (B = 300 GB/s, sustained 1), no link latency, rings only, two protocols: a low-latency
# one (5 µs per call, 0.5 µs per step, half the bandwidth) and a bulk one (10 µs, 3 µs, all of it).
TWO_PROTOCOLS = dataclasses.replace(
    SWITCH, latency_us=0.0, algorithms=("ring",),
    protocols=ProtocolsConfig(ll=ProtocolConfig(base_latency_us=5.0, step_latency_us=0.5, bandwidth_share=0.5),
                              simple=ProtocolConfig(base_latency_us=10.0, step_latency_us=3.0, bandwidth_share=1.0)))
MIB, GIB = 2**20, 2**30


def test_golden_protocols_small_and_large_all_reduce():
    """Ring all-reduce on 8 chips: 14 steps, each chip sends 1.75 n bytes.
    LL: 5 + 14·0.5 = 12 µs + 1.75 n / 150 GB/s; Simple: 10 + 14·3 = 52 µs + 1.75 n / 300 GB/s.
    1 MiB (1,835,008 bytes sent): LL 12 + 12.23339 = 24.23339 µs, Simple 52 + 6.11669 = 58.11669 µs → LL.
    1 GiB (1,879,048,192 bytes sent): LL 12 + 12,526.99 = 12,538.99 µs, Simple 52 + 6,263.494 = 6,315.494 µs
    → Simple."""
    small = collective_cost(TWO_PROTOCOLS, "all_reduce", MIB)
    assert (small.algorithm, small.protocol, small.steps) == ("ring", "ll", 14)
    assert small.seconds == pytest.approx(24.23339e-6, rel=1e-6)
    assert collective_cost(TWO_PROTOCOLS, "all_reduce", MIB, protocol="simple").seconds == \
        pytest.approx(58.11669e-6, rel=1e-6)
    large = collective_cost(TWO_PROTOCOLS, "all_reduce", GIB)
    assert (large.protocol, large.seconds) == ("simple", pytest.approx(6315.494e-6, rel=1e-6))
    assert collective_cost(TWO_PROTOCOLS, "all_reduce", GIB, protocol="ll").seconds == \
        pytest.approx(12538.99e-6, rel=1e-6)
    assert large.sent_bytes_per_chip == 1.75 * GIB  # the protocol changes the rate, not the bytes


def test_golden_protocol_switch_point():
    """LL and Simple tie where 12 + S / 150,000 = 52 + S / 300,000 (µs, S bytes sent): S = 12,000,000, so
    n* = 12e6 / 1.75 = 6,857,142.9 bytes, at 12 + 80 = 92 µs. Below it LL wins, above it Simple; at it the tie
    goes to the earlier protocol (LL)."""
    switch = 12e6 / 1.75
    tie = collective_cost(TWO_PROTOCOLS, "all_reduce", switch)
    assert (tie.protocol, tie.seconds) == ("ll", pytest.approx(92e-6, rel=1e-9))
    assert collective_cost(TWO_PROTOCOLS, "all_reduce", switch * 0.99).protocol == "ll"
    assert collective_cost(TWO_PROTOCOLS, "all_reduce", switch * 1.01).protocol == "simple"
    # An all-gather has half the steps and half the bytes: 5 + 3.5 + S/150e3 = 10 + 21 + S/300e3, S = 6.75e6,
    # n* = 6.75e6 / 0.875 = 7,714,285.7 bytes.
    gather_switch = 6.75e6 / 0.875
    assert collective_cost(TWO_PROTOCOLS, "all_gather", gather_switch * 0.99).protocol == "ll"
    assert collective_cost(TWO_PROTOCOLS, "all_gather", gather_switch * 1.01).protocol == "simple"


def test_protocols_add_to_the_link_latency_and_combine_with_every_algorithm():
    """With latency_us = 1, each of the ring's 14 steps costs 1 µs more: 24.23339 + 14 = 38.23339 µs at 1 MiB.
    Without the ring-only restriction the switch offers direct (2 steps): LL 5 + 2·0.5 + 12.23339 = 18.23339 µs,
    the fastest pair."""
    slower = dataclasses.replace(TWO_PROTOCOLS, latency_us=1.0)
    assert collective_cost(slower, "all_reduce", MIB).seconds == pytest.approx(38.23339e-6, rel=1e-6)
    anything = dataclasses.replace(TWO_PROTOCOLS, algorithms=())
    best = collective_cost(anything, "all_reduce", MIB)
    assert (best.algorithm, best.protocol, best.seconds) == ("direct", "ll", pytest.approx(18.23339e-6, rel=1e-6))
    with pytest.raises(InputError, match="'direct' is not available"):
        collective_cost(TWO_PROTOCOLS, "all_reduce", MIB, algorithm="direct")
    with pytest.raises(InputError, match="'ll128' is not one of the system's protocols"):
        collective_cost(TWO_PROTOCOLS, "all_reduce", MIB, protocol="ll128")


def test_without_protocols_the_cost_is_exactly_the_plain_formula():
    """No protocols: steps·α + sent / B, bit for bit, for every algorithm and size, and no protocol named."""
    alpha, bandwidth = 2e-6, 12 * 25e9
    for size in (1e3, float(MIB), 1e9):
        for algorithm, steps, sent in (("ring", 14, 1.75 * size), ("direct", 2, 1.75 * size),
                                       ("tree", 6, 2.0 * size)):
            cost = collective_cost(SWITCH, "all_reduce", size, algorithm=algorithm)
            assert cost.protocol == "" and cost.seconds == steps * alpha + sent / bandwidth
        gather = collective_cost(SWITCH, "all_gather", size)
        assert (gather.algorithm, gather.seconds) == ("direct", 1 * alpha + 0.875 * size / bandwidth)


def test_protocols_and_algorithms_in_a_hardware_yaml():
    hw = load_hardware(HW_CONFIG_DIR / "h100_like.yaml")
    assert hw.system.algorithms == ("ring",) and hw.system.protocols.ll128 == ProtocolConfig(14.0, 1.9, 0.92)
    data = hardware_to_dict(hw)
    assert hardware_from_dict(data, "x.yaml") == hw
    bad = {**data, "system": {**data["system"], "algorithms": ["ring", "butterfly"]}}
    with pytest.raises(InputError, match=r"system.algorithms\[1\]: expected one of ring, direct, tree, in_switch"):
        hardware_from_dict(bad, "x.yaml")
    bad = {**data, "system": {**data["system"], "algorithms": ["tree"]}}
    with pytest.raises(InputError, match="system.algorithms: every collective needs an algorithm"):
        hardware_from_dict(bad, "x.yaml")
    bad = {**data, "system": {**data["system"], "protocols": {}}}
    with pytest.raises(InputError, match="system.protocols: give at least one of ll, ll128, simple"):
        hardware_from_dict(bad, "x.yaml")
    bad = {**data, "system": {**data["system"], "protocols": {"ll": {"base_latency_us": 1, "step_latency_us": 1,
                                                                      "bandwidth_share": 1.5}}}}
    with pytest.raises(InputError, match="system.protocols.ll.bandwidth_share: expected a value <= 1"):
        hardware_from_dict(bad, "x.yaml")


# ---------------------------------------------------------------- the published set

def _published_rows():
    from amber_sim.paths import VALIDATION_DIR
    from amber_sim.validate.collectives import load_nccl_measurements

    return load_nccl_measurements(VALIDATION_DIR / "nccl_measurements.csv")


@pytest.mark.parametrize("config", ["a100_like.yaml", "h100_like.yaml"])
def test_the_fitted_numbers_are_recomputed_from_their_stated_rows(config):
    """Two numbers per config are fitted, on the smallest and the largest all-reduce of one stated series:
    system.sustained_fraction so that the ring all-reduce with NCCL's Simple protocol takes the 1 GiB row's
    time (the config holds it rounded to 0.001), and the nccl-tests harness's per-call floor, the 1 MiB row's
    time (the model is faster there). Both rows then replay within 0.2%."""
    from amber_sim.validate.collectives import (compare_collectives, fit_rows, fit_sustained_fraction,
                                                harness_floors)

    rows = _published_rows()
    small, large = fit_rows(rows, config)
    assert (small.bytes, large.bytes) == (MIB, GIB)
    system = load_hardware(HW_CONFIG_DIR / config).system
    assert system.sustained_fraction == pytest.approx(fit_sustained_fraction(large, system), abs=0.0006)
    assert harness_floors(rows)[config] == (small.time_us, small.id)
    fitted = {c.measurement.id: c for c in compare_collectives(rows) if c.measurement.id in (small.id, large.id)}
    assert fitted[large.id].protocol == "simple" and abs(fitted[large.id].error) < 0.002
    assert fitted[small.id].model_us < small.time_us and fitted[small.id].error == 0.0


def test_the_h100_replay_picks_each_protocol_where_nccl_would():
    """On h100_like (B = 0.809 · 450 GB/s = 364 GB/s): the 4 MiB ring all-reduce is fastest in LL
    (15 µs + 7,340,032 / 182.0 GB/s = 55.3 µs; LL128 40.6 + 21.9 = 62.5 µs), 16 MiB in LL128 (40.6 + 87.6 =
    128 µs), 1 GiB in Simple (56 + 5,162 µs); the published times are 53.09, 126.62 and 5,218.59 µs."""
    hw = load_hardware(HW_CONFIG_DIR / "h100_like.yaml")
    picks = {size: collective_cost(hw.system, "all_reduce", size) for size in (4 * MIB, 16 * MIB, GIB)}
    assert [picks[size].protocol for size in (4 * MIB, 16 * MIB, GIB)] == ["ll", "ll128", "simple"]
    assert picks[4 * MIB].seconds == pytest.approx(15e-6 + 1.75 * 4 * MIB / (0.5 * 0.809 * 450e9), rel=1e-9)
    assert picks[4 * MIB].seconds * 1e6 == pytest.approx(55.3, abs=0.05)
    assert picks[16 * MIB].seconds * 1e6 == pytest.approx(40.6 + 1.75 * 16 * MIB / (0.92 * 0.809 * 450e3), rel=1e-9)


def test_validate_collectives_prints_every_series_and_the_target_last(capsys):
    """The protocol-aware model (docs/validation.md) puts every H100 row (NVLink SHARP off) within 14.6% (the
    reduce-scatter's 1 MiB row, which sits on the harness's floor fitted on the all-reduce's 1 MiB row), but not
    the A100 rows: the two one-process launches carry a higher per-call floor than the fitted 8-process series
    (the DGX A100's 2 MiB row is 108.8 µs, the model 47.0 µs: −56.8%) and mid sizes run slower than any NCCL
    protocol's share of the 1 GiB bandwidth. So the command says NOT met and exits 1; the bounds below are what
    was measured plus 0.5 points, so that a worse model fails here."""
    from amber_sim.cli import main

    assert main(["validate", "collectives"]) == 1
    out = capsys.readouterr().out
    assert "a100-sxm4-80gb-allreduce-8p" in out and "NVLink SHARP active" in out
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("target: every collective from 1 MiB to 1 GiB within 15%") and last.endswith("NOT met")
    worst = {config: float(pct) / 100 for config, pct in re.findall(r"(\w+_like\.yaml): nccl-tests per-call floor "
                                                                     r"[\d.]+ µs \(fitted on [\w-]+\); worst "
                                                                     r"([\d.]+)%", out)}
    assert worst["h100_like.yaml"] <= 0.151 and worst["a100_like.yaml"] <= 0.573
    assert float(re.search(r"worst ([\d.]+)%: NOT met", last).group(1)) == pytest.approx(56.8, abs=0.5)
