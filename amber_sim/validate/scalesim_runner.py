"""Run SCALE-Sim v3 on one GEMM, out of process, and read back what it reports.

SCALE-Sim (PyPI ``scalesim``) breaks on NumPy 2, and amber-sim runs with NumPy 2, so SCALE-Sim
lives in its own virtual environment (``scalesim==3.0.0`` with ``numpy<2``) and is only ever
imported by a subprocess running that venv's python; this module never imports it.

* :func:`ensure_venv` builds the venv on demand at ``$AMBER_SIM_SCALESIM_VENV`` or
  ``~/.cache/amber-sim/scalesim-venv`` (``$AMBER_SIM_CACHE/scalesim-venv``) and raises
  :class:`~amber_sim.errors.InputError` saying how to fix it when the build fails.
* :func:`run_gemm` runs one GEMM (SCALE-Sim's M, N, K; dense or N:M-sparse filter) on an
  R×C array with the os/ws/is dataflow in the stall-free ``CALC`` bandwidth mode and returns a
  :class:`ScaleSimResult` (cycles, stalls, utilisation, SRAM/DRAM counts, wall time).
* :func:`run_case` does the same for a :class:`~amber_sim.validate.scalesim_cases.ScaleSimCase`
  (amber-sim terms, mapped onto SCALE-Sim as the case says).
* :func:`closed_form` is SCALE-Sim's cycle count (and SRAM counts) in closed form, as worked out
  from its source and runs (docs/scalesim-notes.md); the regenerated CSV checks it on every case.

``python -m amber_sim.validate.scalesim_runner --regenerate validation/scalesim_reference.csv``
runs every case and rewrites the CSV and the ``scalesim_configs/`` folder beside it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amber_sim.errors import InputError
from amber_sim.paths import cache_dir

SCALESIM_VERSION = "3.0.0"
REQUIREMENTS = (f"scalesim=={SCALESIM_VERSION}", "numpy<2")
VENV_ENV = "AMBER_SIM_SCALESIM_VENV"
MARKER_NAME = "amber-sim-scalesim.json"
DATAFLOWS = ("os", "ws", "is")
RUN_NAME = "amber_sim_validate"
DEFAULT_TIMEOUT_S = 900.0

_RESULT_TAG = "AMBER_SIM_SCALESIM_RESULT "

# Runs inside the SCALE-Sim venv: argv = config, topology, layout, output dir.
_DRIVER = r"""
import json, sys, time
t0 = time.perf_counter()
import importlib.metadata as md
import numpy
from scalesim.scale_sim import scalesim
cfg, topo, layout, out = sys.argv[1:5]
t1 = time.perf_counter()
s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
             input_type_gemm=True)
s.run_scale(top_path=out)
t2 = time.perf_counter()
layer = s.runner.single_layer_sim_object_list[0]
cs = layer.compute_system
info = {
    "scalesim_version": md.version("scalesim"),
    "numpy_version": numpy.__version__,
    "python_version": sys.version.split()[0],
    "Sr": int(cs.Sr), "Sc": int(cs.Sc), "T": int(cs.T),
    "row_folds": int(getattr(cs, "row_fold_demand_matrices", cs.row_fold)),
    "col_folds": int(cs.col_fold),
    "ifmap_operand_shape": [int(x) for x in layer.op_mat_obj.ifmap_addr_matrix.shape],
    "filter_operand_shape": [int(x) for x in layer.op_mat_obj.filter_addr_matrix.shape],
    "demand_rows": int(cs.ofmap_demand_matrix.shape[0]),
    "import_s": t1 - t0,
    "sim_s": t2 - t1,
}
print("AMBER_SIM_SCALESIM_RESULT " + json.dumps(info), flush=True)
"""


class ScaleSimError(RuntimeError):
    """SCALE-Sim itself failed (crash, timeout, missing report) on an input we believe valid."""


# ---------------------------------------------------------------------------------------------
# The venv
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleSimEnv:
    venv: Path
    python: Path
    scalesim_version: str
    numpy_version: str


def default_venv_path() -> Path:
    """``$AMBER_SIM_SCALESIM_VENV`` if set, else ``<amber-sim cache>/scalesim-venv``."""
    override = os.environ.get(VENV_ENV)
    if override:
        return Path(override).expanduser()
    return cache_dir() / "scalesim-venv"


def _venv_python(venv: Path) -> Path:
    if os.name == "nt":  # pragma: no cover - not a project platform
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _clean_env() -> dict[str, str]:
    """The environment for the venv's python: nothing from amber-sim's own interpreter leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


