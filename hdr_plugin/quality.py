"""Quality modes: which networks run by default and which only on request.

Each network has to earn its cost (PU21 gain per kMAC/px, measured by ``hdr-plugin eval``'s
ablations and recorded in the weights manifest under ``quality``):

* ``standard`` (the default): Linearization-Net, and Hallucination-Net on the tiles that
  hold over-exposed pixels.  With the shipped weights Dequantization-Net (77 kMAC/px) adds
  0.01 dB and Refinement-Net (77 kMAC/px) 0.001 dB, so they are left out.
* ``max``: all four networks, Dequantization- and Refinement-Net on every pixel.

A weights manifest may name its own default (``quality.default``), for weights whose
Dequantization- or Refinement-Net earns its place.
"""

from __future__ import annotations

from dataclasses import dataclass

QUALITIES = ("auto", "standard", "max")


@dataclass(frozen=True)
class QualityMode:
    """What runs: ``dequantize`` and ``refine`` switch those networks on (every pixel)."""

    name: str
    dequantize: bool
    refine: bool

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(
            n
            for n, on in (("dequantization", self.dequantize), ("linearization", True), ("hallucination", True), ("refinement", self.refine))
            if on
        )


MODES = {
    "standard": QualityMode("standard", dequantize=False, refine=False),
    "max": QualityMode("max", dequantize=True, refine=True),
}


def resolve_quality(quality: str | None, manifest: dict | None = None) -> QualityMode:
    """``auto`` -> the manifest's ``quality.default`` (else ``standard``); a name -> that mode."""
    name = (quality or "auto").strip().lower()
    if name not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; choose from {', '.join(QUALITIES)}")
    if name == "auto":
        recorded = ((manifest or {}).get("quality") or {}).get("default", "standard")
        name = recorded if recorded in MODES else "standard"
    return MODES[name]
