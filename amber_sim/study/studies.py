"""The co-design and bottleneck studies: rows, report.md, CSV and plots (docs/studies.md)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from amber_sim.atomic import atomic_write_text
from amber_sim.hw.config import HardwareConfig
from amber_sim.study import plots
from amber_sim.study.cost import hardware_cost
from amber_sim.study.evaluate import CATEGORIES, build_plan, evaluate_point
from amber_sim.study.pareto import pareto_front
from amber_sim.trace import Trace


@dataclass(frozen=True)
class StudyOutput:
    out_dir: Path
    files: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]


def _evaluate(trace: Trace, configs: Sequence[HardwareConfig]) -> list[dict[str, Any]]:
    plan = build_plan(trace)
    rows = []
    for hw in configs:
        for row in evaluate_point(hw, plan):
            rows.append({"hw_name": hw.name, **row})
    return rows


def _write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if row.get(key) is None else (f"{row[key]:.6g}" if isinstance(row[key], float)
                                                                 else row[key])) for key in columns})
    atomic_write_text(path, buffer.getvalue())


def _check_names(configs: Sequence[HardwareConfig]) -> None:
    from amber_sim.errors import InputError

    names = [hw.name for hw in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError("--hw", None, f"two configs share the name {duplicates[0]!r}; names label the points")


def _header(title: str, trace: Trace, configs: Sequence[HardwareConfig], command: str | None) -> list[str]:
    capture = trace.capture
    origin = "SYNTHETIC (masks assumed, no accuracy)" if trace.is_synthetic else "captured (masks and accuracy measured)"
    lines = [f"# {title}", "", f"- trace: `{Path(trace.source_path or '?').name}`: {trace.model.name}, "
             f"{capture.tokens} tokens, {origin}"]
    if capture.rescaled_from_seq_len:
        lines.append(f"- RESCALED from seq_len {capture.rescaled_from_seq_len} (docs/studies.md)")
    lines.append(f"- hardware: {', '.join(f'`{hw.name}`' for hw in configs)}")
    if command:
        lines.append(f"- regenerate: `{command}`")
    lines.append("- every number is defined in docs/studies.md and docs/metrics.md")
    return lines + [""]


# ---------------------------------------------------------------- co-design

CODESIGN_COLUMNS = ("hw_name", "run_id", "pattern", "precision", "perplexity", "top1_agreement",
                    "end_to_end_speedup", "linear_speedup", "prefill_ms", "cost_mm2", "sparse_mm2", "area_source",
                    "speedup_per_cost", "pareto")


def codesign_rows(trace: Trace, configs: Sequence[HardwareConfig]) -> list[dict[str, Any]]:
    """One row per hardware × run with cost and the Pareto flag (perplexity ↓, speedup ↑, cost ↓).

    Runs without measured perplexity are ranked on speedup and cost alone."""
    _check_names(configs)
    costs = {hw.name: hardware_cost(hw) for hw in configs}
    rows = _evaluate(trace, configs)
    for row in rows:
        cost = costs[row["hw_name"]]
        row["cost_mm2"] = cost.total_mm2
        row["sparse_mm2"] = cost.sparse_mm2
        row["area_source"] = cost.area_source
        row["speedup_per_cost"] = row["end_to_end_speedup"] / cost.total_mm2
    have_ppl = all(row["perplexity"] is not None for row in rows)
    objectives = [((row["perplexity"],) if have_ppl else ()) + (-row["end_to_end_speedup"], row["cost_mm2"])
                  for row in rows]
    for row, on_front in zip(rows, pareto_front(objectives)):
        row["pareto"] = on_front
    return rows


def write_codesign(trace: Trace, configs: Sequence[HardwareConfig], out_dir: Path,
                   command: str | None = None) -> StudyOutput:
    rows = codesign_rows(trace, configs)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{trace.model.name} on {len(configs)} hardware configs"
    plots.plot_pareto(rows, out_dir / "pareto.png", title)
    plots.plot_speedup_cost(rows, out_dir / "speedup_cost.png", title)
    _write_csv(rows, CODESIGN_COLUMNS, out_dir / "codesign.csv")
    have_ppl = all(row["perplexity"] is not None for row in rows)
    lines = _header("Co-design study: accuracy × speedup × hardware cost", trace, configs, command)
    if not have_ppl:
        lines += ["The trace has no measured accuracy: the Pareto front is over speedup and cost only.", ""]
    lines += ["## Hardware cost", "", "| hardware | cost mm² | of which sparse datapath mm² | area from |", "|---|---:|---:|---|"]
    for hw in configs:
        cost = hardware_cost(hw)
        lines.append(f"| {hw.name} | {cost.total_mm2:.1f} | {cost.sparse_mm2:.2f} | {cost.area_source} |")
    lines += ["", "## Points (Pareto-optimal first)", "",
              "| hardware | run | perplexity | top-1 agr. | e2e speedup | linear speedup | cost mm² | speedup per 100 mm² | Pareto |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in sorted(rows, key=lambda r: (not r["pareto"], -r["end_to_end_speedup"], r["hw_name"], r["run_id"])):
        ppl = "n/a" if row["perplexity"] is None else f"{row['perplexity']:.2f}"
        top1 = "n/a" if row["top1_agreement"] is None else f"{row['top1_agreement']:.3f}"
        lines.append(f"| {row['hw_name']} | {row['run_id']} | {ppl} | {top1} | {row['end_to_end_speedup']:.3f} | "
                     f"{row['linear_speedup']:.3f} | {row['cost_mm2']:.1f} | {100 * row['speedup_per_cost']:.3f} | "
                     f"{'yes' if row['pareto'] else ''} |")
    lines += ["", "## Plots", "", "![Pareto](pareto.png)", "", "![Speedup vs cost](speedup_cost.png)", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(lines))
    return StudyOutput(out_dir, ("report.md", "codesign.csv", "pareto.png", "speedup_cost.png"), tuple(rows))


# ---------------------------------------------------------------- bottleneck

BOTTLENECK_COLUMNS = ("hw_name", "run_id", "pattern", "precision", "prefill_ms", "end_to_end_speedup",
                      *(f"{name}_ms" for name in CATEGORIES), *(f"{name}_share" for name in CATEGORIES),
                      *(f"speedup_if_free_{name}" for name in CATEGORIES), "largest")

_ADVICE = {
    "compute": "more MAC throughput (or a higher native sparsity ratio) is what would shorten it",
    "memory": "more DRAM bandwidth or less traffic (compressed I/O, larger on-chip buffers) is what would shorten it",
    "sparsifier": "a faster or fused sparsifier is what would shorten it",
    "vector": "a wider vector unit (norms, softmax, SiLU) is what would shorten it",
}


def bottleneck_rows(trace: Trace, configs: Sequence[HardwareConfig]) -> list[dict[str, Any]]:
    """Per hardware × run: time per category (ms), its share, and the speedup if that category were free."""
    _check_names(configs)
    clocks = {hw.name: hw.clock_ghz for hw in configs}
    rows = _evaluate(trace, configs)
    for row in rows:
        cycles = row["prefill_cycles"]
        for name in CATEGORIES:
            part = row[f"{name}_cycles"]
            row[f"{name}_ms"] = part / (clocks[row["hw_name"]] * 1e6)
            row[f"{name}_share"] = part / cycles if cycles else 0.0
            rest = cycles - part
            row[f"speedup_if_free_{name}"] = row["baseline_cycles"] / rest if rest else float("inf")
        row["largest"] = max(CATEGORIES, key=lambda name: (row[f"{name}_cycles"], name))
    return rows


def write_bottleneck(trace: Trace, configs: Sequence[HardwareConfig], out_dir: Path,
                     command: str | None = None) -> StudyOutput:
    rows = bottleneck_rows(trace, configs)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.plot_bottleneck(rows, out_dir / "bottleneck.png", f"{trace.model.name}: where the prefill time goes")
    _write_csv(rows, BOTTLENECK_COLUMNS, out_dir / "bottleneck.csv")
    lines = _header("Bottleneck study: where the time goes per pattern", trace, configs, command)
    lines += ["| hardware | run | prefill ms | e2e speedup | compute | memory | sparsifier | vector | largest | "
              "speedup if largest were free |", "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for row in rows:
        shares = " | ".join(f"{100 * row[f'{name}_share']:.1f}%" for name in CATEGORIES)
        lines.append(f"| {row['hw_name']} | {row['run_id']} | {row['prefill_ms']:.3f} | "
                     f"{row['end_to_end_speedup']:.3f} | {shares} | {row['largest']} | "
                     f"{row[f'speedup_if_free_' + row['largest']]:.2f} |")
    lines += ["", "## What must improve next for sparsity to pay", ""]
    for hw in configs:
        sparse = [row for row in rows if row["hw_name"] == hw.name and row["pattern"] != "dense"]
        if not sparse:
            continue
        best = max(sparse, key=lambda row: (row["end_to_end_speedup"], row["run_id"]))
        largest = best["largest"]
        lines.append(f"- **{hw.name}**: the fastest sparse run, {best['run_id']}, reaches "
                     f"{best['end_to_end_speedup']:.2f}× end to end; {100 * best[f'{largest}_share']:.0f}% of its "
                     f"time is {largest}: {_ADVICE[largest]}. Sparsifier time is "
                     f"{100 * best['sparsifier_share']:.1f}% of the prefill.")
    lines += ["", "![time per category](bottleneck.png)", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(lines))
    return StudyOutput(out_dir, ("report.md", "bottleneck.csv", "bottleneck.png"), tuple(rows))
