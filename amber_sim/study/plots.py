"""PNG plots of sweeps and studies (matplotlib Agg, deterministic metadata, atomic writes).

Each plot has a builder that returns its Figure (``speedup_lines_figure``, ``heatmap_figure``,
``sweep_roofline_figure``, ``pareto_figure``, ``speedup_cost_figure``: what tests inspect) and a ``plot_*``
that saves it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from amber_sim.report.plots import _pyplot, _save
from amber_sim.sim.metrics import CATEGORIES

CATEGORY_COLORS = {"compute": "#1f77b4", "memory": "#ff7f0e", "sparsifier": "#d62728", "vector": "#2ca02c",
                   "collective": "#9467bd"}


def run_label(row: dict[str, Any]) -> str:
    return f"{row['pattern']} {row['precision']}"


def _axis_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(str(item) for item in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)


def _run_colors(count: int) -> list:
    """Distinct colours for ``count`` lines or point sets (tab10, or tab20 beyond 10)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(index % cmap.N) for index in range(count)]


_MAX_VALUE_TICKS = 12


def _value_ticks(ax, values: Sequence[float]) -> None:
    """x ticks at the axis values themselves (at most 12 of them), written as the values, also on a log axis."""
    from matplotlib.ticker import NullLocator

    values = sorted(values)
    if min(values) > 0 and max(values) / min(values) >= 8:
        ax.set_xscale("log", base=2)
    shown = values[::math.ceil(len(values) / _MAX_VALUE_TICKS)]
    ax.set_xticks(shown)
    ax.set_xticklabels([_axis_text(value) for value in shown])
    ax.xaxis.set_minor_locator(NullLocator())


def _category_offsets(count: int, width: float = 0.6) -> list[float]:
    """Horizontal offsets that set ``count`` point sets side by side within one category slot."""
    if count <= 1:
        return [0.0] * count
    return [-width / 2 + width * index / (count - 1) for index in range(count)]


def _held_text(fixed: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_axis_text(value)}" for key, value in fixed.items())


