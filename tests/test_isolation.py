"""What module-scoped fixtures train is kept out of the real home, as every test's own runs are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_env(tmp_path_factory) -> dict[str, str]:
    return {k: os.environ.get(k, "") for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "AIOS_TUI_RUNS",
                                               "AIOS_TUI_TOKEN_CACHE")}


def test_a_module_fixture_sees_isolated_dirs(module_env, tmp_path_factory):
    base = tmp_path_factory.getbasetemp().resolve()
    for name, value in module_env.items():
        assert value and Path(value).resolve().is_relative_to(base), (name, value)
