"""Main-job speed: amber-sim --hw ascend_like.yaml --trace llama.json, target under 1.5 s warm.

1. The command as a subprocess N times (the first a warm-up: Numba's on-disk cache, the OS file
   cache): the wall time including interpreter start and imports, and its ratio to the 1.5 s target.
2. The split, from N fresh processes (this script with --split, so the simulator's in-process caches
   are cold as in the command): start and imports, load (hardware and trace), simulate, terminal
   report, files (report.json and ops.csv, written by the parent) and the wait for the plots (drawn
   by a child forked before the load, as cmd_report does, overlapping the rest).
3. The main job in-process (cli.main) N times, the first a warm-up: later calls reuse the
   simulator's in-process caches, so this is a lower bound, not the command's time.
4. For reference, the plots drawn in this process with matplotlib already imported.
The machine's load average is printed: other work on a 2-core machine slows the job.
Run: .venv/bin/python benchmarks/bench_main_job.py [--runs N] [--hw HW] [--trace TRACE]
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from contextlib import redirect_stdout  # noqa: E402
from pathlib import Path  # noqa: E402

TARGET_SECONDS = 1.5
PHASES = ("start+imports", "load", "simulate", "terminal", "files", "plots wait")


def split_run(hw: str, trace_name: str, out_dir: Path) -> dict[str, float]:
    """One main job as cmd_report runs it, timed phase by phase (seconds; this process must be fresh)."""
    from amber_sim.report.plots import PlotWorker

    times: dict[str, float] = {}
    with PlotWorker() as plotter:
        from amber_sim.atomic import atomic_write_text
        from amber_sim.cli import _console
        from amber_sim.hw.config import load_hardware
        from amber_sim.paths import resolve_hw_config, resolve_trace
        from amber_sim.report.files import op_columns, op_rows, ops_csv, report_dict, report_json
        from amber_sim.report.metrics import choose_run, run_rows
        from amber_sim.report.plots import plot_data
        from amber_sim.report.terminal import print_report
        from amber_sim.sim.engine import simulate_trace
        from amber_sim.trace import load_trace

        mark = time.perf_counter()
        times["start+imports"] = mark - _START  # from the interpreter's start of this script
        hardware, trace = load_hardware(resolve_hw_config(hw)), load_trace(resolve_trace(trace_name))
        times["load"], mark = time.perf_counter() - mark, time.perf_counter()
        result = simulate_trace(hardware, trace)
        times["simulate"], mark = time.perf_counter() - mark, time.perf_counter()
        with redirect_stdout(io.StringIO()):
            print_report(result, _console())
        times["terminal"], mark = time.perf_counter() - mark, time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = run_rows(result)
        plotter.submit(plot_data(result, choose_run(result, None).run.id, rows), out_dir)
        ops = [op_rows(run, op_columns()) for run in result.runs]
        atomic_write_text(out_dir / "report.json", report_json(report_dict(result, rows=rows, ops=ops)))
        atomic_write_text(out_dir / "ops.csv", ops_csv(result, ops))
        times["files"], mark = time.perf_counter() - mark, time.perf_counter()
        plotter.wait()
        times["plots wait"] = time.perf_counter() - mark
    return times


def _median(values: list[float]) -> float:
    return statistics.median(values[1:]) if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="runs of each kind, the first a warm-up (default 4)")
    parser.add_argument("--hw", default="ascend_like.yaml")
    parser.add_argument("--trace", default="llama.json")
    parser.add_argument("--split", metavar="OUT_DIR", help=argparse.SUPPRESS)  # one timed job; prints JSON
    args = parser.parse_args()
    if args.split:
        print(json.dumps(split_run(args.hw, args.trace, Path(args.split))))
        return
    argv = ["--hw", args.hw, "--trace", args.trace]
    runs = max(1, args.runs)
    print(f"main job: amber-sim {' '.join(argv)}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        command = [str(Path(sys.executable).with_name("amber-sim"))] + argv + ["--out", str(out / "command")]
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
        warm = _median(walls)
        print(f"command, warm wall (median of {max(1, runs - 1)}): {warm:.2f} s  "
              f"[{', '.join(f'{wall:.2f}' for wall in walls)}; the first is the warm-up]  "
              f"/ {TARGET_SECONDS} s target: {warm / TARGET_SECONDS:.2f}")

        splits, walls = [], []
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--split", str(out / "split")] + argv,
                                  check=True, capture_output=True, text=True)
            walls.append(time.perf_counter() - start)
            splits.append(json.loads(done.stdout.strip().splitlines()[-1]))
        timed = splits[1:] or splits
        median = {phase: statistics.median(split[phase] for split in timed) for phase in PHASES}
        print(f"split (fresh processes, median of {len(timed)}): "
              + ", ".join(f"{phase} {median[phase]:.3f}" for phase in PHASES)
              + f"; sum {sum(median.values()):.2f} s, wall {_median(walls):.2f} s (with the exit)")

        from amber_sim.cli import main as cli_main

        totals = []
        for _ in range(runs):
            with redirect_stdout(io.StringIO()):
                start = time.perf_counter()
                assert cli_main(argv + ["--out", str(out / "in-process")]) == 0
            totals.append(time.perf_counter() - start)
        print(f"in-process cli.main (simulator caches warm after the first), median of {max(1, runs - 1)}: "
              f"{_median(totals):.2f} s (first {totals[0]:.2f} s)")

        from amber_sim.hw.config import load_hardware
        from amber_sim.paths import resolve_hw_config, resolve_trace
        from amber_sim.report.plots import draw_plots, plot_data
        from amber_sim.sim.engine import simulate_trace
        from amber_sim.trace import load_trace

        hardware, trace = load_hardware(resolve_hw_config(args.hw)), load_trace(resolve_trace(args.trace))
        data = plot_data(simulate_trace(hardware, trace))
        draw_plots(data, out / "in-process")  # imports matplotlib, loads the fonts
        start = time.perf_counter()
        draw_plots(data, out / "in-process")
        print(f"plots drawn in this process, matplotlib warm (reference): {time.perf_counter() - start:.3f} s; "
              f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
