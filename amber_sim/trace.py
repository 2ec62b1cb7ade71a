"""The ``amber-trace/2`` format: dataclasses, JSON load/save and validation.

A trace is the only thing the simulator knows about a model. Loading validates
the file against the JSON Schema shipped in ``amber_sim/schemas/`` and then
checks what a schema cannot say (patterns, densities, unique names, producers,
overflow). Every problem is an :class:`~amber_sim.errors.InputError` naming the
file and the field path, e.g. ``llama.json: $.runs[2].ops[14].K: expected integer``.
The JSON itself is read strictly (:func:`parse_json`): a duplicated key, NaN or
Infinity anywhere, or nesting too deep for the parser is refused, never guessed at.
``amber-trace/1`` files still load: they are validated against the v1 schema and
migrated (:func:`migrate_v1_ops`); saving always writes ``amber-trace/2``.
See docs/trace-format.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from amber_sim.atomic import atomic_write_text
from amber_sim.errors import InputError
from amber_sim.patterns import parse_pattern

SCHEMA_ID = "amber-trace/2"  # what save_trace writes
SCHEMA_V1 = "amber-trace/1"  # still read: validated by its own schema, then migrated
_SCHEMA_FILES = {SCHEMA_ID: "amber-trace-2.schema.json", SCHEMA_V1: "amber-trace-1.schema.json"}
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

    amber-trace/2 fields (docs/trace-format.md): ``causal`` is ``none``, ``output`` (output blocks above
    the diagonal are skipped: attention scores) or ``reduction`` (row m reduces over the first m + 1
    positions of K: P·V); ``precision`` is what the matrix unit multiplies (``fp16``, ``bf16``, ``int8``);
    ``producer`` names the op whose output is this op's input (the A operand of a GEMM);
    ``input_from`` / ``output_to`` say whether that input and the output live in ``dram`` or stay
    ``on_chip`` (fused attention); ``sparse_overhead`` marks work that exists only because the run is
    sparse (mitigation), which an all-dense twin of the run drops.
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
    causal: str = "none"
    sparse_operand: str | None = None
    pattern: str = "dense"
    density: float = 1.0
    natural_zero_fraction: float = 0.0
    dtype_bytes: float = 2.0
    elements: int = 0
    ops_per_element: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    # amber-trace/2: what the simulator must not guess from names or order
    precision: str = "fp16"
    producer: str | None = None
    input_from: str = "dram"
    output_to: str = "dram"
    sparse_overhead: bool = False

    @property
    def is_causal(self) -> bool:
        return self.causal != "none"

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

@lru_cache(maxsize=None)
def trace_schema(version: str = SCHEMA_ID) -> dict[str, Any]:
    """The JSON Schema of ``version`` (``amber-trace/2`` by default, or ``amber-trace/1``)."""
    return json.loads(resources.files("amber_sim.schemas").joinpath(_SCHEMA_FILES[version]).read_text("utf-8"))


@lru_cache(maxsize=None)
def _validator(version: str):
    import fastjsonschema

    return fastjsonschema.compile(trace_schema(version))


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


# ---------------------------------------------------------------- strict JSON

class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a JSON object as a dict, refusing a key given twice (json keeps the last)."""
    data = dict(pairs)
    if len(data) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return data


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],]')
_COLON_NEXT = re.compile(r"\s*:")


def _frames_path(frames: list[list[Any]]) -> str:
    """JSON path of the innermost frame's current member, e.g. ``$.runs[1].ops``."""
    path = "$"
    for kind, state, key in frames:
        path += f"[{state}]" if kind == "array" else f".{key}"
    return path


def _duplicate_key_error(text: str, key: str, where: str) -> InputError:
    """Find the first key given twice in one object of ``text`` (valid JSON otherwise), with its path and
    lines; only run once a duplicate is known to exist, so the scan costs nothing on good files."""
    frames: list[list[Any]] = []  # [kind, keys seen (object: name -> offset) or index (array), current key]
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            frames.append(["object", {}, None] if token == "{" else ["array", 0, None])
        elif token in "}]":
            frames.pop()
        elif token == ",":
            if frames[-1][0] == "array":
                frames[-1][1] += 1
        elif frames and frames[-1][0] == "object" and _COLON_NEXT.match(text, match.end()):
            name, seen = json.loads(token), frames[-1][1]
            if name in seen:
                path = _frames_path(frames[:-1]) + f".{name}"
                line, first = (text.count("\n", 0, offset) + 1 for offset in (match.start(), seen[name]))
                earlier = f" (first on line {first})" if first != line else ""
                return InputError(where, path, f"duplicate key {name!r} on line {line}{earlier}; a key may appear "
                                  "once per object: keep one")
            seen[name] = match.start()
            frames[-1][2] = name
    return InputError(where, None, f"duplicate key {key!r}; a key may appear once per object: keep one")


