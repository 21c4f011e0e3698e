"""``hdr-plugin export-onnx``: one ONNX graph of the reconstruction, checked in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from hdr_plugin import cli
from hdr_plugin.evaluation.metrics import pu21_psnr
from hdr_plugin.io import read_ldr

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the [onnx] extra)")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (the [onnx] extra)")


@pytest.mark.parametrize("quality", ["standard"])
def test_exported_graph_matches_the_engine_at_other_sizes(tmp_path, sample_path, default_engine, quality, capsys):
    out = tmp_path / f"hdr_{quality}.onnx"
    assert cli.main(["export-onnx", str(out), "--quality", quality, "--check-size", "192x128"]) == 0
    assert out.is_file() and f'"quality": "{quality}"' in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    engine = default_engine.with_options(quality=quality)
    engine.tile = 0  # one window: the graph has no tiles either
    rgb = read_ldr(sample_path).rgb[:320, :448]  # multiples of 64, not the traced size
    got = session.run(None, {"image": np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]})[0][0].transpose(1, 2, 0)
    want = engine(rgb)
    assert got.shape == want.shape and want.max() > 1.0
    assert pu21_psnr(got, want) >= 50.0


def test_export_refuses_to_overwrite_and_bad_sizes(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    out.write_bytes(b"keep")
    assert cli.main(["export-onnx", str(out)]) == 1
    assert out.read_bytes() == b"keep" and "exists" in capsys.readouterr().err
    assert cli.main(["export-onnx", str(tmp_path / "y.onnx"), "--check-size", "100x64"]) == 2
    assert "multiples of 64" in capsys.readouterr().err and not (tmp_path / "y.onnx").exists()
