"""Sweeps: the fast evaluator equals the engine, rescaling, resume after a kill, Dask, bad input."""

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amber_sim.errors import InputError
from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR, TRACE_DIR
from amber_sim.sim import engine
from amber_sim.study.axes import parse_axes
from amber_sim.study.evaluate import build_plan, evaluate_point
from amber_sim.study.rescale import rescale_trace
from amber_sim.study.store import DB_NAME, ResultStore
from amber_sim.study.sweep import connect_dask, prepare_job, run_sweep
from amber_sim.trace import dumps_trace, load_trace, trace_from_dict

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smollm():
    return load_trace(TRACE_DIR / "smollm2-135m.json")


@pytest.fixture(scope="module")
def ascend():
    return load_hardware(HW_CONFIG_DIR / "ascend_like.yaml")


@pytest.mark.parametrize("config", ["ascend_like.yaml", "a100_like.yaml", "edge_npu.yaml"])
def test_fast_evaluator_equals_engine(smollm, config):
    """Integers exactly; float sums differ only by summation order (rel 1e-12)."""
    hw = load_hardware(HW_CONFIG_DIR / config)
    rows = evaluate_point(hw, build_plan(smollm))
    for row, result in zip(rows, engine.simulate_trace(hw, smollm).runs):
        assert row["run_id"] == result.run.id
        assert row["prefill_cycles"] == result.totals.cycles
        assert row["baseline_cycles"] == result.baseline_totals.cycles
        assert row["end_to_end_speedup"] == pytest.approx(result.speedup_end_to_end, rel=1e-12)
        assert row["linear_speedup"] == pytest.approx(result.speedup_linear, rel=1e-12)
        assert row["dram_bytes"] == pytest.approx(result.totals.dram_bytes, rel=1e-12)
        assert row["io_savings"] == pytest.approx(result.io_savings, rel=1e-9, abs=1e-12)
        assert row["compute_utilization"] == pytest.approx(result.totals.compute_utilization, rel=1e-12)
        assert row["dominant_bound"] == result.totals.dominant_bound
        categories = sum(row[f"{name}_cycles"] for name in ("compute", "memory", "sparsifier", "vector"))
        assert categories == row["prefill_cycles"]  # the categories partition the time


def test_plan_collapses_repeated_layers(smollm):
    plan = build_plan(smollm)
    ops = sum(len(run.ops) for run in smollm.runs)
    assert len(plan.program.keys) < ops / 20  # 30 identical layers: each distinct op once, not per layer


def test_rescale_rule(smollm):
    scaled = rescale_trace(smollm, 512)
    assert scaled.capture.seq_len == 512 and scaled.capture.tokens == 512
    assert scaled.capture.rescaled_from_seq_len == 2048 and "RESCALED" in scaled.capture.notes
    ops = {op.name: op for op in scaled.runs[1].ops}
    original = {op.name: op for op in smollm.runs[1].ops}
    q = ops["layers.0.self_attn.q_proj"]
    assert (q.M, q.K, q.N) == (512, 576, 576) and q.density == original["layers.0.self_attn.q_proj"].density
    assert (ops["layers.0.self_attn.scores"].M, ops["layers.0.self_attn.scores"].N) == (512, 512)
    assert (ops["layers.0.self_attn.context"].M, ops["layers.0.self_attn.context"].K) == (512, 512)
    assert ops["lm_head"].M == original["lm_head"].M == 1  # last token only: not a token-dimension op
    assert ops["layers.0.input_layernorm"].elements * 4 == original["layers.0.input_layernorm"].elements
    assert ops["layers.0.self_attn.softmax"].elements * 16 == original["layers.0.self_attn.softmax"].elements
    reloaded = trace_from_dict(__import__("json").loads(dumps_trace(scaled)), "rescaled")  # still a valid trace
    assert reloaded.capture.rescaled_from_seq_len == 2048
    with pytest.raises(InputError, match="max_position"):
        rescale_trace(smollm, 10**6)


def test_sweep_reuses_points(tmp_path, smollm, ascend):
    job = prepare_job(ascend, smollm, parse_axes(["memory.dram.bandwidth_gb_s=800,1600"]), (512,), 100)
    first = run_sweep(job, tmp_path / DB_NAME, workers=1)
    again = run_sweep(job, tmp_path / DB_NAME, workers=1)
    assert (first.computed, first.reused) == (2, 0)
    assert (again.computed, again.reused) == (0, 2)
    with ResultStore(tmp_path / DB_NAME) as store:
        rows = store.rows(list(job.keys))
    assert len(rows) == 2 * len(smollm.runs)
    slow, fast = (row for row in rows if row["run_id"] == "dense/none/none/fp16")
    assert slow["point"]["memory.dram.bandwidth_gb_s"] == 800 and slow["prefill_cycles"] >= fast["prefill_cycles"]


