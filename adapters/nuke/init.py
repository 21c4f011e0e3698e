"""Nuke init.py for the hdr_plugin toolset (runs in GUI, terminal and render sessions).

Add this folder to Nuke's plug-in path, e.g. in ~/.nuke/init.py:

    nuke.pluginAddPath("/path/to/hdr-plugin/adapters/nuke")

Nuke then runs this file and menu.py, and ``hdr_plugin_nuke`` (beside them) becomes
importable.  Nothing here imports torch: the engine runs in its own Python, named by
$HDR_PLUGIN_PYTHON or each node's 'engine Python' knob.  Render farms need no setup:
the HDRReconstruct group renders from its Read node like any other.
"""

import os

HDR_PLUGIN_NUKE_DIR = os.path.dirname(os.path.abspath(__file__))
