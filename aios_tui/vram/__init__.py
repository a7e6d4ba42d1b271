"""The VRAM budget calculator: pure arithmetic over a model's shape (stdlib only, no torch).

``estimate_for_run(cfg)`` gives the peak PyTorch will allocate in a training step, the device
memory NVML will show, a breakdown, whether it fits a GPU and changes that would make it fit.
"""

from aios_tui.vram.estimate import KEYS, LABELS, Estimate, Suggestion, compute, estimate
from aios_tui.vram.gpus import GPUS, GPU, find_gpu, parse_size
from aios_tui.vram.params import count_params
from aios_tui.vram.run import estimate_for_run, hrm_model_config, setup_from_config, shape_for_run
from aios_tui.vram.setup import Setup
from aios_tui.vram.shape import ModelShape, shape_from_hf_config, shape_from_hrm_config, shape_from_model_arg

__all__ = [
    "KEYS", "LABELS", "Estimate", "Suggestion", "compute", "estimate", "GPUS", "GPU", "find_gpu",
    "parse_size", "count_params", "estimate_for_run", "hrm_model_config",
    "setup_from_config", "shape_for_run", "Setup", "ModelShape", "shape_from_hf_config",
    "shape_from_hrm_config", "shape_from_model_arg",
]
