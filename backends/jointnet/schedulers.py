"""Scheduler choice by short name; every scheduler is built from the base model's scheduler config."""

from __future__ import annotations

from typing import Any, Optional

from worldgen.errors import UserInputError

# name -> (diffusers class name, config overrides)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
}
ALIASES = {"dpmsolver++": "dpm++", "dpm-solver++": "dpm++", "dpm": "dpm++", "uni-pc": "unipc",
           "euler_a": "euler-a", "euler-ancestral": "euler-a"}
DEFAULT_SCHEDULER = "ddim"


def scheduler_class(class_name: str):
    """A diffusers scheduler class by name; anything that is not a scheduler is refused."""
    import diffusers
    from diffusers import SchedulerMixin

    cls = getattr(diffusers, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise UserInputError(f"{class_name!r} is not a diffusers scheduler; use one of {', '.join(SCHEDULERS)}")
    return cls


def make_scheduler(name: Optional[str], base_config: dict):
    """Scheduler ``name`` (e.g. "ddim", "dpm++", "unipc") configured from ``base_config``.

    None keeps the base model's own scheduler class. The beta schedule and prediction type always
    come from the base config, so swapping schedulers never changes what the UNet was trained for.
    """
    config = {k: v for k, v in dict(base_config).items()}
    if name is None:
        return scheduler_class(config.get("_class_name", "DDIMScheduler")).from_config(config)
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SCHEDULERS:
        raise UserInputError(f"unknown scheduler {name!r}; use one of {', '.join(SCHEDULERS)}")
    class_name, overrides = SCHEDULERS[key]
    return scheduler_class(class_name).from_config(config, **overrides)
