"""Read and write JointNet checkpoints in the official layout, on current diffusers.

Layout: ``CHECKPOINT/unet/`` (RGB branch) and ``CHECKPOINT/jointnet/`` (modality branch), each with
``config.json`` and ``diffusion_pytorch_model.safetensors`` or ``.bin``. Optional
``CHECKPOINT/worldgen.json`` records the modality (``{"modality": "depth"}``); official checkpoints
have none and carry depth.

Pickled ``.bin`` weights are read only through ``torch.load(weights_only=True)``; writing always
produces safetensors.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
from pathlib import Path
from typing import Any, Optional

from worldgen.scene.atomic import atomic_write_bytes, atomic_write_text
from worldgen.errors import ModelError

from .weights_check import check_config_size

BRANCH_DIRS = ("unet", "jointnet")  # RGB branch, modality branch
CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "diffusion_pytorch_model.safetensors"
PICKLE_NAME = "diffusion_pytorch_model.bin"
WORLDGEN_META = "worldgen.json"
DEFAULT_MODALITY = "depth"
MAX_CONFIG_BYTES = 1 << 20

# ---- diffusers 0.19.3 config compatibility ---------------------------------------------------------
# The release wrote its branch configs with diffusers 0.19.3. Comparing that key set with the
# UNet2DConditionModel of current diffusers (0.42.1):
# * renamed keys: none. (The 0.19-era misnomer stays as it was: ``attention_head_dim`` holds the
#   number of heads when ``num_attention_heads`` is null, and both versions reject a non-null
#   ``num_attention_heads``.)
CONFIG_019_RENAMED: dict[str, str] = {}
# * removed keys: none; every 0.19.3 key is still accepted.
CONFIG_019_REMOVED: tuple[str, ...] = ()
# * keys added after 0.19.3, with the value that reproduces 0.19.3 behaviour (0.19 had no dropout,
#   no GLIGEN attention type, and mirrored transformer depth in the up path):
CONFIG_ADDED_SINCE_019: dict[str, Any] = {
    "dropout": 0.0,
    "attention_type": "default",
    "reverse_transformer_layers_per_block": None,
}
# * metadata written by ConfigMixin, not constructor arguments:
CONFIG_METADATA = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values")
# * ``_class_name`` values a branch config may carry (a plain UNet config is accepted too, e.g. a base unet).
BRANCH_CLASS_NAMES = ("JointNetModel", "UNet2DConditionModel")


def _accepted_keys() -> set[str]:
    from .model import JointNetModel

    return {name for name in inspect.signature(JointNetModel.__init__).parameters if name != "self"}


def normalize_branch_config(raw: dict, source: str = "config.json") -> dict:
    """Map a branch config (0.19.3 keys or current ones) to keyword arguments of JointNetModel.

    Unknown keys left at a neutral value (null/false) are dropped; any other unknown key means the
    config needs a newer diffusers, and is refused rather than silently ignored.
    """
    if not isinstance(raw, dict):
        raise ModelError(f"{source} is not a JSON object; re-download the checkpoint")
    class_name = raw.get("_class_name", "JointNetModel")
    if class_name not in BRANCH_CLASS_NAMES:
        raise ModelError(f"{source} describes a {class_name!r}, not a JointNet branch; point at the folder "
                         f"that holds unet/ and jointnet/")
    accepted = _accepted_keys()
    config: dict[str, Any] = {}
    for key, value in raw.items():
        if key in CONFIG_METADATA or key in CONFIG_019_REMOVED:
            continue
        key = CONFIG_019_RENAMED.get(key, key)
        if key in accepted:
            config[key] = value
        elif value not in (None, False):
            raise ModelError(f"{source} sets {key}={value!r}, which this diffusers does not know; "
                             f"upgrade diffusers (`pip install -U diffusers`)")
    for key, value in CONFIG_ADDED_SINCE_019.items():
        if key in accepted:
            config.setdefault(key, value)
    if config.get("num_attention_heads") is not None:
        raise ModelError(f"{source} sets num_attention_heads, which diffusers UNets reject; "
                         f"put the head count in attention_head_dim and set num_attention_heads to null")
    return config


def branch_config_json(branch) -> str:
    """The config.json text for a branch: constructor keys + ``_class_name``/``_diffusers_version``."""
    import diffusers

    config = {k: v for k, v in dict(branch.config).items() if not k.startswith("_")}
    config = {"_class_name": "JointNetModel", "_diffusers_version": diffusers.__version__, **config}
    return json.dumps(config, indent=2, sort_keys=True, default=list) + "\n"


# ---- weights -----------------------------------------------------------------------------------------

def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelError(f"{what}: {path} is missing; re-download or re-unpack the checkpoint")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelError(f"{what}: {path} is implausibly large for a config; check the file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{what}: {path} is not valid JSON ({exc}); re-download the checkpoint") from None


def weights_file(folder: Path) -> Optional[Path]:
    """The weights file of a diffusers model folder: safetensors preferred, else the pickle."""
    for name in (SAFETENSORS_NAME, PICKLE_NAME):
        if (folder / name).is_file():
            return folder / name
    return None


def read_state_dict(path: Path, device=None) -> dict:
    """Tensors from ``.safetensors``, or from a pickle through ``torch.load(weights_only=True)`` only,
    placed on ``device`` (None: the CPU). safetensors reads each tensor straight onto the device;
    the pickle is memory-mapped, so neither keeps a second host copy of the weights."""
    import torch

    where = str(device) if device is not None else "cpu"
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device=where)
        # weights_only refuses any pickle that would construct arbitrary objects.
        state = _torch_load(torch, path, where)
    except pickle.UnpicklingError as exc:
        if not _refused_by_weights_only(exc):  # damaged, not hostile
            raise ModelError(f"cannot read weights {path} (the pickle is damaged); re-download the checkpoint") from None
        # torch's message advises turning weights_only off: never repeated.
        raise ModelError(f"{path} was refused: it is a pickle that holds more than plain tensors, and worldgen "
                         f"never unpickles anything else; re-download the checkpoint, ideally as .safetensors") from None
    except Exception as exc:  # corrupt or hostile files surface as many exception types
        raise ModelError(f"cannot read weights {path} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                         f"re-download the checkpoint") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a plain state dict of tensors; re-download the checkpoint")
    return state


def _refused_by_weights_only(exc: BaseException) -> bool:
    """torch's weights_only unpickler refused a global (a function or class the pickle would call), as
    opposed to bytes that are no pickle at all ("Unsupported operand")."""
    return "global" in str(exc).lower()


def _torch_load(torch, path: Path, where: str):
    """A pickle memory-mapped (zip-format files, what torch.save writes since 1.6), else read whole."""
    import zipfile

    if zipfile.is_zipfile(path):
        return torch.load(str(path), map_location=where, weights_only=True, mmap=True)
    return torch.load(str(path), map_location=where, weights_only=True)


def load_model_folder(cls, folder: Path, what: str, dtype=None, normalize=None, device=None):
    """A diffusers ModelMixin from ``folder`` (config + weights) without diffusers' own file logic,
    its weights read straight onto ``device`` and cast there (no random init, no host float32 copy)."""
    import torch

    folder = Path(folder)
    raw = read_json(folder / CONFIG_NAME, what)
    config = normalize(raw, str(folder / CONFIG_NAME)) if normalize else raw
    weights = weights_file(folder)
    if weights is None:
        raise ModelError(f"{what}: no {SAFETENSORS_NAME} or {PICKLE_NAME} in {folder}; re-download the checkpoint")
    state = read_state_dict(weights, device)
    # A config asking for far more layers than the weights hold is refused before diffusers builds it
    # (3000 layers per block took 83 s and 1.6 GB before the mismatch showed).
    check_config_size(config, state.keys(), what, weights)
    # Built on the meta device and given the loaded tensors (assign=True): no time is spent on a
    # random initialisation that the weights would overwrite (seconds for an SD-sized UNet).
    with torch.device("meta"):
        model = cls.from_config(config)
    try:
        result = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:  # size mismatches: weights of another architecture than config.json
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc)[:200])
        raise ModelError(f"{what}: weights in {weights} do not fit its config.json ({first}); "
                         f"re-download the checkpoint") from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(f"{what}: weights in {weights} do not match its config.json "
                         f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}); "
                         f"re-download the checkpoint")
    unset = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if unset:  # a buffer the state dict does not carry; never expected for diffusers models
        raise ModelError(f"{what}: {unset[0]} is not in {weights}; re-download the checkpoint")
    if dtype is not None and dtype != model.dtype:
        # nn.Module.to: ModelMixin.to logs a float32-modules notice even when there are none.
        model = torch.nn.Module.to(model, dtype=dtype)
    return model.eval()


def load_branch(folder: Path, dtype=None, device=None):
    from .model import JointNetModel

    return load_model_folder(JointNetModel, folder, f"JointNet branch {Path(folder).name}", dtype,
                             normalize_branch_config, device)


# ---- checkpoints ---------------------------------------------------------------------------------

def is_checkpoint_dir(path: Path) -> bool:
    path = Path(path)
    return all((path / sub / CONFIG_NAME).is_file() for sub in BRANCH_DIRS)


def check_checkpoint_dir(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path} is not a folder; pass a JointNet checkpoint folder (with unet/ and jointnet/)")
    for sub in BRANCH_DIRS:
        if not (path / sub / CONFIG_NAME).is_file():
            raise ModelError(f"{path} is not a JointNet checkpoint: {sub}/{CONFIG_NAME} is missing "
                             f"(expected unet/ and jointnet/ subfolders)")
        if weights_file(path / sub) is None:
            raise ModelError(f"{path / sub} has no {SAFETENSORS_NAME} or {PICKLE_NAME}; re-download the checkpoint")
    return path


def load_pair(checkpoint_dir: Path, dtype=None, device=None):
    """The JointNetPair of a checkpoint folder."""
    from .pair import JointNetPair

    checkpoint_dir = check_checkpoint_dir(Path(checkpoint_dir))
    unet = load_branch(checkpoint_dir / "unet", dtype, device)
    jointnet = load_branch(checkpoint_dir / "jointnet", dtype, device)
    try:
        pair = JointNetPair(unet, jointnet)
    except ValueError as exc:
        raise ModelError(f"{checkpoint_dir}: {exc}; the two branch configs must come from one checkpoint") from None
    pair.eval()  # inference mode, like every loaded model; training calls .train()
    return pair.to(device) if device is not None else pair


def save_pair(pair, checkpoint_dir: Path, modality: Optional[str] = None) -> Path:
    """Write ``pair`` in the official layout (safetensors), each file atomically.

    A stale ``.bin`` next to the new safetensors is removed so the folder has one set of weights.
    """
    from safetensors.torch import save as safetensors_bytes

    checkpoint_dir = Path(checkpoint_dir)
    for sub, branch in zip(BRANCH_DIRS, (pair.unet, pair.jointnet)):
        folder = checkpoint_dir / sub
        state = {k: v.detach().contiguous().cpu() for k, v in branch.state_dict().items()}
        # Weights first, config last: a config.json never points at weights that are not there yet.
        atomic_write_bytes(folder / SAFETENSORS_NAME, safetensors_bytes(state, metadata={"format": "pt"}))
        atomic_write_text(folder / CONFIG_NAME, branch_config_json(branch))
        stale = folder / PICKLE_NAME
        if stale.exists():
            os.unlink(stale)
    if modality is not None:
        write_checkpoint_modality(checkpoint_dir, modality)
    return checkpoint_dir


# ---- which modality a checkpoint carries ---------------------------------------------------------------

def write_checkpoint_modality(checkpoint_dir: Path, modality: str) -> None:
    meta_path = Path(checkpoint_dir) / WORLDGEN_META
    meta = read_json(meta_path, "checkpoint metadata") if meta_path.exists() else {}
    meta["modality"] = modality
    atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")


# ---- base model (vae, text encoder, tokenizer, scheduler) ------------------------------------------

TEXT_ENCODER_CLASSES = ("CLIPTextModel", "CLIPTextModelWithProjection", "T5EncoderModel")
BASE_PARTS_SD = ("vae", "text_encoder", "tokenizer", "scheduler")
BASE_PARTS_PIXEL = ("text_encoder", "tokenizer", "scheduler")


def is_base_dir(path: Path, parts=None) -> bool:
    """A base folder with ``parts`` (None: those of its family, see families.py: SD or IF)."""
    from .families import base_parts

    path = Path(path)
    return path.is_dir() and all((path / part).is_dir() for part in (parts or base_parts(path)))


def check_base_dir(path: Path, parts=None) -> Path:
    from .families import BASE_HINT, PARTS, base_family, base_parts

    path = Path(path)
    missing = [part for part in (parts or base_parts(path)) if not (path / part).is_dir()]
    if not path.is_dir() or missing:
        wanted = next((f for f, p in PARTS.items() if parts and tuple(parts) == p), None) or base_family(path) or "sd"
        raise ModelError(f"{path} is not a base model folder (missing {', '.join(missing) or 'the folder'}); "
                         f"pass --base with {BASE_HINT[wanted]}")
    return path


class quiet_loading:
    """Silence transformers' weight-loading progress bar: library code does not print."""

    def __enter__(self):
        from transformers.utils import logging as tlog

        self._was_enabled = tlog.is_progress_bar_enabled()
        tlog.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as tlog

        if self._was_enabled:
            tlog.enable_progress_bar()
        return False


