"""The committed examples under reports/examples/ are what the current simulator gives (docs/studies.md):
a rule change that moves numbers without regenerating them fails here."""

from __future__ import annotations

import csv
import dataclasses
import shutil
import sqlite3
from pathlib import Path

import pytest

from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR, PROJECT_ROOT
from amber_sim.sim import MODEL_VERSION
from amber_sim.sim.engine import simulate_trace
from amber_sim.sim.parallel import shard_trace
from amber_sim.study.rescale import rescale_trace
from amber_sim.trace import load_trace

EXAMPLES = PROJECT_ROOT / "reports" / "examples"
MULTICHIP = EXAMPLES / "multichip-llama-3.1-70b-ascend_like"


def test_every_example_table_is_of_this_model_version():
    tables = sorted(EXAMPLES.rglob("results.sqlite"))
    assert len(tables) >= 3
    for table in tables:
        with sqlite3.connect(table) as db:
            (version,) = db.execute("SELECT value FROM meta WHERE key = 'model_version'").fetchone()
        assert version == str(MODEL_VERSION), f"{table.relative_to(PROJECT_ROOT)}: regenerate the examples"


def _csv_row(folder: Path, **wanted) -> dict[str, str]:
    with open(folder / "results.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if all(row[key] == value for key, value in wanted.items())]
    assert len(rows) == 1, wanted
    return rows[0]


@pytest.mark.parametrize("sp, compressed, overlap, seq_len", [
    ("True", "True", "True", 8192), ("False", "False", "False", 2048)])
def test_a_multichip_example_row_is_what_the_main_job_gives(sp, compressed, overlap, seq_len):
    """One committed row of the co-design example against the engine run here, as `amber-sim --tp 8 [--sp]` on
    the example's config and trace: the one-chip cycles agree exactly."""
    folder = MULTICHIP / "all-pruned"
    row = _csv_row(folder, sp=sp, **{"system.compressed_allgather": compressed,
                                      "system.overlap_collectives": overlap}, seq_len=str(seq_len),
                   run_id="2:4/amber/all/fp16")
    hw = load_hardware(HW_CONFIG_DIR / "ascend_like.yaml")
    hw = dataclasses.replace(hw, system=dataclasses.replace(hw.system, compressed_allgather=compressed == "True",
                                                            overlap_collectives=overlap == "True"))
    trace = rescale_trace(load_trace(MULTICHIP / "llama-3.1-70b-all-pruned-synth.json"), seq_len)
    sharded = shard_trace(trace, 8, sp == "True", compressed == "True", hw.sparsity.metadata)
    result = {run.run.id: run for run in simulate_trace(hw, sharded).runs}["2:4/amber/all/fp16"]
    assert int(row["prefill_cycles"]) == result.totals.cycles
    assert float(row["link_bytes"]) == pytest.approx(result.totals.link_bytes, rel=1e-12)


def test_the_example_summary_quotes_its_tables():
    """The summary's 2,048-token link saving of compressed all-gathers is the CSV's, and under the paper's
    policy (k, v, up dense) nothing is saved."""
    text = (MULTICHIP / "report.md").read_text()
    pruned = _csv_row(MULTICHIP / "all-pruned", sp="True", seq_len="2048", run_id="2:4/amber/all/fp16",
                      **{"system.compressed_allgather": "True", "system.overlap_collectives": "False"})
    assert f"cut the link bytes by {100 * float(pruned['link_savings']):.1f}%" in text
    paper = _csv_row(MULTICHIP / "paper-policy", sp="True", seq_len="2048", run_id="2:4/amber/amber-paper/fp16",
                     **{"system.compressed_allgather": "True", "system.overlap_collectives": "False"})
    assert float(paper["link_savings"]) == 0.0


def test_a_failed_regeneration_puts_the_committed_examples_back(tmp_path, monkeypatch):
    """examples.main deletes each example folder before rebuilding it: an error part-way (here in the second
    example) must leave the examples as they were, with no backup folder behind."""
    from amber_sim.study import examples

    root = tmp_path / "examples"
    (root / "sweep-smollm2-135m-ascend_like").mkdir(parents=True)
    (root / "sweep-smollm2-135m-ascend_like" / "report.md").write_text("committed")
    monkeypatch.setattr(examples, "EXAMPLES", root)

    def half_written(out_name: str) -> None:
        shutil.rmtree(root / out_name)
        (root / out_name).mkdir()
        (root / out_name / "report.md").write_text("half")

    def fails() -> None:
        raise RuntimeError("synth failed")

    monkeypatch.setattr(examples, "_sweep", half_written)
    monkeypatch.setattr(examples, "_multichip", fails)
    with pytest.raises(RuntimeError, match="synth failed"):
        examples.main()
    assert (root / "sweep-smollm2-135m-ascend_like" / "report.md").read_text() == "committed"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["examples"]
