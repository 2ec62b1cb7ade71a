"""The ``amber-sim`` command.

``amber-sim --hw HW --trace TRACE`` is the main job; subcommands (``inspect``, ``synth``, ...) are
registered in ``SUBCOMMANDS``. Bad input prints one line and exits with code 2 (a traceback only
with ``--debug``); Ctrl-C exits with 130 and leaves no half-written file (all writes are atomic).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from amber_sim import __version__
from amber_sim.errors import InputError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# Every file is written whole (temp file + rename); an interrupt can only stop before some of them.
INTERRUPTED_MESSAGE = "amber-sim: interrupted; no file was left half-written (files not yet written are missing)"


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=160)


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [item.strip() for item in text.split(",") if item.strip()]


# ---------------------------------------------------------------- inspect

def _gflop(flops: float) -> str:
    return f"{flops / 1e9:,.1f}"


def _mib(num_bytes: float) -> str:
    return f"{num_bytes / 2**20:,.1f}"


def print_trace_summary(trace, console) -> None:
    from rich.table import Table

    from amber_sim.trace_summary import summarize_run

    capture, model = trace.capture, trace.model
    origin = "SYNTHETIC trace (masks assumed, not measured)" if trace.is_synthetic else "captured trace"
    console.print(f"[bold]{trace.source_path}[/bold]: {origin}; model {model.name} ({model.family}, weights "
                  f"{model.weights}); {capture.tokens} tokens (seq_len {capture.seq_len} × batch {capture.batch})")
    if capture.notes:
        console.print(f"notes: {capture.notes}")
    if capture.command:
        console.print(f"reproduce: {capture.command}")
    table = Table(title="runs in the trace", title_justify="left")
    for column, justify in (("run", "left"), ("ops lin/attn/vec", "right"), ("GEMM GFLOP", "right"),
                            ("sparsified linear FLOPs", "right"), ("linear act. MiB dense", "right"),
                            ("compressed", "right"), ("act. bytes saved if compressed", "right"), ("accuracy", "left")):
        table.add_column(column, justify=justify, no_wrap=column in ("run", "accuracy"))
    for run in trace.runs:
        summary = summarize_run(run)
        counts = summary.op_counts
        metrics = run.metrics or {}
        ppl, top1 = metrics.get("perplexity"), metrics.get("top1_agreement")
        accuracy = "n/a" if ppl is None else f"ppl {ppl:.2f}" + ("" if top1 is None else f", top-1 {top1:.3f}")
        table.add_row(run.id, f"{counts.get('linear', 0)}/{counts.get('attention', 0)}/{counts.get('vector', 0)}",
                      _gflop(summary.gemm_flops), f"{summary.sparsified_linear_flop_share:.1%}",
                      _mib(summary.linear_activation_bytes_dense), _mib(summary.linear_activation_bytes_compressed),
                      f"{summary.activation_bytes_saved_if_compressed:.1%}", accuracy)
    console.print(table)


def cmd_inspect(args: argparse.Namespace) -> int:
    from amber_sim.paths import resolve_trace
    from amber_sim.trace import load_trace

    trace = load_trace(resolve_trace(args.trace))
    print_trace_summary(trace, _console())
    return 0


def add_inspect(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="validate a trace and summarise its runs (no hardware)")
    parser.add_argument("trace", help="trace file, or a bundled name such as llama.json")
    parser.set_defaults(handler=cmd_inspect)


# ---------------------------------------------------------------- synth

def cmd_synth(args: argparse.Namespace) -> int:
    from amber_sim.atomic import check_output_file
    from amber_sim.capture.synthetic import SyntheticSpec, synthetic_trace
    from amber_sim.models.architectures import get_arch
    from amber_sim.trace import save_trace

    check_output_file(args.out)
    arch = get_arch(args.model)
    config = arch.model_config()
    if args.seq_len <= 0 or args.seq_len > arch.max_position:
        raise InputError("--seq-len", None, f"expected 1..{arch.max_position} for {arch.name}, got {args.seq_len}")
    spec = SyntheticSpec(model_name=arch.name, family=arch.family, config=config, seq_len=args.seq_len,
                         patterns=tuple(_split_list(args.patterns)), precisions=tuple(_split_list(args.precision)),
                         policy=args.policy, created=args.created)
    trace = synthetic_trace(spec)
    command = " ".join(["amber-sim", "synth", *sys.argv[2:]]) if args.record_command else None
    if command:
        import dataclasses

        trace = dataclasses.replace(trace, capture=dataclasses.replace(trace.capture, command=command))
    path = save_trace(trace, args.out)
    _console().print(f"wrote {path} ({len(trace.runs)} runs, {len(trace.runs[0].ops)} ops each, synthetic)")
    return 0


def add_synth(subparsers) -> None:
    parser = subparsers.add_parser("synth", help="write a SYNTHETIC trace (shapes from an architecture, masks assumed)")
    parser.add_argument("--model", required=True, help="bundled architecture name, e.g. llama-3.1-8b")
    parser.add_argument("--seq-len", type=int, required=True, help="prefill tokens")
    parser.add_argument("--patterns", default="dense,2:4,4:8,8:16,16:32,unstructured", help="comma-separated")
    parser.add_argument("--precision", default="fp16", help="comma-separated: fp16, w8a8")
    parser.add_argument("--policy", default="amber-paper", choices=("amber-paper", "all"))
    parser.add_argument("--created", default=None, help="timestamp to record (for reproducible files)")
    parser.add_argument("--record-command", action="store_true", help="store the command line in the trace")
    parser.add_argument("--out", required=True, help="output trace path (its directory must exist)")
    parser.set_defaults(handler=cmd_synth)


# ---------------------------------------------------------------- main job

def _load_inputs(args: argparse.Namespace):
    from amber_sim.hw.config import load_hardware
    from amber_sim.paths import resolve_hw_config, resolve_trace
    from amber_sim.trace import load_trace

    if not args.hw or not args.trace:
        raise InputError("amber-sim", None, "needs --hw CONFIG and --trace TRACE (see amber-sim --help)")
    hardware = load_hardware(resolve_hw_config(args.hw))
    trace = load_trace(resolve_trace(args.trace))
    return hardware, select_runs(trace, _split_list(getattr(args, "patterns", None)))


def default_report_dir(trace_path: str, hw_name: str) -> Path:
    from amber_sim.paths import REPORT_DIR

    return REPORT_DIR / f"{Path(trace_path).stem}-{hw_name}"


def cmd_report(args: argparse.Namespace) -> int:
    from amber_sim.report.plots import PlotWorker

    # Fork the plot process first: it imports matplotlib while this one loads and simulates, then
    # draws while this one writes report.json and ops.csv (docs/metrics.md, "Report files").
    with PlotWorker() as plotter:
        from amber_sim.report.files import write_report
        from amber_sim.report.metrics import run_rows
        from amber_sim.report.terminal import print_report
        from amber_sim.sim.engine import simulate_trace

        from amber_sim.atomic import check_output_dir

        from amber_sim.sim.parallel import check_tp, shard_trace

        hardware, trace = _load_inputs(args)
        check_tp(args.tp, hardware.system, hardware.name)
        if args.sp and args.tp == 1:
            raise InputError("--sp", None, "sequence parallelism needs --tp N with N > 1")
        suffix = (f"-tp{args.tp}" if args.tp > 1 else "") + ("-sp" if args.sp else "")
        out_dir = check_output_dir(args.out or default_report_dir(trace.source_path, hardware.name + suffix))
        console = _console()
        compressed = hardware.system is not None and hardware.system.compressed_allgather
        result = simulate_trace(hardware, shard_trace(trace, args.tp, args.sp, compressed, hardware.sparsity.metadata))
        if args.tp > 1:
            overlapped = args.sp and hardware.system.overlap_collectives
            kind = ("sequence and tensor parallel" + (", compressed all-gathers" if compressed else "")
                    + (", collectives overlapped with their GEMMs" if overlapped else "") if args.sp
                    else "tensor parallel")
            console.print(f"{kind} over {args.tp} chips of {hardware.name}'s system: every number below is one "
                          "chip's, collectives included (docs/model.md §8)")
        rows = run_rows(result)  # once: each row simulates its run again without its mitigation ops
        print_report(result, console, args.run, args.top, rows=rows)
        written = write_report(result, out_dir, args.run, plotter=plotter, rows=rows)
    console.print(f"wrote {len(written)} files to {out_dir}/ (report.md, report.json, ops.csv, plots)")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from amber_sim.report.terminal import explain_op
    from amber_sim.sim.engine import simulate_run

    hardware, trace = _load_inputs(args)
    runs = [run for run in trace.runs if args.run is None or run.id == args.run]
    if not runs:
        raise InputError("--run", None, f"no run {args.run!r} in {trace.source_path} "
                         f"(runs: {', '.join(run.id for run in trace.runs)})")
    console = _console()
    found = False
    for run in runs:
        result = simulate_run(hardware, run, baseline=run)  # explain shows ops, not speedups: no twin to simulate
        for op in result.ops:
            if op.name == args.op:
                found = True
                console.print(f"[bold]run {run.id}[/bold] on {hardware.name}")
                for line in explain_op(op, hardware.clock_ghz):
                    console.print(line, markup=False)
    if not found:
        import difflib

        names = [op.name for op in runs[0].ops]
        close = difflib.get_close_matches(args.op, names, n=3)
        raise InputError("--op", None, f"no op named {args.op!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    return 0


def add_explain(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="show how one op's cycles were obtained")
    parser.add_argument("--hw", required=True, help="hardware config YAML (path or bundled name)")
    parser.add_argument("--trace", required=True, help="trace JSON (path or bundled name)")
    parser.add_argument("--op", required=True, help="op name, e.g. layers.0.mlp.down_proj")
    parser.add_argument("--run", help="run id (default: every run)")
    parser.set_defaults(handler=cmd_explain)


def select_runs(trace, patterns: list[str] | None):
    """Keep the runs whose pattern is listed (the dense run is always kept as the baseline)."""
    import dataclasses

    from amber_sim.patterns import parse_pattern

    if not patterns:
        return trace
    wanted = {str(parse_pattern(text, "--patterns")) for text in patterns}
    available = {run.pattern for run in trace.runs}
    missing = sorted(wanted - available)
    if missing:
        raise InputError("--patterns", None, f"{', '.join(missing)} not in {trace.source_path} "
                         f"(it has {', '.join(sorted(available))})")
    runs = tuple(run for run in trace.runs if run.pattern in wanted or run.pattern == "dense")
    return dataclasses.replace(trace, runs=runs)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def cmd_validate_hardware(args: argparse.Namespace) -> int:
    """The model against published GPU measurements (docs/validation.md)."""
    from rich.table import Table

    from amber_sim.paths import INSTALLED, VALIDATION_DIR
    from amber_sim.validate.hardware import check_targets, class_stats, compare, load_gemm_measurements

    if args.write_summary and INSTALLED:
        raise InputError("--write-summary", None, "rewrites the checkout's amber_sim/validate/hardware_summary.json; "
                         "run it from a checkout, not an installed package")
    path = Path(args.set) if args.set else VALIDATION_DIR / "gpu_gemm_measurements.csv"
    measurements = load_gemm_measurements(path)
    comparisons = compare(measurements)
    console = _console()
    table = Table(title=f"amber-sim against published measurements ({path.name}); dense: time, 2:4: speedup over dense",
                  title_justify="left")
    for name in ("id", "device", "class", "M×K×N", "dtype", "timing", "measured", "predicted", "error", "bound"):
        table.add_column(name, justify="right" if name in ("measured", "predicted", "error") else "left",
                         no_wrap=name in ("id", "M×K×N"))
    for c in comparisons:
        m = c.measurement
        unit = " ms" if m.kind == "dense" else "×"
        table.add_row(m.id, m.device, c.kind_class, f"{m.M}×{m.K}×{m.N}", m.dtype, m.timing, f"{m.measured:.4g}{unit}",
                      f"{c.predicted:.4g}{unit}", f"{c.error:+.1%}" + (" fit" if c.fitted else ""), c.bound)
    console.print(table)
    overheads = {c.overhead.harness: c.overhead for c in comparisons if c.overhead is not None}
    for overhead in sorted(overheads.values(), key=lambda o: o.harness):
        what = "adds" if overhead.timing == "host_sync" else "floors every call at"
        console.print(f"host overhead of harness {overhead.harness} ({overhead.timing}): {what} "
                      f"{overhead.ms * 1e3:.1f} µs, fitted on {overhead.fitted_on}")
    skipped = len(measurements) - len(comparisons)
    stats = Table(title="error per device and class (error = predicted / measured − 1)", title_justify="left")
    for name in ("device", "kind", "points", "fitted on", "mean |error|", "max |error|", "mean error"):
        stats.add_column(name, justify="left" if name in ("device", "kind") else "right")
    for row in class_stats(comparisons):
        stats.add_row(row.device, row.kind, str(row.points), str(row.fitted_points), _pct(row.mean_abs_error),
                      _pct(row.max_abs_error), f"{row.mean_error:+.1%}")
    console.print(stats)
    if skipped:
        console.print(f"{skipped} measurement(s) on devices without a bundled config were not replayed")
    vector_path = Path(args.vector_set) if args.vector_set else VALIDATION_DIR / "gpu_vector_measurements.csv"
    if vector_path.is_file() or args.vector_set:
        from amber_sim.validate.hardware import compare_vectors, load_vector_measurements, vector_stats

        vector_table = Table(title=f"vector kernels ({vector_path.name}): time; large = at least 256 MiB of DRAM "
                                   "traffic", title_justify="left")
        for name in ("op", "config", "kernels", "mean |error|", "large kernels", "mean error, large"):
            vector_table.add_column(name, justify="left" if name in ("op", "config") else "right")
        for row in vector_stats(compare_vectors(load_vector_measurements(vector_path))):
            vector_table.add_row(row.op, row.config, str(row.kernels), _pct(row.mean_abs_error), str(row.large_kernels),
                                 "n/a" if row.large_mean_error is None else f"{row.large_mean_error:+.1%}")
        console.print(vector_table)
    if args.write_summary and args.set:
        raise InputError("--write-summary", None, "the shipped summary describes the committed set only; drop --set")
    if args.write_summary:
        import json

        from amber_sim.atomic import atomic_write_text
        from amber_sim.validate.hardware import SUMMARY_PATH, summary_dict

        target = SUMMARY_PATH
        atomic_write_text(target, json.dumps(summary_dict(comparisons, path.name), indent=1, sort_keys=True) + "\n")
        console.print(f"wrote {target}")
    targets = check_targets(comparisons)
    console.print(f"targets: dense mean |error| {_pct(targets.dense_mean_abs_error)} (≤ 10%), worst dense GEMM of ≥ 1 "
                  f"GFLOP {_pct(targets.dense_large_max_abs_error)} (≤ 25%); 2:4 speedup mean |error| "
                  f"{_pct(targets.sparse_mean_abs_error)} (≤ 10%), PyTorch tutorial case {_pct(targets.tutorial_error)} "
                  f"(≤ 10%): {'met' if targets.met else 'NOT met'}")
    if args.set:
        return 0 if targets.met else 1
    collectives_met = _print_collective_target(console)
    return 0 if targets.met and collectives_met else 1


def _print_collective_target(console) -> bool:
    """The multi-chip half of the hardware validation: the collective model against the committed nccl-tests
    set, in one line (its table: ``amber-sim validate collectives``)."""
    from amber_sim.paths import VALIDATION_DIR
    from amber_sim.validate.collectives import (COLLECTIVE_TARGET, compare_collectives, load_nccl_measurements,
                                                worst_targeted_error)

    comparisons = compare_collectives(load_nccl_measurements(VALIDATION_DIR / "nccl_measurements.csv"))
    worst = worst_targeted_error(comparisons)
    met = worst is not None and worst <= COLLECTIVE_TARGET
    by_config = {}
    for c in comparisons:
        if c.targeted and 2**20 <= c.measurement.bytes <= 2**30:
            by_config[c.config] = max(by_config.get(c.config, 0.0), abs(c.error))
    configs = ", ".join(f"{config} worst {_pct(error)}" for config, error in sorted(by_config.items()))
    console.print(f"collectives against {len(comparisons)} nccl-tests rows ({configs}; table: amber-sim validate "
                  f"collectives): every one from 1 MiB to 1 GiB within {COLLECTIVE_TARGET:.0%}: "
                  f"{'met' if met else 'NOT met'}")
    return met


def cmd_validate(args: argparse.Namespace) -> int:
    import tempfile

    if args.simulator == "hardware":
        return cmd_validate_hardware(args)
    if args.simulator == "collectives":
        return cmd_validate_collectives(args)

    from rich.table import Table

    from amber_sim.paths import INSTALLED, VALIDATION_DIR
    from amber_sim.validate.compare import compare_rows, summarize
    from amber_sim.validate.scalesim_runner import load_reference, regenerate
    from amber_sim.validate.scalesim_cases import CASES, case_by_name

    if args.regenerate and INSTALLED and not args.reference:
        raise InputError("--regenerate", None, "would rewrite the reference bundled in the installed package; give "
                         "--reference PATH, or run it from a checkout")
    reference = Path(args.reference) if args.reference else VALIDATION_DIR / "scalesim_reference.csv"
    names = _split_list(args.cases)
    cases = [case_by_name(name) for name in names] if names else list(CASES)
    console = _console()
    if args.live or args.regenerate:
        if args.regenerate:
            rows = regenerate(reference, cases, merge=bool(names))
        else:
            with tempfile.TemporaryDirectory() as scratch:
                rows = regenerate(Path(scratch) / "scalesim.csv", cases)
        source = "SCALE-Sim run now"
    else:
        if not reference.is_file():
            raise InputError(str(reference), None, "no reference CSV; run with --regenerate to create it")
        wanted = {case.name for case in cases}
        rows = [row for row in load_reference(reference) if row["case"] in wanted]
        source = f"committed reference {reference.name}"
    comparisons, amber_wall_s = compare_rows(rows)
    summary = summarize(comparisons, amber_wall_s)
    table = Table(title=f"amber-sim systolic mode vs SCALE-Sim v3 ({source}); cycles in SCALE-Sim's convention",
                  title_justify="left")
    for name in ("case", "SCALE-Sim cycles", "amber-sim", "error", "amber-sim, SCALE-Sim SRAM", "error ",
                 "util SCALE-Sim", "util amber-sim"):
        table.add_column(name, justify="left" if name == "case" else "right", no_wrap=name == "case")
    for c in comparisons:
        matched = "no tile fits" if c.amber_matched_sram_cycles is None else f"{c.amber_matched_sram_cycles:,}"
        matched_error = "" if c.matched_sram_relative_error is None else f"{c.matched_sram_relative_error:+.2%}"
        table.add_row(c.case, f"{c.scalesim_cycles:,}", f"{c.amber_cycles:,}", f"{c.relative_error:+.2%}", matched,
                      matched_error, f"{c.scalesim_util:.1%}", f"{c.amber_util:.1%}")
    console.print(table)
    console.print(f"stall-free: dense max |error| {summary.dense_max_abs_error:.2%} (target 5%), mean "
                  f"{summary.dense_mean_abs_error:.2%} (target 2%); N:M sparse max {summary.sparse_max_abs_error:.2%} "
                  f"(target 10%). With SCALE-Sim's SRAM sizes as double-buffered tiles: max "
                  f"{summary.matched_sram_max_abs_error:.2%}.")
    console.print(f"wall time over {summary.cases} GEMMs: SCALE-Sim {summary.scalesim_wall_s:.1f} s, amber-sim "
                  f"{summary.amber_wall_s * 1e3:.1f} ms: {summary.speed_ratio:,.0f}x faster (target 1,000x)")
    within = (summary.dense_max_abs_error <= 0.05 and summary.dense_mean_abs_error <= 0.02
              and summary.sparse_max_abs_error <= 0.10)
    return 0 if within else 1


def cmd_validate_collectives(args: argparse.Namespace) -> int:
    """The collective model against published nccl-tests measurements (docs/validation.md)."""
    from rich.table import Table

    from amber_sim.paths import VALIDATION_DIR
    from amber_sim.validate.collectives import (COLLECTIVE_TARGET, compare_collectives, harness_floors,
                                                load_nccl_measurements, series_stats, worst_targeted_error)

    path = Path(args.set) if args.set else VALIDATION_DIR / "nccl_measurements.csv"
    rows = load_nccl_measurements(path)
    comparisons = compare_collectives(rows)
    console = _console()
    table = Table(title=f"collectives against published nccl-tests tables ({path.name}): time per call",
                  title_justify="left")
    for name in ("series", "config", "points", "mean |error|", "max |error|", "protocols", "targeted"):
        table.add_column(name, justify="right" if name in ("points", "mean |error|", "max |error|") else "left")
    for row in series_stats(comparisons):
        members = [c for c in comparisons if c.measurement.id.rsplit("-", 1)[0] == row.series]
        used = [c.protocol or "-" for c in sorted(members, key=lambda c: c.measurement.bytes)
                if c.model_us >= c.floor_us]
        protocols = ", ".join(dict.fromkeys(used))
        floored = sum(c.model_us < c.floor_us for c in members)
        if floored:
            protocols = f"floor ×{floored}" + (f", {protocols}" if protocols else "")
        table.add_row(row.series, row.config, str(row.points), _pct(row.mean_abs_error), _pct(row.max_abs_error),
                      protocols, "yes" if row.targeted else "no (NVLink SHARP active)")
    console.print(table)
    for config, (floor_us, row_id) in harness_floors(rows).items():
        errors = [abs(c.error) for c in comparisons if c.config == config and c.targeted
                  and 2**20 <= c.measurement.bytes <= 2**30]
        worst_here = f"worst {_pct(max(errors))}" if errors else "no targeted rows"
        floor = f"per-call floor {floor_us:.2f} µs (fitted on {row_id})" if floor_us else \
            f"no per-call floor (the model is slower than {row_id}, the row it would be fitted on)"
        console.print(f"{config}: nccl-tests {floor}; {worst_here}")
    worst = worst_targeted_error(comparisons)
    met = worst is not None and worst <= COLLECTIVE_TARGET
    console.print(f"target: every collective from 1 MiB to 1 GiB within {COLLECTIVE_TARGET:.0%}: worst "
                  f"{'n/a' if worst is None else _pct(worst)}: {'met' if met else 'NOT met'}")
    return 0 if met else 1


def add_validate(subparsers) -> None:
    parser = subparsers.add_parser("validate", help="compare the model with SCALE-Sim v3 (scalesim) or with published "
                                                    "GPU measurements (hardware)")
    parser.add_argument("simulator", choices=("scalesim", "hardware", "collectives"),
                        help="scalesim: the systolic rules against SCALE-Sim; hardware: GEMM times and 2:4 speedups "
                             "against published A100/H100 measurements; collectives: the collective model against "
                             "published nccl-tests tables")
    parser.add_argument("--set", help="hardware / collectives: measurement CSV (default "
                        "validation/gpu_gemm_measurements.csv / validation/nccl_measurements.csv)")
    parser.add_argument("--vector-set", help="hardware: vector-kernel CSV (default validation/gpu_vector_measurements.csv)")
    parser.add_argument("--write-summary", action="store_true",
                        help="hardware: rewrite amber_sim/validate/hardware_summary.json, the errors reports quote")
    parser.add_argument("--reference", help="reference CSV (default validation/scalesim_reference.csv)")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--live", action="store_true", help="run SCALE-Sim now (its own venv, minutes)")
    parser.add_argument("--regenerate", action="store_true", help="run SCALE-Sim and rewrite the reference CSV")
    parser.set_defaults(handler=cmd_validate)


def cmd_eval(args: argparse.Namespace) -> int:
    import itertools

    from rich.progress import Progress
    from rich.table import Table

    from amber_sim.atomic import check_output_dir
    from amber_sim.models.corpus import load_split, token_windows
    from amber_sim.models.loading import load_model
    from amber_sim.pruning.apply import PRECISIONS, AmberConfig
    from amber_sim.pruning.evaluate import dense_reference, evaluate
    from amber_sim.pruning.names import CALIBRATION_METRICS
    from amber_sim.pruning.policy import Calibrator, needs_calibration

    patterns = _split_list(args.patterns)
    criteria = _split_list(args.criteria)
    mitigations = _split_list(args.mitigations)
    policies = _split_list(args.policy)
    precisions = _split_list(args.precision)
    for precision in precisions:
        if precision not in PRECISIONS:
            raise InputError("--precision", None, f"expected {' or '.join(PRECISIONS)}, got {precision!r}")
    metrics = _split_list(args.calibration_metric)
    for metric in metrics:
        if metric not in CALIBRATION_METRICS:
            raise InputError("--calibration-metric", None, f"expected {' or '.join(CALIBRATION_METRICS)}, got {metric!r}")
    for name, value in (("--windows", args.windows), ("--seq-len", args.seq_len),
                        ("--calibration-tokens", args.calibration_tokens)):
        if value < 1:
            raise InputError(name, None, f"expected a positive count, got {value}")
    # the calibrated policy gives one row per calibration metric
    policy_variants = [(policy, metric) for policy in policies
                       for metric in (metrics if policy == "calibrated" else [""])]
    out_dir = check_output_dir(args.out or default_eval_dir(args.model))
    for pattern, criterion, mitigation, policy, precision in itertools.product(patterns, criteria, mitigations,
                                                                               policies, precisions):
        if pattern.strip().lower() == "dense" and precision == "fp16":
            continue  # the dense fp16 model is the reference every row is compared with
        AmberConfig(pattern=pattern, criterion=criterion, mitigation=mitigation, policy=policy, precision=precision,
                    skip_layers=() if policy == "calibrated" else None).validated()  # fail before loading anything
    if all(pattern.strip().lower() == "dense" for pattern in patterns) and precisions == ["fp16"]:
        raise InputError("--patterns", None, "nothing to evaluate: dense fp16 is the reference; add an N:M pattern "
                         "or --precision w8a8")
    console = _console()
    loaded = load_model(args.model, tokenizer=args.tokenizer)
    windows = token_windows(load_split("evaluation", loaded.tokenizer), args.seq_len, args.windows)
    # precision × the other axes; a dense pattern is one row per precision (w8a8 only: no mask, no policy)
    combos = []
    for precision, pattern, criterion, mitigation, variant in itertools.product(precisions, patterns, criteria,
                                                                                mitigations, policy_variants):
        if pattern.strip().lower() == "dense":
            combo = ("dense", "-", "-", ("-", ""), precision)
            if precision == "fp16" or combo in combos:
                continue
        else:
            combo = (pattern, criterion, mitigation, variant, precision)
        combos.append(combo)
    configs = [AmberConfig(pattern="dense", precision=precision, model_name=loaded.name) if pattern == "dense" else
               AmberConfig(pattern=pattern, criterion=criterion, policy=policy, mitigation=mitigation,
                           model_name=loaded.name, precision=precision)
               for pattern, criterion, mitigation, (policy, _metric), precision in combos]
    calibrator = None
    if any(needs_calibration(config) for config in configs):  # one calibration window, its statistics kept
        import torch

        calibrator = Calibrator(loaded.model, torch.as_tensor(token_windows(
            load_split("calibration", loaded.tokenizer), args.calibration_tokens, 1)))
    rows = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("dense reference", total=len(combos) + 1)
        dense, dense_argmax = dense_reference(loaded.model, windows)
        progress.advance(task)
        meta = {"model": loaded.name, "seq_len": args.seq_len, "windows": args.windows, "split": "evaluation",
                "calibration_tokens": args.calibration_tokens if calibrator is not None else None,
                "target_share": args.target_share, "dense_perplexity": dense.perplexity}
        for (pattern, criterion, mitigation, (policy, metric), precision), config in zip(combos, configs):
            label = f"{pattern} {criterion} {mitigation} {policy} {precision}" + (f" ({metric})" if metric else "")
            progress.update(task, description=label)

            def step(done: int, total: int, what: str, _label=label) -> None:
                progress.update(task, description=f"{_label}: {what} ({done}/{total})")

            stats = None
            if calibrator is not None and (pattern != "dense" and needs_calibration(config)):
                config, stats = calibrator.resolve(config, metric or "output-error", args.target_share, step)
            skip, skip_linears = config.skip_layers, config.skip_linears
            accuracy = evaluate(loaded.model, windows, config, dense_argmax, calibration=stats)
            rows.append({"pattern": pattern, "precision": precision, "criterion": criterion, "mitigation": mitigation, "policy": policy,
                         "calibration_metric": metric,
                         "skip_layers": " ".join(map(str, skip)) if skip is not None else "",
                         "skip_linears": " ".join(f"{layer}.{role}" for layer, role in skip_linears),
                         "perplexity": accuracy.perplexity, "perplexity_ratio": accuracy.perplexity / dense.perplexity,
                         "top1_agreement": accuracy.top1_agreement,
                         "sparsified_linear_flop_share": accuracy.sparsified_linear_flop_share})
            # after every combination: a long grid cut short keeps its rows
            _write_accuracy(out_dir, rows, {**meta, "complete": len(rows) == len(combos)})
            progress.advance(task)
    table = Table(title=f"{loaded.name}: {args.windows} evaluation window(s) of {args.seq_len} tokens; dense "
                        f"perplexity {dense.perplexity:.3f}", title_justify="left")
    left_columns = ("pattern", "precision", "criterion", "mitigation", "policy")
    for name in (*left_columns, "perplexity", "× dense", "top-1 agr.", "sparsified FLOPs"):
        table.add_column(name, justify="left" if name in left_columns else "right")
    for row in rows:
        policy_label = row["policy"] + (f" ({row['calibration_metric']})" if row["calibration_metric"] else "")
        table.add_row(row["pattern"], row["precision"], row["criterion"], row["mitigation"], policy_label, f"{row['perplexity']:.3f}",
                      f"{row['perplexity_ratio']:.3f}", f"{row['top1_agreement']:.3f}",
                      f"{row['sparsified_linear_flop_share']:.1%}")
    console.print(table)
    console.print(f"wrote {out_dir}/accuracy.csv and accuracy.json")
    return 0


def default_eval_dir(model: str) -> Path:
    """Where ``eval`` writes without ``--out``: reports/eval-<model>/ (the model's name, or its file's stem)."""
    from amber_sim.paths import REPORT_DIR

    return REPORT_DIR / f"eval-{Path(model).stem or 'model'}"


def _write_accuracy(out_dir: Path, rows: list[dict], meta: dict) -> None:
    """accuracy.csv and accuracy.json (``meta`` + rows), each written atomically."""
    import csv
    import io
    import json

    from amber_sim.atomic import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "accuracy.csv", buffer.getvalue())
    atomic_write_text(out_dir / "accuracy.json", json.dumps({**meta, "rows": rows}, indent=1) + "\n")


def add_eval(subparsers) -> None:
    from amber_sim.pruning.names import CRITERIA, MITIGATIONS, POLICIES

    parser = subparsers.add_parser("eval", help="perplexity and top-1 agreement of Amber-pruned models on BBC text")
    parser.add_argument("--model", default="smollm2-135m", help="smollm2-135m, a .gguf file or a local HF directory "
                        "(llama, mistral, qwen2 or qwen3)")
    parser.add_argument("--tokenizer", default=None, metavar="DIR",
                        help="a directory with the model's tokenizer files (tokenizer.json, tokenizer.model or "
                             "vocab.json + merges.txt), for a checkpoint directory that has none")
    parser.add_argument("--patterns", default="8:16,2:4", help="comma-separated")
    parser.add_argument("--criteria", default="amber", help="comma-separated: " + ", ".join(CRITERIA))
    parser.add_argument("--mitigations", default="none", help="comma-separated: " + ", ".join(MITIGATIONS)
                        + " (static-median-shift: one η per linear, measured on --calibration-tokens; learnable-*: "
                        "a per-channel output shift (and scale) per pruned linear, trained on them and cached; fp16 "
                        "only)")
    parser.add_argument("--policy", default="amber-paper", help="comma-separated: " + ", ".join(POLICIES))
    parser.add_argument("--precision", default="fp16",
                        help="comma-separated: fp16 (pruned activations only) or w8a8 (Outstanding-sparse: int8 "
                             "weights per output channel, int8 activations per token, inverse smoothing of the "
                             "pruned linears from --calibration-tokens of the calibration split); with w8a8 the "
                             "pattern 'dense' gives the unpruned int8 baseline")
    parser.add_argument("--target-share", type=float, default=0.55,
                        help="calibrated policy: keep at least this share of linear FLOPs sparsified")
    parser.add_argument("--calibration-metric", default="output-error",
                        help="calibrated policy, comma-separated (one row each): output-error (rank layers by the "
                             "relative output error of q/gate) or loss (per-linear calibration-loss reduction, exact "
                             "selection within the FLOP budget; 1 + 2·layers forwards)")
    parser.add_argument("--calibration-tokens", type=int, default=2048,
                        help="calibrated policy and w8a8 smoothing: tokens of the calibration split they measure "
                             "on (one window)")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--windows", type=int, default=1, help="evaluation windows of --seq-len tokens")
    parser.add_argument("--out", help="directory for accuracy.csv and accuracy.json (default reports/eval-<model>/)")
    parser.set_defaults(handler=cmd_eval)


def cmd_capture(args: argparse.Namespace) -> int:
    import dataclasses

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from amber_sim.atomic import check_output_file
    from amber_sim.capture.capture import CaptureSpec, capture_trace, check_spec, run_specs
    from amber_sim.trace import save_trace

    out = check_output_file(args.out)
    command = " ".join(["amber-sim", "capture", *sys.argv[2:]]) if len(sys.argv) > 2 else None
    spec = CaptureSpec(model=args.model, seq_len=args.seq_len, patterns=tuple(_split_list(args.patterns)),
                       precisions=tuple(_split_list(args.precision)), criterion=args.criterion, policy=args.policy,
                       mitigation=args.mitigation, init=args.init, target_share=args.target_share,
                       calibration_metric=args.calibration_metric, calibration_tokens=args.calibration_tokens,
                       seed=args.seed, tokenizer=args.tokenizer, command=command,
                       created=args.created)
    check_spec(spec)
    run_specs(spec)  # bad patterns or precisions fail before any model is loaded
    console = _console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("loading the model", total=None)

        def step(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=f"capture {what}")

        trace = capture_trace(spec, step)
    path = save_trace(trace, out)  # atomic: Ctrl-C before this line leaves no file
    trace = dataclasses.replace(trace, source_path=str(path))
    console.print(f"wrote {path}: {len(trace.runs)} runs of {len(trace.runs[0].ops)} ops, captured from "
                  f"{trace.model.name} ({trace.model.weights})")
    print_trace_summary(trace, console)
    return 0


def add_capture(subparsers) -> None:
    from amber_sim.pruning.names import CRITERIA, MITIGATIONS

    parser = subparsers.add_parser("capture", help="capture a trace from a real Amber-pruned prefill")
    parser.add_argument("--model", default="smollm2-135m",
                        help="smollm2-135m, a .gguf file or a local HF directory (llama, mistral, qwen2 or "
                             "qwen3); with --init random a bundled "
                             "architecture (llama-3.1-8b, llama-2-7b, qwen2-7b, smollm2-135m)")
    parser.add_argument("--tokenizer", default=None, metavar="DIR",
                        help="pretrained: a directory with the model's tokenizer files (tokenizer.json, "
                             "tokenizer.model or vocab.json + merges.txt), for a checkpoint directory that has none")
    parser.add_argument("--init", default="pretrained", help="pretrained (real weights, accuracy measured) or "
                        "random (random-init weights built one layer at a time, accuracy null)")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--patterns", default="dense,2:4,4:8,8:16,16:32,unstructured", help="comma-separated")
    parser.add_argument("--precision", default="fp16", help="comma-separated: fp16, w8a8")
    parser.add_argument("--criterion", default="amber", help="one of " + ", ".join(CRITERIA))
    parser.add_argument("--policy", default="amber-paper", help="all, amber-paper or calibrated")
    parser.add_argument("--target-share", type=float, default=0.55,
                        help="calibrated policy: keep at least this share of linear FLOPs sparsified")
    parser.add_argument("--calibration-metric", default="output-error",
                        help="calibrated policy: output-error (skip whole layers' q/gate by relative output error) "
                             "or loss (skip single q/gate linears by calibration-loss benefit); docs/pruning.md")
    parser.add_argument("--calibration-tokens", type=int, default=2048,
                        help="tokens of the BBC calibration split for the calibrated policy and W8A8 smoothing")
    parser.add_argument("--mitigation", default="none", help="one of " + ", ".join(MITIGATIONS))
    parser.add_argument("--seed", type=int, default=0, help="random-init weights and inputs")
    parser.add_argument("--created", default=None, help="timestamp to record (for reproducible files)")
    parser.add_argument("--out", required=True, help="output trace path (its directory must exist)")
    parser.set_defaults(handler=cmd_capture)


def cmd_accuracy_table(args: argparse.Namespace) -> int:
    """Print the Markdown table docs/accuracy.md quotes for one `amber-sim eval` output folder."""
    from amber_sim.report.accuracy_tables import joined_results, render

    print(render(joined_results(args.results), _split_list(args.columns)))
    return 0


def add_accuracy_table(subparsers) -> None:
    from amber_sim.report.accuracy_tables import COLUMNS

    parser = subparsers.add_parser("accuracy-table", help="an eval result folder as the Markdown table the docs quote")
    parser.add_argument("results", nargs="+", help="`amber-sim eval` output folders (their accuracy.json), "
                        "one table of their rows in order")
    parser.add_argument("--columns", default="pattern,policy,left_dense,share,perplexity,ratio,top1",
                        help="comma-separated: " + ", ".join(COLUMNS) + "; or grid (one column per policy), or by-mitigation (a line per mitigation, a column per pattern "
                        "and criterion)")
    parser.set_defaults(handler=cmd_accuracy_table)


from amber_sim.study.cli import add_study, add_sweep  # noqa: E402  (sweeps and studies, docs/studies.md)
from amber_sim.validate.measure_gpu import add_measure  # noqa: E402  (amber-sim measure gpu, docs/validation.md)

SUBCOMMANDS: list[Callable] = [add_inspect, add_explain, add_synth, add_validate, add_eval, add_accuracy_table,
                               add_capture, add_sweep, add_study, add_measure]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amber-sim",
        description="Replay an Amber Pruner (N:M activation sparsity) prefill trace on a modelled sparse accelerator.",
        epilog="Bare names resolve to the bundled hw_configs/ and traces/ (e.g. --hw ascend_like.yaml --trace llama.json).",
    )
    parser.add_argument("--version", action="version", version=f"amber-sim {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--hw", help="hardware config YAML (path or bundled name)")
    parser.add_argument("--trace", help="trace JSON (path or bundled name)")
    parser.add_argument("--out", help="report directory (default reports/<trace>-<hw>/)")
    parser.add_argument("--patterns", help="comma-separated patterns to report (default: all runs in the trace)")
    parser.add_argument("--run", help="run whose slowest layers are detailed (default: the fastest sparse run)")
    parser.add_argument("--top", type=int, default=5, help="slowest layers to list (default 5)")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel chips (Megatron-style; needs the config's "
                        "system section; default 1)")
    parser.add_argument("--sp", action="store_true", help="with --tp: sequence parallelism (reduce-scatter + "
                        "all-gather; compressed all-gathers when the system says so)")
    parser.set_defaults(handler=cmd_report)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except InputError as error:
        if debug:
            raise
        print(f"amber-sim: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if debug:
            raise
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemError as error:  # Ctrl-C inside a Numba kernel surfaces as a SystemError caused by it
        if debug or not isinstance(error.__cause__ or error.__context__, KeyboardInterrupt):
            raise
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
