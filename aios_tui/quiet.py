"""Library chatter a user can do nothing about, kept out of every command's output."""

from __future__ import annotations

import logging
import warnings


def quiet_library_warnings() -> None:
    """Imports nothing, so every command can afford it before its libraries load."""
    # bitsandbytes logs that optional CPU kernels are missing whenever peft imports it
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # peft still uses transformers' old names for gradient checkpointing
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing_enable.*deprecated.*",
                            category=FutureWarning)
