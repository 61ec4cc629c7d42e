"""Find your samples: ``ls`` (one row per sample, sortable, three formats with one set of field
names) and ``inspect --json`` for scripts."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from apfcompile.cli import main
from apfcompile.report import SAMPLE_FIELDS
from formats import open_dataset

from . import builders


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ls")
    builders.compile_to(builders.btcv(root / "btcv", cases=1), root / "ds", length=48, shard_samples=8)
    return root / "ds"


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_ls_lists_every_sample_in_three_formats_with_the_same_fields(dataset):
    keys = open_dataset(dataset).samples["key"].to_pylist()
    rows = [json.loads(line) for line in _run("ls", dataset, "--format", "jsonl").splitlines()]
    assert [r["key"] for r in rows] == keys and tuple(rows[0]) == SAMPLE_FIELDS
    table = list(csv.DictReader(io.StringIO(_run("ls", dataset, "--format", "csv"))))
    assert tuple(table[0]) == SAMPLE_FIELDS and [r["key"] for r in table] == keys
    lines = _run("ls", dataset).splitlines()
    assert lines[0].split() == list(SAMPLE_FIELDS) and len(lines) == len(keys) + 1
    assert {r["shard"] for r in rows} == set(range(len(open_dataset(dataset).manifest.shards)))


def test_ls_sorts_worst_ceiling_first_and_descending(dataset):
    rows = [json.loads(line) for line in _run("ls", dataset, "--sort", "ceiling", "--format", "jsonl").splitlines()]
    ceilings = [r["ceiling"] for r in rows if r["ceiling"] is not None]
    assert ceilings == sorted(ceilings) and ceilings[0] < ceilings[-1]
    down = [json.loads(line) for line in _run("ls", dataset, "--sort", "-length", "--format", "jsonl").splitlines()]
    assert [r["length"] for r in down] == sorted((r["length"] for r in down), reverse=True)
    bad = CliRunner().invoke(main, ["ls", str(dataset), "--sort", "nope"])
    assert bad.exit_code == 2 and "expected one of sample, key" in bad.output


def test_inspect_json_holds_what_inspect_prints(dataset):
    doc = json.loads(_run("inspect", dataset, "--json"))
    m = open_dataset(dataset).manifest
    assert doc["totals"] == dict(m.totals) and doc["patch_size"] == m.patch_size
    assert doc["length"]["max"] <= 48 and set(doc["leaf_sizes"]) and doc["ceiling_dice"]["mean"] > 0
    assert [c["name"] for c in doc["classes"]][:2] == ["background", "spleen"]
    assert "dataset" in doc and doc["failures"] == []


def test_the_compile_bar_shows_frames_per_second_and_time_left(tmp_path, capsys):
    builders.compile_to(builders.nuclei_folder(tmp_path / "in", copies=2), tmp_path / "ds", length=32, progress=True)
    err = capsys.readouterr().err
    assert "compiling" in err and "frame/s" in err and "<" in err  # [elapsed<left, rate]
    assert "2/2" in err
