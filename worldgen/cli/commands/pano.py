"""`worldgen pano`: text -> a new scene folder and its GLB."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import device_option, note, parse_size, quiet_option, seed_option
from ..timing import verbose_option, timed_command


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
@click.option("--modality", default=None,
              help="Modalities to generate with the RGB, e.g. depth or depth,edges (default: all the model has).")
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
    from ...api import WorldPipeline
    from ...world.backends import REAL_WEIGHTS_HINT
    from ...world.outputs import new_world_paths
    from ..progress import progress_for

    width, height = parse_size(size)
    # Every value is checked before anything is loaded or sent (the same request either way).
    WorldPipeline.request(prompt, width=width, height=height, span=span, seed=seed, preset=preset, steps=steps,
                          guidance=guidance, negative_prompt=negative_prompt, modality=modality, scheduler=scheduler,
                          regions=regions)
    output, scene_dir = new_world_paths(output, prompt)
    if server:  # the server loads and runs the model; the checks above are the same either way
        from .serve import pano_on_server

        return pano_on_server(server, prompt, size=size, span=span, preset=preset, steps=steps, guidance=guidance,
                              negative_prompt=negative_prompt, modality=modality, scheduler=scheduler, seed=seed,
                              regions=regions, output=output, scene_dir=scene_dir, quiet=quiet)
    pipe = WorldPipeline.from_pretrained(model or "auto", backend=backend, base=base, extra_model=extra_model,
                                         device=device, dtype=dtype, scheduler=scheduler, window_batch=window_batch,
                                         modality=modality, resident=False)  # one world: no warm-up costs
    if pipe.fell_back:
        note(REAL_WEIGHTS_HINT, quiet)
    request = pipe.request(prompt, width=width, height=height, span=span, seed=seed, preset=preset, steps=steps,
                           guidance=guidance, negative_prompt=negative_prompt, modality=modality, scheduler=scheduler,
                           regions=regions)
    world = pipe.make(request, output, scene_dir, progress=progress_for(quiet))
    note(f"wrote scene {world.scene.path}/ (version {world.version}) and {output}", quiet)


commands = [pano]
