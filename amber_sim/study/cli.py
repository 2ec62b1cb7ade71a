"""``amber-sim sweep`` and ``amber-sim study {codesign,bottleneck}`` (docs/studies.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amber_sim.errors import InputError


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=160)


def _command_line(name: str) -> str:
    return " ".join(["amber-sim", name, *sys.argv[2:]]) if len(sys.argv) > 2 else f"amber-sim {name}"


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from amber_sim.atomic import check_output_dir
    from amber_sim.hw.config import load_hardware
    from amber_sim.paths import resolve_hw_config, resolve_trace
    from amber_sim.study.axes import parse_axes, parse_seq_lens
    from amber_sim.study.store import DB_NAME, ResultStore
    from amber_sim.study.sweep import connect_dask, prepare_job, run_sweep
    from amber_sim.study.sweep_report import write_sweep_report
    from amber_sim.trace import load_trace

    out = check_output_dir(args.out)
    axes = parse_axes(args.vary or [])
    seq_lens = parse_seq_lens(args.seq_len)
    if args.max_points <= 0:
        raise InputError("--max-points", None, f"expected a positive cap, got {args.max_points}")
    base = load_hardware(resolve_hw_config(args.hw))
    trace = load_trace(resolve_trace(args.trace))
    job = prepare_job(base, trace, axes, seq_lens, args.max_points)
    if (out / DB_NAME).exists():  # a folder holding another sweep is refused before any work
        with ResultStore(out / DB_NAME) as store:
            store.claim_sweep(job.identity)
    client = connect_dask(args.dask) if args.dask else None
    console = _console()
    columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("points"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    try:
        out.mkdir(parents=True, exist_ok=True)  # every input checked: only now may the folder appear
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("sweep", total=len(job.keys))

            def step(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            outcome = run_sweep(job, out / DB_NAME, workers=args.workers, dask_client=client, progress=step)
    finally:
        if client is not None:
            client.close()
    with ResultStore(out / DB_NAME) as store:
        rows = store.rows(list(outcome.keys))
    configs = {c_hash: hw for _, c_hash, _, hw in job.points}
    written = write_sweep_report(rows, axes, seq_lens, base, configs, out, Path(trace.source_path or "").name,
                                 _command_line("sweep"))
    console.print(f"{len(set(outcome.keys))} points: {outcome.computed} computed, {outcome.reused} already in "
                  f"{out / DB_NAME}; wrote {', '.join(written)} to {out}/")
    return 0


def add_sweep(subparsers) -> None:
    from amber_sim.study.axes import DEFAULT_MAX_POINTS

    parser = subparsers.add_parser("sweep", help="design-space sweep over hardware-config fields (and sequence length)")
    parser.add_argument("--hw", required=True, help="base hardware config (path or bundled name)")
    parser.add_argument("--trace", required=True, help="trace JSON (path or bundled name)")
    parser.add_argument("--vary", action="append", metavar="PATH=VALUES",
                        help="a config field by dotted path and its values: START:STOP:xFACTOR, START:STOP:+STEP "
                             "or V1,V2,...; list fields take [2:4],[2:4,4:8]; repeat for more axes (product)")
    parser.add_argument("--seq-len", help="comma-separated sequence lengths; the trace is rescaled (docs/studies.md)")
    parser.add_argument("--out", required=True, help="directory for results.sqlite, results.csv, plots, report.md "
                        "(created if needed; a folder holds one sweep, and rerunning that sweep resumes it)")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: one per CPU core)")
    parser.add_argument("--dask", metavar="ADDRESS", help="run on a Dask cluster, e.g. tcp://scheduler:8786")
    parser.add_argument("--max-points", type=int, default=DEFAULT_MAX_POINTS,
                        help=f"refuse sweeps larger than this (default {DEFAULT_MAX_POINTS:,})")
    parser.set_defaults(handler=cmd_sweep)


def _load_study_inputs(args: argparse.Namespace):
    from amber_sim.hw.config import load_hardware
    from amber_sim.paths import resolve_hw_config, resolve_trace
    from amber_sim.study.rescale import rescale_trace
    from amber_sim.trace import load_trace

    trace = load_trace(resolve_trace(args.trace))
    if args.seq_len is not None:
        trace = rescale_trace(trace, args.seq_len)
    configs = [load_hardware(resolve_hw_config(name)) for name in args.hw]
    return trace, configs


def _default_study_dir(kind: str, trace_path: str) -> Path:
    from amber_sim.paths import REPORT_DIR

    return REPORT_DIR / f"{kind}-{Path(trace_path).stem}"


def cmd_study(args: argparse.Namespace) -> int:
    from amber_sim.atomic import check_output_dir
    from amber_sim.study.studies import write_bottleneck, write_codesign

    trace, configs = _load_study_inputs(args)
    out = check_output_dir(args.out or _default_study_dir(args.study, trace.source_path or "trace"))
    writer = write_codesign if args.study == "codesign" else write_bottleneck
    result = writer(trace, configs, out, _command_line("study"))
    console = _console()
    if args.study == "codesign":
        front = [row for row in result.rows if row["pareto"]]
        console.print(f"Pareto-optimal points ({len(front)} of {len(result.rows)}):")
        for row in sorted(front, key=lambda r: -r["end_to_end_speedup"]):
            ppl = "n/a" if row["perplexity"] is None else f"{row['perplexity']:.2f}"
            console.print(f"  {row['pattern']:>12s} {row['precision']} @ {row['hw_name']:14s} perplexity {ppl:>6s}  "
                          f"speedup {row['end_to_end_speedup']:.3f}×  cost {row['cost_mm2']:.1f} mm²")
    else:
        for row in result.rows:
            console.print(f"  {row['hw_name']:14s} {row['run_id']:36s} {row['prefill_ms']:8.3f} ms  largest: "
                          f"{row['largest']} ({100 * row[row['largest'] + '_share']:.0f}%)")
    console.print(f"wrote {', '.join(result.files)} to {out}/")
    return 0


def add_study(subparsers) -> None:
    parser = subparsers.add_parser("study", help="co-design (accuracy × speedup × cost) and bottleneck studies")
    parser.add_argument("study", choices=("codesign", "bottleneck"), help="which study")
    parser.add_argument("--trace", required=True, help="trace JSON (path or bundled name)")
    parser.add_argument("--hw", action="append", required=True, help="hardware config; repeat for several")
    parser.add_argument("--seq-len", type=int, default=None, help="rescale the trace to this sequence length first")
    parser.add_argument("--out", help="output directory (default reports/<study>-<trace>/)")
    parser.set_defaults(handler=cmd_study)
