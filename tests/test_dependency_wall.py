"""formats imports neither cv2 nor torch; the core imports no torch."""

from __future__ import annotations

import subprocess
import sys

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
