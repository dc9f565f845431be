"""`worldgen pano --server URL`, the library half: a local request's arguments as the server's job
request, made there and downloaded here (``client.make_world``).

The CLI parses its options and prints; what a remote world needs (the destination check, the job
request, which values are left to the server) is decided here. Standard library only (plus
``worldgen.requests``, which imports no torch), like ``client``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ..errors import UserInputError
from ..progress import ProgressCallback

# `worldgen pano` options that choose and load the model: on a server they are the server's.
SERVER_SIDE_OPTIONS = ("backend", "model", "base", "extra_model", "dtype", "window_batch", "device")
PROCEDURAL_NOTE = ("the server made this world with its offline procedural backend (not diffusion); for real "
                   "generation start it with a JointNet model: worldgen serve --model NAME")


def refuse_server_side(given: Sequence[str]) -> None:
    """A one-line refusal for the first option in ``given`` that the server chooses at start-up."""
    for name in SERVER_SIDE_OPTIONS:
        if name in given:
            flag = "--" + name.replace("_", "-")
            raise UserInputError(f"{flag} is chosen when the server starts (`worldgen serve {flag} ...`); drop it "
                                 f"from `worldgen pano --server`")


def job_request(prompt: str, *, width: int, height: int, span: float, guidance: float, negative_prompt: str,
                seed: int, regions: Sequence[str] = (), scheduler: Optional[str] = None,
                modality: Optional[str] = None, steps: Optional[int] = None, preset: Optional[str] = None) -> dict:
    """The job request (docs/server.md) for these arguments. ``None`` leaves a value to the server:
    its model's modality and scheduler, its own default preset, that preset's steps."""
    from ..requests import region_from_text

    payload = {"prompt": prompt, "size": [width, height], "span": span, "guidance": guidance,
               "negative": negative_prompt, "seed": seed, "regions": [region_from_text(text) for text in regions]}
    optional = (("scheduler", scheduler), ("modality", modality), ("steps", steps), ("preset", preset))
    return {**payload, **{key: value for key, value in optional if value is not None}}


def make_world_on_server(url: str, payload: dict, scene_dir: Path, glb: Path,
                         progress: Optional[ProgressCallback] = None) -> dict:
    """Have the server at ``url`` make ``payload``'s world and download it to ``scene_dir`` + ``glb``
    (nothing is sent if ``scene_dir`` is taken). Returns the finished job (its ``backend`` says which
    backend made it; ``PROCEDURAL_NOTE`` is the note for the offline one)."""
    from .client import make_world

    if scene_dir.exists() and (not scene_dir.is_dir() or any(scene_dir.iterdir())):
        raise UserInputError(f"{scene_dir} exists and is not an empty folder; pick another -o name")
    return make_world(url, payload, scene_dir, glb, progress)
