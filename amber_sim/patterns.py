"""N:M pattern strings and the arithmetic every part of amber-sim shares.

A pattern is ``"dense"``, ``"unstructured"`` (per-token top-k at a measured
density), ``"unstructured-global"`` (top-k over the whole activation of a forward: every
token's entries compete, the looser bound) or ``"N:M"``: in every group of M consecutive
input channels at most N values are kept. Both unstructured scopes have kind
``unstructured``: the hardware sees the same bitmask-compressed data. ``N == M`` is accepted and means dense (hardware such as a
VEGETA-like engine lists ``4:4`` as a mode); ``0 < N <= M <= MAX_PATTERN_M``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from amber_sim.errors import InputError

MAX_PATTERN_M = 64
_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern. ``kind`` is ``dense``, ``unstructured`` or ``nm``."""

    kind: str
    n: int = 0
    m: int = 0
    scope: str = "token"  # unstructured only: "token" (per-token top-k) or "tensor" (global top-k)

    @property
    def is_nm(self) -> bool:
        return self.kind == "nm" and self.n < self.m

    @property
    def density(self) -> float | None:
        """N/M for N:M, 1.0 for dense, None for unstructured (its density is chosen per run)."""
        if self.kind == "nm":
            return self.n / self.m
        if self.kind == "dense":
            return 1.0
        return None

    def __str__(self) -> str:
        if self.kind == "nm":
            return f"{self.n}:{self.m}"
        return "unstructured-global" if self.scope == "tensor" else self.kind


def parse_pattern(text: object, where: str = "pattern", field: str | None = None, max_m: int = MAX_PATTERN_M) -> Pattern:
    """Parse ``dense``, ``unstructured``, ``unstructured-global`` or ``N:M`` (0 < N <= M <= max_m); anything else
    is an InputError."""
    if not isinstance(text, str):
        raise InputError(where, field, f"expected a pattern string like '2:4', 'dense' or 'unstructured', got {text!r}")
    lowered = text.strip().lower()
    if lowered in ("dense", "unstructured"):
        return Pattern(lowered)
    if lowered == "unstructured-global":
        return Pattern("unstructured", scope="tensor")
    match = _NM_RE.match(lowered)
    if not match:
        raise InputError(where, field, f"expected a pattern 'N:M' (e.g. '2:4'), 'dense', 'unstructured' or "
                                       f"'unstructured-global', got {text!r}")
    n, m = int(match.group(1)), int(match.group(2))
    if not 0 < n <= m:
        raise InputError(where, field, f"pattern {text!r} needs 0 < N <= M (keep N of every M channels)")
    if m > max_m:
        raise InputError(where, field, f"pattern {text!r} has M = {m}, above the maximum M = {max_m}")
    return Pattern("nm", n, m)
