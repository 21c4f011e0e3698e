"""Nuke menu.py for the hdr_plugin toolset (GUI sessions only).

Adds Nodes toolbar > HDR Plugin > HDR Reconstruct (the Python route: a Group with a
"Reconstruct HDR" button) and > Export TorchScript for CatFileCreator... (the Inference
route, NukeX needed to turn the .pt into a .cat).
"""

import nuke

import hdr_plugin_nuke  # noqa: F401  (imported so the menu commands below can use it)

toolbar = nuke.menu("Nodes")
hdr_menu = toolbar.addMenu("HDR Plugin")
hdr_menu.addCommand("HDR Reconstruct", "hdr_plugin_nuke.create_node()")
hdr_menu.addCommand("Export TorchScript for CatFileCreator...", "hdr_plugin_nuke.export_torchscript()")
