"""Datasets: reading plain-text and JSONL files, and the bundled sample (stdlib only).

Tokenising and packing live in ``aios_tui.engine.data``; this package only turns a file into
documents and says clearly what is wrong with a file that cannot be used.
"""

from __future__ import annotations

from pathlib import Path

from aios_tui.data.reader import Document, read_documents

SAMPLE_NAME = "sample.txt"


def sample_path() -> Path:
    """The bundled sample dataset used when no ``--dataset-file`` is given."""
    return Path(__file__).resolve().parent / SAMPLE_NAME


def dataset_path(dataset_file: str) -> Path:
    """The file a run reads: ``dataset_file`` or, when empty, the bundled sample."""
    return Path(dataset_file).expanduser() if dataset_file.strip() else sample_path()


__all__ = ["Document", "read_documents", "sample_path", "dataset_path", "SAMPLE_NAME"]
