"""`amber-sim measure gpu` on CPU: shape parsing, the rows and CSV from a fake timer, and the checks that stop the
command before any work (no GPU here or in CI: the torch timer itself is not exercised)."""

from __future__ import annotations

import math
import sys
import types

import pytest

from amber_sim.cli import main
from amber_sim.errors import InputError
from amber_sim.validate.hardware import GEMM_COLUMNS, load_gemm_measurements
from amber_sim.validate.measure_gpu import (GemmShape, GpuInfo, Settings, expand_shapes, failures_line, measure,
                                            parse_backends, rows_for, write_rows)

GPU = GpuInfo(name="NVIDIA H100 80GB HBM3", torch_version="2.13.0+cu126", cuda_version="12.6",
              sm_clock="1980 MHz, 1980 MHz")


# ---------------------------------------------------------------- --shapes

def test_explicit_shapes_keep_their_order_and_appear_once():
    shapes = expand_shapes("2048x4096x1024, 64X128x256,2048x4096x1024")
    assert [s.dims for s in shapes] == [(2048, 4096, 1024), (64, 128, 256)]


def test_llama_3_1_8b_expands_to_its_distinct_prefill_linears():
    """From the published config: hidden 4096, MLP 14336, 32 heads / 8 KV heads of 128, vocab 128256."""
    shapes = expand_shapes("llama-3.1-8b@2048")
    by_dims = {s.dims: s.label for s in shapes}
    assert list(by_dims) == [(2048, 4096, 4096),     # q and o
                             (2048, 4096, 1024),     # k and v
                             (2048, 4096, 14336),    # gate and up
                             (2048, 14336, 4096),    # down
                             (2048, 4096, 128256)]   # lm_head
    assert by_dims[(2048, 4096, 4096)] == "llama-3.1-8b@2048 q, o"
    assert by_dims[(2048, 4096, 1024)] == "llama-3.1-8b@2048 k, v"
    assert by_dims[(2048, 4096, 14336)] == "llama-3.1-8b@2048 gate, up"
    assert by_dims[(2048, 14336, 4096)] == "llama-3.1-8b@2048 down"
    assert by_dims[(2048, 4096, 128256)] == "llama-3.1-8b@2048 lm_head"


def test_model_and_explicit_shapes_merge():
    shapes = expand_shapes("4096x4096x4096,LLaMA-3.1-8B@4096")
    assert shapes[0].dims == (4096, 4096, 4096) and shapes[0].label == "llama-3.1-8b@4096 q, o"
    assert len(shapes) == 5
    assert {s.M for s in expand_shapes("qwen2-7b@7")} == {7}


@pytest.mark.parametrize("spec,message", [
    ("3x4", r"not MxKxN in '3x4'"),
    ("0x4x4", r"a dimension of 0 in '0x4x4'"),
    ("4x4x4x4", r"not MxKxN"),
    ("ax4x4", r"not MxKxN"),
    ("gpt-9@2048", r"unknown model 'gpt-9'"),
    ("llama-3.1-8b@0", r"tokens '0' is not a positive integer"),
    ("llama-3.1-8b@-5", r"tokens '-5' is not a positive integer"),
    ("llama-3.1-8b@2k", r"tokens '2k' is not a positive integer"),
    ("llama-3.1-8b@", r"tokens '' is not a positive integer"),
    ("64x64x64,,", r"an empty item"),
    ("", r"no shape given"),
])
def test_bad_shapes_are_one_input_error_naming_the_option_and_the_fix(spec, message):
    with pytest.raises(InputError, match=message) as info:
        expand_shapes(spec)
    text = str(info.value)
    assert text.startswith("--shapes: ") and "\n" not in text
    assert "expected" in text and "2048" in text  # the fix: what a good spec looks like


def test_backends_option():
    assert parse_backends("cutlass, cusparselt,cutlass") == ["cutlass", "cusparselt"]
    assert parse_backends("") == []
    with pytest.raises(InputError, match=r"--backends: unknown backend 'cublas'"):
        parse_backends("cusparselt,cublas")


# ---------------------------------------------------------------- the core with a fake timer

