"""amber-trace/2: round trips, the shipped schemas, one test per class of bad input, and amber-trace/1
files: their migration, the v1 copies of the shipped traces, and capture agreeing with migration."""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest

from amber_sim.errors import InputError
from amber_sim.paths import TRACE_DIR
from amber_sim.trace import (MAX_OP_MACS, SCHEMA_ID, SCHEMA_V1, Op, dumps_trace, load_trace, migrate_v1_ops, save_trace,
                             trace_from_dict, trace_schema, trace_to_dict)

V1_DIR = Path(__file__).parent / "data" / "v1"
SHIPPED = ("llama.json", "qwen2-7b.json", "smollm2-135m.json")
V2_FIELDS = ("causal", "precision", "producer", "input_from", "output_to", "sparse_overhead")


def test_round_trip_save_load_is_equal(tiny_trace, tmp_path):
    path = save_trace(tiny_trace, tmp_path / "tiny.json")
    loaded = load_trace(path)
    assert loaded == tiny_trace
    assert loaded.source_path == str(path)
    # Deterministic content: saving the loaded trace gives the same bytes.
    assert dumps_trace(loaded) == path.read_text("utf-8")


def test_dict_round_trip_keeps_optional_fields_absent(tiny_trace):
    data = trace_to_dict(tiny_trace)
    assert data["schema"] == "amber-trace/2"
    assert "command" not in data["capture"] and data["capture"]["corpus"] is None
    ops = {op["name"]: op for op in data["runs"][0]["ops"]}
    norm, q_proj = ops["layers.0.input_layernorm"], ops["layers.0.self_attn.q_proj"]
    assert "M" not in norm and "pattern" not in norm
    # optional v2 fields at their default are left out; required ones are always written
    assert "producer" not in norm and "sparse_overhead" not in norm and norm["input_from"] == "dram"
    assert "causal" not in q_proj and "sparse_overhead" not in q_proj
    assert q_proj["producer"] == "layers.0.input_layernorm" and q_proj["precision"] == "fp16"
    assert ops["layers.0.self_attn.scores"]["causal"] == "output"
    assert trace_from_dict(data) == tiny_trace


def test_shipped_schemas_are_valid_draft7_and_accept_our_output(tiny_trace):
    # jsonschema is the reference implementation; the loader uses a compiled validator of the same file.
    schema = trace_schema()
    assert schema["properties"]["schema"] == {"const": "amber-trace/2"}
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(trace_to_dict(tiny_trace))
    # the v1 schema stays: v1 files are validated with it before they are migrated
    v1_schema = trace_schema(SCHEMA_V1)
    jsonschema.Draft7Validator.check_schema(v1_schema)
    jsonschema.Draft7Validator(v1_schema).validate(_v1_fixture("qwen2-7b.json"))


def test_v2_schema_requires_the_new_fields_where_the_format_says(tiny_trace):
    """The reference validator agrees: GEMMs need precision, producer and both locations; vector ops all but
    producer; sparse_overhead is optional everywhere."""
    validator = jsonschema.Draft7Validator(trace_schema())
    data = trace_to_dict(tiny_trace)
    ops = data["runs"][0]["ops"]
    gemm = next(op for op in ops if op["kind"] == "attention")
    vector = next(op for op in ops if op["role"] == "rmsnorm")
    for op, field in [(gemm, "precision"), (gemm, "producer"), (gemm, "input_from"), (gemm, "output_to"),
                      (vector, "precision"), (vector, "input_from"), (vector, "output_to")]:
        broken = copy.deepcopy(data)
        del broken["runs"][0]["ops"][ops.index(op)][field]
        assert not validator.is_valid(broken), field
    vector["producer"] = ops[0]["name"]
    gemm["sparse_overhead"] = True
    validator.validate(data)
    gemm["causal"] = True  # v1's boolean is not a v2 value
    assert not validator.is_valid(data)


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
    trace_dict["schema"] = "amber-trace/3"
    message = _error(trace_dict)
    assert message.startswith("t.json: $.schema: expected 'amber-trace/2' or 'amber-trace/1', got string "
                              '"amber-trace/3"')
    assert "re-capture" in message and "\n" not in message
    trace_dict["schema"] = ["amber-trace/2"]
    assert _error(trace_dict).startswith("t.json: $.schema: expected 'amber-trace/2' or 'amber-trace/1', got array")


