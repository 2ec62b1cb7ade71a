"""`amber-sim validate hardware`: the measurement set's format, the replay, the statistics and the targets."""

from __future__ import annotations

import dataclasses

import pytest

from amber_sim.cli import main
from amber_sim.errors import InputError
from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR, PROJECT_ROOT
from amber_sim.sim.engine import simulate_ops
from amber_sim.trace import Op
from amber_sim.validate.hardware import (GEMM_COLUMNS, GemmMeasurement, check_targets, class_stats, compare,
                                         config_for, load_gemm_measurements, predict, without_sparsifier)

HEADER = ",".join(GEMM_COLUMNS)
DENSE_ROW = "d1,A100,dense,8192,8192,8192,fp16,3.9614,,,,cuBLAS,LLMCompass matmul_A100.csv,"
TUTORIAL_ROW = "t1,A100,2:4,3072,10240,3072,fp16,,,1.38,weight,torch,PyTorch semi-structured sparsity tutorial,"


def _write(tmp_path, *rows, header=HEADER):
    path = tmp_path / "set.csv"
    path.write_text("\n".join((header,) + rows) + "\n", "utf-8")
    return path


def _measurement(**overrides):
    base = dict(id="x", device="A100", kind="dense", M=256, K=512, N=1024, dtype="fp16", dense_ms=1.0, sparse_ms=None,
                speedup=None, sparse_operand="", library="cuBLAS", source="s", notes="")
    base.update(overrides)
    return GemmMeasurement(**base)


@pytest.mark.parametrize("row,field,message", [
    ("d1,A100,dense,8192,8192,8192,fp16,,,,,cuBLAS,src,", "dense_ms", "missing value"),
    ("d1,A100,dense,8192,8192,8192,fp16,nan,,,,cuBLAS,src,", "dense_ms", "finite number > 0"),
    ("d1,A100,dense,8192,8192,8192,fp16,-1,,,,cuBLAS,src,", "dense_ms", "finite number > 0"),
    ("d1,A100,3:2,8192,8192,8192,fp16,1,,,,cuBLAS,src,", "kind", "expected one of dense, 2:4"),
    ("d1,A100,dense,0,8192,8192,fp16,1,,,,cuBLAS,src,", "M", "positive integer"),
    ("d1,A100,dense,8192,8192,8192,fp32,1,,,,cuBLAS,src,", "dtype", "expected one of fp16, bf16, int8"),
    ("d1,A100,dense,8192,8192,8192,fp16,1,,,,cuBLAS,,", "source", "public source"),
    ("s1,A100,2:4,8192,8192,8192,fp16,1,,,,cuSPARSELt,src,", "speedup", "needs its speedup"),
    ("s1,A100,2:4,8192,8192,8192,fp16,,,1.5,rows,cuSPARSELt,src,", "sparse_operand", "activation, weight or empty"),
])
def test_bad_rows_name_the_line_and_the_field(tmp_path, row, field, message):
    path = _write(tmp_path, row)
    with pytest.raises(InputError, match=rf"set.csv:2: {field}: .*{message}"):
        load_gemm_measurements(path)


def test_duplicate_ids_and_missing_columns_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"set.csv:3: id: duplicate id 'd1'"):
        load_gemm_measurements(_write(tmp_path, DENSE_ROW, DENSE_ROW))
    with pytest.raises(InputError, match=r"header: missing column\(s\) sparse_operand"):
        load_gemm_measurements(_write(tmp_path, header=HEADER.replace(",sparse_operand", "")))


def test_a_speedup_can_come_from_two_times(tmp_path):
    (row,) = load_gemm_measurements(_write(tmp_path, "s1,H100-SXM5,2:4,4096,4096,4096,fp16,2.0,1.6,,,cuSPARSELt,src,"))
    assert row.measured == pytest.approx(1.25)


def test_devices_map_to_bundled_configs():
    assert config_for("A100-SXM4-80GB") == "a100_like.yaml" and config_for("H100 PCIe") == "h100_like.yaml"
    assert config_for("MI210") is None


def test_dense_prediction_is_the_simulated_time_of_the_one_op_trace():
    """The replay is exactly the engine on one linear op, cycles over the clock (1.41 GHz on a100_like)."""
    hw = load_hardware(HW_CONFIG_DIR / "a100_like.yaml")
    m = _measurement(M=2048, K=4096, N=4096)
    op = Op(name="x", layer=0, role="gemm", kind="linear", M=2048, K=4096, N=4096, dtype_bytes=2.0)
    expected_ms = simulate_ops(hw, (op,))[0].cycles / (hw.clock_ghz * 1e6)
    assert predict(hw, m)[0] == pytest.approx(expected_ms, rel=1e-12)


