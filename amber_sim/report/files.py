"""Report files: report.json (everything), ops.csv (one row per op per run), report.md with PNG plots.

Every file is written atomically and its content is deterministic (no timestamps, sorted keys,
fixed float formatting), so a rerun on the same inputs gives identical bytes.

The per-op values are read once per op (``op_rows``) and shared by report.json and ops.csv. report.json
is indented with sorted keys, except each run's op table, which is one compact JSON array per op (in
the order of the top-level ``op_columns``); docs/metrics.md describes the layout.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import operator
from pathlib import Path
from typing import TYPE_CHECKING

from amber_sim import __version__
from amber_sim.atomic import atomic_write_text
from amber_sim.hw.config import hardware_to_dict
from amber_sim.report.metrics import RunRow, baseline_phrase, choose_run, layer_rows, mitigation_phrase, run_rows
from amber_sim.sim.engine import OpResult, RunResult, TraceResult
from amber_sim.validate.hardware import load_summary, silicon_note

if TYPE_CHECKING:
    from amber_sim.report.plots import PlotWorker

OPS_CSV_COLUMNS = (
    "run_id", "name", "layer", "role", "kind", "mode", "data_pattern", "hw_pattern", "mapping", "cycles",
    "compute_cycles", "load_cycles", "store_cycles", "latency_cycles", "kernel_overhead_cycles",
    "sparsifier_cycles", "blocks", "waves",
    "tail_blocks", "activation_bytes", "weight_bytes", "output_bytes", "other_bytes", "sparsifier_bytes", "dram_bytes",
    "l2_bytes",
    "useful_macs", "issued_macs", "compute_utilization", "bound", "energy_pj", "rule",
)

_JSON_DECIMALS = 6       # report.json rounds floats to 6 decimal places
_CSV_FLOAT_FORMAT = ".6g"  # ops.csv writes floats with 6 significant digits


def _clean(value):
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, _JSON_DECIMALS)
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def op_columns() -> tuple[str, ...]:
    """report.json's per-op columns: the ops.csv columns less ``run_id``, then every other field of OpResult."""
    columns = OPS_CSV_COLUMNS[1:]
    return columns + tuple(field.name for field in dataclasses.fields(OpResult) if field.name not in columns)


def op_rows(run: RunResult, columns: tuple[str, ...]) -> list[list]:
    """One list of raw values per op, in ``columns`` order (``compute_utilization`` = ideal cycles / cycles)."""
    utilization = columns.index("compute_utilization") if "compute_utilization" in columns else None
    names = tuple("ideal_cycles" if index == utilization else name for index, name in enumerate(columns))
    get = operator.attrgetter(*names)
    rows = []
    for op in run.ops:
        row = list(get(op))
        if utilization is not None:
            row[utilization] = row[utilization] / op.cycles if op.cycles else 0.0
        rows.append(row)
    return rows


def _json_row(row: list) -> list:
    # round(x, 6) leaves an integral float as it is, and is_integer() is 5x cheaper: test that first
    return [value if not isinstance(value, float) or value.is_integer()
            else (round(value, _JSON_DECIMALS) if math.isfinite(value) else None) for value in row]


def _silicon_validation(config_name: str) -> dict:
    """How far this hardware class's model was from published measurements (docs/validation.md)."""
    summary = load_summary()
    found = (summary or {}).get("configs", {}).get(config_name)
    return {"note": silicon_note(config_name, summary), "errors": found,
            "model_version": summary.get("model_version") if summary else None}


def report_dict(result: TraceResult, chosen_run_id: str | None = None, *, rows: list[RunRow] | None = None,
                ops: list[list[list]] | None = None) -> dict:
    """Everything, as report.json holds it. ``rows`` (run_rows) and ``ops`` (op_rows per run, in
    ``op_columns()`` order) are computed when not given."""
    trace, hw = result.trace, result.hardware
    chosen = choose_run(result, chosen_run_id)
    rows = run_rows(result) if rows is None else rows
    columns = op_columns()
    if ops is None:
        ops = [op_rows(run, columns) for run in result.runs]
    report = _clean({
        "amber_sim_version": __version__,
        "hardware": hardware_to_dict(hw),
        "trace": {"path": Path(trace.source_path or "").name, "model": dataclasses.asdict(trace.model),
                  "capture": dataclasses.asdict(trace.capture), "synthetic": trace.is_synthetic},
        "op_columns": list(columns),
        "runs": [
            {**dataclasses.asdict(row), "totals": dataclasses.asdict(run.totals), "baseline_totals": dataclasses.asdict(run.baseline_totals)}
            for row, run in zip(rows, result.runs)
        ],
        "chosen_run": chosen.run.id,
        "layers_of_chosen_run": [dataclasses.asdict(row) for row in layer_rows(chosen)],
        "silicon_validation": _silicon_validation(hw.name),
    })
    for run, run_ops in zip(report["runs"], ops):
        run["ops"] = [_json_row(row) for row in run_ops]
    return report


