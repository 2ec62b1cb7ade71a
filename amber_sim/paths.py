"""Where bundled files live and how bare names resolve.

``--hw ascend_like.yaml`` and ``--trace llama.json`` name the bundled hardware configs and traces when
no such path exists; a path that exists always wins. ``.yaml``/``.json`` may be left off.

The bundled files are the repository's top-level ``hw_configs/``, ``traces/`` and ``validation/``
folders. A checkout (or an editable install) reads them in place; a wheel carries a copy of them in
``amber_sim/_bundled/`` (setup.py puts it there), which is read instead when present
(docs/architecture.md, "Bundled files"). Reports go to the checkout's ``reports/`` in a checkout, and to
``reports/`` under the current directory for an installed package.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The checkout's root when running from a checkout (tests, docs and benchmarks live there); for an
# installed wheel it is only the folder the package was installed into.
PROJECT_ROOT = PACKAGE_DIR.parent
BUNDLED_DIR = PACKAGE_DIR / "_bundled"
INSTALLED = BUNDLED_DIR.is_dir()  # a wheel install (setup.py copied the data folders in); else a checkout


def _data_dir(name: str) -> Path:
    return BUNDLED_DIR / name if INSTALLED else PROJECT_ROOT / name


HW_CONFIG_DIR = _data_dir("hw_configs")
TRACE_DIR = _data_dir("traces")
VALIDATION_DIR = _data_dir("validation")
# Relative for an installed package: resolved against the current directory when a report is written.
REPORT_DIR = Path("reports") if INSTALLED else PROJECT_ROOT / "reports"


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
