"""The plugin manager: built-ins first, then third-party plugins from entry points.

The manager is built lazily, once, on first use (never at import time, so hosts such as
Blender and GIMP pay nothing until a reconstruction runs).  Set
``HDR_PLUGIN_DISABLE_ENTRYPOINTS=1`` to skip third-party plugins (for debugging a broken
one).  A third-party plugin with a hook implementation that matches no specification
(usually a misspelling) is rejected with a warning that names it; :func:`rejected_plugins`
lists such plugins for ``hdr-plugin info``.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import warnings
from importlib.metadata import entry_points

import numpy as np
import pluggy

from . import hookspecs

log = logging.getLogger("hdr_plugin")

ENTRY_POINT_GROUP = "hdr_plugin"
DISABLE_ENV = "HDR_PLUGIN_DISABLE_ENTRYPOINTS"
DEFAULT_PLUGINS = ("hdr_plugin.default_plugins.inputs", "hdr_plugin.default_plugins.outputs")

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_rejected: dict[str, str] = {}


class PluginError(pluggy.PluginValidationError):
    """A plugin does not match the hook specifications."""


def make_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the specs and built-in plugins (and entry points if asked)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entrypoints and not os.environ.get(DISABLE_ENV):
        _load_entrypoints(pm)
    pm.check_pending()
    return pm


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            register_plugin(ep.load(), name=ep.name, pm=pm)
        except Exception as e:  # one broken plugin must not break the tool
            _rejected[ep.name] = f"{ep.value}: {e}"
            warnings.warn(f"hdr_plugin: plugin {ep.name!r} ({ep.value}) was not loaded: {e}", stacklevel=2)


def register_plugin(plugin: object, name: str | None = None, pm: pluggy.PluginManager | None = None) -> str:
    """Register ``plugin`` and validate it; raises :class:`PluginError` naming any unknown hook."""
    pm = pm or get_plugin_manager()
    try:
        registered = pm.register(plugin, name=name)
    except pluggy.PluginValidationError as e:  # an argument the specification does not have
        raise PluginError(plugin, f"{e} (hook arguments must match hdr_plugin.hookspecs; check the spelling)") from e
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        pm.unregister(plugin)
        raise PluginError(plugin, f"{e} (hook names must match hdr_plugin.hookspecs; check the spelling)") from e
    return registered


def unregister_plugin(plugin: object, pm: pluggy.PluginManager | None = None) -> None:
    (pm or get_plugin_manager()).unregister(plugin)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first call."""
    global _manager
    if _manager is None:
        with _lock:
            if _manager is None:
                _manager = make_plugin_manager()
    return _manager


def rejected_plugins() -> dict[str, str]:
    """Entry-point plugins that failed to load or validate, with the reason."""
    return dict(_rejected)


def plugin_names(pm: pluggy.PluginManager | None = None) -> list[str]:
    pm = pm or get_plugin_manager()
    return sorted(pm.get_name(p) or repr(p) for p in pm.get_plugins())


class LockedCurve:
    """Plugin that forces one inverse camera curve (a known camera, or one locked for a shot)."""

    def __init__(self, curve: np.ndarray):
        from .crf import N_SAMPLES

        curve = np.asarray(curve, dtype=np.float32)
        if curve.shape != (N_SAMPLES,) or not np.isfinite(curve).all():
            raise ValueError(f"a locked curve must be {N_SAMPLES} finite samples, got shape {curve.shape}")
        if np.diff(curve).min() < -1e-6 or abs(curve[0]) > 1e-6 or abs(curve[-1] - 1) > 1e-6:
            raise ValueError("a locked curve must be monotonic with curve[0] == 0 and curve[-1] == 1")
        self.curve = curve

    @hookimpl
    def hdr_inverse_crf(self, image, context):
        return self.curve
