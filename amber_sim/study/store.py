"""The sweep's results table: SQLite, one row per (trace hash, config hash, run), committed per batch.

A point's rows go in with one transaction, so a killed sweep leaves only whole points behind and a
rerun skips them (docs/studies.md §Results table). The table survives Ctrl-C and SIGKILL: SQLite's
journal rolls back an unfinished transaction on the next open. A table holds one sweep: it records the
sweep's :class:`SweepIdentity` and refuses any other (:meth:`ResultStore.claim_sweep`), so the rows,
the CSV, the report and the plots of a folder always describe the same sweep.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from amber_sim.atomic import atomic_write_text
from amber_sim.errors import InputError
from amber_sim.hw.config import HardwareConfig, hardware_to_dict
from amber_sim.sim import MODEL_VERSION
from amber_sim.sim.metrics import CATEGORIES
from amber_sim.trace import Trace, dumps_trace

DB_NAME = "results.sqlite"

RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "TEXT"), ("pattern", "TEXT"), ("criterion", "TEXT"), ("policy", "TEXT"), ("mitigation", "TEXT"),
    ("precision", "TEXT"), ("seq_len", "INTEGER"), ("baseline", "TEXT"), ("prefill_cycles", "INTEGER"),
    ("baseline_cycles", "INTEGER"),
    ("prefill_ms", "REAL"), ("end_to_end_speedup", "REAL"), ("linear_speedup", "REAL"),
    ("compute_utilization", "REAL"), ("dram_bytes", "REAL"), ("useful_macs", "REAL"),
    ("activation_io_savings", "REAL"), ("io_savings", "REAL"), ("energy_mj", "REAL"), ("dominant_bound", "TEXT"),
    ("perplexity", "REAL"), ("top1_agreement", "REAL"), ("sparsified_linear_flop_share", "REAL"),
    ("tp", "INTEGER"), ("sp", "INTEGER"), ("collective_share", "REAL"), ("link_bytes", "REAL"),
    ("link_savings", "REAL"),
    *((f"{name}_cycles", "INTEGER") for name in CATEGORIES),
    *((f"baseline_{name}_cycles", "INTEGER") for name in CATEGORIES),
)
METRIC_NAMES = tuple(name for name, _ in RESULT_COLUMNS)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def trace_hash(trace: Trace) -> str:
    """Content hash of the (possibly rescaled) trace: its serialised JSON."""
    return _digest(dumps_trace(trace))


def config_hash(hw: HardwareConfig) -> str:
    """Content hash of a hardware config: every field, sorted keys (name and comments included)."""
    return _digest(json.dumps(hardware_to_dict(hw), sort_keys=True, separators=(",", ":")))


@dataclass(frozen=True)
class SweepIdentity:
    """What makes two sweeps the same: the base hardware, the trace, the axes with their values (in order)
    and the sequence lengths. Each hardware and trace is named and content-hashed (config_hash, trace_hash)."""

    hardware: str
    trace: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    seq_lens: tuple[int, ...]

    def to_json(self) -> str:
        return json.dumps({"hardware": self.hardware, "trace": self.trace, "axes": [[path, list(values)] for
                           path, values in self.axes], "seq_lens": list(self.seq_lens)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SweepIdentity":
        data = json.loads(text)
        return cls(hardware=data["hardware"], trace=data["trace"], seq_lens=tuple(data["seq_lens"]),
                   axes=tuple((path, tuple(values)) for path, values in data["axes"]))

    def describe_axes(self) -> str:
        axes = [f"{path}={','.join(_axis_value_text(value) for value in values)}" for path, values in self.axes]
        if self.seq_lens:
            axes.append(f"seq-len {','.join(map(str, self.seq_lens))}")
        return " × ".join(axes) or "no axes"

    def differences(self, other: "SweepIdentity") -> list[str]:
        """What ``other`` changes, each as '<what> <recorded>, not <other's>' (numbers compare by value)."""
        found = []
        if self.hardware != other.hardware:
            found.append(f"base hardware {self.hardware}, not {other.hardware}")
        if self.trace != other.trace:
            found.append(f"trace {self.trace}, not {other.trace}")
        if _plain(self.axes) != _plain(other.axes) or list(self.seq_lens) != list(other.seq_lens):
            found.append(f"axes {self.describe_axes()}, not {other.describe_axes()}")
        return found


def _plain(value: Any) -> Any:
    """Tuples as lists, all the way down, so that a recorded identity (read from JSON) compares equal."""
    return [_plain(item) for item in value] if isinstance(value, (list, tuple)) else value


def _axis_value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


