"""``hdr-plugin export-onnx OUT.onnx``: the reconstruction as one ONNX graph, for other hosts.

Contract of the exported graph (opset 18):

* input ``image``: float32 ``(1, 3, H, W)``, display-referred RGB in [0, 1] (what an 8-bit
  file stores, divided by 255); ``H`` and ``W`` multiples of 64 (pad the image
  symmetrically and crop the output back: the networks' pooling needs it);
* output ``hdr``: float32 ``(1, 3, H, W)``, scene-linear RGB (Rec.709 primaries), the
  input's white at 1.0 and restored highlights above it, never clamped above.

Inside: the inverse camera curve from Linearization-Net on an area-downscaled copy (as the
engine), the curve lookup in float32, Hallucination-Net on every pixel (the graph has no
sparse tiles: that is the engine's scheduling, not part of the model).  The graph is the
default quality's (``standard``); ``ReconstructionGraph`` can hold Dequantization- and
Refinement-Net too, but that export is not offered until it passes the self-check (it
did not in the one run made).  The export is checked with ONNX Runtime against the
PyTorch pipeline on an image that is not the tracing example.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .crf import apply_curve
from .quality import resolve_quality


@contextlib.contextmanager
def quiet_export():
    """The ONNX exporter prints progress lines and warnings we do not want in a CLI run."""
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        yield


def export_onnx(module: nn.Module, n_inputs: int, path: str | Path, names: list[str] | None = None, multiple: int = 1) -> Path:
    """Export ``module`` (inputs ``(1, 3, H, W)``) to ONNX at ``path`` with dynamic sides
    (multiples of ``multiple``)."""
    names = names or [f"input{i}" for i in range(n_inputs)]
    if multiple > 1:
        h = multiple * torch.export.Dim("height_blocks", min=1, max=16384 // multiple)
        w = multiple * torch.export.Dim("width_blocks", min=1, max=16384 // multiple)
    else:
        h, w = torch.export.Dim("height", min=16, max=16384), torch.export.Dim("width", min=16, max=16384)
    size = max(64, multiple)
    g = torch.Generator().manual_seed(0)
    example = tuple(torch.rand(1, 3, size * 2, size * 3, generator=g) for _ in range(n_inputs))
    with torch.no_grad(), quiet_export():
        torch.onnx.export(
            module, example, str(path), input_names=names, output_names=["output" if n_inputs > 1 or names[0] != "image" else "hdr"],
            dynamo=True, dynamic_shapes=tuple({2: h, 3: w} for _ in range(n_inputs)), opset_version=18, verbose=False,
        )
    return Path(path)


class ReconstructionGraph(nn.Module):
    """The engine's per-image computation for one quality mode, as a traceable module."""

    def __init__(self, model: nn.Module, dequantize: bool, refine: bool):
        super().__init__()
        self.deq, self.lin, self.hal, self.ref = model.deq, model.lin, model.hal, model.ref
        self.dequantize, self.refine = dequantize, refine
        self.size = int(model.config.linearization_input_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float().clamp(0.0, 1.0)
        display = self.deq(x) if self.dequantize else x
        h, w = display.shape[2], display.shape[3]
        longest = torch.sym_max(h, w)
        # model.downscale_longest_side: floor(side * size / longest + 0.5), never upscaled
        small_h = (2 * h * self.size + longest) // (2 * longest)
        small_w = (2 * w * self.size + longest) // (2 * longest)
        small = nn.functional.adaptive_avg_pool2d(display, (small_h, small_w)) if longest > self.size else display
        curve = self.lin(small)
        linear = apply_curve(display, curve)
        hallucinated = self.hal(linear)
        return self.ref(hallucinated, linear, display).float() if self.refine else hallucinated.float()


def export_reconstruction(model: nn.Module, path: str | Path, quality: str = "standard") -> Path:
    import copy

    mode = resolve_quality(quality)
    model = copy.deepcopy(model).float().eval().cpu()
    for p in model.parameters():
        p.requires_grad_(False)
    graph = ReconstructionGraph(model, mode.dequantize, mode.refine).eval()
    return export_onnx(graph, 1, path, names=["image"], multiple=int(model.config.padding_multiple))


def self_check(path: Path, model: nn.Module, quality: str, width: int, height: int) -> float:
    """PU21-PSNR between ONNX Runtime on the exported file and the PyTorch pipeline."""
    import onnxruntime as ort

    from .evaluation.metrics import pu21_psnr
    from .export import check_image

    mode = resolve_quality(quality)
    rgb = check_image(width, height)
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    graph = ReconstructionGraph(model.float().eval(), mode.dequantize, mode.refine).eval()
    with torch.no_grad():
        want = graph(x)[0].numpy().transpose(1, 2, 0)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0][0].transpose(1, 2, 0)
    return pu21_psnr(got, want)


def export_onnx_cli(args) -> int:
    import sys

    from .weights import load_model

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        print(f"error: {out} exists (use --overwrite)", file=sys.stderr)
        return 1
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        print("error: export-onnx needs onnx and onnxscript: pip install onnx onnxscript onnxruntime "
              '(the [onnx] extra: pip install -e ".[onnx]" in a checkout)', file=sys.stderr)
        return 2
    try:
        w, h = (int(v) for v in args.check_size.lower().split("x"))
    except ValueError:
        print(f"error: --check-size takes WIDTHxHEIGHT, not {args.check_size!r}", file=sys.stderr)
        return 2
    multiple = 64
    if w % multiple or h % multiple or w < multiple or h < multiple:
        print(f"error: --check-size sides must be multiples of {multiple}, not {w}x{h}", file=sys.stderr)
        return 2
    model, info = load_model(args.weights)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        export_reconstruction(model, tmp, args.quality)
        agreement = self_check(tmp, model, args.quality, w, h)
        if agreement < 50.0:
            print(f"error: the exported graph disagrees with PyTorch ({agreement:.1f} dB PU21-PSNR); not written", file=sys.stderr)
            return 1
        tmp.replace(out)
    finally:
        if tmp.exists():
            tmp.unlink()
    meta = {"weights_sha256": info.sha256, "quality": resolve_quality(args.quality).name, "input": "image (1,3,H,W) display RGB [0,1], H,W multiples of 64",
            "output": "hdr (1,3,H,W) scene-linear Rec.709", "self_check_pu21_db": round(agreement, 1)}
    print(f"{out}: {json.dumps(meta)}")
    return 0
