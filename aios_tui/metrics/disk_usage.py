"""How much disk a run directory takes: a full fine-tune's checkpoints are gigabytes each, and a
remote box's disk fills with runs nobody looks at."""

from __future__ import annotations

import os


def _on_disk(st: os.stat_result) -> int:
    # blocks, not st_size: what removing the file gives back (a sparse or preallocated file differs)
    blocks = getattr(st, "st_blocks", None)
    return blocks * 512 if blocks is not None else st.st_size


def dir_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk under ``path``, itself included, as ``du`` counts them: links are not
    followed, a file with several names counts once, and a part that cannot be read counts as
    what could be read of it (nothing, for a directory that cannot be listed)."""
    total, seen = 0, set()
    try:
        total += _on_disk(os.stat(path, follow_symlinks=False))
    except OSError:
        return 0
    stack = [os.fspath(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                    except OSError:  # gone since it was listed, or not ours to stat
                        continue
                    if st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                    total += _on_disk(st)
        except OSError:
            continue
    return total

