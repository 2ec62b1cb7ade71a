"""Published nccl-tests measurements of collectives between the chips of one node: load, check, and check
each row against itself.

A measurement set is a CSV (validation/nccl_measurements.csv; sources in validation/SOURCES.md), one row per
published nccl-tests line: the system, the GPU, the number of chips p, the collective, nccl-tests' ``size``
(the whole buffer, as amber_sim/sim/collectives.py's ``message_bytes``: an all-reduce's input, an
all-gather's output, a reduce-scatter's input), the time in µs and the two bandwidths nccl-tests prints
(GB/s = 1e9 bytes/s), with the dtype, the NCCL version, how it was launched, whether NVLink SHARP (NVLS)
was active, and the source. nccl-tests defines algbw = size / time and busbw = algbw · 2(p−1)/p for an
all-reduce, algbw · (p−1)/p for an all-gather or a reduce-scatter; :func:`inconsistent_rows` checks every
row against those definitions within the rounding of its printed digits. :func:`compare_collectives` replays
every row through the collective model (sim.collectives) on its GPU's config, with the nccl-tests harness's
per-call floor (:func:`harness_floors`; docs/validation.md, "Collectives (multi-chip): the measurement set").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from amber_sim.errors import InputError
from amber_sim.sim.collectives import COLLECTIVES
from amber_sim.validate.hardware import _csv_rows, _integer, _number

NCCL_COLUMNS = ("id", "system", "gpu", "chips", "collective", "bytes", "time_us", "algbw_gb_s", "busbw_gb_s",
                "dtype", "nccl_version", "launch", "nvls", "source", "notes")
# nccl-tests' data types, by the short names the set writes (nccl-tests prints float as "float", half as "half").
NCCL_DTYPES = ("int8", "uint8", "int32", "uint32", "int64", "uint64", "fp16", "bf16", "fp32", "fp64", "fp8_e4m3",
               "fp8_e5m2")
NVLS_STATES = ("yes", "no", "unknown")
MEASURED_COLUMNS = ("time_us", "algbw_gb_s", "busbw_gb_s")


@dataclass(frozen=True)
class NcclMeasurement:
    id: str
    system: str
    gpu: str
    chips: int
    collective: str
    bytes: int
    time_us: float
    algbw_gb_s: float
    busbw_gb_s: float
    dtype: str
    nccl_version: str        # "2.26.2", or "unknown" when the source does not print it
    launch: str              # e.g. "1 process, 8 GPUs" or "8 processes, 1 GPU each"
    nvls: str                # yes / no / unknown: whether NVLink SHARP was active
    source: str
    notes: str
    # The unit of the last digit of time_us, algbw_gb_s and busbw_gb_s as written in the file (the file copies
    # the published digits): 52.61 -> 0.01, 103.8 -> 0.1, 16330 -> 1.
    resolution: tuple[float, float, float]

    @property
    def bus_factor(self) -> float:
        return bus_factor(self.collective, self.chips)


def bus_factor(collective: str, chips: int) -> float:
    """nccl-tests' busbw / algbw: 2(p−1)/p for an all-reduce, (p−1)/p for an all-gather or a reduce-scatter."""
    return (chips - 1) / chips * (2 if collective == "all_reduce" else 1)


def _last_digit_unit(text: str) -> float:
    """The unit of the last written digit of a decimal number ("52.61" -> 0.01, "16330" -> 1)."""
    mantissa = text.strip().lower().split("e")[0]
    exponent = int(text.strip().lower().split("e")[1]) if "e" in text.lower() else 0
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (exponent - decimals)


def _cell(row: dict, column: str) -> str:
    return (row.get(column) or "").strip()


def load_nccl_measurements(path: str | Path) -> list[NcclMeasurement]:
    """Read and check a collective measurement set; every problem is one InputError naming the file, line and
    column."""
    rows, ids = [], set()
    for where, row in _csv_rows(path, NCCL_COLUMNS,
                                "no such collective measurement set (default: validation/nccl_measurements.csv)"):
        if row.get(None):
            raise InputError(where, "notes", f"{len(row[None])} more field(s) than the header's "
                                             f"{len(NCCL_COLUMNS)} (a comma in an unquoted cell?)")
        row_id = _cell(row, "id")
        if not row_id:
            raise InputError(where, "id", "missing value")
        if row_id in ids:
            raise InputError(where, "id", f"duplicate id {row_id!r}")
        ids.add(row_id)
        for column in ("system", "gpu", "launch", "nccl_version"):
            if not _cell(row, column):
                raise InputError(where, column, "missing value (write 'unknown' when the source does not say)"
                                 if column == "nccl_version" else "missing value")
        chips = _integer(_cell(row, "chips"), where, "chips")
        if chips < 2:
            raise InputError(where, "chips", f"a collective needs at least 2 chips, got {chips}")
        collective = _cell(row, "collective")
        if collective not in COLLECTIVES:
            raise InputError(where, "collective", f"expected one of {', '.join(COLLECTIVES)}, got {collective!r}")
        size = _integer(_cell(row, "bytes"), where, "bytes")
        values = {column: _number(_cell(row, column), where, column, required=True) for column in MEASURED_COLUMNS}
        dtype = _cell(row, "dtype")
        if dtype not in NCCL_DTYPES:
            raise InputError(where, "dtype", f"expected one of {', '.join(NCCL_DTYPES)}, got {dtype!r}")
        nvls = _cell(row, "nvls")
        if nvls not in NVLS_STATES:
            raise InputError(where, "nvls", f"expected one of {', '.join(NVLS_STATES)}, got {nvls!r}")
        if not _cell(row, "source"):
            raise InputError(where, "source", "every measurement needs its public source")
        rows.append(NcclMeasurement(
            id=row_id, system=_cell(row, "system"), gpu=_cell(row, "gpu"), chips=chips, collective=collective,
            bytes=size, time_us=values["time_us"], algbw_gb_s=values["algbw_gb_s"],
            busbw_gb_s=values["busbw_gb_s"], dtype=dtype, nccl_version=_cell(row, "nccl_version"),
            launch=_cell(row, "launch"), nvls=nvls, source=_cell(row, "source"), notes=_cell(row, "notes"),
            resolution=tuple(_last_digit_unit(_cell(row, column)) for column in MEASURED_COLUMNS)))
    return rows


