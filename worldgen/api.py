"""The public Python API: ``WorldPipeline`` makes worlds and works on scenes.

    from worldgen import WorldPipeline
    pipe = WorldPipeline.from_pretrained("procedural")
    world = pipe("a misty fjord at dawn", seed=0, preset="fast")
    world.save("fjord/")
    world.export("glb", "fjord.glb")

Every front end (the CLI, batch, recipes, the server) calls this module and nothing below it; the
decisions it relies on live in ``worldgen.world`` (one module each). docs/api.md documents it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .world import backends as _backends
from .world.result import World
from .world.tasks import keep_result, resolve_target

__all__ = ["WorldPipeline", "World"]

TASK_FIELDS = ("prompt", "negative_prompt", "steps", "guidance", "seed", "scheduler", "method")


class WorldPipeline:
    """A backend, loaded on first use, and the operations that run on it.

    ``spec`` is the backend's ``BackendSpec``; ``settings`` its load settings. ``fell_back`` is True
    when ``auto`` found no JointNet model and chose the procedural backend (``backends.REAL_WEIGHTS_HINT``
    says what to install). ``loader`` replaces ``spec.load(settings)`` (scene tasks use it)."""

    def __init__(self, spec, settings: Optional[dict] = None, *, backend=None, fell_back: bool = False,
                 loader: Optional[Callable[[], Any]] = None) -> None:
        self.spec = spec
        self.settings = dict(settings or {})
        self.fell_back = fell_back
        self._backend = backend
        self._loader = loader

    # Construction ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: Optional[str] = "auto", *, backend: Optional[str] = None, device=None, dtype=None,
                        base=None, extra_model=None, window_batch=None, scheduler=None, resident: bool = True,
                        note: Callable[[str], None] = lambda text: None, **settings) -> "WorldPipeline":
        """A pipeline for ``model``: a registered model name or a checkpoint folder (JointNet),
        ``"procedural"`` (the offline backend, no weights), or ``"auto"`` (JointNet when a model is
        registered, else procedural). ``backend`` names a backend plugin instead. Loading happens on
        the first call; settings a backend does not take are dropped (named through ``note``).
        ``resident`` False: this process makes one world, so no warm-up costs (world/warmup.py)."""
        if model == "procedural":
            model, backend = None, backend or "procedural"
        elif model == "auto":
            model = None
        spec, fell_back = _backends.choose_backend(backend, model)
        wanted = dict(model=str(model) if model is not None else None, device=device, dtype=dtype,
                      base=str(base) if base is not None else None, extra_model=extra_model,
                      window_batch=window_batch, scheduler=scheduler, **settings)
        from .world.warmup import with_mode

        chosen = with_mode(spec, _backends.load_settings(spec, wanted, note), resident)
        return cls(spec, chosen, fell_back=fell_back)

    @classmethod
    def for_scene(cls, scene=None, **settings) -> "WorldPipeline":
        """A JointNet pipeline for scene tasks: the model given in ``settings`` (model, base, device, dtype,
        scheduler, window_batch), else the one recorded in ``scene``'s manifest, else the default."""
        from .registry import get_registry

        scene = _open_scene(scene)
        spec = get_registry().backend("jointnet")
        chosen = _backends.scene_model_settings(settings, scene)
        return cls(spec, chosen, loader=lambda: _backends.load_task_backend(settings, scene))

    @classmethod
    def for_explore(cls, scene, task: str, **settings) -> "WorldPipeline":
        """The pipeline that runs ``task`` ("sphere" or "layers") on ``scene``: the scene's own backend
        when it renders that itself (procedural worlds), else JointNet as ``for_scene`` chooses it."""
        from .explore.tasks import explore_loader
        from .registry import get_registry

        scene = _open_scene(scene)
        spec = get_registry().backend("jointnet")
        return cls(spec, _backends.scene_model_settings(settings, scene), loader=explore_loader(settings, scene, task))

    @property
    def name(self) -> str:
        """The backend's name (a scene's own backend may stand in for the spec's, see ``for_explore``)."""
        return getattr(self._backend, "name", None) or self.spec.name

    def supports(self, task: str) -> bool:
        """Whether the backend implements ``task`` (refine, outpaint, edit, paint, estimate)."""
        from .backend import Backend

        return getattr(type(self.backend), task, None) is not getattr(Backend, task, None)

    @property
    def backend(self):
        """The loaded backend (loaded now if it was not yet)."""
        if self._backend is None:
            from .phases import phase

            with phase("load"):
                self._backend = self._loader() if self._loader else self.spec.load(self.settings)
        return self._backend

    def warm_up(self, *, width: int = 2048, height: int = 512, preset: Optional[str] = None) -> bool:
        """Load the backend and pay its first-world costs (autotuning, graph capture) now, for worlds
        of this size and preset; True when there was something to pay (``world.warmup.warm_up``)."""
        from .world.warmup import warm_up

        return warm_up(self.backend, width=width, height=height, preset=preset)

    def _backend_for(self, request):
        """The backend; when it loads for this first request, a backend that takes a ``text_hint``
        encodes the request's text while its weights load (backends/jointnet/early_text.py)."""
        if self._backend is None and self._loader is None and "text_hint" in tuple(self.spec.settings or ()):
            from .phases import phase

            do_cfg = request.guidance > 1.0 and bool(request.prompt or request.negative_prompt)
            with phase("load"):
                self._backend = self.spec.load({**self.settings, "text_hint": [request.prompt,
                                                                               request.negative_prompt, do_cfg]})
        return self.backend

    # Text -> world ----------------------------------------------------------------------------
    def __call__(self, prompt: str, *, width: int = 2048, height: int = 512, span: float = 360.0, seed: int = 0,
                 preset: Optional[str] = None, steps: Optional[int] = None, guidance: float = 7.5,
                 negative_prompt: str = "", modality: Optional[str] = None, scheduler: Optional[str] = None,
                 regions: Sequence = (), progress=None) -> World:
        """A world from ``prompt``, in memory (``save`` it, or ``export`` it). ``preset``: "published"
        (default; DDIM 50) or "fast" (DPM-Solver++ 14); ``steps``/``scheduler`` override the preset's.
        ``regions``: region prompts (``worldgen.regions.Region`` or "A:B=PROMPT" strings)."""
        request = self.request(prompt, width=width, height=height, span=span, seed=seed, preset=preset, steps=steps,
                               guidance=guidance, negative_prompt=negative_prompt, modality=modality,
                               scheduler=scheduler, regions=regions)
        return self.generate(request, progress)

    @staticmethod
    def request(prompt: str, *, width: int = 2048, height: int = 512, span: float = 360.0, seed: int = 0,
                preset: Optional[str] = None, steps: Optional[int] = None, guidance: float = 7.5,
                negative_prompt: str = "", modality: Optional[str] = None, scheduler: Optional[str] = None,
                regions: Sequence = ()):
        """The checked backend-level request (``GenerateRequest``) for these arguments; every value
        error is raised here, before any model loads. The values are checked by the one request model,
        ``worldgen.requests.WorldRequest`` (the server's), so every front end refuses the same values with
        the same line. The preset travels in the request."""
        from .requests import generate_request

        return generate_request(prompt, width=width, height=height, span=span, seed=seed, preset=preset,
                                steps=steps, guidance=guidance, negative_prompt=negative_prompt, modality=modality,
                                scheduler=scheduler, regions=regions)

    def generate(self, request, progress=None, *, image=None, fov: Optional[float] = None) -> World:
        """A world for a ready ``GenerateRequest`` (what batch jobs and the server hand over). With
        ``image`` (a photo file, or an (H, W, 3) array with ``fov``) the world grows around the photo."""
        from .world.generate import make_world

        backend = self._backend_for(request)
        request.modality = getattr(backend, "modality", None) or request.modality  # what the model makes
        if image is None:
            return make_world(self.name, backend, request, progress)
        from .explore.photo_scene import photo_world, read_photo_and_fov

        photo, hfov = read_photo_and_fov(image, fov)
        world = photo_world(self.name, backend, request, photo, hfov, progress)
        world.params["photo"] = str(image) if isinstance(image, (str, Path)) else "array"
        return world

    def make(self, request, glb: Optional[Path], scene_dir: Path, progress=None, *, image=None,
             fov: Optional[float] = None) -> World:
        """Generate, save the scene at ``scene_dir`` and export its GLB (what `worldgen pano` writes);
        the two are written at once (``world.generate.write_world``)."""
        from .world.generate import write_world

        world = self.generate(request, progress, image=image, fov=fov)
        write_world(world, scene_dir, (lambda: world.export("glb", glb)) if glb is not None else None)
        return world

    # Scene tasks (each returns a World: a new scene version, or a world in memory) -------------
    def refine(self, target, *, scale: float = 2.0, size: Optional[tuple[int, int]] = None, strength: float = 0.4,
               keep: Optional[str] = None, version: Optional[int] = None, output=None, glb=None, progress=None,
               record: Optional[dict] = None, **options) -> World:
        """Refine or upsample ``target`` by ``scale`` (or to ``size``); ``keep`` = "image" or "modality"
        keeps that layer exactly. ``options``: prompt, negative_prompt, steps, guidance, seed, scheduler, method.
        ``record``: more fields for the new version's params (e.g. the recipe it came from)."""
        from .sampler.requests import RefineRequest

        width, height = size if size else (None, None)
        request = RefineRequest(**_task_options(options), scale=scale, strength=strength, keep=keep, width=width,
                                height=height)
        source = resolve_target(target, version)
        request.target_size(*source.snapshot.size)  # size errors before the model loads
        params = dict(scale=scale, strength=strength, keep=keep, **(record or {}))
        return self._run("refine", "refine", source, request, params, output, glb, progress)

    def outpaint(self, target, *, span: Optional[float] = None, height: Optional[int] = None, x: Optional[int] = None,
                 version: Optional[int] = None, output=None, glb=None, progress=None, **options) -> World:
        """Extend ``target`` to ``span`` degrees and/or ``height`` pixels (the old part starts at column ``x``)."""
        source = resolve_target(target, version)
        x = 0 if x is None and source.scene is not None else x  # a scene's old columns keep their azimuths
        return self._outpaint(source, span, height, x, options, output, glb, progress, "outpaint", {})

    def outpaint_photo(self, photo, *, fov: Optional[float] = None, span: float = 360.0, height: Optional[int] = None,
                       x: Optional[int] = None, output=None, glb=None, progress=None, **options) -> World:
        """A panorama grown around ``photo`` (a file: EXIF orientation and focal length read; or an
        (H, W, 3) array with ``fov``): resampled onto the cylinder, its depth estimated, the rest generated
        and its colours matched at the edge (``worldgen.explore.photo``); the photo's pixels stay as they land."""
        from .errors import UserInputError
        from .explore.photo_scene import check_photo_backend, outpaint_photo, read_photo_and_fov
        from .sampler.requests import OutpaintRequest
        from .world.tasks import Target

        if not options.get("prompt"):
            raise UserInputError("a photo needs a prompt describing the world around it")
        image, fov = read_photo_and_fov(photo, fov)
        request = OutpaintRequest(**_task_options(options), span_deg=span, height=height, x=x)
        source = Target(None, _snapshot(image, {}, fov))
        request.canvas(*source.snapshot.size, fov)  # size errors before the model loads
        check_photo_backend(self.name, self.backend)
        extra = dict(photo=str(photo) if isinstance(photo, (str, Path)) else "array", fov=fov, x=x)
        return self._run("outpaint-photo", lambda r, s, p: outpaint_photo(self.backend, image, fov, r, p), source,
                         request, {}, output, glb, progress,
                         after=lambda result: {"span_deg": result.projection.span_deg, "height": result.size[1],
                                               **extra})

    def sphere(self, target, *, width: int = 0, view_size: int = 512, overlap_deg: float = 12.0,
               version: Optional[int] = None, glb=None, progress=None, **options) -> World:
        """``target`` completed to the full 360 x 180-degree sphere (``worldgen.explore.sphere``); the band
        stays exact. Run it on ``WorldPipeline.for_explore(scene, "sphere")``."""
        from .explore.sphere import SphereRequest, complete_sphere

        request = SphereRequest(**_task_options(options), width=width, view_size=view_size, overlap_deg=overlap_deg)
        source = resolve_target(target, version)
        return self._run("sphere", lambda r, s, p: complete_sphere(self.backend, s, r, p), source, request,
                         dict(view_size=view_size, overlap_deg=overlap_deg, from_version=version,
                              projection="equirectangular"), None, glb, progress,
                         after=lambda result: {"width": int(result.sphere.distance.shape[1])})

    def layers(self, target, *, move: float = 5.0, radius: int = 0, threshold: float = 0.1,
               version: Optional[int] = None, glb=None, progress=None, **options) -> World:
        """What the eye could not see behind every depth cut of ``target``, inpainted as background layers
        (``worldgen.explore.background``). Run it on ``WorldPipeline.for_explore(scene, "layers")``."""
        from .explore.background import LayersRequest, complete_layers

        request = LayersRequest(**_task_options(options), radius=radius, threshold=threshold, move=move)
        source = resolve_target(target, version)
        return self._run("layers", lambda r, s, p: complete_layers(self.backend, s, r, p), source, request,
                         dict(move=move, radius=radius, threshold=threshold, from_version=version), None, glb,
                         progress, after=lambda result: {"hidden_pixels": int(result.background.mask.sum())})

    def _outpaint(self, source, span, height, x, options: dict, output, glb, progress, operation: str,
                  extra: dict) -> World:
        from .sampler.requests import OutpaintRequest

        request = OutpaintRequest(**_task_options(options), span_deg=span, height=height, x=x)
        request.canvas(*source.snapshot.size, source.snapshot.projection.span_deg)  # size errors before loading
        return self._run(operation, "outpaint", source, request, {}, output, glb, progress,
                         after=lambda result: {"span_deg": result.projection.span_deg, "height": result.size[1],
                                               "x": x, **extra})

    def edit(self, target, mask, *, layers: str = "both", strength: float = 1.0, version: Optional[int] = None,
             glb=None, progress=None, **options) -> World:
        """Regenerate the white region of ``mask`` (a file or an (H, W) array); outside it nothing changes."""
        from .sampler.requests import EditRequest
        from .world.inputs import as_mask

        request = EditRequest(**_task_options(options), mask=as_mask(mask), layers=layers, strength=strength)
        source = resolve_target(target, version)
        request.check_fits(*source.snapshot.size)
        params = dict(mask=str(mask) if isinstance(mask, (str, Path)) else None, layers=layers, strength=strength,
                      changed_pixels=int(request.mask.sum()))
        return self._run("edit", "edit", source, request, params, None, glb, progress)

    def paint(self, target, *, version: Optional[int] = None, output=None, glb=None, progress=None,
              **options) -> World:
        """New RGB painted onto ``target``'s modality layer, which is kept exactly."""
        from .sampler.requests import PaintRequest

        request = PaintRequest(**_task_options(options))
        return self._run("paint", "paint", resolve_target(target, version), request, {}, output, glb, progress)

    def depth(self, image, *, span: Optional[float] = None, output=None, glb=None, progress=None,
              **options) -> World:
        """The model's modality (depth) estimated for ``image`` (a file or (H, W, 3) array), kept exactly."""
        from .sampler.requests import EstimateRequest
        from .world.inputs import as_image
        from .world.tasks import Target

        pixels = as_image(image)
        h, w = pixels.shape[:2]
        span = span if span is not None else (360.0 if w >= 2 * h else 60.0)
        request = EstimateRequest(**_task_options(options), image=pixels, span_deg=span)
        result = self.backend.estimate(request, progress)
        params = _params(request, span_deg=span, source=str(image) if isinstance(image, (str, Path)) else None)
        return keep_result(Target(None, None), result, self.backend, "depth", seed=request.seed, params=params,
                           negative_prompt=request.negative_prompt, output=output, glb=glb)

    def _run(self, operation: str, method, source, request, params: dict, output, glb, progress,
             after: Optional[Callable[[Any], dict]] = None) -> World:
        """Run the backend's ``method`` (a task name, or a callable (request, snapshot, progress)) on the
        source and keep the result (``tasks.keep_result``)."""
        from .world.outputs import glb_target

        if glb is not None:
            glb_target(Path("."), glb)  # a bad --glb costs nothing
        run = method if callable(method) else getattr(self.backend, method)
        result = run(request, source.snapshot, progress)
        params = _params(request, **params, **(after(result) if after else {}))
        return keep_result(source, result, self.backend, operation, seed=request.seed, params=params,
                           negative_prompt=request.negative_prompt, output=output, glb=glb)

    def place(self, target, what: str, *, distance: float, painter: str = "auto", version: Optional[int] = None,
              glb=None, progress=None, steps: int = 50, guidance: float = 7.5, seed: int = 0,
              scheduler: Optional[str] = None, negative_prompt: str = "", method: str = "auto",
              record: Optional[dict] = None, **placement) -> World:
        """Place ``what`` at ``distance`` metres: ``azimuth``/``width``/``height`` or ``mask``, plus ``lift``,
        ``shape``, ``occlude``, ``border_px``, ``border_strength`` (``worldgen.placement.Placement``).
        ``painter``: "jointnet" (this pipeline's model, when it can paint), "procedural" (a placeholder
        shape) or "auto" (see ``worldgen.world.placing.choose_painter``). ``record``: as for ``refine``."""
        from .world.placing import place

        return place(self, target, what, distance=distance, painter=painter, version=version, glb=glb,
                     progress=progress, sampling=dict(steps=steps, guidance=guidance, seed=seed, scheduler=scheduler,
                                                      negative_prompt=negative_prompt, method=method),
                     placement=placement, record=record or {})

    # Files -----------------------------------------------------------------------------------
    def snapshot_from_files(self, image_file, modality_file=None, span: float = 360.0):
        """A world in memory from outside files: an RGB image and/or this model's modality layer
        (.npy, or a 16-bit PNG for depth); a missing image is black (to be painted)."""
        import numpy as np

        from .registry import get_registry
        from .world.inputs import as_image, read_modality_file

        image = as_image(image_file) if image_file is not None else None
        modalities = {}
        if modality_file is not None:
            spec = get_registry().modality(self.backend.modality)
            size = (image.shape[1], image.shape[0]) if image is not None else (None, None)
            modalities[spec.name] = read_modality_file(Path(modality_file), spec, *size)
        if image is None:
            h, w = next(iter(modalities.values())).shape[:2]
            image = np.zeros((h, w, 3), np.float32)
        return _snapshot(image, modalities, span)


def _task_options(options: dict) -> dict:
    from .errors import UserInputError

    unknown = sorted(set(options) - set(TASK_FIELDS))
    if unknown:
        raise UserInputError(f"unknown task option {', '.join(unknown)}; known: {', '.join(TASK_FIELDS)}")
    return {k: v for k, v in options.items() if v is not None or k == "scheduler"}


def _params(request, **extra) -> dict:
    """A task's manifest params: its own values, then the sampling every task shares."""
    from .world.versions import record_params

    return record_params(**extra, steps=request.steps, guidance=request.guidance, scheduler=request.scheduler,
                         method=request.method)


def _snapshot(image, modalities: dict, span: float):
    from .scene.snapshot import Snapshot
    from .geometry.projection import CylindricalProjection

    return Snapshot(image=image, modalities=modalities, projection=CylindricalProjection(image.shape[1],
                                                                                         image.shape[0], span))


def _open_scene(scene):
    if scene is None or not isinstance(scene, (str, Path)):
        return getattr(scene, "scene", scene)  # a World: its scene
    from .scene.store import Scene

    return Scene.open(Path(scene))
