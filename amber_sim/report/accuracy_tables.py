"""Markdown tables of `amber-sim eval` results (accuracy.json), as docs/accuracy.md quotes them.

Every accuracy table in docs/accuracy.md is preceded by a marker naming the committed results it comes
from and the columns it shows::

    <!-- accuracy-table: reports/accuracy/target-check; columns: pattern, policy, left_dense, share, perplexity, ratio, top1 -->

(several folders joined by `+` give one table of their rows in that order).

`amber-sim accuracy-table DIR --columns ...` prints the table, and tests/test_accuracy_docs.py checks that
each table in the docs is exactly what its results give (no number is typed by hand).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from amber_sim.errors import InputError

MARKER = re.compile(r"<!-- accuracy-table: (?P<sources>[^;]+?); columns: (?P<columns>[^>]*?) -->")


def _policy(row: dict) -> str:
    return row["policy"] + (f" ({row['calibration_metric']})" if row.get("calibration_metric") else "")


def _left_dense(row: dict) -> str:
    """What the policy left dense: the loss metric's single linears, the output-error metric's layers."""
    if row.get("skip_linears"):
        return row["skip_linears"]
    if row.get("skip_layers"):
        return "layers " + row["skip_layers"]
    return "none"


# column name -> (header, cell)
COLUMNS: dict[str, tuple[str, Callable[[dict], str]]] = {
    "pattern": ("pattern", lambda row: row["pattern"]),
    "precision": ("precision", lambda row: row["precision"]),
    "criterion": ("criterion", lambda row: row["criterion"]),
    "mitigation": ("mitigation", lambda row: row["mitigation"]),
    "method": ("criterion + mitigation", lambda row: f"{row['criterion']} + {row['mitigation']}"),
    "policy": ("policy", _policy),
    "left_dense": ("q/gate left dense", _left_dense),
    "share": ("FLOP share sparsified", lambda row: f"{row['sparsified_linear_flop_share']:.1%}"),
    "perplexity": ("perplexity", lambda row: f"{row['perplexity']:.2f}"),
    "ratio": ("× dense", lambda row: f"{row['perplexity_ratio']:.3f}"),
    "top1": ("top-1 agreement", lambda row: f"{row['top1_agreement']:.3f}"),
}
_RIGHT = {"share", "perplexity", "ratio", "top1"}


def load_results(path: str | Path) -> dict:
    """accuracy.json of an `amber-sim eval` output folder (or the file itself)."""
    target = Path(path)
    if target.is_dir():
        target = target / "accuracy.json"
    try:
        data = json.loads(target.read_text("utf-8"))
    except OSError as error:
        raise InputError(str(target), None, f"cannot read the eval results ({error.strerror})") from None
    except ValueError as error:
        raise InputError(str(target), None, f"not JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise InputError(str(target), "rows", "expected the accuracy.json that amber-sim eval writes")
    return data


def markdown_table(data: dict, columns: list[str]) -> str:
    """The rows of ``data`` as a Markdown table with ``columns`` (names of :data:`COLUMNS`)."""
    unknown = [name for name in columns if name not in COLUMNS]
    if unknown:
        raise InputError("--columns", None, f"unknown column {unknown[0]!r}; expected some of {', '.join(COLUMNS)}")
    lines = ["| " + " | ".join(COLUMNS[name][0] for name in columns) + " |",
             "|" + "|".join("---:" if name in _RIGHT else "---" for name in columns) + "|"]
    for row in data["rows"]:
        lines.append("| " + " | ".join(COLUMNS[name][1](row) for name in columns) + " |")
    return "\n".join(lines)


def grid_table(data: dict) -> str:
    """The grid layout (``columns: grid``): one line per pattern × criterion × mitigation, one column per policy
    (its share of linear FLOPs sparsified in the header), each cell perplexity / × dense / top-1 agreement, and
    the calibrated policy's skipped layers last."""
    lines_by_key: dict[tuple, dict[str, dict]] = {}
    shares: dict[str, float] = {}
    for row in data["rows"]:
        policy = _policy(row)
        lines_by_key.setdefault((row["pattern"], row["criterion"], row["mitigation"]), {})[policy] = row
        shares.setdefault(policy, row["sparsified_linear_flop_share"])
    policies = list(shares)
    calibrated = [policy for policy in policies if policy.startswith("calibrated")]
    header = ["pattern", "criterion", "mitigation"] + [f"{policy.replace(' (', ', ').rstrip(')')} "
                                                       f"({shares[policy]:.1%})" for policy in policies]
    if calibrated:
        header.append("calibrated: q/gate dense in layers")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(policies)
                                                              + ["---"] * bool(calibrated)) + "|"]
    for key, by_policy in lines_by_key.items():
        cells = [f"{r['perplexity']:.2f} / {r['perplexity_ratio']:.3f} / {r['top1_agreement']:.3f}"
                 if (r := by_policy.get(policy)) else "" for policy in policies]
        skipped = [by_policy[calibrated[0]]["skip_layers"]] if calibrated and calibrated[0] in by_policy else \
            [""] * bool(calibrated)
        lines.append("| " + " | ".join(list(key) + cells + skipped) + " |")
    return "\n".join(lines)


