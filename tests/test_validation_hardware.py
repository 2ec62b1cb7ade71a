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
from amber_sim.validate.hardware import (GEMM_COLUMNS, GemmMeasurement, HostOverhead, as_timed, check_targets,
                                         class_stats, compare, config_for, device_times, fit_host_overheads,
                                         load_gemm_measurements, without_sparsifier)

HEADER = ",".join(GEMM_COLUMNS)
DENSE_ROW = "d1,A100,dense,8192,8192,8192,fp16,3.9614,,,,cuBLAS,device,,production,LLMCompass matmul_A100.csv,"
TUTORIAL_ROW = ("t1,A100,2:4,3072,10240,3072,fp16,,,1.38,weight,torch,device,,production,"
                "PyTorch semi-structured sparsity tutorial,")


def _write(tmp_path, *rows, header=HEADER):
    path = tmp_path / "set.csv"
    path.write_text("\n".join((header,) + rows) + "\n", "utf-8")
    return path


def _measurement(**overrides):
    base = dict(id="x", device="A100", kind="dense", M=256, K=512, N=1024, dtype="fp16", dense_ms=1.0, sparse_ms=None,
                speedup=None, sparse_operand="", library="cuBLAS", timing="device", harness="", kernel="production",
                source="s", notes="")
    base.update(overrides)
    return GemmMeasurement(**base)


