"""A plain (non-editable) install works away from the checkout.

The source tree is copied, built the way ``python -m build`` does (an sdist through the PEP 517 hook, then
a wheel from the unpacked sdist, so MANIFEST.in is exercised too) and installed with ``--no-deps`` into a
fresh venv that reuses this interpreter's installed dependencies (nothing is downloaded). The venv's
``amber-sim`` then runs from a temporary directory: the main job on bundled names, ``inspect`` and
``validate hardware`` must find the bundled files inside the installed package, and the report must land
under that directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from amber_sim.paths import PROJECT_ROOT

# What a wheel must carry under amber_sim/_bundled/ (setup.py's BUNDLED): every file of these checkout folders.
BUNDLED_GLOBS = {"hw_configs": ("*.yaml",), "traces": ("*.json",),
                 "validation": ("*.csv", "SOURCES.md", "scalesim_configs/*.cfg")}
# Not part of a source tree: local environments, build outputs, caches, and what the package does not need.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".hypothesis", ".tmp*", "reports", "tests", "benchmarks", "_bundled")


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _check(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"{' '.join(done.args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """sdist of a copy of the source tree (PEP 517 build_sdist), then a wheel built from the unpacked sdist."""
    root = tmp_path_factory.mktemp("build")
    source = root / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=NOT_SOURCE)
    hook = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    sdist = root / "sdist" / _check(_run([sys.executable, "-c", hook, root / "sdist"], cwd=source)).strip().splitlines()[-1]
    with tarfile.open(sdist) as archive:
        archive.extractall(root / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (unpacked,) = (root / "unpacked").iterdir()
    _check(_run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                 "-w", root / "wheel", unpacked], cwd=root))
    (built,) = (root / "wheel").glob("amber_sim-*.whl")
    return built


def test_the_wheel_carries_the_bundled_folders(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    bundled = {name.removeprefix("amber_sim/_bundled/") for name in names if name.startswith("amber_sim/_bundled/")}
    expected = {path.relative_to(PROJECT_ROOT).as_posix() for folder, patterns in BUNDLED_GLOBS.items()
                for pattern in patterns for path in (PROJECT_ROOT / folder).glob(pattern)}
    assert {"hw_configs/ascend_like.yaml", "traces/llama.json", "validation/gpu_gemm_measurements.csv"} <= expected
    assert bundled == expected
    # Read by every report (schemas: loading a trace; hardware_summary.json: the silicon line).
    assert {"amber_sim/schemas/amber-trace-2.schema.json", "amber_sim/validate/hardware_summary.json"} <= names


@pytest.mark.slow
def test_installed_amber_sim_runs_the_main_job_outside_the_checkout(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    _check(_run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
                cwd=tmp_path))
    # The dependencies come from this interpreter's environment, after the venv's own site-packages (a path
    # line in a .pth file: that directory's own .pth files, the editable install's finder among them, are not run).
    site = Path(_check(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            cwd=tmp_path)).strip())
    (site / "zz_reuse_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _check(_run([python, "-c", "import amber_sim.paths as p; print(p.__file__); print(p.INSTALLED)"], cwd=work))
    module_file, installed = where.split()
    assert Path(module_file).is_relative_to(site) and installed == "True", where

    amber_sim = env_dir / "bin" / "amber-sim"
    out = _check(_run([amber_sim, "--hw", "ascend_like.yaml", "--trace", "llama.json"], cwd=work))
    report_dir = work / "reports" / "llama-ascend_like"
    assert "wrote 6 files to reports/llama-ascend_like/" in out
    assert {"report.md", "report.json", "ops.csv"} <= {path.name for path in report_dir.iterdir()}
    report = json.loads((report_dir / "report.json").read_text("utf-8"))
    assert report["hardware"]["name"] == "ascend_like" and report["trace"]["path"] == "llama.json"

    assert "smollm2-135m" in _check(_run([amber_sim, "inspect", "smollm2-135m"], cwd=work))
    validated = _run([amber_sim, "validate", "hardware"], cwd=work)  # exits 1 while its accuracy targets are unmet
    assert validated.returncode in (0, 1) and "gpu_gemm_measurements.csv" in validated.stdout, validated.stderr
    assert "targets:" in validated.stdout
    assert "SCALE-Sim" in _check(_run([amber_sim, "validate", "scalesim"], cwd=work))
    # The bundled copies are read-only by intent: the maintainer commands that rewrite them refuse.
    refused = _run([amber_sim, "validate", "hardware", "--write-summary"], cwd=work)
    assert refused.returncode == 2 and "checkout" in refused.stderr