# ---------------------------------------------------------------- a row against itself

_RELATIVE_SLACK = 1e-9   # floating-point arithmetic only; the tolerance proper is the printed digits' rounding


def consistency_problems(m: NcclMeasurement) -> list[str]:
    """How a row disagrees with nccl-tests' definitions, within the rounding of its printed digits ([] if not).

    nccl-tests computes algbw from the unrounded mean time and busbw from the unrounded algbw, then prints each
    rounded to its last digit. So the true time lies within ± half a unit of the printed time's last digit, the
    true algbw within ± half a unit of the printed algbw's, and the check is interval arithmetic:
    - algbw: bytes / true time, widened by half a unit of algbw's last digit, must contain the printed algbw;
    - busbw: factor × (printed algbw ± half its unit), widened by half a unit of busbw's last digit, must contain
      the printed busbw (factor = 2(p−1)/p for an all-reduce, (p−1)/p otherwise).
    """
    unit_t, unit_a, unit_b = m.resolution
    problems = []
    fastest, slowest = m.time_us - unit_t / 2, m.time_us + unit_t / 2
    lo = m.bytes / (slowest * 1e3) - unit_a / 2          # bytes / µs / 1e3 = GB/s
    hi = (m.bytes / (fastest * 1e3) if fastest > 0 else math.inf) + unit_a / 2
    if not lo * (1 - _RELATIVE_SLACK) <= m.algbw_gb_s <= hi * (1 + _RELATIVE_SLACK):
        problems.append(f"algbw {m.algbw_gb_s} GB/s is not bytes / time = {m.bytes / (m.time_us * 1e3):.4f} GB/s "
                        f"(allowed {lo:.4f} to {hi:.4f} by the printed digits)")
    factor = m.bus_factor
    lo = factor * (m.algbw_gb_s - unit_a / 2) - unit_b / 2
    hi = factor * (m.algbw_gb_s + unit_a / 2) + unit_b / 2
    if not lo * (1 - _RELATIVE_SLACK) <= m.busbw_gb_s <= hi * (1 + _RELATIVE_SLACK):
        problems.append(f"busbw {m.busbw_gb_s} GB/s is not algbw × {factor:g} = {m.algbw_gb_s * factor:.4f} GB/s "
                        f"(allowed {lo:.4f} to {hi:.4f} by the printed digits)")
    return problems


def inconsistent_rows(rows: list[NcclMeasurement]) -> list[NcclMeasurement]:
    """The rows whose algbw is not bytes / time, or whose busbw is not nccl-tests' factor × algbw, within the
    rounding of their printed digits (:func:`consistency_problems` says how)."""
    return [m for m in rows if consistency_problems(m)]


# ---------------------------------------------------------------- replay against the collective model

# GPU name prefix (as nccl-tests prints it) -> the bundled config whose `system` section models its node.
GPU_CONFIGS = {"A100": "a100_like.yaml", "H100": "h100_like.yaml"}
COLLECTIVE_TARGET = 0.15  # issue: collective times within 15% of the published measurements, 1 MB to 1 GB
# The series each config's two fitted numbers come from (docs/validation.md): system.sustained_fraction on its
# largest all-reduce (in the config), the nccl-tests harness's per-call floor on its smallest (here).
FIT_SERIES = {"a100_like.yaml": "a100-sxm4-80gb-allreduce-8p", "h100_like.yaml": "h100-80gb-hbm3-allreduce-ring-1p"}


@dataclass(frozen=True)
class CollectiveComparison:
    measurement: NcclMeasurement
    config: str
    predicted_us: float      # what the harness would report: max(floor_us, model_us)
    algorithm: str
    protocol: str = ""
    model_us: float = 0.0    # the collective model's time (sim.collectives)
    floor_us: float = 0.0    # the harness's per-call floor applied to the row (0: none)

    @property
    def error(self) -> float:
        """predicted / measured time − 1."""
        return self.predicted_us / self.measurement.time_us - 1.0

    @property
    def targeted(self) -> bool:
        """Rows the target applies to: NVLink SHARP active (nvls = yes) is another algorithm than the configs'
        (no in-switch reduction), reported apart."""
        return self.measurement.nvls != "yes"