def _first_non_finite(data: Any) -> tuple[str, float] | None:
    """(JSON path, value) of the first NaN or ±Infinity in document order, or None; iterative, so any
    depth the parser accepted is walked without recursion."""
    stack: list[tuple[Any, Any, str | int | None]] = [(data, None, None)]  # (value, parent entry, key)
    while stack:
        entry = stack.pop()
        value = entry[0]
        if isinstance(value, float):
            if not math.isfinite(value):
                return _entry_path(entry), value
        elif isinstance(value, dict):
            stack.extend((item, entry, key) for key, item in reversed(value.items()))
        elif isinstance(value, (list, tuple)):
            stack.extend((value[index], entry, index) for index in range(len(value) - 1, -1, -1))
    return None


def _entry_path(entry: tuple[Any, Any, str | int | None]) -> str:
    parts = []
    while entry[1] is not None:
        key = entry[2]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        entry = entry[1]
    return "$" + "".join(reversed(parts))


def _all_finite(data: Any) -> bool:
    """The fast test (json's C encoder refuses NaN and ±Infinity); the path is looked for only on failure."""
    try:
        json.dumps(data, allow_nan=False, check_circular=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def check_finite(data: Any, where: str) -> None:
    """Refuse NaN and ±Infinity anywhere in parsed JSON (Python's json reads them; no real value is one)."""
    found = None if _all_finite(data) else _first_non_finite(data)
    if found is not None:
        path, value = found
        raise InputError(where, path, f"expected a finite number, got {json.dumps(value)}")


def parse_json(text: str, where: str) -> Any:
    """Parse JSON strictly: a syntax error (with its line), a duplicated key (with its path and line), NaN or
    Infinity anywhere (with its path) and nesting too deep to parse are each one InputError naming ``where``."""
    data = _parse_json_structure(text, where)
    check_finite(data, where)
    return data


def _parse_json_structure(text: str, where: str) -> Any:
    """:func:`parse_json` without the finite-number check (the trace validator makes it)."""
    try:
        data = json.loads(text, object_pairs_hook=_object_without_duplicates)
    except json.JSONDecodeError as exc:
        raise InputError(where, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}") from None
    except _DuplicateKey as exc:
        raise _duplicate_key_error(text, exc.key, where) from None
    except RecursionError:
        raise InputError(where, None, "invalid JSON: arrays or objects nested too deeply to read "
                         "(an amber-trace file nests 5 levels)") from None
    return data


def validate_trace_dict(data: Any, where: str) -> None:
    """Validate parsed JSON (amber-trace/2, or amber-trace/1 and its migration) against the schema and the
    semantic rules; raise InputError on the first problem."""
    _validated_v2(data, where)


def _validated_v2(data: Any, where: str) -> dict[str, Any]:
    """Check ``data`` and return it as amber-trace/2 (a v1 trace migrated; a v2 one as it is)."""
    check_finite(data, where)
    version = data.get("schema", SCHEMA_ID) if isinstance(data, dict) else SCHEMA_ID
    if not isinstance(version, str) or version not in _SCHEMA_FILES:
        raise InputError(where, "$.schema", f"expected {SCHEMA_ID!r} or {SCHEMA_V1!r}, got {_describe(version)}: this "
                         f"amber-sim reads {SCHEMA_ID} and {SCHEMA_V1} (migrated on load) only; re-capture the trace "
                         "or use the matching amber-sim version")
    import fastjsonschema

    try:
        _validator(version)(data)
    except fastjsonschema.JsonSchemaValueException as error:
        path, expected = _schema_error_message(error)
        if (version == SCHEMA_V1 and error.rule == "additionalProperties" and ".ops[" in path
                and path.rsplit(".", 1)[-1] in _V2_OP_FIELDS):
            expected = (f"not an {SCHEMA_V1} field (it is new in {SCHEMA_ID}, and this file says "
                        f"\"schema\": \"{SCHEMA_V1}\")")
        raise InputError(where, path, expected) from None
    if version == SCHEMA_V1:
        data = {**data, "schema": SCHEMA_ID,
                "runs": [{**run, "ops": migrate_v1_ops(run["ops"])} for run in data["runs"]]}
    _check_semantics(data, where, migrated=version == SCHEMA_V1)
    return data


def _check_semantics(data: dict[str, Any], where: str, migrated: bool = False) -> None:
    """What the schema cannot say, on an amber-trace/2 dict (``migrated``: it was migrated from v1, whose op
    order and indices it keeps, so the paths still point into the file)."""
    run_ids: set[str] = set()
    for run_index, run in enumerate(data["runs"]):
        run_path = f"$.runs[{run_index}]"
        if run["id"] in run_ids:
            raise InputError(where, f"{run_path}.id", f"duplicate run id {run['id']!r}; run ids must be unique")
        run_ids.add(run["id"])
        parse_pattern(run["pattern"], where, f"{run_path}.pattern")
        op_names: dict[str, int] = {}
        all_names = None  # built only to explain a bad producer
        for op_index, op in enumerate(run["ops"]):
            op_path = f"{run_path}.ops[{op_index}]"
            if op["name"] in op_names:
                raise InputError(where, f"{op_path}.name", f"duplicate op name {op['name']!r} in run {run['id']!r}")
            producer = op.get("producer")
            if producer is not None and producer not in op_names:
                if all_names is None:
                    all_names = {other["name"]: index for index, other in enumerate(run["ops"])}
                raise InputError(where, f"{op_path}.producer", _bad_producer(producer, op_index, all_names, run["id"]))
            op_names[op["name"]] = op_index
            _check_v2_fields(op, op_path, where, migrated)
            if op["kind"] != "vector":
                _check_gemm_op(op, op_path, where)


def _bad_producer(producer: str, op_index: int, names: dict[str, int], run_id: str) -> str:
    where_it_is = names.get(producer)
    if where_it_is == op_index:
        found = "names the op itself"
    elif where_it_is is not None:
        found = f"names a later op (ops[{where_it_is}])"
    else:
        close = difflib.get_close_matches(producer, list(names), n=1)
        found = "names no op of the run" + (f" (did you mean {close[0]!r}?)" if close else "")
    return (f"{producer!r} {found}; a producer must be an earlier op of run {run_id!r} "
            "(ops are listed in execution order)")


def _check_v2_fields(op: dict[str, Any], op_path: str, where: str, migrated: bool) -> None:
    kind = op["kind"]
    article = "an" if kind == "attention" else "a"
    causal = op.get("causal", "none")
    if causal != "none" and kind != "attention":
        got = "true (amber-trace/1's causal, migrated)" if migrated else _describe(causal)
        raise InputError(where, f"{op_path}.causal", f'expected "none" on {article} {kind} op, got {got}: '
                         "only attention ops are causal")
    if op["precision"] == "int8" and kind != "linear":
        raise InputError(where, f"{op_path}.precision", f'expected "fp16" or "bf16" on {article} {kind} op, got '
                         '"int8": int8 is for linear ops (W8A8) only')


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
        raise InputError(where, f"{op_path}.sparse_operand", "attention ops are dense; expected null")
    if op.get("operand_b_batch", 1) > op["batch"] or op["batch"] % op.get("operand_b_batch", 1):
        raise InputError(where, f"{op_path}.operand_b_batch",
                         f"expected a divisor of batch = {op['batch']}, got {op.get('operand_b_batch')}")


# ---------------------------------------------------------------- dict <-> dataclass

def _op_from_dict(data: dict[str, Any]) -> Op:
    return Op(**data)


# Roles whose meaning amber-trace/1 left implicit; used only to migrate v1 files (docs/trace-format.md).
_V1_ON_CHIP_INPUT_ROLES = ("attn_value", "attn_softmax")
_V1_ON_CHIP_OUTPUT_ROLES = ("attn_score", "attn_softmax")
_V1_MITIGATION_ROLE = "mitigation"
_V2_OP_FIELDS = ("precision", "producer", "input_from", "output_to", "sparse_overhead")


def migrate_v1_ops(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """amber-trace/1 op dicts of one run → amber-trace/2 op dicts, making explicit what v1 implied.

    - ``causal``: true on ``attn_value`` → ``reduction``, true elsewhere → ``output``, false → ``none``;
    - ``precision``: ``int8`` for linears of 1 byte (v1's W8A8), else ``fp16``;
    - ``input_from`` / ``output_to``: ``on_chip`` for fused attention (P of ``attn_value``, the scores of
      ``attn_score``, both sides of ``attn_softmax``), else ``dram``;
    - ``producer`` of a GEMM: the latest earlier op that is neither a linear nor mitigation work (q/k/v →
      the input norm, o → the attention context, down → the SiLU·mul); a mitigation op gets its linear's;
      other vector ops have none;
    - ``sparse_overhead``: true for mitigation ops.
    """
    migrated: list[dict[str, Any]] = []
    source: str | None = None  # the latest op whose output a following GEMM reads
    for data in ops:
        op = dict(data)
        role, kind = op["role"], op["kind"]
        causal = op.pop("causal", False)
        if kind != "vector":
            op["causal"] = ("reduction" if role == "attn_value" else "output") if causal else "none"
            op["precision"] = "int8" if kind == "linear" and op["dtype_bytes"] <= 1.0 else "fp16"
            op["producer"] = source
        else:
            op["precision"] = "fp16"
            op["producer"] = source if role == _V1_MITIGATION_ROLE else None
        op["input_from"] = "on_chip" if role in _V1_ON_CHIP_INPUT_ROLES else "dram"
        op["output_to"] = "on_chip" if role in _V1_ON_CHIP_OUTPUT_ROLES else "dram"
        op["sparse_overhead"] = role == _V1_MITIGATION_ROLE
        if kind != "linear" and role != _V1_MITIGATION_ROLE:
            source = op["name"]
        migrated.append(op)
    return migrated


def _run_from_dict(data: dict[str, Any]) -> Run:
    metrics = None if data["metrics"] is None else dict(data["metrics"])
    return Run(
        id=data["id"], pattern=data["pattern"], criterion=data["criterion"], policy=data["policy"],
        mitigation=data["mitigation"], precision=data["precision"], metrics=metrics,
        ops=tuple(_op_from_dict(op) for op in data["ops"]),
    )


def trace_from_dict(data: dict[str, Any], where: str = "<trace>") -> Trace:
    """Validate and convert parsed JSON to a Trace (an amber-trace/1 dict is migrated to amber-trace/2)."""
    data = _validated_v2(data, where)
    model = data["model"]
    return Trace(
        model=ModelInfo(name=model["name"], family=model["family"], weights=model["weights"], source=model["source"],
                        config=ModelConfig(**model["config"])),
        capture=CaptureInfo(**data["capture"]),
        runs=tuple(_run_from_dict(run) for run in data["runs"]),
        source_path=where,
    )


_OP_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Op)}
_GEMM_FIELDS = ("M", "K", "N", "batch", "operand_b_batch", "causal", "sparse_operand", "pattern", "density",
                "natural_zero_fraction", "dtype_bytes", "precision", "producer", "input_from", "output_to",
                "sparse_overhead")
