"""Metrics test fixtures: hand-written run directories in the engine's format."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "ui"))  # runfiles.py
