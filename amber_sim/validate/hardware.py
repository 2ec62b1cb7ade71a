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
DEVICE_CONFIGS = {"A100": "a100_like.yaml", "A100 PCIE": "a100_pcie_like.yaml", "A100-PCIE": "a100_pcie_like.yaml",
                  "H100": "h100_like.yaml"}
GEMM_COLUMNS = ("id", "device", "kind", "M", "K", "N", "dtype", "dense_ms", "sparse_ms", "speedup",
                "sparse_operand", "library", "timing", "harness", "kernel", "source", "notes")
KINDS = ("dense", "2:4")
# The rows a config parameter is fitted on (hw_configs/*.yaml say so beside each value; tests recompute them).
CONFIG_FIT_ROWS = {
    "mamf-a100-sxm-bf16-m1024-k5120-n10240": "a100_like compute.sustained_fraction",
    "mamf-a100-pcie-bf16-m2048-k6144-n5120": "a100_pcie_like compute.sustained_fraction",
    "mamf-h100-sxm-bf16-m2048-k13312-n2048": "h100_like compute.sustained_fraction",
    "pr90119b-cusparselt-a100-m768-k3072-n768-bs256": "a100_like sparsity.sustained_fraction",
    "cls-203-h100-fp16-8192": "h100_like sparsity.sustained_fraction",
}
# How a time was taken: `device` (profiler or CUDA events: the kernels alone), `host_sync` (host wall clock around
# one call and a synchronize: host launch and the sync round trip added), `host_loop` (host wall clock over
# back-to-back calls: a call takes at least the host's dispatch time).
TIMINGS = ("device", "host_sync", "host_loop")
# `production`: a released library kernel; `early`: a kernel its own maintainers called unrepresentative (work in
# progress, a toolkit too old for it, another architecture's kernel). Early rows are reported, not targeted.
KERNELS = ("production", "early")
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
    timing: str
    harness: str
    kernel: str
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
    overhead: "HostOverhead | None" = None   # its harness's host overhead, when host-timed and fitted

    @property
    def fitted(self) -> bool:
        """A config parameter or its harness's host overhead was fitted on this row (its error is about 0 by
        construction)."""
        return (self.measurement.id in CONFIG_FIT_ROWS
                or (self.overhead is not None and self.overhead.fitted_on == self.measurement.id))

    @property
    def error(self) -> float:
        """predicted / measured − 1 (of the time for dense rows, of the speedup for 2:4 rows)."""
        return self.predicted / self.measurement.measured - 1.0

    @property
    def kind_class(self) -> str:
        """The class the row is reported in: its kind, with early kernels apart (not targeted)."""
        m = self.measurement
        return m.kind if m.kernel == "production" else f"{m.kind} early"


@dataclass(frozen=True)
class ClassStats:
    device: str
    kind: str
    points: int
    fitted_points: int           # of which a parameter was fitted on
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


# Columns a set may leave out (sets written before they existed), and what an absent or empty cell means: the
# time is the device's, no harness, a production kernel.
OPTIONAL_COLUMNS = {"timing": "device", "harness": "", "kernel": "production"}


def _csv_rows(path: str | Path, columns: tuple[str, ...], missing_file: str):
    """(``file:line``, row) of a measurement CSV whose header has every one of ``columns`` (those of
    OPTIONAL_COLUMNS may be absent: their cells read as the default, as do empty cells)."""
    target = Path(path)
    if not target.is_file():
        raise InputError(str(path), None, missing_file)
    with target.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns
                   if column not in (reader.fieldnames or ()) and column not in OPTIONAL_COLUMNS]
        if missing:
            raise InputError(str(path), "header", f"missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")
        for line, row in enumerate(reader, start=2):
            for column, default in OPTIONAL_COLUMNS.items():
                if column in columns and not (row.get(column) or "").strip():
                    row[column] = default
            yield f"{path}:{line}", row


