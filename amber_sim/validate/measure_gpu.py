"""``amber-sim measure gpu``: time dense and 2:4 semi-structured GEMMs on this machine's NVIDIA GPU.

The rows it writes have the columns of the published measurement set (``validate.hardware.GEMM_COLUMNS``,
validation/gpu_gemm_measurements.csv), so a run on a real GPU can be checked with ``load_gemm_measurements``
and appended to the set (docs/validation.md, "Measuring a GPU").

What is timed, for each GEMM C[M,N] = A[M,K]·B[K,N]:
- dense: ``torch.matmul(a, b)`` (cuBLAS);
- 2:4, per backend: ``torch.mm(A_sparse, B)`` with A = ``a`` pruned 2:4 along K (the 2 largest magnitudes of
  each group of 4 kept, as Amber Pruner prunes activations) and converted by
  ``torch.sparse.to_sparse_semi_structured`` with ``SparseSemiStructuredTensor._FORCE_CUTLASS`` set for the
  backend. The first operand is the sparse one, so ``sparse_operand`` is ``activation`` (the model's A).
Each time is the median of ``repeats`` CUDA-event timings after ``warmup`` untimed runs, with
``torch.cuda.synchronize()`` before and after.

The core (``expand_shapes``, ``measure``, ``rows_for``, ``write_rows``) takes the timer as a function
``time_gemm(shape, backend) -> ms`` and runs on CPU with a fake one; only ``torch_timer`` and ``gpu_info``
need torch and a GPU. torch is imported inside the command only: importing this module stays torch-free.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from amber_sim.atomic import check_output_file
from amber_sim.errors import InputError

DENSE = "dense"
# backend option -> the library column of its rows
BACKENDS = {"cusparselt": "torch cuSPARSELt", "cutlass": "torch CUTLASS"}
DENSE_LIBRARY = "torch cuBLAS"
DTYPES = ("fp16", "bf16")
SOURCE = "amber-sim measure gpu (this project)"
# A 2:4 result further than this (relative Frobenius norm) from the dense product of the pruned matrix is a failure.
SPARSE_RESULT_TOLERANCE = 2e-2

_SHAPE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
_ROLES = ("q", "k", "v", "o", "gate", "up", "down", "lm_head")


@dataclass(frozen=True)
class GemmShape:
    """C[M,N] = A[M,K]·B[K,N]; ``label`` says where it came from (e.g. ``llama-3.1-8b@2048 q, o``)."""

    M: int
    K: int
    N: int
    label: str = ""

    @property
    def dims(self) -> tuple[int, int, int]:
        return self.M, self.K, self.N

    def __str__(self) -> str:
        return f"{self.M}x{self.K}x{self.N}"


@dataclass(frozen=True)
class ShapeResult:
    """One shape's times in ms (None/absent: that backend failed) and why each failure happened."""

    shape: GemmShape
    dense_ms: float | None
    sparse_ms: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GpuInfo:
    name: str                    # torch.cuda.get_device_name
    torch_version: str
    cuda_version: str | None     # torch.version.cuda
    sm_clock: str | None = None  # nvidia-smi clocks.sm, clocks.max.sm (e.g. "1980 MHz, 1980 MHz"), when it worked

    @property
    def device(self) -> str:
        """The device column: the GPU name without the vendor prefix ("NVIDIA H100 80GB HBM3" -> "H100 80GB HBM3"),
        so ``validate.hardware.config_for`` finds the bundled config by its prefix."""
        return re.sub(r"^NVIDIA\s+", "", self.name.strip()) or self.name

    def notes(self) -> str:
        parts = [f"GPU {self.name}", f"torch {self.torch_version}", f"CUDA {self.cuda_version or 'unknown'}"]
        if self.sm_clock:
            current, _, maximum = self.sm_clock.partition(",")
            parts.append(f"SM clock {current.strip()} (max {maximum.strip() or 'unknown'}) just after the timed runs")
        return "; ".join(parts)


@dataclass(frozen=True)
class Settings:
    dtype: str = "fp16"
    warmup: int = 10
    repeats: int = 50


