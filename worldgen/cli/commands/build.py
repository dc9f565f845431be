"""`worldgen build`: make a whole world from a scene recipe (scenes/NAME.toml)."""

from __future__ import annotations

from pathlib import Path

import click

from ..options import checked, device_option, json_option, note, parse_size, quiet_option


@click.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="GLB to write; the scene folder NAME/ goes beside it. Default: NAME.glb from the recipe.")
@click.option("--dry-run", is_flag=True, help="Validate the recipe and print the plan; generate nothing.")
@click.option("--backend", default=None, help="Override the recipe's backend: auto, jointnet, procedural, or a plugin's.")
@click.option("--model", default=None, help="JointNet checkpoint (a registered name or a folder).")
@click.option("--base", default=None, help="Stable Diffusion 2.1-base folder (diffusers layout) for the checkpoint.")
@click.option("--extra-model", default=None,
              help="A second checkpoint sharing the RGB branch: generate both of their modalities at once.")
@click.option("--seed", type=int, default=None, callback=checked("seed"), help="Override the recipe's seed.")
@click.option("--preset", type=click.Choice(["published", "fast"]), default=None,
              help="Sampling recipe, exactly as `worldgen pano --preset` (default: the recipe's backend.preset, "
                   "else published).")
@click.option("--steps", type=click.IntRange(1, 1000), default=None,
              help="Override every step count of the recipe (a quick preview).")
@click.option("--size", default=None, help="Override the panorama's WIDTHxHEIGHT (a quick preview of the same world).")
@click.option("--dtype", default=None, help="float32, float16 or bfloat16 (default: float16 on GPU).")
@click.option("--window-batch", type=click.IntRange(min=1), default=None, help="Windows per model call.")
@click.option("--strict", is_flag=True,
              help="Stop at a placement that nearer content would hide (default: skip it and say so).")
@click.option("--force", is_flag=True, help="Let the recipe's [[export]] paths replace files that exist already.")
@device_option
@quiet_option
@json_option
def build(recipe_file, output, dry_run, backend, model, base, extra_model, seed, preset, steps, size, dtype, window_batch,
          strict, force, device, quiet, as_json):
    """Build the world described by RECIPE (a TOML scene recipe, see scenes/) and export it.

    \b
    Examples:
      worldgen build scenes/alpine-lake.toml --dry-run
      worldgen build scenes/lakeside-cabin.toml -o cabin.glb
      worldgen build scenes/alpine-lake.toml --size 1024x256 --steps 20
    """
    from ...recipes import BuildOptions, build as run_build
    from ...world.outputs import new_world_paths
    from ..grammar import report

    recipe = _load(recipe_file, size, dry_run)

    output, _ = new_world_paths(output or Path(f"{recipe.name}.glb"), recipe.name)
    options = BuildOptions(backend=backend, seed=seed, steps=steps,
                           settings={"model": model, "base": base, "extra_model": extra_model, "dtype": dtype,
                                     "device": device, "window_batch": window_batch, "preset": preset},
                           strict=strict, force=force)
    if dry_run:
        return _dry_run(recipe, output, options)
    from ..progress import progress_for

    scene = run_build(recipe, output, options, progress=progress_for(quiet), note=lambda text: note(text, quiet))
    report(f"wrote scene {scene.path}/ (version {scene.current}) and {output}", quiet=quiet, as_json=as_json,
           scene=scene.path, version=scene.current, glb=output, skipped=options.skipped)


def _load(recipe_file, size, dry_run: bool):
    """The recipe, with --size applied; under --dry-run every problem is listed before the one-line error."""
    from ...errors import WorldgenError
    from ...recipes import RecipeError, load_recipe

    try:
        return load_recipe(recipe_file, size=parse_size(size) if size else None)
    except RecipeError as exc:
        if not dry_run:
            raise
        for line in exc.lines():
            click.echo(line)
        raise WorldgenError(f"{len(exc.issues)} problem{'s' if len(exc.issues) > 1 else ''} in {recipe_file}; "
                            f"fix the lines above") from None


def _dry_run(recipe, output, options) -> None:
    from ...recipes import plan, resolve_backend

    notes: list[str] = []
    spec, settings = resolve_backend(recipe, options, notes.append)
    label = spec.name + (f" (model {settings['model']})" if settings.get("model") else "")
    for line in plan(recipe, output, options, backend_label=label, tasks=tuple(spec.tasks)):
        click.echo(line)
    for text in notes:
        click.echo(f"note: {text}")
    click.echo("recipe is valid; nothing was generated (--dry-run)")


commands = [build]
