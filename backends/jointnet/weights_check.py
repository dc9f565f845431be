"""How big a model a config describes, checked against what its weights file holds, before anything
is built or materialised (issue 26, cases 8 and 10).

A config is cheap to write and costly to obey: ``layers_per_block: 3000`` made diffusers build
tens of thousands of modules (83 s, 1.6 GB, even on the meta device) before the weights were
found not to fit. And a weights file is cheap to make large: a pickled tensor expanded with stride
0 is a few bytes on disk and any number of elements once made contiguous. So the config's block
structure is compared with the tensor names in the weights first (names and shapes come from the
safetensors header or a memory-mapped pickle, never from materialised data), and every tensor's
shape is compared with the one the config's model has before a byte is converted or loaded.
"""

from __future__ import annotations

import re
from typing import Any

from worldgen.errors import ModelError

_RESNET = re.compile(r"(?:^|\.)(?:down_blocks|up_blocks)\.\d+\.resnets\.(\d+)\.")
_TRANSFORMER = re.compile(r"\.transformer_blocks\.(\d+)\.")


def _largest(value: Any) -> int:
    """The largest whole number in a config value (an int, or lists of them); 0 for anything else."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)):
        return max((_largest(v) for v in value), default=0)
    return 0


def _count(pattern: re.Pattern, names) -> int:
    """1 + the largest index ``pattern`` finds in the tensor names (0 when it finds none)."""
    found = [int(m.group(m.lastindex)) for name in names if (m := pattern.search(name))]
    return max(found, default=-1) + 1


def check_config_size(config: dict, names, what: str, weights) -> None:
    """Refuse a config that describes more blocks, resnets or transformer layers than ``weights``
    holds tensors for (``names``: its tensor names), before a model is built from it."""
    held = {
        "down_block_types": _count(re.compile(r"(?:^|\.)down_blocks\.(\d+)\."), names),
        "up_block_types": _count(re.compile(r"(?:^|\.)up_blocks\.(\d+)\."), names),
        # Up blocks of diffusers UNets and decoders have one resnet more than layers_per_block.
        "layers_per_block": _count(_RESNET, names),
        "transformer_layers_per_block": _count(_TRANSFORMER, names),
    }
    for key, weights_hold in held.items():
        value = config.get(key)
        wanted = len(value) if key.endswith("_types") and isinstance(value, (list, tuple)) else _largest(value)
        if wanted > max(weights_hold, 1 if key == "transformer_layers_per_block" else 0):
            raise ModelError(f"{what}: config.json asks for {key} {wanted}, but {weights} holds weights for "
                             f"{weights_hold}; the config and weights are of different models, re-download "
                             f"the checkpoint")


def check_shapes(expected: dict, held: dict, what: str, weights) -> None:
    """Every tensor the config's model has, with the same shape, and nothing else."""
    missing = sorted(set(expected) - set(held))
    unexpected = sorted(set(held) - set(expected))
    if missing or unexpected:
        raise ModelError(f"{what}: {weights} does not match its config.json (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); re-download the checkpoint")
    for name, shape in expected.items():
        if tuple(held[name]) != tuple(shape):
            raise ModelError(f"{what}: {weights} holds {name} with shape {list(held[name])}, but its "
                             f"config.json makes it {list(shape)}; re-download the checkpoint")
