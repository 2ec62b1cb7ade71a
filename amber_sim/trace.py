"""The ``amber-trace/1`` format: dataclasses, JSON load/save and validation.

A trace is the only thing the simulator knows about a model. Loading validates
the file against the JSON Schema shipped in ``amber_sim/schemas/`` and then
checks what a schema cannot say (patterns, densities, unique names, overflow).
Every problem is an :class:`~amber_sim.errors.InputError` naming the file and
the field path, e.g. ``llama.json: $.runs[2].ops[14].K: expected integer``.
See docs/trace-format.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from amber_sim.atomic import atomic_write_text
from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern

SCHEMA_ID = "amber-trace/1"
_SCHEMA_FILE = "amber-trace-1.schema.json"
# 2·M·K·N·batch must stay exact in int64 (and float64) arithmetic downstream.
MAX_OP_MACS = 2**52


@dataclass(frozen=True)
class ModelConfig:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    head_dim: int | None = None
    max_position: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    weights: str  # "pretrained" | "random-init" | "none"
    source: str
    config: ModelConfig


@dataclass(frozen=True)
class CaptureInfo:
    origin: str  # "captured" | "synthetic"
    seq_len: int
    batch: int
    dtype: str
    corpus: str | None
    tokens: int
    amber_sim_version: str
    created: str
    command: str | None = None
    notes: str | None = None
    rescaled_from_seq_len: int | None = None


@dataclass(frozen=True)
class Op:
    """One op of the prefill.

    ``linear``/``attention``: a GEMM [M, K] × [K, N], repeated ``batch`` times (heads for
    attention; ``operand_b_batch`` distinct B operands under GQA). ``vector``: elementwise or
    reduction work over ``elements`` with ``ops_per_element`` and its bytes in and out.
    """

    name: str
    layer: int
    role: str
    kind: str
    M: int = 0
    K: int = 0
    N: int = 0
    batch: int = 1
    operand_b_batch: int | None = None
    causal: bool = False
    sparse_operand: str | None = None
    pattern: str = "dense"
    density: float = 1.0
    natural_zero_fraction: float = 0.0
    dtype_bytes: float = 2.0
    elements: int = 0
    ops_per_element: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def is_gemm(self) -> bool:
        return self.kind in ("linear", "attention")

    @property
    def is_sparse(self) -> bool:
        return self.sparse_operand == "activation" and self.pattern != "dense"

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the dense GEMM (0 for vector ops); causal attention counts all of it."""
        return self.M * self.K * self.N * self.batch if self.is_gemm else 0

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass(frozen=True)
class Run:
    id: str
    pattern: str
    criterion: str
    policy: str
    mitigation: str
    precision: str
    metrics: dict[str, float | None] | None
    ops: tuple[Op, ...]


@dataclass(frozen=True)
class Trace:
    model: ModelInfo
    capture: CaptureInfo
    runs: tuple[Run, ...]
    schema: str = SCHEMA_ID
    source_path: str | None = field(default=None, compare=False)

    def run(self, run_id: str) -> Run:
        for candidate in self.runs:
            if candidate.id == run_id:
                return candidate
        raise KeyError(run_id)

    @property
    def is_synthetic(self) -> bool:
        return self.capture.origin == "synthetic"


# ---------------------------------------------------------------- validation

@lru_cache(maxsize=1)
def trace_schema() -> dict[str, Any]:
    return json.loads(resources.files("amber_sim.schemas").joinpath(_SCHEMA_FILE).read_text("utf-8"))


@lru_cache(maxsize=1)
def _validator():
    import fastjsonschema

    return fastjsonschema.compile(trace_schema())


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(type(value))
    text = json.dumps(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}" if kind else text


