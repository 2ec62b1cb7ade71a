"""A finished sweep's files: results.csv, plots chosen for its axes, sweep.json and report.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from amber_sim.atomic import atomic_write_text
from amber_sim.hw.config import HardwareConfig
from amber_sim.sim.compute import peak_macs_per_cycle
from amber_sim.study import plots
from amber_sim.study.axes import Axis
from amber_sim.study.store import write_csv


def _reference(axis_path: str, values: Sequence[Any], base: HardwareConfig | None) -> Any:
    """The value other plots hold this axis at: the base config's, when the axis contains it, else the first;
    ``sp`` is held at true when the axis has it (compressed all-gathers and overlap act only with it)."""
    if axis_path == "sp" and True in values:
        return True
    if base is not None and axis_path != "seq_len":
        node: Any = base
        for key in axis_path.split("."):
            node = getattr(node, key, None)
        node = list(node) if isinstance(node, tuple) else node
        if node in values:
            return node
    return values[0]


def _peak_flop_per_s(hw: HardwareConfig, int8: bool) -> float:
    """The chip's dense peak at this precision (the simulator's peak_macs_per_cycle)."""
    return 2.0 * peak_macs_per_cycle(hw, int8) * hw.clock_ghz * 1e9


MULTICHIP_ROWS = 48


def _multichip_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The interconnect numbers of the points that split the prefill over chips (axis tp > 1), if any."""
    split = [row for row in rows if (row.get("tp") or 1) > 1]
    if not split:
        return []
    lines = ["## Multi-chip points (one chip's numbers, collectives included)", "",
             "| run | point | prefill ms | e2e speedup | collective share | link GB per chip | link savings |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in split[:MULTICHIP_ROWS]:
        point = ", ".join(f"{key}={plots._axis_text(value)}" for key, value in row["point"].items())
        lines.append(f"| {row['run_id']} | {point} | {row['prefill_ms']:.3f} | {row['end_to_end_speedup']:.3f} | "
                     f"{100 * row['collective_share']:.1f}% | {row['link_bytes'] / 1e9:.3f} | "
                     f"{100 * row['link_savings']:.1f}% |")
    if len(split) > MULTICHIP_ROWS:
        lines.append(f"| … {len(split) - MULTICHIP_ROWS} more rows in results.csv | | | | | | |")
    return lines + [""]


def write_sweep_report(rows: list[dict[str, Any]], axes: Sequence[Axis], seq_lens: Sequence[int],
                       base: HardwareConfig, configs: dict[str, HardwareConfig], out_dir: Path,
                       trace_name: str, command: str | None) -> list[str]:
    """Write the files; return their names."""
    dims: list[tuple[str, list[Any]]] = [(axis.path, list(axis.values)) for axis in axes]
    if len(seq_lens) > 0:
        dims.append(("seq_len", list(seq_lens)))
    dims = [(path, values) for path, values in dims if len(values) > 1] or dims
    reference = {path: _reference(path, values, base) for path, values in dims}
    axis_paths = [axis.path for axis in axes] + (["seq_len"] if seq_lens else [])
    written = [write_csv(rows, axis_paths, out_dir / "results.csv").name]
    title = f"{trace_name} on {base.name}"
    figures: list[tuple[str, str]] = []
    for path, values in dims:
        fixed = {other: reference[other] for other, _ in dims if other != path}
        name = f"speedup_vs_{path.replace('.', '_')}.png"
        plots.plot_speedup_lines(rows, path, values, fixed, out_dir / name, title)
        figures.append((f"Speedup vs {path}", name))
    if len(dims) >= 2:
        (x_path, x_values), (y_path, y_values) = dims[0], dims[1]
        fixed = {other: reference[other] for other, _ in dims[2:]}
        plots.plot_heatmaps(rows, x_path, x_values, y_path, y_values, fixed, out_dir / "heatmap.png", title)
        figures.append((f"{x_path} × {y_path}", "heatmap.png"))
    rooflines = {c_hash: (_peak_flop_per_s(hw, int8=False), _peak_flop_per_s(hw, int8=True),
                          hw.memory.dram.bandwidth_gb_s * 1e9) for c_hash, hw in configs.items()}
    plots.plot_sweep_roofline(rows, rooflines, out_dir / "roofline.png", title)
    figures.append(("Roofline with the sweep's operating points", "roofline.png"))
    written += [name for _, name in figures]
    meta = {"trace": trace_name, "base": base.name, "axes": {axis.path: list(axis.values) for axis in axes},
            "seq_lens": list(seq_lens), "points": len({(r["trace_hash"], r["config_hash"]) for r in rows}),
            "rows": len(rows), "command": command}
    atomic_write_text(out_dir / "sweep.json", json.dumps(meta, indent=1, default=str) + "\n")
    written.append("sweep.json")
    best = sorted((row for row in rows if row["pattern"] != "dense"),
                  key=lambda row: (-row["end_to_end_speedup"], row["run_id"]))[:10]
    lines = [f"# Sweep: {title}", "", f"- points: {meta['points']} hardware × sequence-length points, "
             f"{len(rows)} rows (one per run)", *(f"- axis `{path}`: {', '.join(map(str, values))}" for path, values in
                                                 [(a.path, a.values) for a in axes])]
    if seq_lens:
        lines.append(f"- sequence lengths: {', '.join(map(str, seq_lens))} (rescaled traces, docs/studies.md)")
    if command:
        lines.append(f"- regenerate: `{command}`")
    lines += ["- table: `results.sqlite` (and `results.csv`); metrics defined in docs/metrics.md and docs/studies.md",
              "", "## Fastest sparse points", "", "| run | point | e2e speedup | linear speedup | prefill ms | bound |",
              "|---|---|---:|---:|---:|---|"]
    for row in best:
        point = ", ".join(f"{key}={plots._axis_text(value)}" for key, value in row["point"].items())
        lines.append(f"| {row['run_id']} | {point} | {row['end_to_end_speedup']:.3f} | {row['linear_speedup']:.3f} | "
                     f"{row['prefill_ms']:.3f} | {row['dominant_bound']} |")
    lines.append("")
    lines += _multichip_lines(rows)
    for caption, name in figures:
        lines += [f"## {caption}", "", f"![{caption}]({name})", ""]
    atomic_write_text(out_dir / "report.md", "\n".join(lines))
    written.append("report.md")
    return written