_PROBE = (
    "import importlib.metadata as m, json, numpy, scalesim.scale_sim; "
    "print(json.dumps({'scalesim': m.version('scalesim'), 'numpy': numpy.__version__}))"
)


def _probe(python: Path) -> dict | None:
    try:
        proc = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=300, env=_clean_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _fix_hint(venv: Path) -> str:
    reqs = " ".join(f"'{r}'" for r in REQUIREMENTS)
    return (
        f"fix: make sure PyPI is reachable and run `python3 -m venv {venv} && {venv}/bin/pip install {reqs}` "
        f"by hand, or point ${VENV_ENV} at a venv that has them"
    )


def _tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip() and "is ignored: it is neither a file nor a directory" not in ln]
    return " | ".join(kept[-lines:])


_ENV_CACHE: dict[Path, ScaleSimEnv] = {}


def ensure_venv(venv: str | os.PathLike | None = None, *, create: bool = True, base_python: str | None = None) -> ScaleSimEnv:
    """Return the SCALE-Sim venv, building it first if needed (``python -m venv`` + pip install).

    A venv whose probe shows ``scalesim`` other than the pinned version or ``numpy>=2`` gets the
    pinned requirements installed into it. Raises :class:`InputError` (with how to fix it) when the
    venv is missing and ``create`` is false, or when building it fails.
    """
    path = Path(venv).expanduser() if venv is not None else default_venv_path()
    path = path.absolute()
    if path in _ENV_CACHE:
        return _ENV_CACHE[path]
    where = f"SCALE-Sim venv {path}"
    python = _venv_python(path)
    marker = path / MARKER_NAME

    info: dict | None = None
    if python.exists() and marker.exists():
        try:
            recorded = json.loads(marker.read_text())
            if recorded.get("requirements") == list(REQUIREMENTS):
                info = recorded
        except ValueError:
            info = None
    if info is None and python.exists():
        probed = _probe(python)
        if probed and probed["scalesim"] == SCALESIM_VERSION and int(probed["numpy"].split(".")[0]) < 2:
            info = probed
            _write_marker(marker, info)
    if info is None:
        if not create:
            raise InputError(where, None, f"no working SCALE-Sim {SCALESIM_VERSION} venv there; {_fix_hint(path)}")
        info = _build_venv(path, python, where, base_python)
        _write_marker(marker, info)
    env = ScaleSimEnv(path, python, info["scalesim"], info["numpy"])
    _ENV_CACHE[path] = env
    return env


def _write_marker(marker: Path, info: dict) -> None:
    """Record a verified venv so later calls skip the import probe (a subprocess, ~1 s)."""
    try:
        marker.write_text(json.dumps({"scalesim": info["scalesim"], "numpy": info["numpy"], "requirements": list(REQUIREMENTS)}, indent=1) + "\n")
    except OSError:
        pass  # a read-only venv is fine; we just probe again next time


