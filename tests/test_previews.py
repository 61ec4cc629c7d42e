"""Previews people can read: a palette that keeps 256 labels apart, titled panels, a legend of
class names, CT slices in the radiological view, and the source mask of a --masks compile."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from apfcompile.demo import sample_path
from apfcompile.preview import PALETTE, colorize_labels, legend, radiological, titled, write_preview
from formats import open_dataset

from . import builders


def test_the_palette_keeps_256_labels_apart():
    assert PALETTE.shape == (256, 3) and len({tuple(c) for c in PALETTE.tolist()}) == 256
    assert colorize_labels(np.array([[0]])).tolist() == [[[0, 0, 0]]]
    picture = colorize_labels(np.arange(256).reshape(16, 16))
    assert len({tuple(c) for c in picture.reshape(-1, 3).tolist()}) == 256  # before: 16 colours, cycling


def test_titles_and_legends_are_drawn():
    panel = np.zeros((40, 200, 3), np.uint8)
    out = titled(panel, "mask rebuilt from patches: Dice 0.912")
    assert out.shape == (64, 200, 3) and (out[:24] < 128).any()  # dark text on the white strip
    strip = legend([0, 1, 2, 7], {0: "background", 1: "spleen"}, width=200)
    assert strip is not None and strip.shape[1] == 200 and strip.shape[0] >= 20
    assert tuple(strip[8, 8]) == tuple(PALETTE[0])  # the first swatch: label 0's colour
    assert legend([], {}, 100) is None


def test_the_radiological_view():
    """A RAS+ axial slice a[x, y] (x towards the patient's right, y anterior): shown with anterior
    up and the patient's right on the viewer's left."""
    a = np.zeros((5, 4), np.uint8)
    a[4, 3] = 1  # the most right, most anterior voxel
    shown = radiological(a)
    assert shown.shape == (4, 5) and shown[0, 0] == 1  # top left


def test_preview_titles_legend_and_radiological_ct(tmp_path):
    src = builders.btcv(tmp_path / "btcv", cases=1)
    builders.compile_to(src, tmp_path / "ds", length=48)
    ds = open_dataset(tmp_path / "ds")
    path = write_preview(ds, "img0001/z015", tmp_path / "p.png")
    picture = cv2.imread(str(path))
    h, w = int(ds.samples["canvas_h"][0].as_py()), int(ds.samples["canvas_w"][0].as_py())
    zoom = max(1, 384 // max(h, w))
    assert picture is not None and picture.shape[0] > w * zoom + 24 + 20  # a title above, a legend below
    assert picture.shape[1] == 2 * h * zoom + 8  # radiological: the slice's rows became columns


def test_preview_of_a_dataset_compiled_with_masks(tmp_path):
    from click.testing import CliRunner

    from apfcompile.cli import main

    images, masks = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    masks.mkdir()
    shutil.copyfile(sample_path("nuclei_image.tif"), images / "cell.tif")
    shutil.copyfile(sample_path("nuclei_mask.tif"), masks / "cell.tif")
    builders.compile_to(images, tmp_path / "ds", length=64, masks=masks)
    out = tmp_path / "p.png"
    args = ["preview", str(tmp_path / "ds"), "--sample", "0", "-o", str(out), "--input", str(images)]
    result = CliRunner().invoke(main, [*args, "--masks", str(masks)])
    assert result.exit_code == 0, result.output
    with_mask = cv2.imread(str(out))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert with_mask.shape[1] > cv2.imread(str(out)).shape[1]  # a third panel: the source mask
    bad = CliRunner().invoke(main, ["preview", str(tmp_path / "ds"), "--sample", "0", "--masks", str(masks)])
    assert bad.exit_code == 2 and "goes with --input" in bad.output


@pytest.mark.parametrize("value", [300, 70000])
def test_labels_beyond_the_palette_still_get_a_colour(value):
    assert colorize_labels(np.array([[value]]))[0, 0].tolist() != [0, 0, 0]
