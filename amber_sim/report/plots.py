"""PNG plots of a report (matplotlib's Agg canvas, deterministic metadata).

The numbers a plot shows are gathered first (``plot_data``: a small picklable ``PlotData``), then
drawn (``draw_plots``). The main job draws in a child process (``PlotWorker``) forked before the
simulation: the child imports matplotlib (about 0.25 s) while the parent loads and simulates, then
draws while the parent writes report.json and ops.csv. This module imports neither matplotlib nor
the simulator at import time, so the forked child stays lean.

Each plot has a fixed number of artists whatever the op count: bars per run, one collection per
role for the stacked layer bars, one scatter per run and op precision for the roofline. The margins are fixed or
measured from the tick labels (``bbox_inches="tight"`` would lay the figure out twice), legends
have fixed places (``loc="best"`` costs 0.2 s on the layer plot), and log axes have no minor ticks
and plain-text 10ⁿ labels (no mathtext parsing). Each plot has a builder that returns its Figure
(``speedup_io_figure``, ``layers_figure``, ``roofline_figure``: what tests inspect) and a ``plot_*`` that
saves it.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import signal
import sys
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from amber_sim.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from amber_sim.hw.config import HardwareConfig
    from amber_sim.report.metrics import RunRow
    from amber_sim.sim.engine import RunResult, TraceResult

DPI = 100

# One colour per op role, the same in every report whatever roles a run has (tab20, and tab20b's #6b6ecf for
# Qwen3's qk_norm, with the roles listed in docs/trace-format.md); a role not listed gets one of the spare colours, chosen from its name.
ROLE_COLORS = {
    "embedding": "#c7c7c7", "rmsnorm": "#7f7f7f", "q": "#1f77b4", "k": "#aec7e8", "v": "#17becf",
    "qk_norm": "#6b6ecf", "rope": "#dbdb8d", "attn_score": "#9467bd", "attn_softmax": "#c5b0d5", "attn_value": "#8c564b",
    "o": "#9edae5", "residual": "#c49c94", "gate": "#2ca02c", "up": "#98df8a", "silu_mul": "#bcbd22",
    "down": "#d62728", "mitigation": "#e377c2", "lm_head": "#ff7f0e",
}
ROLE_ORDER = tuple(ROLE_COLORS)  # stacking and legend order: roughly the order a decoder layer runs them
SPARE_ROLE_COLORS = ("#ffbb78", "#ff9896", "#f7b6d2", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")

# The roof of each op precision and the ops drawn under it share a colour (roofline.png).
PRECISION_COLORS = {"fp16": "#1f77b4", "int8": "#ff7f0e"}
NOT_NATIVE_HATCH = "///"


def role_color(role: str) -> str:
    """The colour of ``role`` in the layer plot: fixed for known roles, a spare colour chosen by its name's
    CRC-32 (the same in every process, unlike ``hash``) for others."""
    if role in ROLE_COLORS:
        return ROLE_COLORS[role]
    return SPARE_ROLE_COLORS[zlib.crc32(role.encode()) % len(SPARE_ROLE_COLORS)]


def role_order(roles) -> list[str]:
    """Known roles in ROLE_ORDER, then any others by name."""
    known = [role for role in ROLE_ORDER if role in roles]
    return known + sorted(set(roles) - set(ROLE_ORDER))


# ---------------------------------------------------------------- what the plots show

@dataclass(frozen=True)
class RunBars:
    run_id: str
    linear_speedup: float
    end_to_end_speedup: float
    activation_io_savings: float
    io_savings: float
    not_native_modes: tuple[str, ...] = ()  # how pruned ops run when the hardware cannot run them natively

    @property
    def not_native(self) -> bool:
        return bool(self.not_native_modes)


@dataclass(frozen=True)
class RooflineSeries:
    run_id: str
    precision: str                               # of the ops ("fp16", "int8"), whose roof bounds them
    marker: str
    points: tuple[tuple[float, float], ...]  # (useful FLOP per DRAM byte, achieved useful TFLOP/s) per GEMM op


@dataclass(frozen=True)
class Roof:
    precisions: tuple[str, ...]  # op precisions with this peak (fp16 and int8 share one where the rates are equal)
    peak_tflops: float           # whole chip


@dataclass(frozen=True)
class PlotData:
    """Everything the three plots draw (a few kB, whatever the op count)."""
    title: str                                        # "<trace file> on <hardware>"
    runs: tuple[RunBars, ...]
    chosen_run: str                                   # the run whose layers and ops are drawn
    layers: tuple[tuple[int, dict[str, int]], ...]    # (layer, cycles by op role), by layer
    clock_ghz: float
    roofs: tuple[Roof, ...]                           # one per peak of the op precisions in ``roofline``
    bandwidth_gb_s: float
    roofline: tuple[RooflineSeries, ...]              # the dense run of the chosen run's precision, then the chosen run


def not_native_modes(result: RunResult) -> tuple[str, ...]:
    """The modes other than ``native`` of the run's pruned GEMMs (docs/model.md §4): empty for a dense run and
    for a run whose pattern the hardware runs natively."""
    return tuple(sorted({op.mode for op in result.ops if op.data_pattern != "dense" and op.mode != "native"}))


def roofline_series(result: RunResult, marker: str, seconds_per_cycle: float) -> list[RooflineSeries]:
    """The run's GEMM ops as roofline points, one series per op precision."""
    precision = {op.name: op.precision for op in result.run.ops}  # the trace's ops: results carry no precision
    by_precision: dict[str, list[tuple[float, float]]] = {}
    for op in result.ops:
        if op.useful_macs > 0 and op.dram_bytes > 0 and op.cycles > 0:
            flop = 2 * op.useful_macs
            by_precision.setdefault(precision[op.name], []).append(
                (flop / op.dram_bytes, flop / (op.cycles * seconds_per_cycle) / 1e12))
    return [RooflineSeries(result.run.id, name, marker, tuple(points)) for name, points in sorted(by_precision.items())]


