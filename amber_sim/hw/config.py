"""Hardware configuration: frozen dataclasses mirroring the YAML, and a validating loader.

Each field carries its unit and meaning in its metadata; the loader walks the
dataclasses, so the YAML, the dotted paths used by sweeps
(``memory.dram.bandwidth_gb_s``) and docs/hardware-config.md all come from one
place. Hardware objects only describe; the simulator decides (docs/model.md).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amber_sim.errors import InputError
from amber_sim.patterns import Pattern, parse_pattern

_NO_DEFAULT = dataclasses.MISSING


def spec(doc: str, *, default: Any = _NO_DEFAULT, gt: float | None = None, ge: float | None = None,
         le: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its documentation and constraints."""
    metadata = {"doc": doc, "gt": gt, "ge": ge, "le": le, "choices": choices}
    if default is _NO_DEFAULT:
        return field(metadata=metadata)
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed")
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class CubeConfig:
    m: int = spec("rows of the activation tile per cycle (tokens)", gt=0, le=4096)
    n: int = spec("columns of the output tile per cycle (output channels)", gt=0, le=4096)
    k: int = spec("reduction depth per cycle (input channels); one cube does m·n·k fp16 MACs per cycle", gt=0, le=4096)


@dataclass(frozen=True)
class SystolicConfig:
    rows: int = spec("processing-element rows", gt=0, le=4096)
    cols: int = spec("processing-element columns", gt=0, le=4096)
    dataflow: str = spec("os (output stationary), ws (weight stationary) or is (input stationary), as SCALE-Sim",
                         choices=("os", "ws", "is"))


@dataclass(frozen=True)
class ComputeConfig:
    kind: str = spec("cube (m×n×k MACs per cycle, tensor-core style) or systolic (rows×cols array)",
                     choices=("cube", "systolic"))
    cube: CubeConfig | None = spec("cube shape; required when kind is cube", default=None)
    systolic: SystolicConfig | None = spec("array shape and dataflow; required when kind is systolic", default=None)
    int8_macs_per_fp16_mac: float = spec("int8 MAC rate relative to fp16 (W8A8 runs); 2 doubles throughput", default=2.0, ge=1, le=16)
    sustained_fraction: float = spec("fraction of the peak MAC rate a tuned GEMM kernel sustains on the matrix unit "
                                     "(clock held down by the power limit, issue overhead); every compute step takes "
                                     "its peak-rate cycles divided by this; 1 computes at the peak", default=1.0, gt=0, le=1)

    @property
    def fp16_macs_per_cycle(self) -> int:
        if self.kind == "cube":
            assert self.cube is not None
            return self.cube.m * self.cube.n * self.cube.k
        assert self.systolic is not None
        return self.systolic.rows * self.systolic.cols


@dataclass(frozen=True)
class VectorConfig:
    elements_per_cycle: int = spec("fp16 elementwise operations per cycle per core (norms, softmax, SiLU, software top-k)", gt=0)


@dataclass(frozen=True)
class SparsifierConfig:
    kind: str = spec("what selects the top-N of each M: none (activations arrive pre-pruned, free), vector "
                     "(the vector unit, a software top-k) or dedicated (a hardware unit)",
                     choices=("none", "vector", "dedicated"))
    elements_per_cycle: int = spec("activation elements a dedicated sparsifier scores per cycle per core; "
                                   "ignored for none and vector", default=0, ge=0)
    vector_ops_per_element: float = spec("vector-unit operations per activation element for a software top-N-of-M "
                                         "(compare/select network); used when kind is vector", default=0.0, ge=0)
    fused: bool = spec("true: selection runs as the producer writes the activation (no extra pass over memory); "
                       "false: its own pass that reads the dense activation and writes the compressed one",
                       default=True)


@dataclass(frozen=True)
class SparsityConfig:
    operand: str = spec("which GEMM operand the sparse datapath accepts: activation (A in y = x·Wᵀ), "
                        "weight, or none (no sparse datapath)", choices=("activation", "weight", "none"))
    patterns: tuple[str, ...] = spec("N:M patterns executed natively, e.g. ['2:4', '4:8']; empty for none", default=())
    compressed_io: bool = spec("true: sparse activations travel compressed (values + metadata) and are expanded on chip",
                               default=False)
    metadata: str = spec("metadata format: index (ceil(log2 M) bits per kept value) or bitmask (1 bit per element)",
                         default="index", choices=("index", "bitmask"))
    sparsifier: SparsifierConfig = spec("the unit that selects kept values", default=SparsifierConfig(kind="none"))
    overhead_cycles_per_tile: int = spec("cycles added to every compute tile that runs a sparse pattern natively "
                                         "(metadata decode, mux set-up)", default=0, ge=0)
    sustained_fraction: float = spec("fraction of its nominal rate a native N:M step sustains (the dense operand and "
                                     "the metadata must still be fed at the doubled rate): a native step takes its "
                                     "N/M-of-K cycles divided by this, so a compute-bound GEMM gains at most "
                                     "(M/N) × this; 1 reaches M/N", default=1.0, gt=0, le=1)

    def parsed_patterns(self) -> tuple[Pattern, ...]:
        return tuple(parse_pattern(text) for text in self.patterns)


