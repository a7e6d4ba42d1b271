"""Library chatter a user can do nothing about, kept out of every command's output."""

from __future__ import annotations

import logging
import warnings


def quiet_library_warnings() -> None:
    """Imports nothing, so every command can afford it before its libraries load."""
    # bitsandbytes logs that optional CPU kernels are missing whenever peft imports it
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # torchao, which transformers imports whenever it is installed, logs the CUDA extensions it
    # cannot load, and registers enums in a way this torch calls deprecated
    logging.getLogger("torchao").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").addFilter(_not_the_enum_note)
    # peft still uses transformers' old names for gradient checkpointing
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing_enable.*deprecated.*",
                            category=FutureWarning)
    # AdaLoRA's saved rank pattern names lora_E tensors, which peft's generic check mistakes
    # for unmatched module names when an adapter is loaded; the pattern applies all the same
    warnings.filterwarnings("ignore", message=".*rank_pattern keys did not match.*")
    # A trained lm_head on a tied model (modules_to_save) is trained apart from the embeddings on
    # purpose; export says in its own words that the merged model unties them
    warnings.filterwarnings("ignore", message=".*tied layer is part of the adapter.*ensure_weight_tying.*")
    warnings.filterwarnings("ignore", message=".*embeddings are no longer tied after merging.*")
    # An adapter on lm_head (a target the user named) is saved with the embedding layers it
    # needs; peft says so at every checkpoint, which the user asked for and can do nothing about
    warnings.filterwarnings("ignore", message=".*Setting `save_embedding_layers` to `True`.*")


def _not_the_enum_note(record: logging.LogRecord) -> bool:
    return "is an Enum subclass" not in str(record.msg)
