"""No pickle anywhere: nothing the tool reads or writes is unpickled, by the code or by numpy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("apfcompile", "formats", "loaders")
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}


def _sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_unpickles(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        else:
            names = set()
        assert not names & UNSAFE_MODULES, f"{path}:{node.lineno} imports {names & UNSAFE_MODULES}"
        if isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if func in ("np.load", "numpy.load", "np.lib.format.read_array"):
                assert keywords.get("allow_pickle") == "False", (
                    f"{path}:{node.lineno}: {func} without allow_pickle=False"
                )
            assert func not in ("torch.load", "torch.save"), f"{path}:{node.lineno}: {func} (pickle inside)"
            assert not func.endswith("read_pickle"), f"{path}:{node.lineno}: {func}"


def test_a_pickled_array_is_refused(tmp_path):
    import numpy as np

    from apfcompile.errors import APFError
    from apfcompile.inputs.readers import read_array

    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(APFError, match="[Pp]ickle|Object arrays cannot be loaded"):
        read_array(path)
