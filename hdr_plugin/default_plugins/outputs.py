"""Built-in output finalisation: the exposure adjustment and provenance metadata."""

from __future__ import annotations

from ..plugins import hookimpl


@hookimpl(trylast=True)
def hdr_finalize_output(result, context):
    exposure = float(context.options.get("exposure", 0.0) or 0.0)
    if exposure:
        result.image *= 2.0**exposure
    result.metadata.setdefault("hdrPluginExposureEV", f"{exposure:g}")