def _schema_error_message(error) -> tuple[str, str]:
    """Turn a fastjsonschema error into (JSON path like ``$.runs[2].ops[14].K``, what is expected)."""
    path = "$" + error.name[len("data"):]
    rule, definition, value = error.rule, error.rule_definition, error.value
    if rule == "type":
        expected = " or ".join(definition) if isinstance(definition, list) else definition
        return path, f"expected {expected}, got {_describe(value)}"
    if rule == "required":
        missing = [key for key in definition if not isinstance(value, dict) or key not in value]
        return path, f"missing required field {missing[0]!r}" if missing else error.message
    if rule == "additionalProperties":
        allowed = sorted(error.definition.get("properties", {}))
        unknown = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        name = unknown[0] if unknown else "?"
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(allowed)}"
        return f"{path}.{name}", f"unknown field; {hint}"
    if rule in ("const", "enum"):
        choices = [definition] if rule == "const" else definition
        return path, f"expected {' or '.join(json.dumps(choice) for choice in choices)}, got {_describe(value)}"
    if rule in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[rule]
        return path, f"expected a value {relation} {definition}, got {_describe(value)}"
    if rule == "pattern":
        return path, f"expected a pattern 'N:M', 'dense' or 'unstructured', got {_describe(value)}"
    if rule in ("minItems", "minLength"):
        return path, f"must not be empty (got {_describe(value)})"
    return path, error.message.replace("data", "$", 1)


def validate_trace_dict(data: Any, where: str) -> None:
    """Validate parsed JSON against the schema and the semantic rules; raise InputError on the first problem."""
    if isinstance(data, dict) and "schema" in data and data["schema"] != SCHEMA_ID:
        raise InputError(where, "$.schema", f"expected {SCHEMA_ID!r}, got {_describe(data['schema'])}: this amber-sim reads "
                         f"{SCHEMA_ID} only; re-capture the trace or use the matching amber-sim version")
    import fastjsonschema

    try:
        _validator()(data)
    except fastjsonschema.JsonSchemaValueException as error:
        path, expected = _schema_error_message(error)
        raise InputError(where, path, expected) from None
    _check_semantics(data, where)


def _check_semantics(data: dict[str, Any], where: str) -> None:
    run_ids: set[str] = set()
    for run_index, run in enumerate(data["runs"]):
        run_path = f"$.runs[{run_index}]"
        if run["id"] in run_ids:
            raise InputError(where, f"{run_path}.id", f"duplicate run id {run['id']!r}; run ids must be unique")
        run_ids.add(run["id"])
        parse_pattern(run["pattern"], where, f"{run_path}.pattern")
        op_names: set[str] = set()
        for op_index, op in enumerate(run["ops"]):
            op_path = f"{run_path}.ops[{op_index}]"
            if op["name"] in op_names:
                raise InputError(where, f"{op_path}.name", f"duplicate op name {op['name']!r} in run {run['id']!r}")
            op_names.add(op["name"])
            if op["kind"] != "vector":
                _check_gemm_op(op, op_path, where)


def _check_gemm_op(op: dict[str, Any], op_path: str, where: str) -> None:
    if op["M"] * op["K"] * op["N"] * op["batch"] > MAX_OP_MACS:
        raise InputError(where, op_path, f"M·K·N·batch = {op['M'] * op['K'] * op['N'] * op['batch']} exceeds {MAX_OP_MACS}; "
                         "dimensions this large overflow the simulator's arithmetic")
    pattern = parse_pattern(op["pattern"], where, f"{op_path}.pattern")
    sparse = op["sparse_operand"] == "activation"
    if sparse != (pattern.kind == "unstructured" or pattern.is_nm):
        raise InputError(where, f"{op_path}.sparse_operand",
                         f"is {op['sparse_operand']!r} but pattern is {op['pattern']!r}: sparse ops need "
                         "sparse_operand 'activation' and an N:M (N < M) or unstructured pattern; dense ops need null")
    if pattern.is_nm:
        if op["K"] % pattern.m:
            raise InputError(where, f"{op_path}.K", f"K = {op['K']} is not divisible by M = {pattern.m} of pattern {op['pattern']!r}")
        bound = pattern.n / pattern.m
        if op["density"] > bound + 1e-9:
            raise InputError(where, f"{op_path}.density", f"density {op['density']} exceeds N/M = {bound:g} of pattern {op['pattern']!r}")
    if op["kind"] == "attention" and sparse:
        raise InputError(where, f"{op_path}.sparse_operand", "attention ops are dense in amber-trace/1; expected null")
    if op.get("operand_b_batch", 1) > op["batch"] or op["batch"] % op.get("operand_b_batch", 1):
        raise InputError(where, f"{op_path}.operand_b_batch",
                         f"expected a divisor of batch = {op['batch']}, got {op.get('operand_b_batch')}")


