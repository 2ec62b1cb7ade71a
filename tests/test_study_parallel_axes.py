"""Sweep axes tp and sp (docs/studies.md §Axes): a sweep point that splits the prefill over chips gives the
main job's --tp/--sp numbers, tp = 1 is the single-chip sweep, and what cannot be split is refused first."""

from __future__ import annotations

import dataclasses
import re
import sqlite3

import pytest

from amber_sim.cli import main
from amber_sim.errors import InputError
from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR, TRACE_DIR
from amber_sim.sim.engine import simulate_trace
from amber_sim.sim.parallel import shard_trace
from amber_sim.study.axes import parse_axes
from amber_sim.study.store import DB_NAME, ResultStore
from amber_sim.study.sweep import prepare_job, run_sweep
from amber_sim.trace import load_trace


@pytest.fixture(scope="module")
def llama():
    return load_trace(TRACE_DIR / "llama.json")


@pytest.fixture(scope="module")
def all_pruned(tmp_path_factory):
    """LLaMA-3.1-8B at 512 tokens with every linear 2:4-pruned (synth --policy all): q/k/v and gate/up read
    their norm pruned alike, so their all-gathers can cross the links compressed."""
    out = tmp_path_factory.mktemp("synth") / "all.json"
    assert main(["synth", "--model", "llama-3.1-8b", "--seq-len", "512", "--patterns", "dense,2:4",
                 "--policy", "all", "--out", str(out)]) == 0
    return load_trace(out)


@pytest.fixture(scope="module")
def a100():
    return load_hardware(HW_CONFIG_DIR / "a100_like.yaml")


