"""Run configuration: dataclasses, validation, TOML and presets (stdlib + tomli-w only)."""

from aios_tui.config.schema import (
    SECTIONS, DataConfig, HRMConfig, MemoryConfig, ModelConfig, PeftConfig, RunConfig, TrainConfig,
    field_index,
)
from aios_tui.config.validate import ConfigError, build, validate
from aios_tui.config.toml_io import config_to_toml, load_config, read_config_file, read_toml, save_config
from aios_tui.config.presets import Preset, find_preset, list_presets, save_user_preset, delete_user_preset
from aios_tui.config.resolve import add_config_args, config_from_args, overrides_from_args, resolve

__all__ = [
    "SECTIONS", "DataConfig", "HRMConfig", "MemoryConfig", "ModelConfig", "PeftConfig", "RunConfig",
    "TrainConfig", "field_index", "ConfigError", "build", "validate", "config_to_toml", "load_config",
    "read_config_file", "read_toml", "save_config", "Preset", "find_preset", "list_presets", "save_user_preset",
    "delete_user_preset", "add_config_args", "config_from_args", "overrides_from_args", "resolve",
]