# ---------------------------------------------------------------- dict <-> dataclass

def _op_from_dict(data: dict[str, Any]) -> Op:
    return Op(**data)


def _run_from_dict(data: dict[str, Any]) -> Run:
    metrics = None if data["metrics"] is None else dict(data["metrics"])
    return Run(
        id=data["id"], pattern=data["pattern"], criterion=data["criterion"], policy=data["policy"],
        mitigation=data["mitigation"], precision=data["precision"], metrics=metrics,
        ops=tuple(_op_from_dict(op) for op in data["ops"]),
    )


def trace_from_dict(data: dict[str, Any], where: str = "<trace>") -> Trace:
    """Validate and convert parsed JSON to a Trace."""
    validate_trace_dict(data, where)
    model = data["model"]
    return Trace(
        model=ModelInfo(name=model["name"], family=model["family"], weights=model["weights"], source=model["source"],
                        config=ModelConfig(**model["config"])),
        capture=CaptureInfo(**data["capture"]),
        runs=tuple(_run_from_dict(run) for run in data["runs"]),
        source_path=where,
    )


_OP_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Op)}
_GEMM_ONLY = ("M", "K", "N", "batch", "operand_b_batch", "causal", "sparse_operand", "pattern", "density",
              "natural_zero_fraction", "dtype_bytes")
_VECTOR_ONLY = ("elements", "ops_per_element", "bytes_in", "bytes_out")


def _op_to_dict(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"name": op.name, "layer": op.layer, "role": op.role, "kind": op.kind}
    if op.kind == "vector":
        keys = _VECTOR_ONLY
    else:
        keys = tuple(key for key in _GEMM_ONLY
                     if key not in ("operand_b_batch", "causal") or getattr(op, key) != _OP_DEFAULTS[key])
    for key in keys:
        out[key] = getattr(op, key)
    return out


def _drop_none(data: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    """Leave out optional fields that are unset (required fields keep an explicit null)."""
    return {key: value for key, value in data.items() if value is not None or key not in optional}


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    model = dataclasses.asdict(trace.model)
    model["config"] = _drop_none(model["config"], ("head_dim", "max_position"))
    return {
        "schema": trace.schema,
        "model": model,
        "capture": _drop_none(dataclasses.asdict(trace.capture), ("command", "notes", "rescaled_from_seq_len")),
        "runs": [
            {"id": run.id, "pattern": run.pattern, "criterion": run.criterion, "policy": run.policy,
             "mitigation": run.mitigation, "precision": run.precision, "metrics": run.metrics,
             "ops": [_op_to_dict(op) for op in run.ops]}
            for run in trace.runs
        ],
    }


def dumps_trace(trace: Trace) -> str:
    """Serialise deterministically: one op per line keeps files diffable and compact."""
    data = trace_to_dict(trace)
    runs = data.pop("runs")
    head = json.dumps(data, indent=1, sort_keys=False)[:-2]  # drop the closing "\n}"
    run_texts = []
    for run in runs:
        ops = run.pop("ops")
        run_head = json.dumps(run, separators=(", ", ": "))[:-1]
        op_lines = ",\n".join("   " + json.dumps(op, separators=(",", ":")) for op in ops)
        run_texts.append(f"  {run_head}, \"ops\": [\n{op_lines}\n  ]}}")
    return head + ",\n \"runs\": [\n" + ",\n".join(run_texts) + "\n ]\n}\n"


def save_trace(trace: Trace, path: str | Path) -> Path:
    """Validate, then write atomically (a temp file renamed into place)."""
    text = dumps_trace(trace)
    validate_trace_dict(json.loads(text), str(path))
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(str(path), None, f"directory {str(target.parent)!r} does not exist; create it first")
    return atomic_write_text(target, text)


def load_trace(path: str | Path) -> Trace:
    target = Path(path)
    where = str(path)
    if not target.is_file():
        raise InputError(where, None, "no such trace file (pass a path, or a name from traces/ such as llama.json)")
    try:
        data = json.loads(target.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(where, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise InputError(where, None, "not a UTF-8 text file; expected an amber-trace/1 JSON file") from None
    return trace_from_dict(data, where)


def finite_or_none(value: float | None) -> float | None:
    """Metrics are JSON numbers: NaN/Inf become null rather than invalid JSON."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