def test_v2_fields_have_v2_values(trace_dict):
    index, op = _op(trace_dict, "layers.0.self_attn.scores")
    op["causal"] = True
    assert _error(trace_dict) == (f"t.json: $.runs[0].ops[{index}].causal: expected \"none\" or \"output\" or "
                                  "\"reduction\", got boolean true")
    op["causal"] = "output"
    op["input_from"] = "sram"
    assert _error(trace_dict).endswith('input_from: expected "dram" or "on_chip", got string "sram"')
    op["input_from"] = "dram"
    del op["producer"]
    assert _error(trace_dict) == f"t.json: $.runs[0].ops[{index}]: missing required field 'producer'"


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


# ---------------------------------------------------------------- amber-trace/2 semantic checks

def _op(data, name, run=0):
    ops = data["runs"][run]["ops"]
    index = next(i for i, op in enumerate(ops) if op["name"] == name)
    return index, ops[index]


def test_producer_naming_a_later_op_is_refused_with_its_path(trace_dict):
    index, op = _op(trace_dict, "layers.0.self_attn.q_proj")
    later, _ = _op(trace_dict, "layers.0.self_attn.rope")
    op["producer"] = "layers.0.self_attn.rope"
    assert _error(trace_dict) == (
        f"t.json: $.runs[0].ops[{index}].producer: 'layers.0.self_attn.rope' names a later op (ops[{later}]); a "
        "producer must be an earlier op of run 'dense/none/none/fp16' (ops are listed in execution order)")


@pytest.mark.parametrize("name, producer, expected", [
    ("layers.0.self_attn.q_proj", "layers.0.input_layernom", "names no op of the run (did you mean "
                                                             "'layers.0.input_layernorm'?)"),
    ("layers.0.self_attn.q_proj", "layers.0.self_attn.q_proj", "names the op itself"),
    ("layers.1.self_attn.context", "layers.1.self_attn.o_proj", "names a later op"),
    # vector ops need no producer, but one they name is checked like a GEMM's
    ("layers.0.self_attn.softmax", "layers.0.self_attn.context", "names a later op"),
])
def test_producer_must_be_an_earlier_op_of_the_run(trace_dict, name, producer, expected):
    index, op = _op(trace_dict, name, run=1)
    op["producer"] = producer
    message = _error(trace_dict)
    assert message.startswith(f"t.json: $.runs[1].ops[{index}].producer: {producer!r} {expected}")


def test_producer_may_be_null_and_null_is_written(trace_dict):
    """A GEMM whose input comes from outside the trace has producer null: required, so written as null."""
    _, op = _op(trace_dict, "layers.0.self_attn.q_proj")
    op["producer"] = None
    trace = trace_from_dict(trace_dict)
    assert trace.runs[0].ops[2].producer is None
    line = next(line for line in dumps_trace(trace).splitlines() if '"name":"layers.0.self_attn.q_proj",' in line)
    assert '"producer":null,' in line
    assert trace_to_dict(trace)["runs"][0]["ops"][2]["producer"] is None


@pytest.mark.parametrize("name, field, value, expected", [
    ("layers.0.self_attn.q_proj", "causal", "output", 'causal: expected "none" on a linear op, got string "output": '
                                                      "only attention ops are causal"),
    ("layers.0.self_attn.softmax", "causal", "reduction", 'causal: expected "none" on a vector op, got string '
                                                          '"reduction"'),
    ("layers.0.self_attn.scores", "precision", "int8", 'precision: expected "fp16" or "bf16" on an attention op, got '
                                                       '"int8": int8 is for linear ops (W8A8) only'),
    ("layers.0.mlp.act_mul", "precision", "int8", 'precision: expected "fp16" or "bf16" on a vector op'),
])
def test_causal_only_on_attention_and_int8_only_on_linears(trace_dict, name, field, value, expected):
    index, op = _op(trace_dict, name)
    op[field] = value
    assert _error(trace_dict).startswith(f"t.json: $.runs[0].ops[{index}].{expected}")


