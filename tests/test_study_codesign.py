"""Pareto computation, the cost model and the two studies (amber_sim/study/)."""

import dataclasses

import pytest

from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR, TRACE_DIR
from amber_sim.study.cost import DRAM_INTERFACE_MM2_PER_GB_S, hardware_cost
from amber_sim.study.pareto import dominates, pareto_front
from amber_sim.study.studies import bottleneck_rows, codesign_rows, write_bottleneck, write_codesign
from amber_sim.trace import load_trace


def test_dominates_needs_strictly_better_somewhere():
    assert dominates((1, 1), (2, 1))
    assert not dominates((1, 1), (1, 1))
    assert not dominates((1, 3), (2, 1))


def test_pareto_front_by_hand():
    # (perplexity, -speedup, cost): b is beaten by a everywhere; c and d trade off; e duplicates a
    points = [(20.0, -1.2, 100.0), (21.0, -1.1, 110.0), (19.0, -1.0, 100.0), (25.0, -1.5, 120.0), (20.0, -1.2, 100.0)]
    assert pareto_front(points) == [True, False, True, True, True]


def test_pareto_single_objective_keeps_only_the_minimum():
    assert pareto_front([(3,), (1,), (2,)]) == [False, True, False]


@pytest.fixture(scope="module")
def configs():
    return [load_hardware(HW_CONFIG_DIR / name) for name in ("ascend_like.yaml", "flexible_nm.yaml", "a100_like.yaml")]


def test_cost_by_hand_for_ascend_like(configs):
    """ascend_like: 24 cores × 4096 lanes, M_max 16 (8:16), index metadata 4 bits, dedicated sparsifier.

    dense_core_mm2 is logic only; the L2 and every core's L1 + L0A + L0B + L0C are charged once, as SRAM."""
    cost = hardware_cost(configs[0])
    lanes = 24 * 4096
    assert cost.dense_mm2 == pytest.approx(24 * 8.0)
    assert cost.mux_mm2 == pytest.approx(lanes * 16 * 0.00002)
    assert cost.metadata_mm2 == pytest.approx(lanes * 4 * 0.00001)
    assert cost.sparsifier_mm2 == pytest.approx(24 * 0.05)
    sram_mib = 192 + 24 * (512 + 64 + 64 + 128) / 1024
    assert cost.sram_mm2 == pytest.approx(0.45 * sram_mib)
    assert cost.dram_interface_mm2 == pytest.approx(DRAM_INTERFACE_MM2_PER_GB_S * 1600)


def test_buffers_are_charged_once_as_sram(configs):
    """Doubling ascend_like's L1 (512 → 1024 KiB on 24 cores) adds 24 × 0.5 MiB × 0.45 mm²/MiB = 5.4 mm²,
    all of it SRAM: the dense core area does not move (it excludes the buffers)."""
    base = configs[0]
    bigger = dataclasses.replace(base, memory=dataclasses.replace(
        base.memory, l1=dataclasses.replace(base.memory.l1, size_kb=1024)))
    before, after = hardware_cost(base), hardware_cost(bigger)
    assert after.dense_mm2 == before.dense_mm2 == pytest.approx(24 * 8.0)
    assert after.sram_mm2 - before.sram_mm2 == pytest.approx(5.4)
    assert after.total_mm2 - before.total_mm2 == pytest.approx(5.4)


def test_flexible_nm_costs_more_than_ascend_like(configs):
    ascend, flexible = hardware_cost(configs[0]), hardware_cost(configs[1])
    assert flexible.mux_mm2 == pytest.approx(2 * ascend.mux_mm2)  # M_max 32 vs 16
    assert flexible.metadata_mm2 == pytest.approx(ascend.metadata_mm2 * 5 / 4)  # 5-bit vs 4-bit indices
    assert flexible.total_mm2 > ascend.total_mm2


def test_codesign_rows_pareto_is_consistent(configs):
    trace = load_trace(TRACE_DIR / "smollm2-135m.json")
    rows = codesign_rows(trace, configs)
    assert len(rows) == len(configs) * len(trace.runs)
    front = [row for row in rows if row["pareto"]]
    assert front
    for row in rows:  # a point is on the front iff nothing dominates it
        key = (row["perplexity"], -row["end_to_end_speedup"], row["cost_mm2"])
        beaten = any(dominates((o["perplexity"], -o["end_to_end_speedup"], o["cost_mm2"]), key) for o in rows)
        assert row["pareto"] == (not beaten)
    cheapest_dense = min((r for r in rows if r["pattern"] == "dense"), key=lambda r: r["cost_mm2"])
    assert cheapest_dense["end_to_end_speedup"] == 1.0
    # the best perplexity overall is dense; the dense run on the cheapest hardware is on the front
    assert cheapest_dense["pareto"]


def test_bottleneck_shares_and_headroom(configs):
    trace = load_trace(TRACE_DIR / "smollm2-135m.json")
    rows = bottleneck_rows(trace, configs[:1])
    for row in rows:
        shares = sum(row[f"{name}_share"] for name in ("compute", "memory", "sparsifier", "vector"))
        assert shares == pytest.approx(1.0, abs=1e-12)
        assert row[f"speedup_if_free_{row['largest']}"] >= row["end_to_end_speedup"]
        assert row["pattern"] != "dense" or row["sparsifier_ms"] == 0.0  # dense runs select nothing