def mitigation_table(data: dict) -> str:
    """The ``columns: by-mitigation`` layout: one line per mitigation, one column per pattern + criterion (first
    seen order), each cell × dense / top-1 agreement (3 places), the range of the rows' shares of linear FLOPs
    sparsified in the first header. A missing pair is an empty cell."""
    if not data["rows"]:
        raise InputError("accuracy-table", "rows", "no rows to lay out by mitigation")
    by_mitigation: dict[str, dict[tuple, dict]] = {}
    pairs: dict[tuple, None] = {}
    for row in data["rows"]:
        pair = (row["pattern"], row["criterion"])
        pairs.setdefault(pair)
        if pair in by_mitigation.setdefault(row["mitigation"], {}):
            raise InputError("accuracy-table", "rows", f"two rows for {' '.join(pair)} {row['mitigation']}: "
                             "by-mitigation takes one row per pattern, criterion and mitigation")
        by_mitigation[row["mitigation"]][pair] = row
    shares = sorted(row["sparsified_linear_flop_share"] for row in data["rows"])
    span = f"{shares[0]:.1%}" if f"{shares[0]:.1%}" == f"{shares[-1]:.1%}" else f"{shares[0]:.1%}–{shares[-1]:.1%}"
    header = [f"mitigation ({span} sparsified)"] + [f"{pattern} {criterion}" for pattern, criterion in pairs]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(pairs)]
    for mitigation, rows in by_mitigation.items():
        cells = [f"{row['perplexity_ratio']:.3f} / {row['top1_agreement']:.3f}" if (row := rows.get(pair)) else ""
                 for pair in pairs]
        lines.append(f"| {mitigation} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


LAYOUTS: dict[str, Callable[[dict], str]] = {"grid": grid_table, "by-mitigation": mitigation_table}


def render(data: dict, columns: list[str]) -> str:
    """The table of a marker: a layout of :data:`LAYOUTS` (``columns: grid``, ``columns: by-mitigation``), else
    :func:`markdown_table`."""
    if len(columns) == 1 and columns[0] in LAYOUTS:
        return LAYOUTS[columns[0]](data)
    return markdown_table(data, columns)


def documented_tables(text: str) -> list[tuple[list[str], list[str], int]]:
    """(source folders, columns, offset just after the marker) of every marked table in a Markdown text."""
    return [([source.strip() for source in match["sources"].split("+")],
             [name.strip() for name in match["columns"].split(",")], match.end())
            for match in MARKER.finditer(text)]


def joined_results(paths: list) -> dict:
    """The results of several eval folders as one (rows in order; complete only if every one is)."""
    parts = [load_results(path) for path in paths]
    return {"rows": [row for part in parts for row in part["rows"]],
            "complete": all(part.get("complete") is True for part in parts)}
