"""Datasets: reading plain-text and JSONL files (local or ``hf://``), and the bundled sample.

Tokenising and packing live in ``aios_tui.engine.data``; this package only turns a file into
documents and says clearly what is wrong with a file that cannot be used.
"""

from __future__ import annotations

from pathlib import Path

from aios_tui.data import hub
from aios_tui.data.reader import Document, path_problem, read_documents
from aios_tui.errors import UserError

SAMPLE_NAME = "sample.txt"


def sample_path() -> Path:
    """The bundled sample dataset used when no ``--dataset-file`` is given."""
    return Path(__file__).resolve().parent / SAMPLE_NAME


def dataset_path(dataset_file: str) -> Path:
    """The file a run reads: ``dataset_file`` (an ``hf://`` one fetched into the Hugging Face
    cache) or, when empty, the bundled sample."""
    name = dataset_file.strip()
    if not name:
        return sample_path()
    if hub.is_hub(name):
        return hub.fetch(name)
    if name.startswith(("http://", "https://")):
        raise UserError(f"dataset {name}: web addresses are not read; download the file, or name "
                        f"a Hub file as {hub.FORM}")
    path = Path(name).expanduser()
    if not path.exists() and hub.looks_like_repo_id(name):
        raise UserError(hub.repo_id_problem(name))
    return path


__all__ = ["Document", "path_problem", "read_documents", "sample_path", "dataset_path", "SAMPLE_NAME"]
