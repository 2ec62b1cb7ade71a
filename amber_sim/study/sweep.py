"""The sweep runner: every (sequence length × hardware point), in local processes or on Dask.

A point that splits the prefill over chips (axes ``tp``/``sp``) simulates one chip's share of the trace
(``sim.parallel.shard_trace``): the sharded trace is built once per (sequence length, tp, sp, and the config's
compressed all-gather and metadata format when they matter) and keyed like a trace of its own.

Points already in the results table (same trace hash and config hash) are skipped, so an interrupted
sweep resumes where it stopped and repeated points are never recomputed. A table holds one sweep
(its :class:`~amber_sim.study.store.SweepIdentity`): another sweep's table is refused before any work. Workers evaluate batches of
neighbouring points (the product's last axis varies fastest, so neighbours share most fields and the
simulator's per-GEMM caches hit); the main process writes each finished batch in one transaction.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Callable, Sequence

from amber_sim.errors import InputError
from amber_sim.hw.config import HardwareConfig
from amber_sim.sim.parallel import check_tp, shard_trace
from amber_sim.study.axes import Axis, apply_point, check_point_count, parallel_values, sweep_points
from amber_sim.study.evaluate import TracePlan, build_plan, evaluate_point
from amber_sim.study.rescale import rescale_trace
from amber_sim.study.store import ResultStore, SweepIdentity, config_hash, trace_hash
from amber_sim.trace import Trace

DEFAULT_BATCH_POINTS = 8
DASK_CONNECT_TIMEOUT_S = 5.0

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SweepJob:
    """What to compute: the traces per sequence length and the hardware points, in order."""

    traces: dict[str, Trace]                                   # trace key -> (rescaled, sharded) trace
    splits: dict[str, tuple[int, bool]]                        # trace key -> (tp, sp) it was sharded with
    points: tuple[tuple[str, str, dict[str, Any], HardwareConfig], ...]  # (trace hash, config hash, values, hw)
    identity: SweepIdentity                                    # what the results table must hold

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [(t_hash, c_hash) for t_hash, c_hash, _, _ in self.points]


@dataclass(frozen=True)
class SweepOutcome:
    keys: tuple[tuple[str, str], ...]
    computed: int
    reused: int


def prepare_job(base: HardwareConfig, trace: Trace, axes: Sequence[Axis], seq_lens: Sequence[int],
                max_points: int) -> SweepJob:
    """Check the sweep's size, build every config (validated), shard the traces each point needs (checked:
    a --tp that does not fit the system or a shape is refused here, before any work) and hash them."""
    check_point_count(axes, seq_lens, max_points)
    configs = []
    for point in sweep_points(axes):
        hw = apply_point(base, point)
        tp, sp = parallel_values(point)
        with _at_point(point.as_dict()):
            check_tp(tp, hw.system, hw.name)
        configs.append((point, hw, config_hash(hw), tp, sp))
    traces: dict[str, Trace] = {}
    splits: dict[str, tuple[int, bool]] = {}
    points = []
    for seq_len in seq_lens or (None,):
        rescaled = trace if seq_len is None else rescale_trace(trace, seq_len)
        t_hash = trace_hash(rescaled)
        for point, hw, c_hash, tp, sp in configs:
            key, compressed = shard_key(t_hash, tp, sp, hw)
            if key not in traces:
                with _at_point({**point.as_dict(), **({"seq_len": seq_len} if seq_len is not None else {})}):
                    traces[key] = shard_trace(rescaled, tp, sp, compressed, hw.sparsity.metadata)
                splits[key] = (tp, sp)
            values = point.as_dict()
            if seq_len is not None:
                values["seq_len"] = seq_len
            points.append((key, c_hash, values, hw))
    return SweepJob(traces=traces, splits=splits, points=tuple(points), identity=sweep_identity(base, trace, axes, seq_lens))


@contextlib.contextmanager
def _at_point(values: dict[str, Any]):
    """A split refused at a sweep point names the point and the --vary that asked for it, not --tp."""
    try:
        yield
    except InputError as error:
        where = "--vary" if error.where == "--tp" else f"--vary: {error.where}"
        field = f" {error.field}" if error.field else ""
        message = error.expected.replace("--tp", "tp")
        raise InputError(where, None, f"at the point {_label(values)}:{field} {message}") from None


def _label(values: dict[str, Any]) -> str:
    return ",".join(f"{path}={value}" for path, value in values.items())


def shard_key(t_hash: str, tp: int, sp: bool, hw: HardwareConfig) -> tuple[str, bool]:
    """The key of one chip's share of a trace, and whether its all-gathers are compressed. One chip without sp
    keeps the trace's own hash (tables of single-chip sweeps are unchanged); the settings that change the sharded ops
    (tp, sp, and with sp the config's compressed all-gather and metadata format) are part of the key."""
    if tp == 1:  # nothing to split: sp changes no number, but its rows stay apart from sp=false's
        return t_hash + ("-sp" if sp else ""), False
    compressed = sp and hw.system is not None and hw.system.compressed_allgather
    key = f"{t_hash}-tp{tp}" + ("-sp" if sp else "") + (f"-compressed-{hw.sparsity.metadata}" if compressed else "")
    return key, compressed


def sweep_identity(base: HardwareConfig, trace: Trace, axes: Sequence[Axis], seq_lens: Sequence[int]) -> SweepIdentity:
    trace_name = PurePath(trace.source_path).name if trace.source_path else "trace"
    return SweepIdentity(hardware=f"{base.name} (config {config_hash(base)})",
                         trace=f"{trace_name} (content {trace_hash(trace)})",
                         axes=tuple((axis.path, tuple(axis.values)) for axis in axes), seq_lens=tuple(seq_lens))


# ---------------------------------------------------------------- the work of one batch (any process)

_WORKER_TRACES: dict[str, Trace] = {}   # set once per worker process by the pool initializer
_WORKER_PLANS: dict[str, TracePlan] = {}


def _init_worker(traces: dict[str, Trace]) -> None:
    _WORKER_TRACES.update(traces)


def _plan(t_hash: str, trace: Trace | None, split: tuple[int, bool]) -> TracePlan:
    plan = _WORKER_PLANS.get(t_hash)
    if plan is None:
        plan = build_plan(trace if trace is not None else _WORKER_TRACES[t_hash], *split)
        _WORKER_PLANS[t_hash] = plan
    return plan


def evaluate_batch(t_hash: str, batch: list[tuple[str, dict[str, Any], HardwareConfig]],
                   trace: Trace | None = None, split: tuple[int, bool] = (1, False)
                   ) -> list[tuple[str, str, dict[str, Any], str, list[dict[str, Any]]]]:
    """Rows of every point of a batch (all of one trace, sharded as ``split`` = (tp, sp)); the trace comes with
    the call or the worker."""
    plan = _plan(t_hash, trace, split)
    return [(t_hash, c_hash, values, hw.name, evaluate_point(hw, plan)) for c_hash, values, hw in batch]


def _batches(job: SweepJob, todo: set[tuple[str, str]], batch_points: int):
    current: list = []
    current_trace = None
    seen: set[tuple[str, str]] = set()
    for t_hash, c_hash, values, hw in job.points:
        if (t_hash, c_hash) not in todo or (t_hash, c_hash) in seen:
            continue
        seen.add((t_hash, c_hash))
        if current and (t_hash != current_trace or len(current) >= batch_points):
            yield current_trace, current
            current = []
        current_trace = t_hash
        current.append((c_hash, values, hw))
    if current:
        yield current_trace, current


# ---------------------------------------------------------------- executors

def _run_inline(job, batches, store, done, total, progress) -> int:
    plans: dict[str, TracePlan] = {}
    for t_hash, batch in batches:
        if t_hash not in plans:
            plans[t_hash] = build_plan(job.traces[t_hash], *job.splits[t_hash])
        results = [(t_hash, c_hash, values, hw.name, evaluate_point(hw, plans[t_hash])) for c_hash, values, hw in batch]
        done += store.add_points(results)
        progress(done, total)
    return done


def _run_processes(job, batches, store, done, total, progress, workers: int) -> int:
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                                initargs=(job.traces,)) as pool:
        pending = set()
        try:
            for t_hash, batch in batches:
                pending.add(pool.submit(evaluate_batch, t_hash, batch, None, job.splits[t_hash]))
            for future in concurrent.futures.as_completed(pending):
                done += store.add_points(future.result())
                progress(done, total)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return done


