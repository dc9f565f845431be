"""The backend interface: what every generator of panorama layers implements.

A backend is loaded from its ``BackendSpec`` and offers tasks as methods. Each task takes a
request dataclass and an optional progress callback and returns a ``Snapshot``. A backend that
cannot do a task inherits the method below, which raises ``UnsupportedTask`` with advice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .errors import UnsupportedTask
from .scene.snapshot import Snapshot
from .progress import ProgressCallback

# The rules live in worldgen.validation (one place for the CLI, batch, recipes and requests);
# these names stay importable from here for plugins.
from .validation import MAX_PIXELS, MAX_PROMPT_CHARS, MAX_SIDE_PX, check, check_prompt, check_seed, check_size, check_span  # noqa: E402,F401


@dataclass
class GenerateRequest:
    """Text to panorama. ``preset`` (a ``worldgen.sampler.presets`` name) is this request's sampling
    recipe: its windows, guidance schedule and solver; None keeps the backend's. ``steps`` None: the
    preset's step count (published 50, fast 14)."""

    prompt: str
    width: int = 2048
    height: int = 512
    span_deg: float = 360.0
    seed: int = 0
    steps: Optional[int] = None
    guidance: float = 7.5
    negative_prompt: str = ""
    modality: str = "depth"
    scheduler: Optional[str] = None
    regions: list = field(default_factory=list)
    preset: Optional[str] = None

    def __post_init__(self) -> None:
        self.prompt = check_prompt(self.prompt)
        self.negative_prompt = check_prompt(self.negative_prompt, required=False, label="the negative prompt")
        check_size(self.width, self.height)
        self.span_deg = check_span(self.span_deg)
        if self.preset is not None or self.steps is None:
            from .sampler.presets import get_preset

            chosen = get_preset(self.preset)  # a bad name is a one-line UserInputError
            self.preset = chosen.name if self.preset is not None else None
            self.steps = chosen.steps if self.steps is None else self.steps
        self.steps = check("steps", self.steps)
        self.guidance = check("guidance", self.guidance)
        self.seed = check_seed(self.seed)


class Backend:
    """Base class; subclasses override the tasks they support and list them in their spec."""

    name = "backend"

    def settings(self) -> dict:
        """What to record in the scene manifest to reproduce this backend's output."""
        return {}

    def settings_for(self, request) -> dict:
        """What to record for the output of ``request``: ``settings()``, with whatever the request
        chose for itself in place of the loaded value (a backend that takes a per-request preset
        records the preset that ran, not the one it was loaded with)."""
        return self.settings()

    def _unsupported(self, task: str):
        raise UnsupportedTask(f"backend {self.name!r} cannot {task}; use --backend jointnet with a JointNet model "
                              f"(see `worldgen models --help`)")

    def generate(self, request: GenerateRequest, progress: Optional[ProgressCallback] = None) -> Snapshot:
        self._unsupported("generate panoramas")

    def refine(self, request, snapshot: Snapshot, progress: Optional[ProgressCallback] = None) -> Snapshot:
        self._unsupported("refine")

    def outpaint(self, request, snapshot: Snapshot, progress: Optional[ProgressCallback] = None) -> Snapshot:
        self._unsupported("outpaint")

    def estimate(self, request, progress: Optional[ProgressCallback] = None) -> Snapshot:
        self._unsupported("estimate a modality from an image")

    def paint(self, request, snapshot: Snapshot, progress: Optional[ProgressCallback] = None) -> Snapshot:
        self._unsupported("paint RGB from a modality")

    def edit(self, request, snapshot: Snapshot, progress: Optional[ProgressCallback] = None) -> Snapshot:
        self._unsupported("edit a masked region")

    # Issue 22: a backend that can render these directly overrides them (and lists the task in its
    # spec); otherwise worldgen.explore inpaints them through ``edit``.
    def sphere(self, request, snapshot: Snapshot, progress: Optional[ProgressCallback] = None) -> Snapshot:
        self._unsupported("render the full sphere")

    def layers(self, request, snapshot: Snapshot, progress: Optional[ProgressCallback] = None) -> Snapshot:
        self._unsupported("render background layers")