def test_bf16_attention_and_int8_linears_are_accepted(trace_dict):
    _op(trace_dict, "layers.0.self_attn.scores")[1]["precision"] = "bf16"
    _op(trace_dict, "layers.0.self_attn.q_proj")[1]["precision"] = "int8"
    ops = trace_from_dict(trace_dict).runs[0].ops
    assert [op.precision for op in ops if op.name in ("layers.0.self_attn.q_proj", "layers.0.self_attn.scores")] \
        == ["int8", "bf16"]


# ---------------------------------------------------------------- amber-trace/1: migration

def _v1_fixture(name: str) -> dict:
    return json.loads(gzip.decompress((V1_DIR / f"{name}.gz").read_bytes()))


def _v1_linear(name, role, k, n, sparse=False, dtype_bytes=1.0):
    return {"name": name, "layer": -1 if role == "lm_head" else 0, "role": role, "kind": "linear", "M": 32, "K": k,
            "N": n, "batch": 1, "sparse_operand": "activation" if sparse else None, "pattern": "2:4" if sparse else
            "dense", "density": 0.5 if sparse else 1.0, "natural_zero_fraction": 0.0, "dtype_bytes": dtype_bytes}


def _v1_attention(name, role, k, n):
    return {"name": name, "layer": 0, "role": role, "kind": "attention", "M": 32, "K": k, "N": n, "batch": 4,
            "operand_b_batch": 2, "causal": True, "sparse_operand": None, "pattern": "dense", "density": 1.0,
            "natural_zero_fraction": 0.0, "dtype_bytes": 2.0}


def _v1_vector(name, role, layer=0):
    return {"name": name, "layer": layer, "role": role, "kind": "vector", "elements": 2048, "ops_per_element": 1.0,
            "bytes_in": 4096, "bytes_out": 4096}


# A hand-written W8A8 2:4 run of one layer with variance correction on q, gate and down, and what each op becomes:
# (name, v1 op, producer, precision, causal, input_from, output_to, sparse_overhead)
A = "layers.0.self_attn."
F = "layers.0.mlp."
GOLDEN_V1_RUN = [
    ("embed_tokens", _v1_vector("embed_tokens", "embedding", -1), None, "fp16", "none", "dram", "dram", False),
    ("layers.0.input_layernorm", _v1_vector("layers.0.input_layernorm", "rmsnorm"),
     None, "fp16", "none", "dram", "dram", False),
    (A + "q_proj.mitigation", _v1_vector(A + "q_proj.mitigation", "mitigation"),
     "layers.0.input_layernorm", "fp16", "none", "dram", "dram", True),
    (A + "q_proj", _v1_linear(A + "q_proj", "q", 64, 64, sparse=True),
     "layers.0.input_layernorm", "int8", "none", "dram", "dram", False),
    (A + "k_proj", _v1_linear(A + "k_proj", "k", 64, 32), "layers.0.input_layernorm", "int8", "none", "dram", "dram",
     False),
    (A + "v_proj", _v1_linear(A + "v_proj", "v", 64, 32), "layers.0.input_layernorm", "int8", "none", "dram", "dram",
     False),
    (A + "rope", _v1_vector(A + "rope", "rope"), None, "fp16", "none", "dram", "dram", False),
    (A + "scores", _v1_attention(A + "scores", "attn_score", 16, 32), A + "rope", "fp16", "output", "dram", "on_chip",
     False),
    (A + "softmax", _v1_vector(A + "softmax", "attn_softmax"), None, "fp16", "none", "on_chip", "on_chip", False),
    (A + "context", _v1_attention(A + "context", "attn_value", 32, 16), A + "softmax", "fp16", "reduction", "on_chip",
     "dram", False),
    (A + "o_proj", _v1_linear(A + "o_proj", "o", 64, 64), A + "context", "int8", "none", "dram", "dram", False),
    ("layers.0.attn_residual", _v1_vector("layers.0.attn_residual", "residual"),
     None, "fp16", "none", "dram", "dram", False),
    ("layers.0.post_attention_layernorm", _v1_vector("layers.0.post_attention_layernorm", "rmsnorm"),
     None, "fp16", "none", "dram", "dram", False),
    (F + "gate_proj.mitigation", _v1_vector(F + "gate_proj.mitigation", "mitigation"),
     "layers.0.post_attention_layernorm", "fp16", "none", "dram", "dram", True),
    (F + "gate_proj", _v1_linear(F + "gate_proj", "gate", 64, 128, sparse=True),
     "layers.0.post_attention_layernorm", "int8", "none", "dram", "dram", False),
    (F + "up_proj", _v1_linear(F + "up_proj", "up", 64, 128),
     "layers.0.post_attention_layernorm", "int8", "none", "dram", "dram", False),
    (F + "act_mul", _v1_vector(F + "act_mul", "silu_mul"), None, "fp16", "none", "dram", "dram", False),
    (F + "down_proj.mitigation", _v1_vector(F + "down_proj.mitigation", "mitigation"),
     F + "act_mul", "fp16", "none", "dram", "dram", True),
    (F + "down_proj", _v1_linear(F + "down_proj", "down", 128, 64, sparse=True), F + "act_mul", "int8", "none", "dram",
     "dram", False),
    ("layers.0.mlp_residual", _v1_vector("layers.0.mlp_residual", "residual"),
     None, "fp16", "none", "dram", "dram", False),
    ("norm", _v1_vector("norm", "rmsnorm", -1), None, "fp16", "none", "dram", "dram", False),
    ("lm_head", _v1_linear("lm_head", "lm_head", 64, 100), "norm", "int8", "none", "dram", "dram", False),
]