def _table(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return sorted(connection.execute("SELECT * FROM results").fetchall())


SWEEP_ARGS = ["sweep", "--hw", "ascend_like.yaml", "--trace", "smollm2-135m.json", "--workers", "1",
              "--vary", "memory.dram.bandwidth_gb_s=400:1600:+100", "--vary", "memory.l1.size_kb=256,512",
              "--seq-len", "256"]


def _sweep_process(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "amber_sim.cli", *SWEEP_ARGS, "--out", str(out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _points_done(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return connection.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_mid_sweep_then_resume_gives_the_same_table(tmp_path):
    """SIGKILL after the first batches are committed; the rerun computes only the rest; the table equals
    an uninterrupted sweep's."""
    killed = tmp_path / "killed"
    process = _sweep_process(killed)
    deadline = time.monotonic() + 60
    while _points_done(killed / DB_NAME) < 8 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = _points_done(killed / DB_NAME)
    assert 8 <= partial < 26, "the kill must land mid-sweep"
    resumed = subprocess.run([sys.executable, "-m", "amber_sim.cli", *SWEEP_ARGS, "--out", str(killed)], cwd=REPO,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{26 - partial} computed, {partial} already in" in resumed.stdout.replace("\n", " ")
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "amber_sim.cli", *SWEEP_ARGS, "--out", str(fresh)], cwd=REPO, check=True,
                   capture_output=True)
    assert _table(killed / DB_NAME) == _table(fresh / DB_NAME)
    runs_in_trace = len(load_trace(TRACE_DIR / "smollm2-135m.json").runs)
    assert len(_table(fresh / DB_NAME)) == 26 * runs_in_trace
    assert (killed / "results.csv").read_text() == (fresh / "results.csv").read_text()


def test_process_pool_equals_inline(tmp_path, smollm, ascend):
    job = prepare_job(ascend, smollm, parse_axes(["memory.dram.bandwidth_gb_s=800,1600,3200"]), (256,), 100)
    run_sweep(job, tmp_path / "inline.sqlite", workers=1)
    run_sweep(job, tmp_path / "pool.sqlite", workers=2, batch_points=1)
    assert _table(tmp_path / "inline.sqlite") == _table(tmp_path / "pool.sqlite")


def test_dask_local_cluster_equals_inline(tmp_path, smollm, ascend):
    distributed = pytest.importorskip("distributed")
    job = prepare_job(ascend, smollm, parse_axes(["memory.dram.bandwidth_gb_s=800,1600"]), (256,), 100)
    run_sweep(job, tmp_path / "inline.sqlite", workers=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            outcome = run_sweep(job, tmp_path / "dask.sqlite", dask_client=client, batch_points=1)
    assert outcome.computed == 2
    assert _table(tmp_path / "inline.sqlite") == _table(tmp_path / "dask.sqlite")


def test_unreachable_dask_is_a_clear_error_and_keeps_results(tmp_path):
    pytest.importorskip("distributed")
    start = time.monotonic()
    with pytest.raises(InputError, match="no Dask scheduler answers at tcp://127.0.0.1:9"):
        connect_dask("tcp://127.0.0.1:9", timeout_s=1.0)
    assert time.monotonic() - start < 15


def test_cli_bad_path_exits_2(tmp_path, capsys):
    from amber_sim.cli import main

    code = main(["sweep", "--hw", "ascend_like.yaml", "--trace", "smollm2-135m.json", "--vary",
                 "memory.dram.bandwith=1,2", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "did you mean memory.dram.bandwidth_gb_s" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written before the input is checked


def test_cli_unreachable_dask_keeps_local_table(tmp_path, capsys):
    pytest.importorskip("distributed")
    from amber_sim.cli import main

    args = ["sweep", "--hw", "ascend_like.yaml", "--trace", "smollm2-135m.json", "--seq-len", "256", "--workers", "1",
            "--vary", "memory.dram.bandwidth_gb_s=800,1600", "--out", str(tmp_path / "s")]
    assert main(args) == 0
    before = _table(tmp_path / "s" / DB_NAME)
    assert main([*args, "--dask", "tcp://127.0.0.1:9"]) == 2
    assert "no Dask scheduler answers" in capsys.readouterr().err
    assert _table(tmp_path / "s" / DB_NAME) == before


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if not path.name.startswith(DB_NAME)}


def test_a_folder_holds_one_sweep_another_is_refused_and_the_folder_kept(tmp_path, capsys):
    """A sweep over other axes into a folder that holds one was a KeyError after its points were mixed in; now
    it is one line naming the folder and what differs, before any work, and every file stays as it was."""
    from amber_sim.cli import main

    out = tmp_path / "s"
    base = ["sweep", "--hw", "ascend_like.yaml", "--trace", "smollm2-135m.json", "--seq-len", "256", "--workers", "1",
            "--out", str(out)]
    assert main([*base, "--vary", "memory.dram.bandwidth_gb_s=800,1600"]) == 0
    assert "2 computed, 0 already in" in capsys.readouterr().out
    before, table = _folder_files(out), _table(out / DB_NAME)
    assert main([*base, "--vary", "memory.l1.size_kb=256,512"]) == 2  # shares a point with the first sweep
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"amber-sim: error: --out: {str(out)!r} holds another sweep (axes "
                          "memory.dram.bandwidth_gb_s=800,1600 × seq-len 256, not memory.l1.size_kb=256,512 × seq-len "
                          "256); its results would mix with this one's: sweep into a new --out folder")
    assert main([*base[:-2], "--hw", "a100_like.yaml", "--out", str(out), "--vary",
                 "memory.dram.bandwidth_gb_s=800,1600"]) == 2
    assert "holds another sweep (base hardware ascend_like (config " in capsys.readouterr().err
    assert _folder_files(out) == before and _table(out / DB_NAME) == table
    assert main([*base, "--vary", "memory.dram.bandwidth_gb_s=800,1600.0"]) == 0  # the same sweep resumes
    assert "0 computed, 2 already in" in capsys.readouterr().out


def test_run_sweep_refuses_a_table_of_another_sweep_or_of_no_recorded_sweep(tmp_path, smollm, ascend):
    first = prepare_job(ascend, smollm, parse_axes(["memory.dram.bandwidth_gb_s=800,1600"]), (256,), 100)
    run_sweep(first, tmp_path / DB_NAME, workers=1)
    other = prepare_job(ascend, smollm, parse_axes(["memory.dram.bandwidth_gb_s=800,3200"]), (256,), 100)
    with pytest.raises(InputError, match=r"axes memory.dram.bandwidth_gb_s=800,1600 × seq-len 256, not "
                                         r"memory.dram.bandwidth_gb_s=800,3200 × seq-len 256"):
        run_sweep(other, tmp_path / DB_NAME, workers=1)
    older = tmp_path / "older" / DB_NAME  # a table filled before sweeps recorded what they sweep
    older.parent.mkdir()
    with ResultStore(older) as store:
        store.add_points([(key[0], key[1], {}, "x", []) for key in first.keys])
    with pytest.raises(InputError, match="holds a sweep that did not record its axes"):
        run_sweep(first, older, workers=1)


# ---------------------------------------------------------------- heatmap panels

def _heatmap_rows(trace, hw):
    """Every run of ``trace`` at 2 × 2 points (DRAM bandwidth × dedicated sparsifier rate) of ``hw``."""
    plan = build_plan(trace)
    rows = []
    for bandwidth in (800.0, 1600.0):
        for rate in (64, 256):
            point_hw = dataclasses.replace(
                hw, memory=dataclasses.replace(hw.memory, dram=dataclasses.replace(hw.memory.dram, bandwidth_gb_s=bandwidth)),
                sparsity=dataclasses.replace(hw.sparsity, sparsifier=dataclasses.replace(
                    hw.sparsity.sparsifier, elements_per_cycle=rate)))
            point = {"memory.dram.bandwidth_gb_s": bandwidth, "sparsity.sparsifier.elements_per_cycle": rate}
            rows += [{**row, "point": point} for row in evaluate_point(point_hw, plan)]
    return rows


def _image_panels(fig):
    return [ax for ax in fig.axes if ax.images]


def test_heatmap_has_a_panel_for_every_sparse_run_of_a_12_run_trace(ascend):
    import numpy as np

    from amber_sim.study.plots import heatmap_figure

    llama = load_trace(TRACE_DIR / "llama.json")
    assert len(llama.runs) == 12  # 2 dense (fp16, w8a8) + 5 patterns × 2 precisions
    rows = _heatmap_rows(llama, ascend)
    fig = heatmap_figure(rows, "memory.dram.bandwidth_gb_s", [800.0, 1600.0],
                         "sparsity.sparsifier.elements_per_cycle", [64, 256], {}, "llama")
    panels = _image_panels(fig)
    assert len(panels) == 10  # was 6 (truncated)
    expected = {f"{run.pattern} {run.precision}" for run in llama.runs if run.pattern != "dense"}
    assert {ax.get_title() for ax in panels} == expected and len(expected) == 10
    for ax in panels:  # every panel holds all 2 × 2 points
        assert np.isfinite(np.asarray(ax.images[0].get_array(), dtype=float)).sum() == 4
    assert len(fig.axes) == 10 + 1 + 2  # 10 panels, one colour bar for all, 2 unused cells of the 3 × 4 grid


def test_heatmap_keeps_runs_that_share_pattern_and_precision_apart():
    from amber_sim.study.plots import run_titles

    rows = [{"run_id": run_id, "pattern": pattern, "precision": "fp16"} for run_id, pattern in
            (("2:4/amber/p/fp16", "2:4"), ("2:4/wanda/p/fp16", "2:4"), ("4:8/amber/p/fp16", "4:8"),
             ("dense/none/none/fp16", "dense"))]
    assert run_titles(rows) == [("2:4/amber/p/fp16", "2:4/amber/p/fp16"), ("2:4/wanda/p/fp16", "2:4/wanda/p/fp16"),
                                    ("4:8/amber/p/fp16", "4:8 fp16")]


def test_speedup_lines_draw_one_line_per_run_even_when_runs_share_pattern_and_precision(tmp_path, monkeypatch):
    from amber_sim.study import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, _path: drawn.append(
        [(line.get_label(), [float(y) for y in line.get_ydata()]) for line in fig.axes[0].lines
         if not line.get_label().startswith("_")]))  # the y = 1 reference line is unlabelled
    speedups = {"2:4/amber/p/fp16": (1.1, 1.2), "2:4/wanda/p/fp16": (1.3, 1.4), "4:8/amber/p/fp16": (1.05, 1.06),
                "dense/none/none/fp16": (1.0, 1.0)}
    rows = [{"run_id": run_id, "pattern": run_id.split("/")[0], "precision": "fp16", "point": {"x": x},
             "end_to_end_speedup": speedups[run_id][index]}
            for run_id in speedups for index, x in enumerate((2, 1))]  # unsorted x: lines are drawn in x order
    plots.plot_speedup_lines(rows, "x", [1, 2], {}, tmp_path / "lines.png", "t")
    assert drawn == [[("2:4/amber/p/fp16", [1.2, 1.1]), ("2:4/wanda/p/fp16", [1.4, 1.3]), ("4:8 fp16", [1.06, 1.05])]]


def _line_rows(values, axis="x", runs=("2:4/amber/p/fp16", "4:8/amber/p/fp16", "dense/none/none/fp16")):
    """Rows of ``runs`` over one axis (speedup 1 + 0.1·run index + 0.01·value index)."""
    return [{"run_id": run_id, "pattern": run_id.split("/")[0], "precision": "fp16", "point": {axis: value},
             "end_to_end_speedup": 1 + 0.1 * index + 0.01 * position}
            for index, run_id in enumerate(runs) for position, value in enumerate(values)]


def _labelled_lines(ax):
    return [line for line in ax.lines if not line.get_label().startswith("_")]


def test_speedup_lines_keep_the_title_they_are_given():
    from amber_sim.study.plots import speedup_lines_figure

    rows = _line_rows([1, 2])
    assert speedup_lines_figure(rows, "x", [1, 2], {}, "llama.json on ascend_like").axes[0].get_title() == \
        "llama.json on ascend_like"  # was the last run's label
    rows = [{**row, "point": {**row["point"], "y": 5}} for row in rows]
    ax = speedup_lines_figure(rows, "x", [1, 2], {"y": 5}, "t").axes[0]
    assert ax.get_title() == "t\n(held: y=5)"
    assert [line.get_label() for line in _labelled_lines(ax)] == ["2:4 fp16", "4:8 fp16"]


def test_categorical_axis_draws_unjoined_points_side_by_side():
    from amber_sim.study.plots import speedup_lines_figure

    values = [["2:4"], ["2:4", "4:8", "8:16"]]
    fig = speedup_lines_figure(_line_rows(values, "sparsity.patterns"), "sparsity.patterns", values, {}, "t")
    ax = fig.axes[0]
    lines = _labelled_lines(ax)
    assert len(lines) == 2
    for line in lines:
        assert line.get_linestyle() == "None" and line.get_marker() == "o"
    xs = [list(line.get_xdata()) for line in lines]
    for category in (0, 1):  # each run's point sits in its category's slot, the runs apart
        placed = [x[category] for x in xs]
        assert all(abs(x - category) < 0.5 for x in placed) and len(set(placed)) == len(placed)
    fig.canvas.draw()
    assert [label.get_text() for label in ax.get_xticklabels()] == ["[2:4]", "[2:4,4:8,8:16]"]
    numeric = speedup_lines_figure(_line_rows([1, 2, 3]), "x", [1, 2, 3], {}, "t").axes[0]
    assert all(line.get_linestyle() == "-" for line in _labelled_lines(numeric))  # numbers: joined lines


def test_log_axis_ticks_show_the_axis_values():
    from amber_sim.study.plots import speedup_lines_figure

    values = [400.0, 800.0, 1600.0, 3200.0]
    fig = speedup_lines_figure(_line_rows(values, "memory.dram.bandwidth_gb_s"), "memory.dram.bandwidth_gb_s", values, {}, "t")
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == values
    assert [label.get_text() for label in ax.get_xticklabels()] == ["400", "800", "1600", "3200"]
    assert list(ax.get_xticks(minor=True)) == []
    many = [float(2 ** power) for power in range(30)]  # at most 12 labelled ticks, each an axis value
    ax = speedup_lines_figure(_line_rows(many), "x", many, {}, "t").axes[0]
    assert 0 < len(ax.get_xticks()) <= 12 and set(ax.get_xticks()) <= set(many)


def test_heatmap_panels_share_one_colour_scale(ascend):
    import numpy as np

    from amber_sim.study.plots import heatmap_figure

    rows = _heatmap_rows(load_trace(TRACE_DIR / "smollm2-135m.json"), ascend)
    fig = heatmap_figure(rows, "memory.dram.bandwidth_gb_s", [800.0, 1600.0],
                         "sparsity.sparsifier.elements_per_cycle", [64, 256], {}, "smollm2")
    images = [ax.images[0] for ax in _image_panels(fig)]
    assert len(images) > 1
    drawn = np.concatenate([np.asarray(image.get_array(), dtype=float).ravel() for image in images])
    assert {(image.norm.vmin, image.norm.vmax) for image in images} == {(drawn.min(), drawn.max())}
    assert len({id(image.norm) for image in images}) == 1
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colour_bars) == 1 and "all panels" in colour_bars[0].get_ylabel()


def test_sweep_roofline_labels_every_roof_with_its_precision_and_config():
    from amber_sim.study.plots import sweep_roofline_figure

    rows = [{"run_id": f"{pattern}/x/y/{precision}", "pattern": pattern, "precision": precision, "dram_bytes": 1e9,
             "prefill_ms": 1.0, "useful_macs": 1e11} for pattern in ("dense", "2:4") for precision in ("fp16", "w8a8")]
    rooflines = {"a": (354e12, 708e12, 400e9), "b": (354e12, 708e12, 800e9), "c": (354e12, 708e12, 800e9)}
    ax = sweep_roofline_figure(rows, rooflines, "t").axes[0]
    roofs = {line.get_label(): line for line in ax.lines}
    assert sorted(roofs) == sorted(f"{precision} roof: {peak} TFLOP/s, {bandwidth} GB/s"
                                   for precision, peak in (("fp16", 354), ("int8", 708)) for bandwidth in (400, 800))
    for label, line in roofs.items():
        assert max(line.get_ydata()) == pytest.approx(708 if label.startswith("int8") else 354)
        assert line.get_linestyle() == ("--" if label.startswith("int8") else "-")
    legends = [child for child in ax.get_children() if type(child).__name__ == "Legend"]
    assert any(sorted(text.get_text() for text in legend.texts) == sorted(roofs) for legend in legends)
    fp16_only = sweep_roofline_figure([row for row in rows if row["precision"] == "fp16"], rooflines, "t").axes[0]
    assert [line.get_label() for line in fp16_only.lines] == ["fp16 roof: 354 TFLOP/s, 400 GB/s",
                                                              "fp16 roof: 354 TFLOP/s, 800 GB/s"]
