"""Options and plumbing shared by the JointNet task commands (refine, outpaint, depth, paint, edit).

Not a command module (it defines no ``commands``). Top level imports only click, so ``--help``
stays instant; everything heavy loads inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..options import device_option, quiet_option, seed_option

SCHEDULER_HELP = "ddim (default, the published recipe), dpm++, unipc, euler, euler-a, ddpm, pndm."


def model_options(func):
    """--model/--base/--dtype/--scheduler/--window-batch/--device: which model, where, how."""
    for option in reversed([
        click.option("--model", default=None,
                     help="JointNet checkpoint: a folder or a registered name (default: the scene's model, "
                          "else the registered default; see `worldgen models`)."),
        click.option("--base", default=None, help="Stable Diffusion 2.1-base folder (diffusers layout)."),
        click.option("--dtype", default=None, help="float32, float16 or bfloat16 (default: float16 on GPU)."),
        click.option("--scheduler", default=None, help=SCHEDULER_HELP),
        click.option("--window-batch", type=click.IntRange(min=1), default=None,
                     help="Windows per model call (default: all of a step; halves itself if memory runs out)."),
        device_option,
    ]):
        func = option(func)
    return func


def sampling_options(default_guidance: float = 7.5, prompt_help: str = "Prompt (default: the scene's)."):
    """--prompt/--negative/--steps/--guidance/--method/--seed/--quiet."""

    def decorate(func):
        for option in reversed([
            click.option("--prompt", default=None, help=prompt_help),
            click.option("--negative", "negative_prompt", default="", help="Negative prompt."),
            click.option("--steps", type=int, default=50, show_default=True, help="Denoising steps."),
            click.option("--guidance", type=float, default=default_guidance, show_default=True,
                         help="Classifier-free guidance scale."),
            click.option("--method", type=click.Choice(["auto", "masked", "blend"]), default="auto",
                         show_default=True,
                         help="How known content conditions the model: masked = the inpainting checkpoint's "
                              "mask input (needs one), blend = re-noise and blend it every step, auto = masked "
                              "when the model has it."),
            click.option("--glb", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Export the result to this GLB (default: refresh SCENE.glb beside the scene "
                              "folder when it exists)."),
            seed_option,
            quiet_option,
        ]):
            func = option(func)
        return func

    return decorate


def task_fields(kwargs: dict) -> dict:
    """The request fields every task shares (``TaskOptions``), from the command's keyword arguments.
    Also checks --glb now, before any work: a bad output path should cost nothing."""
    if kwargs.get("glb") is not None:
        glb_target(Path("."), kwargs["glb"])
    return dict(prompt=kwargs.get("prompt") or "", negative_prompt=kwargs["negative_prompt"], steps=kwargs["steps"],
                guidance=kwargs["guidance"], seed=kwargs["seed"], scheduler=kwargs.get("scheduler"),
                method=kwargs["method"])


def load_backend(kwargs: dict, scene=None):
    """The JointNet backend for the command's model options. Without --model, a scene made by
    JointNet is refined with the model (and base) recorded in its manifest."""
    from ...registry import get_registry

    model, base = kwargs.get("model"), kwargs.get("base")
    extra_model = modality = None  # a scene made with two checkpoints (three modalities) keeps using both
    if model is None and scene is not None:
        record = scene.record().get("backend", {})
        if record.get("name") == "jointnet":
            recorded = record.get("settings", {})
            model = recorded.get("model")
            base = base or recorded.get("base")
            extra_model = recorded.get("extra_model")
            modality = recorded.get("modality")  # the branches a several-modality model ran (issue 23)
    settings = {"model": model, "base": base, "device": kwargs.get("device"), "dtype": kwargs.get("dtype"),
                "scheduler": kwargs.get("scheduler"), "window_batch": kwargs.get("window_batch"),
                "extra_model": extra_model, "modality": modality}
    return get_registry().backend("jointnet").load({k: v for k, v in settings.items() if v is not None})


def read_modality_file(path: Path, spec, width: Optional[int] = None, height: Optional[int] = None):
    """A modality layer from a file: ``.npy`` (H, W) or (H, W, C), or for single-channel modalities
    a PNG (16-bit read at full depth). With ``width``/``height`` it must match the image's size."""
    import numpy as np

    from ...errors import UserInputError
    from ...geometry import read_depth_png

    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserInputError(f"{path} is not a readable .npy array ({exc}); save it with numpy.save") from None
    elif suffix == ".png" and spec.channels == 1:
        array = read_depth_png(path, spec.value_range)
    else:
        raise UserInputError(f"{path}: give the {spec.name} layer as .npy"
                             + (" or a 16-bit PNG" if spec.channels == 1 else ""))
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] != spec.channels:
        raise UserInputError(f"{path} has shape {array.shape}; the {spec.name} layer needs (H, W, {spec.channels})")
    if width is not None and array.shape[:2] != (height, width):
        raise UserInputError(f"{path} is {array.shape[1]}x{array.shape[0]} but the image is {width}x{height}; "
                             f"give both layers at the same size")
    if not np.isfinite(array).all():
        raise UserInputError(f"{path} holds NaN or infinite values; fix or regenerate the layer")
    return array


