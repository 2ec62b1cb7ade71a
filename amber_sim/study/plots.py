"""PNG plots of sweeps and studies (matplotlib Agg, deterministic metadata, atomic writes)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from amber_sim.report.plots import _pyplot, _save
from amber_sim.sim.metrics import CATEGORIES

CATEGORY_COLORS = {"compute": "#1f77b4", "memory": "#ff7f0e", "sparsifier": "#d62728", "vector": "#2ca02c"}


def run_label(row: dict[str, Any]) -> str:
    return f"{row['pattern']} {row['precision']}"


def _axis_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(str(item) for item in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)


def plot_speedup_lines(rows: list[dict[str, Any]], axis: str, axis_values: Sequence[Any],
                       fixed: dict[str, Any], path: Path, title: str) -> None:
    """End-to-end speedup vs one axis, one line per sparse run; other axes held at ``fixed``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    numeric = _is_numeric(axis_values)
    positions = {_axis_text(value): (value if numeric else index) for index, value in enumerate(axis_values)}
    by_run: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        point = row["point"]
        if row["pattern"] == "dense" or any(point.get(key) != value for key, value in fixed.items()):
            continue
        by_run.setdefault(row["run_id"], []).append((positions[_axis_text(point[axis])], row["end_to_end_speedup"]))
    for run_id, title in run_titles(rows):
        if run_id in by_run:
            xs, ys = zip(*sorted(by_run[run_id]))
            ax.plot(xs, ys, marker="o", markersize=3, label=title)
    ax.axhline(1.0, color="black", linewidth=0.8)
    if numeric:
        if min(axis_values) > 0 and max(axis_values) / min(axis_values) >= 8:
            ax.set_xscale("log", base=2)
    else:
        ax.set_xticks(list(positions.values()))
        ax.set_xticklabels(list(positions), rotation=20, ha="right", fontsize=7)
    ax.set_xlabel(axis)
    ax.set_ylabel("end-to-end speedup vs dense (×)")
    held = ", ".join(f"{key}={_axis_text(value)}" for key, value in fixed.items())
    ax.set_title(title + (f"\n(held: {held})" if held else ""), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
    plt.close(fig)


def run_titles(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(run id, title) for every sparse run, in title order: one line or panel each, none merged.

    Dense runs are not drawn (their speedup is 1.0 everywhere by definition). The title is the run's pattern
    and precision, or its id when two sparse runs share those."""
    labels = {row["run_id"]: run_label(row) for row in rows if row["pattern"] != "dense"}
    shared = {label for label in labels.values() if list(labels.values()).count(label) > 1}
    titled = [(run_id, run_id if label in shared else label) for run_id, label in labels.items()]
    return sorted(titled, key=lambda item: (item[1], item[0]))


def _panel_grid(panels: int) -> tuple[int, int]:
    """(lines, columns) of a near-square grid with room for every panel."""
    columns = max(1, math.ceil(math.sqrt(panels)))
    return -(-panels // columns), columns


def heatmap_figure(rows: list[dict[str, Any]], x_axis: str, x_values: Sequence[Any], y_axis: str,
                   y_values: Sequence[Any], fixed: dict[str, Any], title: str):
    """The heatmap figure (None without sparse runs): end-to-end speedup over two axes, one panel per sparse run."""
    plt = _pyplot()
    import numpy as np

    panels = run_titles(rows)
    if not panels:
        return None
    lines, columns = _panel_grid(len(panels))
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.4 * lines), squeeze=False)
    x_index = {_axis_text(value): i for i, value in enumerate(x_values)}
    y_index = {_axis_text(value): i for i, value in enumerate(y_values)}
    for panel, (run_id, label) in enumerate(panels):
        grid = np.full((len(y_values), len(x_values)), np.nan)
        for row in rows:
            point = row["point"]
            if row["run_id"] != run_id or any(point.get(key) != value for key, value in fixed.items()):
                continue
            grid[y_index[_axis_text(point[y_axis])], x_index[_axis_text(point[x_axis])]] = row["end_to_end_speedup"]
        ax = axes[panel // columns][panel % columns]
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="white")
        ax.set_xticks(range(len(x_values)))
        ax.set_xticklabels([_axis_text(v) for v in x_values], rotation=30, ha="right", fontsize=6)
        ax.set_yticks(range(len(y_values)))
        ax.set_yticklabels([_axis_text(v) for v in y_values], fontsize=6)
        ax.set_xlabel(x_axis, fontsize=7)
        ax.set_ylabel(y_axis, fontsize=7)
        ax.set_title(label, fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.8)
    for panel in range(len(panels), lines * columns):
        axes[panel // columns][panel % columns].axis("off")
    held = ", ".join(f"{key}={_axis_text(value)}" for key, value in fixed.items())
    fig.suptitle(title + " (end-to-end speedup)" + (f"; held: {held}" if held else ""), fontsize=9)
    fig.tight_layout()
    return fig


def plot_heatmaps(rows: list[dict[str, Any]], x_axis: str, x_values: Sequence[Any], y_axis: str,
                  y_values: Sequence[Any], fixed: dict[str, Any], path: Path, title: str) -> None:
    """Write heatmap_figure to ``path`` (nothing without sparse runs)."""
    fig = heatmap_figure(rows, x_axis, x_values, y_axis, y_values, fixed, title)
    if fig is None:
        return
    _save(fig, path)
    _pyplot().close(fig)


def plot_sweep_roofline(rows: list[dict[str, Any]], rooflines: dict[str, tuple[float, float]], path: Path,
                        title: str) -> None:
    """Whole-prefill operating points (useful FLOP per DRAM byte, useful TFLOP/s) over the rooflines.

    ``rooflines``: {config hash: (peak fp16 FLOP/s, DRAM bytes/s)}; at most 6 distinct ones are drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    intensities = [10 ** (i / 10) for i in range(-10, 41)]
    distinct = sorted(set(rooflines.values()))
    shown = distinct if len(distinct) <= 6 else [distinct[0], distinct[len(distinct) // 2], distinct[-1]]
    for peak, bandwidth in shown:
        ax.plot(intensities, [min(peak, bandwidth * x) / 1e12 for x in intensities], color="gray", linewidth=0.8)
    by_run: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if not row["dram_bytes"] or not row["prefill_ms"]:
            continue
        flop = 2.0 * row["useful_macs"]
        by_run.setdefault(run_label(row), []).append((flop / row["dram_bytes"], flop / (row["prefill_ms"] * 1e-3) / 1e12))
    for label in sorted(by_run):
        points = by_run[label]
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=10, alpha=0.6, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity of the prefill (useful FLOP per DRAM byte)")
    ax.set_ylabel("achieved useful TFLOP/s")
    ax.set_title(title + f" ({len(shown)} of {len(distinct)} rooflines drawn, gray)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
    plt.close(fig)


def plot_pareto(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Perplexity vs end-to-end speedup, colour = cost (mm²); Pareto points ringed and labelled."""
    plt = _pyplot()
    with_ppl = [row for row in rows if row.get("perplexity") is not None]
    fig, ax = plt.subplots(figsize=(8, 5))
    if with_ppl:
        x = [row["perplexity"] for row in with_ppl]
    else:  # no measured accuracy: speedup vs cost only
        x = [row["cost_mm2"] for row in rows]
        with_ppl = rows
    scatter = ax.scatter(x, [row["end_to_end_speedup"] for row in with_ppl],
                         c=[row["cost_mm2"] for row in with_ppl], cmap="plasma", s=30)
    fig.colorbar(scatter, ax=ax, label="relative hardware cost (mm²)")
    for row, x_value in zip(with_ppl, x):
        if row["pareto"]:
            ax.scatter([x_value], [row["end_to_end_speedup"]], s=120, facecolors="none", edgecolors="black")
            ax.annotate(f"{row['pattern']} @ {row['hw_name']}", (x_value, row["end_to_end_speedup"]), fontsize=6,
                        xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("perplexity (lower is better)" if rows and rows[0].get("perplexity") is not None
                  else "relative hardware cost (mm²)")
    ax.set_ylabel("end-to-end prefill speedup vs dense (×)")
    ax.set_title(title + "; ringed: Pareto-optimal (perplexity ↓, speedup ↑, cost ↓)", fontsize=9)
    _save(fig, path)
    plt.close(fig)


def plot_speedup_cost(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for hw_name in sorted({row["hw_name"] for row in rows}):
        mine = [row for row in rows if row["hw_name"] == hw_name]
        ax.scatter([row["cost_mm2"] for row in mine], [row["end_to_end_speedup"] for row in mine], label=hw_name, s=20)
        for row in mine:
            ax.annotate(row["pattern"], (row["cost_mm2"], row["end_to_end_speedup"]), fontsize=6, xytext=(3, 2),
                        textcoords="offset points")
    ax.set_xlabel("relative hardware cost (mm²)")
    ax.set_ylabel("end-to-end prefill speedup vs dense (×)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)


def plot_bottleneck(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Stacked bars: prefill time (ms) per category, one bar per hardware × run."""
    plt = _pyplot()
    labels = [f"{row['hw_name']}\n{run_label(row)}" for row in rows]
    fig, ax = plt.subplots(figsize=(max(7, 0.55 * len(rows)), 4.8))
    bottoms = [0.0] * len(rows)
    for category in CATEGORIES:
        heights = [row[f"{category}_ms"] for row in rows]
        ax.bar(range(len(rows)), heights, bottom=bottoms, label=category, color=CATEGORY_COLORS[category])
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("prefill time (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)
