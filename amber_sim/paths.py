"""Where bundled files live and how bare names resolve.

``--hw ascend_like.yaml`` and ``--trace llama.json`` name the bundled
``hw_configs/`` and ``traces/`` of the checkout when no such path exists; a path
that exists always wins. ``.yaml``/``.json`` may be left off.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HW_CONFIG_DIR = PROJECT_ROOT / "hw_configs"
TRACE_DIR = PROJECT_ROOT / "traces"
REPORT_DIR = PROJECT_ROOT / "reports"


def cache_dir() -> Path:
    """Converted weights, tokenized corpora and tool venvs: $AMBER_SIM_CACHE or ~/.cache/amber-sim."""
    return Path(os.environ.get("AMBER_SIM_CACHE", Path.home() / ".cache" / "amber-sim"))


def _resolve(name: str | os.PathLike, bundled_dir: Path, suffix: str) -> Path:
    given = Path(name)
    if given.exists():
        return given
    if given.parent == Path("."):
        for candidate in (bundled_dir / given.name, bundled_dir / (given.name + suffix)):
            if candidate.exists():
                return candidate
    return given  # the loader reports it missing, naming what the user typed


def resolve_hw_config(name: str | os.PathLike) -> Path:
    return _resolve(name, HW_CONFIG_DIR, ".yaml")


def resolve_trace(name: str | os.PathLike) -> Path:
    return _resolve(name, TRACE_DIR, ".json")


def bundled_hw_configs() -> list[Path]:
    return sorted(HW_CONFIG_DIR.glob("*.yaml"))


def bundled_traces() -> list[Path]:
    return sorted(TRACE_DIR.glob("*.json"))
