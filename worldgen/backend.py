"""The backend interface: what every generator of panorama layers implements.

A backend is loaded from its ``BackendSpec`` and offers tasks as methods. Each task takes a
request dataclass and an optional progress callback and returns a ``Snapshot``. A backend that
cannot do a task inherits the method below, which raises ``UnsupportedTask`` with advice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .errors import UnsupportedTask, UserInputError
from .layers import Snapshot
from .progress import ProgressCallback

MAX_PROMPT_CHARS = 2000
MAX_SIDE_PX = 16384


def check_size(width: int, height: int, what: str = "size") -> None:
    """Sizes must be positive multiples of 8 (the VAE's stride) and not absurd."""
    for side, name in ((width, "width"), (height, "height")):
        if side <= 0 or side % 8:
            raise UserInputError(f"{what} {width}x{height}: {name} must be a positive multiple of 8 (e.g. 2048x512)")
        if side > MAX_SIDE_PX:
            raise UserInputError(f"{what} {width}x{height}: {name} exceeds {MAX_SIDE_PX} px; generate smaller and use `worldgen refine --scale`")


def check_prompt(prompt: str) -> str:
    prompt = (prompt or "").strip()
    if not prompt:
        raise UserInputError("the prompt is empty; describe the world, e.g. \"a misty fjord at dawn\"")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserInputError(f"the prompt has {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS}")
    return prompt


@dataclass
class GenerateRequest:
    """Text to panorama."""

    prompt: str
    width: int = 2048
    height: int = 512
    span_deg: float = 360.0
    seed: int = 0
    steps: int = 50
    guidance: float = 7.5
    negative_prompt: str = ""
    modality: str = "depth"
    scheduler: Optional[str] = None
    regions: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prompt = check_prompt(self.prompt)
        check_size(self.width, self.height)
        if not (0 < self.span_deg <= 360):
            raise UserInputError(f"span {self.span_deg} is outside (0, 360]; pass --span between 1 and 360")
        if self.steps < 1 or self.steps > 1000:
            raise UserInputError(f"steps {self.steps} must be between 1 and 1000")


class Backend:
    """Base class; subclasses override the tasks they support and list them in their spec."""

    name = "backend"

    def settings(self) -> dict:
        """What to record in the scene manifest to reproduce this backend's output."""
        return {}

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