def roofs(hw: HardwareConfig, precisions) -> tuple[Roof, ...]:
    """The roof of each op precision (the simulator's peak_macs_per_cycle), precisions of equal peak merged."""
    from amber_sim.sim.compute import peak_macs_per_cycle

    by_peak: dict[float, list[str]] = {}
    for precision in sorted(precisions, key=lambda name: (name != "fp16", name)):
        peak = 2 * peak_macs_per_cycle(hw, precision == "int8") * hw.clock_ghz * 1e9 / 1e12
        by_peak.setdefault(peak, []).append(precision)
    return tuple(Roof(tuple(names), peak) for peak, names in sorted(by_peak.items()))


def plot_data(result: TraceResult, chosen_run_id: str | None = None, rows: list[RunRow] | None = None) -> PlotData:
    from amber_sim.report.metrics import choose_run, layer_rows, run_rows

    hw = result.hardware
    chosen = choose_run(result, chosen_run_id)
    rows = run_rows(result) if rows is None else rows
    dense = next((r for r in result.runs if r.run.pattern == "dense" and r.run.precision == chosen.run.precision), None)
    series = []
    for subject, marker in ((dense, "o"), (chosen, "^")):
        if subject is not None:
            series += roofline_series(subject, marker, 1 / (hw.clock_ghz * 1e9))
    modes = {run.run.id: not_native_modes(run) for run in result.runs}
    return PlotData(
        title=f"{Path(result.trace.source_path or '').name} on {hw.name}",
        runs=tuple(RunBars(row.run_id, row.linear_speedup, row.end_to_end_speedup, row.activation_io_savings,
                           row.io_savings, modes.get(row.run_id, ())) for row in rows),
        chosen_run=chosen.run.id,
        layers=tuple((row.layer, dict(row.cycles_by_role))
                     for row in sorted(layer_rows(chosen), key=lambda row: row.layer)),
        clock_ghz=hw.clock_ghz,
        roofs=roofs(hw, {item.precision for item in series} or {"fp16"}),
        bandwidth_gb_s=hw.memory.dram.bandwidth_gb_s,
        roofline=tuple(series),
    )


def plot_titles(data: PlotData) -> dict[str, str]:
    """{title: file name} of the plots, in report order."""
    return {"Speedup and I/O savings per run": "speedup_io.png", f"Time per layer ({data.chosen_run})": "layers.png",
            "Roofline with ops as points": "roofline.png"}


# ---------------------------------------------------------------- drawing

def _figure(width: float, height: float):
    """A figure on an explicit Agg canvas (no pyplot, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _margins(fig, left: float, right: float, bottom: float, top: float, hspace: float | None = None) -> None:
    """Margins in inches (fixed whatever the figure size)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        hspace=hspace)


