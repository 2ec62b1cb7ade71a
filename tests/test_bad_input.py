"""Bad input the tool promises to refuse cleanly: one line naming the file, the field and the fix, exit code 2,
no traceback, nothing written. Non-finite numbers and duplicate keys in traces and hardware configs, JSON or
YAML nested too deeply to parse, and output locations that cannot be written (checked before any work)."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

import amber_sim.atomic as atomic
from amber_sim.cli import main
from amber_sim.errors import InputError
from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR
from amber_sim.trace import dumps_trace, load_trace, parse_json, save_trace, trace_to_dict

ASCEND_YAML = (HW_CONFIG_DIR / "ascend_like.yaml").read_text("utf-8")
NOT_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories anyway")


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


@pytest.mark.parametrize("yaml_value", [".nan", ".NaN", ".inf", "-.inf", "+.Inf"])
@pytest.mark.parametrize("line,field", [
    ("clock_ghz: 1.8", "clock_ghz"),
    ("dram: {bandwidth_gb_s: 1600,", "memory.dram.bandwidth_gb_s"),
    ("mac_fp16_pj: 0.25", "energy.mac_fp16_pj"),
])
def test_non_finite_numbers_in_a_hardware_config_name_the_file_and_the_field(tmp_path, line, field, yaml_value):
    key, _, rest = line.partition(": ")
    changed = f"{key}: {{{field.rsplit('.', 1)[1]}: {yaml_value}," if rest.startswith("{") else f"{key}: {yaml_value}"
    assert line in ASCEND_YAML
    config = tmp_path / "hw.yaml"
    config.write_text(ASCEND_YAML.replace(line, changed, 1), "utf-8")
    assert _error(load_hardware, config).startswith(f"{config}: {field}: expected a finite number, got ")


def test_non_finite_integer_and_list_entries_are_refused(tmp_path):
    config = tmp_path / "hw.yaml"
    config.write_text(ASCEND_YAML.replace("cores: 24", "cores: .inf", 1), "utf-8")
    assert _error(load_hardware, config) == f"{config}: cores: expected integer, got float inf"
    config.write_text(ASCEND_YAML.replace('patterns: ["2:4", "4:8", "8:16"]', 'patterns: ["2:4", .nan]', 1), "utf-8")
    assert _error(load_hardware, config) == f"{config}: sparsity.patterns[1]: expected string, got float nan"


# ---------------------------------------------------------------- duplicate keys

def test_duplicate_yaml_keys_at_any_depth_name_the_key_and_its_lines(tmp_path, capsys):
    config = tmp_path / "hw.yaml"
    line = ASCEND_YAML.splitlines().index("clock_ghz: 1.8            # [910b]") + 1
    config.write_text(ASCEND_YAML.replace("cores: 24", "clock_ghz: 3.0\ncores: 24", 1), "utf-8")
    expected = (f"{config}: clock_ghz: duplicate key 'clock_ghz' on line {line + 1} (first on line {line}); a key "
                "may appear once per mapping: keep one")
    assert _error(load_hardware, config) == expected
    assert _one_line_exit_2(["--hw", str(config), "--trace", "llama.json"], capsys) == expected
    for old, new, field in [
        ("dram: {bandwidth_gb_s: 1600,", "dram: {bandwidth_gb_s: 1600, bandwidth_gb_s: 800,", "memory.dram.bandwidth_gb_s"),
        ("    kind: dedicated", "    kind: dedicated\n    kind: vector", "sparsity.sparsifier.kind"),
        ("  mac_int8_pj: 0.07", "  mac_int8_pj: 0.07\n  mac_int8_pj: 0.07", "energy.mac_int8_pj"),  # even the same value
    ]:
        config.write_text(ASCEND_YAML.replace(old, new, 1), "utf-8")
        assert f"{config}: {field}: duplicate key '{field.rsplit('.', 1)[1]}' on line " in _error(load_hardware, config)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    config = tmp_path / "hw.yaml"
    merged = ASCEND_YAML.replace("l0a: {size_kb: 64}", "l0a: &buffer {size_kb: 64}", 1).replace(
        "l0c: {size_kb: 128}", "l0c: {<<: *buffer, size_kb: 128}", 1)
    config.write_text(merged, "utf-8")
    assert load_hardware(config).memory.l0c.size_kb == 128


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


def test_yaml_nested_100000_deep_is_one_line(tmp_path, capsys):
    config = tmp_path / "deep.yaml"
    config.write_text("name: " + "[" * 100_000 + "]" * 100_000 + "\n", "utf-8")
    message = _one_line_exit_2(["--hw", str(config), "--trace", "llama.json"], capsys)
    assert message.startswith(f"{config}: invalid YAML: mappings or lists nested too deeply to read")


# ---------------------------------------------------------------- output locations, checked before any work

@pytest.fixture
def no_work(monkeypatch):
    """Every command's expensive step fails the test if it is reached."""
    def forbidden(*_args, **_kwargs):
        raise AssertionError("the output location must be refused before any work")

    import amber_sim.capture.capture as capture
    import amber_sim.capture.synthetic as synthetic
    import amber_sim.sim.engine as engine
    import amber_sim.study.studies as studies
    import amber_sim.study.sweep as sweep

    for module, name in ((engine, "simulate_trace"), (sweep, "prepare_job"), (studies, "write_codesign"),
                         (capture, "capture_trace"), (synthetic, "synthetic_trace")):
        monkeypatch.setattr(module, name, forbidden)


