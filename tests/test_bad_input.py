"""Bad input the tool promises to refuse cleanly: one line naming the file, the field and the fix, exit code 2,
no traceback, nothing written. Non-finite numbers and duplicate keys in traces, and JSON nested too deeply
to parse."""

from __future__ import annotations

import dataclasses
import json

import pytest

from amber_sim.cli import main
from amber_sim.errors import InputError
from amber_sim.trace import dumps_trace, load_trace, parse_json, save_trace, trace_to_dict


def _one_line_exit_2(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("amber-sim: error: ")
    return err.strip()[len("amber-sim: error: "):]


def _error(load, *args) -> str:
    with pytest.raises(InputError) as info:
        load(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def _op_index(data, kind: str, run: int = 1) -> int:
    return next(i for i, op in enumerate(data["runs"][run]["ops"])
                if op["kind"] == kind and (kind != "linear" or op["pattern"] != "dense"))


# ---------------------------------------------------------------- non-finite numbers

@pytest.mark.parametrize("value,shown", [(float("nan"), "NaN"), (float("inf"), "Infinity"),
                                         (float("-inf"), "-Infinity")])
@pytest.mark.parametrize("field", ["density", "natural_zero_fraction", "dtype_bytes", "ops_per_element",
                                   "metrics.perplexity"])
def test_non_finite_numbers_in_a_trace_name_the_file_and_the_field(tiny_trace, tmp_path, field, value, shown):
    data = trace_to_dict(tiny_trace)
    if field == "metrics.perplexity":
        data["runs"][1]["metrics"] = {"perplexity": value, "top1_agreement": 0.9}
        path = "$.runs[1].metrics.perplexity"
    else:
        index = _op_index(data, "vector" if field == "ops_per_element" else "linear")
        data["runs"][1]["ops"][index][field] = value
        path = f"$.runs[1].ops[{index}].{field}"
    trace_file = tmp_path / "t.json"
    trace_file.write_text(json.dumps(data), "utf-8")  # Python's json writes NaN / Infinity literals
    assert _error(load_trace, trace_file) == f"{trace_file}: {path}: expected a finite number, got {shown}"


def test_an_overflowing_number_is_infinity_and_refused(tiny_trace, tmp_path):
    data = trace_to_dict(tiny_trace)
    index = _op_index(data, "linear")
    data["runs"][1]["ops"][index]["density"] = 12345.5
    trace_file = tmp_path / "t.json"
    trace_file.write_text(json.dumps(data).replace("12345.5", "1e999"), "utf-8")
    assert _error(load_trace, trace_file).endswith(f"$.runs[1].ops[{index}].density: expected a finite number, "
                                                   "got Infinity")


def test_nan_trace_fails_the_main_job_and_inspect_with_one_line(tiny_trace, tmp_path, capsys):
    data = trace_to_dict(tiny_trace)
    data["runs"][2]["metrics"] = {"perplexity": float("nan")}
    trace_file = tmp_path / "t.json"
    trace_file.write_text(json.dumps(data), "utf-8")
    expected = f"{trace_file}: $.runs[2].metrics.perplexity: expected a finite number, got NaN"
    assert _one_line_exit_2(["inspect", str(trace_file)], capsys) == expected
    out = tmp_path / "report"
    assert _one_line_exit_2(["--hw", "ascend_like", "--trace", str(trace_file), "--out", str(out)], capsys) == expected
    assert not out.exists()


def test_a_trace_holding_nan_is_never_saved(tiny_trace, tmp_path):
    run = tiny_trace.runs[1]
    broken = dataclasses.replace(tiny_trace, runs=(tiny_trace.runs[0], dataclasses.replace(
        run, ops=(dataclasses.replace(run.ops[0], ops_per_element=float("nan")), *run.ops[1:]))))
    assert "$.runs[1].ops[0].ops_per_element: expected a finite number, got NaN" in _error(
        save_trace, broken, tmp_path / "t.json")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- duplicate keys

def test_duplicate_json_keys_name_the_path_and_the_lines(tiny_trace, tmp_path, capsys):
    lines = dumps_trace(tiny_trace).splitlines()
    data = trace_to_dict(tiny_trace)
    index = _op_index(data, "linear")
    run_starts = [number for number, text in enumerate(lines) if text.startswith('  {"id": ')]
    op_line = run_starts[1] + 1 + index  # one op per line after its run's line (0-based)
    assert f'"name":"{data["runs"][1]["ops"][index]["name"]}"' in lines[op_line]
    lines[op_line] = lines[op_line].replace('"K":', '"K":8,"K":', 1)
    trace_file = tmp_path / "t.json"
    trace_file.write_text("\n".join(lines), "utf-8")
    expected = (f"{trace_file}: $.runs[1].ops[{index}].K: duplicate key 'K' on line {op_line + 1}; a key may appear "
                "once per object: keep one")
    assert _error(load_trace, trace_file) == expected
    assert _one_line_exit_2(["inspect", str(trace_file)], capsys) == expected


def test_duplicate_json_keys_in_nested_objects_and_strings_that_look_like_json():
    assert _error(parse_json, '{"schema": "a",\n "schema": "b"}', "x.json") == (
        "x.json: $.schema: duplicate key 'schema' on line 2 (first on line 1); a key may appear once per object: "
        "keep one")
    text = '{"s": "{\\"b\\": 1, \\"b\\": 2}", "a": [0, {"b": 1}, {"c": {"b": 1, "b": 1}}]}'
    assert _error(parse_json, text, "x.json").startswith("x.json: $.a[2].c.b: duplicate key 'b' on line 1;")
    assert parse_json('{"a": {"b": 1}, "c": {"b": 2}}', "x.json") == {"a": {"b": 1}, "c": {"b": 2}}


# ---------------------------------------------------------------- nesting too deep

@pytest.mark.parametrize("opening,closing", [("[", "]"), ('{"a":', "}")])
def test_json_nested_100000_deep_is_one_line(tmp_path, capsys, opening, closing):
    trace_file = tmp_path / "deep.json"
    trace_file.write_text(opening * 100_000 + ("1" if opening != "[" else "") + closing * 100_000, "utf-8")
    message = _one_line_exit_2(["inspect", str(trace_file)], capsys)
    assert message.startswith(f"{trace_file}: invalid JSON: arrays or objects nested too deeply to read")