_OPS_MARK = "\x00ops:"  # placeholder for a run's op table while the rest is indented (no real string holds NUL)


def report_json(report: dict) -> str:
    """report.json's text: indent 1 and sorted keys, except that each run's ``ops`` is one compact array per
    line. ``json.loads(report_json(report)) == report``."""
    marked = {**report, "runs": [{**run, "ops": f"{_OPS_MARK}{index}"} for index, run in enumerate(report["runs"])]}
    text = json.dumps(marked, indent=1, sort_keys=True)
    encode = json.JSONEncoder(separators=(",", ":")).encode  # the C encoder (no indent): fast
    pieces, position = [], 0
    for index, run in enumerate(report["runs"]):
        mark = json.dumps(f"{_OPS_MARK}{index}")
        start = text.index(mark, position)
        line_start = text.rindex("\n", 0, start) + 1
        indent = " " * (len(text[line_start:start]) - len(text[line_start:start].lstrip(" ")))
        pieces.append(text[position:start])
        if run["ops"]:
            pieces.append("[\n" + ",\n".join(f"{indent} {encode(row)}" for row in run["ops"]) + f"\n{indent}]")
        else:
            pieces.append("[]")
        position = start + len(mark)
    pieces.append(text[position:])
    return "".join(pieces) + "\n"


def ops_csv(result: TraceResult, ops: list[list[list]] | None = None) -> str:
    """One row per op per run; ``ops`` as in ``report_dict`` (computed when not given)."""
    columns = op_columns()
    if ops is None:
        ops = [op_rows(run, columns) for run in result.runs]
    width = len(OPS_CSV_COLUMNS) - 1  # op_columns() starts with the ops.csv columns less run_id
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OPS_CSV_COLUMNS)
    for run, run_ops in zip(result.runs, ops):
        run_id = run.run.id
        writer.writerows([run_id] + ["" if value is None else
                                     (format(value, _CSV_FLOAT_FORMAT) if isinstance(value, float) else value)
                                     for value in row[:width]]
                         for row in run_ops)
    return buffer.getvalue()


