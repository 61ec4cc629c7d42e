"""Evaluation against the ceiling (issue #13): per-sample Dice, the true mask on the canvas, a
prediction back to the original pixels, and the docs' example (docs/python.md), run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from apfcompile import CompileConfig, compile_dataset, original_on_canvas, original_sample
from apfcompile import dice as dice_np
from formats import open_dataset
from loaders import APFDataset, dice, to_original

from . import builders

README = Path(__file__).parents[1] / "docs" / "python.md"


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 4),
    n=st.integers(1, 40),
    k=st.integers(1, 5),
    ignore=st.sampled_from([None, 255]),
    seed=st.integers(0, 2**31),
)
def test_per_sample_dice_equals_dice_of_each_sample(b, n, k, ignore, seed):
    rng = np.random.default_rng(seed)
    values = list(range(k)) + ([255] if ignore is not None else [])
    pred = torch.from_numpy(rng.choice(values, (b, n)))
    target = torch.from_numpy(rng.choice(values, (b, n)))
    classes, per = dice(pred, target, ignore_index=ignore, reduce="none")
    pooled_classes, pooled = dice(pred, target, ignore_index=ignore)
    assert torch.equal(classes, pooled_classes)
    ref_classes, ref = dice_np(pred.numpy(), target.numpy(), ignore_index=ignore)
    np.testing.assert_allclose(pooled.numpy(), ref)  # pooled: as the numpy reference
    for i in range(b):
        _, one = dice_np(pred[i].numpy(), target[i].numpy(), classes.numpy(), ignore_index=ignore)
        np.testing.assert_allclose(per[i].numpy(), one)
    flags = torch.arange(b) % 2 == 0
    _, flagged = dice(pred, target, classes, ignore_index=ignore, labelled=flags, reduce="none")
    assert torch.isnan(flagged[1::2]).all() and torch.equal(flagged[::2], per[::2])


def test_prediction_back_to_the_original_pixels(tmp_path):
    src = builders.btcv(tmp_path / "btcv", cases=1)
    compile_dataset(CompileConfig.from_options(src, tmp_path / "ds", length=64, workers=1, resolution=256))
    item = APFDataset(tmp_path / "ds", length=64)[15]
    assert item["original"].tolist() == [122, 101] and item["canvas"].tolist() == [256, 256]
    _, canvas_mask = original_on_canvas(tmp_path / "ds", item["key"], src)
    _, truth = original_sample(tmp_path / "ds", item["key"], src)
    back = to_original(torch.from_numpy(canvas_mask), item["original"], item["scale"]).numpy()
    assert back.shape == truth.shape
    assert (back == truth).mean() > 0.999  # nearest there and back: the original labels


def test_the_readme_evaluation_example_runs(tmp_path, capsys, monkeypatch):
    from apfcompile.demo import run_demo

    run_demo(tmp_path / "apf-demo", echo=lambda s: None)
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Splits, statistics, evaluation against the ceiling") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    exec(compile(code, "docs/python.md", "exec"), {"__name__": "readme"})
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("class ")]
    assert lines and all("model" in line and "ceiling" in line for line in lines)
    scores = {int(line.split()[1].rstrip(":")): float(line.split()[3]) for line in lines}
    assert scores[0] > 0.8  # background is learned in 60 steps
    ds = open_dataset(tmp_path / "apf-demo" / "ct")
    assert ds.manifest.statistics["all"]["samples"] == 30
