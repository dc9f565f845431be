"""Where worldgen keeps its files on this machine, in one place: the home folder, the model store
inside it, and the compiled-kernel cache next to the store.

Core modules read these paths from here, so none of them has to import a backend to find them.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """$WORLDGEN_HOME, else $XDG_DATA_HOME/worldgen, else ~/.local/share/worldgen."""
    if os.environ.get("WORLDGEN_HOME"):
        return Path(os.environ["WORLDGEN_HOME"]).expanduser()
    if os.environ.get("XDG_DATA_HOME"):
        return Path(os.environ["XDG_DATA_HOME"]).expanduser() / "worldgen"
    return Path.home() / ".local" / "share" / "worldgen"


def model_store_root() -> Path:
    """The JointNet model store (its index and the checkpoints it unpacked) lives in the home folder."""
    return home()


def compile_cache_root() -> Path:
    """torch.compile's on-disk caches, next to the model store."""
    return home() / "compile-cache"
