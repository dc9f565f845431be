"""A validated recipe and its steps (what ``parse`` returns and ``build`` runs)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class BuildOptions:
    """What the command line (or a batch) changes about a recipe's run."""

    backend: Optional[str] = None  # overrides backend.name
    settings: dict = field(default_factory=dict)  # overrides backend settings (model, device, dtype, ...)
    seed: Optional[int] = None
    steps: Optional[int] = None  # every diffusion step count (a quick preview)
    force: bool = False  # an [[export]] path may replace a file that exists already
    strict: bool = False  # a placement that would be hidden stops the build (else it is skipped and reported)
    skipped: list = field(default_factory=list)  # filled in by ``build``: "place[k] (prompt): why" per skip


# The validated recipe ---------------------------------------------------------------------------------

@dataclass
class ExportStep:
    format: str
    path: Optional[str] = None
    options: dict = field(default_factory=dict)


@dataclass
class PlaceStep:
    placement: Any  # worldgen.placement.Placement
    steps: Optional[int] = None
    guidance: Optional[float] = None
    negative: Optional[str] = None


@dataclass
class RefineStep:
    fields: dict  # RefineRequest keyword arguments (beyond the shared steps/guidance defaults)
    size: Optional[tuple[int, int]] = None

    def request(self, recipe: "Recipe", steps: Optional[int] = None, seed: int = 0,
                options: Optional[BuildOptions] = None):
        """The ``RefineRequest`` of this pass: unset fields come from the recipe (steps, guidance,
        negative prompt); ``steps`` overrides them all (a quick preview)."""
        from ..sampler.requests import RefineRequest

        fields = dict(self.fields)
        fields.setdefault("steps", recipe.sampling(options).steps)
        fields.setdefault("guidance", recipe.guidance)
        fields.setdefault("negative_prompt", recipe.negative)
        fields.setdefault("scale", 1.0 if self.size else 2.0)
        if steps is not None:
            fields["steps"] = steps
        width, height = self.size or (None, None)
        return RefineRequest(**fields, width=width, height=height, seed=seed, scheduler=recipe.scheduler)


@dataclass
class Recipe:
    """A validated recipe. Sizes and counts are checked; what depends on a model or on the generated
    world (a placement hidden behind a hill, a missing checkpoint) is checked when it runs."""

    path: Path
    text: str
    name: str
    prompt: str
    description: str = ""
    negative: str = ""
    seed: int = 0
    width: int = 2048
    height: int = 512
    span_deg: float = 360.0
    modalities: tuple[str, ...] = ("depth",)
    steps: Optional[int] = None  # None: the preset's
    guidance: float = 7.5
    scheduler: Optional[str] = None
    backend: dict = field(default_factory=dict)
    regions: list = field(default_factory=list)
    places: list[PlaceStep] = field(default_factory=list)
    refines: list[RefineStep] = field(default_factory=list)
    exports: list[ExportStep] = field(default_factory=list)

    @property
    def backend_name(self) -> str:
        return self.backend.get("name", "auto")

    @property
    def backend_settings(self) -> dict:
        return {k: v for k, v in self.backend.items() if k != "name"}

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def sampling(self, options: Optional[BuildOptions] = None):
        """Preset, steps and scheduler of this recipe's run, resolved as `pano` resolves them: the
        command line's --preset/--steps over the recipe's backend.preset/steps."""
        from ..sampler.presets import resolve_sampling

        given = options.settings if options is not None else {}
        preset = given.get("preset") or self.backend.get("preset")
        steps = (options.steps if options is not None else None) or self.steps
        return resolve_sampling(preset, steps, self.scheduler)

    def request(self, seed: Optional[int] = None, backend_name: str = "jointnet",
                options: Optional[BuildOptions] = None):
        """The ``GenerateRequest`` of the panorama (with its regions), checked by ``WorldPipeline.request``
        as `pano`, batch jobs and the server check theirs."""
        from ..api import WorldPipeline

        modality = self.modalities[0]
        if backend_name == "procedural" and "normal" in self.modalities:
            modality = "normal"  # the procedural backend makes depth and derives normals from it
        sampling = self.sampling(options)
        return WorldPipeline.request(self.prompt, width=self.width, height=self.height, span=self.span_deg,
                                     seed=self.seed if seed is None else seed, steps=sampling.steps,
                                     guidance=self.guidance, preset=sampling.preset.name,
                                     negative_prompt=self.negative, modality=modality, scheduler=self.scheduler,
                                     regions=list(self.regions))

