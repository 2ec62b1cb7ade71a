"""The torch-free contract: the simulator half (trace, hardware config, sim, report, study, the main job)
runs with torch unimportable and never loads it; the torch-dependent tests cannot be skipped silently in CI.

Each check runs in a fresh interpreter, so what the rest of the suite imported does not hide a stray import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from amber_sim.paths import PROJECT_ROOT

TESTS_DIR = Path(__file__).resolve().parent
# Packages that need torch (or are only used with it): none may be loaded by the simulator half.
TORCH_STACK = {"torch", "transformers", "accelerate"}

# Blocks torch, runs the CLI, then lists every module that got loaded (into the file named by argv[1]).
CLI_DRIVER = """
import json, sys
sys.modules["torch"] = None  # `import torch` now raises ImportError
out, argv = sys.argv[1], sys.argv[2:]
try:
    from amber_sim.cli import main
    code = main(argv)
finally:
    with open(out, "w") as f:
        json.dump(sorted(name for name, module in sys.modules.items() if module is not None), f)
sys.exit(code)
"""

# Imports each named module (torch installed and importable) and names the first one that loaded torch.
IMPORT_DRIVER = """
import importlib, json, pkgutil, sys
names = list(sys.argv[2:])
for package in ("sim", "hw", "report", "study", "validate"):
    path = importlib.import_module("amber_sim." + package).__path__
    names += sorted(info.name for info in pkgutil.walk_packages(path, f"amber_sim.{package}."))
culprit = broken = None
for name in names:
    try:
        importlib.import_module(name)
    except Exception as error:
        broken = f"{name}: {type(error).__name__}: {error}"
        break
    if culprit is None and "torch" in sys.modules:
        culprit = name
loaded = sorted(name for name, module in sys.modules.items() if module is not None)
with open(sys.argv[1], "w") as f:
    json.dump({"imported": names, "culprit": culprit, "broken": broken, "loaded": loaded}, f)
