"""Which registered model a checkpoint folder is: scenes record a registered model by its name (not
this machine's path), with the weights' hashes the store keeps for it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def registered(model_dir) -> Optional[object]:
    """The store entry whose checkpoint is ``model_dir`` (or whose name it is), else None."""
    from .store import ModelStore

    if model_dir is None:
        return None
    store = ModelStore()
    by_name = store.get(str(model_dir)) if "/" not in str(model_dir) else None
    if by_name is not None:
        return by_name
    try:
        wanted = Path(model_dir).resolve()
    except OSError:
        return None
    return next((e for e in store.entries() if Path(e.path).resolve() == wanted), None)