def _save_png(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


# pyplot and a tight-bbox save, for the study plots (amber_sim/study/plots.py), which lay out their
# figures this way; the report's own plots above use neither.

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


def _run_tick_label(run: RunBars) -> str:
    label = run.run_id.replace("/", "\n", 1)
    return label + f"\n(not native: {', '.join(run.not_native_modes)})" if run.not_native else label


def _hatch_not_native(bars, runs: tuple[RunBars, ...]) -> None:
    for bar, run in zip(bars, runs):
        if run.not_native:
            bar.set_hatch(NOT_NATIVE_HATCH)
            bar.set_edgecolor("white")


def _not_native_legend_entry(ax) -> None:
    """A legend entry for the hatching, added to the axes' own entries."""
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="#bbbbbb", edgecolor="white", hatch=NOT_NATIVE_HATCH))
    labels.append("hatched: pattern not native on this hardware")
    ax.legend(handles, labels, loc="upper right", fontsize=8)


def speedup_io_figure(data: PlotData):
    """Speedups (top) and DRAM bytes saved (bottom) per run; runs whose pruned ops the hardware cannot run
    natively are hatched and their tick label says how they run instead."""
    runs = data.runs
    x = list(range(len(runs)))
    fig = _figure(max(7, 0.9 * len(runs)), 7)
    top, bottom = fig.subplots(2, 1, sharex=True)
    width = 0.4
    left_x, right_x = [i - width / 2 for i in x], [i + width / 2 for i in x]
    for ax, (left, right), scale in ((top, ("linear ops", "end to end"), 1),
                                     (bottom, ("activation DRAM traffic", "all DRAM traffic"), 100)):
        values = ((run.linear_speedup, run.end_to_end_speedup) if ax is top
                  else (run.activation_io_savings, run.io_savings) for run in runs)
        lefts, rights = zip(*values) if runs else ((), ())
        _hatch_not_native(ax.bar(left_x, [scale * v for v in lefts], width, label=left), runs)
        _hatch_not_native(ax.bar(right_x, [scale * v for v in rights], width, label=right), runs)
    top.axhline(1.0, color="black", linewidth=0.8)
    top.set_ylabel("speedup vs baseline (×)")
    top.set_title(data.title)
    bottom.axhline(0.0, color="black", linewidth=0.8)
    negative = any(min(run.activation_io_savings, run.io_savings) < 0 for run in runs)
    bottom.set_ylabel("DRAM bytes saved vs baseline (%)" + ("\n(why negative: report.md)" if negative else ""))
    for ax in (top, bottom):
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.3 * (high - low))  # headroom: the legend sits above the bars
        if any(run.not_native for run in runs):
            _not_native_legend_entry(ax)
        else:
            ax.legend(loc="upper right", fontsize=8)
    bottom.set_xticks(x)
    bottom.set_xticklabels([_run_tick_label(run) for run in runs], rotation=60, ha="right", fontsize=7)
    # The rotated run labels need a bottom margin that depends on their length: measure them (one text
    # layout each) rather than laying out the whole figure twice.
    renderer = fig.canvas.get_renderer()
    label_inches = max((label.get_window_extent(renderer).height for label in bottom.get_xticklabels()),
                       default=0.0) / fig.dpi
    fig.set_size_inches(fig.get_size_inches()[0], 7 + label_inches)
    _margins(fig, left=0.95, right=0.2, bottom=label_inches + 0.25, top=0.45, hspace=0.15)
    return fig


def plot_speedup_io(data: PlotData, path: Path) -> None:
    _save_png(speedup_io_figure(data), path)


def layers_figure(data: PlotData):
    """Time per decoder layer, stacked by op role (one collection of rectangles per role, in ROLE_ORDER,
    each in its role's fixed colour)."""
    from matplotlib.collections import PolyCollection

    layers = data.layers
    roles = role_order({role for _, by_role in layers for role in by_role})
    fig = _figure(max(7, 0.25 * len(layers)), 4)
    ax = fig.subplots()
    half = 0.4
    bottoms = [0.0] * len(layers)
    for role in roles:
        heights = [by_role.get(role, 0) / (data.clock_ghz * 1e3) for _, by_role in layers]
        boxes = [((i - half, b), (i - half, b + h), (i + half, b + h), (i + half, b))
                 for i, (b, h) in enumerate(zip(bottoms, heights)) if h > 0]
        ax.add_collection(PolyCollection(boxes, facecolors=role_color(role), edgecolors="none", label=role))
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xlim(-0.8, len(layers) - 0.2)
    ax.set_ylim(0, 1.3 * max(bottoms, default=0.0) or 1.0)  # headroom: the legend sits above the bars
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([str(layer) for layer, _ in layers])
    ax.set_xlabel("layer (-1: embedding, final norm, LM head)")
    ax.set_ylabel("time (µs)")
    ax.set_title(f"time per layer, {data.chosen_run}")
    ax.tick_params(axis="x", labelsize=6)
    ax.legend(fontsize=6, ncol=min(9, max(1, len(roles))), loc="upper left")
    _margins(fig, left=0.8, right=0.2, bottom=0.55, top=0.35)
    return fig