"""


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _torch_stack_loaded(modules: list[str]) -> set[str]:
    return {name for name in modules if name.split(".")[0] in TORCH_STACK}


def run_cli_without_torch(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    loaded_file = tmp_path / "loaded.json"
    done = subprocess.run([sys.executable, "-c", CLI_DRIVER, str(loaded_file), *argv], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"amber-sim {' '.join(argv)} without torch exited {done.returncode}:\n{done.stderr}"
    return done, json.loads(loaded_file.read_text())


# ---------------------------------------------------------------- the simulator half without torch

def test_main_job_runs_without_torch(tmp_path):
    out = tmp_path / "report"
    done, loaded = run_cli_without_torch(tmp_path, "--hw", "ascend_like.yaml", "--trace", "llama.json", "--out", str(out))
    for name in ("report.json", "ops.csv", "report.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "report.json").read_text())
    assert "amber_sim.sim.engine" in loaded and "amber_sim.report.files" in loaded  # it did run the simulator
    assert "torch" not in loaded and not _torch_stack_loaded(loaded)


def test_inspect_runs_without_torch(tmp_path):
    done, loaded = run_cli_without_torch(tmp_path, "inspect", "llama.json")
    assert "runs in the trace" in done.stdout
    assert "torch" not in loaded and not _torch_stack_loaded(loaded)


def test_explain_runs_without_torch(tmp_path):
    done, loaded = run_cli_without_torch(tmp_path, "explain", "--hw", "ascend_like.yaml", "--trace", "llama.json",
                                         "--op", "layers.0.mlp.down_proj")
    assert "cycles" in done.stdout
    assert "torch" not in loaded and not _torch_stack_loaded(loaded)


def test_simulator_modules_do_not_import_torch(tmp_path):
    """Every module of sim/, hw/, report/, study/, validate/ plus the trace, CLI and synthetic-trace modules,
    imported with torch available: a stray top-level (or guarded) ``import torch`` shows up here."""
    result_file = tmp_path / "imports.json"
    top_level = ["amber_sim.sim.engine", "amber_sim.hw.config", "amber_sim.trace", "amber_sim.report.files",
                 "amber_sim.study.sweep", "amber_sim.trace_summary", "amber_sim.patterns", "amber_sim.paths",
                 "amber_sim.cli", "amber_sim.capture.synthetic", "amber_sim.models.architectures"]
    done = subprocess.run([sys.executable, "-c", IMPORT_DRIVER, str(result_file), *top_level], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(result_file.read_text())
    assert result["broken"] is None, f"could not import {result['broken']}"
    assert len(result["imported"]) > len(top_level)  # the package walk found the modules
    assert result["culprit"] is None, f"importing {result['culprit']} loaded torch"
    assert not _torch_stack_loaded(result["loaded"])


# ---------------------------------------------------------------- torch-dependent tests are not skipped in CI

def test_torch_tests_skip_only_through_the_torch_stack_helper():
    """``pytest.importorskip`` of a torch-stack module would skip without the CI check: use
    ``torch_stack.importorskip`` (tests/torch_stack.py)."""
    direct = re.compile(r"pytest\.importorskip\(\s*[\"'](torch|transformers|accelerate|gguf)\b")
    offenders = [f"{path.name}:{number}" for path in sorted(TESTS_DIR.glob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if direct.search(line)]
    assert not offenders, f"use torch_stack.importorskip instead of pytest.importorskip at {', '.join(offenders)}"


SKIPPING_TESTS = {
    # a whole module skipped at import, as test_apply.py does when transformers is missing
    "test_module_level.py": """
        import torch_stack

        missing = torch_stack.importorskip("amber_sim_no_such_module")

        def test_never_runs():
            raise AssertionError("unreachable")
    """,
    # one test skipped through a fixture, as conftest's build_tiny_llama does; an ordinary skip; a pass
    "test_function_level.py": """
        import pytest
        import torch_stack

        @pytest.fixture(scope="session")
        def missing():
            return torch_stack.importorskip("amber_sim_no_such_module")

        def test_needs_the_missing_module(missing):
            raise AssertionError("unreachable")

        def test_skipped_for_another_reason():
            pytest.skip("not a torch-stack reason")

        def test_passes():
            assert True
    """,
}


def _pytest_on_skipping_tests(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    for name, source in SKIPPING_TESTS.items():
        (project / name).write_text(textwrap.dedent(source))
    path = [str(TESTS_DIR)]
    if importlib.util.find_spec("torch") is None:  # the rule applies where torch is installed: stand one in
        (tmp_path / "stub" / "torch").mkdir(parents=True, exist_ok=True)
        (tmp_path / "stub" / "torch" / "__init__.py").write_text("")
        path.append(str(tmp_path / "stub"))
    env = _env(CI=ci)
    env["PYTHONPATH"] = os.pathsep.join([*path, env["PYTHONPATH"]])
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "torch_stack", "-p", "no:cacheprovider", "-q", "-rs",
                           "--rootdir", str(project), str(project)], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)


def test_torch_stack_skips_fail_the_session_under_ci(tmp_path):
    done = _pytest_on_skipping_tests(tmp_path, ci="true")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    summary = done.stdout[done.stdout.index("torch-dependent tests skipped under CI"):]
    assert "test_module_level.py: needs amber_sim_no_such_module" in summary
    assert "test_function_level.py::test_needs_the_missing_module: needs amber_sim_no_such_module" in summary
    assert "test_skipped_for_another_reason" not in summary  # only torch-stack skips count
    assert "1 passed" in done.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_torch_stack_skips_are_plain_skips_outside_ci(tmp_path, ci):
    done = _pytest_on_skipping_tests(tmp_path, ci=ci)
    assert done.returncode == pytest.ExitCode.OK, done.stdout + done.stderr
    assert "torch-dependent tests skipped under CI" not in done.stdout
    assert "1 passed, 3 skipped" in done.stdout
