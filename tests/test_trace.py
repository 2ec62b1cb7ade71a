"""amber-trace/1: round trips, the shipped schema, and one test per class of bad input."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from amber_sim.errors import InputError
from amber_sim.trace import (MAX_OP_MACS, dumps_trace, load_trace, save_trace, trace_from_dict, trace_schema,
                             trace_to_dict)


def test_round_trip_save_load_is_equal(tiny_trace, tmp_path):
    path = save_trace(tiny_trace, tmp_path / "tiny.json")
    loaded = load_trace(path)
    assert loaded == tiny_trace
    assert loaded.source_path == str(path)
    # Deterministic content: saving the loaded trace gives the same bytes.
    assert dumps_trace(loaded) == path.read_text("utf-8")


def test_dict_round_trip_keeps_optional_fields_absent(tiny_trace):
    data = trace_to_dict(tiny_trace)
    assert "command" not in data["capture"] and data["capture"]["corpus"] is None
    vector_op = next(op for op in data["runs"][0]["ops"] if op["kind"] == "vector")
    assert "M" not in vector_op and "pattern" not in vector_op
    assert trace_from_dict(data) == tiny_trace


def test_shipped_schema_is_valid_draft7_and_accepts_our_output(tiny_trace):
    # jsonschema is the reference implementation; the loader uses a compiled validator of the same file.
    schema = trace_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(trace_to_dict(tiny_trace))


@pytest.fixture
def trace_dict(tiny_trace):
    return trace_to_dict(tiny_trace)


def _linear_index(data, run=1):
    return next(i for i, op in enumerate(data["runs"][run]["ops"]) if op["kind"] == "linear" and op["pattern"] != "dense")


def _error(data, where="t.json") -> str:
    with pytest.raises(InputError) as info:
        trace_from_dict(data, where)
    return str(info.value)


def test_wrong_type_names_file_and_path(trace_dict):
    index = _linear_index(trace_dict)
    trace_dict["runs"][1]["ops"][index]["K"] = "64"
    assert _error(trace_dict) == f't.json: $.runs[1].ops[{index}].K: expected integer, got string "64"'


def test_unknown_key_suggests_closest(trace_dict):
    trace_dict["runs"][0]["ops"][2]["densty"] = 0.5
    assert _error(trace_dict) == "t.json: $.runs[0].ops[2].densty: unknown field; did you mean 'density'?"


def test_missing_field(trace_dict):
    del trace_dict["capture"]["seq_len"]
    assert _error(trace_dict) == "t.json: $.capture: missing required field 'seq_len'"


def test_other_schema_version_is_refused(trace_dict):
    trace_dict["schema"] = "amber-trace/2"
    message = _error(trace_dict)
    assert message.startswith("t.json: $.schema: expected 'amber-trace/1'") and "re-capture" in message


@pytest.mark.parametrize("bad", ["3:2", "0:4", "a:b", "4:128", "2:4:8"])
def test_impossible_patterns(trace_dict, bad):
    trace_dict["runs"][1]["pattern"] = bad
    assert "$.runs[1].pattern" in _error(trace_dict)


@pytest.mark.parametrize("field,value", [("M", 0), ("K", -4), ("batch", 0)])
def test_zero_or_negative_sizes(trace_dict, field, value):
    index = _linear_index(trace_dict)
    trace_dict["runs"][1]["ops"][index][field] = value
    assert _error(trace_dict).endswith(f"{field}: expected a value >= 1, got integer {value}")


def test_overflowing_dimensions(trace_dict):
    index = _linear_index(trace_dict)
    op = trace_dict["runs"][1]["ops"][index]
    op["M"] = op["N"] = 2**31 - 1
    op["K"] = 2**20
    assert f"exceeds {MAX_OP_MACS}" in _error(trace_dict)
    op["K"] = 2**31  # beyond the per-dimension maximum: caught by the schema
    assert "K: expected a value <= 2147483647" in _error(trace_dict)


def test_density_above_n_over_m(trace_dict):
    index = _linear_index(trace_dict)
    trace_dict["runs"][1]["ops"][index]["density"] = 0.75
    assert "exceeds N/M = 0.5 of pattern '2:4'" in _error(trace_dict)


def test_k_not_divisible_by_m(trace_dict):
    index = _linear_index(trace_dict, run=2)  # 8:16
    trace_dict["runs"][2]["ops"][index]["K"] = 72
    assert "K = 72 is not divisible by M = 16" in _error(trace_dict)


def test_sparse_operand_must_match_pattern(trace_dict):
    index = _linear_index(trace_dict)
    trace_dict["runs"][1]["ops"][index]["sparse_operand"] = None
    assert "sparse_operand" in _error(trace_dict)


def test_duplicate_names_and_ids(trace_dict):
    broken = copy.deepcopy(trace_dict)
    broken["runs"][1]["id"] = broken["runs"][0]["id"]
    assert "duplicate run id" in _error(broken)
    trace_dict["runs"][0]["ops"][3]["name"] = trace_dict["runs"][0]["ops"][2]["name"]
    assert "duplicate op name" in _error(trace_dict)


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(InputError, match="no such trace file"):
        load_trace(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "amber-trace/1",\n "runs": [}', "utf-8")
    with pytest.raises(InputError, match=r"broken.json: line 2 column \d+: invalid JSON"):
        load_trace(broken)


def test_save_refuses_missing_directory_and_leaves_nothing(tiny_trace, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        save_trace(tiny_trace, tmp_path / "missing" / "t.json")
    assert not (tmp_path / "missing").exists()


def test_failed_save_leaves_no_partial_file(tiny_trace, tmp_path, monkeypatch):
    import amber_sim.atomic as atomic

    def exploding_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", exploding_replace)
    with pytest.raises(KeyboardInterrupt):
        save_trace(tiny_trace, tmp_path / "t.json")
    assert list(tmp_path.iterdir()) == []


def test_file_is_compact_one_op_per_line(tiny_trace, tmp_path):
    path = save_trace(tiny_trace, tmp_path / "t.json")
    lines = path.read_text("utf-8").splitlines()
    op_lines = [line for line in lines if line.startswith('   {"name"')]
    assert len(op_lines) == sum(len(run.ops) for run in tiny_trace.runs)
    json.loads(path.read_text("utf-8"))
