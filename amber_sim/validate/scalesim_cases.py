"""The GEMM cases amber-sim's systolic model is validated on against SCALE-Sim v3.

Each case is one GEMM in amber-sim's terms (trace op ``M`` tokens × ``K`` input channels ×
``N`` output features: ``y[M,N] = x[M,K] · Wᵀ``) on one array and dataflow, with the SRAM sizes
written into the SCALE-Sim config. ``validation/scalesim_reference.csv`` holds SCALE-Sim's answer
for every case here; ``python -m amber_sim.validate.scalesim_runner --regenerate
validation/scalesim_reference.csv`` redoes it (docs/scalesim-notes.md explains the numbers).

How a case reaches SCALE-Sim (its GEMM topology row is ``name, M, N, K, n:m``; ifmap is M×K,
filter is K×N, ofmap M×N, and its N:M sparsity always compresses the *filter* along K):

* ``direct`` (dense, or N:M on the weights): SCALE-Sim M=M, N=N, K=K; ifmap = x, filter = Wᵀ.
* ``transposed`` (N:M on the activations, amber-sim's main case): ``yᵀ = W · xᵀ`` so SCALE-Sim
  M=N (out features), N=M (tokens), K=K; ifmap = W, filter = xᵀ, and the N:M groups of each token
  row of x run along K of a filter column, which is what SCALE-Sim compresses.

SRAM sizes are in SCALE-Sim's terms (the ifmap SRAM holds SCALE-Sim's ifmap, which is W for a
transposed case). In the stall-free CALC bandwidth mode used here they change only the DRAM
counts and the "incl. prefetch" cycle count, never the compute cycles.

Case sizes: SCALE-Sim costs about 5-6 µs per operand access it simulates (about the sum of the
SRAM reads and writes it reports), so every case here stays under about 5 M accesses (< ~30 s);
the whole list runs in a few minutes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from amber_sim.errors import InputError

DATAFLOWS = ("os", "ws", "is")
_PATTERN_RE = re.compile(r"^(\d+):(\d+)$")


def parse_pattern(pattern: str, where: str = "scalesim case") -> tuple[int, int] | None:
    """``"dense"`` → None; ``"n:m"`` → (n, m) with 1 ≤ n < m."""
    if pattern == "dense":
        return None
    match = _PATTERN_RE.match(pattern)
    if not match:
        raise InputError(where, "pattern", f'"dense" or "N:M" (like "2:4"), got {pattern!r}')
    n, m = int(match.group(1)), int(match.group(2))
    if not 1 <= n < m:
        raise InputError(where, "pattern", f"N:M with 1 <= N < M, got {pattern!r}")
    return n, m


@dataclass(frozen=True)
class ScaleSimCase:
    """One GEMM (amber-sim terms) on one array, dataflow and SRAM size for SCALE-Sim."""

    name: str
    M: int  # tokens (rows of x and y)
    K: int  # input channels (the reduction dimension)
    N: int  # output features
    rows: int  # array height (SCALE-Sim ArrayHeight)
    cols: int  # array width (SCALE-Sim ArrayWidth)
    dataflow: str  # "os" | "ws" | "is"
    ifmap_kb: int  # SCALE-Sim ifmap SRAM (kB)
    filter_kb: int  # SCALE-Sim filter SRAM (kB)
    ofmap_kb: int  # SCALE-Sim ofmap SRAM (kB)
    pattern: str = "dense"  # "dense" or "N:M"
    sparse_operand: str | None = None  # "activation" | "weight" for N:M; None when dense

    def __post_init__(self) -> None:
        where = f"scalesim case {self.name!r}"
        for field in ("M", "K", "N", "rows", "cols", "ifmap_kb", "filter_kb", "ofmap_kb"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(where, field, f"a positive integer, got {value!r}")
        if self.dataflow not in DATAFLOWS:
            raise InputError(where, "dataflow", f"one of {', '.join(DATAFLOWS)}, got {self.dataflow!r}")
        nm = parse_pattern(self.pattern, where)
        if nm is None:
            if self.sparse_operand is not None:
                raise InputError(where, "sparse_operand", "None for a dense case")
        else:
            if self.sparse_operand not in ("activation", "weight"):
                raise InputError(where, "sparse_operand", '"activation" or "weight" for an N:M case')
            if self.K % nm[1]:
                raise InputError(where, "K", f"a multiple of M={nm[1]} for pattern {self.pattern} (got {self.K})")

    @property
    def mapping(self) -> str:
        """``"direct"`` or ``"transposed"`` (see the module docstring)."""
        return "transposed" if self.sparse_operand == "activation" else "direct"

    @property
    def scalesim_mnk(self) -> tuple[int, int, int]:
        """The (M, N, K) written into SCALE-Sim's GEMM topology row (its column order)."""
        if self.mapping == "transposed":
            return self.N, self.M, self.K
        return self.M, self.N, self.K

    @property
    def sram_kb(self) -> tuple[int, int, int]:
        return self.ifmap_kb, self.filter_kb, self.ofmap_kb