def read_mask(path: Path):
    """A mask image as (H, W) bool: white (> 50%) = change, black = keep."""
    import numpy as np

    from ...image_files import open_image

    with open_image(path, str(path), "give a black-and-white PNG", kind="mask image") as img:
        grey = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return grey > 0.5


def new_scene_path(output: Optional[Path]) -> Path:
    from ...errors import UserInputError
    from ...output_paths import check_output_path
    from ...scene import MANIFEST_NAME

    if output is None:
        raise UserInputError("outside files make a new scene: pass -o NEW_SCENE_FOLDER")
    if (output / MANIFEST_NAME).exists():
        raise UserInputError(f"{output} already holds a scene; pick another -o folder, or pass the scene itself")
    return check_output_path(output, what="-o", folder=True)


def modality_spec(name: str):
    from ...registry import get_registry

    return get_registry().modality(name)


def record_params(**params) -> dict:
    """What the manifest keeps about a run (no arrays, no None noise)."""
    return {k: v for k, v in params.items() if v is not None and not hasattr(v, "shape")}


def progress_of(quiet: bool):
    from ..progress import progress_for

    return progress_for(quiet)


def write_result(scene_path: Path, scene, snapshot, backend, operation: str, request, seed: int, params: dict,
                 glb: Optional[Path] = None):
    """A new version of ``scene`` (never overwriting the one the task started from), or a new scene
    at ``scene_path``; then the GLB export (see ``glb_target``). Returns (scene, version)."""
    from ...export_files import export_to_file
    from ...scene import Scene

    common = dict(operation=operation, prompt=snapshot.prompt, seed=seed, backend=backend.name,
                  backend_settings=backend.settings(), modality=backend.modality,
                  negative_prompt=request.negative_prompt, params=params)
    if scene is not None:
        version = scene.add_version(snapshot, **common, parent=params.get("from_version"))
    else:
        scene = Scene.create(scene_path, snapshot, **common)
        version = scene.current
    target = glb_target(scene.path, glb)
    if target is not None:
        # The scene version is written first: an interrupted export never costs the new version.
        export_to_file(snapshot, "glb", target)
    return scene, version


def glb_target(scene_path: Path, glb: Optional[Path]) -> Optional[Path]:
    """Where a task's result is exported: the --glb path, else the NAME.glb that `worldgen pano`
    wrote beside the scene folder NAME/ (kept in step with the latest version), else nowhere."""
    if glb is not None:
        from ...output_paths import check_output_path

        return check_output_path(glb, what="--glb")
    sibling = scene_path.with_name(scene_path.name + ".glb")
    return sibling if sibling.is_file() else None

