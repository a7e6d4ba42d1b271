"""Console test fixtures: a fixed GPU, a fixed clock and a fixed VRAM estimate, so every
screen renders the same on every run."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # console_fixtures, pilots, runfiles

from aios_tui.ui.app import AiosApp  # noqa: E402

from console_fixtures import NOW, fixed_estimator, fixed_gpu  # noqa: E402


@pytest.fixture(autouse=True)
def _utc():
    """Event times on screen are local times: pin the zone so pictures match everywhere."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture(autouse=True)
def _every_gpu_visible(monkeypatch):
    """The VRAM pane budgets against the GPU CUDA_VISIBLE_DEVICES picks: unset it, so a shell's
    setting never changes what the screens show."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def make_app(runs_root):
    def make(**kw) -> AiosApp:
        kw.setdefault("gpu", fixed_gpu())
        kw.setdefault("clock", lambda: NOW)
        kw.setdefault("poll_interval", 0.05)
        kw.setdefault("estimator", fixed_estimator)
        kw.setdefault("runs_root", runs_root)
        return AiosApp(**kw)
    return make
