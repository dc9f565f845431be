"""Does a checkpoint folder hold what its configs describe? Checked when `worldgen models add`
registers it and before conversion writes a copy, from tensor names and shapes only (the
safetensors header, or a memory-mapped pickle read with ``weights_only``): nothing is materialised,
so a hostile file costs what its header costs, not what its tensors claim."""

from __future__ import annotations

from pathlib import Path

from .loading import BRANCH_DIRS, CONFIG_NAME, normalize_branch_config, read_json, read_state_dict, weights_file
from .weights_check import check_config_size, check_shapes


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a weights file, without reading the tensors' data."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        from worldgen.errors import ModelError

        try:
            with safe_open(str(path), framework="pt") as handle:
                return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
        except Exception as exc:  # a damaged header surfaces as the library's own error types
            raise ModelError(f"cannot read weights {path} ({type(exc).__name__}); re-download the checkpoint") from None
    # Memory-mapped: an expanded (stride-0) tensor stays a view of its few stored bytes here.
    return {name: tuple(tensor.shape) for name, tensor in read_state_dict(path).items()}


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the JointNet branch ``config`` describes, built on the meta device."""
    import torch

    from .model import JointNetModel

    with torch.device("meta"):
        model = JointNetModel.from_config(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def check_branch(folder: Path) -> dict[str, tuple[int, ...]]:
    """The branch's tensor shapes, once its config's size and every shape are checked against them."""
    what = f"JointNet branch {folder.name}"
    config = normalize_branch_config(read_json(folder / CONFIG_NAME, what), str(folder / CONFIG_NAME))
    weights = weights_file(folder)
    held = weight_shapes(weights)
    check_config_size(config, held.keys(), what, weights)  # before building: a huge config is refused here
    check_shapes(expected_shapes(config), held, what, weights)
    return held


def check_checkpoint_weights(checkpoint: Path) -> None:
    for sub in BRANCH_DIRS:
        check_branch(Path(checkpoint) / sub)
