"""Named sampling recipes for panoramas: the published one, and a fast one measured against it.

A preset fixes what the request does not: the solver and its step count (as defaults the user may
override), the window stride, how long the whole-panorama window runs, and for how many steps
classifier-free guidance is computed. ``benchmarks/speed_memory.py`` times each preset on the GPU
and checks the fast one's seam and layout numbers against the published one's; ``benchmarks/NOTES.md``
has the measurements behind the choices below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

from ..errors import UserInputError


@dataclass(frozen=True)
class Preset:
    """``stride``: window stride as a fraction of the window (0.5: half-overlapping windows).
    ``global_fraction``: share of the first steps that also denoise the whole panorama as one window.
    ``guidance_fraction``: share of the first steps run with classifier-free guidance; later steps
    run the conditional half alone (half the model rows). Guidance shapes the layout early; late
    steps refine detail, where it changes little."""

    name: str
    steps: int
    scheduler: str
    stride: float = 0.5
    global_fraction: float = 0.4
    guidance_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.stride <= 1.0:
            raise ValueError(f"stride {self.stride} must be a fraction of the window in (0, 1]")
        for name in ("global_fraction", "guidance_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} {getattr(self, name)} must be in [0, 1]")

    def stride_cells(self, window: int) -> int:
        return max(1, int(round(window * self.stride)))

    def guided_steps(self, steps: int) -> int:
        """Steps (from the first) that use classifier-free guidance."""
        return steps if self.guidance_fraction >= 1.0 else math.ceil(self.guidance_fraction * steps)

    def global_steps(self, steps: int) -> int:
        """Steps (from the first) that add the whole-panorama window: see ``global_window_steps``."""
        return global_window_steps(self.global_fraction, steps)


def global_window_steps(fraction: float, steps: int) -> int:
    """How many first steps add the whole-panorama window. The original code runs it while
    ``i <= int(fraction * steps)`` (21 of 50 at 0.4), so the count is that bound plus one."""
    return 0 if fraction <= 0 else min(steps, int(fraction * steps) + 1)


# The paper's recipe (JointNet sec. 4.2): DDIM 50, stride half a window, whole panorama for 40%.
PUBLISHED = Preset("published", steps=50, scheduler="ddim")
# About a tenth of the published recipe's arithmetic, under a second for 2048x512 on an H200
# (benchmarks/NOTES.md has the measurements and the variants it was chosen from): DPM-Solver++(2M)
# at 14 steps; windows side by side (stride = window: 4 per step at 2048 px instead of 8), their
# borders moved by the random offset every step so no border stays in place; the whole-panorama
# window for the first 2 steps (the layout); guidance for the first half.
FAST = Preset("fast", steps=14, scheduler="dpm++", stride=1.0, global_fraction=0.125, guidance_fraction=0.5)

PRESETS = {p.name: p for p in (PUBLISHED, FAST)}
DEFAULT_PRESET = "published"


@dataclass(frozen=True)
class Sampling:
    """The sampling choices of one run, resolved ONCE from the command line (or a batch, a recipe)
    and handed on: the preset, the step count (the user's, else the preset's) and the scheduler
    (the user's, else the preset's: the published recipe is DDIM whatever the base folder names)."""

    preset: Preset
    steps: int
    scheduler: Optional[str] = None  # the user's explicit choice; None: the preset's

    @property
    def scheduler_name(self) -> str:
        return self.scheduler or self.preset.scheduler

    def settings_for(self, spec, settings: dict) -> dict:
        """A backend's load settings with this sampling added, for backends that take a ``preset``
        (others have no windows or solver to choose): what `pano`, `batch` and `build` all hand it."""
        settings = {k: v for k, v in settings.items() if v is not None}
        if "preset" in (spec.settings or ()):
            settings["preset"] = self.preset.name
        return settings


def resolve_sampling(preset: Union[None, str, Preset] = None, steps: Optional[int] = None,
                     scheduler: Optional[str] = None) -> Sampling:
    """The one place a preset name becomes settings; a bad name is a one-line UserInputError."""
    chosen = get_preset(preset)
    return Sampling(chosen, int(steps) if steps is not None else chosen.steps, scheduler or None)


def get_preset(preset: Union[None, str, Preset]) -> Preset:
    """A preset by name (None: the published recipe), or the given Preset itself."""
    if isinstance(preset, Preset):
        return preset
    if preset is None:
        return PRESETS[DEFAULT_PRESET]
    found: Optional[Preset] = PRESETS.get(str(preset).lower())
    if found is None:
        raise UserInputError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
    return found