@dataclass(frozen=True)
class DramConfig:
    bandwidth_gb_s: float = spec("off-chip bandwidth in GB/s (10⁹ bytes per second), shared by all cores", gt=0)
    latency_ns: float = spec("latency of one DRAM access in ns, paid once per op before its first tile arrives", ge=0)
    sustained_fraction: float = spec("fraction of bandwidth_gb_s a streaming kernel sustains (refresh, bank and "
                                     "turnaround losses); 1 streams at the peak", default=1.0, gt=0, le=1)


@dataclass(frozen=True)
class L2Config:
    size_mb: float = spec("on-chip shared buffer / L2 size in MiB", gt=0)
    bandwidth_gb_s: float = spec("L2 to cores bandwidth in GB/s, shared by all cores", gt=0)


@dataclass(frozen=True)
class L1Config:
    size_kb: float = spec("per-core staging buffer (Ascend L1 / GPU shared memory) in KiB", gt=0)
    bandwidth_bytes_per_cycle: float = spec("L1 to the operand buffers, bytes per cycle per core", gt=0)


@dataclass(frozen=True)
class BufferConfig:
    size_kb: float = spec("buffer size in KiB (per core)", gt=0)


@dataclass(frozen=True)
class MemoryConfig:
    dram: DramConfig = spec("off-chip memory")
    l0a: BufferConfig = spec("activation operand buffer per core (Ascend L0A; SCALE-Sim ifmap SRAM)")
    l0b: BufferConfig = spec("weight operand buffer per core (Ascend L0B; SCALE-Sim filter SRAM)")
    l0c: BufferConfig = spec("output / accumulator buffer per core (Ascend L0C; SCALE-Sim ofmap SRAM)")
    l2: L2Config | None = spec("shared on-chip buffer; omit for none", default=None)
    l1: L1Config | None = spec("per-core staging buffer between L2/DRAM and the operand buffers; omit for none", default=None)


@dataclass(frozen=True)
class EnergyConfig:
    mac_fp16_pj: float = spec("energy of one fp16 MAC in pJ", ge=0)
    mac_int8_pj: float = spec("energy of one int8 MAC in pJ", ge=0)
    dram_pj_per_byte: float = spec("energy per DRAM byte in pJ", ge=0)
    l2_pj_per_byte: float = spec("energy per L2 byte in pJ", default=0.0, ge=0)
    sram_pj_per_byte: float = spec("energy per per-core buffer byte (L1/L0) in pJ", default=0.0, ge=0)
    vector_pj_per_op: float = spec("energy per vector-unit operation in pJ", default=0.0, ge=0)


@dataclass(frozen=True)
class ProtocolConfig:
    base_latency_us: float = spec("latency the protocol adds once per call, µs (NCCL's baseLat)", ge=0, le=1e6)
    step_latency_us: float = spec("latency the protocol adds to every step of the algorithm, µs, on top of "
                                  "system.latency_us (NCCL's hwLat per hop)", ge=0, le=1e6)
    bandwidth_share: float = spec("share of the chip's collective bandwidth B the protocol moves data at (LL: 8 "
                                  "data bytes per 16-byte line, 0.5; LL128: 120 of 128 bytes; Simple: 1)",
                                  gt=0, le=1)


@dataclass(frozen=True)
class ProtocolsConfig:
    ll: ProtocolConfig | None = spec("low-latency protocol (flag in every 8-byte word); omit if not offered",
                                     default=None)
    ll128: ProtocolConfig | None = spec("LL128 protocol (one flag word per 128-byte line); omit if not offered",
                                        default=None)
    simple: ProtocolConfig | None = spec("Simple protocol (bulk copies, a fence per step); omit if not offered",
                                         default=None)


