"""The one build step pyproject.toml cannot state: the wheel carries the checkout's data folders.

``hw_configs/``, ``traces/`` and ``validation/`` stay at the top of the repository (their only copy in
git); a wheel build copies them into the package as ``amber_sim/_bundled/<folder>/``, where
``amber_sim.paths`` finds them once installed (docs/architecture.md, "Bundled files"). An editable
install copies nothing: it reads the checkout's folders. MANIFEST.in puts the same folders in the sdist.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Top-level folder -> the files of it that ship (globs relative to the folder). amber_sim.paths reads
# the same folder names.
BUNDLED = {
    "hw_configs": ("*.yaml",),                                  # --hw NAME
    "traces": ("*.json",),                                      # --trace NAME, inspect NAME
    "validation": ("*.csv", "SOURCES.md", "scalesim_configs/*.cfg"),  # validate hardware / scalesim
}
BUNDLED_PACKAGE_DIR = ("amber_sim", "_bundled")


def bundled_files() -> list[Path]:
    files = []
    for folder, patterns in BUNDLED.items():
        found = sorted({path for pattern in patterns for path in (ROOT / folder).glob(pattern) if path.is_file()})
        if not found:
            raise SystemExit(f"setup.py: no {', '.join(patterns)} under {folder}/; the wheel would lack its bundled "
                             "files (an sdist must include the folder: see MANIFEST.in)")
        files += found
    return files


class build_py_with_bundled_data(build_py):  # noqa: N801 (a setuptools command class)
    """build_py, then the bundled folders copied into the build tree (not in editable mode)."""

    def _bundled(self) -> list[tuple[Path, Path]]:
        if getattr(self, "editable_mode", False):
            return []
        target = Path(self.build_lib, *BUNDLED_PACKAGE_DIR)
        return [(source, target / source.relative_to(ROOT)) for source in bundled_files()]

    def run(self) -> None:
        super().run()
        for source, target in self._bundled():
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return super().get_outputs(include_bytecode) + [str(target) for _, target in self._bundled()]


setup(cmdclass={"build_py": build_py_with_bundled_data})