def plot_layers(data: PlotData, path: Path) -> None:
    _save_png(layers_figure(data), path)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value: float, _position=None) -> str:
    if value <= 0:
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return f"{value:g}"
    return "10" + str(int(round(exponent))).translate(_SUPERSCRIPT)


def roof_label(roof: Roof, bandwidth_gb_s: float) -> str:
    return f"{' and '.join(roof.precisions)} roof ({roof.peak_tflops:.0f} TFLOP/s, {bandwidth_gb_s:g} GB/s)"


def roofline_figure(data: PlotData):
    """Each op precision's roof (labelled with its peak) and the GEMM ops of each drawn run, coloured like
    the roof of their precision."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(7, 4.5)
    ax = fig.subplots()
    intensities = [10 ** (i / 10) for i in range(-20, 51)]
    bandwidth_tb_s = data.bandwidth_gb_s / 1e3
    for roof in data.roofs:
        ax.plot(intensities, [min(roof.peak_tflops, bandwidth_tb_s * x) for x in intensities],
                color=PRECISION_COLORS.get(roof.precisions[-1], "black"), linewidth=1.2,
                linestyle="-" if "fp16" in roof.precisions else "--", label=roof_label(roof, data.bandwidth_gb_s))
    for series in data.roofline:
        ax.scatter([p[0] for p in series.points], [p[1] for p in series.points], marker=series.marker, s=14,
                   alpha=0.6, color=PRECISION_COLORS.get(series.precision, "gray"),
                   label=f"{series.precision} ops of {series.run_id}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.minorticks_off()
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_power_of_ten))
    ax.set_xlabel("arithmetic intensity (useful FLOP per DRAM byte)")
    ax.set_ylabel("achieved TFLOP/s (useful)")
    ax.legend(fontsize=7, loc="upper left")
    _margins(fig, left=0.85, right=0.2, bottom=0.6, top=0.2)
    return fig


def plot_roofline(data: PlotData, path: Path) -> None:
    _save_png(roofline_figure(data), path)


def draw_plots(data: PlotData, out_dir: Path, stop=None) -> dict[str, str]:
    """Write the PNGs in this process; return {title: file name} in report order. ``stop``: called
    before each plot; when it returns true, KeyboardInterrupt is raised there (between files)."""
    for draw, name in ((plot_speedup_io, "speedup_io.png"), (plot_layers, "layers.png"),
                       (plot_roofline, "roofline.png")):
        if stop is not None and stop():
            raise KeyboardInterrupt
        draw(data, out_dir / name)
    return plot_titles(data)


def write_plots(result: TraceResult, out_dir: Path, chosen_run_id: str | None = None) -> dict[str, str]:
    """Write the PNGs in this process; return {title: file name} in report order."""
    return draw_plots(plot_data(result, chosen_run_id), out_dir)


def _warm_up() -> None:
    """Import what drawing needs and load the font (what the first plot would otherwise pay)."""
    import importlib

    for module in ("matplotlib.backends.backend_agg", "matplotlib.collections", "matplotlib.figure", "matplotlib.patches",
                   "matplotlib.ticker"):
        importlib.import_module(module)
    from matplotlib import font_manager

    font_manager.get_font(font_manager.findfont(font_manager.FontProperties()))


# ---------------------------------------------------------------- in a child process

EXIT_INTERRUPTED = 130
_CANCEL_TIMEOUT_S = 60.0


_interrupted = False  # in the child: a SIGINT arrived


def _note_interrupt(signum, frame) -> None:
    # The child never raises from the signal handler: an exception raised there can surface anywhere,
    # even in a weakref callback that swallows it. It stops between files instead, so a plot being
    # written is finished (under a second) and none is left half-written.
    global _interrupted
    _interrupted = True


def _interrupt_requested() -> bool:
    return _interrupted


def _serve(connection, parent_end) -> None:
    """The child: warm up, then draw each (PlotData, out_dir) received and answer ("ok" | "error", text),
    until the parent closes its end (exit 0) or a SIGINT arrives (exit 130, between two files)."""
    signal.signal(signal.SIGINT, _note_interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent around the fork
    parent_end.close()
    try:
        try:
            _warm_up()
        except Exception:  # noqa: BLE001 - drawing reports the same error, with its traceback
            pass
        while not _interrupted:
            try:
                data, out_dir = connection.recv()
            except EOFError:  # the parent is done (or cancelled us)
                break
            if _interrupted:
                break
            try:
                draw_plots(data, out_dir, stop=_interrupt_requested)
                answer = ("ok", "")
            except KeyboardInterrupt:
                break
            except BaseException:  # noqa: BLE001 - sent to the parent, which raises it
                answer = ("error", traceback.format_exc())
            try:
                connection.send(answer)
            except OSError:  # the parent is gone
                break
    finally:
        connection.close()
    sys.exit(EXIT_INTERRUPTED if _interrupted else 0)


class PlotWorker:
    """Draws plots in a child process forked when the worker is made (where the platform has fork and
    ``fork`` is true; otherwise ``submit`` draws in this process). Use as a context manager: on a normal
    exit the child is let go and waited for; on an exception or Ctrl-C it is interrupted as Ctrl-C would
    (it finishes the file it is writing, writes no other, and exits) and waited for. Every plot file is
    written atomically: it is complete or absent."""

    def __init__(self, fork: bool = True):
        self._process = None
        self._connection = None
        self._pending: dict[str, str] | None = None
        if not fork or "fork" not in multiprocessing.get_all_start_methods():
            return
        context = multiprocessing.get_context("fork")
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_serve, args=(child_end, parent_end), name="amber-sim-plots", daemon=True)
        # SIGINT stays blocked in the child until its handler is installed (an early Ctrl-C is then
        # handled like a later one, rather than printing a traceback from multiprocessing).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()  # flushes stdout/stderr first, so the child never repeats buffered output
        finally:
            child_end.close()
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self._process, self._connection = process, parent_end

    @property
    def forked(self) -> bool:
        return self._process is not None

    def submit(self, data: PlotData, out_dir: Path) -> None:
        """Start drawing (in the child; here, at once, without one). ``wait()`` for the result."""
        titles = plot_titles(data)
        if self._process is None:
            self._pending = draw_plots(data, out_dir)
            return
        self._pending = titles
        self._connection.send((data, Path(out_dir)))

    def wait(self) -> dict[str, str]:
        """{title: file name} once the submitted plots are written. Raises KeyboardInterrupt if the child
        was interrupted, RuntimeError (with the child's traceback) if drawing failed."""
        if self._pending is None:
            raise RuntimeError("PlotWorker.wait() without submit()")
        if self._process is not None:
            try:
                status, message = self._connection.recv()
            except EOFError:
                self._process.join()
                code = self._process.exitcode
                if code in (EXIT_INTERRUPTED, -signal.SIGINT):
                    raise KeyboardInterrupt from None
                raise RuntimeError(f"the plot process exited with code {code} before writing the plots") from None
            if status != "ok":
                self._pending = None
                raise RuntimeError(f"drawing the plots failed in the plot process:\n{message}")
        titles, self._pending = self._pending, None
        return titles

    def close(self) -> None:
        """Let the child go and wait for it: it finishes the plots in flight, if any, then exits."""
        if self._process is None:
            return
        self._connection.close()
        if self._pending is None:  # idle or still importing: it writes nothing, no need to wait for it
            self._process.terminate()
        self._process.join()
        self._process = None

    def cancel(self) -> None:
        """Stop the child and wait for it. Plots in flight are interrupted as Ctrl-C would: the child
        finishes the file it is writing and writes no other."""
        if self._process is None:
            return
        self._connection.close()  # an idle child sees the end of the pipe
        if self._pending is None:  # idle or still importing: it writes nothing
            self._process.terminate()
        elif self._process.exitcode is None:
            try:
                os.kill(self._process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        self._process.join(timeout=_CANCEL_TIMEOUT_S)
        if self._process.exitcode is None:  # never expected: a plot takes well under a second
            self._process.terminate()
            self._process.join()
        self._process = None
        self._pending = None

    def __enter__(self) -> PlotWorker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.cancel()
