"""Strict JSON in and out for the files worldgen keeps (scene.json, models.json, job lists, status files).

Out: ``allow_nan=False``, so NaN or infinity can never reach a file (they are not JSON, and other
readers reject them). In: a document nested deeper than Python's parser can recurse raises
``ValueError`` like any other malformed JSON, not ``RecursionError``, so every reader's existing
"not valid JSON" handling covers it.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 200


class JSONDepthError(ValueError):
    """A JSON document nested too deeply to read."""


def loads(text: str | bytes) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONDepthError(f"nested more than {MAX_DEPTH} levels deep") from None
    if _deeper_than(value, MAX_DEPTH):
        raise JSONDepthError(f"nested more than {MAX_DEPTH} levels deep")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None (for records written before the checks)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value


def dumps(value: Any, **kwargs) -> str:
    """``json.dumps`` that refuses NaN and infinity (``ValueError``) instead of writing them."""
    return json.dumps(value, allow_nan=False, **kwargs)
