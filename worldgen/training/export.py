"""The trained model in the official JointNet layout, ready for every worldgen command.

``OUT/model/`` gets ``unet/`` and ``jointnet/`` (config.json + safetensors, which the original
scripts load as well as worldgen does), ``worldgen.json`` naming the modality, and ``base/`` with
the base model's ``vae/ text_encoder/ tokenizer/ scheduler/`` (hard links where the file system
allows, copies otherwise). ``JointNetPipeline.from_pretrained(OUT/model)`` finds that ``base/`` by
itself, and the folder is a complete ``--base`` for stage 2 and the inpaint stage. ``training.json`` records how it was made. The folder is assembled under a hidden
name and swapped in, so a crash never leaves a half-written model in place of the last good one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..scene.atomic import atomic_write_text
from .config import TrainConfig
from .models import components_folder

TRAINING_INFO = "training.json"


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)
    return dst


def export_model(pair, export_dir: Path, cfg: TrainConfig, step: int) -> Path:
    from ..backends.jointnet import save_pair
    from ..backends.jointnet.branch_files import write_metadata
    from ..backends.jointnet.families import base_family, base_parts
    from .branch import save_with_new_branch

    export_dir = Path(export_dir)
    tmp = export_dir.parent / f".{export_dir.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if cfg.stage == "branch":  # the model it grew from, as it was, plus the trained branch
        save_with_new_branch(pair, cfg.base, tmp, cfg.modality)
    else:
        save_pair(pair, tmp)
        write_metadata(tmp, [cfg.modality], family=base_family(components_folder(cfg.base, cfg.components)) or "sd")
    source = components_folder(cfg.base, cfg.components)
    for name in base_parts(source):  # IF bases have no vae/
        shutil.copytree(source / name, tmp / "base" / name, copy_function=_link_or_copy)
    info = {"modality": cfg.modality, "stage": cfg.stage, "step": step, "base": str(cfg.base),
            "components": str(source), "config": cfg.to_json()}
    atomic_write_text(tmp / TRAINING_INFO, json.dumps(info, indent=2, sort_keys=True) + "\n")

    old = export_dir.parent / f".{export_dir.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if export_dir.exists():
        os.replace(export_dir, old)
    os.replace(tmp, export_dir)
    shutil.rmtree(old, ignore_errors=True)
    return export_dir