def test_study_files(tmp_path, configs):
    trace = load_trace(TRACE_DIR / "smollm2-135m.json")
    out = write_codesign(trace, configs[:2], tmp_path / "codesign")
    assert set(out.files) <= {p.name for p in (tmp_path / "codesign").iterdir()}
    assert "Pareto" in (tmp_path / "codesign" / "report.md").read_text()
    out = write_bottleneck(trace, configs[:1], tmp_path / "bottleneck")
    text = (tmp_path / "bottleneck" / "report.md").read_text()
    assert "What must improve next" in text
    assert len((tmp_path / "bottleneck" / "bottleneck.csv").read_text().splitlines()) == 1 + len(trace.runs)


def _boxes_overlap(boxes):
    return [(a, b) for index, a in enumerate(boxes) for b in boxes[index + 1:] if a.overlaps(b)]


def _crowded_front():
    """12 Pareto-optimal points close together (cost ↑ with speedup ↑), and 6 points they dominate."""
    rows = [{"hw_name": f"hw{i}", "run_id": f"2:4/a/b/{'fp16' if i % 2 else 'w8a8'}", "pattern": "2:4",
             "precision": "fp16" if i % 2 else "w8a8", "perplexity": None, "cost_mm2": 300.0 + i,
             "end_to_end_speedup": 1.0 + 0.002 * i} for i in range(12)]
    rows += [{**row, "hw_name": f"slow{i}", "end_to_end_speedup": row["end_to_end_speedup"] - 0.05}
             for i, row in enumerate(rows[:6])]
    for row, on_front in zip(rows, pareto_front([(-row["end_to_end_speedup"], row["cost_mm2"]) for row in rows])):
        row["pareto"] = on_front
    return rows


def test_pareto_labels_are_numbers_that_do_not_overlap_with_a_key():
    from amber_sim.study.plots import pareto_figure

    rows = _crowded_front()
    front = [row for row in rows if row["pareto"]]
    assert len(front) == 12
    fig = pareto_figure(rows, "t")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [text for text in ax.texts]
    assert sorted(int(text.get_text()) for text in labels) == list(range(1, 13))  # only the front, numbered
    assert _boxes_overlap([text.get_window_extent(renderer) for text in labels]) == []
    key = [text.get_text() for text in ax.get_legend().texts]
    assert sorted(key) == sorted(f"{number}: {row['run_id']} @ {row['hw_name']}" for number, row in
                                 enumerate(sorted(front, key=lambda row: row["cost_mm2"]), start=1))
    for text in labels:  # each number is drawn next to the point its key line names
        row = next(row for row in front if key[int(text.get_text()) - 1].endswith(f"@ {row['hw_name']}"))
        assert tuple(text.xy) == (row["cost_mm2"], row["end_to_end_speedup"])


def test_pareto_plot_of_a_study_labels_only_the_front(configs):
    from amber_sim.study.plots import pareto_figure

    rows = codesign_rows(load_trace(TRACE_DIR / "smollm2-135m.json"), configs)
    fig = pareto_figure(rows, "t")
    fig.canvas.draw()
    places = {(row["perplexity"], row["end_to_end_speedup"]) for row in rows if row["pareto"]}
    texts = fig.axes[0].texts
    assert {tuple(text.xy) for text in texts} == places
    assert _boxes_overlap([text.get_window_extent(fig.canvas.get_renderer()) for text in texts]) == []
    assert "of the same precision" in fig.axes[0].get_ylabel()


def test_speedup_cost_says_which_precision_each_speedup_is_for(configs):
    from amber_sim.study.plots import speedup_cost_figure

    rows = codesign_rows(load_trace(TRACE_DIR / "smollm2-135m.json"), configs)
    assert {row["precision"] for row in rows} == {"fp16", "w8a8"}
    fig = speedup_cost_figure(rows, "t")
    panels = [ax for ax in fig.axes if ax.collections]
    assert [ax.get_title() for ax in panels] == ["fp16 runs", "w8a8 runs"]
    for ax, precision in zip(panels, ("fp16", "w8a8")):
        assert ax.get_ylabel() == f"end-to-end prefill speedup vs dense {precision} (×)"
        drawn = sorted(tuple(point) for collection in ax.collections for point in collection.get_offsets())
        assert drawn == sorted((row["cost_mm2"], row["end_to_end_speedup"]) for row in rows
                               if row["precision"] == precision)
        assert len(ax.texts) == 0  # no labels at the points, so none overlap: colours and a legend instead
    assert "each against the dense run of that precision" in fig.get_suptitle()
    legend = fig.axes[-1].get_legend() or next(ax.get_legend() for ax in panels if ax.get_legend())
    assert sorted(text.get_text() for text in legend.texts) == sorted({row["pattern"] for row in rows})
    fig.canvas.draw()
    tops = [child for ax in panels for child in ax.child_axes]  # hardware named along the top of each panel
    names = {label.get_text() for top in tops for label in top.get_xticklabels()}
    assert names == {hw.name for hw in configs}