def _build_venv(path: Path, python: Path, where: str, base_python: str | None) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / (path.name + ".lock")
    with open(lock_path, "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same venv
        except ImportError:  # pragma: no cover - not a project platform
            pass
        probed = _probe(python) if python.exists() else None
        if probed and probed["scalesim"] == SCALESIM_VERSION and int(probed["numpy"].split(".")[0]) < 2:
            return probed
        print(f"amber-sim: building the SCALE-Sim venv at {path} ({' '.join(REQUIREMENTS)}), about a minute...", file=sys.stderr)
        if not python.exists():
            base = base_python or getattr(sys, "_base_executable", None) or sys.executable
            try:
                proc = subprocess.run([base, "-m", "venv", str(path)], capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise InputError(where, None, f"could not create the venv ({exc}); {_fix_hint(path)}") from exc
            if proc.returncode != 0 or not python.exists():
                raise InputError(where, None, f"`python -m venv` failed ({_tail(proc.stderr + proc.stdout)}); {_fix_hint(path)}")
        cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", *REQUIREMENTS]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=_clean_env())
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InputError(where, None, f"pip install {' '.join(REQUIREMENTS)} failed ({exc}); {_fix_hint(path)}") from exc
        if proc.returncode != 0:
            raise InputError(
                where, None, f"pip install {' '.join(REQUIREMENTS)} failed (exit {proc.returncode}: {_tail(proc.stderr + proc.stdout)}); {_fix_hint(path)}"
            )
        probed = _probe(python)
        if not probed:
            raise InputError(where, None, f"scalesim was installed but does not import; {_fix_hint(path)}")
        return probed


# ---------------------------------------------------------------------------------------------
# Inputs: config and topology text
# ---------------------------------------------------------------------------------------------


def _parse_sparsity(sparsity: str, where: str) -> tuple[int, int] | None:
    from amber_sim.validate.scalesim_cases import parse_pattern

    return parse_pattern(sparsity, where)


def config_text(
    rows: int,
    cols: int,
    dataflow: str,
    sram_kb: tuple[int, int, int] = (256, 256, 256),
    *,
    sparse: bool = False,
) -> str:
    """The SCALE-Sim .cfg for one array/dataflow/SRAM size, CALC (stall-free) bandwidth mode.

    With ``sparse`` the [sparsity] section turns on SCALE-Sim's layer-wise N:M filter sparsity
    (ELLPACK-block metadata, no row-wise "optimized mapping"); the N:M ratio itself is the
    topology row's Sparsity column.
    """
    ifmap_kb, filter_kb, ofmap_kb = sram_kb
    sparsity = (
        "SparsitySupport : true\nSparseRep : ellpack_block\nOptimizedMapping : false\nRandomNumberGeneratorSeed : 40\n"
        if sparse
        else "SparsitySupport : false\n"
    )
    return (
        "# SCALE-Sim v3 config written by amber_sim.validate.scalesim_runner (see docs/scalesim-notes.md).\n"
        "# CALC = stall-free estimate-bandwidth mode; N:M comes from the topology's Sparsity column.\n"
        "[general]\n"
        f"run_name = {RUN_NAME}\n"
        "\n"
        "[architecture_presets]\n"
        f"ArrayHeight : {rows}\n"
        f"ArrayWidth : {cols}\n"
        f"IfmapSramSzkB : {ifmap_kb}\n"
        f"FilterSramSzkB : {filter_kb}\n"
        f"OfmapSramSzkB : {ofmap_kb}\n"
        "IfmapOffset : 0\n"
        "FilterOffset : 10000000\n"
        "OfmapOffset : 20000000\n"
        "Bandwidth : 10\n"
        f"Dataflow : {dataflow}\n"
        "MemoryBanks : 1\n"
        "ReadRequestBuffer : 512\n"
        "WriteRequestBuffer : 512\n"
        "\n"
        "[layout]\n"
        "IfmapCustomLayout : False\n"
        "FilterCustomLayout : False\n"
        "IfmapSRAMBankBandwidth : 10\n"
        "IfmapSRAMBankNum : 10\n"
        "IfmapSRAMBankPort : 2\n"
        "FilterSRAMBankBandwidth : 10\n"
        "FilterSRAMBankNum : 10\n"
        "FilterSRAMBankPort : 2\n"
        "\n"
        "[run_presets]\n"
        "InterfaceBandwidth : CALC\n"
        "UseRamulatorTrace : False\n"
        "\n"
        "[sparsity]\n" + sparsity
    )


def topology_text(M: int, N: int, K: int, sparsity: str = "dense", layer: str = "gemm") -> str:
    """SCALE-Sim's GEMM topology (``-i gemm``): ``Layer, M, N, K, Sparsity,`` (note the order)."""
    ratio = "1:1" if sparsity == "dense" else sparsity
    return f"Layer name, M, N, K, Sparsity,\n{layer}, {M}, {N}, {K}, {ratio},\n"


def config_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Closed form (docs/scalesim-notes.md)
# ---------------------------------------------------------------------------------------------


def effective_k(K: int, sparsity: str = "dense") -> int:
    """Rows of SCALE-Sim's compressed filter: each group of m keeps its first n rows."""
    nm = _parse_sparsity(sparsity, "effective_k")
    if nm is None:
        return K
    n, m = nm
    return (K // m) * n + min(K % m, n)


def closed_form(M: int, N: int, K: int, rows: int, cols: int, dataflow: str, sparsity: str = "dense") -> dict:
    """SCALE-Sim v3.0.0's numbers for a GEMM (its M, N, K) in CALC mode, in closed form.

    ``cycles`` is its COMPUTE_REPORT "Total Cycles" (= compute cycles; CALC never stalls).
    """
    if dataflow not in DATAFLOWS:
        raise InputError("closed_form", "dataflow", f"one of {', '.join(DATAFLOWS)}, got {dataflow!r}")
    nm = _parse_sparsity(sparsity, "closed_form")
    k = effective_k(K, sparsity)
    if dataflow == "os":
        sr, sc, t = M, N, k
    elif dataflow == "ws":
        sr, sc, t = k, N, M
    else:
        sr, sc, t = k, M, N
    rf, cf = math.ceil(sr / rows), math.ceil(sc / cols)
    folds = rf * cf
    per_fold = t + rows + cols - 2 if dataflow == "os" else t + 2 * rows + cols - 2
    cycles = folds * per_fold - 1
    if dataflow == "os":
        ifmap_reads = M * k * cf
        filter_reads = k * N * rf
        ofmap_writes = M * N + folds * (rows + cols)
    elif dataflow == "ws":
        ifmap_reads = M * k * cf * (nm[1] / nm[0] if nm else 1)
        filter_reads = k * N
        ofmap_writes = M * N * rf
    else:
        ifmap_reads = M * k
        filter_reads = k * N * cf
        ofmap_writes = M * N * rf
    metadata = (k * N * math.ceil(math.log2(nm[1]))) / 32 if nm else 0.0
    return {
        "k_eff": k,
        "Sr": sr,
        "Sc": sc,
        "T": t,
        "row_folds": rf,
        "col_folds": cf,
        "cycles_per_fold": per_fold,
        "cycles": cycles,
        "sram_ifmap_reads": ifmap_reads,
        "sram_filter_reads": filter_reads,
        "sram_ofmap_writes": ofmap_writes,
        "filter_metadata_words": metadata,
        "overall_util_pct": 100.0 * M * N * K / (cycles * rows * cols),
    }


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


@dataclass
class ScaleSimResult:
    """What SCALE-Sim reported for one GEMM (its M, N, K), plus how it was run."""

    M: int
    N: int
    K: int
    rows: int
    cols: int
    dataflow: str
    sparsity: str
    sram_kb: tuple[int, int, int]
    total_cycles: int  # COMPUTE_REPORT "Total Cycles" (compute + stalls)
    compute_cycles: int  # total_cycles - stall_cycles
    stall_cycles: int
    total_cycles_incl_prefetch: int  # COMPUTE_REPORT "Total Cycles (incl. prefetch)": first DRAM read .. last DRAM write
    overall_util_pct: float  # dense MACs (M*N*K, even when sparse) / (total_cycles * rows * cols)
    mapping_eff_pct: float
    compute_util_pct: float
    sram_ifmap_reads: float
    sram_filter_reads: float
    sram_ofmap_writes: float
    dram_ifmap_reads: float
    dram_filter_reads: float
    dram_ofmap_writes: float
    avg_bw: dict[str, float]  # BANDWIDTH_REPORT, words/cycle
    filter_metadata_words: float | None  # SPARSE_REPORT (None when dense)
    filter_storage_words: float | None  # SPARSE_REPORT original filter storage
    filter_storage_new_words: float | None  # SPARSE_REPORT compressed filter + metadata
    Sr: int
    Sc: int
    T: int
    row_folds: int
    col_folds: int
    k_eff: int  # rows of the (compressed) filter operand
    scalesim_version: str
    numpy_version: str
    wall_s: float  # the whole subprocess, start to exit
    sim_s: float  # SCALE-Sim's own run (no interpreter start / imports)
    config_text: str = field(repr=False)
    topology_text: str = field(repr=False)

    @property
    def config_digest(self) -> str:
        return config_digest(self.config_text)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["config_digest"] = self.config_digest
        return out


def _num(text: str) -> float | int:
    value = float(text.strip())
    return int(value) if value.is_integer() else value


def _read_report(path: Path) -> dict[str, float | int | str]:
    if not path.exists():
        raise ScaleSimError(f"SCALE-Sim wrote no {path.name} (looked in {path.parent})")
    rows = list(csv.reader(io.StringIO(path.read_text())))
    header = [h.strip() for h in rows[0] if h.strip()]
    values = [v.strip() for v in rows[1]][: len(header)]
    out: dict[str, float | int | str] = {}
    for key, value in zip(header, values):
        try:
            out[key] = _num(value)
        except ValueError:
            out[key] = value
    return out


def run_gemm(
    M: int,
    N: int,
    K: int,
    *,
    rows: int,
    cols: int,
    dataflow: str,
    sram_kb: tuple[int, int, int] = (256, 256, 256),
    sparsity: str = "dense",
    venv: str | os.PathLike | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    keep_dir: str | os.PathLike | None = None,
) -> ScaleSimResult:
    """Run SCALE-Sim on one GEMM given in *SCALE-Sim's* terms (ifmap M×K, filter K×N, ofmap M×N).

    ``sparsity`` is ``"dense"`` or ``"n:m"`` (SCALE-Sim compresses the filter along K: each group
    of m rows keeps n). ``keep_dir`` keeps the inputs and reports there instead of a temp dir.
    """
    where = "scalesim run_gemm"
    for name, value in (("M", M), ("N", N), ("K", K), ("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(where, name, f"a positive integer, got {value!r}")
    if dataflow not in DATAFLOWS:
        raise InputError(where, "dataflow", f"one of {', '.join(DATAFLOWS)}, got {dataflow!r}")
    if len(sram_kb) != 3 or any((not isinstance(v, int)) or v < 1 for v in sram_kb):
        raise InputError(where, "sram_kb", f"three positive integers (ifmap, filter, ofmap kB), got {sram_kb!r}")
    nm = _parse_sparsity(sparsity, where)
    env = ensure_venv(venv)
    cfg = config_text(rows, cols, dataflow, tuple(sram_kb), sparse=nm is not None)
    topo = topology_text(M, N, K, sparsity)

    tmp = None
    if keep_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="amber-scalesim-")
        work = Path(tmp.name)
    else:
        work = Path(keep_dir)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
    try:
        (work / "scalesim.cfg").write_text(cfg)
        (work / "gemm.csv").write_text(topo)
        (work / "layout.csv").write_text("Layer name,\n")  # scalesim opens a layout file even when unused
        out_dir = work / "out"
        cmd = [str(env.python), "-c", _DRIVER, "scalesim.cfg", "gemm.csv", "layout.csv", "out"]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s, env=_clean_env())
        except subprocess.TimeoutExpired as exc:
            raise ScaleSimError(f"SCALE-Sim ran past {timeout_s:.0f} s on GEMM M={M} N={N} K={K} {dataflow} {rows}x{cols}") from exc
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise ScaleSimError(
                f"SCALE-Sim failed (exit {proc.returncode}) on GEMM M={M} N={N} K={K} {dataflow} {rows}x{cols} {sparsity}: "
                f"{_tail(proc.stderr + proc.stdout, 12)}"
            )
        info_lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_RESULT_TAG)]
        if not info_lines:
            raise ScaleSimError(f"SCALE-Sim driver printed no result line: {_tail(proc.stdout + proc.stderr, 12)}")
        info = json.loads(info_lines[-1][len(_RESULT_TAG) :])
        report_dir = out_dir / RUN_NAME
        comp = _read_report(report_dir / "COMPUTE_REPORT.csv")
        bw = _read_report(report_dir / "BANDWIDTH_REPORT.csv")
        det = _read_report(report_dir / "DETAILED_ACCESS_REPORT.csv")
        sp = _read_report(report_dir / "SPARSE_REPORT.csv") if nm is not None else None
    finally:
        if tmp is not None:
            tmp.cleanup()

    total = int(comp["Total Cycles"])
    stall = int(comp["Stall Cycles"])
    return ScaleSimResult(
        M=M,
        N=N,
        K=K,
        rows=rows,
        cols=cols,
        dataflow=dataflow,
        sparsity=sparsity,
        sram_kb=tuple(sram_kb),
        total_cycles=total,
        compute_cycles=total - stall,
        stall_cycles=stall,
        total_cycles_incl_prefetch=int(comp["Total Cycles (incl. prefetch)"]),
        overall_util_pct=float(comp["Overall Util %"]),
        mapping_eff_pct=float(comp["Mapping Efficiency %"]),
        compute_util_pct=float(comp["Compute Util %"]),
        sram_ifmap_reads=det["SRAM IFMAP Reads"],
        sram_filter_reads=det["SRAM Filter Reads"],
        sram_ofmap_writes=det["SRAM OFMAP Writes"],
        dram_ifmap_reads=det["DRAM IFMAP Reads"],
        dram_filter_reads=det["DRAM Filter Reads"],
        dram_ofmap_writes=det["DRAM OFMAP Writes"],
        avg_bw={k: float(v) for k, v in bw.items() if k != "LayerID"},
        filter_metadata_words=None if sp is None else sp["Filter Metadata Storage"],
        filter_storage_words=None if sp is None else sp["Original Filter Storage"],
        filter_storage_new_words=None if sp is None else sp["New Storage (Filter+Metadata)"],
        Sr=info["Sr"],
        Sc=info["Sc"],
        T=info["T"],
        row_folds=info["row_folds"],
        col_folds=info["col_folds"],
        k_eff=info["filter_operand_shape"][0],
        scalesim_version=info["scalesim_version"],
        numpy_version=info["numpy_version"],
        wall_s=wall,
        sim_s=info["sim_s"],
        config_text=cfg,
        topology_text=topo,
    )


def run_case(case, *, venv: str | os.PathLike | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> ScaleSimResult:
    """Run one :class:`~amber_sim.validate.scalesim_cases.ScaleSimCase` (amber-sim terms)."""
    sm, sn, sk = case.scalesim_mnk
    return run_gemm(
        sm,
        sn,
        sk,
        rows=case.rows,
        cols=case.cols,
        dataflow=case.dataflow,
        sram_kb=case.sram_kb,
        sparsity=case.pattern,
        venv=venv,
        timeout_s=timeout_s,
    )


# ---------------------------------------------------------------------------------------------
# The reference CSV
# ---------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "case",
    "M",
    "K",
    "N",
    "rows",
    "cols",
    "dataflow",
    "pattern",
    "sparse_operand",
    "mapping",
    "scalesim_M",
    "scalesim_N",
    "scalesim_K",
    "scalesim_sparsity",
    "k_eff",
    "Sr",
    "Sc",
    "T",
    "row_folds",
    "col_folds",
    "ifmap_kb",
    "filter_kb",
    "ofmap_kb",
    "total_cycles",
    "compute_cycles",
    "stall_cycles",
    "total_cycles_incl_prefetch",
    "overall_util_pct",
    "mapping_eff_pct",
    "compute_util_pct",
    "sram_ifmap_reads",
    "sram_filter_reads",
    "sram_ofmap_writes",
    "dram_ifmap_reads",
    "dram_filter_reads",
    "dram_ofmap_writes",
    "filter_metadata_words",
    "formula_cycles",
    "formula_match",
    "formula_sram_match",
    "scalesim_version",
    "numpy_version",
    "wall_s",
    "config_digest",
]


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def case_row(case, result: ScaleSimResult) -> dict[str, str]:
    """One CSV row: the case, SCALE-Sim's numbers, and the closed form's agreement with them."""
    sm, sn, sk = case.scalesim_mnk
    form = closed_form(sm, sn, sk, case.rows, case.cols, case.dataflow, case.pattern)
    sram_match = all(
        abs(float(getattr(result, key)) - float(form[key])) <= 1.0
        for key in ("sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes")
    )
    row = {
        "case": case.name,
        "M": case.M,
        "K": case.K,
        "N": case.N,
        "rows": case.rows,
        "cols": case.cols,
        "dataflow": case.dataflow,
        "pattern": case.pattern,
        "sparse_operand": case.sparse_operand or "",
        "mapping": case.mapping,
        "scalesim_M": sm,
        "scalesim_N": sn,
        "scalesim_K": sk,
        "scalesim_sparsity": "dense" if case.pattern == "dense" else case.pattern,
        "k_eff": result.k_eff,
        "Sr": result.Sr,
        "Sc": result.Sc,
        "T": result.T,
        "row_folds": result.row_folds,
        "col_folds": result.col_folds,
        "ifmap_kb": case.ifmap_kb,
        "filter_kb": case.filter_kb,
        "ofmap_kb": case.ofmap_kb,
        "total_cycles": result.total_cycles,
        "compute_cycles": result.compute_cycles,
        "stall_cycles": result.stall_cycles,
        "total_cycles_incl_prefetch": result.total_cycles_incl_prefetch,
        "overall_util_pct": round(result.overall_util_pct, 4),
        "mapping_eff_pct": round(result.mapping_eff_pct, 4),
        "compute_util_pct": round(result.compute_util_pct, 4),
        "sram_ifmap_reads": result.sram_ifmap_reads,
        "sram_filter_reads": result.sram_filter_reads,
        "sram_ofmap_writes": result.sram_ofmap_writes,
        "dram_ifmap_reads": result.dram_ifmap_reads,
        "dram_filter_reads": result.dram_filter_reads,
        "dram_ofmap_writes": result.dram_ofmap_writes,
        "filter_metadata_words": result.filter_metadata_words,
        "formula_cycles": form["cycles"],
        "formula_match": form["cycles"] == result.total_cycles and result.stall_cycles == 0,
        "formula_sram_match": sram_match,
        "scalesim_version": result.scalesim_version,
        "numpy_version": result.numpy_version,
        "wall_s": round(result.wall_s, 2),
        "config_digest": result.config_digest,
    }
    return {k: _fmt(v) for k, v in row.items()}


def regenerate(
    csv_path: str | os.PathLike,
    cases=None,
    *,
    venv: str | os.PathLike | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    merge: bool = False,
    log=sys.stderr,
) -> list[dict[str, str]]:
    """Run ``cases`` (default: all of scalesim_cases.CASES) one at a time and write the CSV.

    The exact .cfg of every distinct config goes to ``<csv dir>/scalesim_configs/<digest>.cfg``.
    The CSV is written once, at the end, atomically. With ``merge`` (used for a subset of the
    cases) the rows of an existing CSV for the other cases still in CASES are kept, in CASES order.
    """
    from amber_sim.validate.scalesim_cases import CASES

    cases = list(CASES if cases is None else cases)
    csv_path = Path(csv_path)
    kept: dict[str, dict[str, str]] = {}
    if merge and csv_path.exists():
        rerun = {c.name for c in cases}
        kept = {r["case"]: r for r in load_reference(csv_path) if r["case"] not in rerun}
    config_dir = csv_path.parent / "scalesim_configs"
    config_dir.mkdir(parents=True, exist_ok=True)
    env = ensure_venv(venv)
    print(f"SCALE-Sim {env.scalesim_version} (numpy {env.numpy_version}) from {env.venv}: {len(cases)} cases", file=log)
    rows: list[dict[str, str]] = []
    configs: dict[str, str] = {}
    total_wall = 0.0
    for i, case in enumerate(cases, 1):
        result = run_case(case, venv=env.venv, timeout_s=timeout_s)
        row = case_row(case, result)
        rows.append(row)
        configs[result.config_digest] = result.config_text
        total_wall += result.wall_s
        flag = "" if row["formula_match"] == "true" else f"  (closed form says {row['formula_cycles']})"
        print(f"[{i:>2}/{len(cases)}] {case.name:<40} {result.total_cycles:>9} cycles  {result.wall_s:6.1f} s{flag}", file=log, flush=True)
    for digest, text in configs.items():
        (config_dir / f"{digest}.cfg").write_text(text)
    if kept:
        fresh = {r["case"]: r for r in rows}
        rows = [fresh.get(c.name) or kept[c.name] for c in CASES if c.name in fresh or c.name in kept]
    referenced = {r["config_digest"] for r in rows}
    for stale in config_dir.glob("*.cfg"):
        if stale.stem not in referenced:
            stale.unlink()  # a config no case in the CSV uses any more
    tmp = csv_path.with_suffix(csv_path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)
    mismatches = sum(r["formula_match"] != "true" for r in rows)
    print(
        f"wrote {csv_path} ({len(rows)} cases, {len(referenced)} configs in {config_dir}); "
        f"SCALE-Sim wall time {total_wall:.1f} s; closed form mismatches: {mismatches}",
        file=log,
    )
    return rows


def load_reference(csv_path: str | os.PathLike) -> list[dict[str, str]]:
    """The committed reference rows, as strings keyed by CSV column."""
    with open(csv_path, newline="") as fh:
        return list(csv.DictReader(fh))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m amber_sim.validate.scalesim_runner",
        description="Run SCALE-Sim v3 (in its own numpy<2 venv) on amber-sim's validation GEMMs.",
    )
    parser.add_argument("--regenerate", metavar="CSV", help="run the cases and (re)write this reference CSV")
    parser.add_argument(
        "--case", action="append", default=[], metavar="NAME",
        help="with --regenerate: rerun only this case (repeatable); the CSV's other rows are kept",
    )
    parser.add_argument("--list", action="store_true", help="list the case names and exit")
    parser.add_argument(
        "--gemm", nargs=3, type=int, metavar=("M", "N", "K"), help="run one GEMM in SCALE-Sim's terms and print JSON"
    )
    parser.add_argument("--array", default="32x32", help="RxC for --gemm (default 32x32)")
    parser.add_argument("--dataflow", default="ws", choices=DATAFLOWS, help="for --gemm (default ws)")
    parser.add_argument("--sparsity", default="dense", help='for --gemm: "dense" or "n:m" (default dense)')
    parser.add_argument("--sram-kb", nargs=3, type=int, default=[256, 256, 256], metavar=("IFMAP", "FILTER", "OFMAP"))
    parser.add_argument("--venv", help=f"SCALE-Sim venv (default ${VENV_ENV} or ~/.cache/amber-sim/scalesim-venv)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per SCALE-Sim run")
    args = parser.parse_args(argv)

    from amber_sim.validate.scalesim_cases import CASES, case_by_name

    try:
        if args.list:
            for case in CASES:
                print(case.name)
            return 0
        if args.gemm:
            try:
                rows, cols = (int(x) for x in args.array.lower().split("x"))
            except ValueError:
                raise InputError("--array", None, f"RxC like 32x32, got {args.array!r}") from None
            m, n, k = args.gemm
            result = run_gemm(
                m, n, k, rows=rows, cols=cols, dataflow=args.dataflow, sram_kb=tuple(args.sram_kb),
                sparsity=args.sparsity, venv=args.venv, timeout_s=args.timeout,
            )
            out = result.as_dict()
            out.pop("config_text")
            out.pop("topology_text")
            out["closed_form_cycles"] = closed_form(m, n, k, rows, cols, args.dataflow, args.sparsity)["cycles"]
            print(json.dumps(out, indent=1))
            return 0
        if args.regenerate:
            cases = [case_by_name(n) for n in args.case] if args.case else None
            rows = regenerate(args.regenerate, cases, venv=args.venv, timeout_s=args.timeout, merge=bool(args.case))
            return 0 if all(r["formula_match"] == "true" for r in rows) else 1
        parser.print_help()
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ScaleSimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
