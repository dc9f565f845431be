"""The world maker of `worldgen batch`: prompt jobs through the API, recipe jobs through the recipe hook."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import UserInputError
from .jobs import Job

class PanoWorldMaker:
    """Makes prompt jobs the way `worldgen pano` does (``WorldPipeline.make``: same request, scene and
    GLB), with the backend loaded once per process on first use, and hands recipe jobs to the recipe hook.

    ``spec`` is a ``BackendSpec``; ``settings`` are its load settings (model, base, device, dtype, ...).
    ``preset``, when the batch named one, overrides recipe jobs' own (prompt jobs carry theirs in
    ``Job.preset``). ``backend_name``, when the batch named one, holds for recipe jobs too. ``export`` writes a snapshot to a GLB path
    (default: worldgen's own GLB exporter).
    """

    def __init__(self, spec, settings: dict, export: Optional[Callable[[Any, Path], None]] = None, *,
                 preset: Optional[str] = None, backend_name: Optional[str] = None) -> None:
        from ..api import WorldPipeline

        self.spec = spec
        self.settings = dict(settings)
        self.preset = preset
        self.backend_name = backend_name
        self._export = export
        self.pipe = WorldPipeline(spec, self.settings)
        self.load_seconds = 0.0

    @property
    def loaded(self) -> bool:
        """Whether the backend was loaded (a restart with nothing left to do never loads it)."""
        return self.pipe._backend is not None

    def backend(self, first_request=None):
        """The loaded backend; loading it (a resident process) also pays its warm-up, for worlds the
        size and preset of ``first_request``, before the first job (world/warmup.py)."""
        if not self.loaded:
            from ..world.warmup import warm_up

            started = time.perf_counter()
            self.pipe.backend
            if first_request is not None:
                warm_up(self.pipe.backend, width=first_request.width, height=first_request.height,
                        preset=getattr(first_request, "preset", None))
            self.load_seconds += time.perf_counter() - started
        return self.pipe.backend

    def __call__(self, job: Job, scene_dir: Path, glb: Path) -> None:
        if job.recipe is not None:
            settings = dict(self.settings, **({"preset": self.preset} if self.preset else {}))
            if self.backend_name is not None:
                settings["backend"] = self.backend_name  # `--backend procedural` means every job
            recipe_hook()(job.recipe, scene_dir, glb, seed=job.seed, settings=settings)
            return
        request = job.request()  # value checks before any model is loaded
        self.backend(request)
        world = self.pipe.make(request, None, scene_dir)
        self.export(world.snapshot, glb)

    def export(self, snapshot, glb: Path) -> None:
        if self._export is not None:
            self._export(snapshot, glb)
            return
        from ..export_files import export_to_file

        export_to_file(snapshot, "glb", glb)

    def recover(self) -> None:
        """After a failed job: give cached GPU memory back so an out-of-memory job does not doom the next."""
        import gc
        import sys

        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


RECIPES_MODULE = "worldgen.recipes"
RECIPE_HOOK = "build_for_batch"


def recipe_hook() -> Callable[..., None]:
    """The function that builds a recipe job: ``worldgen.recipes.build_for_batch(recipe_path, scene_dir,
    glb_path, *, seed, settings)``, which must write a complete scene folder and GLB at those paths.
    Recipes ship with `worldgen build`; without that module recipe jobs fail with this message."""
    if importlib.util.find_spec(RECIPES_MODULE) is None:
        raise UserInputError("recipe jobs need `worldgen build`, not available in this version; "
                             "list the world as a prompt job instead")
    module = importlib.import_module(RECIPES_MODULE)
    hook = getattr(module, RECIPE_HOOK, None)
    if not callable(hook):
        raise UserInputError(f"{RECIPES_MODULE} has no {RECIPE_HOOK}(); this worldgen cannot run recipe jobs "
                             f"in a batch yet: run them one by one with `worldgen build`")
    return hook



def check_job(out: Path, job: Job) -> tuple[str, Optional[str]]:
    """What running ``job`` into ``out`` would meet, without running it (``--dry-run``): the state of its
    place (``existing_world``), or ("invalid", why) when its values or its recipe would fail."""
    from ..errors import WorldgenError
    from .shards import existing_world

    state, why = existing_world(out, job)
    try:
        if job.recipe is not None:
            recipe_hook()  # says clearly when this worldgen cannot build recipes
            from ..recipes import load_recipe

            load_recipe(job.recipe)  # the full schema check, with line and field
        else:
            job.request()
    except WorldgenError as exc:
        return "invalid", " ".join(str(exc).split())
    return state, why
