"""Names of the training stages (kept free of torch so the CLI parser stays light)."""

STAGES = ("deq", "lin", "hal", "ref", "joint")
#: which networks each stage trains
STAGE_MODULES = {"deq": ("deq",), "lin": ("lin",), "hal": ("hal",), "ref": ("ref",), "joint": ("deq", "lin", "hal", "ref")}
DEFAULT_BATCH = {"deq": 8, "lin": 16, "hal": 8, "ref": 8, "joint": 4}
