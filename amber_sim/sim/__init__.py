"""The accelerator model (torch-free): one module per rule family; docs/model.md is the map.

compute (tile cycles), memory (L2 rule, shared bandwidth, step cost), blocks (block order, waves),
pipeline (the per-core timeline), mapper (candidates, fits, search), sparse (compatibility, modes,
stored bytes, sparsifier), schedule (producer groups, fusion, baselines), engine (trace × hardware →
results), metrics (totals → run metrics).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

# Bumped whenever a rule changes the numbers: a sweep table made by another version is not resumed.
MODEL_VERSION = 8

# The compiled kernels call each other across modules, and Numba's on-disk cache only notices edits to a
# kernel's own file: an edit to pipeline.py would leave mapper.py's cached search running the old
# pipeline. Keying the cache directory on the sources of every compiled module makes any edit recompile.
_COMPILED_MODULES = ("compute.py", "memory.py", "blocks.py", "pipeline.py", "mapper.py")


def _kernel_cache_dir() -> str:
    here = Path(__file__).parent
    digest = hashlib.sha256(b"".join((here / name).read_bytes() for name in _COMPILED_MODULES)).hexdigest()[:16]
    for base in (here / "__pycache__", Path(tempfile.gettempdir()) / "amber-sim-kernels"):
        target = base / f"numba-{digest}"
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(target, os.W_OK):
            return str(target)
    return ""


def _compile_with_keyed_cache() -> None:
    from numba.core import config

    previous = config.CACHE_DIR
    if not os.environ.get("NUMBA_CACHE_DIR"):
        config.CACHE_DIR = _kernel_cache_dir()
    try:
        from amber_sim.sim import blocks, compute, mapper, memory, pipeline  # noqa: F401 (decorated here)
    finally:
        config.CACHE_DIR = previous


_compile_with_keyed_cache()
