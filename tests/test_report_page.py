"""The report page: self-contained, every picture decodes in a real browser, no console errors,
the gallery's choice (worst ceilings first), bounded size."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from apfcompile.cli import main
from apfcompile.report_page import gallery_samples, write_report
from formats import open_dataset

from . import builders

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    src = builders.btcv(root / "btcv", cases=2)
    builders.compile_to(src, root / "ds", length=48, shard_samples=16)
    return root / "ds", src


def test_the_page_is_self_contained_and_small(ct, tmp_path):
    ds_path, _ = ct
    result = CliRunner().invoke(main, ["report", str(ds_path), "-o", str(tmp_path / "r.html"), "--gallery", "6"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert len(page) < 3e6
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing fetched from anywhere
    assert page.count("<img ") == 6 and page.count("data:image/png;base64,") == 6
    assert page.count("<svg") == 4 and "spleen" in page  # plots; the legend names the classes
    assert "img0001/z" in page and "ceiling Dice" in page


def test_the_gallery_shows_the_worst_ceilings_first(ct):
    ds = open_dataset(ct[0])
    rows = gallery_samples(ds, 8, seed=3)
    ceiling = np.array(ds.samples["ceiling_dice"].to_pylist(), float)
    assert len(rows) == len(set(rows)) == 8
    assert sorted(ceiling[rows[:4]]) == sorted(np.sort(ceiling)[:4])  # the 4 lowest
    assert gallery_samples(ds, 8, seed=3) == rows and gallery_samples(ds, 8, seed=4)[:4] == rows[:4]


def test_the_gallery_can_show_the_source_pixels(ct, tmp_path):
    ds_path, src = ct
    path = write_report(open_dataset(ds_path), tmp_path / "r.html", gallery=2, input_root=src)
    assert path.read_text(encoding="utf-8").count("<img ") == 2


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (Debian: apt-get install chromium)")
def test_the_page_in_a_real_browser(ct, tmp_path):
    """Headless Chromium opens the page: no console message, every picture decoded (the page's
    own script counts them), and a screenshot saved beside it."""
    ds_path, _ = ct
    page = write_report(open_dataset(ds_path), tmp_path / "report.html", gallery=6)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    run = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'data-images="6/6"' in run.stdout, re.findall(r"data-images=\S+", run.stdout)
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1280,1800", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000 and Path(shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