@pytest.mark.parametrize("row,field,message", [
    ("d1,A100,dense,8192,8192,8192,fp16,,,,,cuBLAS,device,,production,src,", "dense_ms", "missing value"),
    ("d1,A100,dense,8192,8192,8192,fp16,nan,,,,cuBLAS,device,,production,src,", "dense_ms", "finite number > 0"),
    ("d1,A100,dense,8192,8192,8192,fp16,-1,,,,cuBLAS,device,,production,src,", "dense_ms", "finite number > 0"),
    ("d1,A100,3:2,8192,8192,8192,fp16,1,,,,cuBLAS,device,,production,src,", "kind", "expected one of dense, 2:4"),
    ("d1,A100,dense,0,8192,8192,fp16,1,,,,cuBLAS,device,,production,src,", "M", "positive integer"),
    ("d1,A100,dense,8192,8192,8192,fp32,1,,,,cuBLAS,device,,production,src,", "dtype", "expected one of fp16, bf16, int8"),
    ("d1,A100,dense,8192,8192,8192,fp16,1,,,,cuBLAS,device,,production,,", "source", "public source"),
    ("s1,A100,2:4,8192,8192,8192,fp16,1,,,,cuSPARSELt,device,,production,src,", "speedup", "needs its speedup"),
    ("s1,A100,2:4,8192,8192,8192,fp16,,,1.5,rows,cuSPARSELt,device,,production,src,", "sparse_operand",
     "activation, weight or empty"),
    ("d1,A100,dense,8192,8192,8192,fp16,1,,,,cuBLAS,stopwatch,,production,src,", "timing",
     "expected one of device, host_sync, host_loop"),
    ("d1,A100,dense,8192,8192,8192,fp16,1,,,,cuBLAS,host_sync,,production,src,", "harness", "needs its harness"),
    ("d1,A100,dense,8192,8192,8192,fp16,1,,,,cuBLAS,device,,beta,src,", "kernel", "expected one of production, early"),
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


def test_a_set_without_the_timing_columns_reads_as_device_timed_production_kernels(tmp_path):
    """Sets written before the timing, harness and kernel columns existed still load (the old header)."""
    old_header = HEADER.replace(",timing,harness,kernel", "")
    (row,) = load_gemm_measurements(_write(tmp_path, "d1,A100,dense,8192,8192,8192,fp16,3.9614,,,,cuBLAS,src,",
                                           header=old_header))
    assert (row.timing, row.harness, row.kernel, row.source) == ("device", "", "production", "src")
    (blank,) = load_gemm_measurements(_write(tmp_path, "d1,A100,dense,8,8,8,fp16,1,,,,cuBLAS,,,,src,"))
    assert (blank.timing, blank.kernel) == ("device", "production")


def test_a_speedup_can_come_from_two_times(tmp_path):
    (row,) = load_gemm_measurements(_write(tmp_path, "s1,H100-SXM5,2:4,4096,4096,4096,fp16,2.0,1.6,,,cuSPARSELt,device,,"
                                                     "production,src,"))
    assert row.measured == pytest.approx(1.25)


def test_devices_map_to_bundled_configs():
    assert config_for("A100-SXM4-80GB") == "a100_like.yaml" and config_for("H100 PCIe") == "h100_like.yaml"
    assert config_for("A100-PCIE-40GB") == config_for("A100 PCIe") == "a100_pcie_like.yaml"
    assert config_for("MI210") is None


def test_dense_prediction_is_the_simulated_time_of_the_one_op_trace():
    """The replay is exactly the engine on one linear op, cycles over the clock (1.41 GHz on a100_like)."""
    hw = load_hardware(HW_CONFIG_DIR / "a100_like.yaml")
    m = _measurement(M=2048, K=4096, N=4096)
    op = Op(name="x", layer=0, role="gemm", kind="linear", M=2048, K=4096, N=4096, dtype_bytes=2.0)
    expected_ms = simulate_ops(hw, (op,))[0].cycles / (hw.clock_ghz * 1e6)
    assert device_times(hw, m).dense_ms == pytest.approx(expected_ms, rel=1e-12)


def test_a_weight_sparse_measurement_is_replayed_transposed():
    """y = x·Wᵀ with W pruned is yᵀ = W·xᵀ with the sparse operand first: a weight-sparse M×K×N row is the model's
    activation-sparse N×K×M GEMM (and its dense twin in the same orientation), with no runtime sparsifier. On 16
    tokens it matters: the pruned 4096×16384 weight halves the dominant traffic (about 1.76×), while pruning the
    16-token activation leaves the weight dense (about 1.0×)."""
    hw = load_hardware(HW_CONFIG_DIR / "a100_like.yaml")
    weight_sparse = _measurement(kind="2:4", M=16, K=4096, N=16384, dense_ms=None, speedup=1.3, sparse_operand="weight")
    activation_sparse = dataclasses.replace(weight_sparse, M=16384, N=16, sparse_operand="activation")
    assert device_times(hw, weight_sparse) == device_times(hw, activation_sparse)
    assert device_times(hw, weight_sparse) != device_times(hw, dataclasses.replace(weight_sparse,
                                                                                   sparse_operand="activation"))
    assert without_sparsifier(hw).sparsity.sparsifier.kind == "none" and hw.sparsity.sparsifier.kind == "vector"


def test_statistics_and_targets():
    """Errors are predicted / measured − 1; the targets use |error| means and the worst ≥ 1 GFLOP dense GEMM."""
    from amber_sim.validate.hardware import Comparison

    small = _measurement(id="small", M=64, K=64, N=64, dense_ms=1.0)               # 0.5 MFLOP: not in the worst-case
    large = _measurement(id="large", M=1024, K=1024, N=1024, dense_ms=1.0)         # 2.1 GFLOP
    tutorial = _measurement(id="t", kind="2:4", M=3072, K=10240, N=3072, dense_ms=None, speedup=1.38)
    early = _measurement(id="e", kind="2:4", M=3072, K=768, N=3072, dense_ms=None, speedup=0.5, kernel="early")
    comparisons = [Comparison(small, "a100_like.yaml", 1.5, "memory"), Comparison(large, "a100_like.yaml", 0.9, "compute"),
                   Comparison(tutorial, "a100_like.yaml", 1.38 * 1.05, "compute"),
                   Comparison(early, "a100_like.yaml", 1.5, "compute")]   # +200%: reported apart, not targeted
    targets = check_targets(comparisons)
    assert targets.dense_mean_abs_error == pytest.approx(0.3) and targets.dense_large_max_abs_error == pytest.approx(0.1)
    assert targets.sparse_mean_abs_error == pytest.approx(0.05) and targets.tutorial_error == pytest.approx(0.05)
    assert not targets.met  # dense mean 30% > 10%
    stats = {(s.device, s.kind): s for s in class_stats(comparisons)}
    assert (stats["all", "dense"].points, stats["all", "dense"].max_abs_error, stats["all", "dense"].mean_error) == (
        2, pytest.approx(0.5), pytest.approx(0.2))
    assert stats["a100_like", "2:4"].points == 1  # classes are the configs that model the devices
    assert stats["all", "2:4 early"].mean_error == pytest.approx(2.0)


def test_golden_host_overheads():
    """Per harness, fitted on its smallest dense GEMM (by FLOP): host_sync adds measured − device (0.030 − 0.002 =
    0.028 ms) to every call; host_loop floors every call at the fit point's measured time when that exceeds its
    device time (0.012 > 0.005), else no floor; device timing adds nothing."""
    points = [("a", "sync", "host_sync", 1e6, 0.030, 0.002), ("b", "sync", "host_sync", 1e9, 1.0, 0.9),
              ("c", "loop", "host_loop", 1e9, 0.012, 0.005), ("d", "loop", "host_loop", 1e12, 2.0, 1.9),
              ("e", "fast", "host_loop", 1e9, 0.004, 0.005), ("f", "dev", "device", 1.0, 1.0, 0.1)]
    fits = fit_host_overheads(points)
    assert set(fits) == {"sync", "loop", "fast"}
    assert (fits["sync"].ms, fits["sync"].fitted_on) == (pytest.approx(0.028), "a")
    assert (fits["loop"].ms, fits["loop"].fitted_on) == (0.012, "c") and fits["fast"].ms == 0.0
    assert as_timed(0.9, fits["sync"]) == pytest.approx(0.928)
    assert as_timed(0.005, fits["loop"]) == 0.012 and as_timed(1.9, fits["loop"]) == 1.9
    assert as_timed(0.5, None) == 0.5 and as_timed(0.5, HostOverhead("dev", "device", 1.0, "f")) == 0.5


def test_a_host_overhead_is_fitted_on_dense_rows_only_and_applies_to_both_times_of_a_2_4_row():
    """A harness of 2:4 rows alone gets no overhead (their dense and sparse times cannot tell the host's share from
    the model's error); in a harness with a dense sweep, a 2:4 row's timed speedup is timed dense / timed sparse."""
    dense_small = _measurement(id="d0", M=64, K=64, N=64, dense_ms=0.03, timing="host_sync", harness="h")
    sparse = _measurement(id="s0", kind="2:4", M=4096, K=4096, N=4096, dense_ms=0.6, sparse_ms=0.4, speedup=None,
                          timing="host_sync", harness="h")
    alone = dataclasses.replace(sparse, id="s1", harness="alone")
    by_id = {c.measurement.id: c for c in compare([dense_small, sparse, alone])}
    assert by_id["d0"].fitted and by_id["d0"].error == pytest.approx(0.0, abs=1e-12)
    hw = load_hardware(HW_CONFIG_DIR / "a100_like.yaml")
    host = 0.03 - device_times(hw, dense_small).dense_ms
    times = device_times(hw, sparse)
    assert by_id["s0"].predicted == pytest.approx((times.dense_ms + host) / (times.sparse_ms + host))
    assert by_id["s1"].predicted == pytest.approx(times.dense_ms / times.sparse_ms)


def test_cli_prints_every_point_and_the_targets_last(tmp_path, capsys):
    path = _write(tmp_path, DENSE_ROW, TUTORIAL_ROW, "m1,MI210,dense,64,64,64,fp16,0.01,,,,rocBLAS,device,,production,src,")
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
    fitted = {"configs": {"h100_like": {"2:4": {"points": 1, "fitted_points": 1, "mean_abs_error": 0.0,
                                                "mean_error": 0.0}}}}
    assert "(1 point, 1 used for fitting; + means too optimistic)" in silicon_note("h100_like", fitted)
    assert main(["--hw", "a100_like.yaml", "--trace", "smollm2-135m.json", "--out", str(tmp_path / "r")]) == 0
    assert "Model vs silicon for a100_like" in capsys.readouterr().out
    assert "Model vs silicon for a100_like" in (tmp_path / "r" / "report.md").read_text("utf-8")


def test_write_summary_refuses_another_set(tmp_path, capsys):
    path = _write(tmp_path, DENSE_ROW)
    assert main(["validate", "hardware", "--set", str(path), "--write-summary"]) == 2
    assert "--write-summary" in capsys.readouterr().err


def test_vector_kernels_replay_and_statistics(tmp_path):
    """A 512 Mi-element fp16 GELU streams 2 GiB (read + write); on a100_like (2039 GB/s sustained at 0.794,
    memory-bound: 8 ops per element on 108 × 256 lanes is far quicker) its device time is
    2·2^30 / (2039e9 · 0.794) s = 1.32646 ms, plus 500 ns of DRAM latency and the 2 µs kernel overhead. Its
    harness timed one call + synchronize (host_sync): the host's share is fitted on the harness's smallest kernel,
    a 1024-element GELU (4 KiB: device time ≈ 2.503 µs) measured at 0.0481606 ms, and added to the large one. That
    reproduces the large kernel's 1.37544 ms (the point the DRAM fraction was fitted on, so its error is about 0).
    A harness of one row (the layernorm) is fitted on it: error 0."""
    from amber_sim.validate.hardware import compare_vectors, load_vector_measurements, vector_stats

    path = tmp_path / "v.csv"
    path.write_text("id,device,op,shape,dtype,ms,library,timing,harness,source,notes\n"
                    "g1,A100,gelu,M=536870912,fp16,1.37544,torch,host_sync,h-gelu,LLMCompass gelu_A100.csv,\n"
                    "g0,A100,gelu,M=1024,fp16,0.0481606,torch,host_sync,h-gelu,LLMCompass gelu_A100.csv,\n"
                    "l1,A100,layernorm,M=4096;N=32,fp16,0.0529,torch,host_sync,h-ln,LLMCompass layernorm_A100.csv,\n"
                    "x1,MI210,gelu,M=1024,fp16,0.05,torch,device,,elsewhere,\n", "utf-8")
    vectors = compare_vectors(load_vector_measurements(path))
    assert [m.id for m, _, _ in vectors] == ["g1", "g0", "l1"]  # MI210 has no config
    timed = {m.id: ms for m, _, ms in vectors}
    device_ms = 2 * 2**30 / (2039e9 * 0.794) * 1e3 + 0.0005 + 0.002
    small_device_ms = 0.0025 + 4 / 1.41e6  # latency + kernel overhead + the 4 KiB stream (4 cycles at 1.41 GHz)
    host_ms = 0.0481606 - small_device_ms
    assert timed["g0"] == pytest.approx(0.0481606, rel=1e-9)   # the fit point
    assert timed["g1"] == pytest.approx(device_ms + host_ms, abs=1e-6)  # cycle rounding: under 1 ns
    assert abs(timed["g1"] / 1.37544 - 1) < 0.001
    assert timed["l1"] == pytest.approx(0.0529, rel=1e-9)
    stats = {row.op: row for row in vector_stats(vectors)}
    assert stats["gelu"].large_kernels == 1 and stats["gelu"].large_mean_error == pytest.approx(timed["g1"] / 1.37544 - 1)
    assert stats["layernorm"].large_kernels == 0 and stats["layernorm"].large_mean_error is None


@pytest.mark.parametrize("shape", ["M=4096;K=2", "M=0", "rows=5", "M=4096;N=x"])
def test_bad_vector_shapes_are_refused(tmp_path, shape):
    from amber_sim.validate.hardware import load_vector_measurements

    path = tmp_path / "v.csv"
    path.write_text(f"id,device,op,shape,dtype,ms,library,timing,harness,source,notes\n"
                    f"v,A100,gelu,{shape},fp16,1,t,device,,s,\n", "utf-8")
    with pytest.raises(InputError, match=r"v.csv:2: shape: expected 'M=<rows>;N=<columns>'"):
        load_vector_measurements(path)
