"""The terminal report: one row per run, then the slowest layers of the chosen run (rich tables)."""

from __future__ import annotations

from pathlib import Path

from amber_sim.report.metrics import RunRow, baseline_phrase, choose_run, layer_rows, mitigation_phrase, run_rows
from amber_sim.sim.engine import OpResult, TraceResult
from amber_sim.validate.hardware import load_summary, silicon_note


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_report(result: TraceResult, console, chosen_run_id: str | None = None, top_layers: int = 5,
                 rows: list[RunRow] | None = None) -> None:
    """``rows``: run_rows(result) when the caller has them (each row re-simulates its run without mitigation)."""
    from rich.table import Table

    trace, hw = result.trace, result.hardware
    if trace.is_synthetic:
        console.print("[bold yellow]SYNTHETIC trace[/]: masks assumed (density = N/M), not measured; no accuracy.")
    elif trace.model.weights == "random-init":
        console.print("[bold yellow]random-init weights[/]: masks are real, weights random; accuracy not reported.")
    rows = run_rows(result) if rows is None else rows
    table = Table(title=f"{Path(trace.source_path or '').name} on {hw.name} ({trace.model.name}, "
                        f"{trace.capture.tokens} tokens); speedups vs {baseline_phrase(rows)} on this hardware",
                  title_justify="left",
                  caption=f"mitig.: share of the prefill the run's mitigation costs ({mitigation_phrase(rows)})",
                  caption_justify="left")
    columns = (("run", "left"), ("prefill ms", "right"), ("Mcycles", "right"), ("linear ×", "right"),
               ("e2e ×", "right"), ("util.", "right"), ("DRAM GB", "right"), ("act. DRAM traffic saved", "right"),
               ("I/O saved", "right"), ("sparse FLOPs", "right"), ("mitig.", "right"), ("ppl", "right"),
               ("top-1", "right"), ("bound", "left"))
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=name == "run")
    for row in rows:
        table.add_row(row.run_id, f"{row.prefill_ms:.2f}", f"{row.prefill_cycles / 1e6:.2f}", f"{row.linear_speedup:.3f}",
                      f"{row.end_to_end_speedup:.3f}", f"{row.compute_utilization:.1%}", f"{row.dram_bytes / 1e9:.2f}",
                      f"{row.activation_io_savings:.1%}", f"{row.io_savings:.1%}",
                      f"{row.sparsified_linear_flop_share:.1%}", f"{row.mitigation_share:.1%}", _fmt(row.perplexity, ".2f"),
                      _fmt(row.top1_agreement, ".3f"), row.dominant_bound)
    console.print(table)
    if any(row.link_bytes for row in rows):
        links = Table(title="interconnect, per chip (tensor parallelism)", title_justify="left")
        for name in ("run", "collective share", "link GB sent", "link bytes saved"):
            links.add_column(name, justify="left" if name == "run" else "right", no_wrap=name == "run")
        for row in rows:
            links.add_row(row.run_id, f"{row.collective_share:.1%}", f"{row.link_bytes / 1e9:.3f}",
                          f"{row.link_savings:.1%}")
        console.print(links)
    console.print(silicon_note(hw.name, load_summary()), markup=False)
    chosen = choose_run(result, chosen_run_id)
    layers = Table(title=f"slowest layers of {chosen.run.id}", title_justify="left")
    for name in ("layer", "cycles", "share", "slowest op", "its cycles", "its bound"):
        layers.add_column(name, justify="left" if name in ("slowest op", "its bound") else "right")
    for row in layer_rows(chosen)[:top_layers]:
        layers.add_row(str(row.layer), f"{row.cycles:,}", f"{row.share:.1%}", row.slowest_op,
                       f"{row.slowest_op_cycles:,}", row.bound)
    console.print(layers)


def explain_op(op: OpResult, clock_ghz: float) -> list[str]:
    """How one op's cycles were obtained, line by line."""
    lines = [f"{op.name} ({op.kind}, role {op.role}, layer {op.layer})",
             f"  mode: {op.mode}" + (f" on hardware pattern {op.hw_pattern}" if op.hw_pattern else ""),
             f"  rule: {op.rule}"]
    if op.kind == "vector":
        lines += [f"  vector compute: {op.compute_cycles:,} cycles; DRAM traffic: {op.load_cycles:,} cycles "
                  f"({op.other_bytes - op.sparsifier_bytes:,.0f} bytes); latency {op.latency_cycles:,}"]
        if op.sparsifier_cycles or op.sparsifier_bytes:
            lines += [f"  fused selections of its pruned consumers add {op.sparsifier_cycles:,} cycles and "
                      f"{op.sparsifier_bytes:,.0f} bytes of extra writes",
                      f"  cycles = kernel overhead + latency + max(compute, traffic) + selections = {op.cycles:,}"]
        else:
            lines += [f"  cycles = kernel overhead + latency + max(compute, traffic) = {op.cycles:,}"]
    else:
        lines += [
            f"  mapping: {op.mapping} (tm x tn x tk / block order / accumulator buffers)",
            f"  blocks: {op.blocks:,} dealt to cores in {op.waves:,} waves"
            + (f"; last wave has {op.tail_blocks} blocks" if op.tail_blocks else "; all waves full"),
            f"  critical core: loads {op.load_cycles:,}, compute {op.compute_cycles:,}, stores {op.store_cycles:,} "
            f"busy cycles; first-load latency {op.latency_cycles:,}",
            f"  pipeline (double-buffered load/compute/store) total: "
            f"{op.cycles - op.sparsifier_cycles - op.kernel_overhead_cycles:,} cycles",
            f"  sparsifier adds {op.sparsifier_cycles:,} cycles",
            f"  DRAM bytes: activation {op.activation_bytes:,.0f}, weight {op.weight_bytes:,.0f}, output "
            f"{op.output_bytes:,.0f}, sparsifier/other {op.other_bytes:,.0f}; L2 reads {op.l2_bytes:,.0f}",
            f"  MACs: useful {op.useful_macs:,.0f}, issued {op.issued_macs:,.0f}; ideal cycles "
            f"{op.ideal_cycles:,.0f} -> utilization {op.ideal_cycles / op.cycles if op.cycles else 0:.1%}",
        ]
    if op.kernel_overhead_cycles:
        lines.append(f"  kernel overhead (launch, prologue, completion): {op.kernel_overhead_cycles:,} cycles")
    lines.append(f"  total: {op.cycles:,} cycles = {op.cycles / (clock_ghz * 1e3):,.2f} µs; bound: {op.bound}")
    return lines