class ResultStore:
    """Open with ``ResultStore(path)``; use as a context manager or call ``close()``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        columns = ", ".join(f"{name} {kind}" for name, kind in RESULT_COLUMNS)
        self._check_model_version()
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS points (trace_hash TEXT NOT NULL, config_hash TEXT NOT NULL, "
                             "point_json TEXT NOT NULL, hw_name TEXT NOT NULL, PRIMARY KEY (trace_hash, config_hash))")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS results (trace_hash TEXT NOT NULL, config_hash TEXT NOT NULL, "
                             f"{columns}, PRIMARY KEY (trace_hash, config_hash, run_id))")
        self._check_columns()

    def _check_columns(self) -> None:
        """A table whose rows have other columns (made by an older amber-sim) is refused, never half-filled."""
        with closing(self._db.execute("PRAGMA table_info(results)")) as cursor:
            found = [row[1] for row in cursor][2:]
        if found != list(METRIC_NAMES):
            self._db.close()
            missing = [name for name in METRIC_NAMES if name not in found]
            raise InputError(str(self.path), None, f"this results table has other columns (made by an older "
                             f"amber-sim; missing: {', '.join(missing) or 'none'}): sweep into a new --out folder "
                             "(or delete this one)")

    def _check_model_version(self) -> None:
        """A table filled by another version of the simulator's rules is refused, never mixed with new rows."""
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            found = self._db.execute("SELECT value FROM meta WHERE key = 'model_version'").fetchone()
            has_points = self._db.execute("SELECT name FROM sqlite_master WHERE name = 'points'").fetchone()
            if found is None and has_points is None:
                self._db.execute("INSERT INTO meta VALUES ('model_version', ?)", (str(MODEL_VERSION),))
                return
        if found is None or found[0] != str(MODEL_VERSION):
            self._db.close()
            raise InputError(str(self.path), None, f"this results table was made by simulator model version "
                             f"{found[0] if found else 1}, not {MODEL_VERSION}; its rows would mix two sets of rules: "
                             "sweep into a new --out folder (or delete this one)")

    def claim_sweep(self, identity: SweepIdentity) -> None:
        """Record ``identity`` as this table's sweep, or check that it is the one recorded: a table holding
        another sweep (or points of a sweep that recorded none) is refused, never mixed with this one."""
        folder = repr(str(self.path.parent))
        with self._db:
            found = self._db.execute("SELECT value FROM meta WHERE key = 'sweep'").fetchone()
            if found is None:
                if self._db.execute("SELECT 1 FROM points LIMIT 1").fetchone() is not None:
                    raise InputError("--out", None, f"{folder} holds a sweep that did not record its axes (made by an "
                                     "older amber-sim), so its results cannot be told apart from this one's: sweep "
                                     "into a new --out folder (or delete this one)")
                self._db.execute("INSERT INTO meta VALUES ('sweep', ?)", (identity.to_json(),))
                return
        differences = SweepIdentity.from_json(found[0]).differences(identity)
        if differences:
            raise InputError("--out", None, f"{folder} holds another sweep ({'; '.join(differences)}); its results "
                             "would mix with this one's: sweep into a new --out folder (or delete this one)")

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def done_keys(self) -> set[tuple[str, str]]:
        with closing(self._db.execute("SELECT trace_hash, config_hash FROM points")) as cursor:
            return {(row[0], row[1]) for row in cursor}

    def add_points(self, batch: Iterable[tuple[str, str, dict[str, Any], str, list[dict[str, Any]]]]) -> int:
        """Insert (trace hash, config hash, point values, hw name, rows) in one transaction; return points added."""
        placeholders = ", ".join("?" for _ in range(len(RESULT_COLUMNS) + 2))
        added = 0
        with self._db:
            for t_hash, c_hash, point, hw_name, rows in batch:
                self._db.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?)",
                                 (t_hash, c_hash, json.dumps(point, sort_keys=True), hw_name))
                for row in rows:
                    self._db.execute(f"INSERT OR REPLACE INTO results VALUES ({placeholders})",
                                     (t_hash, c_hash, *(row.get(name) for name in METRIC_NAMES)))
                added += 1
        return added

    def rows(self, keys: Sequence[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
        """Result rows joined with their point values (``point``: dict), in the order of ``keys`` when given."""
        query = ("SELECT p.point_json, p.hw_name, r.* FROM results r JOIN points p "
                 "ON p.trace_hash = r.trace_hash AND p.config_hash = r.config_hash")
        with closing(self._db.execute(query)) as cursor:
            names = [description[0] for description in cursor.description]
            found = [dict(zip(names, values)) for values in cursor]
        for row in found:
            row["point"] = json.loads(row.pop("point_json"))
        if keys is None:
            return sorted(found, key=lambda row: (row["trace_hash"], row["config_hash"], row["run_id"]))
        order = {key: position for position, key in enumerate(keys)}
        chosen = [row for row in found if (row["trace_hash"], row["config_hash"]) in order]
        return sorted(chosen, key=lambda row: (order[(row["trace_hash"], row["config_hash"])], row["run_id"]))


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(item) for item in value) + "]"
    return "" if value is None else value


def write_csv(rows: list[dict[str, Any]], axis_paths: Sequence[str], path: Path) -> Path:
    """One line per (point, run): the axis values first, then every metric (atomic write)."""
    fieldnames = ["trace_hash", "config_hash", "hw_name", *axis_paths,
                  *(name for name in METRIC_NAMES if name not in axis_paths)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = {name: _cell(row.get(name)) for name in fieldnames}
        for axis in axis_paths:
            flat[axis] = _cell(row["point"].get(axis))
        writer.writerow(flat)
    return atomic_write_text(path, buffer.getvalue())