def _check_timing(row: dict, where: str) -> None:
    if row["timing"] not in TIMINGS:
        raise InputError(where, "timing", f"expected one of {', '.join(TIMINGS)}, got {row['timing']!r}")
    if row["timing"] != "device" and not row["harness"].strip():
        raise InputError(where, "harness", "a host-timed row needs its harness (rows of one harness share its host "
                                           "overhead)")


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
        _check_timing(row, where)
        if row["kernel"] not in KERNELS:
            raise InputError(where, "kernel", f"expected one of {', '.join(KERNELS)}, got {row['kernel']!r}")
        dense = row["kind"] == "dense"
        measurement = GemmMeasurement(
            id=row["id"], device=row["device"], kind=row["kind"], M=_integer(row["M"], where, "M"),
            K=_integer(row["K"], where, "K"), N=_integer(row["N"], where, "N"), dtype=row["dtype"],
            dense_ms=_number(row["dense_ms"], where, "dense_ms", required=dense),
            sparse_ms=_number(row["sparse_ms"], where, "sparse_ms", required=False),
            speedup=_number(row["speedup"], where, "speedup", required=False),
            sparse_operand=row["sparse_operand"], library=row["library"], timing=row["timing"],
            harness=row["harness"].strip(), kernel=row["kernel"], source=row["source"], notes=row["notes"])
        if not dense and measurement.speedup is None and (measurement.dense_ms is None or measurement.sparse_ms is None):
            raise InputError(where, "speedup", "a 2:4 row needs its speedup, or both dense_ms and sparse_ms")
        rows.append(measurement)
    return rows


def bundled_config(name: str, cache: dict) -> HardwareConfig:
    """The bundled config ``name`` (hw_configs/), loaded once per ``cache``."""
    if name not in cache:
        cache[name] = load_hardware(HW_CONFIG_DIR / name)
    return cache[name]


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


@dataclass(frozen=True)
class DeviceTimes:
    """The model's device time of a measurement's dense GEMM, and of its 2:4 twin for a 2:4 row."""

    dense_ms: float
    sparse_ms: float | None
    bound: str               # of the op the row is judged on


def device_times(hw: HardwareConfig, m: GemmMeasurement) -> DeviceTimes:
    from amber_sim.sim.engine import simulate_ops

    hw = without_sparsifier(hw)
    to_ms = 1.0 / (hw.clock_ghz * 1e6)
    dense = simulate_ops(hw, (_gemm_op(m, sparse=False),))[0]
    if m.kind == "dense":
        return DeviceTimes(dense.cycles * to_ms, None, dense.bound)
    sparse = simulate_ops(hw, (_gemm_op(m, sparse=True),))[0]
    return DeviceTimes(dense.cycles * to_ms, sparse.cycles * to_ms, sparse.bound)


@dataclass(frozen=True)
class HostOverhead:
    """What one harness's host adds to the device time it reports (docs/validation.md "Timing")."""

    harness: str
    timing: str        # host_sync: ``ms`` is added to every call; host_loop: a call takes at least ``ms``
    ms: float
    fitted_on: str     # the id of the measurement it was fitted on


def as_timed(device_ms: float, overhead: HostOverhead | None) -> float:
    """The time a harness reports for a kernel of ``device_ms``."""
    if overhead is None or overhead.timing == "device":
        return device_ms
    if overhead.timing == "host_sync":
        return device_ms + overhead.ms
    return max(device_ms, overhead.ms)


def fit_host_overheads(points: list[tuple[str, str, str, float, float, float]]) -> dict[str, HostOverhead]:
    """One overhead per host-timed harness, fitted on its smallest measurement (by work; ties: the first).

    ``points``: (id, harness, timing, work, measured ms, model's device ms). The smallest kernel is where the host
    shows: host_sync adds measured − device time (never negative); host_loop's floor is the measured time when it
    exceeds the device time (else the harness shows no floor: 0)."""
    smallest: dict[str, tuple[str, str, str, float, float, float]] = {}
    for point in points:
        _, harness, timing, work, _, _ = point
        if timing != "device" and (harness not in smallest or work < smallest[harness][3]):
            smallest[harness] = point
    out = {}
    for harness, (point_id, _, timing, _, measured, device) in smallest.items():
        if timing == "host_sync":
            ms = max(0.0, measured - device)
        else:
            ms = measured if measured > device else 0.0
        out[harness] = HostOverhead(harness, timing, ms, point_id)
    return out


def predict(times: DeviceTimes, m: GemmMeasurement, overhead: HostOverhead | None) -> float:
    """The model's number for a measurement: the timed dense ms (dense rows) or timed dense / timed 2:4 (2:4 rows)."""
    dense = as_timed(times.dense_ms, overhead)
    if m.kind == "dense":
        return dense
    assert times.sparse_ms is not None
    return dense / as_timed(times.sparse_ms, overhead)


def compare(measurements: list[GemmMeasurement], configs: dict[str, HardwareConfig] | None = None
            ) -> list[Comparison]:
    """Replay every measurement whose device has a config; ``configs`` maps config file names to loaded configs
    (loaded from hw_configs/ when missing). Host overheads are fitted per harness first (:func:`fit_host_overheads`)."""
    replayed = []
    configs = dict(configs or {})
    for m in measurements:
        name = config_for(m.device)
        if name is None:
            continue
        replayed.append((m, name, device_times(bundled_config(name, configs), m)))
    overheads = host_overheads(replayed)
    out = []
    for m, name, times in replayed:
        overhead = overheads.get(m.harness)
        out.append(Comparison(m, name, predict(times, m, overhead), times.bound, overhead))
    return out


