"""The repository stands alone: its files cite only documents and paths inside it, and docs/architecture.md
matches the package it describes (its layout and its dependency rules)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from amber_sim.paths import PROJECT_ROOT

ARCHITECTURE = PROJECT_ROOT / "docs" / "architecture.md"
# Built from pieces so that this file does not match itself.
DESIGN_DOC = "DESIGN" + ".md"
# A relative path that climbs out of the folder it is written in: ``../x`` (but not ``.../x``, an elision).
CLIMBING_PATH = re.compile(r"(?<![\w.])(?:\.\./)+[\w.\-/]*")
DOC_REFERENCE = re.compile(r"(?<![\w/.-])docs/[\w.-]+\.md")
CAPTURE_HALF = ("amber_sim.capture", "amber_sim.pruning", "amber_sim.models")


def tracked_text_files() -> dict[str, str]:
    """Every tracked file that exists in the working tree and is UTF-8 text, by its repository path."""
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    texts = {}
    for name in filter(None, listed.decode("utf-8").split("\0")):
        path = PROJECT_ROOT / name
        if not path.is_file():
            continue
        try:
            texts[name] = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue  # a PNG or another binary file
    assert "README.md" in texts
    return texts


def test_no_tracked_file_cites_a_design_document_outside_the_repository():
    offenders = [f"{name}:{text.count(chr(10), 0, text.index(DESIGN_DOC)) + 1}"
                 for name, text in tracked_text_files().items() if DESIGN_DOC in text]
    assert not offenders, f"{DESIGN_DOC} is not part of the repository; cite docs/architecture.md instead: {offenders}"


def test_no_tracked_file_cites_a_path_outside_the_repository():
    """``../somewhere`` must stay inside the checkout, read from the citing file's folder, and no file names the
    folder the checkout sits in (an absolute path of one machine)."""
    root, outside = PROJECT_ROOT.resolve(), str(PROJECT_ROOT.resolve().parent).rstrip("/") + "/"
    offenders = []
    for name, text in tracked_text_files().items():
        folder = (root / name).parent
        for match in CLIMBING_PATH.finditer(text):
            if not (folder / match.group()).resolve().is_relative_to(root):
                offenders.append(f"{name}: {match.group()}")
        if outside != "/" and outside in text:
            offenders.append(f"{name}: {outside}...")
    assert not offenders, offenders


def test_every_cited_doc_exists():
    missing = sorted({f"{name}: {match.group()}" for name, text in tracked_text_files().items()
                      for match in DOC_REFERENCE.finditer(text) if not (PROJECT_ROOT / match.group()).is_file()})
    assert not missing, missing


def test_the_architecture_doc_lists_every_package_and_top_level_module():
    text = ARCHITECTURE.read_text("utf-8")
    layout = text[text.index("## Package layout"):text.index("## Dependency direction")]
    package = PROJECT_ROOT / "amber_sim"
    names = [f"{path.parent.name}/" for path in sorted(package.glob("*/__init__.py"))]
    names += [path.name for path in sorted(package.glob("*.py")) if path.name != "__init__.py"]
    assert len(names) > 10
    assert [name for name in names if not re.search(rf"^\s+{re.escape(name)}\s", layout, re.MULTILINE)] == []
    for doc in ("docs/model.md", "docs/trace-format.md", "docs/hardware-config.md", "docs/metrics.md"):
        assert doc in text


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _offending_imports(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(PROJECT_ROOT)}: {name}" for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
            for name in sorted(_imported_modules(path))
            if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden)]


def test_the_simulator_depends_on_the_trace_and_the_hardware_config_only():
    """docs/architecture.md, "Dependency direction": sim/ imports nothing of the capture half (nor torch), nor
    the packages built on it; pruning/ knows nothing of sim/."""
    forbidden = CAPTURE_HALF + ("amber_sim.report", "amber_sim.study", "amber_sim.validate", "amber_sim.cli",
                                "torch", "transformers")
    assert _offending_imports("amber_sim/sim", forbidden) == []
    assert _offending_imports("amber_sim/pruning", ("amber_sim.sim",)) == []
