"""`inspect` and the main job print two different activation savings (the masks' compressed size against the
simulated DRAM traffic, sparsifier included), so they carry two different labels, each defined in
docs/metrics.md's section for its command."""

from __future__ import annotations

import io

from rich.console import Console

from amber_sim.cli import print_trace_summary
from amber_sim.hw.config import load_hardware
from amber_sim.paths import PROJECT_ROOT, resolve_hw_config
from amber_sim.report.files import report_markdown
from amber_sim.report.terminal import print_report
from amber_sim.sim.engine import simulate_trace
from amber_sim.trace_summary import summarize_run

INSPECT_LABEL = "act. bytes saved if compressed"
MAIN_JOB_LABEL = "act. DRAM traffic saved"
OLD_SHARED_LABEL = "act. I/O saved"


def _printed(draw) -> str:
    console = Console(file=io.StringIO(), width=400, highlight=False, color_system=None)  # wide: no wrapped headers
    draw(console)
    return console.file.getvalue()


def test_inspect_and_the_main_job_label_their_activation_savings_differently(tiny_trace):
    inspect_out = _printed(lambda console: print_trace_summary(tiny_trace, console))
    result = simulate_trace(load_hardware(resolve_hw_config("ascend_like.yaml")), tiny_trace)
    main_out = _printed(lambda console: print_report(result, console))
    markdown = report_markdown(result, {})

    assert INSPECT_LABEL != MAIN_JOB_LABEL
    assert INSPECT_LABEL in inspect_out and MAIN_JOB_LABEL not in inspect_out
    for text in (main_out, markdown):
        assert MAIN_JOB_LABEL in text and INSPECT_LABEL not in text
    for text in (inspect_out, main_out, markdown):
        assert OLD_SHARED_LABEL not in text

    # The two numbers really differ on this trace: a sparse run's compression saving is not its simulated one.
    sparse = [run for run in result.runs if run.run.pattern == "2:4" and run.run.precision == "fp16"][0]
    assert summarize_run(sparse.run).activation_bytes_saved_if_compressed != sparse.numbers.activation_io_savings


def test_each_label_is_defined_in_its_commands_section_of_the_metrics_doc():
    text = (PROJECT_ROOT / "docs" / "metrics.md").read_text("utf-8")
    inspect_section = text[text.index("## From the trace alone"):text.index("## From the simulation")]
    main_section = text[text.index("## From the simulation"):text.index("## Model vs silicon")]
    assert f"| {INSPECT_LABEL} |" in inspect_section and f"| {MAIN_JOB_LABEL} |" not in inspect_section
    assert f"| {MAIN_JOB_LABEL} |" in main_section and f"| {INSPECT_LABEL} |" not in main_section
    assert OLD_SHARED_LABEL not in text
