"""``hdr-plugin bench``: the benchmark image and the report (timings are not asserted)."""

from __future__ import annotations

import json

import numpy as np

from hdr_plugin import cli
from hdr_plugin.bench import STAGES, bench_image
from hdr_plugin.io import read_ldr

from conftest import ROOT


def test_bench_image_mirrors_the_sample_out_to_any_size():
    sample = read_ldr(ROOT / "hdr_plugin" / "data" / "sample.png").rgb
    h, w = sample.shape[:2]
    img = bench_image(1920, 1080)
    assert img.shape == (1080, 1920, 3) and img.dtype == sample.dtype and img.flags.c_contiguous
    np.testing.assert_array_equal(img[:h, :w], sample)
    np.testing.assert_array_equal(img[:h, w : 2 * w], sample[:, ::-1])  # mirrored, never resampled
    np.testing.assert_array_equal(img[h : 2 * h, :w], sample[::-1])
    assert bench_image(100, 50).shape == (50, 100, 3)


def test_bench_reports_every_stage_for_fp32_and_the_chosen_precision(capsys):
    assert cli.main(["bench", "--size", "600x400", "--repeat", "1", "--precision", "bf16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == [600, 400] and report["precision"] == "bf16"
    for mode in ("fp32", "bf16"):
        assert set(report["megapixels_per_second"][mode]) == set(STAGES)
        assert all(v > 0 for v in report["megapixels_per_second"][mode].values())
    assert report["speedup"]["total"] > 0 and report["agreement_pu21_db"] > 30
