"""Pattern strings for the pruner: ``dense``, ``unstructured`` or ``N:M``.

This is the pruner's strict parser: ``N:M`` needs ``0 < N < M <= 64`` (``N == M`` keeps
everything, so it is an error that points at ``dense``). The simulator side accepts ``N == M``
as a hardware mode name (``amber_sim.patterns``); the pruner never produces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from amber_sim.errors import InputError

#: Largest group size M the kernels handle (a group's kept positions fit one 64-bit mask).
MAX_M = 64

_NM_RE = re.compile(r"^\s*([+-]?\d+)\s*:\s*([+-]?\d+)\s*$")
_EXPECTED = "expected 'dense', 'unstructured' or 'N:M' with integers 0 < N < M <= 64 (e.g. '2:4', '8:16')"


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern. ``kind`` is ``"dense"``, ``"unstructured"`` or ``"nm"``; ``n``/``m`` only for ``nm``."""

    kind: str
    n: int = 0
    m: int = 0

    @property
    def is_nm(self) -> bool:
        return self.kind == "nm"

    @property
    def density(self) -> float | None:
        """N/M for ``N:M``, 1.0 for ``dense``, ``None`` for ``unstructured`` (its density is chosen per run)."""
        if self.kind == "nm":
            return self.n / self.m
        if self.kind == "dense":
            return 1.0
        return None

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.kind == "nm" else self.kind


def parse_pattern(text: object, where: str = "pattern") -> Pattern:
    """Parse a pattern string; anything else raises :class:`InputError` naming ``text``.

    >>> parse_pattern("8:16").density
    0.5
    """
    if isinstance(text, Pattern):
        return text
    if not isinstance(text, str):
        raise InputError(where, repr(text), _EXPECTED)
    lowered = text.strip().lower()
    if lowered in ("dense", "unstructured"):
        return Pattern(lowered)
    match = _NM_RE.match(lowered)
    if not match:
        raise InputError(where, repr(text), _EXPECTED)
    n, m = int(match.group(1)), int(match.group(2))
    if n <= 0:
        raise InputError(where, repr(text), f"N must be > 0 (got N = {n}); {_EXPECTED}")
    if n == m:
        raise InputError(where, repr(text), "N must be < M; use 'dense' to keep every channel")
    if n > m:
        raise InputError(where, repr(text), f"N must be < M (got N = {n}, M = {m}); {_EXPECTED}")
    if m > MAX_M:
        raise InputError(where, repr(text), f"M must be <= {MAX_M} (got M = {m}); {_EXPECTED}")
    return Pattern("nm", n, m)
