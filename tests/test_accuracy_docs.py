"""The accuracy numbers the docs quote are the committed `amber-sim eval` results, never typed by hand."""

from __future__ import annotations

import re

import pytest

from amber_sim.cli import main
from amber_sim.errors import InputError
from amber_sim.paths import PROJECT_ROOT
from amber_sim.report.accuracy_tables import (documented_tables, grid_table, joined_results, load_results,
                                              markdown_table, render)

ROW = {"pattern": "8:16", "precision": "fp16", "criterion": "amber", "mitigation": "none", "policy": "calibrated",
       "calibration_metric": "loss", "skip_layers": "", "skip_linears": "0.q 3.gate", "perplexity": 24.8512,
       "perplexity_ratio": 1.23949, "top1_agreement": 0.73349, "sparsified_linear_flop_share": 0.54999}


def test_golden_markdown_table():
    """Rounded as the docs print them: perplexity to 2 places, ratios and agreement to 3, the share to 0.1%."""
    table = markdown_table({"rows": [ROW, {**ROW, "calibration_metric": "output-error", "skip_linears": "",
                                           "skip_layers": "1 3"}]},
                           ["pattern", "policy", "left_dense", "share", "perplexity", "ratio", "top1"])
    assert table.splitlines() == [
        "| pattern | policy | q/gate left dense | FLOP share sparsified | perplexity | × dense | top-1 agreement |",
        "|---|---|---|---:|---:|---:|---:|",
        "| 8:16 | calibrated (loss) | 0.q 3.gate | 55.0% | 24.85 | 1.239 | 0.733 |",
        "| 8:16 | calibrated (output-error) | layers 1 3 | 55.0% | 24.85 | 1.239 | 0.733 |"]
    with pytest.raises(InputError, match="unknown column 'speed'"):
        markdown_table({"rows": [ROW]}, ["speed"])


def test_golden_grid_table():
    """One line per pattern × criterion × mitigation, a column per policy with its share, the calibrated skip list
    last; a policy a line lacks is an empty cell."""
    rows = [{**ROW, "policy": "all", "calibration_metric": "", "skip_linears": "", "sparsified_linear_flop_share": 1.0},
            {**ROW, "calibration_metric": "output-error", "skip_linears": "", "skip_layers": "1 3 4",
             "sparsified_linear_flop_share": 0.559},
            {**ROW, "mitigation": "median-shift", "policy": "all", "calibration_metric": "", "skip_linears": "",
             "sparsified_linear_flop_share": 1.0, "perplexity": 30.0, "perplexity_ratio": 1.5}]
    assert grid_table({"rows": rows}).splitlines() == [
        "| pattern | criterion | mitigation | all (100.0%) | calibrated, output-error (55.9%) | "
        "calibrated: q/gate dense in layers |",
        "|---|---|---|---:|---:|---|",
        "| 8:16 | amber | none | 24.85 / 1.239 / 0.733 | 24.85 / 1.239 / 0.733 | 1 3 4 |",
        "| 8:16 | amber | median-shift | 30.00 / 1.500 / 0.733 |  |  |"]


def test_bad_results_are_one_line(tmp_path, capsys):
    (tmp_path / "accuracy.json").write_text("{\"rows\": 3}", "utf-8")
    assert main(["accuracy-table", str(tmp_path)]) == 2
    assert "accuracy.json: rows:" in capsys.readouterr().err
    assert main(["accuracy-table", str(tmp_path / "missing")]) == 2


def _documented(path):
    text = (PROJECT_ROOT / path).read_text("utf-8")
    return text, documented_tables(text)


def test_every_marked_table_is_its_committed_results():
    """Each table in docs/accuracy.md follows a marker naming its results folder under reports/ and its
    columns; the table must be exactly what `amber-sim accuracy-table` renders from the committed, complete
    results."""
    text, tables = _documented("docs/accuracy.md")
    assert tables, "docs/accuracy.md has no marked accuracy table"
    for sources, columns, offset in tables:
        assert all(source.startswith("reports/") for source in sources), sources
        data = joined_results([PROJECT_ROOT / source for source in sources])
        assert data["complete"], f"{sources}: the committed results are incomplete"
        expected = render(data, columns)
        assert text[offset:].lstrip("\n").startswith(expected), f"docs/accuracy.md: the table after the marker " \
            f"for {' + '.join(sources)} differs from its results (regenerate with amber-sim accuracy-table " \
            f"--columns {','.join(columns)})"



def _ratio(source: str, **match) -> float:
    rows = [row for row in load_results(PROJECT_ROOT / source)["rows"]
            if all(row[key] == value for key, value in match.items())]
    assert len(rows) == 1, (source, match)
    return rows[0]["perplexity_ratio"]


def test_the_readme_quotes_the_committed_results():
    """README's status line quotes the best 8:16 and 2:4 ratios and the unstructured bound at ≥ 55% sparsified,
    rounded to 2 places: they must be the committed results'."""
    readme = (PROJECT_ROOT / "README.md").read_text("utf-8")
    quoted = re.search(r"best (\d\.\d\d)× and (\d\.\d\d)×.*?reaches only (\d\.\d\d)×", readme, re.S)
    assert quoted, "README no longer states the best ratios; update this test with it"
    best_816 = _ratio("reports/accuracy/magnitude-816", pattern="8:16")
    best_24 = _ratio("reports/accuracy/amber-24", pattern="2:4")
    bound = _ratio("reports/accuracy/target-check", pattern="unstructured", calibration_metric="loss")
    assert quoted.groups() == (f"{best_816:.2f}", f"{best_24:.2f}", f"{bound:.2f}")


def test_the_readme_quotes_the_shipped_traces_own_accuracy():
    """README's description of traces/smollm2-135m.json quotes its dense, 8:16 and 2:4 fp16 perplexities and
    ratios: they must be the metrics recorded in the trace (rounded as printed)."""
    from amber_sim.trace import load_trace

    readme = (PROJECT_ROOT / "README.md").read_text("utf-8")
    quoted = re.search(r"dense (\d+\.\d\d), 8:16 (\d+\.\d\d) \((\d\.\d\d)×\), 2:4 (\d+\.\d\d) \((\d\.\d\d)×\)", readme)
    assert quoted, "README no longer quotes the shipped trace's accuracy; update this test with it"
    runs = {run.id: run.metrics for run in load_trace(PROJECT_ROOT / "traces" / "smollm2-135m.json").runs}
    dense = runs["dense/none/none/fp16"]
    sparse = {pattern: runs[f"{pattern}/amber-robust/calibrated/fp16"] for pattern in ("8:16", "2:4")}
    assert quoted.groups() == (f"{dense['perplexity']:.2f}", f"{sparse['8:16']['perplexity']:.2f}",
                               f"{sparse['8:16']['perplexity_ratio']:.2f}", f"{sparse['2:4']['perplexity']:.2f}",
                               f"{sparse['2:4']['perplexity_ratio']:.2f}")
