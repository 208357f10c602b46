"""Where the hub finds the console scripts it starts (dagster, dagster-webserver, ...): beside
the running interpreter first, so `.venv/bin/hub ui` works without an activated venv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def console_script(name: str) -> str:
    """The path of an installed command: the one in this interpreter's bin/ (the project venv),
    else whatever PATH has; raises FileNotFoundError naming the package to install."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: run `make venv` (it comes with the hub's lock)")
    return found
