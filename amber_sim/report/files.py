"""Report files: report.json (everything), ops.csv (one row per op per run), report.md with PNG plots.

Every file is written atomically and its content is deterministic (no timestamps, sorted keys,
fixed float formatting), so a rerun on the same inputs gives identical bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path

from amber_sim import __version__
from amber_sim.atomic import atomic_write_text
from amber_sim.hw.config import hardware_to_dict
from amber_sim.report.metrics import baseline_phrase, choose_run, layer_rows, run_rows
from amber_sim.sim.engine import OpResult, TraceResult

OPS_CSV_COLUMNS = (
    "run_id", "name", "layer", "role", "kind", "mode", "data_pattern", "hw_pattern", "mapping", "cycles",
    "compute_cycles", "load_cycles", "store_cycles", "latency_cycles", "sparsifier_cycles", "blocks", "waves",
    "tail_blocks", "activation_bytes", "weight_bytes", "output_bytes", "other_bytes", "dram_bytes", "l2_bytes",
    "useful_macs", "issued_macs", "compute_utilization", "bound", "energy_pj", "rule",
)


def _clean(value):
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def _op_dict(op: OpResult) -> dict:
    data = dataclasses.asdict(op)
    data["dram_bytes"] = op.dram_bytes
    data["compute_utilization"] = op.ideal_cycles / op.cycles if op.cycles else 0.0
    return data


def report_dict(result: TraceResult, chosen_run_id: str | None = None) -> dict:
    trace, hw = result.trace, result.hardware
    chosen = choose_run(result, chosen_run_id)
    return _clean({
        "amber_sim_version": __version__,
        "hardware": hardware_to_dict(hw),
        "trace": {"path": Path(trace.source_path or "").name, "model": dataclasses.asdict(trace.model),
                  "capture": dataclasses.asdict(trace.capture), "synthetic": trace.is_synthetic},
        "runs": [
            {**dataclasses.asdict(row), "totals": dataclasses.asdict(run.totals), "dense": dataclasses.asdict(run.dense),
             "ops": [_op_dict(op) for op in run.ops]}
            for row, run in zip(run_rows(result), result.runs)
        ],
        "chosen_run": chosen.run.id,
        "layers_of_chosen_run": [dataclasses.asdict(row) for row in layer_rows(chosen)],
    })


def ops_csv(result: TraceResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OPS_CSV_COLUMNS)
    for run in result.runs:
        for op in run.ops:
            data = _op_dict(op)
            data["run_id"] = run.run.id
            writer.writerow(["" if data[column] is None else
                             (f"{data[column]:.6g}" if isinstance(data[column], float) else data[column])
                             for column in OPS_CSV_COLUMNS])
    return buffer.getvalue()


def _fmt(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def report_markdown(result: TraceResult, plots: dict[str, str], chosen_run_id: str | None = None) -> str:
    trace, hw = result.trace, result.hardware
    chosen = choose_run(result, chosen_run_id)
    rows = run_rows(result)
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
        "| run | baseline | prefill ms | linear speedup | end-to-end speedup | compute util. | DRAM GB | act. I/O saved | "
        "I/O saved | sparsified linear FLOPs | perplexity | top-1 agr. | bound |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.run_id} | {row.baseline} | {row.prefill_ms:.3f} | {row.linear_speedup:.3f}× | "
            f"{row.end_to_end_speedup:.3f}× | {row.compute_utilization:.1%} | {row.dram_bytes / 1e9:.3f} | "
            f"{row.activation_io_savings:.1%} | {row.io_savings:.1%} | {row.sparsified_linear_flop_share:.1%} | "
            f"{_fmt(row.perplexity, '.3f')} | {_fmt(row.top1_agreement, '.3f')} | {row.dominant_bound} |")
    lines += ["", f"## Slowest layers of `{chosen.run.id}`", "",
              "| layer | cycles | share | slowest op | its cycles | its bound |", "|---:|---:|---:|---|---:|---|"]
    for row in layer_rows(chosen)[:10]:
        lines.append(f"| {row.layer} | {row.cycles} | {row.share:.1%} | {row.slowest_op} | {row.slowest_op_cycles} | {row.bound} |")
    lines.append("")
    for title, filename in plots.items():
        lines += [f"## {title}", "", f"![{title}]({filename})", ""]
    return "\n".join(lines)


def write_report(result: TraceResult, out_dir: Path, chosen_run_id: str | None = None) -> list[Path]:
    """Write report.json, ops.csv, the plots and report.md into ``out_dir`` (created if missing)."""
    from amber_sim.report.plots import write_plots

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        atomic_write_text(out_dir / "report.json",
                          json.dumps(report_dict(result, chosen_run_id), indent=1, sort_keys=True) + "\n"),
        atomic_write_text(out_dir / "ops.csv", ops_csv(result)),
    ]
    plots = write_plots(result, out_dir, chosen_run_id)
    written += [out_dir / name for name in plots.values()]
    written.append(atomic_write_text(out_dir / "report.md", report_markdown(result, plots, chosen_run_id)))
    return written
