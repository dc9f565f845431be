"""One-shot or resident: the one switch between a process that makes one world and one that keeps
its model for many (issue 24).

A one-shot process (`worldgen pano`) pays no warm-up it cannot win back: its backend is loaded with
``resident`` False (for JointNet: no cuDNN autotuning, no CUDA-graph capture). A resident process
(`worldgen serve`, `worldgen batch`, the Python API used in a loop) keeps them and pays them once,
before its first request, by making one throw-away world of the size and preset it expects
(``warm_up``). Neither choice changes what a request computes, only how fast.
"""

from __future__ import annotations

from typing import Optional

# Front ends and the mode they run in: the tests check each one passes this to its backend.
ONE_SHOT = False
RESIDENT = True
WARM_UP_PROMPT = "a wide open landscape"  # any prompt: only the shapes matter to what is recorded


def with_mode(spec, settings: dict, resident: bool) -> dict:
    """``settings`` plus the ``resident`` flag, for a backend that takes it (others never see it)."""
    if "resident" in tuple(getattr(spec, "settings", None) or ()):
        return {**settings, "resident": bool(resident)}
    return dict(settings)


def warm_up(backend, *, width: int = 2048, height: int = 512, preset: Optional[str] = None,
            steps: Optional[int] = None) -> bool:
    """Make one world nobody asked for, so that autotuning and graph capture for these shapes happen
    now and not in the first request; only where the backend says a first world costs more
    (``warm_up_pays``). Returns whether it ran."""
    if not getattr(backend, "warm_up_pays", False):
        return False
    from ..phases import phase
    from ..requests import generate_request  # what WorldPipeline.request checks with (no import of the API)

    request = generate_request(WARM_UP_PROMPT, width=width, height=height, preset=preset, steps=steps)
    request.modality = getattr(backend, "modality", None) or request.modality
    with phase("warm-up"):
        backend.generate(request, None)
    return True