def config_for_gpu(gpu: str) -> str | None:
    matches = [prefix for prefix in GPU_CONFIGS if gpu.upper().startswith(prefix)]
    return GPU_CONFIGS[max(matches, key=len)] if matches else None


def fit_rows(rows: list[NcclMeasurement], config: str) -> tuple[NcclMeasurement, NcclMeasurement] | None:
    """The two rows ``config``'s fitted numbers come from: the smallest and the largest all-reduce of its
    :data:`FIT_SERIES` (None when the set lacks that series)."""
    series = [m for m in rows if m.collective == "all_reduce" and m.id.rsplit("-", 1)[0] == FIT_SERIES.get(config)]
    if not series:
        return None
    return min(series, key=lambda m: m.bytes), max(series, key=lambda m: m.bytes)


def harness_floors(rows: list[NcclMeasurement], configs: dict | None = None) -> dict[str, tuple[float, str]]:
    """The nccl-tests harness's per-call floor per config, µs, with the id of the row it is fitted on.

    nccl-tests times many back-to-back calls with the host's clock and divides by their number (the `host_loop`
    timing of docs/validation.md "Timing"): a call takes at least the host's time to issue it (NCCL's enqueue
    and a kernel launch on every GPU), so short collectives measure the host. The host's share is not the
    system's, so no config carries it: it is fitted here, once per config, on the smallest all-reduce of the
    config's fit series, as its measured time when that exceeds the model's (else no floor)."""
    from amber_sim.sim.collectives import collective_cost
    from amber_sim.validate.hardware import bundled_config

    configs = dict(configs or {})
    floors = {}
    for config in FIT_SERIES:
        pair = fit_rows(rows, config)
        system = bundled_config(config, configs).system if pair else None
        if system is None:
            continue
        small = pair[0]
        model_us = collective_cost(system, small.collective, small.bytes, chips=small.chips).seconds * 1e6
        floors[config] = (small.time_us if small.time_us > model_us else 0.0, small.id)
    return floors


def compare_collectives(rows: list[NcclMeasurement], configs: dict | None = None) -> list[CollectiveComparison]:
    """Every row whose GPU has a config with a ``system`` section, replayed through sim.collectives; the time
    compared is max(the harness's per-call floor, the model's time) (:func:`harness_floors`)."""
    from amber_sim.sim.collectives import collective_cost
    from amber_sim.validate.hardware import bundled_config

    configs = dict(configs or {})
    floors = harness_floors(rows, configs)
    out = []
    for m in rows:
        name = config_for_gpu(m.gpu)
        if name is None:
            continue
        system = bundled_config(name, configs).system
        if system is None or m.chips > system.chips:
            continue
        cost = collective_cost(system, m.collective, m.bytes, chips=m.chips)
        model_us, floor_us = cost.seconds * 1e6, floors.get(name, (0.0, ""))[0]
        out.append(CollectiveComparison(m, name, max(floor_us, model_us), cost.algorithm, cost.protocol, model_us,
                                        floor_us))
    return out


def fit_sustained_fraction(measurement: NcclMeasurement, system, algorithm: str = "ring",
                           protocol: str = "simple") -> float:
    """The system.sustained_fraction f that makes ``algorithm`` with ``protocol`` take exactly the measured time:
    the model's time is L + X / f (L the latencies, X the bytes sent over the bandwidth at f = 1), so
    f = X / (measured − L)."""
    import dataclasses

    from amber_sim.sim.collectives import collective_cost

    def seconds(fraction: float) -> float:
        return collective_cost(dataclasses.replace(system, sustained_fraction=fraction), measurement.collective,
                               measurement.bytes, chips=measurement.chips, algorithm=algorithm,
                               protocol=protocol).seconds

    transfer = seconds(0.5) - seconds(1.0)          # X / 0.5 − X / 1 = X
    latency = seconds(1.0) - transfer
    return transfer / (measurement.time_us * 1e-6 - latency)


@dataclass(frozen=True)
class SeriesStats:
    series: str            # the row ids without their size: one system, launch and collective
    config: str
    points: int
    mean_abs_error: float
    max_abs_error: float
    targeted: bool


def series_stats(comparisons: list[CollectiveComparison]) -> list[SeriesStats]:
    groups: dict[str, list[CollectiveComparison]] = {}
    for c in comparisons:
        groups.setdefault(c.measurement.id.rsplit("-", 1)[0], []).append(c)
    return [SeriesStats(series, members[0].config, len(members),
                        sum(abs(c.error) for c in members) / len(members), max(abs(c.error) for c in members),
                        all(c.targeted for c in members))
            for series, members in groups.items()]


def worst_targeted_error(comparisons: list[CollectiveComparison]) -> float | None:
    errors = [abs(c.error) for c in comparisons if c.targeted and 2**20 <= c.measurement.bytes <= 2**30]
    return max(errors) if errors else None