def load_text_encoder(folder: Path, dtype=None, device=None):
    """A text encoder from a transformers folder; only known classes, never remote code."""
    import transformers

    config = read_json(Path(folder) / "config.json", "text encoder")
    arch = (config.get("architectures") or [None])[0]
    if arch not in TEXT_ENCODER_CLASSES:
        raise ModelError(f"{folder}: text encoder {arch!r} is not supported; expected one of "
                         f"{', '.join(TEXT_ENCODER_CLASSES)}")
    kwargs = {"local_files_only": True, "trust_remote_code": False}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device is not None and str(device) != "cpu":
        kwargs["device_map"] = str(device)  # weights go straight to the GPU, not through host memory
    with quiet_loading():
        try:
            return getattr(transformers, arch).from_pretrained(str(folder), **kwargs).eval()
        except pickle.UnpicklingError as exc:
            # torch's own message advises turning weights_only off: never repeat that advice.
            problem = ("was refused: it is a pickle that holds more than plain tensors, and worldgen never unpickles "
                       "anything else" if _refused_by_weights_only(exc) else "is damaged")
            raise ModelError(f"{_pickled_weights(Path(folder))} {problem}; use a model.safetensors from a trusted "
                             f"source instead") from None
        except OSError as exc:
            raise ModelError(f"{folder}: cannot load the text encoder ({' '.join(str(exc).split())[:200]}); "
                             f"re-download the base model") from None