_VECTOR_FIELDS = ("elements", "ops_per_element", "bytes_in", "bytes_out", "precision", "producer", "input_from",
                  "output_to", "sparse_overhead")
# Fields the v2 schema makes optional: left out when they hold their default (required ones are always written).
_GEMM_OPTIONAL = ("operand_b_batch", "causal", "sparse_overhead")
_VECTOR_OPTIONAL = ("producer", "sparse_overhead")


def _op_to_dict(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"name": op.name, "layer": op.layer, "role": op.role, "kind": op.kind}
    keys, optional = (_VECTOR_FIELDS, _VECTOR_OPTIONAL) if op.kind == "vector" else (_GEMM_FIELDS, _GEMM_OPTIONAL)
    for key in keys:
        value = getattr(op, key)
        if key not in optional or value != _OP_DEFAULTS[key]:
            out[key] = value
    return out


def _drop_none(data: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    """Leave out optional fields that are unset (required fields keep an explicit null)."""
    return {key: value for key, value in data.items() if value is not None or key not in optional}


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    model = dataclasses.asdict(trace.model)
    model["config"] = _drop_none(model["config"], ("head_dim", "max_position"))
    return {
        "schema": SCHEMA_ID,  # the content is always amber-trace/2, whatever a loaded trace came from
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
        text = target.read_text("utf-8")
    except UnicodeDecodeError:
        raise InputError(where, None, "not a UTF-8 text file; expected an amber-trace JSON file") from None
    return trace_from_dict(_parse_json_structure(text, where), where)  # trace_from_dict checks finiteness


def finite_or_none(value: float | None) -> float | None:
    """Metrics are JSON numbers: NaN/Inf become null rather than invalid JSON."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
