"""PNG plots of a report (matplotlib, Agg backend, deterministic metadata)."""

from __future__ import annotations

import io
from pathlib import Path

from amber_sim.atomic import atomic_write_bytes
from amber_sim.report.metrics import choose_run, layer_rows, run_rows
from amber_sim.sim.engine import RunResult, TraceResult

ROLE_COLORS = {
    "q": "#1f77b4", "k": "#aec7e8", "v": "#c5d7ea", "o": "#ff7f0e", "gate": "#2ca02c", "up": "#98df8a",
    "down": "#d62728", "attn_score": "#9467bd", "attn_value": "#c5b0d5", "attn_softmax": "#8c564b",
    "rmsnorm": "#7f7f7f", "rope": "#bcbd22", "silu_mul": "#17becf", "residual": "#e377c2",
    "mitigation": "#dbdb8d",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())


def plot_speedup_io(result: TraceResult, path: Path) -> None:
    plt = _pyplot()
    rows = run_rows(result)
    labels = [row.run_id.replace("/", "\n", 1) for row in rows]
    x = range(len(rows))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(7, 0.9 * len(rows)), 7), sharex=True)
    width = 0.4
    top.bar([i - width / 2 for i in x], [row.linear_speedup for row in rows], width, label="linear ops")
    top.bar([i + width / 2 for i in x], [row.end_to_end_speedup for row in rows], width, label="end to end")
    top.axhline(1.0, color="black", linewidth=0.8)
    top.set_ylabel("speedup vs dense (×)")
    top.legend(loc="upper right")
    top.set_title(f"{Path(result.trace.source_path or '').name} on {result.hardware.name}")
    bottom.bar([i - width / 2 for i in x], [100 * row.activation_io_savings for row in rows], width, label="activation I/O")
    bottom.bar([i + width / 2 for i in x], [100 * row.io_savings for row in rows], width, label="all DRAM traffic")
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_ylabel("DRAM bytes saved (%)")
    bottom.legend(loc="upper right")
    bottom.set_xticks(list(x))
    bottom.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    _save(fig, path)
    plt.close(fig)


def plot_layers(run: RunResult, clock_ghz: float, path: Path) -> None:
    plt = _pyplot()
    rows = sorted(layer_rows(run), key=lambda row: row.layer)
    roles = sorted({role for row in rows for role in row.cycles_by_role})
    fig, ax = plt.subplots(figsize=(max(7, 0.25 * len(rows)), 4))
    bottoms = [0.0] * len(rows)
    for role in roles:
        heights = [row.cycles_by_role.get(role, 0) / (clock_ghz * 1e3) for row in rows]
        ax.bar([str(row.layer) for row in rows], heights, bottom=bottoms, label=role, color=ROLE_COLORS.get(role))
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xlabel("layer (-1: embedding, final norm, LM head)")
    ax.set_ylabel("time (µs)")
    ax.set_title(f"time per layer, {run.run.id}")
    ax.tick_params(axis="x", labelsize=6)
    ax.legend(fontsize=6, ncol=4)
    _save(fig, path)
    plt.close(fig)


def plot_roofline(result: TraceResult, run: RunResult, path: Path) -> None:
    plt = _pyplot()
    hw = result.hardware
    peak_flops = 2 * hw.compute.fp16_macs_per_cycle * hw.cores * hw.clock_ghz * 1e9
    bandwidth = hw.memory.dram.bandwidth_gb_s * 1e9
    fig, ax = plt.subplots(figsize=(7, 4.5))
    intensities = [10 ** (i / 10) for i in range(-20, 51)]
    ax.plot(intensities, [min(peak_flops, bandwidth * x) / 1e12 for x in intensities], color="black",
            label=f"fp16 roofline ({peak_flops / 1e12:.0f} TFLOP/s, {hw.memory.dram.bandwidth_gb_s:g} GB/s)")
    dense = next((r for r in result.runs if r.run.pattern == "dense" and r.run.precision == run.run.precision), None)
    for subject, marker in ((dense, "o"), (run, "^")):
        if subject is None:
            continue
        points = [(2 * op.useful_macs / op.dram_bytes, 2 * op.useful_macs / (op.cycles / (hw.clock_ghz * 1e9)) / 1e12)
                  for op in subject.ops if op.useful_macs > 0 and op.dram_bytes > 0 and op.cycles > 0]
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, s=14, alpha=0.6,
                       label=f"ops of {subject.run.id}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (useful FLOP per DRAM byte)")
    ax.set_ylabel("achieved TFLOP/s (useful)")
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)


def write_plots(result: TraceResult, out_dir: Path, chosen_run_id: str | None = None) -> dict[str, str]:
    """Write the PNGs; return {title: file name} in report order."""
    chosen = choose_run(result, chosen_run_id)
    plot_speedup_io(result, out_dir / "speedup_io.png")
    plot_layers(chosen, result.hardware.clock_ghz, out_dir / "layers.png")
    plot_roofline(result, chosen, out_dir / "roofline.png")
    return {"Speedup and I/O savings per run": "speedup_io.png", f"Time per layer ({chosen.run.id})": "layers.png",
            "Roofline with ops as points": "roofline.png"}