def connect_dask(address: str, timeout_s: float = DASK_CONNECT_TIMEOUT_S):
    """A distributed.Client for ``address``; a clear InputError when nothing answers in time."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--dask", None, "needs the sweep extra: pip install -e '.[sweep]' (dask[distributed])") from None
    try:
        return Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise InputError("--dask", None, f"no Dask scheduler answers at {address} within {timeout_s:g} s "
                         f"({type(error).__name__}); results already in the table are kept") from None


def _run_dask(job, batches, store, done, total, progress, client) -> int:
    from distributed import as_completed

    scattered = {t_hash: client.scatter(trace, broadcast=True) for t_hash, trace in job.traces.items()}
    futures = [client.submit(evaluate_batch, t_hash, batch, scattered[t_hash], job.splits[t_hash], pure=False)
               for t_hash, batch in batches]
    try:
        for future in as_completed(futures):
            done += store.add_points(future.result())
            progress(done, total)
    except BaseException:
        client.cancel(futures)
        raise
    return done


def run_sweep(job: SweepJob, db_path: Path, workers: int | None = None, dask_client=None,
              batch_points: int = DEFAULT_BATCH_POINTS, progress: Progress | None = None) -> SweepOutcome:
    """Compute the job's missing points into the SQLite table at ``db_path``."""
    progress = progress or (lambda done, total: None)
    workers = workers or os.cpu_count() or 1
    with ResultStore(db_path) as store:
        store.claim_sweep(job.identity)
        done_keys = store.done_keys()
        keys = job.keys
        todo = {key for key in keys if key not in done_keys}
        total = len(set(keys))
        reused = total - len(todo)
        progress(reused, total)
        batches = list(_batches(job, todo, batch_points))
        if dask_client is not None:
            done = _run_dask(job, batches, store, reused, total, progress, dask_client)
        elif workers <= 1 or len(batches) <= 1:
            done = _run_inline(job, batches, store, reused, total, progress)
        else:
            done = _run_processes(job, batches, store, reused, total, progress, workers)
    return SweepOutcome(keys=tuple(keys), computed=done - reused, reused=reused)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)

