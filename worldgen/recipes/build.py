"""Running a recipe through the API: generate, place, refine, export (what `worldgen build` does),
and ``build_for_batch``, the hook `worldgen batch` calls for ``recipe = "..."`` jobs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from ..errors import UserInputError
from .model import BuildOptions, ExportStep, Recipe
from .parse import _extension, _plain, load_recipe

Note = Callable[[str], None]

# Running ------------------------------------------------------------------------------------------------

def resolve_backend(recipe: Recipe, options: BuildOptions, note: Note = lambda text: None):
    """(backend spec, load settings) for the recipe's [backend] table with the command-line overrides.
    The preset is not a load setting: it goes into each request (``Recipe.request``)."""
    from ..world.backends import RECIPE_FALLBACK_HINT, choose_backend, load_settings

    settings = {**recipe.backend_settings, **{k: v for k, v in options.settings.items() if v is not None}}
    settings.pop("preset", None)
    spec, fell_back = choose_backend(options.backend or recipe.backend_name, settings.get("model"))
    if fell_back:
        note(RECIPE_FALLBACK_HINT)
    settings = load_settings(spec, settings, note)
    if len(recipe.modalities) == 2 and spec.name == "jointnet" and not settings.get("extra_model"):
        raise UserInputError(f"{recipe.path}: modality {list(recipe.modalities)} with JointNet needs backend.extra_model "
                             f"(a second checkpoint sharing the RGB branch); or set modality = \"depth\"")
    return spec, settings


def plan(recipe: Recipe, glb: Path, options: Optional[BuildOptions] = None, backend_label: Optional[str] = None,
         tasks: tuple[str, ...] = ("generate", "refine", "edit")) -> list[str]:
    """The steps a build will take, as printable lines (``--dry-run``). ``tasks``: what the chosen
    backend can do (its spec's ``tasks``); steps it cannot do are shown as they will run."""
    options = options if options is not None else BuildOptions()
    seed = recipe.seed if options.seed is None else options.seed
    steps = recipe.sampling(options).steps
    label = backend_label or options.backend or recipe.backend_name
    out = [f"recipe {recipe.path} ({recipe.name}, sha256 {recipe.digest[:12]})"]
    if recipe.description:
        out.append(f"  {recipe.description}")
    n = 1
    out.append(f"{n}. generate {recipe.width}x{recipe.height}, {recipe.span_deg:g} deg, {' + '.join(recipe.modalities)}, "
               f"{steps} steps, guidance {recipe.guidance:g}, seed {seed}, backend {label}")
    out.append(f"     prompt: {recipe.prompt}")
    if recipe.negative:
        out.append(f"     negative: {recipe.negative}")
    for k, region in enumerate(recipe.regions, start=1):
        out.append(f"     region {k}: {region.label()}")
    for place in recipe.places:
        n += 1
        p = place.placement
        where = (f"mask {p.mask_source}" if p.mask is not None
                 else f"azimuth {p.azimuth:g} deg, {p.width:g} m wide, {p.height or p.width:g} m tall")
        out.append(f"{n}. place \"{p.prompt}\" at {p.distance:g} m, {where}, {p.shape}"
                   + (f", lifted {p.lift:g} m" if p.lift else "")
                   + ("" if "edit" in tasks else " (painted as a placeholder: the backend cannot inpaint)"))
    size = (recipe.width, recipe.height)
    for step in recipe.refines:
        n += 1
        request = step.request(recipe, options.steps, options=options)
        size = request.target_size(*size)
        keep = f", keep {request.keep}" if request.keep else ""
        skipped = "" if "refine" in tasks else " (skipped: the backend cannot refine)"
        out.append(f"{n}. refine to {size[0]}x{size[1]}, strength {request.strength:g}, {request.steps} steps"
                   f"{keep}{skipped}")
    for export in recipe.exports:
        n += 1
        out.append(f"{n}. export {export.format} -> {_export_path(recipe, export, glb, glb.parent)}")
    out.append(f"scene folder: {glb.with_suffix('')}/")
    return out


def _export_path(recipe: Recipe, export: ExportStep, glb: Path, folder: Path) -> Path:
    if export.format == "glb" and export.path is None:
        return glb
    return folder / (export.path or f"{glb.stem}{_extension(export.format)}")


def _checked_export_path(recipe: Recipe, export: ExportStep, glb: Path, folder: Path) -> Path:
    """An ``[[export]]`` path the recipe named: inside the output folder once every symlink is resolved,
    and never a file the recipe itself reads (the recipe, its masks)."""
    from ..output_paths import check_output_path

    target = _export_path(recipe, export, glb, folder)
    if export.path is None:
        return target  # the user's own -o, or a name worldgen chose inside the folder
    check_output_path(target, what=f"{recipe.path}: export path {export.path!r}", confine_to=folder,
                      managed=folder if folder != glb.parent else None)
    resolved = target.resolve()
    inputs = [Path(recipe.path)] + [Path(recipe.path).parent / r.source for r in recipe.regions
                                    if getattr(r, "source", None)]
    if any(resolved == p.resolve() for p in inputs if p.exists()):
        raise UserInputError(f"{recipe.path}: export path {export.path!r} would overwrite a file the recipe reads; "
                             f"give the export another name")
    return target


def _planned_exports(recipe: Recipe, glb: Path, folder: Path, force: bool) -> list[tuple[ExportStep, Path]]:
    """Every export's target, all checked before anything is built or written: a refusal of the third
    path must not come after the first has replaced a file. A path the recipe names may replace an
    existing file only with ``force`` (it is the user's file, not one this build wrote), unless it is
    the build's own GLB (-o)."""
    planned: list[tuple[ExportStep, Path]] = []
    seen: dict[Path, str] = {}
    for export in recipe.exports:
        target = _checked_export_path(recipe, export, glb, folder)
        key = target.resolve()
        if key in seen:
            raise UserInputError(f"{recipe.path}: exports {seen[key]!r} and {export.path or export.format!r} both "
                                 f"write {target}; give one of them another path")
        seen[key] = export.path or export.format
        if (export.path is not None and not force and os.path.lexists(target)
                and key != Path(glb).resolve()):
            raise UserInputError(f"{recipe.path}: export path {export.path!r} would replace the existing file "
                                 f"{target}, which this build did not write; move it away, change the path, "
                                 f"or rerun with --force")
        planned.append((export, target))
    return planned


def build(recipe: Recipe, glb: Path, options: Optional[BuildOptions] = None, *, progress=None,
          note: Note = lambda text: None, backend=None, spec=None, export_folder: Optional[Path] = None):
    """Run the recipe: the scene goes to ``glb`` without its suffix, the GLB to ``glb``, other exports
    beside it (or into ``export_folder``). Returns the scene. ``backend``/``spec`` skip loading.

    The scene is built in a hidden folder beside its destination and renamed into place when every
    step has succeeded, so a failed build leaves no half-made scene behind (and can simply be rerun)."""
    import shutil

    options = options if options is not None else BuildOptions()  # its own: ``skipped`` is filled in
    import tempfile

    from ..scene.manifest import MANIFEST_NAME
    from ..scene.store import Scene

    scene_dir = glb.with_suffix("")
    if scene_dir.exists() and ((scene_dir / MANIFEST_NAME).exists() or any(scene_dir.iterdir())):
        raise UserInputError(f"{scene_dir} already holds a scene; pick another -o name or delete it")
    exports = _planned_exports(recipe, glb, export_folder or glb.parent, options.force)
    if spec is None or backend is None:
        spec, settings = resolve_backend(recipe, options, note)
        backend = spec.load(settings)
    _check_step_counts(recipe, options, backend)
    scene_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{scene_dir.name}.", suffix=".building", dir=scene_dir.parent))
    try:
        snapshot = _run_steps(recipe, staging / scene_dir.name, options, backend, spec, progress, note)
        if scene_dir.exists():
            scene_dir.rmdir()  # empty, checked above
        os.rename(staging / scene_dir.name, scene_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    from ..export_files import export_to_file

    for export, target in exports:
        export_to_file(snapshot, export.format, target, export.options, progress=progress, managed=export_folder)
    return Scene.open(scene_dir)


def _check_step_counts(recipe: Recipe, options: BuildOptions, backend) -> None:
    """Every pass's step count against the scheduler it will run, before the first pass starts: a
    refine pass the scheduler cannot run must not fail after the panorama took minutes."""
    check = getattr(backend, "checked_scheduler", None)
    if check is None:
        return
    sampling = recipe.sampling(options)
    counts = [sampling.steps]
    counts += [options.steps or place.steps or sampling.steps for place in recipe.places]
    counts += [step.request(recipe, options.steps, options=options).steps for step in recipe.refines]
    for steps in sorted(set(counts), reverse=True):
        try:
            check(steps, recipe.scheduler, sampling.preset, label="steps")
        except UserInputError as exc:
            raise UserInputError(f"{recipe.path}: {_plain(exc)}") from None


def _run_steps(recipe: Recipe, scene_dir: Path, options: BuildOptions, backend, spec, progress, note: Note):
    """Generate, place and refine into a new scene at ``scene_dir`` through the API; returns the final snapshot."""
    from ..api import WorldPipeline
    from ..scene.atomic import atomic_write_text

    seed = recipe.seed if options.seed is None else options.seed
    request = recipe.request(seed, spec.name, options)  # --steps and --preset resolved as `pano` does
    if recipe.regions and spec.name not in ("jointnet", "procedural"):
        note(f"the {spec.name} backend may not support region prompts")
    pipe = WorldPipeline(spec, backend=backend)
    world = pipe.generate(request, progress)
    scene = world.save(scene_dir)
    atomic_write_text(scene_dir / "recipe.toml", recipe.text)  # what made this scene, beside its manifest
    origin = {"recipe": str(recipe.path), "recipe_sha256": recipe.digest}
    if recipe.places and not pipe.supports("edit"):
        note(f"the {spec.name} backend cannot paint, so placed objects are plain placeholder shapes at the right "
             f"depth; use a JointNet model to paint them")
    for k, place in enumerate(recipe.places, start=1):
        world = _place(pipe, scene, recipe, options, place, k, seed, origin, progress, note) or world
    for k, step in enumerate(recipe.refines, start=1):
        if not pipe.supports("refine"):
            note(f"refine pass {k} skipped: the {spec.name} backend cannot refine (use a JointNet model)")
            continue
        request_k = step.request(recipe, options.steps, seed=(seed + 2000 + k) % 2**64, options=options)
        size = (request_k.width, request_k.height) if request_k.width else None
        world = pipe.refine(scene, scale=request_k.scale, size=size, strength=request_k.strength, keep=request_k.keep,
                            progress=progress, record={"pass": k, **origin}, prompt=request_k.prompt,
                            negative_prompt=request_k.negative_prompt, steps=request_k.steps,
                            guidance=request_k.guidance, seed=request_k.seed, scheduler=request_k.scheduler,
                            method=request_k.method)
    return world.snapshot


def _place(pipe, scene, recipe: Recipe, options: BuildOptions, place, k: int, seed: int, origin: dict, progress,
           note: Note = lambda text: None):
    """Placement ``k`` of the recipe as a new version of ``scene`` (painted when the backend can); None
    when it would be hidden and the build is not strict (the skip is noted and kept in ``options.skipped``)."""
    import dataclasses

    from ..geometry.placement import HiddenPlacement

    placement = _fit_mask(place.placement, scene.load().size)
    fields = {f.name: getattr(placement, f.name) for f in dataclasses.fields(placement)
              if f.name not in ("prompt", "distance")}
    try:
        return pipe.place(scene, placement.prompt, distance=placement.distance, painter="jointnet",
                          steps=options.steps or place.steps or recipe.sampling(options).steps,
                          guidance=place.guidance if place.guidance is not None else recipe.guidance,
                          seed=(seed + 1000 * k) % 2**64, scheduler=recipe.scheduler,
                          negative_prompt=place.negative if place.negative is not None else recipe.negative,
                          progress=progress, record=origin, **fields)
    except HiddenPlacement as exc:
        if options.strict:
            raise UserInputError(f"{recipe.path}: place[{k}] ({placement.prompt!r}): {_plain(exc)}") from None
        options.skipped.append(f"place[{k}] ({placement.prompt!r}): {_plain(exc)}")
        note(f"skipped place[{k}] ({placement.prompt!r}): it would be hidden by nearer content (--strict stops "
             f"the build instead)")
        return None
    except UserInputError as exc:
        raise UserInputError(f"{recipe.path}: place[{k}] ({placement.prompt!r}): {_plain(exc)}") from None


def _fit_mask(placement, size: tuple[int, int]):
    """A placement whose mask was drawn for the recipe's size, resized (nearest) to the scene's."""
    import dataclasses

    import numpy as np

    if placement.mask is None or placement.mask.shape == (size[1], size[0]):
        return placement
    h, w = placement.mask.shape
    rows = np.minimum(((np.arange(size[1]) + 0.5) * h / size[1]).astype(int), h - 1)
    cols = np.minimum(((np.arange(size[0]) + 0.5) * w / size[0]).astype(int), w - 1)
    return dataclasses.replace(placement, mask=placement.mask[rows][:, cols])


# worldgen batch -----------------------------------------------------------------------------------------

_BACKENDS: dict = {}  # one loaded backend, reused by consecutive recipe jobs with the same settings


def build_for_batch(recipe_path, scene_dir, glb, *, seed: int, settings: dict) -> None:
    """The `worldgen batch` hook for ``recipe = "..."`` jobs: build the recipe with the batch's seed and
    backend settings into ``scene_dir`` and ``glb`` (other exports go into ``scene_dir/exports/``)."""
    recipe = load_recipe(recipe_path)
    settings = dict(settings or {})
    options = BuildOptions(backend=settings.pop("backend", None), settings=settings, seed=seed)
    spec, load_settings = resolve_backend(recipe, options)
    key = (spec.name, tuple(sorted((k, str(v)) for k, v in load_settings.items())))
    if key not in _BACKENDS:
        _BACKENDS.clear()
        _BACKENDS[key] = spec.load(load_settings)
    glb, scene_dir = Path(glb), Path(scene_dir)
    staged = glb.with_name(scene_dir.name + ".glb")  # build() puts the scene beside its GLB, named alike
    build(recipe, staged, options, backend=_BACKENDS[key], spec=spec, export_folder=scene_dir / "exports")
    if staged != glb:
        staged.replace(glb)

