"""What a checkpoint says about itself, and the files of its added modality branches.

``CHECKPOINT/worldgen.json`` (written by ``models tiny``, ``train`` and the exporters) records
``modality`` (the first branch's, as before), ``modalities`` (every branch, in order) and ``family``
(``"sd"``: latent space with a VAE; ``"if"``: DeepFloyd-IF pixel space). Official checkpoints have no
such file: they carry depth, and their family is read from the RGB branch's config (IF's stage-I UNet
takes 3 pixel channels and predicts 6, noise and variance; SD's takes 4 latent channels).

An added branch lives beside the official two: ``CHECKPOINT/jointnet_<modality>/`` holds the branch
(``config.json`` + ``diffusion_pytorch_model.safetensors``, as ``jointnet/``) and ``rgb_link.safetensors``,
its RGB-side layers (``branches.RGBLink``). The official loaders ignore these folders, so a checkpoint
with added branches still loads as the pair it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from worldgen.scene.atomic import atomic_write_bytes, atomic_write_text
from worldgen.errors import ModelError

from .loading import (CONFIG_NAME, DEFAULT_MODALITY, SAFETENSORS_NAME, WORLDGEN_META, branch_config_json,
                      load_branch, read_json, read_state_dict, save_pair)
from .store import checkpoint_modality

FAMILIES = ("sd", "if")
LINK_NAME = "rgb_link.safetensors"


def branch_dir(checkpoint_dir: Path, modality: str) -> Path:
    return Path(checkpoint_dir) / f"jointnet_{modality}"


def read_metadata(checkpoint_dir: Path) -> dict:
    path = Path(checkpoint_dir) / WORLDGEN_META
    meta = read_json(path, "checkpoint metadata") if path.exists() else {}
    if not isinstance(meta, dict):
        raise ModelError(f"{path} is not a JSON object; fix or delete the file")
    return meta


def checkpoint_modalities(checkpoint_dir: Path) -> list[str]:
    """Every modality the checkpoint generates, the official branch's first."""
    first = checkpoint_modality(checkpoint_dir)  # a registered --modality renames the first branch
    listed = read_metadata(checkpoint_dir).get("modalities") or [first]
    if not isinstance(listed, list) or not all(isinstance(n, str) and n.strip() for n in listed):
        raise ModelError(f"{Path(checkpoint_dir) / WORLDGEN_META}: 'modalities' must list names like "
                         f"[\"depth\", \"edges\"]; fix or delete the file")
    listed = [first, *listed[1:]]
    if len(set(listed)) != len(listed):
        raise ModelError(f"{checkpoint_dir}: modality {first!r} is named twice; register it with another --modality")
    for name in listed[1:]:
        if not (branch_dir(checkpoint_dir, name) / CONFIG_NAME).is_file():
            raise ModelError(f"{checkpoint_dir} lists modality {name!r} but has no jointnet_{name}/; "
                             f"re-export the model")
    return [n.strip() for n in listed]


def checkpoint_family(checkpoint_dir: Path) -> str:
    """``"sd"`` or ``"if"``: worldgen.json's ``family``, else from the RGB branch's channels."""
    family = read_metadata(checkpoint_dir).get("family")
    if family is not None:
        if family not in FAMILIES:
            raise ModelError(f"{Path(checkpoint_dir) / WORLDGEN_META}: family {family!r} is not one of "
                             f"{', '.join(FAMILIES)}; fix or delete the file")
        return family
    config = read_json(Path(checkpoint_dir) / "unet" / CONFIG_NAME, "JointNet branch unet")
    pixel = config.get("in_channels") == 3 and config.get("out_channels") == 6
    return "if" if pixel else "sd"


def write_metadata(checkpoint_dir: Path, modalities: list[str], family: Optional[str] = None) -> None:
    """Record what the checkpoint is; keys the writer does not know are kept."""
    meta = read_metadata(checkpoint_dir)
    meta["modality"] = modalities[0]
    if len(modalities) > 1:
        meta["modalities"] = list(modalities)
    else:
        meta.pop("modalities", None)
    if family is not None:
        meta["family"] = family
    atomic_write_text(Path(checkpoint_dir) / WORLDGEN_META, json.dumps(meta, indent=2, sort_keys=True) + "\n")


def save_branches(model, checkpoint_dir: Path, modalities: list[str], family: Optional[str] = None) -> Path:
    """Write a ``JointNetBranches`` (first branch official) as the pair plus one folder per added branch."""
    from safetensors.torch import save as safetensors_bytes

    if len(modalities) != model.count or len(set(modalities)) != len(modalities):
        raise ValueError(f"name each of the {model.count} branches once: {modalities}")
    if not model.own_link:
        raise ValueError("the first branch must be the official one (using the RGB branch's exchange layers)")
    save_pair(model, checkpoint_dir)
    for k, name in enumerate(modalities[1:], start=1):
        folder = branch_dir(checkpoint_dir, name)
        for module, file in ((model.branches[k], SAFETENSORS_NAME), (model.link(k), LINK_NAME)):
            state = {key: v.detach().contiguous().cpu() for key, v in module.state_dict().items()}
            atomic_write_bytes(folder / file, safetensors_bytes(state, metadata={"format": "pt"}))
        atomic_write_text(folder / CONFIG_NAME, branch_config_json(model.branches[k]))
    write_metadata(checkpoint_dir, modalities, family)
    return Path(checkpoint_dir)


def attach_branches(pair, checkpoint_dir: Path, dtype=None, device=None):
    """``pair`` (the checkpoint's unet/ + jointnet/, loaded) with every added branch of the checkpoint."""
    import torch

    from .branches import JointNetBranches, RGBLink

    model = JointNetBranches.from_pair(pair)
    branches, links = [model.jointnet], [None]
    for name in checkpoint_modalities(checkpoint_dir)[1:]:
        folder = branch_dir(checkpoint_dir, name)
        branch = load_branch(folder, dtype, device)
        link = RGBLink(model.unet, branch)
        state = read_state_dict(folder / LINK_NAME, device)
        try:
            link.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(f"{folder / LINK_NAME} does not fit the RGB branch ({str(exc).splitlines()[0]}); "
                             f"re-export the model") from None
        param = next(model.unet.parameters())
        branches.append(branch)
        links.append(torch.nn.Module.to(link, device=param.device, dtype=param.dtype))
    try:
        return JointNetBranches(model.unet, branches, links).eval()
    except ValueError as exc:
        raise ModelError(f"{checkpoint_dir}: {exc}; re-export the model") from None


def modality_indices(available: list[str], wanted: Optional[str]) -> list[int]:
    """Indices of ``wanted`` ("depth,edges"; None: all) in ``available``, or a one-line error."""
    from worldgen.errors import UserInputError

    if not wanted:
        return list(range(len(available)))
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    missing = [n for n in names if n not in available]
    if missing or not names or len(set(names)) != len(names):
        raise UserInputError(f"this model generates {', '.join(available)}; pass --modality with some of them "
                             f"(e.g. --modality {','.join(available)}), each once"
                             + (f", not {missing[0]!r}" if missing else ""))
    return [available.index(n) for n in names]


__all__ = ["DEFAULT_MODALITY", "FAMILIES", "attach_branches", "checkpoint_family", "checkpoint_modalities",
           "modality_indices", "save_branches", "write_metadata"]