def _rows(tmp_path, hw, trace, specs, seq_lens=()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    job = prepare_job(hw, trace, parse_axes(specs), seq_lens, 1000)
    outcome = run_sweep(job, tmp_path / DB_NAME, workers=1)
    with ResultStore(tmp_path / DB_NAME) as store:
        return store.rows(list(outcome.keys))


def test_parse_tp_and_sp():
    tp, sp = parse_axes(["tp=1:8:x2", "sp=false,true"])
    assert tp.values == (1, 2, 4, 8) and sp.values == (False, True)
    for bad in ("tp=0", "tp=2.5", "sp=maybe", "sp=1"):
        with pytest.raises(InputError):
            parse_axes([bad])
    with pytest.raises(InputError, match="tp"):  # a misspelt axis suggests it
        parse_axes(["tpp=2"])


@pytest.mark.parametrize("trace_name", ["llama", "all_pruned"])
def test_a_tp_point_is_the_main_jobs_tp_run(tmp_path, request, trace_name, a100):
    """The sweep row of tp = 8 (sp, with and without compressed all-gathers) has exactly the cycles, link bytes
    and collective share the engine gives the trace sharded as `amber-sim --tp 8 --sp` shards it; tp = 1 has
    the single-chip engine's cycles. A sweep that forgot to shard, or sharded with the base config's
    compressed_allgather instead of the point's, fails here (on the all-pruned trace, where it matters)."""
    trace = request.getfixturevalue(trace_name)
    rows = _rows(tmp_path, a100, trace, ["tp=1,8", "sp=true", "system.compressed_allgather=false,true"])
    assert len({(row["trace_hash"], row["config_hash"]) for row in rows}) == 4
    for row in rows:
        point = row["point"]
        system = dataclasses.replace(a100.system, compressed_allgather=point["system.compressed_allgather"])
        hw = dataclasses.replace(a100, system=system)
        sharded = shard_trace(trace, point["tp"], True, system.compressed_allgather, hw.sparsity.metadata)
        result = {run.run.id: run for run in simulate_trace(hw, sharded).runs}[row["run_id"]]
        assert row["tp"] == point["tp"]
        assert row["prefill_cycles"] == result.totals.cycles
        assert row["link_bytes"] == pytest.approx(result.totals.link_bytes, rel=1e-12)
        collective = result.totals.cycles_by_category["collective"]
        assert row["collective_cycles"] == collective
        assert row["collective_share"] == pytest.approx(collective / result.totals.cycles, rel=1e-12)
        if point["tp"] == 1:
            assert row["collective_cycles"] == 0 and row["link_bytes"] == 0.0
        else:
            assert row["collective_share"] > 0.01
    saving = {row["point"]["system.compressed_allgather"]: row["link_savings"] for row in rows
              if row["pattern"] == "2:4" and row["point"]["tp"] == 8}
    assert saving[False] == 0.0
    if trace_name == "all_pruned":
        # Hand estimate: per layer the chip sends (p-1)/p of 2 all-gathers (4096 wide) and 2 reduce-scatters
        # (4096 wide) of 512 tokens; 2:4 gathers 1.125 of 2 bytes per entry (index metadata), so the saving is
        # (1 - 1.125/2) * 2/4 = 0.219 of the layer traffic, a little less with the dense LM head's gather.
        assert saving[True] == pytest.approx(0.219, abs=0.01)
    else:
        assert saving[True] == 0.0  # the paper's policy keeps k, v, up dense: nothing crosses compressed


def test_tp_1_rows_equal_a_sweep_without_tp(tmp_path, llama, a100):
    with_axis = _rows(tmp_path / "a", a100, llama, ["tp=1", "memory.dram.bandwidth_gb_s=1000,2000"])
    without = _rows(tmp_path / "b", a100, llama, ["memory.dram.bandwidth_gb_s=1000,2000"])
    numbers = ("prefill_cycles", "baseline_cycles", "end_to_end_speedup", "dram_bytes")
    assert [[row[name] for name in numbers] for row in with_axis] == [[row[name] for name in numbers] for row in without]


def test_sp_at_one_chip_changes_nothing_but_keeps_its_rows(tmp_path, llama, a100):
    rows = _rows(tmp_path, a100, llama, ["sp=false,true"])
    by_sp = {sp: [row["prefill_cycles"] for row in rows if row["point"]["sp"] is sp] for sp in (False, True)}
    assert len(by_sp[False]) == len(by_sp[True]) == len(llama.runs)
    assert by_sp[False] == by_sp[True]


def test_faster_links_never_slow_a_tp_point(tmp_path, llama, a100):
    rows = _rows(tmp_path, a100, llama, ["tp=8", "system.link_bandwidth_gb_s=12.5,25,50,100"])
    for run_id in {row["run_id"] for row in rows}:
        cycles = [row["prefill_cycles"] for row in sorted(rows, key=lambda r: r["point"]["system.link_bandwidth_gb_s"])
                  if row["run_id"] == run_id]
        assert cycles == sorted(cycles, reverse=True) and cycles[0] > cycles[-1]


def test_what_cannot_be_split_is_refused_before_any_work(tmp_path, llama, a100, capsys):
    with pytest.raises(InputError, match=r"^--vary: at the point tp=16: .*fewer than tp 16"):
        prepare_job(a100, llama, parse_axes(["tp=8,16"]), (), 100)
    single = load_hardware(HW_CONFIG_DIR / "edge_npu.yaml")
    assert single.system is None
    with pytest.raises(InputError, match="single chip"):
        prepare_job(single, llama, parse_axes(["tp=1,2"]), (), 100)
    out = tmp_path / "sweep"
    assert main(["sweep", "--hw", "a100_like.yaml", "--trace", "llama.json", "--vary", "tp=3",
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err  # a shape that does not split names the op, the point and the axis
    assert re.search(r"--vary: layers\.\d+\.[\w.]+: at the point tp=3: \w+ \d+ does not split over 3 chips", error), error
    assert "--tp" not in error and not out.exists()


def test_a_table_without_the_parallel_columns_is_refused(tmp_path):
    db = tmp_path / DB_NAME
    with ResultStore(db):
        pass
    with sqlite3.connect(db) as connection:
        connection.execute("ALTER TABLE results DROP COLUMN link_savings")
    with pytest.raises(InputError, match="missing: link_savings"):
        ResultStore(db)
