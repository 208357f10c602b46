"""Watched folders for sensors: the size of each file, so a new or grown file is noticed.
What is read is decided by the hub's own cursor, committed with the rows."""

from pathlib import Path


def file_sizes(folder: str, pattern: str = "*") -> dict[str, int]:
    """Size of each file matching `pattern` in the folder; empty when unset or missing."""
    path = Path(folder)
    if not folder or not path.is_dir():
        return {}
    return {p.name: p.stat().st_size for p in sorted(path.glob(pattern)) if p.is_file()}