# Default SRAM sizes (kB: ifmap, filter, ofmap) per array shape.
_SRAM = {
    (8, 8): (16, 16, 16),
    (16, 64): (64, 64, 32),
    (32, 32): (64, 64, 64),
    (128, 128): (1024, 1024, 512),
}


def _case(
    dataflow: str,
    array: tuple[int, int],
    mkn: tuple[int, int, int],
    pattern: str = "dense",
    operand: str | None = None,
    sram: tuple[int, int, int] | None = None,
    tag: str = "",
) -> ScaleSimCase:
    rows, cols = array
    M, K, N = mkn
    if pattern != "dense" and operand is None:
        operand = "activation"
    pat = "dense" if pattern == "dense" else pattern.replace(":", "of") + ("-act" if operand == "activation" else "-wgt")
    name = f"{dataflow}-{rows}x{cols}-{M}x{K}x{N}-{pat}{tag}"
    ifmap_kb, filter_kb, ofmap_kb = sram if sram is not None else _SRAM[array]
    return ScaleSimCase(name, M, K, N, rows, cols, dataflow, ifmap_kb, filter_kb, ofmap_kb, pattern, operand)


def _all_dataflows(array, mkn, pattern="dense", operand=None, sram=None, tag=""):
    return [_case(df, array, mkn, pattern, operand, sram, tag) for df in DATAFLOWS]


CASES: list[ScaleSimCase] = [
    # --- dense, tiny (smaller than the array in every dimension) -------------------------------
    *_all_dataflows((8, 8), (3, 5, 7)),
    *_all_dataflows((128, 128), (17, 33, 9)),
    # --- dense, shapes not multiples of the array ----------------------------------------------
    *_all_dataflows((8, 8), (45, 29, 38)),
    *_all_dataflows((16, 64), (100, 37, 70)),
    *_all_dataflows((32, 32), (200, 300, 150)),
    *_all_dataflows((128, 128), (130, 257, 129)),
    # --- dense, medium, multiples of the array ---------------------------------------------------
    *_all_dataflows((32, 32), (256, 256, 256)),
    # tiny SRAMs: CALC mode stays stall-free, only DRAM counts / incl.-prefetch cycles move
    _case("ws", (32, 32), (256, 256, 256), sram=(1, 1, 1), tag="-sram1k"),
    _case("os", (32, 32), (256, 256, 256), sram=(1, 1, 1), tag="-sram1k"),
    # --- dense, LLaMA-shaped slices on 128x128 ----------------------------------------------------
    *_all_dataflows((128, 128), (128, 4096, 256)),  # q/o-proj slice (hidden 4096)
    _case("ws", (128, 128), (64, 11008, 64)),  # down-proj slice (LLaMA-2-7B intermediate 11008)
    _case("ws", (16, 64), (128, 4096, 64)),
    # --- N:M on the activations (transposed onto SCALE-Sim's sparse filter) ----------------------
    *_all_dataflows((8, 8), (20, 64, 24), "2:4"),
    *_all_dataflows((16, 64), (100, 96, 70), "4:8"),
    _case("ws", (32, 32), (256, 256, 256), "2:4"),
    _case("os", (32, 32), (256, 256, 256), "4:8"),
    _case("is", (32, 32), (256, 256, 256), "8:16"),
    _case("ws", (32, 32), (200, 304, 150), "1:4"),
    _case("ws", (128, 128), (256, 4096, 512), "2:4"),
    _case("ws", (128, 128), (128, 4096, 256), "4:8"),
    _case("os", (128, 128), (128, 4096, 256), "2:4"),
    _case("is", (128, 128), (128, 4096, 256), "2:4"),
    _case("ws", (128, 128), (64, 11008, 64), "2:4"),
    # --- N:M on the weights (direct mapping; SCALE-Sim's native use) -----------------------------
    _case("ws", (16, 64), (100, 96, 70), "2:4", operand="weight"),
    _case("os", (32, 32), (200, 304, 150), "4:8", operand="weight"),
]


def case_by_name(name: str) -> ScaleSimCase:
    for case in CASES:
        if case.name == name:
            return case
    raise InputError("scalesim cases", "name", f"one of the case names in amber_sim/validate/scalesim_cases.py, got {name!r}")


def _check_unique() -> None:
    seen: set[str] = set()
    for case in CASES:
        if case.name in seen:
            raise AssertionError(f"duplicate scalesim case name {case.name}")
        seen.add(case.name)


_check_unique()
