"""The systolic model against SCALE-Sim v3, using the committed reference (SCALE-Sim itself is not run here)."""

from __future__ import annotations

import pytest

from amber_sim.errors import InputError
from amber_sim.paths import PROJECT_ROOT
from amber_sim.validate.compare import compare_rows, summarize
from amber_sim.validate.scalesim_cases import CASES
from amber_sim.validate.scalesim_runner import SCALESIM_VERSION, closed_form, ensure_venv, load_reference

REFERENCE = PROJECT_ROOT / "validation" / "scalesim_reference.csv"


@pytest.fixture(scope="module")
def reference_rows():
    return load_reference(REFERENCE)


def test_reference_covers_the_case_set(reference_rows):
    assert [row["case"] for row in reference_rows] == [case.name for case in CASES]
    assert {row["scalesim_version"] for row in reference_rows} == {SCALESIM_VERSION}
    assert {row["dataflow"] for row in reference_rows} == {"os", "ws", "is"}
    assert any(row["pattern"] != "dense" for row in reference_rows)
    for row in reference_rows:  # the exact config text of each run is committed beside the CSV
        assert (REFERENCE.parent / "scalesim_configs" / f"{row['config_digest']}.cfg").is_file()


def test_closed_form_reproduces_every_reference_run(reference_rows):
    for row in reference_rows:
        expected = closed_form(int(row["scalesim_M"]), int(row["scalesim_N"]), int(row["scalesim_K"]), int(row["rows"]),
                               int(row["cols"]), row["dataflow"], row["scalesim_sparsity"])
        assert expected["cycles"] == int(row["total_cycles"]), row["case"]


def test_stall_free_systolic_cycles_agree_with_scalesim(reference_rows):
    """Exact agreement, integer cycles, on every dense and N:M case of the committed SCALE-Sim set.

    amber-sim's systolic folds follow SCALE-Sim's closed forms and its pipeline adds no cycle when
    memory is ideal, so any drift in the pipeline, the mapping search or the fold formulas is an error
    of at least one cycle and fails here. (The validation issue's targets, dense within 5% per GEMM and
    2% on average, N:M within 10%, are implied by exactness; `amber-sim validate` prints those errors.)
    """
    comparisons, amber_wall_s = compare_rows(reference_rows)
    summary = summarize(comparisons, amber_wall_s)
    assert summary.dense_max_abs_error == 0.0 and summary.sparse_max_abs_error == 0.0
    assert all(c.amber_cycles == c.scalesim_cycles for c in comparisons)
    for c in comparisons:
        assert c.amber_util == pytest.approx(c.scalesim_util, abs=1e-5), c.case
    # With SCALE-Sim's SRAM sizes used as double-buffered tiles amber-sim may need more, never fewer, cycles.
    assert all(c.amber_matched_sram_cycles is None or c.amber_matched_sram_cycles >= c.scalesim_cycles
               for c in comparisons)


def test_missing_scalesim_venv_says_how_to_fix(tmp_path):
    with pytest.raises(InputError, match="no working SCALE-Sim"):
        ensure_venv(tmp_path / "no-venv", create=False)