@pytest.fixture
def v1_dict(trace_dict):
    """A v1 trace: the golden W8A8 run, and an fp16 run cut to start at the LM head (nothing before it)."""
    golden = {"id": "2:4/amber/amber-paper/w8a8", "pattern": "2:4", "criterion": "amber", "policy": "amber-paper",
              "mitigation": "variance-correction", "precision": "w8a8", "metrics": None,
              "ops": [copy.deepcopy(row[1]) for row in GOLDEN_V1_RUN]}
    cut = {"id": "dense/none/none/fp16", "pattern": "dense", "criterion": "none", "policy": "none",
           "mitigation": "none", "precision": "fp16", "metrics": None,
           "ops": [_v1_linear("lm_head", "lm_head", 64, 100, dtype_bytes=2.0), _v1_vector("norm", "rmsnorm", -1)]}
    return {**trace_dict, "schema": "amber-trace/1", "runs": [golden, cut]}


def test_v1_migration_golden_run(v1_dict):
    trace = trace_from_dict(v1_dict, "v1.json")
    assert trace.schema == SCHEMA_ID
    got = [(op.name, op.producer, op.precision, op.causal, op.input_from, op.output_to, op.sparse_overhead)
           for op in trace.runs[0].ops]
    assert got == [(row[0], *row[2:]) for row in GOLDEN_V1_RUN]
    # the v1 fields themselves are carried over unchanged
    for op, row in zip(trace.runs[0].ops, GOLDEN_V1_RUN):
        v1 = row[1]
        carried = [key for key in v1 if key != "causal"]
        assert {key: getattr(op, key) for key in carried} == {key: v1[key] for key in carried}
    # the producer chain restarts with each run: the fp16 run's first op has nothing before it
    lm_head, norm = trace.runs[1].ops
    assert (lm_head.producer, lm_head.precision) == (None, "fp16") and norm.producer is None


def test_v1_migration_does_not_touch_its_input():
    ops = [copy.deepcopy(row[1]) for row in GOLDEN_V1_RUN]
    before = copy.deepcopy(ops)
    migrate_v1_ops(ops)
    assert ops == before


def test_v1_trace_saves_as_v2_and_reloads_equal(v1_dict, tmp_path):
    trace = trace_from_dict(v1_dict, "v1.json")
    path = save_trace(trace, tmp_path / "t.json")
    text = path.read_text("utf-8")
    assert json.loads(text)["schema"] == "amber-trace/2"
    assert '"name":"lm_head","layer":-1,"role":"lm_head","kind":"linear","M":32,"K":64,"N":100,' in text
    assert '"dtype_bytes":2.0,"precision":"fp16","producer":null,"input_from":"dram","output_to":"dram"}' in text
    assert text.count('"sparse_overhead":true') == 3
    assert load_trace(path) == trace


