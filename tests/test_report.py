"""Report files and the main command: every number defined, files deterministic and atomic."""

from __future__ import annotations

import csv
import dataclasses
import json
import multiprocessing
import os
import signal

import pytest

from amber_sim.cli import main
from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR
from amber_sim.report.files import OPS_CSV_COLUMNS, report_dict, report_json, write_report
from amber_sim.report.metrics import baseline_phrase, layer_rows, run_rows
from amber_sim.report.terminal import print_report
from amber_sim.sim.engine import TWIN, simulate_trace
from amber_sim.trace import save_trace


@pytest.fixture
def tiny_result(tiny_trace):
    return simulate_trace(load_hardware(HW_CONFIG_DIR / "ascend_like.yaml"), tiny_trace)


def test_metrics_follow_their_definitions(tiny_result):
    for row, run in zip(run_rows(tiny_result), tiny_result.runs):
        assert row.end_to_end_speedup == pytest.approx(run.baseline_totals.cycles / run.totals.cycles)
        # linear cycles: the linear ops, plus the selections a fused sparsifier adds to their producers
        linear = sum(op.cycles if op.kind == "linear" else op.sparsifier_cycles for op in run.ops)
        assert row.linear_speedup == pytest.approx(run.baseline_totals.linear_cycles / linear)
        assert row.io_savings == pytest.approx(1 - run.totals.dram_bytes / run.baseline_totals.dram_bytes)
        ideal = sum(op.useful_macs / op.peak_macs_per_cycle for op in run.ops)
        assert row.compute_utilization == pytest.approx(ideal / run.totals.cycles)
        assert row.prefill_ms == pytest.approx(run.totals.cycles / 1.8e6)  # ascend_like runs at 1.8 GHz
        if run.run.pattern == "dense":
            assert row.end_to_end_speedup == 1.0 and row.activation_io_savings == 0.0
    layers = layer_rows(tiny_result.runs[1])
    assert sum(row.cycles for row in layers) == tiny_result.runs[1].totals.cycles


