"""A well-formed plugin: forces a gamma-2 inverse camera curve when the caller passes
``tiny_plugin=True`` and stamps the output metadata."""

import numpy as np

from hdr_plugin import hookimpl

CURVE = np.linspace(0.0, 1.0, 1024, dtype=np.float32) ** 2


@hookimpl
def hdr_inverse_crf(image, context):
    if context.options.get("tiny_plugin"):
        return CURVE
    return None


@hookimpl
def hdr_finalize_output(result, context):
    result.metadata["tinyPlugin"] = "loaded"