def _fmt(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _negative_io_note(run: RunResult, row: RunRow) -> str | None:
    """Why a run's activation or total DRAM traffic grew against its baseline, in bytes (None when neither did).

    Activation bytes are the linears' A-operand reads plus the sparsifier's traffic (docs/metrics.md); a
    baseline is dense, so its activation bytes are reads only."""
    if min(row.activation_io_savings, row.io_savings) >= 0:
        return None
    sparsifier = sum(op.sparsifier_bytes for op in run.ops)
    reads_saved = run.baseline_totals.activation_bytes - (run.totals.activation_bytes - sparsifier)
    rest = run.totals.dram_bytes - run.baseline_totals.dram_bytes - (sparsifier - reads_saved)
    change = f"save {reads_saved / 1e9:.3f} GB" if reads_saved >= 0 else f"grow by {-reads_saved / 1e9:.3f} GB"
    return (f"- `{row.run_id}`: activation DRAM traffic saved {row.activation_io_savings:.1%}, all DRAM "
            f"traffic {row.io_savings:.1%}: its activation reads (compressed values and index metadata, times the re-reads "
            f"of the GEMM mappings it picks; ops.csv `activation_bytes`, `mapping`) {change}, its sparsifier's "
            f"traffic (selection writes and own passes) adds {sparsifier / 1e9:.3f} GB, and the rest of its traffic "
            f"(weights, outputs, vector ops) changes by {rest / 1e9:+.3f} GB.")


def report_markdown(result: TraceResult, plots: dict[str, str], chosen_run_id: str | None = None, *,
                    rows: list[RunRow] | None = None) -> str:
    trace, hw = result.trace, result.hardware
    chosen = choose_run(result, chosen_run_id)
    rows = run_rows(result) if rows is None else rows
    lines = [f"# amber-sim report: {Path(trace.source_path or 'trace').name} on {hw.name}", ""]
    if trace.is_synthetic:
        lines += ["> **Synthetic trace**: shapes from the model config, masks *assumed* (density = N/M), no accuracy "
                  "measured. Replace it with a captured trace for real numbers.", ""]
    elif trace.model.weights == "random-init":
        lines += ["> **Random-init weights**: the masks are real (computed by the kernels on this model's "
                  "activations) but the weights are random, so accuracy is not reported.", ""]
    lines += [
        f"Model **{trace.model.name}** ({trace.model.family}, weights {trace.model.weights}), "
        f"{trace.capture.tokens} prefill tokens. Hardware **{hw.name}**: {hw.cores} cores, "
        f"{hw.compute.fp16_macs_per_cycle} fp16 MACs/cycle/core at {hw.clock_ghz} GHz, DRAM "
        f"{hw.memory.dram.bandwidth_gb_s:g} GB/s, native patterns {list(hw.sparsity.patterns) or 'none'}.",
        "",
        f"Definitions: docs/metrics.md. Speedups and I/O savings are against each run's baseline (column "
        f"`baseline`): {baseline_phrase(rows)}, on the same hardware.",
        "",
        silicon_note(hw.name, load_summary()),
        "",
        f"Mitigation of the sparse runs: {mitigation_phrase(rows)}; `mitigation share` is the share of each run's "
        f"prefill its mitigation costs (docs/metrics.md).",
        "",
        "| run | baseline | prefill ms | linear speedup | end-to-end speedup | compute util. | DRAM GB | "
        "act. DRAM traffic saved | I/O saved | sparsified linear FLOPs | mitigation share | perplexity | "
        "top-1 agr. | bound |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.run_id} | {row.baseline} | {row.prefill_ms:.3f} | {row.linear_speedup:.3f}× | "
            f"{row.end_to_end_speedup:.3f}× | {row.compute_utilization:.1%} | {row.dram_bytes / 1e9:.3f} | "
            f"{row.activation_io_savings:.1%} | {row.io_savings:.1%} | {row.sparsified_linear_flop_share:.1%} | "
            f"{row.mitigation_share:.1%} | {_fmt(row.perplexity, '.3f')} | {_fmt(row.top1_agreement, '.3f')} | {row.dominant_bound} |")
    notes = [note for note in map(_negative_io_note, result.runs, rows) if note]
    if notes:
        lines += ["", "Where an I/O saving is negative (more bytes than the baseline moves), why:", "", *notes]
    if any(row.link_bytes for row in rows):
        lines += ["", "Interconnect, per chip (tensor parallelism; docs/metrics.md):", "",
                  "| run | collective share | link GB sent | link bytes saved |", "|---|---:|---:|---:|"]
        lines += [f"| {row.run_id} | {row.collective_share:.1%} | {row.link_bytes / 1e9:.3f} | {row.link_savings:.1%} |"
                  for row in rows]
    lines += ["", f"## Slowest layers of `{chosen.run.id}`", "",
              "| layer | cycles | share | slowest op | its cycles | its bound |", "|---:|---:|---:|---|---:|---|"]
    for row in layer_rows(chosen)[:10]:
        lines.append(f"| {row.layer} | {row.cycles} | {row.share:.1%} | {row.slowest_op} | {row.slowest_op_cycles} | {row.bound} |")
    lines.append("")
    for title, filename in plots.items():
        lines += [f"## {title}", "", f"![{title}]({filename})", ""]
    return "\n".join(lines)


def write_report(result: TraceResult, out_dir: Path, chosen_run_id: str | None = None, *,
                 plotter: PlotWorker | None = None, fork_plots: bool = True,
                 rows: list[RunRow] | None = None) -> list[Path]:
    """Write report.json, ops.csv, the plots and report.md into ``out_dir`` (created if missing).

    The plots are drawn by ``plotter`` (the main job's, forked before the simulation), else by a
    PlotWorker started here (a forked child where the platform has fork and ``fork_plots``), while this
    process writes report.json and ops.csv; this returns once every file is written. On an error or
    Ctrl-C the child is interrupted and waited for: each file is complete or absent.
    """
    from amber_sim.report.plots import PlotWorker, plot_data

    chosen_run = choose_run(result, chosen_run_id)  # a bad --run fails here, before anything is drawn
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = run_rows(result) if rows is None else rows
    own_plotter = plotter is None
    if own_plotter:
        plotter = PlotWorker(fork=fork_plots)
    try:
        plotter.submit(plot_data(result, chosen_run.run.id, rows), out_dir)
        ops = [op_rows(run, op_columns()) for run in result.runs]
        written = [
            atomic_write_text(out_dir / "report.json",
                              report_json(report_dict(result, chosen_run_id, rows=rows, ops=ops))),
            atomic_write_text(out_dir / "ops.csv", ops_csv(result, ops)),
        ]
        plots = plotter.wait()
    except BaseException:
        plotter.cancel()
        raise
    if own_plotter:
        plotter.close()
    written += [out_dir / name for name in plots.values()]
    written.append(atomic_write_text(out_dir / "report.md", report_markdown(result, plots, chosen_run_id, rows=rows)))
    return written
