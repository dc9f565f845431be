"""Scene recipes: a TOML file that describes a whole world, run by `worldgen build scenes/NAME.toml`.

A recipe names the panorama (prompt, negative prompt, seed, size, span, modality), its region
prompts, the objects placed into it, its refinement passes and its exports::

    prompt = "a misty fjord at dawn, steep cliffs"
    seed = 7
    size = "2048x512"

    [backend]                  # optional: name = "auto" | "jointnet" | "procedural", model, ...
    model = "rgbd"

    [[region]]                 # zero or more: azimuth = [A, B] (+ elevation) or mask = "file.png"
    azimuth = [0, 90]
    prompt = "a red lighthouse on a cliff"

    [[place]]                  # zero or more: an object at a distance (see worldgen.geometry.placement)
    prompt = "a wooden cabin"
    azimuth = 40
    distance = 12
    width = 8

    [[refine]]                 # zero or more: SDEdit passes (scale, strength, keep, steps, ...)
    scale = 2

    [[export]]                 # default: one GLB; format = "glb" | "ply" | "splat" | a plugin
    format = "glb"

Validation is a schema (``schema.WORLD_FIELDS`` and its ``*_FIELDS`` tables): every problem is
reported as ``FILE:LINE: FIELD: what is wrong, and the fix``. tomllib keeps no positions, so a
field's line is found by scanning the source for its key inside its table (``_SourceLines``).

Modules: ``schema`` (fields and their checks), ``model`` (``Recipe`` and its steps), ``parse``
(text -> ``Recipe``), ``build`` (running it). Running goes through the public API
(``worldgen.api.WorldPipeline``), as `worldgen pano`, `place` and `refine` do, and
``worldgen.export_files.export_to_file`` (as `worldgen export`).
``build_for_batch`` is the hook `worldgen batch` calls for ``recipe = "..."`` jobs.
"""

from .build import BuildOptions, build, build_for_batch, plan, resolve_backend  # noqa: F401
from .model import ExportStep, PlaceStep, Recipe, RefineStep  # noqa: F401
from .parse import load_recipe, parse_recipe  # noqa: F401
from .schema import (BACKEND_FIELDS, EXPORT_FIELDS, PLACE_FIELDS, REFINE_FIELDS, REGION_FIELDS,  # noqa: F401
                     SCENES_DIR, TABLE_FIELDS, TABLES, WORLD_FIELDS, Field, Issue, RecipeError)
