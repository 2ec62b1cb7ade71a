"""The pruner's strict view of pattern strings: ``dense``, ``unstructured`` or ``N:M`` with 0 < N < M <= 64.

Parsing is shared with the rest of amber-sim (:mod:`amber_sim.patterns`); the pruner only adds that
``N == M`` (which keeps everything) is an error pointing at ``dense``: hardware configs may name it as
a mode, the pruner never produces it.
"""

from __future__ import annotations

from amber_sim.errors import InputError
from amber_sim.patterns import MAX_PATTERN_M as MAX_M
from amber_sim.patterns import Pattern
from amber_sim.patterns import parse_pattern as _parse_any_pattern

__all__ = ["MAX_M", "Pattern", "parse_pattern"]


def parse_pattern(text: object, where: str = "pattern") -> Pattern:
    """Parse a pattern for pruning; anything else (including ``N == M``) raises :class:`InputError`.

    >>> parse_pattern("8:16").density
    0.5
    """
    if isinstance(text, Pattern):
        return text
    pattern = _parse_any_pattern(text, where)
    if pattern.kind == "nm" and pattern.n == pattern.m:
        raise InputError(where, None, f"pattern {text!r}: N must be < M; use 'dense' to keep every channel")
    return pattern