def test_a_weight_sparse_measurement_is_replayed_transposed():
    """y = x·Wᵀ with W pruned is yᵀ = W·xᵀ with the sparse operand first: a weight-sparse M×K×N row is the model's
    activation-sparse N×K×M GEMM (and its dense twin in the same orientation), with no runtime sparsifier. On 16
    tokens it matters: the pruned 4096×16384 weight halves the dominant traffic (about 1.76×), while pruning the
    16-token activation leaves the weight dense (about 1.0×)."""
    hw = load_hardware(HW_CONFIG_DIR / "a100_like.yaml")
    weight_sparse = _measurement(kind="2:4", M=16, K=4096, N=16384, dense_ms=None, speedup=1.3, sparse_operand="weight")
    activation_sparse = dataclasses.replace(weight_sparse, M=16384, N=16, sparse_operand="activation")
    assert predict(hw, weight_sparse)[0] == predict(hw, activation_sparse)[0]
    assert predict(hw, weight_sparse)[0] != predict(hw, dataclasses.replace(weight_sparse, sparse_operand="activation"))[0]
    assert without_sparsifier(hw).sparsity.sparsifier.kind == "none" and hw.sparsity.sparsifier.kind == "vector"


def test_statistics_and_targets():
    """Errors are predicted / measured − 1; the targets use |error| means and the worst ≥ 1 GFLOP dense GEMM."""
    from amber_sim.validate.hardware import Comparison

    small = _measurement(id="small", M=64, K=64, N=64, dense_ms=1.0)               # 0.5 MFLOP: not in the worst-case
    large = _measurement(id="large", M=1024, K=1024, N=1024, dense_ms=1.0)         # 2.1 GFLOP
    tutorial = _measurement(id="t", kind="2:4", M=3072, K=10240, N=3072, dense_ms=None, speedup=1.38)
    comparisons = [Comparison(small, "a100_like.yaml", 1.5, "memory"), Comparison(large, "a100_like.yaml", 0.9, "compute"),
                   Comparison(tutorial, "a100_like.yaml", 1.38 * 1.05, "compute")]
    targets = check_targets(comparisons)
    assert targets.dense_mean_abs_error == pytest.approx(0.3) and targets.dense_large_max_abs_error == pytest.approx(0.1)
    assert targets.sparse_mean_abs_error == pytest.approx(0.05) and targets.tutorial_error == pytest.approx(0.05)
    assert not targets.met  # dense mean 30% > 10%
    stats = {(s.device, s.kind): s for s in class_stats(comparisons)}
    assert (stats["all", "dense"].points, stats["all", "dense"].max_abs_error, stats["all", "dense"].mean_error) == (
        2, pytest.approx(0.5), pytest.approx(0.2))
    assert stats["a100_like", "2:4"].points == 1  # classes are the configs that model the devices


def test_cli_prints_every_point_and_the_targets_last(tmp_path, capsys):
    path = _write(tmp_path, DENSE_ROW, TUTORIAL_ROW, "m1,MI210,dense,64,64,64,fp16,0.01,,,,rocBLAS,src,")
    code = main(["validate", "hardware", "--set", str(path)])
    out = capsys.readouterr().out
    assert code in (0, 1) and "d1" in out and "t1" in out
    assert "1 measurement(s) on devices without a bundled config were not replayed" in out
    assert "targets: dense mean |error|" in out and out.rstrip().endswith("NOT met") == (code == 1)


def test_cli_bad_set_exits_2(tmp_path, capsys):
    assert main(["validate", "hardware", "--set", str(tmp_path / "missing.csv")]) == 2
    assert "no such measurement set" in capsys.readouterr().err


def test_compare_skips_devices_without_a_config():
    assert compare([_measurement(device="MI210")]) == []


def test_the_committed_set_is_large_enough_and_cited():
    rows = load_gemm_measurements(PROJECT_ROOT / "validation" / "gpu_gemm_measurements.csv")
    dense = [r for r in rows if r.kind == "dense" and config_for(r.device)]
    sparse = [r for r in rows if r.kind == "2:4" and config_for(r.device)]
    assert len(dense) >= 30 and len(sparse) >= 12
    assert all(r.source.strip() for r in rows)
    assert not any(r.device.upper().startswith("MI") for r in rows)  # AMD measurements are held out