Timer = Callable[[GemmShape, str], float]   # (shape, "dense" or a backend) -> ms; raises when it cannot run
Step = Callable[[int, int, str], None]      # (done, total, what is running now)


# ---------------------------------------------------------------- options

def _bad_shape(item: str, why: str) -> InputError:
    from amber_sim.models.architectures import known_architectures

    return InputError("--shapes", None, f"{why} in {item!r}; expected a comma-separated list of MxKxN GEMMs with "
                      f"positive integers (e.g. 2048x4096x4096) or MODEL@TOKENS (e.g. llama-3.1-8b@2048; models: "
                      f"{', '.join(known_architectures())})")


def model_shapes(model: str, tokens: int) -> list[GemmShape]:
    """The distinct linear GEMMs of ``model``'s prefill on ``tokens`` tokens (q, k, v, o, gate, up, down of a
    decoder layer and the LM head); roles with equal shapes share one entry, their label naming all of them."""
    from amber_sim.capture.prefill_ops import decoder_linear_shapes
    from amber_sim.models.architectures import get_arch

    arch = get_arch(model)
    shapes = dict(decoder_linear_shapes(arch.model_config()))
    shapes["lm_head"] = (arch.hidden, arch.vocab)
    roles: dict[tuple[int, int, int], list[str]] = {}
    for role in _ROLES:
        k, n = shapes[role]
        roles.setdefault((tokens, k, n), []).append(role)
    return [GemmShape(m, k, n, f"{arch.name}@{tokens} {', '.join(names)}") for (m, k, n), names in roles.items()]


def expand_shapes(spec: str) -> list[GemmShape]:
    """``--shapes``: MxKxN items and MODEL@TOKENS items, in order, each distinct GEMM once (labels merged)."""
    from amber_sim.models.architectures import ARCHITECTURES

    items = [item.strip() for item in (spec or "").split(",")]
    if not any(items):
        raise InputError("--shapes", None, "no shape given; expected e.g. 2048x4096x4096 or llama-3.1-8b@2048")
    found: dict[tuple[int, int, int], list[str]] = {}
    for item in items:
        if not item:
            raise _bad_shape(spec, "an empty item")
        if "@" in item:
            model, _, tokens = item.partition("@")
            if model.strip().lower() not in ARCHITECTURES:
                raise _bad_shape(item, f"unknown model {model.strip()!r}")
            if not re.fullmatch(r"\s*\d+\s*", tokens) or int(tokens) <= 0:
                raise _bad_shape(item, f"tokens {tokens.strip()!r} is not a positive integer")
            for shape in model_shapes(model.strip(), int(tokens)):
                found.setdefault(shape.dims, []).append(shape.label)
            continue
        match = _SHAPE.match(item)
        if match is None:
            raise _bad_shape(item, "not MxKxN")
        dims = tuple(int(value) for value in match.groups())
        if min(dims) <= 0:
            raise _bad_shape(item, "a dimension of 0")
        found.setdefault(dims, [])
    return [GemmShape(*dims, label="; ".join(labels)) for dims, labels in found.items()]


