"""`worldgen pano`: text -> a new scene folder and its GLB."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..options import device_option, note, parse_size, quiet_option, seed_option
from ..timing import verbose_option, timed_command

REAL_WEIGHTS_HINT = ("no JointNet weights are installed, so this world comes from the offline procedural backend "
                     "(not diffusion). For real generation: worldgen models add rgbd_finetune_sd21b.zip --name rgbd "
                     "--base PATH/TO/stable-diffusion-2-1-base --default")


def _slug(prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())[:6]
    return "-".join(words) or "world"


def choose_backend(name: str, model: str | None):
    """Resolve --backend auto: JointNet when a model is given or installed, else procedural."""
    from ...registry import get_registry

    registry = get_registry()
    if name != "auto":
        return registry.backend(name), False
    if model:
        return registry.backend("jointnet"), False
    try:
        jointnet = registry.backend("jointnet")
        if jointnet.available is not None and jointnet.available():
            return jointnet, False
    except Exception:  # no jointnet plugin, or its weights check failed: fall back, and say so
        pass
    return registry.backend("procedural"), True


@click.command()
@click.argument("prompt")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="GLB to write; the scene folder NAME/ goes beside it. Default: a name from the prompt.")
@click.option("--backend", default="auto", show_default=True, help="auto, jointnet, procedural, or a plugin's name.")
@click.option("--model", default=None, help="JointNet checkpoint: a registered name or a folder (see `worldgen models`).")
@click.option("--base", default=None, help="Stable Diffusion 2.1-base folder (diffusers layout) for the checkpoint.")
@click.option("--extra-model", default=None,
              help="A second JointNet checkpoint with the same RGB branch (e.g. normals beside depth): "
                   "generate three layers at once.")
@click.option("--size", default="2048x512", show_default=True, help="Panorama WIDTHxHEIGHT in pixels (multiples of 8).")
@click.option("--span", type=float, default=360.0, show_default=True, help="Horizontal span in degrees, (0, 360].")
@click.option("--preset", type=click.Choice(["published", "fast"]), default="published", show_default=True,
              help="Sampling recipe: published (DDIM 50, the paper's windows) or fast (DPM-Solver++ 14 steps, "
                   "half the windows, guidance in the first half; about a tenth of the work).")
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the preset's, 50 or 14).")
@click.option("--guidance", type=float, default=7.5, show_default=True, help="Classifier-free guidance scale.")
@click.option("--negative", "negative_prompt", default="", help="Negative prompt.")
@click.option("--region", "regions", multiple=True, metavar="A:B[@E1:E2][*W]=PROMPT",
              help="A region prompt, repeatable: azimuth A..B degrees (optionally elevations E1..E2, weight W) "
                   "follows PROMPT, e.g. --region \"0:90=a lighthouse on a cliff\"; MASK.png=PROMPT for a mask.")
@click.option("--modality", default="depth", show_default=True, help="Modality to generate with the RGB (depth, normal, ...).")
@click.option("--scheduler", default=None, help="ddim, dpm++, unipc, euler (default: the preset's).")
@click.option("--dtype", default=None,
              help="float32, float16 or bfloat16 (default: bfloat16 on GPUs that have it, else float16; float32 on CPU).")
@click.option("--window-batch", type=int, default=None, help="Windows per model call (default: from free memory).")
@seed_option
@device_option
@quiet_option
@click.option("--server", default=None, metavar="URL",
              help="Have a running `worldgen serve` make the world (its model stays loaded between worlds), "
                   "e.g. http://127.0.0.1:8765; the scene and GLB are downloaded to -o as usual.")
@verbose_option
def pano(prompt, output, backend, model, base, extra_model, size, span, preset, steps, guidance, negative_prompt,
         modality, scheduler, dtype, window_batch, seed, device, quiet, regions=(), server=None, verbose=False):
    """Generate a seamless 360-degree RGB-D panorama world from PROMPT and export it as GLB."""
    click.get_current_context().with_resource(timed_command(verbose))  # --verbose: phase times on exit
    from ...backend import GenerateRequest
    from ...errors import UserInputError
    from ...export_files import export_to_file
    from ...output_paths import check_output_path
    from ...regions import parse_region
    from ...scene import MANIFEST_NAME
    from ...sampler.presets import resolve_sampling
    from ...phases import phase
    from ...world import generate_world
    from ..progress import progress_for

    width, height = parse_size(size)
    sampling = resolve_sampling(preset, steps, scheduler)
    request = GenerateRequest(prompt=prompt, width=width, height=height, span_deg=span, seed=seed, steps=sampling.steps,
                              guidance=guidance, negative_prompt=negative_prompt, modality=modality,
                              scheduler=scheduler, regions=[parse_region(text) for text in regions])
    output = output or Path(_slug(prompt) + ".glb")
    if output.suffix.lower() != ".glb":
        raise UserInputError(f"{output} must end in .glb; the scene folder is named after it")
    scene_dir = output.with_suffix("")
    if (scene_dir / MANIFEST_NAME).exists():
        raise UserInputError(f"{scene_dir} already holds a scene; pick another -o name, or refine it with "
                             f"`worldgen refine {scene_dir}`")
    check_output_path(output, what="-o")
    check_output_path(scene_dir, what="scene folder", folder=True)
    if server:  # the server loads and runs the model; the checks above are the same either way
        from .serve import pano_on_server

        return pano_on_server(server, prompt, size=size, span=span, preset=preset, steps=steps, guidance=guidance,
                              negative_prompt=negative_prompt, modality=modality, scheduler=scheduler, seed=seed,
                              regions=regions, output=output, scene_dir=scene_dir, quiet=quiet)

    spec, fell_back = choose_backend(backend, model)
    if fell_back:
        note(REAL_WEIGHTS_HINT, quiet)
    settings = sampling.settings_for(spec, {"model": model, "base": base, "extra_model": extra_model, "device": device,
                                            "dtype": dtype, "scheduler": scheduler, "window_batch": window_batch})
    progress = progress_for(quiet)
    with phase("load"):
        instance = spec.load(settings)
    scene = generate_world(spec.name, instance, request, scene_dir, seed,
                           export=lambda snapshot: export_to_file(snapshot, "glb", output), progress=progress)
    unmodelled = scene.record().get("geometry", {}).get("procedural", {}).get("note")
    if unmodelled:  # e.g. "procedural: 'cathedral' is not modelled; showing the nearest landscape"
        click.echo(unmodelled, err=True)
    note(f"wrote scene {scene.path}/ (version {scene.current}) and {output}", quiet)


commands = [pano]