def test_the_shipped_summary_matches_the_model_and_the_set():
    """Reports quote amber_sim/validate/hardware_summary.json; it must be what the current model gives on the
    committed set (rerun `amber-sim validate hardware --write-summary` after a model or set change)."""
    from amber_sim.sim import MODEL_VERSION
    from amber_sim.validate.hardware import load_summary, summary_dict

    rows = load_gemm_measurements(PROJECT_ROOT / "validation" / "gpu_gemm_measurements.csv")
    fresh = summary_dict(compare(rows), "gpu_gemm_measurements.csv")
    assert load_summary() == fresh and fresh["model_version"] == MODEL_VERSION


def test_reports_say_how_far_the_hardware_class_was_from_silicon(tmp_path, capsys):
    from amber_sim.validate.hardware import silicon_note

    summary = {"configs": {"a100_like": {"dense": {"points": 32, "mean_abs_error": 0.3318, "mean_error": -0.11},
                                         "2:4": {"points": 13, "mean_abs_error": 1.56, "mean_error": 1.56}}}}
    note = silicon_note("a100_like", summary)
    assert "dense GEMM times off by 33% on average (32 points)" in note and "speedups off by +156%" in note
    assert "not validated against silicon" in silicon_note("ascend_like", summary)
    assert main(["--hw", "a100_like.yaml", "--trace", "smollm2-135m.json", "--out", str(tmp_path / "r")]) == 0
    assert "Model vs silicon for a100_like" in capsys.readouterr().out
    assert "Model vs silicon for a100_like" in (tmp_path / "r" / "report.md").read_text("utf-8")


def test_write_summary_refuses_another_set(tmp_path, capsys):
    path = _write(tmp_path, DENSE_ROW)
    assert main(["validate", "hardware", "--set", str(path), "--write-summary"]) == 2
    assert "--write-summary" in capsys.readouterr().err


def test_vector_kernels_replay_and_statistics(tmp_path):
    """A 512 Mi-element fp16 GELU streams 2 GiB (read + write); on a100_like (2039 GB/s sustained at 0.766,
    memory-bound: 8 ops per element on 108 × 256 lanes is far quicker) that is 2·2^30 / (2039e9 · 0.766) s =
    1.3749 ms plus 500 ns of DRAM latency: the point the fraction was fitted on, so its error is about 0, and it
    is a "large" kernel (≥ 256 MiB)."""
    from amber_sim.validate.hardware import compare_vectors, load_vector_measurements, vector_stats

    path = tmp_path / "v.csv"
    path.write_text("id,device,op,shape,dtype,ms,library,source,notes\n"
                    "g1,A100,gelu,M=536870912,fp16,1.37544,torch,LLMCompass gelu_A100.csv,\n"
                    "l1,A100,layernorm,M=4096;N=32,fp16,0.0529,torch,LLMCompass layernorm_A100.csv,\n"
                    "x1,MI210,gelu,M=1024,fp16,0.05,torch,elsewhere,\n", "utf-8")
    vectors = compare_vectors(load_vector_measurements(path))
    assert [m.id for m, _, _ in vectors] == ["g1", "l1"]  # MI210 has no config
    gelu_ms = vectors[0][2]
    streaming_ms = 2 * 2**30 / (2039e9 * 0.766) * 1e3
    assert streaming_ms <= gelu_ms <= streaming_ms + 0.001  # latency 500 ns
    assert abs(gelu_ms / 1.37544 - 1) < 0.001
    stats = {row.op: row for row in vector_stats(vectors)}
    assert stats["gelu"].large_kernels == 1 and stats["gelu"].large_mean_error == pytest.approx(gelu_ms / 1.37544 - 1)
    assert stats["layernorm"].large_kernels == 0 and stats["layernorm"].large_mean_error is None


@pytest.mark.parametrize("shape", ["M=4096;K=2", "M=0", "rows=5", "M=4096;N=x"])
def test_bad_vector_shapes_are_refused(tmp_path, shape):
    from amber_sim.validate.hardware import load_vector_measurements

    path = tmp_path / "v.csv"
    path.write_text(f"id,device,op,shape,dtype,ms,library,source,notes\nv,A100,gelu,{shape},fp16,1,t,s,\n", "utf-8")
    with pytest.raises(InputError, match=r"v.csv:2: shape: expected 'M=<rows>;N=<columns>'"):
        load_vector_measurements(path)
