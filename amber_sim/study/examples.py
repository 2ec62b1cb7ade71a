"""Regenerate the committed example reports under reports/examples/ (docs/studies.md):

    .venv/bin/python -m amber_sim.study.examples

Each is what the matching command writes (the commands are in each report.md).
"""

from __future__ import annotations

import shutil

from amber_sim.hw.config import load_hardware
from amber_sim.paths import HW_CONFIG_DIR, REPORT_DIR, TRACE_DIR
from amber_sim.study.axes import parse_axes, parse_seq_lens
from amber_sim.study.store import DB_NAME, ResultStore
from amber_sim.study.studies import write_bottleneck, write_codesign
from amber_sim.study.sweep import prepare_job, run_sweep
from amber_sim.study.sweep_report import write_sweep_report
from amber_sim.trace import load_trace

EXAMPLES = REPORT_DIR / "examples"
TRACE = "smollm2-135m.json"
STUDY_HW = ("ascend_like.yaml", "flexible_nm.yaml", "a100_like.yaml", "h100_like.yaml")
SWEEP_AXES = ("memory.dram.bandwidth_gb_s=400:3200:x2", "sparsity.patterns=[2:4],[2:4,4:8,8:16]")
SWEEP_SEQ_LENS = "512,2048,8192"


def _sweep(out_name: str) -> None:
    out = EXAMPLES / out_name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    axes, seq_lens = parse_axes(SWEEP_AXES), parse_seq_lens(SWEEP_SEQ_LENS)
    base, trace = load_hardware(HW_CONFIG_DIR / "ascend_like.yaml"), load_trace(TRACE_DIR / TRACE)
    job = prepare_job(base, trace, axes, seq_lens, 10_000)
    outcome = run_sweep(job, out / DB_NAME, workers=1)
    with ResultStore(out / DB_NAME) as store:
        rows = store.rows(list(outcome.keys))
    command = (f"amber-sim sweep --hw ascend_like.yaml --trace {TRACE} "
               + " ".join(f"--vary '{axis}'" for axis in SWEEP_AXES)
               + f" --seq-len {SWEEP_SEQ_LENS} --out reports/examples/{out_name}")
    write_sweep_report(rows, axes, seq_lens, base, {c: hw for _, c, _, hw in job.points}, out, TRACE, command)
    for leftover in out.glob(DB_NAME + "-*"):  # SQLite WAL side files
        leftover.unlink()


def _study(kind: str, out_name: str) -> None:
    out = EXAMPLES / out_name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    trace = load_trace(TRACE_DIR / TRACE)
    configs = [load_hardware(HW_CONFIG_DIR / name) for name in STUDY_HW]
    command = (f"amber-sim study {kind} --trace {TRACE} " + " ".join(f"--hw {name}" for name in STUDY_HW)
               + f" --out reports/examples/{out_name}")
    (write_codesign if kind == "codesign" else write_bottleneck)(trace, configs, out, command)


def main() -> None:
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    _sweep("sweep-smollm2-135m-ascend_like")
    _study("codesign", "codesign-smollm2-135m")
    _study("bottleneck", "bottleneck-smollm2-135m")


if __name__ == "__main__":
    main()
