"""Pattern compatibility: which hardware N:M patterns execute data of a given pattern natively.

Data with pattern N:M (groups of M aligned at multiples of M) runs natively on hardware pattern
Nh:Mh iff every N:M-valid mask is Nh:Mh-valid, i.e. iff the worst case, over every hardware group
(Mh consecutive channels aligned at multiples of Mh), of the kept values that can fall in that group
is at most Nh (DESIGN.md §6). The worst case is computed, not guessed: a hardware group starting at
offset ``o`` inside a data group overlaps consecutive data groups, each contributing at most
``min(N, overlap)`` kept values.
"""

from __future__ import annotations

import math
from functools import lru_cache

from amber_sim.patterns import Pattern


@lru_cache(maxsize=4096)
def worst_case_kept_in_hw_group(n: int, m: int, mh: int) -> int:
    """Most kept values of N:M data that can land in one aligned group of ``mh`` channels."""
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