def host_overheads(replayed: list[tuple[GemmMeasurement, str, DeviceTimes]]) -> dict[str, HostOverhead]:
    """The host overhead of every harness, fitted on its smallest dense GEMM. A harness without dense rows gets
    none: its 2:4 rows' dense and sparse times cannot tell the host's share from the model's error."""
    return fit_host_overheads([(m.id, m.harness, m.timing, m.flop, m.dense_ms, times.dense_ms)
                               for m, _, times in replayed if m.kind == "dense"])


def class_stats(comparisons: list[Comparison]) -> list[ClassStats]:
    """Error statistics per (device class, kind) and over all classes per kind (device "all"); a device class is
    the bundled config that models it (a100_like covers A100 SXM, PCIe, 40 and 80 GB)."""
    groups: dict[tuple[str, str], list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault((Path(c.config).stem, c.kind_class), []).append(c)
        groups.setdefault(("all", c.kind_class), []).append(c)
    stats = []
    for (device, kind), members in sorted(groups.items(), key=lambda item: (item[0][0] == "all", item[0])):
        errors = [c.error for c in members]
        stats.append(ClassStats(device, kind, len(members), sum(c.fitted for c in members),
                                sum(abs(e) for e in errors) / len(errors),
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
    """The targets over production kernels (early kernels are reported apart, docs/validation.md)."""
    dense = [c for c in comparisons if c.kind_class == "dense"]
    large = [c for c in dense if c.measurement.flop >= LARGE_GEMM_FLOP]
    sparse = [c for c in comparisons if c.kind_class == "2:4"]
    tutorial = [c for c in sparse if is_tutorial_case(c.measurement)]

    def mean_abs(items):
        return sum(abs(c.error) for c in items) / len(items) if items else None

    return TargetCheck(dense_mean_abs_error=mean_abs(dense),
                       dense_large_max_abs_error=max((abs(c.error) for c in large), default=None),
                       sparse_mean_abs_error=mean_abs(sparse),
                       tutorial_error=tutorial[0].error if tutorial else None)


# ---------------------------------------------------------------- vector kernels (the memory-bound side)

VECTOR_COLUMNS = ("id", "device", "op", "shape", "dtype", "ms", "library", "timing", "harness", "source", "notes")
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
    timing: str
    harness: str
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
        _check_timing(row, where)
        rows.append(VectorMeasurement(row["id"], row["device"], row["op"], _shape_elements(row["shape"], where),
                                      row["dtype"], _number(row["ms"], where, "ms", required=True), row["timing"],
                                      row["harness"].strip(), row["source"]))
    return rows


def vector_device_ms(hw: HardwareConfig, m: VectorMeasurement) -> float:
    """The model's device ms of one vector kernel that reads and writes every element once from DRAM."""
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
    """(measurement, config, predicted timed ms) for every measurement whose device has a config; host overheads
    are fitted per harness on its smallest kernel, as for GEMMs."""
    configs: dict[str, HardwareConfig] = {}
    replayed = []
    for m in measurements:
        name = config_for(m.device)
        if name is None:
            continue
        replayed.append((m, name, vector_device_ms(bundled_config(name, configs), m)))
    overheads = fit_host_overheads([(m.id, m.harness, m.timing, m.elements, m.ms, device)
                                    for m, _, device in replayed])
    return [(m, name, as_timed(device, overheads.get(m.harness))) for m, name, device in replayed]


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
            "points": stats.points, "fitted_points": stats.fitted_points, "mean_abs_error": round(stats.mean_abs_error, 4),
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


def _points(stats: dict) -> str:
    points, fitted = stats["points"], stats.get("fitted_points", 0)
    return f"{points} point{'s' if points != 1 else ''}" + (f", {fitted} used for fitting" if fitted else "")


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
        parts.append(f"dense GEMM times off by {dense['mean_abs_error']:.0%} on average ({_points(dense)})")
    if "2:4" in found:
        sparse = found["2:4"]
        parts.append(f"2:4 GEMM speedups off by {sparse['mean_error']:+.0%} on average ({_points(sparse)}; "
                     "+ means too optimistic)")
    return (f"Model vs silicon for {config_name} (published measurements, docs/validation.md): "
            + "; ".join(parts) + ".")