def speedup_lines_figure(rows: list[dict[str, Any]], axis: str, axis_values: Sequence[Any],
                         fixed: dict[str, Any], title: str):
    """End-to-end speedup vs one axis, one series per sparse run; other axes held at ``fixed``. A numeric
    axis draws lines (ticks at the axis values, log-spaced when they span 8× or more); a categorical one
    draws unjoined points, the runs side by side within each category."""
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
    drawn = [(run_id, run_title) for run_id, run_title in run_titles(rows) if run_id in by_run]
    for (run_id, run_title), color, offset in zip(drawn, _run_colors(len(drawn)), _category_offsets(len(drawn))):
        xs, ys = zip(*sorted(by_run[run_id]))
        if numeric:
            ax.plot(xs, ys, marker="o", markersize=3, color=color, label=run_title)
        else:
            ax.plot([x + offset for x in xs], ys, marker="o", markersize=4, linestyle="none", color=color,
                    label=run_title)
    ax.axhline(1.0, color="black", linewidth=0.8)
    if numeric:
        _value_ticks(ax, axis_values)
    else:
        ax.set_xticks(list(positions.values()))
        ax.set_xticklabels(list(positions), rotation=20, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(positions) - 0.4)
        for boundary in range(1, len(positions)):
            ax.axvline(boundary - 0.5, color="#dddddd", linewidth=0.8)
    ax.set_xlabel(axis)
    ax.set_ylabel("end-to-end speedup vs dense (×)")
    held = _held_text(fixed)
    ax.set_title(title + (f"\n(held: {held})" if held else ""), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: it hides no point
    return fig


def plot_speedup_lines(rows: list[dict[str, Any]], axis: str, axis_values: Sequence[Any],
                       fixed: dict[str, Any], path: Path, title: str) -> None:
    """Write speedup_lines_figure to ``path``."""
    fig = speedup_lines_figure(rows, axis, axis_values, fixed, title)
    _save(fig, path)
    _pyplot().close(fig)


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


def _speedup_grid(rows, run_id, x_axis, x_values, y_axis, y_values, fixed):
    """The run's end-to-end speedups over (y, x) (NaN where no row is)."""
    import numpy as np

    grid = np.full((len(y_values), len(x_values)), np.nan)
    x_index = {_axis_text(value): i for i, value in enumerate(x_values)}
    y_index = {_axis_text(value): i for i, value in enumerate(y_values)}
    for row in rows:
        point = row["point"]
        if row["run_id"] != run_id or any(point.get(key) != value for key, value in fixed.items()):
            continue
        grid[y_index[_axis_text(point[y_axis])], x_index[_axis_text(point[x_axis])]] = row["end_to_end_speedup"]
    return grid


def _shared_norm(grids):
    """One colour scale for every panel: from the smallest to the largest speedup drawn."""
    import numpy as np
    from matplotlib.colors import Normalize

    finite = np.concatenate([grid[np.isfinite(grid)] for grid in grids]) if grids else np.array([])
    if finite.size == 0:
        return Normalize(0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    return Normalize(low, high if high > low else low + 1e-9)


def heatmap_figure(rows: list[dict[str, Any]], x_axis: str, x_values: Sequence[Any], y_axis: str,
                   y_values: Sequence[Any], fixed: dict[str, Any], title: str):
    """The heatmap figure (None without sparse runs): end-to-end speedup over two axes, one panel per sparse
    run, every panel on one colour scale (one norm, one colour bar), each cell also written as a number."""
    plt = _pyplot()
    import numpy as np

    panels = run_titles(rows)
    if not panels:
        return None
    grids = [_speedup_grid(rows, run_id, x_axis, x_values, y_axis, y_values, fixed) for run_id, _ in panels]
    norm = _shared_norm(grids)
    cmap = plt.get_cmap("viridis")
    lines, columns = _panel_grid(len(panels))
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns + 0.8, 3.4 * lines), squeeze=False,
                             layout="constrained")
    image = None
    for panel, ((_, label), grid) in enumerate(zip(panels, grids)):
        ax = axes[panel // columns][panel % columns]
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, norm=norm)
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):  # dark text on the bright end of the scale
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if norm(value) > 0.6 else "white")
        ax.set_xticks(range(len(x_values)))
        ax.set_xticklabels([_axis_text(v) for v in x_values], rotation=30, ha="right", fontsize=6)
        ax.set_yticks(range(len(y_values)))
        ax.set_yticklabels([_axis_text(v) for v in y_values], fontsize=6)
        ax.set_xlabel(x_axis, fontsize=7)
        ax.set_ylabel(y_axis, fontsize=7)
        ax.set_title(label, fontsize=8)
    for panel in range(len(panels), lines * columns):
        axes[panel // columns][panel % columns].axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="end-to-end speedup vs dense (×), all panels")
    held = _held_text(fixed)
    fig.suptitle(title + " (end-to-end speedup)" + (f"; held: {held}" if held else ""), fontsize=9)
    return fig


def plot_heatmaps(rows: list[dict[str, Any]], x_axis: str, x_values: Sequence[Any], y_axis: str,
                  y_values: Sequence[Any], fixed: dict[str, Any], path: Path, title: str) -> None:
    """Write heatmap_figure to ``path`` (nothing without sparse runs)."""
    fig = heatmap_figure(rows, x_axis, x_values, y_axis, y_values, fixed, title)
    if fig is None:
        return
    _save(fig, path)
    _pyplot().close(fig)


PRECISION_MARKERS = {"fp16": "o", "w8a8": "s"}  # a run's precision -> its points' marker
ROOF_PRECISIONS = {"fp16": "fp16", "w8a8": "int8"}  # a run's precision -> the op precision of its linears' roof


def _roof_shades(count: int) -> list[str]:
    """Greys from dark to light, one per roof configuration."""
    return [str(round(0.15 + 0.5 * index / max(1, count - 1), 3)) for index in range(count)]


def sweep_roofline_figure(rows: list[dict[str, Any]], rooflines: dict[str, tuple[float, float, float]], title: str):
    """Whole-prefill operating points (useful FLOP per DRAM byte, useful TFLOP/s) over the rooflines.

    ``rooflines``: {config hash: (peak fp16 FLOP/s, peak int8 FLOP/s, DRAM bytes/s)}; at most 6 distinct ones are
    drawn (else the lowest, middle and highest). Each is drawn for every precision of the runs (the int8 roof
    for w8a8 runs, whose linears run in int8), in one grey per configuration, solid for fp16 and dashed for
    int8, and labelled with its precision, peak and bandwidth. Points: colour = pattern, marker = precision."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    intensities = [10 ** (i / 10) for i in range(-10, 41)]
    distinct = sorted(set(rooflines.values()))
    shown = distinct if len(distinct) <= 6 else [distinct[0], distinct[len(distinct) // 2], distinct[-1]]
    roof_precisions = sorted({ROOF_PRECISIONS.get(row["precision"], "fp16") for row in rows} or {"fp16"},
                             key=lambda name: (name != "fp16", name))
    roof_lines = []
    for (fp16, int8, bandwidth), shade in zip(shown, _roof_shades(len(shown))):
        for precision in roof_precisions:
            peak = int8 if precision == "int8" else fp16
            roof_lines += ax.plot(intensities, [min(peak, bandwidth * x) / 1e12 for x in intensities], color=shade,
                                  linewidth=1.0, linestyle="--" if precision == "int8" else "-",
                                  label=f"{precision} roof: {peak / 1e12:.0f} TFLOP/s, {bandwidth / 1e9:g} GB/s")
    by_run: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in rows:
        if not row["dram_bytes"] or not row["prefill_ms"]:
            continue
        flop = 2.0 * row["useful_macs"]
        by_run.setdefault((row["pattern"], row["precision"]), []).append(
            (flop / row["dram_bytes"], flop / (row["prefill_ms"] * 1e-3) / 1e12))
    patterns = sorted({pattern for pattern, _ in by_run})
    colors = dict(zip(patterns, _run_colors(len(patterns))))
    for pattern, precision in sorted(by_run):
        points = by_run[(pattern, precision)]
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=12, alpha=0.7, color=colors[pattern],
                   marker=PRECISION_MARKERS.get(precision, "D"), label=f"{pattern} {precision}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity of the prefill (useful FLOP per DRAM byte)")
    ax.set_ylabel("achieved useful TFLOP/s")
    ax.set_title(title + f" ({len(shown)} of {len(distinct)} hardware rooflines drawn)", fontsize=9)
    roofs_legend = ax.legend(handles=roof_lines, fontsize=6, loc="upper left", title="rooflines", title_fontsize=7)
    ax.add_artist(roofs_legend)
    ax.legend(handles=ax.collections, fontsize=7, ncol=2, loc="lower right")
    return fig


def plot_sweep_roofline(rows: list[dict[str, Any]], rooflines: dict[str, tuple[float, float, float]], path: Path,
                        title: str) -> None:
    """Write sweep_roofline_figure to ``path``."""
    fig = sweep_roofline_figure(rows, rooflines, title)
    _save(fig, path)
    _pyplot().close(fig)


_LABEL_OFFSETS = ((5, 5), (5, -13), (-13, 5), (-13, -13), (5, 16), (-13, 16), (5, -24), (-13, -24), (16, -4),
                  (-24, -4), (16, 16), (-24, 16), (16, -24), (-24, -24), (28, -4), (-36, -4))  # points


def _place_labels(ax, anchors: list[tuple[float, float]], texts: list[str]) -> list:
    """Annotate each anchor (data coordinates) with its text at the first offset whose box overlaps no label
    placed before it (the last offset when all do); returns the annotations."""
    renderer = ax.figure.canvas.get_renderer()
    placed, boxes = [], []
    for (x, y), text in zip(anchors, texts):
        for offset in _LABEL_OFFSETS:
            note = ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", fontsize=7,
                               fontweight="bold")
            box = note.get_window_extent(renderer).expanded(1.1, 1.1)
            if not any(box.overlaps(other) for other in boxes) or offset == _LABEL_OFFSETS[-1]:
                break
            note.remove()
        placed.append(note)
        boxes.append(box)
    return placed


def _pareto_names(front: list[dict[str, Any]], x_of) -> tuple[list[tuple[float, float]], list[str], list[str]]:
    """Numbers for the Pareto points: (anchors, their numbers, key lines). Points drawn at the same place share
    one label ("1,2")."""
    by_place: dict[tuple[float, float], list[int]] = {}
    key = []
    for number, row in enumerate(front, start=1):
        by_place.setdefault((x_of(row), row["end_to_end_speedup"]), []).append(number)
        key.append(f"{number}: {row['run_id']} @ {row['hw_name']}")
    anchors = list(by_place)
    return anchors, [",".join(map(str, by_place[anchor])) for anchor in anchors], key


def pareto_figure(rows: list[dict[str, Any]], title: str):
    """Perplexity (or, without measured accuracy, cost) vs end-to-end speedup; colour = cost (mm²), marker =
    precision; Pareto points ringed and numbered, the numbers placed so that no two overlap, with a key
    below the plot."""
    plt = _pyplot()
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    with_ppl = [row for row in rows if row.get("perplexity") is not None]
    drawn, x_key = (with_ppl, "perplexity") if with_ppl else (rows, "cost_mm2")
    fig, ax = plt.subplots(figsize=(8, 5))
    costs = [row["cost_mm2"] for row in drawn]
    norm = Normalize(min(costs, default=0.0), max(costs, default=1.0))
    scatter = None
    for precision in sorted({row["precision"] for row in drawn}):
        mine = [row for row in drawn if row["precision"] == precision]
        scatter = ax.scatter([row[x_key] for row in mine], [row["end_to_end_speedup"] for row in mine],
                             c=[row["cost_mm2"] for row in mine], cmap="plasma", norm=norm, s=30,
                             marker=PRECISION_MARKERS.get(precision, "D"), label=f"{precision} runs")
    if scatter is not None:
        fig.colorbar(scatter, ax=ax, label="relative hardware cost (mm²)")
    front = sorted((row for row in drawn if row["pareto"]), key=lambda row: (row[x_key], -row["end_to_end_speedup"],
                                                                              row["hw_name"], row["run_id"]))
    ax.scatter([row[x_key] for row in front], [row["end_to_end_speedup"] for row in front], s=140,
               facecolors="none", edgecolors="black", label="Pareto-optimal")
    anchors, numbers, key = _pareto_names(front, lambda row: row[x_key])
    ax.margins(0.08)
    ax.autoscale_view()
    _place_labels(ax, anchors, numbers)
    ax.set_xlabel("perplexity (lower is better)" if x_key == "perplexity" else "relative hardware cost (mm²)")
    ax.set_ylabel("end-to-end prefill speedup vs the dense run\nof the same precision (×)")
    objectives = ("perplexity ↓, " if x_key == "perplexity" else "") + "speedup ↑, cost ↓"
    ax.set_title(f"{title}; ringed: Pareto-optimal ({objectives})", fontsize=9)
    ax.add_artist(ax.legend(fontsize=7, loc="lower right"))
    blank = [Line2D([], [], linestyle="none") for _ in key]
    ax.legend(blank, key, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=2 if len(key) > 6 else 1,
              fontsize=7, handlelength=0, handletextpad=0, title="Pareto-optimal points", title_fontsize=7)
    return fig


def plot_pareto(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Write pareto_figure to ``path``."""
    fig = pareto_figure(rows, title)
    _save(fig, path)
    _pyplot().close(fig)


def _precision_order(precisions) -> list[str]:
    return sorted(set(precisions), key=lambda name: (name != "fp16", name))


def _hardware_ticks(ax, rows: list[dict[str, Any]]) -> None:
    """Name the hardware at its cost along the top of the axes (configs of equal cost share a tick)."""
    names: dict[float, list[str]] = {}
    for row in rows:
        if row["hw_name"] not in names.setdefault(row["cost_mm2"], []):
            names[row["cost_mm2"]].append(row["hw_name"])
    top = ax.secondary_xaxis("top")
    top.set_xticks(sorted(names))
    top.set_xticklabels([" / ".join(names[cost]) for cost in sorted(names)], rotation=60, ha="left", fontsize=7)


def speedup_cost_figure(rows: list[dict[str, Any]], title: str):
    """End-to-end speedup vs hardware cost, one panel per precision (each run's speedup is against the dense
    run of its own precision); colour = run (its pattern, or its id when two runs of a precision share it);
    the hardware is named along the top. No text at the points, so nothing overlaps."""
    plt = _pyplot()
    precisions = _precision_order(row["precision"] for row in rows) or ["fp16"]
    fig, axes = plt.subplots(1, len(precisions), figsize=(5.5 * len(precisions) + 1.5, 5.2), squeeze=False,
                             sharex=True, layout="constrained")
    labels = {row["run_id"]: _run_in_precision(row, rows) for row in rows}
    ordered = sorted(set(labels.values()))
    colors = dict(zip(ordered, _run_colors(len(ordered))))
    for ax, precision in zip(axes[0], precisions):
        mine = [row for row in rows if row["precision"] == precision]
        for label in sorted({labels[row["run_id"]] for row in mine}):
            points = [row for row in mine if labels[row["run_id"]] == label]
            ax.scatter([row["cost_mm2"] for row in points], [row["end_to_end_speedup"] for row in points], s=25,
                       color=colors[label], label=label, alpha=0.85)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("relative hardware cost (mm²)")
        ax.set_ylabel(f"end-to-end prefill speedup vs dense {precision} (×)")
        ax.set_title(f"{precision} runs", fontsize=9)
        _hardware_ticks(ax, mine)
    handles = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    axes[0][-1].legend([handles[label] for label in ordered], ordered, fontsize=7, loc="upper left",
                       bbox_to_anchor=(1.02, 1.0), title="run", title_fontsize=7)
    fig.suptitle(title + ": speedup per precision, each against the dense run of that precision", fontsize=9)
    return fig


def _run_in_precision(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The run's pattern, or its id when another run of the same precision has the same pattern."""
    shared = {other["run_id"] for other in rows
              if other["precision"] == row["precision"] and other["pattern"] == row["pattern"]}
    return row["run_id"] if len(shared) > 1 else row["pattern"]


def plot_speedup_cost(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Write speedup_cost_figure to ``path``."""
    fig = speedup_cost_figure(rows, title)
    _save(fig, path)
    _pyplot().close(fig)


def plot_bottleneck(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Stacked bars: prefill time (ms) per category, one bar per hardware × run."""
    plt = _pyplot()
    labels = [f"{row['hw_name']}\n{run_label(row)}" for row in rows]
    fig, ax = plt.subplots(figsize=(max(7, 0.55 * len(rows)), 4.8))
    bottoms = [0.0] * len(rows)
    for category in CATEGORIES:
        heights = [row[f"{category}_ms"] for row in rows]
        if not any(heights):  # e.g. collectives on single chips: no empty legend entry
            continue
        ax.bar(range(len(rows)), heights, bottom=bottoms, label=category, color=CATEGORY_COLORS[category])
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("prefill time (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)
