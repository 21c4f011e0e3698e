"""Scale-out backends for shots (``hdr-plugin convert SHOT --backend ray``).

Only Ray for now (the ``ray`` extra, ``pip install ray``); render-farm managers run frame chunks of the
local backend instead (``farm/openjd/``).  Imported lazily: ``import hdr_plugin`` never
imports Ray.
"""

from __future__ import annotations

from .ray_backend import RAY_HINT, run_ray

__all__ = ["run_ray", "RAY_HINT"]
