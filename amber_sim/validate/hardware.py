"""The model against published silicon: replay measured GEMMs as one-op traces and report the error.

A measurement set is a CSV (validation/gpu_gemm_measurements.csv; sources in validation/SOURCES.md), one row
per published measurement: the device, `dense` (one GEMM's time) or `2:4` (a semi-structured sparse GEMM's
speedup over its dense twin), the shape C[M,N] = A[M,K]·B[K,N], the dtype, the times or speedup, which
operand was sparse, the library and the source. Each row is replayed on the device's config
(`DEVICE_CONFIGS`) as a one-op trace:
- dense: predicted time = cycles / clock; error = predicted / measured − 1;
- 2:4: predicted speedup = dense cycles / 2:4 cycles of the same GEMM with the runtime sparsifier removed
  (the measured kernels take a pre-compressed operand); the model's sparse operand is A, so a
  weight-sparse measurement (y = x·Wᵀ with W pruned) is replayed transposed, yᵀ = W·xᵀ (M and N swap).
docs/validation.md describes the set, the statistics and where the model misses.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from amber_sim.errors import InputError
from amber_sim.hw.config import HardwareConfig, SparsifierConfig, load_hardware
from amber_sim.paths import HW_CONFIG_DIR
from amber_sim.trace import Op

# Device name prefix (as the sources write it) -> bundled config. Longest prefix wins.
DEVICE_CONFIGS = {"A100": "a100_like.yaml", "H100": "h100_like.yaml"}
GEMM_COLUMNS = ("id", "device", "kind", "M", "K", "N", "dtype", "dense_ms", "sparse_ms", "speedup",
                "sparse_operand", "library", "source", "notes")
KINDS = ("dense", "2:4")
DTYPES = {"fp16": ("fp16", 2.0), "bf16": ("bf16", 2.0), "int8": ("int8", 1.0)}
SPARSE_OPERANDS = ("activation", "weight", "")
LARGE_GEMM_FLOP = 1e9  # the per-point dense target applies to GEMMs of at least 1 GFLOP


@dataclass(frozen=True)
class GemmMeasurement:
    id: str
    device: str
    kind: str
    M: int
    K: int
    N: int
    dtype: str
    dense_ms: float | None
    sparse_ms: float | None
    speedup: float | None
    sparse_operand: str
    library: str
    source: str
    notes: str

    @property
    def flop(self) -> float:
        return 2.0 * self.M * self.K * self.N

    @property
    def measured(self) -> float:
        """The number the model is judged on: ms for dense rows, the speedup for 2:4 rows."""
        if self.kind == "dense":
            return self.dense_ms
        return self.speedup if self.speedup is not None else self.dense_ms / self.sparse_ms


@dataclass(frozen=True)
class Comparison:
    measurement: GemmMeasurement
    config: str
    predicted: float
    bound: str

    @property
    def error(self) -> float:
        """predicted / measured − 1 (of the time for dense rows, of the speedup for 2:4 rows)."""
        return self.predicted / self.measurement.measured - 1.0


@dataclass(frozen=True)
class ClassStats:
    device: str
    kind: str
    points: int
    mean_abs_error: float
    max_abs_error: float
    mean_error: float  # signed: > 0 the model is too slow (dense) or too optimistic (2:4)


# ---------------------------------------------------------------- reading the set

def _number(text: str, where: str, field: str, required: bool) -> float | None:
    if text.strip() == "":
        if required:
            raise InputError(where, field, "missing value")
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(where, field, f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(where, field, f"expected a finite number > 0, got {text!r}")
    return value


def _integer(text: str, where: str, field: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(where, field, f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise InputError(where, field, f"expected a positive integer, got {text!r}")
    return value


def _csv_rows(path: str | Path, columns: tuple[str, ...], missing_file: str):
    """(``file:line``, row) of a measurement CSV whose header has every one of ``columns``."""
    target = Path(path)
    if not target.is_file():
        raise InputError(str(path), None, missing_file)
    with target.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns if column not in (reader.fieldnames or ())]
        if missing:
            raise InputError(str(path), "header", f"missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")
        for line, row in enumerate(reader, start=2):
            yield f"{path}:{line}", row


def load_gemm_measurements(path: str | Path) -> list[GemmMeasurement]:
    """Read and check a measurement set; every problem is one InputError naming the file, line and column."""
    rows, ids = [], set()
    for where, row in _csv_rows(path, GEMM_COLUMNS,
                                "no such measurement set (default: validation/gpu_gemm_measurements.csv)"):
        if row["id"] in ids:
            raise InputError(where, "id", f"duplicate id {row['id']!r}")
        ids.add(row["id"])
        if row["kind"] not in KINDS:
            raise InputError(where, "kind", f"expected one of {', '.join(KINDS)}, got {row['kind']!r}")
        if row["dtype"] not in DTYPES:
            raise InputError(where, "dtype", f"expected one of {', '.join(DTYPES)}, got {row['dtype']!r}")
        if row["sparse_operand"] not in SPARSE_OPERANDS:
            raise InputError(where, "sparse_operand", f"expected activation, weight or empty, got {row['sparse_operand']!r}")
        if not row["source"].strip():
            raise InputError(where, "source", "every measurement needs its public source")
        dense = row["kind"] == "dense"
        measurement = GemmMeasurement(
            id=row["id"], device=row["device"], kind=row["kind"], M=_integer(row["M"], where, "M"),
            K=_integer(row["K"], where, "K"), N=_integer(row["N"], where, "N"), dtype=row["dtype"],
            dense_ms=_number(row["dense_ms"], where, "dense_ms", required=dense),
            sparse_ms=_number(row["sparse_ms"], where, "sparse_ms", required=False),
            speedup=_number(row["speedup"], where, "speedup", required=False),
            sparse_operand=row["sparse_operand"], library=row["library"], source=row["source"],
            notes=row["notes"])
        if not dense and measurement.speedup is None and (measurement.dense_ms is None or measurement.sparse_ms is None):
            raise InputError(where, "speedup", "a 2:4 row needs its speedup, or both dense_ms and sparse_ms")
        rows.append(measurement)
    return rows


def config_for(device: str) -> str | None:
    """The bundled config that models ``device`` (longest matching prefix), or None."""
    matches = [prefix for prefix in DEVICE_CONFIGS if device.upper().startswith(prefix)]
    return DEVICE_CONFIGS[max(matches, key=len)] if matches else None


# ---------------------------------------------------------------- replay

def without_sparsifier(hw: HardwareConfig) -> HardwareConfig:
    """The config with its runtime sparsifier removed: the measured kernels take a pre-compressed operand."""
    return dataclasses.replace(hw, sparsity=dataclasses.replace(hw.sparsity, sparsifier=SparsifierConfig(kind="none")))


def _gemm_op(m: GemmMeasurement, sparse: bool) -> Op:
    precision, dtype_bytes = DTYPES[m.dtype]
    rows, columns = (m.N, m.M) if m.sparse_operand == "weight" else (m.M, m.N)
    return Op(name=m.id, layer=0, role="gemm", kind="linear", M=rows, K=m.K, N=columns, batch=1,
              sparse_operand="activation" if sparse else None, pattern="2:4" if sparse else "dense",
              density=0.5 if sparse else 1.0, dtype_bytes=dtype_bytes, precision="int8" if precision == "int8" else "fp16")


def predict(hw: HardwareConfig, m: GemmMeasurement) -> tuple[float, str]:
    """(the model's number for this measurement, the bound of the op it is judged on)."""
    from amber_sim.sim.engine import simulate_ops

    hw = without_sparsifier(hw)
    dense = simulate_ops(hw, (_gemm_op(m, sparse=False),))[0]
    if m.kind == "dense":
        return dense.cycles / (hw.clock_ghz * 1e6), dense.bound
    sparse = simulate_ops(hw, (_gemm_op(m, sparse=True),))[0]
    return dense.cycles / sparse.cycles, sparse.bound


def compare(measurements: list[GemmMeasurement], configs: dict[str, HardwareConfig] | None = None) -> list[Comparison]:
    """Replay every measurement whose device has a config; ``configs`` maps config file names to loaded configs
    (loaded from hw_configs/ when missing)."""
    configs = dict(configs or {})
    out = []
    for m in measurements:
        name = config_for(m.device)
        if name is None:
            continue
        if name not in configs:
            configs[name] = load_hardware(HW_CONFIG_DIR / name)
        predicted, bound = predict(configs[name], m)
        out.append(Comparison(m, name, predicted, bound))
    return out


def class_stats(comparisons: list[Comparison]) -> list[ClassStats]:
    """Error statistics per (device class, kind) and over all classes per kind (device "all"); a device class is
    the bundled config that models it (a100_like covers A100 SXM, PCIe, 40 and 80 GB)."""
    groups: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault((Path(c.config).stem, c.measurement.kind), []).append(c)
        groups.setdefault(("all", c.measurement.kind), []).append(c)
    stats = []
    for (device, kind), members in sorted(groups.items(), key=lambda item: (item[0][0] == "all", item[0])):
        errors = [c.error for c in members]
        stats.append(ClassStats(device, kind, len(members), sum(abs(e) for e in errors) / len(errors),
                                max(abs(e) for e in errors), sum(errors) / len(errors)))
    return stats


@dataclass(frozen=True)
class TargetCheck:
    dense_mean_abs_error: float | None
    dense_large_max_abs_error: float | None   # over dense GEMMs of at least 1 GFLOP
    sparse_mean_abs_error: float | None
    tutorial_error: float | None              # the PyTorch tutorial's A100 nn.Linear(10240 -> 3072), 3072 tokens

    @property
    def met(self) -> bool:
        checks = [(self.dense_mean_abs_error, 0.10), (self.dense_large_max_abs_error, 0.25),
                  (self.sparse_mean_abs_error, 0.10), (self.tutorial_error, 0.10)]
        return all(value is not None and abs(value) <= limit for value, limit in checks)


def is_tutorial_case(m: GemmMeasurement) -> bool:
    """The PyTorch semi-structured sparsity tutorial's A100 case: nn.Linear(10240 -> 3072) on 3072 tokens."""
    return m.kind == "2:4" and m.device.upper().startswith("A100") and (m.M, m.K, m.N) == (3072, 10240, 3072)


def check_targets(comparisons: list[Comparison]) -> TargetCheck:
    dense = [c for c in comparisons if c.measurement.kind == "dense"]
    large = [c for c in dense if c.measurement.flop >= LARGE_GEMM_FLOP]
    sparse = [c for c in comparisons if c.measurement.kind == "2:4"]
    tutorial = [c for c in sparse if is_tutorial_case(c.measurement)]

    def mean_abs(items):
        return sum(abs(c.error) for c in items) / len(items) if items else None

    return TargetCheck(dense_mean_abs_error=mean_abs(dense),
                       dense_large_max_abs_error=max((abs(c.error) for c in large), default=None),
                       sparse_mean_abs_error=mean_abs(sparse),
                       tutorial_error=tutorial[0].error if tutorial else None)


# ---------------------------------------------------------------- vector kernels (the memory-bound side)

VECTOR_COLUMNS = ("id", "device", "op", "shape", "dtype", "ms", "library", "source", "notes")
# Operations per element of a straightforward implementation (an assumption, like capture's counts); the
# large kernels of the set are memory-bound on every bundled GPU config, where these counts do not matter.
VECTOR_OPS_PER_ELEMENT = {"layernorm": 5.0, "softmax": 5.0, "gelu": 8.0}


@dataclass(frozen=True)
class VectorMeasurement:
    id: str
    device: str
    op: str
    elements: int
    dtype: str
    ms: float
    source: str


def _shape_elements(text: str, where: str) -> int:
    """"M=4096;N=1024" → 4096·1024; "M=1024" → 1024."""
    elements = 1
    for part in text.split(";"):
        name, _, value = part.partition("=")
        if name.strip() not in ("M", "N") or not value.strip().isdigit() or int(value) <= 0:
            raise InputError(where, "shape", f"expected 'M=<rows>;N=<columns>' or 'M=<elements>', got {text!r}")
        elements *= int(value)
    return elements


def load_vector_measurements(path: str | Path) -> list[VectorMeasurement]:
    rows = []
    for where, row in _csv_rows(path, VECTOR_COLUMNS, "no such vector measurement set"):
        if row["op"] not in VECTOR_OPS_PER_ELEMENT:
            raise InputError(where, "op", f"expected one of {', '.join(VECTOR_OPS_PER_ELEMENT)}, got {row['op']!r}")
        if row["dtype"] not in DTYPES:
            raise InputError(where, "dtype", f"expected one of {', '.join(DTYPES)}, got {row['dtype']!r}")
        rows.append(VectorMeasurement(row["id"], row["device"], row["op"], _shape_elements(row["shape"], where),
                                      row["dtype"], _number(row["ms"], where, "ms", required=True), row["source"]))
    return rows


def predict_vector(hw: HardwareConfig, m: VectorMeasurement) -> float:
    """Predicted ms of one vector kernel that reads and writes every element once from DRAM."""
    from amber_sim.sim.engine import simulate_ops

    element_bytes = int(DTYPES[m.dtype][1])
    op = Op(name=m.id, layer=0, role=m.op, kind="vector", elements=m.elements,
            ops_per_element=VECTOR_OPS_PER_ELEMENT[m.op], bytes_in=m.elements * element_bytes,
            bytes_out=m.elements * element_bytes)
    return simulate_ops(hw, (op,))[0].cycles / (hw.clock_ghz * 1e6)


BANDWIDTH_BOUND_BYTES = 256 * 2**20  # kernels moving at least this much are dominated by DRAM streaming


def vector_traffic_bytes(m: VectorMeasurement) -> int:
    """Bytes a vector kernel streams: every element read once and written once."""
    return 2 * m.elements * int(DTYPES[m.dtype][1])


@dataclass(frozen=True)
class VectorStats:
    op: str
    config: str
    kernels: int
    mean_abs_error: float
    large_kernels: int                 # moving at least BANDWIDTH_BOUND_BYTES
    large_mean_error: float | None     # signed: < 0 the model is too fast


def vector_stats(vectors: list[tuple[VectorMeasurement, str, float]]) -> list[VectorStats]:
    """Per (op, config): mean |error| over all kernels, and the mean signed error over the large ones, where
    launch and host overhead no longer hide the sustained bandwidth."""
    groups: dict[tuple[str, str], list[tuple[VectorMeasurement, float]]] = {}
    for m, config, predicted in vectors:
        groups.setdefault((m.op, Path(config).stem), []).append((m, predicted / m.ms - 1.0))
    out = []
    for (op, config), members in sorted(groups.items()):
        large = [error for m, error in members if vector_traffic_bytes(m) >= BANDWIDTH_BOUND_BYTES]
        out.append(VectorStats(op, config, len(members), sum(abs(e) for _, e in members) / len(members), len(large),
                               sum(large) / len(large) if large else None))
    return out


def compare_vectors(measurements: list[VectorMeasurement]) -> list[tuple[VectorMeasurement, str, float]]:
    """(measurement, config, predicted ms) for every measurement whose device has a config."""
    configs: dict[str, HardwareConfig] = {}
    out = []
    for m in measurements:
        name = config_for(m.device)
        if name is None:
            continue
        if name not in configs:
            configs[name] = load_hardware(HW_CONFIG_DIR / name)
        out.append((m, name, predict_vector(configs[name], m)))
    return out


# ---------------------------------------------------------------- the summary reports quote

# Shipped with the package beside this module; written by `amber-sim validate hardware --write-summary`.
SUMMARY_PATH = Path(__file__).with_name("hardware_summary.json")


def summary_dict(comparisons: list[Comparison], set_name: str) -> dict:
    """Per config and kind: points, mean |error| and mean signed error (what a report quotes beside its speedups)."""
    from amber_sim.sim import MODEL_VERSION

    configs: dict[str, dict] = {}
    for stats in class_stats(comparisons):
        if stats.device == "all":
            continue
        configs.setdefault(stats.device, {})[stats.kind] = {
            "points": stats.points, "mean_abs_error": round(stats.mean_abs_error, 4),
            "mean_error": round(stats.mean_error, 4)}
    return {"model_version": MODEL_VERSION, "set": set_name, "configs": configs}


@lru_cache(maxsize=4)
def load_summary(path: Path = SUMMARY_PATH) -> dict | None:
    """The committed summary, or None when it is missing or unreadable (read once per process: a report quotes it
    in the terminal, report.md and report.json). Callers must not modify it."""
    import json

    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def silicon_note(config_name: str, summary: dict | None) -> str:
    """One sentence for a report: how far this config's model was from published measurements."""
    if summary is None:
        return "No validation summary found (amber-sim validate hardware --write-summary)."
    found = summary.get("configs", {}).get(config_name)
    if not found:
        return (f"{config_name} is not validated against silicon: no published measurements of its hardware class are "
                "in the project's set (docs/validation.md).")
    parts = []
    if "dense" in found:
        dense = found["dense"]
        parts.append(f"dense GEMM times off by {dense['mean_abs_error']:.0%} on average ({dense['points']} points)")
    if "2:4" in found:
        sparse = found["2:4"]
        parts.append(f"2:4 GEMM speedups off by {sparse['mean_error']:+.0%} on average ({sparse['points']} points; "
                     "+ means too optimistic)")
    return (f"Model vs silicon for {config_name} (published measurements, docs/validation.md): "
            + "; ".join(parts) + ".")