def _dir_commands(out: str) -> dict[str, list[str]]:
    return {
        "main job": ["--hw", "ascend_like", "--trace", "smollm2-135m", "--out", out],
        "sweep": ["sweep", "--hw", "ascend_like", "--trace", "smollm2-135m", "--vary", "cores=12,24", "--out", out],
        "study": ["study", "codesign", "--trace", "smollm2-135m", "--hw", "ascend_like", "--out", out],
    }


def _file_commands(out: str) -> dict[str, list[str]]:
    return {
        "synth": ["synth", "--model", "llama-3.1-8b", "--seq-len", "16", "--out", out],
        "capture": ["capture", "--model", "llama-3.1-8b", "--init", "random", "--seq-len", "16", "--out", out],
    }


@pytest.mark.parametrize("command", ["main job", "sweep", "study"])
def test_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, no_work, command):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me", "utf-8")
    message = _one_line_exit_2(_dir_commands(str(existing))[command], capsys)
    assert message == f"--out: {str(existing)!r} is a file; expected a directory (existing or to be created)"
    below = existing / "sub"
    message = _one_line_exit_2(_dir_commands(str(below))[command], capsys)
    assert message == f"--out: cannot create {str(below)!r}: {str(existing)!r} is a file, not a directory"
    assert existing.read_text("utf-8") == "keep me" and sorted(tmp_path.iterdir()) == [existing]


@pytest.mark.parametrize("command", ["synth", "capture"])
def test_out_file_that_is_a_directory_or_in_a_missing_one_is_refused_before_any_work(tmp_path, capsys, no_work,
                                                                                    command):
    message = _one_line_exit_2(_file_commands(str(tmp_path))[command], capsys)
    assert message.startswith(f"--out: {str(tmp_path)!r} is a directory; expected a file path")
    missing = tmp_path / "missing" / "t.json"
    message = _one_line_exit_2(_file_commands(str(missing))[command], capsys)
    assert message == f"--out: directory {str(missing.parent)!r} does not exist; create it first"
    assert list(tmp_path.iterdir()) == []


def _refuse_writes_to(monkeypatch, directory) -> None:
    monkeypatch.setattr(atomic, "_writable_dir", lambda path: path != directory)


@pytest.mark.parametrize("command", ["main job", "sweep", "study", "synth", "capture"])
def test_out_in_an_unwritable_directory_is_refused_before_any_work(tmp_path, capsys, monkeypatch, no_work, command):
    """Root writes anywhere, so the permission check itself is stood in for (the chmod test below uses the real one)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    _refuse_writes_to(monkeypatch, locked)
    if command in ("synth", "capture"):
        message = _one_line_exit_2(_file_commands(str(locked / "t.json"))[command], capsys)
        assert message == f"--out: directory {str(locked)!r} is not writable; choose another --out"
        return
    message = _one_line_exit_2(_dir_commands(str(locked))[command], capsys)
    assert message == f"--out: directory {str(locked)!r} is not writable; choose another --out"
    message = _one_line_exit_2(_dir_commands(str(locked / "new" / "sub"))[command], capsys)
    assert message == f"--out: cannot create {str(locked / 'new' / 'sub')!r}: directory {str(locked)!r} is not writable"
    assert list(locked.iterdir()) == []


@NOT_ROOT
def test_out_in_a_read_only_directory_is_refused(tmp_path, capsys, no_work):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for argv in (_dir_commands(str(locked))["main job"], _dir_commands(str(locked / "sub"))["sweep"],
                     _file_commands(str(locked / "t.json"))["synth"]):
            assert "is not writable" in _one_line_exit_2(argv, capsys)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_a_new_out_directory_is_created_with_its_parents_only_once_the_input_is_good(tmp_path, capsys):
    out = tmp_path / "new" / "sub"
    bad = ["sweep", "--hw", "ascend_like", "--trace", "smollm2-135m", "--vary", "cores=0", "--out", str(out)]
    assert "cores" in _one_line_exit_2(bad, capsys)
    assert list(tmp_path.iterdir()) == []  # refused input: no folder left behind
    assert main(["--hw", "ascend_like", "--trace", "smollm2-135m", "--patterns", "2:4", "--out", str(out)]) == 0
    assert (out / "report.json").is_file()


def test_check_output_dir_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert atomic.check_output_dir(target) == target
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        atomic.check_output_dir(tmp_path / "f", "--out")
    assert atomic.check_output_file(tmp_path / "t.json") == tmp_path / "t.json"