def parse_backends(text: str | None) -> list[str]:
    """``--backends``: a comma-separated subset of cusparselt, cutlass (empty: dense only)."""
    names = [item.strip().lower() for item in (text or "").split(",") if item.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        raise InputError("--backends", None, f"unknown backend {unknown[0]!r}; expected a comma-separated subset of "
                         f"{', '.join(BACKENDS)}")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------- the CLI-independent core

def _reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= 160 else text[:157] + "..."


def _timed(time_gemm: Timer, shape: GemmShape, backend: str) -> tuple[float | None, str | None]:
    try:
        ms = float(time_gemm(shape, backend))
    except Exception as error:  # an unsupported size or dtype, out of memory, a wrong result: no row
        return None, _reason(error)
    if not math.isfinite(ms) or ms <= 0:
        return None, f"the timer returned {ms!r} ms"
    return ms, None


def measure(shapes: Sequence[GemmShape], backends: Sequence[str], time_gemm: Timer,
            step: Step | None = None) -> list[ShapeResult]:
    """Time every shape dense, then with each 2:4 backend (skipped when the dense time failed)."""
    total = len(shapes) * (1 + len(backends))
    done = 0
    results = []
    for shape in shapes:
        if step:
            step(done, total, f"{shape} dense")
        dense, why = _timed(time_gemm, shape, DENSE)
        done += 1
        failures = {} if why is None else {DENSE: why}
        sparse = {}
        for backend in backends:
            if step:
                step(done, total, f"{shape} 2:4 {backend}")
            if dense is None:
                failures[backend] = "not run: the dense time failed"
            else:
                ms, why = _timed(time_gemm, shape, backend)
                if ms is None:
                    failures[backend] = why
                else:
                    sparse[backend] = ms
            done += 1
        results.append(ShapeResult(shape, dense, sparse, failures))
    if step:
        step(done, total, "done")
    return results


def _number(value: float) -> str:
    return f"{value:.6g}"


def measurement_id(shape: GemmShape, backend: str = DENSE) -> str:
    return f"gpu-{shape}-dense" if backend == DENSE else f"gpu-{shape}-2of4-{backend}"


def rows_for(results: Sequence[ShapeResult], gpu: GpuInfo, settings: Settings = Settings(),
             date: str | None = None) -> list[dict[str, str]]:
    """The CSV rows (GEMM_COLUMNS): a dense row per measured shape, a 2:4 row per shape per backend that ran."""
    date = date or datetime.now(timezone.utc).date().isoformat()
    timing = f"median of {settings.repeats} CUDA-event timings after {settings.warmup} warm-up runs"
    base = {"device": gpu.device, "dtype": settings.dtype, "source": f"{SOURCE}, {date}",
            "timing": "device", "harness": "amber-sim-measure-gpu", "kernel": "production"}
    rows = []
    for result in results:
        if result.dense_ms is None:
            continue
        shape = result.shape
        common = {**base, "M": str(shape.M), "K": str(shape.K), "N": str(shape.N)}
        label = f"; {shape.label}" if shape.label else ""
        rows.append({**common, "id": measurement_id(shape), "kind": "dense", "dense_ms": _number(result.dense_ms),
                     "sparse_ms": "", "speedup": "", "sparse_operand": "", "library": DENSE_LIBRARY,
                     "notes": f"{gpu.notes()}; torch.matmul(a, b); {timing}{label}"})
        for backend, sparse_ms in result.sparse_ms.items():
            rows.append({**common, "id": measurement_id(shape, backend), "kind": "2:4",
                         "dense_ms": _number(result.dense_ms), "sparse_ms": _number(sparse_ms),
                         "speedup": _number(result.dense_ms / sparse_ms), "sparse_operand": "activation",
                         "library": BACKENDS[backend],
                         "notes": f"{gpu.notes()}; torch.mm(A_sparse, B), A [M,K] pruned 2:4 along K "
                                  f"(to_sparse_semi_structured, _FORCE_CUTLASS={backend == 'cutlass'}); {timing}{label}"})
    return rows


def rows_csv(rows: Sequence[dict[str, str]]) -> str:
    from amber_sim.validate.hardware import GEMM_COLUMNS

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(GEMM_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_rows(rows: Sequence[dict[str, str]], path: str | Path) -> Path:
    """Write the rows as a measurement-set CSV, atomically (an interrupt leaves no partial file)."""
    from amber_sim.atomic import atomic_write_text

    return atomic_write_text(path, rows_csv(rows))


def failures_line(results: Sequence[ShapeResult]) -> str | None:
    """One line naming every (shape, backend) that wrote no row and why; None when everything ran."""
    parts = [f"{result.shape} {backend}: {why}" for result in results for backend, why in result.failures.items()]
    return f"not measured (no row written): {'; '.join(parts)}" if parts else None


# ---------------------------------------------------------------- torch and the GPU (imported only when run)

def cuda_torch(device: str):
    """torch, with CUDA usable and ``device`` (cuda or cuda:N) present; one InputError otherwise."""
    try:
        import torch
    except ImportError as error:
        raise InputError("measure gpu", None, f"torch is not importable ({error}); install a CUDA build of torch "
                         "and run this on a machine with an NVIDIA GPU") from None
    if not torch.cuda.is_available():
        raise InputError("measure gpu", None, "no CUDA device (torch.cuda.is_available() is false); run this on a "
                         "machine with an NVIDIA GPU")
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise InputError("--device", None, f"{device!r} does not exist; this machine has {count} CUDA device(s): "
                         f"cuda:0..cuda:{count - 1}")
    return torch


def gpu_info(torch, index: int) -> GpuInfo:
    """The GPU's name, torch and CUDA versions, and its SM clock from nvidia-smi when that works."""
    clock = None
    selector = str(index)
    try:
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        if uuid:  # CUDA may number the GPUs differently from nvidia-smi; the UUID is the same
            selector = str(uuid) if str(uuid).startswith("GPU-") else f"GPU-{uuid}"
    except Exception:  # noqa: BLE001  (optional detail)
        pass
    try:
        done = subprocess.run(["nvidia-smi", f"--id={selector}", "--query-gpu=clocks.sm,clocks.max.sm",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
        line = done.stdout.strip().splitlines()[0].strip() if done.returncode == 0 and done.stdout.strip() else ""
        clock = line or None
    except (OSError, subprocess.SubprocessError):
        pass
    return GpuInfo(name=torch.cuda.get_device_name(index), torch_version=str(torch.__version__),
                   cuda_version=torch.version.cuda, sm_clock=clock)


def _median_ms(torch, run: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for start, end in zip(starts, ends):
        start.record()
        run()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in zip(starts, ends))


def torch_timer(torch, device: str, settings: Settings) -> Timer:
    """The GPU timer: dense ``torch.matmul(a, b)``; 2:4 ``torch.mm(A_sparse, B)`` per backend (module docstring)."""
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[settings.dtype]
    cache: dict[tuple[int, int, int], tuple] = {}

    def operands(shape: GemmShape):
        if shape.dims not in cache:
            cache.clear()  # one shape's operands at a time
            generator = torch.Generator(device=device)
            generator.manual_seed(0)
            a = torch.randn((shape.M, shape.K), generator=generator, device=device, dtype=dtype)
            b = torch.randn((shape.K, shape.N), generator=generator, device=device, dtype=dtype)
            cache[shape.dims] = (a, b)
        return cache[shape.dims]

    def time_gemm(shape: GemmShape, backend: str) -> float:
        a, b = operands(shape)
        if backend == DENSE:
            return _median_ms(torch, lambda: torch.matmul(a, b), settings.warmup, settings.repeats)
        if shape.K % 4:
            raise ValueError(f"K = {shape.K} is not a multiple of 4 (2:4 groups run along K)")
        groups = a.abs().view(shape.M, shape.K // 4, 4)
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, groups.topk(2, dim=-1).indices, True)
        pruned = (a.view(shape.M, shape.K // 4, 4) * keep).view(shape.M, shape.K).contiguous()
        saved = SparseSemiStructuredTensor._FORCE_CUTLASS
        SparseSemiStructuredTensor._FORCE_CUTLASS = backend == "cutlass"
        try:
            a_sparse = to_sparse_semi_structured(pruned)
        finally:
            SparseSemiStructuredTensor._FORCE_CUTLASS = saved
        try:
            result = torch.mm(a_sparse, b)
            reference = torch.matmul(pruned, b)
            if tuple(result.shape) != (shape.M, shape.N):
                raise RuntimeError(f"result shape {tuple(result.shape)}, expected {(shape.M, shape.N)}")
            error = ((result.float() - reference.float()).norm() / reference.float().norm().clamp_min(1e-30)).item()
            if not error <= SPARSE_RESULT_TOLERANCE:
                raise RuntimeError(f"wrong result: relative error {error:.3g} against the dense product")
            del result, reference
            return _median_ms(torch, lambda: torch.mm(a_sparse, b), settings.warmup, settings.repeats)
        finally:
            del pruned, keep, groups  # a_sparse is freed when this call returns
            torch.cuda.empty_cache()

    return time_gemm


# ---------------------------------------------------------------- the command

def cmd_measure(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from amber_sim.cli import _console

    # every check before any work: options, --out, then torch and the GPU
    shapes = expand_shapes(args.shapes)
    backends = parse_backends(args.backends)
    if args.repeats < 1:
        raise InputError("--repeats", None, f"expected a positive integer, got {args.repeats}")
    if args.warmup < 0:
        raise InputError("--warmup", None, f"expected 0 or more, got {args.warmup}")
    if not re.fullmatch(r"cuda(:\d+)?", args.device):
        raise InputError("--device", None, f"expected cuda or cuda:N, got {args.device!r}")
    out = check_output_file(args.out)
    torch = cuda_torch(args.device)

    index = int(args.device.partition(":")[2] or 0)
    torch.cuda.set_device(index)
    settings = Settings(dtype=args.dtype, warmup=args.warmup, repeats=args.repeats)
    timer = torch_timer(torch, args.device, settings)
    console = _console()
    name = torch.cuda.get_device_name(index)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting", total=len(shapes) * (1 + len(backends)))

        def step(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=f"{name} {what}")

        results = measure(shapes, backends, timer, step)
    info = gpu_info(torch, index)
    rows = rows_for(results, info, settings)
    problems = failures_line(results)
    if not rows:
        console.print(problems or "nothing was measured")
        console.print(f"no shape could be timed; {out} was not written")
        return 1
    path = write_rows(rows, out)  # atomic: Ctrl-C before this line leaves no file
    table = Table(title=f"{info.name} ({settings.dtype}); {info.notes()}", title_justify="left")
    for name in ("GEMM M×K×N", "dense ms", *(f"2:4 {backend} ms" for backend in backends),
                 *(f"speedup {backend}" for backend in backends), "from"):
        table.add_column(name, justify="left" if name in ("GEMM M×K×N", "from") else "right")
    for result in results:
        if result.dense_ms is None:
            continue
        times = [f"{result.sparse_ms[b]:.4g}" if b in result.sparse_ms else "failed" for b in backends]
        speedups = [f"{result.dense_ms / result.sparse_ms[b]:.3f}×" if b in result.sparse_ms else "" for b in backends]
        table.add_row(f"{result.shape.M}×{result.shape.K}×{result.shape.N}", f"{result.dense_ms:.4g}", *times, *speedups,
                      result.shape.label)
    console.print(table)
    console.print(f"wrote {path}: {len(rows)} rows ({sum(row['kind'] == 'dense' for row in rows)} dense, "
                  f"{sum(row['kind'] == '2:4' for row in rows)} 2:4)")
    if problems:
        console.print(problems)
    return 0


def add_measure(subparsers) -> None:
    parser = subparsers.add_parser("measure", help="time dense and 2:4 sparse GEMMs on this machine's GPU into a "
                                                   "measurement-set CSV (docs/validation.md)")
    parser.add_argument("target", choices=("gpu",), help="gpu: an NVIDIA GPU through torch (CUDA)")
    parser.add_argument("--shapes", required=True,
                        help="comma-separated MxKxN GEMMs (C[M,N] = A[M,K]·B[K,N]) and/or MODEL@TOKENS, e.g. "
                             "llama-3.1-8b@2048 (that model's distinct prefill linear shapes)")
    parser.add_argument("--out", required=True, help="output CSV (its directory must exist); written atomically")
    parser.add_argument("--dtype", default="fp16", choices=DTYPES)
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per GEMM; the median is recorded")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs before the timed ones")
    parser.add_argument("--backends", default="cusparselt,cutlass",
                        help="comma-separated 2:4 backends: cusparselt, cutlass (empty: dense only)")
    parser.add_argument("--device", default="cuda:0", help="cuda or cuda:N")
    parser.set_defaults(handler=cmd_measure)