def test_v1_is_validated_by_the_v1_schema(v1_dict):
    """v2 fields in a v1 file are unknown there, and v1's checks still run before the migration."""
    v1_dict["runs"][0]["ops"][3]["producer"] = "layers.0.input_layernorm"
    assert _error(v1_dict) == ("t.json: $.runs[0].ops[3].producer: not an amber-trace/1 field (it is new in "
                               'amber-trace/2, and this file says "schema": "amber-trace/1")')
    del v1_dict["runs"][0]["ops"][3]["producer"]
    v1_dict["runs"][0]["ops"][3]["density"] = 0.75
    assert _error(v1_dict).startswith("t.json: $.runs[0].ops[3].density: density 0.75 exceeds N/M = 0.5")


def test_v1_causal_linear_is_refused_at_its_path(v1_dict):
    """v1 allowed causal: true anywhere; migrated it would be a causal linear, which v2 refuses."""
    v1_dict["runs"][0]["ops"][4]["causal"] = True
    assert _error(v1_dict) == ('t.json: $.runs[0].ops[4].causal: expected "none" on a linear op, got true '
                               "(amber-trace/1's causal, migrated): only attention ops are causal")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_traces_are_their_v1_captures_migrated(name, tmp_path):
    """tests/data/v1 holds the shipped traces as captured in amber-trace/1; loading one migrates it to exactly
    the shipped amber-trace/2 file: every field of every op, and the same bytes when saved."""
    v1_path = tmp_path / name
    v1_path.write_bytes(gzip.decompress((V1_DIR / f"{name}.gz").read_bytes()))
    assert json.loads(v1_path.read_text("utf-8"))["schema"] == "amber-trace/1"
    migrated, shipped = load_trace(v1_path), load_trace(TRACE_DIR / name)
    assert json.loads((TRACE_DIR / name).read_text("utf-8"))["schema"] == "amber-trace/2"
    assert [run.id for run in migrated.runs] == [run.id for run in shipped.runs]
    for old, new in zip(migrated.runs, shipped.runs):
        assert old.ops == new.ops, old.id
    assert migrated == shipped
    assert dumps_trace(migrated) == (TRACE_DIR / name).read_text("utf-8")


# ---------------------------------------------------------------- capture writes what migration infers

def as_v1(ops: tuple) -> list[dict]:
    """Op dataclasses → the op dicts an amber-trace/1 writer made: no v2 fields, causal a boolean."""
    v1 = []
    for op in ops:
        data = {key: value for key, value in dataclasses.asdict(op).items() if key not in V2_FIELDS}
        if op.kind != "vector":
            if op.operand_b_batch is None:
                del data["operand_b_batch"]
            if op.causal != "none":
                data["causal"] = True
        v1.append(data)
    return v1


def v2_fields(ops) -> list[tuple]:
    return [(op.name, *(getattr(op, key) for key in V2_FIELDS)) for op in ops]


def test_capture_with_mitigation_writes_what_migration_infers(tiny_trace):
    """Capture's op builder and the v1 migration agree on every v2 field, mitigation ops included (the
    synthetic generator has none; tests/test_synthetic.py checks it against the shipped v1 capture)."""
    from amber_sim.capture.capture import CaptureSpec, RunSpec, build_run

    config = tiny_trace.model.config
    stats = {(layer, role): SimpleNamespace(density=0.5, natural_zero_fraction=0.0)
             for layer in range(config.layers) for role in ("q", "k", "v", "o", "gate", "up", "down")}
    spec = CaptureSpec(seq_len=32, mitigation="median-shift+variance-correction")
    for run_spec in (RunSpec("2:4", "w8a8"), RunSpec("2:4", "fp16"), RunSpec("dense", "w8a8")):
        run = build_run(run_spec, spec, config, stats, None, "all")
        assert sum(op.sparse_overhead for op in run.ops) == (0 if run_spec.is_dense else 7 * config.layers)
        assert v2_fields(Op(**op) for op in migrate_v1_ops(as_v1(run.ops))) == v2_fields(run.ops)


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
