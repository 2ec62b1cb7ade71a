"""The command line: exit codes, one-line errors, bundled-name resolution."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