def test_report_files_are_complete_and_deterministic(tiny_result, tmp_path):
    first = tmp_path / "a"
    second = tmp_path / "b"
    write_report(tiny_result, first)
    write_report(tiny_result, second)
    names = sorted(path.name for path in first.iterdir())
    assert names == ["layers.png", "ops.csv", "report.json", "report.md", "roofline.png", "speedup_io.png"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    rows = list(csv.DictReader((first / "ops.csv").open()))
    assert len(rows) == sum(len(run.ops) for run in tiny_result.runs)
    assert tuple(rows[0]) == OPS_CSV_COLUMNS
    report = json.loads((first / "report.json").read_text())
    assert [run["run_id"] for run in report["runs"]] == [run.run.id for run in tiny_result.runs]
    assert report["trace"]["synthetic"] is True
    assert "Synthetic trace" in (first / "report.md").read_text()


def test_main_job_prints_and_writes(tiny_trace, tmp_path, capsys):
    trace_path = save_trace(tiny_trace, tmp_path / "tiny.json")
    out = tmp_path / "report"
    assert main(["--hw", "ascend_like.yaml", "--trace", str(trace_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "2:4/amber/all/fp16" in printed and "slowest layers" in printed
    assert (out / "report.md").is_file()


def test_explain_shows_the_rule_and_mapping(tiny_trace, tmp_path, capsys):
    trace_path = save_trace(tiny_trace, tmp_path / "tiny.json")
    assert main(["explain", "--hw", "ascend_like", "--trace", str(trace_path), "--op", "layers.1.mlp.down_proj",
                 "--run", "2:4/amber/all/fp16"]) == 0
    printed = capsys.readouterr().out
    assert "mode: native on hardware pattern 2:4" in printed and "mapping:" in printed and "bound:" in printed
    assert main(["explain", "--hw", "ascend_like", "--trace", str(trace_path), "--op", "layers.1.mlp.dwn_proj"]) == 2
    assert "did you mean layers.1.mlp.down_proj" in capsys.readouterr().err


# ---------------------------------------------------------------- the baseline each run's speedups are against

def test_report_md_and_terminal_name_the_baseline(tiny_result, tmp_path):
    from rich.console import Console

    write_report(tiny_result, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| run |"))
    assert header.startswith("| run | baseline |")
    rows = run_rows(tiny_result)
    for row in rows:
        assert f"| {row.run_id} | {row.baseline} |" in markdown
    assert f"against each run's baseline (column `baseline`): {baseline_phrase(rows)}" in markdown
    console = Console(record=True, width=400)
    print_report(tiny_result, console)
    assert f"speedups vs {baseline_phrase(rows)} on this hardware" in console.export_text()


def test_baseline_phrase_follows_the_runs_baselines(tiny_result):
    rows = run_rows(tiny_result)
    twins = [dataclasses.replace(row, baseline=TWIN) for row in rows]
    named = [dataclasses.replace(row, baseline="dense/none/none/fp16") for row in rows]
    assert baseline_phrase(twins) == "the same run with every op dense"
    assert baseline_phrase(named) == "the trace's dense run of the same precision"
    assert "where the trace has none" in baseline_phrase(twins[:1] + named[1:])

# ---------------------------------------------------------------- report.json's op table and ops.csv, reruns

def _json_op_rows(report: dict) -> list[dict]:
    columns = report["op_columns"]
    return [dict(zip(columns, op), run_id=run["run_id"]) for run in report["runs"] for op in run["ops"]]


def test_report_json_op_table_matches_ops_csv(tiny_result, tmp_path):
    write_report(tiny_result, tmp_path)
    text = (tmp_path / "report.json").read_text()
    report = json.loads(text)
    columns = report["op_columns"]
    assert tuple(columns[:len(OPS_CSV_COLUMNS) - 1]) == OPS_CSV_COLUMNS[1:] and "peak_macs_per_cycle" in columns
    json_rows = _json_op_rows(report)
    csv_rows = list(csv.DictReader((tmp_path / "ops.csv").open()))
    assert len(json_rows) == len(csv_rows) == sum(len(run.ops) for run in tiny_result.runs)
    assert sum(line.startswith("    [") for line in text.splitlines()) == len(json_rows)  # one op per line
    sparse_run = next(index for index, run in enumerate(tiny_result.runs) if run.run.pattern == "2:4")
    offset = sum(len(run.ops) for run in tiny_result.runs[:sparse_run])
    sparse_op = next(index for index, op in enumerate(tiny_result.runs[sparse_run].ops)
                     if op.kind == "linear" and op.mode != "dense")
    picks = [0, offset + sparse_op, offset + sparse_op + 1, len(json_rows) // 2, len(json_rows) - 1]
    fractional = 0
    for index in picks:
        from_json, from_csv = json_rows[index], csv_rows[index]
        for column in OPS_CSV_COLUMNS:
            value, text_value = from_json[column], from_csv[column]
            if value is None:
                assert text_value == "", (index, column)
            elif isinstance(value, float):
                # report.json: 6 decimal places; ops.csv: 6 significant digits
                assert float(text_value) == pytest.approx(value, rel=1e-5, abs=5e-7), (index, column)
                fractional += not value.is_integer()
            else:
                assert text_value == str(value), (index, column)
    assert fractional > 0  # the picks include non-integral numbers (utilization, energy)
    op = tiny_result.runs[sparse_run].ops[sparse_op]  # and the numbers are the simulator's, rounded to 6 places
    row = json_rows[offset + sparse_op]
    assert row["name"] == op.name and row["cycles"] == op.cycles and row["mode"] == op.mode
    assert row["dram_bytes"] == round(op.dram_bytes, 6)
    assert row["peak_macs_per_cycle"] == round(op.peak_macs_per_cycle, 6)
    assert row["compute_utilization"] == round(op.ideal_cycles / op.cycles, 6)


def test_report_json_text_round_trips_the_report_dict(tiny_result):
    report = report_dict(tiny_result)
    assert json.loads(report_json(report)) == report
    assert [run["baseline"] for run in report["runs"]] == [run.baseline for run in tiny_result.runs]


def test_rerun_gives_identical_bytes(tiny_trace, tmp_path):
    trace_path = save_trace(tiny_trace, tmp_path / "tiny.json")
    out = tmp_path / "report"
    argv = ["--hw", "ascend_like.yaml", "--trace", str(trace_path), "--out", str(out)]
    assert main(argv) == 0
    first = {path.name: path.read_bytes() for path in out.iterdir()}
    assert main(argv) == 0
    second = {path.name: path.read_bytes() for path in out.iterdir()}
    assert sorted(first) == ["layers.png", "ops.csv", "report.json", "report.md", "roofline.png", "speedup_io.png"]
    assert first == second

# ---------------------------------------------------------------- plots

def test_plots_exist_and_are_not_blank(tiny_result, tmp_path):
    from PIL import Image

    write_report(tiny_result, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    for name in ("speedup_io.png", "layers.png", "roofline.png"):
        path = tmp_path / name
        assert path.stat().st_size > 5_000, name
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 400, name
            colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colors is None or len(colors) > 20, name  # drawn, not one flat color
        assert f"]({name})" in markdown

def _run_id(result, pattern, precision):
    return next(run.run.id for run in result.runs if run.run.pattern == pattern and run.run.precision == precision)


def test_roofline_draws_and_labels_the_roof_of_each_op_precision(tiny_result):
    from matplotlib.colors import to_rgba

    from amber_sim.report.plots import plot_data, roofline_figure, roofs

    hw = tiny_result.hardware
    fp16_peak = 2 * hw.compute.fp16_macs_per_cycle * hw.cores * hw.clock_ghz / 1e3  # TFLOP/s
    peaks = {"fp16": fp16_peak, "int8": fp16_peak * hw.compute.int8_macs_per_fp16_mac}
    assert peaks["int8"] > peaks["fp16"]  # ascend_like: 2 int8 MACs per fp16 MAC
    bandwidth = hw.memory.dram.bandwidth_gb_s
    data = plot_data(tiny_result, _run_id(tiny_result, "2:4", "w8a8"))
    ax = roofline_figure(data).axes[0]
    drawn = {line.get_label(): line for line in ax.lines}
    assert sorted(drawn) == [f"fp16 roof ({peaks['fp16']:.0f} TFLOP/s, {bandwidth:g} GB/s)",
                             f"int8 roof ({peaks['int8']:.0f} TFLOP/s, {bandwidth:g} GB/s)"]
    roof_of = {label.split()[0]: line for label, line in drawn.items()}
    for precision, line in roof_of.items():
        assert max(line.get_ydata()) == pytest.approx(peaks[precision])
    scatters = {collection.get_label(): collection for collection in ax.collections}
    # w8a8 runs: linears in int8, attention in fp16; both runs drawn (the dense run of the precision and the chosen)
    assert {label.split()[0] for label in scatters} == {"fp16", "int8"} and len(scatters) == 4
    for label, collection in scatters.items():
        precision = label.split()[0]
        assert tuple(collection.get_facecolor()[0][:3]) == to_rgba(roof_of[precision].get_color())[:3], label
        for x, y in collection.get_offsets():  # every op sits under the roof of its own precision
            assert y <= min(peaks[precision], bandwidth / 1e3 * x) * (1 + 1e-9), (label, x, y)
    fp16_data = plot_data(tiny_result, _run_id(tiny_result, "2:4", "fp16"))
    assert [line.get_label() for line in roofline_figure(fp16_data).axes[0].lines] == [
        f"fp16 roof ({peaks['fp16']:.0f} TFLOP/s, {bandwidth:g} GB/s)"]
    same_rate = dataclasses.replace(hw, compute=dataclasses.replace(hw.compute, int8_macs_per_fp16_mac=1))
    assert [(roof.precisions, roof.peak_tflops) for roof in roofs(same_rate, {"int8", "fp16"})] == [
        (("fp16", "int8"), pytest.approx(peaks["fp16"]))]  # one roof, labelled with both precisions


def test_every_op_role_has_its_own_fixed_colour(tiny_result):
    from matplotlib.colors import to_rgba

    from amber_sim.report.plots import (ROLE_COLORS, ROLE_ORDER, SPARE_ROLE_COLORS, layers_figure, plot_data,
                                        role_color)

    documented = {"q", "k", "v", "o", "gate", "up", "down", "lm_head", "attn_score", "attn_value", "embedding",
                  "rmsnorm", "qk_norm", "rope", "attn_softmax", "silu_mul", "residual", "mitigation"}  # trace-format.md
    assert set(ROLE_COLORS) == documented
    palette = list(ROLE_COLORS.values()) + list(SPARE_ROLE_COLORS)
    assert len(set(palette)) == len(palette)  # no two roles share a colour, nor a role and a spare colour

    def drawn(data):
        ax = layers_figure(data).axes[0]
        return [(collection.get_label(), tuple(collection.get_facecolor()[0])) for collection in ax.collections]

    data = plot_data(tiny_result)
    roles = {role for _, by_role in data.layers for role in by_role}
    full = drawn(data)
    assert [role for role, _ in full] == [role for role in ROLE_ORDER if role in roles]
    assert all(colour == to_rgba(ROLE_COLORS[role]) for role, colour in full)
    # the same role keeps its colour whatever other roles are present, a role outside the table included
    kept = {"down", "rmsnorm", "v"}
    fewer = dataclasses.replace(data, layers=tuple(
        (layer, {**{role: cycles for role, cycles in by_role.items() if role in kept}, "new_role": 5})
        for layer, by_role in data.layers))
    assert drawn(fewer) == [(role, colour) for role, colour in full if role in kept] + [
        ("new_role", to_rgba(role_color("new_role")))]
    assert role_color("new_role") in SPARE_ROLE_COLORS and role_color("new_role") == role_color("new_role")


def test_speedup_bars_mark_runs_the_hardware_cannot_run_natively(tiny_result):
    from amber_sim.report.plots import NOT_NATIVE_HATCH, plot_data, speedup_io_figure

    not_native = {run.run.id for run in tiny_result.runs
                  if any(op.data_pattern != "dense" and op.mode != "native" for op in run.ops)}
    assert not_native and not_native != {run.run.id for run in tiny_result.runs if run.run.pattern != "dense"}
    data = plot_data(tiny_result)
    fig = speedup_io_figure(data)
    run_ids = [run.run_id for run in data.runs]
    for ax in fig.axes:
        bars = ax.patches
        assert len(bars) == 2 * len(run_ids)
        for index, bar in enumerate(bars):
            hatched = (bar.get_hatch() or "") == NOT_NATIVE_HATCH
            assert hatched == (run_ids[index % len(run_ids)] in not_native), (ax.get_ylabel(), index)
        assert "hatched: pattern not native on this hardware" in [text.get_text() for text in ax.get_legend().texts]
    ticks = [label.get_text() for label in fig.axes[1].get_xticklabels()]
    for run_id, tick in zip(run_ids, ticks):
        assert ("(not native: compressed-io)" in tick) == (run_id in not_native), tick


def test_report_md_says_why_an_io_saving_is_negative(tiny_result, tmp_path):
    write_report(tiny_result, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    rows = run_rows(tiny_result)
    negative = [row for row in rows if min(row.activation_io_savings, row.io_savings) < 0]
    assert negative and len(negative) < len(rows)
    by_id = {run.run.id: run for run in tiny_result.runs}
    for row in rows:
        notes = [line for line in markdown.splitlines() if line.startswith(f"- `{row.run_id}`: ")]
        if row not in negative:
            assert notes == [], row.run_id
            continue
        assert len(notes) == 1, row.run_id
        run, baseline = by_id[row.run_id], by_id[row.baseline]
        reads = sum(op.activation_bytes for op in run.ops if op.kind == "linear")
        baseline_reads = sum(op.activation_bytes for op in baseline.ops if op.kind == "linear")
        sparsifier = sum(op.sparsifier_bytes for op in run.ops)
        assert sparsifier > 0
        saved = baseline_reads - reads
        change = f"save {saved / 1e9:.3f} GB" if saved >= 0 else f"grow by {-saved / 1e9:.3f} GB"
        assert f"activation DRAM traffic saved {row.activation_io_savings:.1%}" in notes[0]
        assert f"{change}, its sparsifier's traffic" in notes[0]
        assert f"adds {sparsifier / 1e9:.3f} GB" in notes[0]
        rest = run.totals.dram_bytes - baseline.totals.dram_bytes + saved - sparsifier
        assert f"changes by {rest / 1e9:+.3f} GB" in notes[0]


# ---------------------------------------------------------------- the plot process: same bytes, Ctrl-C, errors

def test_plots_drawn_in_the_child_match_those_drawn_here(tiny_result, tmp_path):
    write_report(tiny_result, tmp_path / "forked")
    write_report(tiny_result, tmp_path / "here", fork_plots=False)
    for name in ("speedup_io.png", "layers.png", "roofline.png", "report.md", "report.json"):
        assert (tmp_path / "forked" / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name


def _leftovers(directory):
    return sorted(path.name for path in directory.iterdir() if path.name.startswith(".") or path.suffix == ".tmp")


def test_ctrl_c_in_the_plot_process_leaves_no_partial_file(tiny_result, tmp_path, monkeypatch):
    parent, real_fsync, calls = os.getpid(), os.fsync, []

    def fsync(fd):  # in the child, Ctrl-C while the second plot's temporary file is being written
        if os.getpid() != parent:
            calls.append(fd)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGINT)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        write_report(tiny_result, tmp_path)
    names = sorted(path.name for path in tmp_path.iterdir())
    # the plot being written is finished, the next one is not started
    assert "speedup_io.png" in names and "layers.png" in names and "roofline.png" not in names
    assert (tmp_path / "layers.png").read_bytes().endswith(b"IEND\xaeB`\x82")
    assert "report.md" not in names and _leftovers(tmp_path) == []
    assert multiprocessing.active_children() == []


def test_ctrl_c_in_the_parent_interrupts_the_plots_and_waits(tiny_result, tmp_path, monkeypatch):
    from amber_sim.report import files

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "ops_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(tiny_result, tmp_path)
    assert multiprocessing.active_children() == []
    assert _leftovers(tmp_path) == [] and not (tmp_path / "ops.csv").exists() and not (tmp_path / "report.md").exists()
    for path in tmp_path.glob("*.png"):  # whatever plot was written is whole
        assert path.read_bytes().endswith(b"IEND\xaeB`\x82")
    json.loads((tmp_path / "report.json").read_text())


def test_a_plot_error_is_raised_with_its_traceback(tiny_result, tmp_path, monkeypatch):
    from amber_sim.report import plots

    def broken(data, path):
        raise ValueError("no roofline today")

    monkeypatch.setattr(plots, "plot_roofline", broken)
    with pytest.raises(RuntimeError, match="(?s)plot process.*ValueError: no roofline today"):
        write_report(tiny_result, tmp_path)
    assert multiprocessing.active_children() == []
    assert not (tmp_path / "report.md").exists() and _leftovers(tmp_path) == []
