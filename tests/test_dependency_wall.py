"""The layers: formats imports neither cv2 nor torch; the compiler imports no torch; loaders never
import cv2 or apfcompile; apfcompile.core imports nothing from inputs or build, inputs nothing from
build; nobody outside formats imports a private ``formats._*`` module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import {module}
"""


def run(module: str, blocked: set[str]) -> subprocess.CompletedProcess:
    code = BLOCK.format(blocked=sorted(blocked), module=module)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_formats_needs_neither_cv2_nor_torch():
    assert run("formats", {"cv2", "torch"}).returncode == 0


def test_core_needs_no_torch():
    out = run("apfcompile", {"torch"})
    assert out.returncode == 0, out.stderr


def test_loaders_never_import_cv2():
    out = run("loaders", {"cv2"})
    assert out.returncode == 0, out.stderr


ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved in ``package``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return found


def _modules(folder: str):
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        package = ".".join(rel.parts[:-1]) if rel.name != "__init__" else ".".join(parts)
        yield path, package


def test_core_imports_nothing_from_inputs_or_build():
    for path, package in _modules("apfcompile/core"):
        bad = {m for m in _imports(path, package) if m.startswith(("apfcompile.inputs", "apfcompile.build"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_inputs_import_nothing_from_build():
    for path, package in _modules("apfcompile/inputs"):
        bad = {m for m in _imports(path, package) if m.startswith("apfcompile.build")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_nothing_outside_formats_imports_a_private_formats_module():
    for folder in ("apfcompile", "loaders", "benchmarks", "tests"):
        for path, package in _modules(folder):
            bad = {m for m in _imports(path, package) if m.startswith("formats.") and m.split(".")[1].startswith("_")}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_loaders_never_import_apfcompile():
    for path, package in _modules("loaders"):
        bad = {m for m in _imports(path, package) if m.split(".")[0] == "apfcompile"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    out = run("loaders", {"apfcompile", "cv2"})
    assert out.returncode == 0, out.stderr


def test_formats_never_imports_apfcompile_or_loaders():
    for path, package in _modules("formats"):
        bad = {m for m in _imports(path, package) if m.split(".")[0] in ("apfcompile", "loaders")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
