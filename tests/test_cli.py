"""The command line: the demo, help, errors as one line."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from apfcompile.cli import main


def test_demo_runs_on_bundled_samples(tmp_path):
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "he_tissue" in result.output and "nuclei" in result.output and "ct_abdomen" in result.output
    assert len(list((tmp_path / "out").glob("*_preview.png"))) == 3
    for name in ("ct", "nuclei", "tissue"):
        assert (tmp_path / "out" / name / "apf.json").is_file()


def test_console_script_and_module(tmp_path):
    for cmd in (["apfcompile", "--help"], [sys.executable, "-m", "apfcompile", "--version"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        assert "apfcompile" in out.stdout


def test_errors_are_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["demo", str(blocker)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