def fake_timer(shape: GemmShape, backend: str) -> float:
    """1 ms per GFLOP dense; 2:4 cuSPARSELt 1.5× and CUTLASS 1.25× faster; CUTLASS refuses N < 64; K = 12 fails."""
    if shape.K == 12:
        raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED\nsecond line of the error")
    dense = 2 * shape.M * shape.K * shape.N / 1e9
    if backend == "dense":
        return dense
    if backend == "cutlass" and shape.N < 64:
        raise RuntimeError("Error original_tensor.shape is not supported!\nmore")
    return dense / {"cusparselt": 1.5, "cutlass": 1.25}[backend]


def test_measure_runs_every_shape_and_backend_and_collects_failures():
    shapes = expand_shapes("1024x2048x4096,64x256x32,64x12x64")
    steps = []
    results = measure(shapes, ["cusparselt", "cutlass"], fake_timer, lambda done, total, what: steps.append((done, total)))
    assert steps[-1] == (9, 9) and [done for done, _ in steps] == list(range(10))
    first, small, broken = results
    assert first.dense_ms == pytest.approx(2 * 1024 * 2048 * 4096 / 1e9) and set(first.sparse_ms) == {"cusparselt", "cutlass"}
    assert set(small.sparse_ms) == {"cusparselt"} and "not supported" in small.failures["cutlass"]
    assert broken.dense_ms is None and broken.sparse_ms == {}
    assert broken.failures["cusparselt"] == "not run: the dense time failed"
    line = failures_line(results)
    assert line.count("\n") == 0
    assert "64x256x32 cutlass: RuntimeError: Error original_tensor.shape is not supported!" in line
    assert "64x12x64 dense: RuntimeError: CUBLAS_STATUS_NOT_SUPPORTED" in line and "second line" not in line
    assert failures_line(results[:1]) is None


def test_a_timer_returning_nonsense_writes_no_row():
    results = measure([GemmShape(8, 8, 8)], ["cusparselt"], lambda shape, backend: 0.0 if backend == "dense" else 1.0)
    assert results[0].dense_ms is None and rows_for(results, GPU) == []


def test_csv_from_fake_timings_loads_as_a_measurement_set(tmp_path):
    shapes = expand_shapes("1024x2048x4096,64x256x32,64x12x64")
    results = measure(shapes, ["cusparselt", "cutlass"], fake_timer)
    rows = rows_for(results, GPU, Settings(dtype="bf16", warmup=3, repeats=7), date="2026-12-01")
    path = write_rows(rows, tmp_path / "gpu.csv")
    assert path.read_text().splitlines()[0] == ",".join(GEMM_COLUMNS)
    loaded = {m.id: m for m in load_gemm_measurements(path)}
    assert list(loaded) == ["gpu-1024x2048x4096-dense", "gpu-1024x2048x4096-2of4-cusparselt",
                            "gpu-1024x2048x4096-2of4-cutlass", "gpu-64x256x32-dense", "gpu-64x256x32-2of4-cusparselt"]
    dense = loaded["gpu-1024x2048x4096-dense"]
    assert (dense.kind, dense.M, dense.K, dense.N, dense.dtype) == ("dense", 1024, 2048, 4096, "bf16")
    assert dense.dense_ms == pytest.approx(fake_timer(GemmShape(1024, 2048, 4096), "dense"), rel=1e-5)
    assert dense.sparse_ms is None and dense.speedup is None and dense.sparse_operand == ""
    assert dense.library == "torch cuBLAS"
    for backend, speedup, library in (("cusparselt", 1.5, "torch cuSPARSELt"), ("cutlass", 1.25, "torch CUTLASS")):
        sparse = loaded[f"gpu-1024x2048x4096-2of4-{backend}"]
        assert sparse.kind == "2:4" and sparse.sparse_operand == "activation" and sparse.library == library
        assert sparse.speedup == pytest.approx(speedup, rel=1e-5)
        assert sparse.dense_ms / sparse.sparse_ms == pytest.approx(speedup, rel=1e-4)
        assert sparse.measured == pytest.approx(speedup, rel=1e-5)
    for m in loaded.values():
        assert m.device == "H100 80GB HBM3"  # the vendor prefix dropped: config_for finds h100_like.yaml
        assert m.source == "amber-sim measure gpu (this project), 2026-12-01"
        assert "GPU NVIDIA H100 80GB HBM3" in m.notes and "torch 2.13.0+cu126" in m.notes and "CUDA 12.6" in m.notes
        assert "SM clock 1980 MHz (max 1980 MHz)" in m.notes and "median of 7" in m.notes and "3 warm-up" in m.notes