@dataclass(frozen=True)
class SystemConfig:
    chips: int = spec("chips in the system (one node); 1 is a single chip", gt=0, le=4096)
    topology: str = spec("how the chips connect: ring (each chip to its two neighbours), full_mesh (a link to "
                         "every other chip) or switch (every chip to a switch, e.g. NVSwitch)",
                         choices=("ring", "full_mesh", "switch"))
    link_bandwidth_gb_s: float = spec("bandwidth of one link in one direction, GB/s (10⁹ bytes per second)", gt=0)
    links_per_chip: int = spec("links of one chip (all of them are used at once by the collectives)", gt=0, le=1024)
    latency_us: float = spec("latency of one step of a collective algorithm (a message across a link), µs; "
                             "with protocols, each protocol's step_latency_us is added to it", ge=0)
    sustained_fraction: float = spec("fraction of the links' bandwidth a collective library sustains (protocol "
                                     "headers, flow control); 1 moves at the line rate", default=1.0, gt=0, le=1)
    algorithms: tuple[str, ...] = spec("the collective algorithms the system's library runs, a subset of ring, "
                                       "direct, tree, in_switch (docs/model.md §8); auto takes the fastest of "
                                       "them the topology allows; empty: all", default=())
    protocols: ProtocolsConfig | None = spec("the library's transfer protocols (NCCL's LL, LL128, Simple): each "
                                             "collective takes the fastest algorithm × protocol pair, the protocol "
                                             "adding its latencies and moving data at its share of B; omit for "
                                             "the plain α–β cost", default=None)
    in_switch_reduction: bool = spec("the switch reduces in the network (NVLink SHARP): an all-reduce sends and "
                                     "receives each byte once; switch topology only", default=False)
    compressed_allgather: bool = spec("with sequence parallelism, an activation whose readers are all pruned alike "
                                      "crosses the links in its compressed N:M form (values + metadata)",
                                      default=False)
    overlap_collectives: bool = spec("with sequence parallelism, split each all-gather and reduce-scatter into "
                                     "per-chip chunks that overlap the GEMMs reading / producing them (collective "
                                     "matmul, as Megatron-LM's tp-comm-overlap): only what (p-1)/p of those GEMMs "
                                     "cannot hide stays exposed", default=False)


@dataclass(frozen=True)
class AreaConfig:
    dense_core_mm2: float = spec("area of one core's dense datapath (MAC array, vector unit, control) in mm², "
                                 "without its buffers: L0A/L0B/L0C/L1 are charged at sram_mm2_per_mb", gt=0)
    sram_mm2_per_mb: float = spec("area of on-chip SRAM per MiB in mm² (the L2 and every per-core buffer)",
                                    default=0.0, ge=0)
    mux_mm2_per_lane_input: float = spec("area per MAC lane per mux input of the N:M operand-selection network in mm²; "
                                         "the network grows with the largest supported M", default=0.0, ge=0)
    metadata_mm2_per_bit_lane: float = spec("area per metadata bit per MAC lane (index storage/decode) in mm²",
                                            default=0.0, ge=0)
    sparsifier_mm2: float = spec("area of one dedicated sparsifier per core in mm²", default=0.0, ge=0)


@dataclass(frozen=True)
class HardwareConfig:
    name: str = spec("short identifier used in reports and file names")
    clock_ghz: float = spec("core clock in GHz", gt=0, le=100)
    cores: int = spec("number of cores (AI cores / SMs / arrays) working in parallel", gt=0, le=100000)
    compute: ComputeConfig = spec("the matrix unit of one core")
    vector: VectorConfig = spec("the vector unit of one core")
    memory: MemoryConfig = spec("memory hierarchy")
    sparsity: SparsityConfig = spec("the sparse datapath", default=SparsityConfig(operand="none"))
    kernel_overhead_us: float = spec("fixed time in µs each kernel adds on the device (launch, block scheduling, "
                                     "prologue, completion): charged once per op that starts a kernel (reads its "
                                     "input from DRAM) and per own-pass sparsifier; 0 for none", default=0.0, ge=0,
                                     le=1000)
    description: str = spec("what this configuration models", default="")
    sources: tuple[str, ...] = spec("where the numbers come from, one entry per source", default=())
    assumptions: tuple[str, ...] = spec("numbers that are assumptions rather than published facts", default=())
    system: SystemConfig | None = spec("optional multi-chip system the chip sits in (collectives, docs/model.md "
                                       "§8); omit for a single chip", default=None)
    energy: EnergyConfig | None = spec("optional energy model", default=None)
    area: AreaConfig | None = spec("optional area model for co-design studies", default=None)
    source_path: str | None = field(default=None, compare=False, metadata={"internal": True})


