"""The README and docs/ are checked: links resolve, every ``apfcompile`` command line in them
parses against the CLI, ``py`` blocks compile, and ``bash`` / ``python`` blocks run on the demo data."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from apfcompile.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks(page: Path, kinds: tuple[str, ...]) -> list[str]:
    return [body for kind, body in FENCE.findall(page.read_text(encoding="utf-8")) if kind in kinds]


def _command_lines(page: Path) -> list[str]:
    """Every ``apfcompile ...`` line in a code block (fenced or indented), continuations joined,
    comments dropped; synopsis lines (``[--option ...]``, ``A|B``) are left out."""
    text = page.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        stripped = line.strip().removeprefix("$ ")
        if not stripped.startswith("apfcompile ") or not (line.startswith("    ") or line == stripped):
            continue
        command = stripped.split(" #", 1)[0].strip()
        if "[" in command or "|" in command or "..." in command:
            continue
        out.append(command)
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if "://" in target or target.startswith("#"):
            continue
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name}: {target}"


COMMANDS = [(page, line) for page in PAGES for line in _command_lines(page)]


@pytest.mark.parametrize("page, line", COMMANDS, ids=[f"{p.name}:{c[:60]}" for p, c in COMMANDS])
def test_every_command_line_parses(page, line):
    """Each command line's subcommand, options and arguments are accepted by the CLI's parser."""
    name, *rest = shlex.split(line)[1:]
    ctx = main.make_context("apfcompile", [], resilient_parsing=True)
    command = main.get_command(ctx, name)
    assert command is not None, f"{page.name}: no command {name!r}"
    command.make_context(name, rest, parent=ctx)  # raises on an unknown option or a bad value


def test_there_are_commands_to_check():
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_py_blocks_compile(page):
    for i, code in enumerate(_blocks(page, ("py", "python"))):
        compile(code, f"{page.name} block {i}", "exec")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from apfcompile.demo import run_demo

    root = tmp_path_factory.mktemp("docs")
    run_demo(root / "apf-demo", echo=lambda s: None)
    return root


RUNNABLE = [page for page in PAGES if _blocks(page, ("bash", "python"))]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runnable_blocks_run(demo, page, tmp_path, monkeypatch):
    """A page's ``bash`` blocks (run by bash, line by line, stopping at the first failure) and
    ``python`` blocks (run here), in order, in a fresh folder holding ``apf-demo/``: later blocks
    use what earlier ones made (compile, then train)."""
    (tmp_path / "apf-demo").symlink_to(demo / "apf-demo")
    for kind, code in FENCE.findall(page.read_text(encoding="utf-8")):
        if kind in ("bash", "python"):
            _run(kind, code, tmp_path, monkeypatch)


def _run(kind: str, code: str, folder: Path, monkeypatch) -> None:
    if kind == "bash":
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=folder,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            env=env,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        return
    monkeypatch.chdir(folder)
    exec(compile(code, "doc block", "exec"), {"__name__": "docs"})
