"""``hdr-plugin bench``: the benchmark image and the report (timings are not asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hdr_plugin import cli
from hdr_plugin.bench import STAGES, bench_image
from hdr_plugin.io import read_ldr
from hdr_plugin.tiling import computed_pixels

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


def test_bench_frames_with_no_or_30_percent_clipped_pixels():
    none = bench_image(640, 384, clipped=0)
    assert none.max() <= 0.8 + 1e-6  # nothing near the clip
    assert np.array_equal(none, np.round(none * 255) / 255)  # still 8-bit code values
    some = bench_image(640, 384, clipped=0.3)
    assert abs(float((some.max(axis=2) >= 1.0).mean()) - 0.3) < 0.02


def test_bench_reports_every_stage_with_compute_and_memory(capsys):
    assert cli.main(["bench", "--size", "600x400", "--repeat", "1", "--precision", "fp32", "--runtime", "torch", "--quality", "max", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == [600, 400] and report["precision"] == "fp32" and report["runtime"] == "torch"
    assert set(report["stages"]) == set(STAGES)
    for name in ("dequantize", "hallucinate", "refine", "total"):
        stage = report["stages"][name]
        assert stage["seconds"] > 0 and stage["megapixels_per_second"] > 0 and stage["gmac_per_second"] > 0
    # Refinement-Net runs on every computed pixel of a one-tile frame (400 rows padded to 448):
    # its kMAC per frame pixel is the network's count times that padding
    from hdr_plugin.pipeline import Engine

    engine = Engine(device="cpu", precision="fp32", runtime="torch", quality="max")
    padded = computed_pixels(engine.plan_dense(400, 600)) / (400 * 600)
    assert padded == pytest.approx(448 * 640 / (400 * 600))
    k = report["stages"]["refine"]["kmac_per_pixel"]
    assert k == pytest.approx(engine.kmac_per_pixel["refinement"] * padded, rel=1e-6)
    assert report["stages"]["total"]["kmac_per_pixel"] > 2 * k
    assert report["peak_memory_mib"] > 0 and 0 < report["clipped_fraction"] < 1
    assert report["isa"] and report["device_name"]


def test_bench_against_another_weights_folder_measures_both_in_one_run(capsys, tiny_weights):
    assert cli.main(["bench", "--size", "320x256", "--repeat", "1", "--precision", "fp32", "--runtime", "torch",
                     "--against", str(tiny_weights), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    a = report["against"]
    assert a["seconds"] > 0 and a["speed_ratio"] > 0
    assert a["agreement_pu21_db"] > 100  # the same weights and code: the same output