def _pickled_weights(folder: Path) -> Path:
    """The pickled weights file in a transformers folder (the one an UnpicklingError came from)."""
    found = sorted(p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    return found[0] if found else folder


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: cannot load the tokenizer ({' '.join(str(exc).split())[:200]}); "
                         f"re-download the base model") from None


def load_base_scheduler(folder: Path, name: Optional[str] = None):
    from .schedulers import make_scheduler

    return make_scheduler(name, read_json(Path(folder) / "scheduler_config.json", "scheduler"))


def load_sd_base(base_dir: Path, dtype=None, scheduler: Optional[str] = None, device=None) -> dict:
    """vae, text_encoder, tokenizer and scheduler of a Stable-Diffusion-style base folder (on ``device``)."""
    from diffusers import AutoencoderKL

    from worldgen.phases import phase

    base_dir = check_base_dir(Path(base_dir), BASE_PARTS_SD)
    with phase("load vae"):
        vae = load_model_folder(AutoencoderKL, base_dir / "vae", "base vae", dtype, device=device)
    with phase("load text encoder"):
        text_encoder = load_text_encoder(base_dir / "text_encoder", dtype, device)
        tokenizer = load_tokenizer(base_dir / "tokenizer")
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler": load_base_scheduler(base_dir / "scheduler", scheduler)}
