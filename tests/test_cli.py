"""The command line: exit codes, one-line errors, bundled-name resolution."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch_stack

from amber_sim import __version__
from amber_sim.cli import main
from amber_sim.trace import save_trace


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"amber-sim {__version__}"


def test_inspect_prints_every_run_and_marks_synthetic(tiny_trace, tmp_path, capsys):
    path = save_trace(tiny_trace, tmp_path / "tiny.json")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out
    for run in tiny_trace.runs:
        assert run.id in out


def test_bad_input_is_one_line_exit_2_without_traceback(tmp_path, capsys):
    assert main(["--hw", "ascend_like.yaml", "--trace", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"amber-sim: error: {tmp_path / 'missing.json'}: no such trace file")


def test_debug_shows_the_traceback(tmp_path):
    from amber_sim.errors import InputError

    with pytest.raises(InputError):
        main(["--debug", "inspect", str(tmp_path / "missing.json")])


def test_patterns_the_trace_lacks(tiny_trace, tmp_path, capsys):
    path = save_trace(tiny_trace, tmp_path / "tiny.json")
    assert main(["--hw", "ascend_like", "--trace", str(path), "--patterns", "4:8"]) == 2
    assert "--patterns: 4:8 not in" in capsys.readouterr().err
    assert main(["--hw", "ascend_like", "--trace", str(path), "--patterns", "3:2"]) == 2
    assert "needs 0 < N <= M" in capsys.readouterr().err


def test_console_script_runs_in_a_subprocess(tiny_trace, tmp_path):
    path = save_trace(tiny_trace, tmp_path / "tiny.json")
    done = subprocess.run([sys.executable, "-m", "amber_sim.cli", "inspect", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([sys.executable, "-m", "amber_sim.cli", "--hw", str(tmp_path / "x.yaml"), "--trace", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_eval_defaults_to_a_report_folder_named_after_the_model(tmp_path, monkeypatch, capsys):
    """Without --out, eval writes to reports/eval-<model>/ (checked before the model loads, like any --out)."""
    torch_stack.importorskip("torch")
    import amber_sim.paths as paths
    from amber_sim.cli import default_eval_dir

    assert default_eval_dir("smollm2-135m") == paths.REPORT_DIR / "eval-smollm2-135m"
    assert default_eval_dir(str(tmp_path / "models" / "mistral-7b.Q8_0.gguf")) == paths.REPORT_DIR / "eval-mistral-7b.Q8_0"
    occupied = tmp_path / "reports"
    occupied.write_text("a file where the reports folder should be")
    monkeypatch.setattr(paths, "REPORT_DIR", occupied)
    assert main(["eval", "--patterns", "2:4"]) == 2
    assert capsys.readouterr().err == (f"amber-sim: error: --out: cannot create {str(occupied / 'eval-smollm2-135m')!r}: "
                                       f"{str(occupied)!r} is a file, not a directory\n")


@pytest.mark.slow
def test_eval_without_out_writes_the_default_folder_and_says_where(tmp_path, monkeypatch, capsys):
    torch_stack.importorskip("transformers")
    import amber_sim.paths as paths

    monkeypatch.setattr(paths, "REPORT_DIR", tmp_path / "reports")
    assert main(["eval", "--patterns", "2:4", "--seq-len", "64"]) == 0
    folder = tmp_path / "reports" / "eval-smollm2-135m"
    assert f"wrote {folder}/accuracy.csv and accuracy.json" in capsys.readouterr().out.replace("\n", "")
    assert (folder / "accuracy.csv").is_file() and (folder / "accuracy.json").is_file()
