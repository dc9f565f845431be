"""`worldgen pano`: text -> a new scene folder and its GLB."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import (backend_option, base_option, device_option, dtype_option, extra_model_option, guidance_option,
                       json_option, model_option, negative_option, note, option_set, parse_size, preset_option,
                       quiet_option, scheduler_option, seed_option, span_option, steps_option, window_batch_option)
from ..timing import verbose_option, timed_command


@click.command()
@click.argument("prompt", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="GLB to write; the scene folder NAME/ goes beside it. Default: a name from the prompt.")
@option_set(backend_option(), model_option, base_option, extra_model_option)
@click.option("--size", default="2048x512", show_default=True, help="Panorama WIDTHxHEIGHT in pixels (multiples of 8).")
@option_set(span_option, preset_option("published"), steps_option, guidance_option, negative_option)
@click.option("--region", "regions", multiple=True, metavar="A:B[@E1:E2][*W]=PROMPT",
              help="A region prompt, repeatable: azimuth A..B degrees (optionally elevations E1..E2, weight W) "
                   "follows PROMPT, e.g. --region \"0:90=a lighthouse on a cliff\"; MASK.png=PROMPT for a mask.")
@click.option("--modality", default=None,
              help="Modalities to generate with the RGB, e.g. depth or depth,edges (default: all the model has).")
@option_set(scheduler_option, dtype_option, window_batch_option, seed_option, device_option, quiet_option)
@click.option("--server", default=None, metavar="URL",
              help="Have a running `worldgen serve` make the world (its model stays loaded between worlds), "
                   "e.g. http://127.0.0.1:8765; the scene and GLB are downloaded to -o as usual.")
@click.option("--from", "from_scene", default=None, metavar="SCENE[@vN]",
              help="Replay a version made by `worldgen pano` (default: the latest) from its scene.json: same "
                   "prompt, seed, size, sampling and model; only -o, --device and the output options apply.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Grow the world around this photo (resampled into the panorama, its depth estimated).")
@click.option("--fov", type=float, default=None, help="--image's horizontal field of view in degrees (default: EXIF).")
@verbose_option
@json_option
def pano(prompt, output, backend, model, base, extra_model, size, span, preset, steps, guidance, negative_prompt,
         modality, scheduler, dtype, window_batch, seed, device, quiet, regions=(), server=None, verbose=False,
         as_json=False, from_scene=None, image=None, fov=None):
    """Generate a seamless 360-degree RGB-D panorama world from PROMPT and export it as GLB.

    With --json, prints one JSON object on stdout: the scene folder, version, GLB, backend and seconds.
    """
    click.get_current_context().with_resource(timed_command(verbose))  # --verbose: phase times on exit
    from ...api import WorldPipeline
    from ...world.outputs import new_world_paths
    from ..grammar import report

    if from_scene is not None or prompt is None:
        return _replay(from_scene, output, device, quiet, as_json)
    width, height = parse_size(size)
    # Every value is checked before anything is loaded or sent (the same request either way).
    WorldPipeline.request(prompt, width=width, height=height, span=span, seed=seed, preset=preset, steps=steps,
                          guidance=guidance, negative_prompt=negative_prompt, modality=modality, scheduler=scheduler,
                          regions=regions)
    output, scene_dir = new_world_paths(output, prompt)
    if server:
        if image is not None:
            raise click.UsageError("--image runs on this machine; leave out --server")  # the server loads and runs the model; the checks above are the same either way
        from .serve import pano_on_server

        pano_on_server(server, prompt, size=size, span=span, preset=preset, steps=steps, guidance=guidance,
                       negative_prompt=negative_prompt, modality=modality, scheduler=scheduler, seed=seed,
                       regions=regions, output=output, scene_dir=scene_dir, quiet=quiet)
        return report(f"made on {server}", quiet=True, as_json=as_json, scene=scene_dir, version=1, glb=output,
                      server=server)
    world = _make_here(prompt, output, scene_dir, backend, model, base, extra_model, width, height, span, preset, steps,
                       guidance, negative_prompt, modality, scheduler, dtype, window_batch, seed, device, quiet,
                       regions, image, fov)
    report(f"wrote scene {world.scene.path}/ (version {world.version}) and {output}", quiet=quiet, as_json=as_json,
           scene=world.scene.path, version=world.version, glb=output, backend=world.backend,
           size=list(world.size), seed=world.seed)


def _make_here(prompt, output, scene_dir, backend, model, base, extra_model, width, height, span, preset, steps,
               guidance, negative_prompt, modality, scheduler, dtype, window_batch, seed, device, quiet, regions,
               image=None, fov=None):
    """Load the model in this process and make the world (the local half of `worldgen pano`)."""
    from ...api import WorldPipeline
    from ...world.backends import REAL_WEIGHTS_HINT
    from ..progress import progress_for

    pipe = WorldPipeline.from_pretrained(model or "auto", backend=backend, base=base, extra_model=extra_model,
                                         device=device, dtype=dtype, scheduler=scheduler, window_batch=window_batch,
                                         modality=modality, resident=False)  # one world: no warm-up costs
    if pipe.fell_back:
        note(REAL_WEIGHTS_HINT, quiet)
    request = pipe.request(prompt, width=width, height=height, span=span, seed=seed, preset=preset, steps=steps,
                           guidance=guidance, negative_prompt=negative_prompt, modality=modality, scheduler=scheduler,
                           regions=regions)
    world = pipe.make(request, output, scene_dir, progress=progress_for(quiet), image=image, fov=fov)
    unmodelled = world.snapshot.geometry.get("procedural", {}).get("note")
    if unmodelled:  # e.g. "procedural: 'cathedral' is not modelled; showing the nearest landscape"
        click.echo(unmodelled, err=True)
    return world


def _replay(source: str, output, device, quiet: bool, as_json: bool) -> None:
    """`--from SCENE[@vN]`: the recorded request on the recorded backend and model, into a new scene."""
    if source is None:
        raise click.UsageError("give a PROMPT, or --from SCENE[@vN] to replay a version")
    from ...api import WorldPipeline
    from ...geometry.regions import Region
    from ...world.outputs import new_world_paths
    from ...world.replay import replay_plan
    from ..grammar import report
    from ..progress import progress_for

    plan = replay_plan(source)
    wanted, recorded = plan["request"], plan["settings"]  # only the keys REPLAYED_SETTINGS names
    output, scene_dir = new_world_paths(output, wanted["prompt"])
    pipe = WorldPipeline.from_pretrained(
        recorded.get("model") or "auto", backend=plan["backend"], device=device, base=recorded.get("base"),
        extra_model=recorded.get("extra_model"), dtype=recorded.get("dtype"), scheduler=recorded.get("scheduler"),
        window_batch=recorded.get("window_batch"), modality=recorded.get("modality"),
        region_mode=recorded.get("region_mode"))
    regions = [Region.from_dict(region) for region in wanted.pop("regions")]
    request = pipe.request(wanted.pop("prompt"), regions=regions, **wanted)
    world = pipe.make(request, output, scene_dir, progress=progress_for(quiet))
    report(f"replayed {source} (version {plan['version']}): scene {world.scene.path}/ and {output}", quiet=quiet,
           as_json=as_json, scene=world.scene.path, version=world.version, glb=output, backend=world.backend,
           replayed=source)


commands = [pano]