# ---------------------------------------------------------------- generic loader

def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return rest[0], True
    return annotation, False


def _type_name(annotation: Any) -> str:
    if dataclasses.is_dataclass(annotation):
        return "mapping"
    if typing.get_origin(annotation) is tuple:
        return "list of " + _type_name(typing.get_args(annotation)[0])
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(annotation, str(annotation))


def public_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _convert_scalar(value: Any, annotation: Any, where: str, path: str) -> Any:
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise InputError(where, path, f"expected a finite number, got {value!r}")
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise InputError(where, path, f"expected {_type_name(annotation)}, got {type(value).__name__} {value!r}")


def _check_constraints(value: Any, meta: typing.Mapping[str, Any], where: str, path: str) -> None:
    if meta.get("choices") and value not in meta["choices"]:
        raise InputError(where, path, f"expected one of {', '.join(meta['choices'])}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if meta.get("gt") is not None and not value > meta["gt"]:
            raise InputError(where, path, f"expected a value > {meta['gt']}, got {value!r}")
        if meta.get("ge") is not None and not value >= meta["ge"]:
            raise InputError(where, path, f"expected a value >= {meta['ge']}, got {value!r}")
        if meta.get("le") is not None and not value <= meta["le"]:
            raise InputError(where, path, f"expected a value <= {meta['le']}, got {value!r}")


def _build(cls: type, data: Any, where: str, path: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(where, path or "$", f"expected a mapping, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in public_fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(fields)}"
            raise InputError(where, _join(path, str(key)), f"unknown key; {hint}")
    values = {}
    for name, fld in fields.items():
        field_path = _join(path, name)
        if name not in data:
            if fld.default is _NO_DEFAULT:
                raise InputError(where, field_path, f"missing required key ({fld.metadata['doc']})")
            continue
        annotation, optional = _unwrap_optional(hints[name])
        raw = data[name]
        if raw is None and optional:
            values[name] = None
            continue
        values[name] = _convert(raw, annotation, where, field_path)
        _check_constraints(values[name], fld.metadata, where, field_path)
    return cls(**values)


def _convert(raw: Any, annotation: Any, where: str, path: str) -> Any:
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, raw, where, path)
    if typing.get_origin(annotation) is tuple:
        if not isinstance(raw, list):
            raise InputError(where, path, f"expected a list, got {type(raw).__name__} {raw!r}")
        item_type = typing.get_args(annotation)[0]
        return tuple(_convert(item, item_type, where, f"{path}[{index}]") for index, item in enumerate(raw))
    return _convert_scalar(raw, annotation, where, path)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_cross_fields(config: HardwareConfig, where: str) -> None:
    compute = config.compute
    if compute.kind == "cube" and compute.cube is None:
        raise InputError(where, "compute.cube", "missing: kind is cube, so give cube: {m, n, k}")
    if compute.kind == "systolic" and compute.systolic is None:
        raise InputError(where, "compute.systolic", "missing: kind is systolic, so give systolic: {rows, cols, dataflow}")
    sparsity = config.sparsity
    for index, text in enumerate(sparsity.patterns):
        pattern = parse_pattern(text, where, f"sparsity.patterns[{index}]")
        if pattern.kind != "nm":
            raise InputError(where, f"sparsity.patterns[{index}]", f"expected an N:M pattern such as '2:4', got {text!r}")
    if sparsity.operand == "none" and sparsity.patterns:
        raise InputError(where, "sparsity.patterns", "must be empty when sparsity.operand is none")
    if sparsity.sparsifier.kind == "dedicated" and sparsity.sparsifier.elements_per_cycle <= 0:
        raise InputError(where, "sparsity.sparsifier.elements_per_cycle", "expected a value > 0 for a dedicated sparsifier")
    if sparsity.sparsifier.kind == "vector" and sparsity.sparsifier.vector_ops_per_element <= 0:
        raise InputError(where, "sparsity.sparsifier.vector_ops_per_element", "expected a value > 0 for a vector sparsifier")
    system = config.system
    if system is not None:
        if system.in_switch_reduction and system.topology != "switch":
            raise InputError(where, "system.in_switch_reduction", "needs topology switch")
        if system.topology == "full_mesh" and system.chips > 1 and system.links_per_chip < system.chips - 1:
            raise InputError(where, "system.links_per_chip", f"a full mesh of {system.chips} chips needs at least "
                             f"{system.chips - 1} links per chip")
        if system.topology == "ring" and system.chips > 2 and system.links_per_chip < 2:
            raise InputError(where, "system.links_per_chip", "a ring needs at least 2 links per chip")
        known = ("ring", "direct", "tree", "in_switch")
        for index, name in enumerate(system.algorithms):
            if name not in known:
                raise InputError(where, f"system.algorithms[{index}]", f"expected one of {', '.join(known)}, "
                                 f"got {name!r}")
            if name in system.algorithms[:index]:
                raise InputError(where, f"system.algorithms[{index}]", f"{name!r} is listed twice")
        if system.algorithms and "ring" not in system.algorithms and (
                system.topology == "ring" or not {"direct", "ring"} & set(system.algorithms)):
            raise InputError(where, "system.algorithms", "every collective needs an algorithm: list ring (any "
                             "topology) or direct (full mesh, switch)")
        if system.protocols is not None and not any(
                (system.protocols.ll, system.protocols.ll128, system.protocols.simple)):
            raise InputError(where, "system.protocols", "give at least one of ll, ll128, simple (or omit "
                             "protocols for the plain α–β cost)")


def hardware_from_dict(data: Any, where: str = "<config>") -> HardwareConfig:
    config = _build(HardwareConfig, data, where, "")
    _check_cross_fields(config, where)
    return dataclasses.replace(config, source_path=where)


_YAML_MERGE_TAG = "tag:yaml.org,2002:merge"


def _yaml_path(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else _join(path, key)


def _check_duplicate_keys(root: Any, where: str) -> None:
    """Refuse a key given twice in one YAML mapping, at any depth (PyYAML silently keeps the last one).

    Walks the composed node tree (iteratively, each node once: anchors may repeat nodes); a merge key
    (``<<``) may be overridden by the mapping's own keys, as YAML intends.
    """
    import yaml

    stack, visited = [(root, "")], set()
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_lines: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _YAML_MERGE_TAG:
                    stack.append((value_node, path))
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # an unusual key: the constructor or the field check reports it
                line, key = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
                if key in first_lines:
                    earlier = f" (first on line {first_lines[key]})" if first_lines[key] != line else ""
                    raise InputError(where, _join(path, key_node.value), f"duplicate key {key_node.value!r} on line "
                                     f"{line}{earlier}; a key may appear once per mapping: keep one")
                first_lines[key] = line
                stack.append((value_node, _join(path, key_node.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, _yaml_path(path, index)) for index, item in enumerate(node.value))


def _load_yaml_strict(text: str, where: str) -> Any:
    """``yaml.safe_load`` with duplicate keys refused (compose, check, then construct)."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(node, where)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_hardware(path: str | Path) -> HardwareConfig:
    import yaml

    target = Path(path)
    where = str(path)
    if not target.is_file():
        raise InputError(where, None, "no such hardware config (pass a path, or a name from hw_configs/ such as ascend_like.yaml)")
    try:
        data = _load_yaml_strict(target.read_text("utf-8"), where)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        location = f"line {mark.line + 1} column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(where, location, f"invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise InputError(where, None, "not a UTF-8 text file; expected a hardware config YAML file") from None
    except RecursionError:
        raise InputError(where, None, "invalid YAML: mappings or lists nested too deeply to read "
                         "(a hardware config nests 3 levels)") from None
    return hardware_from_dict(data, where)


def hardware_to_dict(config: HardwareConfig) -> dict[str, Any]:
    """The YAML-shaped dict of a config (lists for tuples, no internal fields); loads back to an equal config."""
    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in public_fields(type(value))}
        if isinstance(value, tuple):
            return [convert(item) for item in value]
        return value

    return convert(config)


def field_table(cls: type = HardwareConfig, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted path, type, default, doc) for every field, depth first: the source of docs/hardware-config.md."""
    rows = []
    hints = typing.get_type_hints(cls)
    for fld in public_fields(cls):
        annotation, optional = _unwrap_optional(hints[fld.name])
        path = _join(prefix, fld.name)
        if fld.default is _NO_DEFAULT:
            default = "required"
        elif dataclasses.is_dataclass(fld.default):
            default = "see below"
        else:
            default = repr(list(fld.default) if isinstance(fld.default, tuple) else fld.default)
        rows.append((path, _type_name(annotation) + (" or null" if optional else ""), default, fld.metadata["doc"]))
        if dataclasses.is_dataclass(annotation):
            rows.extend(field_table(annotation, path))
    return rows