def test_the_rows_replay_on_the_bundled_config(tmp_path):
    from amber_sim.validate.hardware import compare

    results = measure([GemmShape(2048, 4096, 4096)], ["cusparselt"], fake_timer)
    path = write_rows(rows_for(results, GPU, date="2026-12-01"), tmp_path / "gpu.csv")
    comparisons = compare(load_gemm_measurements(path))
    assert [c.config for c in comparisons] == ["h100_like.yaml", "h100_like.yaml"]
    assert all(math.isfinite(c.error) for c in comparisons)


def test_gpu_info_without_nvidia_smi_leaves_the_clock_out():
    info = GpuInfo(name="NVIDIA A100-SXM4-80GB", torch_version="2.13.0", cuda_version=None)
    assert info.device == "A100-SXM4-80GB"
    assert info.notes() == "GPU NVIDIA A100-SXM4-80GB; torch 2.13.0; CUDA unknown"


# ---------------------------------------------------------------- the command stops before any work

def _fake_torch(monkeypatch, cuda: bool):
    """A stand-in torch module whose CUDA answer is fixed; it records whether it was asked."""
    asked = []

    def is_available():
        asked.append(True)
        return cuda

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=is_available, device_count=lambda: 0))
    monkeypatch.setitem(sys.modules, "torch", fake)
    return asked


NO_CUDA = ("amber-sim: error: measure gpu: no CUDA device (torch.cuda.is_available() is false); run this on a "
           "machine with an NVIDIA GPU\n")


def test_without_cuda_it_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    asked = _fake_torch(monkeypatch, cuda=False)
    out = tmp_path / "gpu.csv"
    assert main(["measure", "gpu", "--shapes", "llama-3.1-8b@2048,64x64x64", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == NO_CUDA and captured.out == ""
    assert asked and list(tmp_path.iterdir()) == []


def test_without_torch_it_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert main(["measure", "gpu", "--shapes", "64x64x64", "--out", str(tmp_path / "gpu.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("amber-sim: error: measure gpu: torch is not importable") and err.count("\n") == 1
    assert "NVIDIA GPU" in err and list(tmp_path.iterdir()) == []


def test_this_machine_without_a_gpu_exits_2(tmp_path, capsys):
    """The real check, with whatever torch is installed here (CPU build, or none): no GPU, no file."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU: the command would measure it")
    out = tmp_path / "gpu.csv"
    assert main(["measure", "gpu", "--shapes", "64x64x64", "--out", str(out), "--repeats", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and (err == NO_CUDA or "torch is not importable" in err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make_out,message", [
    (lambda tmp: tmp / "missing" / "gpu.csv", "does not exist"),
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "gpu.csv", "is a file, not a directory"),
])
def test_an_unwritable_out_exits_2_before_torch_is_asked(tmp_path, monkeypatch, capsys, make_out, message):
    asked = _fake_torch(monkeypatch, cuda=True)
    out = make_out(tmp_path)
    assert main(["measure", "gpu", "--shapes", "64x64x64", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("amber-sim: error: --out: ") and message in err and err.count("\n") == 1
    assert not asked  # nothing else happened first


@pytest.mark.parametrize("argv,message", [
    (["--shapes", "3x4"], "--shapes: not MxKxN"),
    (["--shapes", "64x64x64", "--repeats", "0"], "--repeats: expected a positive integer"),
    (["--shapes", "64x64x64", "--warmup", "-1"], "--warmup: expected 0 or more"),
    (["--shapes", "64x64x64", "--backends", "cusparse"], "--backends: unknown backend"),
    (["--shapes", "64x64x64", "--device", "cpu"], "--device: expected cuda or cuda:N"),
])
def test_bad_options_exit_2_before_torch_is_asked(tmp_path, monkeypatch, capsys, argv, message):
    asked = _fake_torch(monkeypatch, cuda=True)
    assert main(["measure", "gpu", "--out", str(tmp_path / "gpu.csv"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"amber-sim: error: {message}") and err.count("\n") == 1
    assert not asked and list(tmp_path.iterdir()) == []
