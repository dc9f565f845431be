"""Schedulers by name, built from a model's own scheduler config (its noise schedule stays the same).

DDIM is the published panorama recipe's scheduler and the default. Every name maps to a diffusers
class plus the config overrides that make it the variant people mean by that name.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import UserInputError

DEFAULT_SCHEDULER = "ddim"

# name -> (diffusers class name, config overrides)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpm++-karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                     "use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "ddpm": ("DDPMScheduler", {}),
}


def scheduler_names() -> list[str]:
    return list(SCHEDULERS)


def make_scheduler(name: Optional[str], base_config: dict):
    """A fresh scheduler ``name`` (default DDIM) with the noise schedule of ``base_config``."""
    import diffusers

    key = (name or DEFAULT_SCHEDULER).strip().lower()
    if key not in SCHEDULERS:
        raise UserInputError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    class_name, overrides = SCHEDULERS[key]
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    config.update(overrides)
    return getattr(diffusers, class_name).from_config(config)
