"""The accuracy numbers the docs quote are the committed `amber-sim eval` results, never typed by hand."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest

from amber_sim.cli import main
from amber_sim.errors import InputError
from amber_sim.paths import PROJECT_ROOT
from amber_sim.report.accuracy_tables import (documented_tables, grid_table, joined_results, load_results,
                                              markdown_table, mitigation_table, render)

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


def test_golden_mitigation_table():
    """A line per mitigation in first-seen order, a column per pattern + criterion, × dense / top-1 to 3 places,
    the span of the shares in the first header; a pair a mitigation lacks is an empty cell; two rows for one cell
    are refused (a table that silently kept one would hide a rerun)."""
    rows = [ROW, {**ROW, "criterion": "gradient", "perplexity_ratio": 1.2216, "sparsified_linear_flop_share": 0.5516},
            {**ROW, "mitigation": "scaling", "perplexity_ratio": 1.3}]
    assert render({"rows": rows}, ["by-mitigation"]).splitlines() == [
        "| mitigation (55.0%–55.2% sparsified) | 8:16 amber | 8:16 gradient |",
        "|---|---:|---:|",
        "| none | 1.239 / 0.733 | 1.222 / 0.733 |",
        "| scaling | 1.300 / 0.733 |  |"]
    assert mitigation_table({"rows": [ROW]}).splitlines()[0] == "| mitigation (55.0% sparsified) | 8:16 amber |"
    with pytest.raises(InputError, match="two rows for 8:16 amber none"):
        mitigation_table({"rows": [ROW, ROW]})
    with pytest.raises(InputError, match="no rows"):
        mitigation_table({"rows": []})


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


def target_rows():
    """(folder, row) of every committed eval result measured as the issues' targets say: 4 windows of 2,048
    evaluation tokens, the calibrated policy, at least 55% of linear FLOPs sparsified."""
    for path in sorted((PROJECT_ROOT / "reports" / "accuracy").glob("*/accuracy.json")):
        folder = path.parent.relative_to(PROJECT_ROOT).as_posix()
        data = json.loads(path.read_text("utf-8"))
        if (data["seq_len"], data["windows"]) != (2048, 4) or not _committed(f"{folder}/accuracy.json"):
            continue
        for row in data["rows"]:
            if row["policy"] == "calibrated" and row["sparsified_linear_flop_share"] >= 0.55 - 1e-9:
                yield folder, row


def best_committed_ratio(pattern: str) -> tuple[float, str]:
    """The lowest × dense of ``pattern`` over :func:`target_rows`, with the folder it comes from."""
    return min(((row["perplexity_ratio"], folder) for folder, row in target_rows() if row["pattern"] == pattern),
               default=(math.inf, ""))


def test_the_readme_quotes_the_committed_results():
    """README's status line quotes the best 8:16 and 2:4 ratios at ≥ 55% sparsified over every committed
    4 × 2,048-token result, and the unstructured bound, rounded to 2 places: they must be the committed results'
    (a new best left out of README fails here)."""
    readme = (PROJECT_ROOT / "README.md").read_text("utf-8")
    quoted = re.search(r"best (\d\.\d\d)×(?: \([^)]*\))? and (\d\.\d\d)×.*?reaches only (\d\.\d\d)×", readme, re.S)
    assert quoted, "README no longer states the best ratios; update this test with it"
    (best_816, _), (best_24, _) = best_committed_ratio("8:16"), best_committed_ratio("2:4")
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


# ---------------------------------------------------------------- the probes' tables (benchmarks/probe_accuracy_levers.py)

PROBE_MARKER = re.compile(r"<!-- probe-table: (?P<sources>[^>]+?) -->")
PROBE_SECTIONS = ("## Why the gap stays: where the error comes from", "## Levers probed beyond the issue's definitions")
ROLE_LABELS = {"amber-paper": "q + gate + down (amber-paper)", "q": "q_proj", "k": "k_proj", "v": "v_proj",
               "o": "o_proj", "gate": "gate_proj", "up": "up_proj", "down": "down_proj"}


def _section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def _committed(path: str) -> bool:
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        return (PROJECT_ROOT / path).is_file()
    listed = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=PROJECT_ROOT, capture_output=True)
    return listed.returncode == 0


def probe_tables(section: str) -> list[tuple[list[str], list[str]]]:
    """(probe folders, table lines) of every Markdown table in a section; a table must follow, on the line just
    before it, a ``<!-- probe-table: reports/accuracy/probe-x + ... -->`` marker naming committed probe results."""
    lines = section.splitlines()
    tables = []
    for index, line in enumerate(lines):
        if not line.startswith("|") or (index and lines[index - 1].startswith("|")):
            continue
        marker = PROBE_MARKER.fullmatch(lines[index - 1]) if index else None
        assert marker, f"the table at {line[:60]!r} has no <!-- probe-table: ... --> marker naming its committed source"
        sources = [source.strip() for source in marker["sources"].split("+")]
        for source in sources:
            assert source.startswith("reports/accuracy/probe-"), source
            assert _committed(f"{source}/probe.json"), f"{source}/probe.json is not committed"
        end = index
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        tables.append((sources, lines[index:end]))
    return tables


def _probe(source: str) -> dict:
    return json.loads((PROJECT_ROOT / source / "probe.json").read_text("utf-8"))


def roles_table(probe: dict) -> list[str]:
    """The role table as docs/accuracy.md prints it: shares to 0.1%, nats to 3 places, nats per % to 4."""
    patterns = probe["settings"]["patterns"]
    rows = probe["results"]["patterns"]
    lines = ["| pruned | share of linear FLOPs | " + " | ".join(f"{p}: + nats | per % of FLOPs" for p in patterns) + " |",
             "|---|" + "---:|" * (1 + 2 * len(patterns))]
    for key, label in ROLE_LABELS.items():
        share = {f"{rows[p][key]['flop_share']:.1%}" for p in patterns}
        assert len(share) == 1, (key, share)
        lines.append(f"| {label} | {share.pop()} | " + " | ".join(
            f"{rows[p][key]['nats']:.3f} | {rows[p][key]['nats_per_percent']:.4f}" for p in patterns) + " |")
    return lines


def _cells(table: list[str]) -> dict[str, str]:
    """Probe name (the first cell, back-quotes and any note after them dropped) -> the rest of the row."""
    cells: dict[str, str] = {}
    for line in table[2:]:
        first, *rest = [cell.strip() for cell in line.strip("|").split("|")]
        name = re.match(r"`([\w-]+)`", first)
        assert name, line
        cells[name[1] + (" " + first[name.end():].strip() if first[name.end():].strip() else "")] = " | ".join(rest)
    return cells


def _found(pattern: str, cell: str) -> tuple[str, ...]:
    found = re.search(pattern, cell)
    assert found, f"docs/accuracy.md no longer states {pattern!r} in {cell[:80]!r}...; update this test with it"
    return found.groups()


def check_levers_table(table: list[str], probes: dict[str, dict]) -> None:
    """Every number the levers table quotes, at the precision it prints, against the committed probe.json files."""
    cells = _cells(table)
    single = probes["single-linear"]
    results, settings = single["results"], single["settings"]
    cell = cells["single-linear"]
    assert _found(r"(\d+:\d+), ([\d.]+)% sparsified", cell) == (settings["pattern"],
                                                                f"{100 * results['sparsified_linear_flop_share']:.1f}")
    counts = _found(r"\((\d+) q, (\d+) k, (\d+) v, (\d+) o, (\d+) gate, (\d+) up, (\d+) down\)", cell)
    assert counts == tuple(str(results["pruned_per_role"].get(role, 0))
                           for role in ("q", "k", "v", "o", "gate", "up", "down"))
    assert _found(r"the singles predict ([−+-][\d.]+) nats", cell)[0].replace("−", "-") == f"{results['predicted_nats']:+.3f}"
    assert _found(r"the set costs ([+−-][\d.]+) nats on the calibration tokens \(([\d.]+)×\) and ([\d.]+)× on "
                  r"(\d+) × 2,048 evaluation tokens", cell) == (
        f"{results['measured_calibration_nats']:+.3f}", f"{results['calibration_ratio']:.3f}",
        f"{results['evaluation_ratio']:.3f}", str(settings["evaluation_windows"]))
    assert settings["window_tokens"] == 2048 and settings["target_share"] == 0.55
    loss_policy = _ratio("reports/accuracy/target-check", pattern=settings["pattern"], policy="calibrated",
                         calibration_metric="loss")
    assert _found(r"the q/gate `loss` policy's ([\d.]+)×", cell) == (f"{loss_policy:.3f}",)

    fisher = probes["fisher"]
    cell = cells["fisher"]
    pattern, windows, weighted, plain = _found(r"(\d+:\d+) amber-paper, (\d+) × 2,048 tokens: ([\d.]+)× against "
                                               r"([\d.]+)× for plain `amber`", cell)
    ratios = fisher["results"]["patterns"][pattern]
    assert (windows, weighted, plain) == (str(fisher["settings"]["evaluation_windows"]),
                                          f"{ratios['gradient_weighted_ratio']:.3f}", f"{ratios['amber_ratio']:.3f}")
    assert fisher["settings"]["window_tokens"] == 2048

    ls = probes["ls-compensation"]
    for name, key in (("ls-compensation", "mean_refitted"), ("ls-compensation (its last column)", "mean_bias_corrected")):
        quoted = re.findall(r"(\d+:\d+) ([\d.]+) → ([\d.]+)", cells[name])
        assert [pattern for pattern, *_ in quoted] == ls["settings"]["patterns"], (name, quoted)
        for pattern, before, after in quoted:
            result = ls["results"]["patterns"][pattern]
            assert (before, after) == (f"{result['mean_pruned']:.3f}", f"{result[key]:.3f}"), (name, pattern)
    linears = _found(r"of (\d+) linears", cells["ls-compensation"])[0]
    assert {len(result["linears"]) for result in ls["results"]["patterns"].values()} == {int(linears)}
    assert _found(r"λ = ([\d.]+) × mean diagonal", cells["ls-compensation"]) == (str(ls["settings"]["ridge"]),)
    assert "roles" in cells  # its numbers are the role table's


def check_roles_prose(section: str, probe: dict) -> None:
    """The numbers around the role table that restate it (8:16)."""
    rows = probe["results"]["patterns"]["8:16"]
    assert _found(r"\(dense ([\d.]+) nats\)", section) == (f"{probe['results']['dense_calibration_loss']:.3f}",)
    paper = rows["amber-paper"]
    assert _found(r"amber-paper: ([\d.]+) measured, ([\d.]+) summed", section) == (
        f"{paper['nats']:.3f}", f"{paper['summed_role_nats']:.3f}")
    cheap = ("q", "down")
    assert _found(r"q_proj and down_proj are cheap \(([\d.]+) nats per\s+percent of FLOPs at 8:16\) but only "
                  r"([\d.]+)% of the FLOPs \(([\d.]+) nats\)", section) == (
        f"{rows['q']['nats_per_percent']:.4f}", f"{100 * sum(rows[r]['flop_share'] for r in cheap):.1f}",
        f"{sum(rows[r]['nats'] for r in cheap):.3f}")
    assert {f"{rows[r]['nats_per_percent']:.4f}" for r in cheap} == {f"{rows['q']['nats_per_percent']:.4f}"}
    others = [rows[r]["nats_per_percent"] for r in ("k", "v", "o", "gate", "up")]
    assert _found(r"every other role costs ([\d.]+)-([\d.]+)\s+nats per percent", section) == (
        f"{min(others):.3f}", f"{max(others):.3f}")
    # the rest of the 55%: o, k and v whole, then gate_proj's part of what is left, at its cost per percent
    rest = 0.55 - sum(rows[r]["flop_share"] for r in cheap)
    whole = ("o", "k", "v")
    rest_nats = sum(rows[r]["nats"] for r in whole) + \
        100 * (rest - sum(rows[r]["flop_share"] for r in whole)) * rows["gate"]["nats_per_percent"]
    total = sum(rows[r]["nats"] for r in cheap) + rest_nats
    assert _found(r"so the remaining ([\d.]+)% costs at least ([\d.]+) nats \(o, k, v, then (\d+)% of gate\), "
                  r"([\d.]+) nats\s+\(([\d.]+)×\) in all", section) == (
        f"{100 * rest:.1f}", f"{rest_nats:.3f}", f"{100 * (rest - sum(rows[r]['flop_share'] for r in whole)):.0f}",
        f"{total:.2f}", f"{math.exp(total):.2f}")


def test_the_probe_tables_are_their_committed_probes():
    """The role table and the levers table in docs/accuracy.md quote benchmarks/probe_accuracy_levers.py's
    committed reports/accuracy/probe-*/probe.json, number by number at the precision printed."""
    text = (PROJECT_ROOT / "docs" / "accuracy.md").read_text("utf-8")
    why, levers = (_section(text, heading) for heading in PROBE_SECTIONS)
    (roles_sources, roles), = probe_tables(why)
    assert roles_sources == ["reports/accuracy/probe-roles"]
    probe = _probe(roles_sources[0])
    assert probe["probe"] == "roles" and probe["settings"]["calibration_tokens"] == 1024
    assert roles == roles_table(probe), "docs/accuracy.md: the role table differs from reports/accuracy/probe-roles " \
        "(expected:\n" + "\n".join(roles_table(probe)) + ")"
    check_roles_prose(why, probe)

    (levers_sources, table), = probe_tables(levers)
    probes = {_probe(source)["probe"]: _probe(source) for source in levers_sources}
    assert set(probes) == {"single-linear", "fisher", "ls-compensation", "roles"}, levers_sources
    check_levers_table(table, probes)


def test_the_probe_table_check_can_fail():
    """A digit changed in the doc, a table without its marker, or a source never committed is caught."""
    text = (PROJECT_ROOT / "docs" / "accuracy.md").read_text("utf-8")
    why, levers = (_section(text, heading) for heading in PROBE_SECTIONS)
    (_, roles), = probe_tables(why)
    probe = _probe("reports/accuracy/probe-roles")
    for pattern, rows in probe["results"]["patterns"].items():  # a probe rerun that moved one cost by 0.001 nats
        for role in rows:
            moved = json.loads(json.dumps(probe))
            moved["results"]["patterns"][pattern][role]["nats"] += 0.001
            assert roles_table(moved) != roles, (pattern, role)
    with pytest.raises(AssertionError, match=r"3\.000"):
        check_roles_prose(why.replace(f"(dense {probe['results']['dense_calibration_loss']:.3f}", "(dense 3.000"), probe)
    (sources, table), = probe_tables(levers)
    probes = {_probe(source)["probe"]: _probe(source) for source in sources}
    single = probes["single-linear"]["results"]
    ls = probes["ls-compensation"]["results"]["patterns"]["8:16"]
    fisher = probes["fisher"]["results"]["patterns"]["8:16"]
    for old in (f"{single['evaluation_ratio']:.3f}×", f"{single['calibration_ratio']:.3f}×",
                f"{single['pruned_per_role']['q']} q", f"→ {ls['mean_refitted']:.3f}", f"→ {ls['mean_bias_corrected']:.3f}",
                f"{fisher['gradient_weighted_ratio']:.3f}×", f"{fisher['amber_ratio']:.3f}×"):
        new = re.sub(r"\d(?=\D*$)", lambda digit: str((int(digit[0]) + 1) % 10), old)
        bad = [line.replace(old, new) for line in table]
        assert bad != table, old
        with pytest.raises(AssertionError):
            check_levers_table(bad, probes)
    with pytest.raises(AssertionError, match="no <!-- probe-table"):
        probe_tables(re.sub(r"<!-- probe-table: [^>]+ -->\n", "", why))
    with pytest.raises(AssertionError, match="is not committed"):
        probe_tables(why.replace("reports/accuracy/probe-roles", "reports/accuracy/probe-never-run"))


# ---------------------------------------------------------------- issue #16's grid: the gap to the bound each lever closes

GAP_MARKER = re.compile(r"<!-- gap-table: (?P<sources>[^;]+?); bound: (?P<bound>\S+) -->")


def gap_table(data: dict, bound: float) -> list[str]:
    """For each mitigation (a line) and pattern + criterion (a column): the share of the gap between the same
    pattern and criterion without a mitigation and ``bound`` that the mitigation closes, (r_none − r) /
    (r_none − bound), in whole percent (negative: the mitigation made it worse); empty where not measured."""
    ratios: dict[tuple, dict[str, float]] = {}
    mitigations: dict[str, None] = {}
    for row in data["rows"]:
        ratios.setdefault((row["pattern"], row["criterion"]), {})[row["mitigation"]] = row["perplexity_ratio"]
        if row["mitigation"] != "none":
            mitigations.setdefault(row["mitigation"])
    lines = ["| mitigation | " + " | ".join(f"{p} {c}" for p, c in ratios) + " |", "|---|" + "---:|" * len(ratios)]
    for mitigation in mitigations:
        cells = []
        for by_mitigation in ratios.values():
            none, ratio = by_mitigation["none"], by_mitigation.get(mitigation)
            cells.append("" if ratio is None else f"{100 * (none - ratio) / (none - bound):+.0f}%")
        lines.append(f"| {mitigation} | " + " | ".join(cells) + " |")
    return lines


def _bound(source: str) -> float:
    return _ratio(source, pattern="unstructured", policy="calibrated", calibration_metric="loss")


def test_the_gap_table_is_its_committed_results():
    """docs/accuracy.md's gap table (after its <!-- gap-table: ... --> marker) is what the committed grid and
    bound give."""
    text = (PROJECT_ROOT / "docs" / "accuracy.md").read_text("utf-8")
    (marker,) = GAP_MARKER.finditer(text)
    sources = [source.strip() for source in marker["sources"].split("+")]
    data = joined_results([PROJECT_ROOT / source for source in sources])
    assert data["complete"]
    expected = gap_table(data, _bound(marker["bound"]))
    assert text[marker.end():].lstrip("\n").startswith("\n".join(expected)), \
        "docs/accuracy.md: regenerate the gap table:\n" + "\n".join(expected)


def test_golden_gap_table():
    """By hand: none 1.30, bound 1.10, a mitigation at 1.25 closes 0.05 / 0.20 = 25%; one at 1.32 is −10%; a
    mitigation a column lacks is an empty cell."""
    rows = [{**ROW, "perplexity_ratio": 1.30}, {**ROW, "mitigation": "scaling", "perplexity_ratio": 1.25},
            {**ROW, "mitigation": "learnable-shift", "perplexity_ratio": 1.32},
            {**ROW, "criterion": "gradient", "perplexity_ratio": 1.30}]
    assert gap_table({"rows": rows}, 1.10) == ["| mitigation | 8:16 amber | 8:16 gradient |", "|---|---:|---:|",
                                               "| scaling | +25% |  |", "| learnable-shift | -10% |  |"]


@pytest.mark.parametrize("single, grid", [
    ("reports/accuracy/levers-816-gradient-learnable-scale-shift", "reports/accuracy/levers-816-gradient"),
    ("reports/accuracy/levers-24-gradient-variance-correction", "reports/accuracy/levers-24-gradient")])
def test_a_grid_cell_rerun_alone_is_the_same_to_the_last_digit(single, grid):
    """Two cells of the 4 × 2,048 grid were first measured alone (another process, another day's cache state, the
    learnable correction trained then and reloaded from disk in the grid): the calibration, the skip list and the
    evaluation are deterministic, so the rows must be equal, float for float."""
    (alone,) = load_results(PROJECT_ROOT / single)["rows"]
    (within,) = [row for row in load_results(PROJECT_ROOT / grid)["rows"] if row["mitigation"] == alone["mitigation"]]
    assert alone == within


def committed_pairs() -> dict[tuple[str, str], dict[str, float]]:
    """(criterion, mitigation) → {pattern: × dense} over every committed eval result measured as the targets say
    (4 × 2,048 tokens, calibrated, ≥ 55% sparsified), 8:16 and 2:4 only."""
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for _folder, row in target_rows():
        if row["pattern"] in ("8:16", "2:4") and row.get("calibration_metric") == "loss":
            pairs.setdefault((row["criterion"], row["mitigation"]), {})[row["pattern"]] = row["perplexity_ratio"]
    return pairs


def test_the_shipped_trace_uses_a_best_combination_measured():
    """The shipped SmolLM2 trace's criterion + mitigation (one pair for every run, fp16 and W8A8) is measured at
    8:16 and 2:4 under the targets' conditions, and no other pair usable at W8A8 (a learnable correction is not)
    measured at both is better at both: it is on the front of what was measured."""
    from amber_sim.pruning.names import LEARNABLE_MITIGATIONS
    from amber_sim.trace import load_trace

    trace = load_trace(PROJECT_ROOT / "traces" / "smollm2-135m.json")
    (shipped,) = {(run.criterion, run.mitigation) for run in trace.runs if run.pattern != "dense"}
    pairs = committed_pairs()
    assert set(pairs[shipped]) == {"8:16", "2:4"}, shipped
    dominating = [pair for pair, ratios in pairs.items() if pair != shipped and pair[1] not in LEARNABLE_MITIGATIONS
                  and set(ratios) == {"8:16", "2:4"}
                  and all(ratios[p] < pairs[shipped][p] for p in ("8:16", "2:4"))]
    assert not dominating, f"{dominating} beat the shipped trace's {shipped} at both patterns: regenerate it"
    assert len([pair for pair, ratios in pairs.items() if set(ratios) == {"8:16", "2:4"}]) >= 10


def test_the_status_of_docs_accuracy_quotes_the_best_committed_results():
    """docs/accuracy.md's opening status quotes the best 8:16 and 2:4 ratios (3 places) of every committed
    4 × 2,048-token calibrated result at ≥ 55%."""
    text = " ".join((PROJECT_ROOT / "docs" / "accuracy.md").read_text("utf-8").split())
    quoted = re.search(r"best measured combinations reach (\d\.\d{3}) × dense perplexity at 8:16 .*? and "
                       r"(\d\.\d{3}) × at 2:4", text)
    assert quoted, "docs/accuracy.md no longer states the best ratios in its status; update this test with it"
    assert quoted.groups() == tuple(f"{best_committed_ratio(p)[0]:.3f}" for p in ("8:16", "2:4"))


def test_the_grid_sections_prose_quotes_only_its_tables():
    """Every ratio (d.ddd ×) and gap share (±n%) the prose of the 4 × 2,048 grid section states is a cell of
    that section's tables (which the tests above tie to the committed results) or the per-token bound."""
    text = (PROJECT_ROOT / "docs" / "accuracy.md").read_text("utf-8")
    section = _section(text, "## The rest of arXiv 2509.22166 at 55%: 4 windows of 2,048 tokens")
    lines = section.splitlines()
    tables = "\n".join(line for line in lines if line.startswith("|"))
    prose = "\n".join(line for line in lines if not line.startswith(("|", "<!--", "  ", "```", "for ", "done", "#")))
    cells = set(re.findall(r"\d\.\d{3}", tables)) | {f"{_bound('reports/accuracy/target-check'):.3f}"}
    quoted = re.findall(r"(\d\.\d{3}) ×", prose)
    assert quoted and set(quoted) <= cells, sorted(set(quoted) - cells)
    shares = set(re.findall(r"[+-]\d+%", tables))
    quoted_shares = [share.replace("−", "-") for share in re.findall(r"[+−]\d+%", prose)]
    assert set(quoted_shares) <= shares, sorted(set(quoted_shares) - shares)
