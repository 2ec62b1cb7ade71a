"""Collective communication between the chips of a system: the α–β cost of each algorithm (docs/model.md §8).

A collective over p chips moves a buffer of ``message_bytes`` (the whole, unsharded tensor: an all-reduce's
input on every chip, an all-gather's output, a reduce-scatter's input). Each chip sends and receives over its
links at B = links_per_chip × link_bandwidth (bytes/s per direction; every algorithm here spreads its traffic
over all of a chip's links; times ``sustained_fraction``, the share of the line rate the library sustains), and
every step of an algorithm costs the per-step latency α:

| algorithm | all-reduce | all-gather / reduce-scatter | where |
|---|---|---|---|
| ring | 2(p−1)·α + 2(p−1)/p · n/B | (p−1)·α + (p−1)/p · n/B | every topology |
| direct | 2·α + 2(p−1)/p · n/B | α + (p−1)/p · n/B | full mesh and switch (every chip reaches every other in one hop) |
| tree | 2⌈log₂ p⌉·α + 2 · n/B | — | every topology (reduce up a binary tree, broadcast down, pipelined) |
| in-switch | 2·α + n/B | — | switch with ``in_switch_reduction`` (NVLink SHARP: the switch adds) |

(p−1)/p is the share of the buffer a chip must send in a reduce-scatter or all-gather. ``auto`` takes the
fastest algorithm the system offers (``system.algorithms``: the ones its library runs; empty: all the topology
allows), as NCCL's tuner does.

**Protocols** (``system.protocols``, optional). A collective library moves data with one of a few protocols that
trade latency against bandwidth (NCCL: LL, a flag in every 8-byte word, half the bytes are data; LL128, one flag
word per 128-byte line; Simple, bulk copies with a fence per step). Protocol q adds a latency once per call
(base_q) and one per step (s_q, on top of α), and moves data at its share of B (w_q), so an algorithm with
``steps`` steps that sends ``sent`` bytes per chip costs

    t(algorithm, q) = base_q + steps · (α + s_q) + sent / (w_q · B)

and ``auto`` takes the fastest (algorithm, protocol) pair, as NCCL's tuner does (its ring time is
baseLat + nsteps · hwLat + bytes / bw per protocol, src/graph/tuning.cc). Without protocols the cost is the plain
α–β one above, unchanged. NCCL reports *bus bandwidth*: for an all-reduce
busbw = algbw · 2(p−1)/p, for an all-gather / reduce-scatter busbw = algbw · (p−1)/p, with algbw = n / time;
:func:`bus_bandwidth_gb_s` gives the model's, to compare with published nccl-tests tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amber_sim.errors import InputError
from amber_sim.hw.config import SystemConfig

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter")
ALGORITHMS = ("ring", "direct", "tree", "in_switch")
PROTOCOLS = ("ll", "ll128", "simple")


@dataclass(frozen=True)
class CollectiveCost:
    collective: str
    algorithm: str
    chips: int
    message_bytes: float
    steps: int
    sent_bytes_per_chip: float
    seconds: float
    protocol: str = ""  # the protocol of the cost ("" when the system gives none)


def chip_bandwidth_bytes_s(system: SystemConfig) -> float:
    """B: what one chip sends (and receives) per second over all its links, one direction, at the fraction of the
    line rate the collective library sustains."""
    return system.links_per_chip * system.link_bandwidth_gb_s * 1e9 * system.sustained_fraction


def available_algorithms(system: SystemConfig, collective: str) -> tuple[str, ...]:
    """The algorithms ``system`` can run ``collective`` with: those its topology allows, restricted to
    ``system.algorithms`` when it lists some."""
    algorithms = ["ring"]
    if system.topology in ("full_mesh", "switch"):
        algorithms.append("direct")
    if collective == "all_reduce":
        algorithms.append("tree")
        if system.in_switch_reduction:
            algorithms.append("in_switch")
    if system.algorithms:
        algorithms = [name for name in algorithms if name in system.algorithms]
    return tuple(algorithms)


def available_protocols(system: SystemConfig) -> tuple[str, ...]:
    """The protocols ``system`` gives, in :data:`PROTOCOLS` order; () for the plain α–β cost."""
    if system.protocols is None:
        return ()
    return tuple(name for name in PROTOCOLS if getattr(system.protocols, name) is not None)


def _cost(system: SystemConfig, collective: str, algorithm: str, message_bytes: float, p: int,
          protocol: str = "") -> CollectiveCost:
    alpha = system.latency_us * 1e-6
    bandwidth = chip_bandwidth_bytes_s(system)
    base = 0.0
    if protocol:
        spec = getattr(system.protocols, protocol)
        base, alpha = spec.base_latency_us * 1e-6, alpha + spec.step_latency_us * 1e-6
        bandwidth *= spec.bandwidth_share
    share = (p - 1) / p
    rounds = 2 if collective == "all_reduce" else 1  # an all-reduce is a reduce-scatter then an all-gather
    if algorithm == "ring":
        steps, sent = rounds * (p - 1), rounds * share * message_bytes
    elif algorithm == "direct":
        steps, sent = rounds, rounds * share * message_bytes
    elif algorithm == "tree":
        steps, sent = 2 * math.ceil(math.log2(p)), 2.0 * message_bytes
    else:  # in_switch: each chip sends its buffer once and receives the sum once
        steps, sent = 2, float(message_bytes)
    return CollectiveCost(collective, algorithm, p, float(message_bytes), steps, sent,
                          base + steps * alpha + sent / bandwidth, protocol)


def collective_cost(system: SystemConfig, collective: str, message_bytes: float, chips: int | None = None,
                    algorithm: str = "auto", protocol: str = "auto") -> CollectiveCost:
    """The cost of ``collective`` on ``chips`` chips of ``system`` (default: all of them); ``algorithm`` one of
    :data:`ALGORITHMS` or ``auto`` (the fastest available); ``protocol`` one of the system's protocols or ``auto``
    (the fastest; ignored when the system gives none). With both ``auto`` the fastest (algorithm, protocol) pair
    wins, ties to the earlier algorithm, then the earlier protocol. One chip: nothing to move, 0 s."""
    if collective not in COLLECTIVES:
        raise InputError("collective", None, f"expected one of {', '.join(COLLECTIVES)}, got {collective!r}")
    p = system.chips if chips is None else chips
    if not 1 <= p <= system.chips:
        raise InputError("collective", "chips", f"expected 1 to {system.chips} chips, got {p}")
    if not (math.isfinite(message_bytes) and message_bytes >= 0):
        raise InputError("collective", "message_bytes", f"expected a finite size >= 0, got {message_bytes!r}")
    if p == 1 or message_bytes == 0:
        return CollectiveCost(collective, "none", p, float(message_bytes), 0, 0.0, 0.0)
    available = available_algorithms(system, collective)
    if algorithm != "auto" and algorithm not in available:
        raise InputError("collective", "algorithm", f"{algorithm!r} is not available for {collective} on a "
                         f"{system.topology} system; expected one of {', '.join(available)} or auto")
    protocols = available_protocols(system)
    if protocols and protocol != "auto" and protocol not in protocols:
        raise InputError("collective", "protocol", f"{protocol!r} is not one of the system's protocols; expected "
                         f"one of {', '.join(protocols)} or auto")
    algorithms = available if algorithm == "auto" else (algorithm,)
    chosen = (protocols if protocol == "auto" else (protocol,)) if protocols else ("",)
    candidates = [_cost(system, collective, name, message_bytes, p, proto) for name in algorithms for proto in chosen]
    return min(candidates, key=lambda cost: (cost.seconds, algorithms.index(cost.algorithm),
                                             chosen.index(cost.protocol)))


def bus_bandwidth_gb_s(cost: CollectiveCost) -> float:
    """nccl-tests' bus bandwidth of a cost: algbw · 2(p−1)/p (all-reduce) or algbw · (p−1)/p (others)."""
    if cost.seconds == 0:
        return math.inf
    factor = (cost.chips - 1) / cost.chips * (2 if cost.collective == "all_reduce" else 1)
    return cost.message_bytes / cost.seconds * factor / 1e9
