"""Optional OpenColorIO output: ``--ocio CONFIG --ocio-space NAME``.

Needs the ``opencolorio`` package (``pip install opencolorio``, the ``ocio`` extra).  ``CONFIG`` is a
config file or one of OCIO's built-in configs (``ocio://default``,
``ocio://cg-config-latest``, ``ocio://studio-config-latest``), which need no file.

How the pixels get there: the engine's scene-linear output (in the input's primaries) is
converted by matrix (Bradford) to ACES2065-1, and OCIO converts from the config's
``aces_interchange`` role (OCIO v2's role for exactly this hand-over) to ``NAME``.  A
config without that role is refused with a message naming the problem.

What the EXR is tagged with: ``hdrPluginColorSpace`` = the OCIO space's name, and
``chromaticities`` when the conversion is a pure 3x3 matrix whose target white is D65,
the ACES white or D50 (the primaries are then derived from the matrix); for non-linear
targets (e.g. a log or display-encoded space) no ``chromaticities`` are written, since
they would describe scene-linear RGB that the file does not hold.
"""

from __future__ import annotations

import numpy as np

from . import color as C

BUILTIN_HINT = "ocio://default"


class OCIOError(ValueError):
    """OpenColorIO is missing, or the config or colour space cannot be used."""


def _ocio():
    try:
        import PyOpenColorIO as OCIO
    except ImportError:
        raise OCIOError('--ocio needs the opencolorio package: pip install opencolorio (the [ocio] extra: pip install -e ".[ocio]" in a checkout)') from None
    return OCIO


def available() -> bool:
    """Whether the opencolorio package imports."""
    try:
        _ocio()
    except OCIOError:
        return False
    return True


def load_config(config: str):
    """An OCIO ``Config`` from a file path or a built-in ``ocio://`` URI."""
    OCIO = _ocio()
    try:
        return OCIO.Config.CreateFromFile(str(config))
    except Exception as e:  # OCIO raises its own Exception type
        raise OCIOError(f"OCIO config {config!r} cannot be loaded ({e}); built-in configs: {BUILTIN_HINT}") from None


def space_names(config) -> list[str]:
    return [cs.getName() for cs in config.getColorSpaces()]


def cpu_processor(config, src: str, dst: str):
    """The default CPU processor from colour space (or role) ``src`` to ``dst``."""
    try:
        return config.getProcessor(src, dst).getDefaultCPUProcessor()
    except Exception as e:
        raise OCIOError(f"OCIO cannot convert {src!r} to {dst!r}: {e}") from None


def apply_processor(cpu, rgb: np.ndarray) -> np.ndarray:
    """Run an OCIO CPU processor on an RGB (..., 3) array; returns a new float32 array."""
    out = np.ascontiguousarray(np.asarray(rgb, dtype=np.float32)).copy()
    flat = out.reshape(-1, 3)
    cpu.applyRGB(flat)
    return flat.reshape(out.shape)


def _matrix_of(cpu) -> np.ndarray | None:
    """The 3x3 matrix a processor applies, or None if it is not linear (tested on samples)."""
    basis = np.eye(3, dtype=np.float32)
    m = apply_processor(cpu, basis).T.astype(np.float64)  # columns: images of R, G, B
    probe = np.random.default_rng(7).uniform(0.0, 8.0, (64, 3)).astype(np.float32)
    got = apply_processor(cpu, probe)
    want = probe.astype(np.float64) @ m.T
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        return None
    return m


def _chromaticities_from(m_ap0: np.ndarray) -> tuple | None:
    """EXR chromaticities of a linear space given its RGB -> ACES2065-1 matrix, if its white is known."""
    to_xyz_aces = C.OUTPUT_SPACES["aces2065-1"].to_xyz() @ m_ap0  # RGB -> XYZ (ACES white)
    for white in (C.WHITE_D65, C.WHITE_ACES, C.WHITE_D50):
        native = to_xyz_aces if white == C.WHITE_ACES else C.bradford_matrix(C.WHITE_ACES, white) @ to_xyz_aces
        w = native @ np.ones(3)
        if abs(w[1] - 1.0) > 1e-3 or np.abs(w - C.xy_to_xyz(white)).max() > 1e-3:
            continue
        prim = [(native[0, i] / native[:, i].sum(), native[1, i] / native[:, i].sum()) for i in range(3)]
        (rx, ry), (gx, gy), (bx, by) = prim
        return tuple(float(round(v, 6)) for v in (rx, ry, gx, gy, bx, by, white[0], white[1]))
    return None


class OCIOOutput:
    """Converts scene-linear ACES2065-1 to an OCIO config's colour space ``space``."""

    def __init__(self, config: str, space: str):
        self.config_name = str(config)
        self.config = load_config(config)
        names = space_names(self.config)
        resolved = self.config.getColorSpace(space)
        if resolved is None:
            shown = ", ".join(names[:40]) + (" ..." if len(names) > 40 else "")
            raise OCIOError(f"OCIO config {config!r} has no colour space {space!r}; it has: {shown}")
        self.space = resolved.getName()
        source = self.config.getRoleColorSpace("aces_interchange")
        if not source:
            raise OCIOError(
                f"OCIO config {config!r} has no aces_interchange role, so the hand-over space is unknown; "
                "use an OCIO v2 config (e.g. ocio://default)"
            )
        self.source = source
        self.cpu = cpu_processor(self.config, source, self.space)
        self.matrix = _matrix_of(self.cpu)
        self.chromaticities = _chromaticities_from(np.linalg.inv(self.matrix)) if self.matrix is not None else None

    def apply(self, aces2065: np.ndarray) -> np.ndarray:
        return apply_processor(self.cpu, aces2065)

    def attributes(self) -> dict:
        attrs = {"hdrPluginColorSpace": self.space, "hdrPluginOcioConfig": self.config_name}
        if self.chromaticities is not None:
            attrs["chromaticities"] = self.chromaticities
        return attrs
